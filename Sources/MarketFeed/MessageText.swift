import CastleCore
import CastleSupport

/// The bytes of one JSON message being written. Names arrive already escaped (``jsonStringLiteral(_:)``);
/// decimals are written canonically (no exponent, no trailing zeros after the point), never via Double.
struct MessageText {
    var bytes: [UInt8] = []

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ raw: [UInt8]) { bytes.append(contentsOf: raw) }

    mutating func appendUnsigned(_ value: UInt64) {
        bytes.append(contentsOf: String(value).utf8)
    }

    /// `value × 10^-decimals` as a JSON string.
    mutating func appendDecimal(_ value: Int64, decimals: UInt8) {
        appendDecimal(Int128(value), decimals: decimals)
    }

    /// Level totals are Int128: orders that each fit an Int64 can sum past it.
    mutating func appendDecimal(_ value: Int128, decimals: UInt8) {
        bytes.append(UInt8(ascii: "\""))
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        var digits = Array(String(value.magnitude).utf8)
        let scale = Int(decimals)
        if digits.count <= scale {
            digits.insert(contentsOf: repeatElement(UInt8(ascii: "0"), count: scale + 1 - digits.count), at: 0)
        }
        var fraction = digits[(digits.count - scale)...]
        while let last = fraction.last, last == UInt8(ascii: "0") { fraction.removeLast() }
        bytes.append(contentsOf: digits[..<(digits.count - scale)])
        if !fraction.isEmpty {
            bytes.append(UInt8(ascii: "."))
            bytes.append(contentsOf: fraction)
        }
        bytes.append(UInt8(ascii: "\""))
    }

    var string: String { String(decoding: bytes, as: UTF8.self) }
}
