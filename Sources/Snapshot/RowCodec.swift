import CastleSupport
public import Storage
import Streams

#if canImport(Glibc)
import Glibc
#endif

/// The `ndjson` encoding of a table member: one JSON object a row, the columns by name in the manifest's
/// order; integers as numbers, text as strings, binary as base64 strings, NULL as null. Written the same
/// way whichever backend the rows came from, so equal tables give equal bytes (and equal SHA-256).
public enum RowCodec {
    /// Appends `row` as one line (with its newline).
    public static func encode(_ row: [RowValue], columns: [TableColumn], into out: inout [UInt8]) {
        RowEncoder(columns: columns).encode(row, into: &out)
    }

    /// ``encode(_:columns:into:)`` as first written, value by value through the shared string escape: the
    /// reference the fast encoder is tested against.
    static func encodeReference(_ row: [RowValue], columns: [TableColumn], into out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        for (index, value) in row.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            appendJSONString(columns[index].name, to: &out)
            out.append(UInt8(ascii: ":"))
            switch value {
            case .null: out.append(contentsOf: "null".utf8)
            case .integer(let number): out.append(contentsOf: String(number).utf8)
            case .text(let text): appendJSONString(text, to: &out)
            case .blob(let bytes):
                out.append(UInt8(ascii: "\""))
                Base64.encode(bytes, into: &out)
                out.append(UInt8(ascii: "\""))
            }
        }
        out.append(contentsOf: "}\n".utf8)
    }

    /// Decodes one line (without its newline) written by ``encode(_:columns:into:)``: exactly the given
    /// columns, in order, each value of its column's type. Returns the reason when it is not.
    public static func decode(_ line: ArraySlice<UInt8>, columns: [TableColumn]) -> Result<[RowValue], RowError> {
        let fast = line.withUnsafeBufferPointer { RowDecoder(columns: columns).decodeCanonical($0) }
        if let fast { return .success(fast) }
        return decodeStrict(line, columns: columns)
    }

    /// The strict reader's decoding, for every line, and the reason a line is refused.
    static func decodeStrict(_ line: ArraySlice<UInt8>, columns: [TableColumn]) -> Result<[RowValue], RowError> {
        // Values are scalars: a container is refused where it starts (depth 1 > 0).
        var parser = JSON.Reader(bytes: Array(line), limits: JSON.Limits(bytes_max: .max, depth_max: 0))
        func fail(_ reason: String) -> Result<[RowValue], RowError> {
            .failure(RowError(reason: "\(reason) at byte \(parser.position + 1)"))
        }
        guard String(validating: parser.bytes, as: UTF8.self) != nil else { return fail("not valid UTF-8") }
        var row: [RowValue] = []
        row.reserveCapacity(columns.count)
        let bytes = parser.bytes
        guard bytes.first == UInt8(ascii: "{") else { return fail("not a JSON object") }
        parser.position = 1
        for (index, column) in columns.enumerated() {
            if index > 0 {
                guard parser.position < bytes.count, bytes[parser.position] == UInt8(ascii: ",") else {
                    return fail("expected , before column \(column.name)")
                }
                parser.position += 1
            }
            guard parser.position < bytes.count, bytes[parser.position] == UInt8(ascii: "\"") else {
                return fail("expected column \(column.name)")
            }
            let name: String
            do throws(JSON.SyntaxError) { name = try parser.string() } catch { return fail(error.reason) }
            guard name == column.name else { return fail("column \"\(name)\" where \(column.name) belongs") }
            guard parser.position < bytes.count, bytes[parser.position] == UInt8(ascii: ":") else {
                return fail("expected : after \(column.name)")
            }
            parser.position += 1
            let value: JSON
            do throws(JSON.SyntaxError) { value = try parser.value(depth: 1) } catch { return fail(error.reason) }
            switch (value, column.type) {
            case (.null, _): row.append(.null)
            case (.number(let text), .integer):
                guard let number = Int64(text) else { return fail("\(column.name): \(text) is not a 64-bit integer") }
                row.append(.integer(number))
            case (.string(let text), .text): row.append(.text(text))
            case (.string(let text), .blob):
                guard let bytes = Base64.decode(text) else { return fail("\(column.name): not base64") }
                row.append(.blob(bytes))
            default: return fail("\(column.name): not a value of type \(column.type.rawValue)")
            }
        }
        guard parser.position == bytes.count - 1, bytes.last == UInt8(ascii: "}") else {
            return fail("expected } after the last column")
        }
        return .success(row)
    }
}

/// The encoder of one table's rows, its column keys escaped once: the bytes of
/// ``RowCodec/encodeReference(_:columns:into:)``, written in runs rather than byte by byte.
struct RowEncoder {
    /// `{"name":` for the first column, `,"name":` for the others.
    let keys: [[UInt8]]

    init(columns: [TableColumn]) {
        keys = columns.enumerated().map { index, column in
            var key: [UInt8] = [index == 0 ? UInt8(ascii: "{") : UInt8(ascii: ",")]
            appendJSONString(column.name, to: &key)
            key.append(UInt8(ascii: ":"))
            return key
        }
    }

    func encode(_ row: [RowValue], into out: inout [UInt8]) {
        if row.isEmpty { out.append(UInt8(ascii: "{")) }
        for (index, value) in row.enumerated() {
            out.append(contentsOf: keys[index])
            switch value {
            case .null: out.append(contentsOf: "null".utf8)
            case .integer(let number): Self.appendInteger(number, to: &out)
            case .text(let text): appendJSONString(text, to: &out)
            case .blob(let bytes):
                out.append(UInt8(ascii: "\""))
                Base64.encode(bytes, into: &out)
                out.append(UInt8(ascii: "\""))
            }
        }
        out.append(contentsOf: "}\n".utf8)
    }

    /// `String(number)`'s digits, without the String.
    static func appendInteger(_ number: Int64, to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { buffer in
            let base = buffer.baseAddress!
            var count = 0
            if number < 0 {
                base[0] = UInt8(ascii: "-")
                count = 1
            }
            count += writeUnsigned(number.magnitude, to: base + count)
            out.append(contentsOf: UnsafeBufferPointer(start: base, count: count))
        }
    }
}

/// The decoder of one table's lines as ``RowEncoder`` writes them: keys byte for byte, integers in
/// plain digits, strings whose escapes are the one-letter ones, null. It answers nil for anything else
/// (blobs, `\\u` escapes, whitespace, an error of any kind), and ``RowCodec/decodeStrict(_:columns:)``
/// then decides: what this accepts, the strict reader accepts with the same values.
struct RowDecoder {
    let columns: [TableColumn]
    let keys: [[UInt8]]

    init(columns: [TableColumn]) {
        self.columns = columns
        keys = RowEncoder(columns: columns).keys
    }

    func decodeCanonical(_ line: UnsafeBufferPointer<UInt8>) -> [RowValue]? {
        guard let base = line.baseAddress, !columns.isEmpty else { return nil }
        let count = line.count
        // The strict reader refuses invalid UTF-8 anywhere in the line first.
        if !Self.isASCII(line) {
            guard String(validating: line, as: UTF8.self) != nil else { return nil }
        }
        var row: [RowValue] = []
        row.reserveCapacity(columns.count)
        var position = 0
        for index in 0..<columns.count {
            let key = keys[index]
            guard count - position >= key.count,
                key.withUnsafeBytes({ memcmp(base + position, $0.baseAddress!, key.count) }) == 0
            else { return nil }
            position += key.count
            guard position < count else { return nil }
            let first = base[position]
            if first == UInt8(ascii: "n") {
                guard count - position >= 4, base[position + 1] == UInt8(ascii: "u"),
                    base[position + 2] == UInt8(ascii: "l"), base[position + 3] == UInt8(ascii: "l")
                else { return nil }
                position += 4
                row.append(.null)
                continue
            }
            switch columns[index].type {
            case .integer:
                var negative = false
                if first == UInt8(ascii: "-") {
                    negative = true
                    position += 1
                }
                let start = position
                var magnitude: Int64 = 0
                while position < count, base[position] &- 48 < 10 {
                    magnitude = magnitude &* 10 &+ Int64(base[position] &- 48)
                    position += 1
                }
                let digits = position - start
                // At most 18 digits cannot overflow; a leading zero before more digits is not JSON.
                guard digits >= 1, digits <= 18, base[start] != 48 || digits == 1 else { return nil }
                row.append(.integer(negative ? -magnitude : magnitude))
            case .text:
                guard first == UInt8(ascii: "\"") else { return nil }
                position += 1
                let start = position
                var escaped = false
                while position < count {
                    let byte = base[position]
                    if byte == UInt8(ascii: "\"") { break }
                    if byte < 0x20 { return nil }
                    if byte == UInt8(ascii: "\\") {
                        escaped = true
                        position += 2
                        continue
                    }
                    position += 1
                }
                guard position < count else { return nil }
                let content = UnsafeBufferPointer(start: base + start, count: position - start)
                position += 1
                if !escaped {
                    row.append(.text(String(decoding: content, as: UTF8.self)))
                    continue
                }
                // Unescaped straight into the string's own storage: never longer than the escaped form.
                var valid = true
                let text = String(unsafeUninitializedCapacity: content.count) { out in
                    var written = 0
                    var at = 0
                    while at < content.count {
                        let byte = content[at]
                        at += 1
                        guard byte == UInt8(ascii: "\\") else {
                            out[written] = byte
                            written += 1
                            continue
                        }
                        guard at < content.count else {
                            valid = false
                            return 0
                        }
                        let escape = content[at]
                        at += 1
                        switch escape {
                        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out[written] = escape
                        case UInt8(ascii: "b"): out[written] = 0x08
                        case UInt8(ascii: "f"): out[written] = 0x0C
                        case UInt8(ascii: "n"): out[written] = 0x0A
                        case UInt8(ascii: "r"): out[written] = 0x0D
                        case UInt8(ascii: "t"): out[written] = 0x09
                        default:
                            valid = false
                            return 0
                        }
                        written += 1
                    }
                    return written
                }
                guard valid else { return nil }
                row.append(.text(text))
            case .blob:
                return nil
            }
        }
        guard position == count - 1, base[position] == UInt8(ascii: "}") else { return nil }
        return row
    }

    private static func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        var index = 0
        let raw = UnsafeRawPointer(base)
        while index + 8 <= bytes.count {
            if raw.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { return false }
            index += 8
        }
        while index < bytes.count {
            if base[index] >= 0x80 { return false }
            index += 1
        }
        return true
    }
}

public struct RowError: Error, Sendable {
    public var reason: String
}

/// Standard base64 with padding (RFC 4648), strict on decode.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xff, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    static func encode(_ bytes: [UInt8], into out: inout [UInt8]) {
        var index = 0
        while index + 3 <= bytes.count {
            let chunk = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            out.append(alphabet[Int(chunk >> 18 & 63)])
            out.append(alphabet[Int(chunk >> 12 & 63)])
            out.append(alphabet[Int(chunk >> 6 & 63)])
            out.append(alphabet[Int(chunk & 63)])
            index += 3
        }
        let rest = bytes.count - index
        if rest == 1 {
            let chunk = UInt32(bytes[index]) << 16
            out.append(alphabet[Int(chunk >> 18 & 63)])
            out.append(alphabet[Int(chunk >> 12 & 63)])
            out.append(contentsOf: "==".utf8)
        } else if rest == 2 {
            let chunk = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
            out.append(alphabet[Int(chunk >> 18 & 63)])
            out.append(alphabet[Int(chunk >> 12 & 63)])
            out.append(alphabet[Int(chunk >> 6 & 63)])
            out.append(UInt8(ascii: "="))
        }
    }

    static func decode(_ text: String) -> [UInt8]? {
        let input = Array(text.utf8)
        guard input.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(input.count / 4 * 3)
        var index = 0
        while index < input.count {
            let last = index + 4 == input.count
            let padding =
                last ? (input[index + 3] == UInt8(ascii: "=") ? (input[index + 2] == UInt8(ascii: "=") ? 2 : 1) : 0) : 0
            var chunk: UInt32 = 0
            for offset in 0..<4 {
                let byte = input[index + offset]
                if offset >= 4 - padding {
                    chunk <<= 6
                    continue
                }
                let value = values[Int(byte)]
                guard value != 0xff else { return nil }
                chunk = chunk << 6 | UInt32(value)
            }
            out.append(UInt8(chunk >> 16 & 0xff))
            if padding < 2 { out.append(UInt8(chunk >> 8 & 0xff)) }
            if padding < 1 { out.append(UInt8(chunk & 0xff)) }
            index += 4
        }
        // Canonical only: the bits padding drops must be zero, so one value has one encoding.
        var check: [UInt8] = []
        encode(out, into: &check)
        return check == input ? out : nil
    }
}
