/// castle's one strict JSON value, for the small documents read whole: ledger entry lines, reconcile's
/// mapping and rules files, snapshot manifests, table rows and residency policies (the order stream and
/// events have their own flat decoders, built for speed). Reading checks the RFC 8259 grammar, requires
/// valid UTF-8, refuses duplicate member names, and is bounded (``Limits``), so hostile input costs
/// little. Numbers are kept as written, so integers are read exactly and never through a Double. Writing
/// keeps members in the order given: the same value always gives the same bytes.
package enum JSON: Hashable, Sendable {
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

    package subscript(key: String) -> JSON? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.0 == key }?.1
    }

    package var string: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    package var int64: Int64? {
        if case .number(let text) = self { return Int64(text) }
        return nil
    }

    package var array: [JSON]? {
        if case .array(let values) = self { return values }
        return nil
    }

    // MARK: Writing

    /// The value as compact JSON.
    package var text: String {
        var out: [UInt8] = []
        write(into: &out, indent: nil, level: 0)
        return String(decoding: out, as: UTF8.self)
    }

    /// The value indented by two spaces, one member a line, for people (a snapshot's `manifest.json`).
    package var prettyText: String {
        var out: [UInt8] = []
        write(into: &out, indent: 2, level: 0)
        out.append(UInt8(ascii: "\n"))
        return String(decoding: out, as: UTF8.self)
    }

    private func write(into out: inout [UInt8], indent: Int?, level: Int) {
        func newline(_ level: Int) {
            guard let indent else { return }
            out.append(UInt8(ascii: "\n"))
            out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: indent * level))
        }
        switch self {
        case .string(let text): appendJSONString(text.utf8, to: &out)
        case .number(let text): out.append(contentsOf: text.utf8)
        case .bool(let value): out.append(contentsOf: (value ? "true" : "false").utf8)
        case .null: out.append(contentsOf: "null".utf8)
        case .array(let values):
            out.append(UInt8(ascii: "["))
            // Arrays of scalars stay on one line.
            let nested = values.contains {
                if case .object = $0 { true } else if case .array = $0 { true } else { false }
            }
            for (index, value) in values.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                if nested { newline(level + 1) } else if index > 0 && indent != nil { out.append(UInt8(ascii: " ")) }
                value.write(into: &out, indent: indent, level: level + 1)
            }
            if nested && !values.isEmpty { newline(level) }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (index, (key, value)) in members.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                newline(level + 1)
                appendJSONString(key.utf8, to: &out)
                out.append(UInt8(ascii: ":"))
                if indent != nil { out.append(UInt8(ascii: " ")) }
                value.write(into: &out, indent: indent, level: level + 1)
            }
            if !members.isEmpty { newline(level) }
            out.append(UInt8(ascii: "}"))
        }
    }

    // MARK: Reading

    package struct Limits: Sendable {
        package var bytes_max: Int
        /// How many objects and arrays a value may be inside of, itself included.
        package var depth_max: Int
        /// Members of an object or elements of an array.
        package var elements_max: Int

        package init(bytes_max: Int = 65_536, depth_max: Int = 4, elements_max: Int = 64) {
            self.bytes_max = bytes_max
            self.depth_max = depth_max
            self.elements_max = elements_max
        }
    }

    package struct SyntaxError: Error, Sendable, CustomStringConvertible {
        package enum Kind: Sendable {
            /// Longer than ``Limits/bytes_max``; `offset` is the text's length.
            case tooLong
            case notUTF8
            /// Against the grammar or the limits at `offset`.
            case grammar
        }

        package var kind: Kind
        /// Counted from 0.
        package var offset: Int
        package var reason: String

        package var description: String { "byte \(offset + 1): \(reason)" }
    }

    /// Parses `bytes` as exactly one JSON value, whitespace around it allowed.
    package static func parse(_ bytes: [UInt8], limits: Limits = Limits()) throws(SyntaxError) -> JSON {
        guard bytes.count <= limits.bytes_max else {
            throw SyntaxError(kind: .tooLong, offset: bytes.count, reason: "longer than \(limits.bytes_max) bytes")
        }
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw SyntaxError(kind: .notUTF8, offset: 0, reason: "not valid UTF-8")
        }
        var reader = Reader(bytes: bytes, limits: limits)
        reader.skipSpace()
        let value = try reader.value(depth: 1)
        reader.skipSpace()
        guard reader.position == bytes.count else { throw reader.error("text after the JSON value") }
        return value
    }

    /// The grammar, one value at a time from `position`. Public to the package for readers that walk a
    /// fixed layout themselves (a snapshot's table rows); they validate UTF-8 before they start.
    package struct Reader {
        package let bytes: [UInt8]
        package let limits: Limits
        package var position = 0

        package init(bytes: [UInt8], limits: Limits) {
            self.bytes = bytes
            self.limits = limits
        }

        package func error(_ reason: String) -> SyntaxError {
            SyntaxError(kind: .grammar, offset: position, reason: reason)
        }

        var current: UInt8? { position < bytes.count ? bytes[position] : nil }

        package mutating func skipSpace() {
            while let c = current, c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0A { position += 1 }
        }

        mutating func expect(_ byte: UInt8) throws(SyntaxError) {
            guard current == byte else { throw error("expected '\(Character(Unicode.Scalar(byte)))'") }
            position += 1
        }

        /// `depth` counts the containers (objects and arrays) this value is inside of, itself included.
        package mutating func value(depth: Int) throws(SyntaxError) -> JSON {
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
            case nil: throw error("the text ends where a value should be")
            default: throw error("not a JSON value")
            }
        }

        mutating func literal(_ word: StaticString) throws(SyntaxError) {
            let count = word.utf8CodeUnitCount
            guard position + count <= bytes.count,
                (0..<count).allSatisfy({ bytes[position + $0] == word.utf8Start[$0] })
            else { throw error("not a JSON value") }
            position += count
        }

        mutating func object(depth: Int) throws(SyntaxError) -> JSON {
            position += 1
            var members: [(String, JSON)] = []
            skipSpace()
            if current == UInt8(ascii: "}") {
                position += 1
                return .object(members)
            }
            while true {
                skipSpace()
                guard current == UInt8(ascii: "\"") else { throw error("expected a member name in double quotes") }
                let key = try string()
                if members.contains(where: { $0.0 == key }) {
                    throw error("the member \"\(key.prefix(64))\" appears twice")
                }
                skipSpace()
                try expect(UInt8(ascii: ":"))
                skipSpace()
                members.append((key, try value(depth: depth + 1)))
                guard members.count <= limits.elements_max else {
                    throw error("more than \(limits.elements_max) members")
                }
                skipSpace()
                if current == UInt8(ascii: ",") {
                    position += 1
                    continue
                }
                try expect(UInt8(ascii: "}"))
                return .object(members)
            }
        }

        mutating func array(depth: Int) throws(SyntaxError) -> JSON {
            position += 1
            var values: [JSON] = []
            skipSpace()
            if current == UInt8(ascii: "]") {
                position += 1
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
                    position += 1
                    continue
                }
                try expect(UInt8(ascii: "]"))
                return .array(values)
            }
        }

        /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, returned as written.
        mutating func number() throws(SyntaxError) -> String {
            let start = position
            if current == UInt8(ascii: "-") { position += 1 }
            guard let first = current, first &- 48 < 10 else { throw error("a number needs digits") }
            position += 1
            if first != UInt8(ascii: "0") { digits() }
            if current == UInt8(ascii: ".") {
                position += 1
                guard digits() > 0 else { throw error("a number needs digits after '.'") }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                position += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
                guard digits() > 0 else { throw error("a number needs digits in its exponent") }
            }
            return String(decoding: bytes[start..<position], as: UTF8.self)
        }

        @discardableResult
        mutating func digits() -> Int {
            let start = position
            while let c = current, c &- 48 < 10 { position += 1 }
            return position - start
        }

        /// A string starting at its opening quote; returns it unescaped and leaves `position` after it.
        package mutating func string() throws(SyntaxError) -> String {
            position += 1
            var out: [UInt8] = []
            while true {
                guard let c = current else { throw error("the text ends inside a string") }
                position += 1
                switch c {
                case UInt8(ascii: "\""): return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard let escape = current else { throw error("the text ends inside a string") }
                    position += 1
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
                            guard current == UInt8(ascii: "\\"), position + 1 < bytes.count,
                                bytes[position + 1] == UInt8(ascii: "u")
                            else { throw error("a lone surrogate in \\u escapes") }
                            position += 2
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

        mutating func hex4() throws(SyntaxError) -> UInt32 {
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
                position += 1
            }
            return value
        }
    }
}

/// Whether `byte` is escaped in a JSON string literal: `"`, `\` and control characters.
@inlinable
public func needsJSONEscape(_ byte: UInt8) -> Bool {
    byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20
}

/// Appends `bytes` (UTF-8) as a JSON string literal, quotes included: `"` and `\` escaped, control
/// characters as `\u00XX`, everything else as it is, the runs between escaped bytes appended whole.
/// castle's one string escape: events, dead letters, ledger entries, reconcile reports, snapshot rows and
/// manifests, server and stream messages all write strings this way.
@inlinable
public func appendJSONString(_ bytes: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
    out.append(UInt8(ascii: "\""))
    var start = 0
    for index in 0..<bytes.count {
        let byte = bytes[index]
        guard needsJSONEscape(byte) else { continue }
        if index > start { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index])) }
        start = index + 1
        if byte < 0x20 {
            let hex: StaticString = "0123456789abcdef"
            out.append(contentsOf: "\\u00".utf8)
            out.append(hex.utf8Start[Int(byte >> 4)])
            out.append(hex.utf8Start[Int(byte & 15)])
        } else {
            out.append(UInt8(ascii: "\\"))
            out.append(byte)
        }
    }
    if bytes.count > start { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<bytes.count])) }
    out.append(UInt8(ascii: "\""))
}

/// ``appendJSONString(_:to:)-(UnsafeBufferPointer<UInt8>,_)`` for any bytes.
@inlinable
public func appendJSONString(_ bytes: some Sequence<UInt8>, to out: inout [UInt8]) {
    let done: Void? = bytes.withContiguousStorageIfAvailable { appendJSONString($0, to: &out) }
    if done == nil { Array(bytes).withUnsafeBufferPointer { appendJSONString($0, to: &out) } }
}

/// `bytes` as a JSON string literal, quotes included (``appendJSONString(_:to:)``).
public func jsonStringLiteral(_ bytes: some Sequence<UInt8>) -> [UInt8] {
    var out: [UInt8] = []
    appendJSONString(bytes, to: &out)
    return out
}

/// `text` as a JSON string literal, quotes included (``appendJSONString(_:to:)``).
public func jsonStringLiteral(_ text: String) -> String {
    // Most strings (names, symbols, ids) need no escape: quoted as they are, with no round trip through bytes.
    let plain = !text.utf8.contains(where: needsJSONEscape)
    return plain ? "\"" + text + "\"" : String(decoding: jsonStringLiteral(text.utf8), as: UTF8.self)
}

/// Appends `text` as a JSON string literal (``appendJSONString(_:to:)``).
public func appendJSONString(_ text: String, to out: inout [UInt8]) {
    var text = text
    text.withUTF8 { appendJSONString($0, to: &out) }
}
