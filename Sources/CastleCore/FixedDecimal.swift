/// A decimal number as written on the wire, exactly: `mantissa × 10^-scale`, with no trailing zeros
/// in the fraction. Never read through a binary float.
public struct FixedDecimal: Sendable, Hashable {
    public var mantissa: Int64
    public var scale: UInt8

    public init(mantissa: Int64, scale: UInt8) {
        self.mantissa = mantissa
        self.scale = scale
    }

    public static let zero = FixedDecimal(mantissa: 0, scale: 0)

    /// Largest scale castle supports; 10^18 still fits an Int64.
    public static let maxScale: UInt8 = 18

    public enum ScalingError: Error, Sendable {
        /// More significant decimals than the target scale.
        case offScale
        /// Does not fit an Int64 at the target scale.
        case tooLarge
    }

    /// The value as an integer count of `10^-decimals` units.
    @inlinable
    public func scaled(to decimals: UInt8) -> Result<Int64, ScalingError> {
        precondition(decimals <= Self.maxScale, "decimals above FixedDecimal.maxScale")
        if scale > decimals { return .failure(.offScale) }
        let (product, overflow) = mantissa.multipliedReportingOverflow(by: powersOfTen[Int(decimals - scale)])
        return overflow ? .failure(.tooLarge) : .success(product)
    }

    /// Parses a plain decimal: an optional `-`, digits, optionally `.` and digits. No exponent, no `+`,
    /// no leading or trailing point. Leading zeros are accepted. Returns nil when the text is not such a
    /// number or its significant digits do not fit an Int64.
    @inlinable
    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> FixedDecimal? {
        var index = 0
        let count = bytes.count
        var negative = false
        if index < count, bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        // The magnitude is built as a UInt64 so that Int64.min (one more than Int64.max) parses too.
        var mantissa: UInt64 = 0
        var intDigits = 0
        while index < count, bytes[index] &- 48 < 10 {
            let (m1, o1) = mantissa.multipliedReportingOverflow(by: 10)
            let (m2, o2) = m1.addingReportingOverflow(UInt64(bytes[index] &- 48))
            if o1 || o2 { return nil }
            mantissa = m2
            intDigits += 1
            index += 1
        }
        if intDigits == 0 { return nil }
        var scale = 0
        if index < count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            // Trailing zeros are counted but folded in only when a nonzero digit follows, so
            // "1.50000000000000000000" stays representable.
            var pendingZeros = 0
            var fracDigits = 0
            while index < count, bytes[index] &- 48 < 10 {
                let digit = UInt64(bytes[index] &- 48)
                fracDigits += 1
                index += 1
                if digit == 0 {
                    pendingZeros += 1
                    continue
                }
                for _ in 0...pendingZeros {
                    let (m, o) = mantissa.multipliedReportingOverflow(by: 10)
                    if o { return nil }
                    mantissa = m
                }
                let (m, o) = mantissa.addingReportingOverflow(digit)
                if o { return nil }
                mantissa = m
                scale += pendingZeros + 1
                pendingZeros = 0
                if scale > Int(maxScale) { return nil }
            }
            if fracDigits == 0 { return nil }
        }
        if index != count { return nil }
        let limit = negative ? UInt64(Int64.max) + 1 : UInt64(Int64.max)
        if mantissa > limit { return nil }
        let value = negative ? Int64(truncatingIfNeeded: 0 &- mantissa) : Int64(mantissa)
        return FixedDecimal(mantissa: value, scale: UInt8(scale))
    }

    public static func parse(_ text: String) -> FixedDecimal? {
        var text = text
        return text.withUTF8 { parse($0) }
    }

    /// Why ``parse(_:)-(UnsafeBufferPointer<UInt8>)`` refused `bytes`, for the error message (off the
    /// hot path): nil when they are no plain decimal; `.offScale` for more than ``maxScale``
    /// significant decimals; `.tooLarge` for more digits than an Int64 holds.
    public static func whyRefused(_ bytes: some Collection<UInt8>) -> ScalingError? {
        guard isPlainDecimal(bytes) else { return nil }
        return significantDecimals(bytes) > Int(maxScale) ? .offScale : .tooLarge
    }

    /// An optional `-`, digits, and optionally `.` and digits: the text ``parse(_:)-(String)`` reads,
    /// whatever its size.
    public static func isPlainDecimal(_ bytes: some Collection<UInt8>) -> Bool {
        var bytes = bytes[...]
        if bytes.first == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
        let integer = bytes.prefix { $0 &- 48 < 10 }
        guard !integer.isEmpty else { return false }
        bytes = bytes.dropFirst(integer.count)
        if bytes.isEmpty { return true }
        guard bytes.first == UInt8(ascii: ".") else { return false }
        bytes = bytes.dropFirst()
        return !bytes.isEmpty && bytes.allSatisfy { $0 &- 48 < 10 }
    }

    /// Decimals after the point, trailing zeros not counted.
    public static func significantDecimals(_ bytes: some Collection<UInt8>) -> Int {
        guard let point = bytes.firstIndex(of: UInt8(ascii: ".")) else { return 0 }
        return bytes[bytes.index(after: point)...].reversed().drop { $0 == UInt8(ascii: "0") }.count
    }
}

/// 10^0 … 10^18.
public let powersOfTen: [Int64] = {
    var table: [Int64] = [1]
    for _ in 1...18 { table.append(table.last! * 10) }
    return table
}()

/// Canonical decimal text of `value × 10^-decimals`: no exponent, no trailing zeros after the point,
/// no point for whole numbers.
public func formatDecimal(_ value: Int64, decimals: UInt8) -> String {
    var bytes: [UInt8] = []
    appendDecimal(value, decimals: decimals, to: &bytes)
    return String(decoding: bytes, as: UTF8.self)
}

public func appendDecimal(_ value: Int64, decimals: UInt8, to bytes: inout [UInt8]) {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 48) { buffer in
        let length = writeDecimal(value, decimals: decimals, to: buffer.baseAddress!)
        bytes.append(contentsOf: UnsafeBufferPointer(start: buffer.baseAddress!, count: length))
    }
}

/// "00" … "99": two digits per division when writing numbers.
@usableFromInline let digitPairs: StaticString =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

/// Writes the decimal digits of `value` so that they end just before `end`; returns how many.
@inlinable @inline(__always)
public func writeDigitsBackward(_ value: UInt64, endingAt end: UnsafeMutablePointer<UInt8>) -> Int {
    let pairs = digitPairs.utf8Start
    var v = value
    var p = end
    while v >= 100 {
        let q = v / 100
        let r = Int(truncatingIfNeeded: v &- q &* 100) &* 2
        p -= 2
        p[0] = pairs[r]
        p[1] = pairs[r + 1]
        v = q
    }
    if v >= 10 {
        let r = Int(truncatingIfNeeded: v) &* 2
        p -= 2
        p[0] = pairs[r]
        p[1] = pairs[r + 1]
    } else {
        p -= 1
        p[0] = UInt8(truncatingIfNeeded: v) &+ 48
    }
    return end - p
}

/// Writes the canonical decimal text to `out` (at least 48 bytes) and returns its length.
@inlinable
public func writeDecimal(_ value: Int64, decimals: UInt8, to out: UnsafeMutablePointer<UInt8>) -> Int {
    precondition(decimals <= FixedDecimal.maxScale, "decimals above FixedDecimal.maxScale")
    let d = Int(decimals)
    let magnitude = value.magnitude
    var length = 0
    if value < 0 {
        out[0] = UInt8(ascii: "-")
        length = 1
    }
    if d == 0 {
        return length + writeDigitsBackward(magnitude, endingAt: out + length + countDigits(magnitude))
    }
    let scale = UInt64(powersOfTen[d])
    let integer = magnitude / scale
    var fraction = magnitude &- integer &* scale
    length += writeDigitsBackward(integer, endingAt: out + length + countDigits(integer))
    if fraction == 0 { return length }
    // Drop trailing zeros, then write the fraction left-padded with zeros to its width.
    var width = d
    while fraction % 10 == 0 {
        fraction /= 10
        width -= 1
    }
    out[length] = UInt8(ascii: ".")
    length += 1
    let written = writeDigitsBackward(fraction, endingAt: out + length + width)
    for k in 0..<(width - written) { out[length + k] = 48 }
    return length + width
}

/// Number of decimal digits of `value` (1 for 0).
@inlinable @inline(__always)
public func countDigits(_ value: UInt64) -> Int {
    var digits = 1
    var threshold: UInt64 = 10
    while value >= threshold {
        digits += 1
        if digits == 20 { break }
        threshold = threshold &* 10
    }
    return digits
}
