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
        var mantissa: Int64 = 0
        var intDigits = 0
        while index < count, bytes[index] &- 48 < 10 {
            let (m1, o1) = mantissa.multipliedReportingOverflow(by: 10)
            let (m2, o2) = m1.addingReportingOverflow(Int64(bytes[index] &- 48))
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
                let digit = Int64(bytes[index] &- 48)
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
        return FixedDecimal(mantissa: negative ? -mantissa : mantissa, scale: UInt8(scale))
    }

    public static func parse(_ text: String) -> FixedDecimal? {
        var text = text
        return text.withUTF8 { parse($0) }
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

/// Writes the canonical decimal text to `out` (at least 48 bytes) and returns its length.
@inlinable
public func writeDecimal(_ value: Int64, decimals: UInt8, to out: UnsafeMutablePointer<UInt8>) -> Int {
    // Work on the magnitude as UInt64 so Int64.min formats too.
    var magnitude = value.magnitude
    var scratch = (UInt64(0), UInt64(0), UInt64(0))  // 24 bytes of stack for up to 20 digits
    return withUnsafeMutableBytes(of: &scratch) { raw -> Int in
        let tmp = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var n = 0
        repeat {
            tmp[n] = UInt8(truncatingIfNeeded: magnitude % 10) &+ 48
            magnitude /= 10
            n += 1
        } while magnitude != 0
        // tmp holds digits least significant first; pad so there is one integer digit.
        let d = Int(decimals)
        while n <= d {
            tmp[n] = 48
            n += 1
        }
        // Drop trailing fraction zeros.
        var low = 0
        while low < d, tmp[low] == 48 { low += 1 }
        var length = 0
        if value < 0 {
            out[length] = UInt8(ascii: "-")
            length += 1
        }
        var i = n - 1
        while i >= d {
            out[length] = tmp[i]
            length += 1
            i -= 1
        }
        if low < d {
            out[length] = UInt8(ascii: ".")
            length += 1
            while i >= low {
                out[length] = tmp[i]
                length += 1
                i -= 1
            }
        }
        return length
    }
}
