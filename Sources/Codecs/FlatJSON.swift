/// A scanner for one flat JSON object on one line, for the order-stream contract and the instruments
/// file. It checks the whole line against the JSON grammar (nested values are checked and skipped), and
/// hands each member to the caller as views into the line, without allocating.
public struct JSONValue {
    public enum Kind: Equatable {
        /// A string without escapes: `bytes` is its content.
        case string
        /// A string with escapes: `bytes` is its raw content, decode with ``decodedString(into:)``.
        case escapedString
        /// A number: `bytes` is its text as written.
        case number
        case other
    }

    public var kind: Kind
    public var bytes: UnsafeBufferPointer<UInt8>

    @inlinable
    public init(kind: Kind, bytes: UnsafeBufferPointer<UInt8>) {
        self.kind = kind
        self.bytes = bytes
    }

    public var isString: Bool { kind == .string || kind == .escapedString }

    /// True when the value is the string `literal` (no escapes).
    @inlinable
    public func equals(_ literal: StaticString) -> Bool {
        kind == .string && bytes.count == literal.utf8CodeUnitCount
            && memcmp(bytes.baseAddress!, literal.utf8Start, bytes.count) == 0
    }

    /// Decodes an escaped string into `out`; false when an escape is not a valid Unicode scalar.
    public func decodedString(into out: inout [UInt8]) -> Bool {
        out.removeAll(keepingCapacity: true)
        var i = 0
        while i < bytes.count {
            let byte = bytes[i]
            if byte != UInt8(ascii: "\\") {
                out.append(byte)
                i += 1
                continue
            }
            let escape = bytes[i + 1]
            i += 2
            switch escape {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            default:  // u, checked by the scanner to have four hex digits
                var scalar = hex4(i)
                i += 4
                if (0xD800..<0xDC00).contains(scalar) {
                    guard i + 6 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u")
                    else { return false }
                    let low = hex4(i + 2)
                    guard (0xDC00..<0xE000).contains(low) else { return false }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
                }
                guard let unicode = Unicode.Scalar(scalar) else { return false }
                out.append(contentsOf: UTF8.encode(unicode)!)
            }
        }
        return true
    }

    private func hex4(_ at: Int) -> UInt32 {
        var value: UInt32 = 0
        for k in 0..<4 {
            let c = bytes[at + k]
            let digit: UInt8 =
                c >= UInt8(ascii: "a")
                ? c - UInt8(ascii: "a") + 10 : c >= UInt8(ascii: "A") ? c - UInt8(ascii: "A") + 10 : c - 48
            value = value << 4 | UInt32(digit)
        }
        return value
    }
}

public enum FlatJSON {
    /// Scans `line` as one JSON object, calling `member` for each key/value in order. Returns false when
    /// the line is not a syntactically valid JSON object (the `malformed` case); `member` may already
    /// have been called for earlier members then.
    @inlinable
    public static func scan(
        _ line: UnsafeBufferPointer<UInt8>,
        _ member: (_ key: JSONValue, _ value: JSONValue) -> Void
    ) -> Bool {
        guard let base = line.baseAddress else { return false }
        var scanner = Scanner(base: base, end: line.count)
        return scanner.object(member)
    }

    /// Digits only (no sign, no point), within a UInt64; nil otherwise.
    @inlinable
    public static func unsigned(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64? {
        guard bytes.count > 0 else { return nil }
        if bytes.count <= 19 {
            // At most 19 digits cannot overflow a UInt64.
            var result: UInt64 = 0
            for byte in bytes {
                let digit = byte &- 48
                guard digit < 10 else { return nil }
                result = result &* 10 &+ UInt64(digit)
            }
            return result
        }
        var result: UInt64 = 0
        for byte in bytes {
            let digit = byte &- 48
            guard digit < 10 else { return nil }
            let (m, o1) = result.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(digit))
            if o1 || o2 { return nil }
            result = s
        }
        return result
    }

    public struct Scanner {
        @usableFromInline let base: UnsafePointer<UInt8>
        @usableFromInline let end: Int
        @usableFromInline var p = 0

        @inlinable init(base: UnsafePointer<UInt8>, end: Int) {
            self.base = base
            self.end = end
        }

        @inlinable @inline(__always)
        mutating func skipSpace() {
            while p < end {
                let c = base[p]
                if c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0A { p += 1 } else { return }
            }
        }

        @inlinable
        mutating func object(_ member: (JSONValue, JSONValue) -> Void) -> Bool {
            skipSpace()
            guard p < end, base[p] == UInt8(ascii: "{") else { return false }
            p += 1
            skipSpace()
            if p < end, base[p] == UInt8(ascii: "}") {
                p += 1
            } else {
                while true {
                    skipSpace()
                    guard p < end, base[p] == UInt8(ascii: "\""), let key = string() else { return false }
                    skipSpace()
                    guard p < end, base[p] == UInt8(ascii: ":") else { return false }
                    p += 1
                    skipSpace()
                    guard let value = value(depth: 0) else { return false }
                    member(key, value)
                    skipSpace()
                    guard p < end else { return false }
                    if base[p] == UInt8(ascii: ",") {
                        p += 1
                        continue
                    }
                    if base[p] == UInt8(ascii: "}") {
                        p += 1
                        break
                    }
                    return false
                }
            }
            skipSpace()
            return p == end
        }

        /// At a `"`: scans a string, returns its content.
        @inlinable
        mutating func string() -> JSONValue? {
            p += 1
            let start = p
            var escaped = false
            let ones: UInt64 = 0x0101_0101_0101_0101
            let highs: UInt64 = 0x8080_8080_8080_8080
            while true {
                // Find the next quote, backslash, control character or byte outside ASCII, eight bytes at
                // a time. In the mask, the lowest flagged byte is always a true match (borrows only run
                // upwards), so its position is exact.
                if p + 8 <= end {
                    let word = UnsafeRawPointer(base + p).loadUnaligned(as: UInt64.self)
                    let quote = word ^ (ones &* 0x22)
                    let backslash = word ^ (ones &* 0x5C)
                    let special =
                        (((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash)
                            | ((word &- ones &* 0x20) & ~word) | word)
                        & highs
                    if special == 0 {
                        p += 8
                        continue
                    }
                    p += special.trailingZeroBitCount >> 3
                } else {
                    while p < end {
                        let c = base[p]
                        if c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") || c < 0x20 || c >= 0x80 { break }
                        p += 1
                    }
                    if p == end { return nil }
                }
                let c = base[p]
                if c == UInt8(ascii: "\"") {
                    let value = JSONValue(
                        kind: escaped ? .escapedString : .string,
                        bytes: UnsafeBufferPointer(start: base + start, count: p - start)
                    )
                    p += 1
                    return value
                }
                if c >= 0x80 {
                    // JSON text is UTF-8 (RFC 8259): a string's other bytes must be one character's.
                    guard let length = utf8SequenceLength(at: p) else { return nil }
                    p += length
                    continue
                }
                if c < 0x20 { return nil }
                // A backslash: check the escape.
                escaped = true
                guard p + 1 < end else { return nil }
                switch base[p + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                    UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    p += 2
                case UInt8(ascii: "u"):
                    guard p + 6 <= end else { return nil }
                    for k in 2..<6 where !isHexDigit(base[p + k]) { return nil }
                    p += 6
                default:
                    return nil
                }
            }
        }

        /// The length of the well-formed UTF-8 sequence of one character at `at` (whose first byte is not
        /// ASCII), or nil: RFC 3629's table, so no overlong forms, no surrogates, nothing past U+10FFFF.
        @inlinable
        func utf8SequenceLength(at at: Int) -> Int? {
            let lead = base[at]
            let length: Int
            var second: ClosedRange<UInt8> = 0x80...0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0: (length, second) = (3, 0xA0...0xBF)
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: (length, second) = (3, 0x80...0x9F)
            case 0xF0: (length, second) = (4, 0x90...0xBF)
            case 0xF1...0xF3: length = 4
            case 0xF4: (length, second) = (4, 0x80...0x8F)
            default: return nil
            }
            guard at + length <= end, second.contains(base[at + 1]) else { return nil }
            for k in 2..<length where base[at + k] & 0xC0 != 0x80 { return nil }
            return length
        }

        @inlinable
        func isHexDigit(_ c: UInt8) -> Bool {
            (c >= 48 && c <= 57) || (c | 0x20 >= UInt8(ascii: "a") && c | 0x20 <= UInt8(ascii: "f"))
        }

        @inlinable
        mutating func value(depth: Int) -> JSONValue? {
            guard p < end else { return nil }
            let c = base[p]
            switch c {
            case UInt8(ascii: "\""):
                return string()
            case UInt8(ascii: "-"), 48...57:
                return number()
            case UInt8(ascii: "t"): return literal("true")
            case UInt8(ascii: "f"): return literal("false")
            case UInt8(ascii: "n"): return literal("null")
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                // Nested values are never valid in a command; check their syntax and skip them.
                guard depth < 64 else { return nil }
                let start = p
                let close = c == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
                p += 1
                skipSpace()
                if p < end, base[p] == close {
                    p += 1
                } else {
                    while true {
                        skipSpace()
                        if c == UInt8(ascii: "{") {
                            guard p < end, base[p] == UInt8(ascii: "\""), string() != nil else { return nil }
                            skipSpace()
                            guard p < end, base[p] == UInt8(ascii: ":") else { return nil }
                            p += 1
                            skipSpace()
                        }
                        guard value(depth: depth + 1) != nil else { return nil }
                        skipSpace()
                        guard p < end else { return nil }
                        if base[p] == UInt8(ascii: ",") {
                            p += 1
                            continue
                        }
                        if base[p] == close {
                            p += 1
                            break
                        }
                        return nil
                    }
                }
                return JSONValue(kind: .other, bytes: UnsafeBufferPointer(start: base + start, count: p - start))
            default:
                return nil
            }
        }

        @inlinable
        mutating func literal(_ word: StaticString) -> JSONValue? {
            let count = word.utf8CodeUnitCount
            guard p + count <= end, memcmp(base + p, word.utf8Start, count) == 0 else { return nil }
            let value = JSONValue(kind: .other, bytes: UnsafeBufferPointer(start: base + p, count: count))
            p += count
            return value
        }

        /// The JSON number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
        @inlinable
        mutating func number() -> JSONValue? {
            let start = p
            if base[p] == UInt8(ascii: "-") { p += 1 }
            guard p < end else { return nil }
            if base[p] == 48 {
                p += 1
            } else if base[p] > 48 && base[p] <= 57 {
                while p < end && base[p] &- 48 < 10 { p += 1 }
            } else {
                return nil
            }
            if p < end && base[p] == UInt8(ascii: ".") {
                p += 1
                let digits = p
                while p < end && base[p] &- 48 < 10 { p += 1 }
                guard p > digits else { return nil }
            }
            if p < end && (base[p] | 0x20) == UInt8(ascii: "e") {
                p += 1
                if p < end && (base[p] == UInt8(ascii: "+") || base[p] == UInt8(ascii: "-")) { p += 1 }
                let digits = p
                while p < end && base[p] &- 48 < 10 { p += 1 }
                guard p > digits else { return nil }
            }
            return JSONValue(kind: .number, bytes: UnsafeBufferPointer(start: base + start, count: p - start))
        }
    }
}

#if canImport(Glibc)
public import Glibc
#elseif canImport(Darwin)
public import Darwin
#endif
