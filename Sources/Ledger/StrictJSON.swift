/// A small strict JSON reader for one NDJSON line of the ledger's nested shape (an object holding an
/// array of objects). The whole line is checked against the JSON grammar (RFC 8259) and must be valid
/// UTF-8; duplicate keys in an object are refused. Bounded: the line length, the nesting depth and the
/// number of elements of any array or object are limited, so hostile input costs little.
package enum JSON: Hashable {
    case string(String)
    /// A number as written, checked against the grammar; the caller reads it as the integer it needs.
    case number(String)
    case bool(Bool)
    case null
    case array([JSON])
    /// Members in the order written.
    case object([(String, JSON)])

    package static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case (.string(let x), .string(let y)), (.number(let x), .number(let y)): x == y
        case (.bool(let x), .bool(let y)): x == y
        case (.null, .null): true
        case (.array(let x), .array(let y)): x == y
        case (.object(let x), .object(let y)): x.map(\.0) == y.map(\.0) && x.map(\.1) == y.map(\.1)
        default: false
        }
    }

    package func hash(into hasher: inout Hasher) {
        switch self {
        case .string(let text), .number(let text): hasher.combine(text)
        case .bool(let value): hasher.combine(value)
        case .null: hasher.combine(0)
        case .array(let values): hasher.combine(values)
        case .object(let members):
            for (key, value) in members {
                hasher.combine(key)
                hasher.combine(value)
            }
        }
    }

    /// The name of the value's type, for messages.
    package var typeName: String {
        switch self {
        case .string: "a string"
        case .number: "a number"
        case .bool: "a boolean"
        case .null: "null"
        case .array: "an array"
        case .object: "an object"
        }
    }

    package struct Limits {
        package var lineBytes_max = 65_536
        package var depth_max = 4
        package var elements_max = 64

        package init(lineBytes_max: Int = 65_536, depth_max: Int = 4, elements_max: Int = 64) {
            self.lineBytes_max = lineBytes_max
            self.depth_max = depth_max
            self.elements_max = elements_max
        }
    }

    /// Parses `bytes` as exactly one JSON value, whitespace around it allowed.
    package static func parse(_ bytes: [UInt8], limits: Limits = Limits()) throws(LedgerInputError) -> JSON {
        guard bytes.count <= limits.lineBytes_max else {
            throw LedgerInputError("the line is \(bytes.count) bytes, longer than \(limits.lineBytes_max)")
        }
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw LedgerInputError("the line is not valid UTF-8")
        }
        var reader = Reader(bytes: bytes, limits: limits)
        reader.skipSpace()
        let value = try reader.value(depth: 1)
        reader.skipSpace()
        guard reader.p == bytes.count else { throw reader.error("text after the JSON value") }
        return value
    }

    private struct Reader {
        let bytes: [UInt8]
        let limits: Limits
        var p = 0

        init(bytes: [UInt8], limits: Limits) {
            self.bytes = bytes
            self.limits = limits
        }

        func error(_ what: String) -> LedgerInputError { LedgerInputError("malformed JSON at byte \(p + 1): \(what)") }

        var current: UInt8? { p < bytes.count ? bytes[p] : nil }

        mutating func skipSpace() {
            while let c = current, c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0A { p += 1 }
        }

        mutating func expect(_ byte: UInt8) throws(LedgerInputError) {
            guard current == byte else { throw error("expected '\(Character(Unicode.Scalar(byte)))'") }
            p += 1
        }

        /// `depth` counts the containers (objects and arrays) this value is inside of, itself included.
        mutating func value(depth: Int) throws(LedgerInputError) -> JSON {
            switch current {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                guard depth <= limits.depth_max else {
                    throw error("objects and arrays nested deeper than \(limits.depth_max)")
                }
                return current == UInt8(ascii: "{") ? try object(depth: depth) : try array(depth: depth)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"):
                try literal("true")
                return .bool(true)
            case UInt8(ascii: "f"):
                try literal("false")
                return .bool(false)
            case UInt8(ascii: "n"):
                try literal("null")
                return .null
            case let c? where c == UInt8(ascii: "-") || c &- 48 < 10: return .number(try number())
            case nil: throw error("the line ends where a value should be")
            default: throw error("not a JSON value")
            }
        }

        mutating func literal(_ word: StaticString) throws(LedgerInputError) {
            let count = word.utf8CodeUnitCount
            guard p + count <= bytes.count,
                (0..<count).allSatisfy({ bytes[p + $0] == word.utf8Start[$0] })
            else { throw error("not a JSON value") }
            p += count
        }

        mutating func object(depth: Int) throws(LedgerInputError) -> JSON {
            p += 1
            var members: [(String, JSON)] = []
            skipSpace()
            if current == UInt8(ascii: "}") {
                p += 1
                return .object(members)
            }
            while true {
                skipSpace()
                guard current == UInt8(ascii: "\"") else { throw error("expected a member name in double quotes") }
                let key = try string()
                if members.contains(where: { $0.0 == key }) { throw error("the member \(quoted(key)) appears twice") }
                skipSpace()
                try expect(UInt8(ascii: ":"))
                skipSpace()
                members.append((key, try value(depth: depth + 1)))
                guard members.count <= limits.elements_max else {
                    throw error("more than \(limits.elements_max) members")
                }
                skipSpace()
                if current == UInt8(ascii: ",") {
                    p += 1
                    continue
                }
                try expect(UInt8(ascii: "}"))
                return .object(members)
            }
        }

        mutating func array(depth: Int) throws(LedgerInputError) -> JSON {
            p += 1
            var values: [JSON] = []
            skipSpace()
            if current == UInt8(ascii: "]") {
                p += 1
                return .array(values)
            }
            while true {
                skipSpace()
                values.append(try value(depth: depth + 1))
                guard values.count <= limits.elements_max else {
                    throw error("more than \(limits.elements_max) elements")
                }
                skipSpace()
                if current == UInt8(ascii: ",") {
                    p += 1
                    continue
                }
                try expect(UInt8(ascii: "]"))
                return .array(values)
            }
        }

        /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, returned as written.
        mutating func number() throws(LedgerInputError) -> String {
            let start = p
            if current == UInt8(ascii: "-") { p += 1 }
            guard let first = current, first &- 48 < 10 else { throw error("a number needs digits") }
            p += 1
            if first != UInt8(ascii: "0") { digits() }
            if current == UInt8(ascii: ".") {
                p += 1
                guard digits() > 0 else { throw error("a number needs digits after '.'") }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                p += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { p += 1 }
                guard digits() > 0 else { throw error("a number needs digits in its exponent") }
            }
            return String(decoding: bytes[start..<p], as: UTF8.self)
        }

        @discardableResult
        mutating func digits() -> Int {
            let start = p
            while let c = current, c &- 48 < 10 { p += 1 }
            return p - start
        }

        mutating func string() throws(LedgerInputError) -> String {
            p += 1
            var out: [UInt8] = []
            while true {
                guard let c = current else { throw error("the line ends inside a string") }
                p += 1
                switch c {
                case UInt8(ascii: "\""): return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard let escape = current else { throw error("the line ends inside a string") }
                    p += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800..<0xDC00).contains(scalar) {
                            guard current == UInt8(ascii: "\\"), p + 1 < bytes.count, bytes[p + 1] == UInt8(ascii: "u")
                            else { throw error("a lone surrogate in \\u escapes") }
                            p += 2
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else {
                                throw error("a lone surrogate in \\u escapes")
                            }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let unicode = Unicode.Scalar(scalar) else {
                            throw error("a lone surrogate in \\u escapes")
                        }
                        out.append(contentsOf: UTF8.encode(unicode)!)
                    default: throw error("an unknown escape in a string")
                    }
                case 0x00..<0x20: throw error("a control character in a string")
                default: out.append(c)
                }
            }
        }

        mutating func hex4() throws(LedgerInputError) -> UInt32 {
            var value: UInt32 = 0
            for _ in 0..<4 {
                guard let c = current else { throw error("\\u needs four hex digits") }
                let digit: UInt32
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(c - 48)
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(c - UInt8(ascii: "A") + 10)
                default: throw error("\\u needs four hex digits")
                }
                value = value << 4 | digit
                p += 1
            }
            return value
        }
    }
}

/// Appends `text` as a JSON string: `"` and `\` escaped, control characters as `\n`, `\t`, `\r`, `\b`, `\f`
/// or `\u00XX`, everything else as its UTF-8.
func appendJSONString(_ text: String, to out: inout [UInt8]) {
    out.append(UInt8(ascii: "\""))
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), byte])
        case 0x0A: out.append(contentsOf: Array(#"\n"#.utf8))
        case 0x0D: out.append(contentsOf: Array(#"\r"#.utf8))
        case 0x09: out.append(contentsOf: Array(#"\t"#.utf8))
        case 0x08: out.append(contentsOf: Array(#"\b"#.utf8))
        case 0x0C: out.append(contentsOf: Array(#"\f"#.utf8))
        case 0x00..<0x20:
            let hex = Array("0123456789abcdef".utf8)
            out.append(contentsOf: Array(#"\u00"#.utf8))
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 0xF)])
        default: out.append(byte)
        }
    }
    out.append(UInt8(ascii: "\""))
}
