import CastleSupport
public import Storage

/// The `ndjson` encoding of a table member: one JSON object a row, the columns by name in the manifest's
/// order; integers as numbers, text as strings, binary as base64 strings, NULL as null. Written the same
/// way whichever backend the rows came from, so equal tables give equal bytes (and equal SHA-256).
public enum RowCodec {
    /// Appends `row` as one line (with its newline).
    public static func encode(_ row: [RowValue], columns: [TableColumn], into out: inout [UInt8]) {
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
