internal import CastleSupport
internal import TOMLKit

/// A small configuration object (mapping and rules files), from JSON or TOML. Both formats become the
/// same value, the strict JSON reader's, and one validation reads it: unknown members are refused, so a
/// typo is not silently ignored, and a wrong type names its key, whichever format the file is in.
struct ConfigObject {
    let members: [(String, JSON)]
    let fileName: String

    /// The file's format: `.toml` or `.json` by its name, else by its content (a JSON configuration
    /// starts with `{`, which no TOML document can).
    enum Format {
        case json, toml

        init(_ bytes: [UInt8], fileName: String) {
            if fileName.hasSuffix(".toml") {
                self = .toml
            } else if fileName.hasSuffix(".json") {
                self = .json
            } else {
                let first = bytes.first { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D && $0 != 0x0A }
                self = first == UInt8(ascii: "{") ? .json : .toml
            }
        }
    }

    static let bytes_max = 1 << 20

    init(_ bytes: [UInt8], fileName: String) throws(CastleError) {
        self.fileName = fileName
        switch Format(bytes, fileName: fileName) {
        case .json:
            let value: JSON
            do throws(JSON.SyntaxError) {
                value = try JSON.parse(
                    bytes,
                    limits: JSON.Limits(bytes_max: Self.bytes_max, depth_max: 4, elements_max: 256)
                )
            } catch {
                throw CastleError(.dataError, "\(fileName): \(error)")
            }
            guard case .object(let members) = value else {
                throw CastleError(.dataError, "\(fileName): not a JSON object")
            }
            self.members = members
        case .toml:
            members = try Self.tomlDocument(bytes, fileName: fileName)
        }
    }

    init(members: [(String, JSON)], fileName: String) {
        self.members = members
        self.fileName = fileName
    }

    /// A TOML document (TOML 1.0, read by TOMLKit's toml++) as the members of one object: tables become
    /// objects (their keys in name order), arrays arrays, strings strings, integers numbers as written in
    /// decimal, booleans booleans. A float becomes a number without its text: TOMLKit gives only its
    /// `Double`, which castle never reads, and every key that takes a number takes an integer, so the
    /// validation refuses it, naming the key, as it refuses a JSON `0.01` where a decimal string belongs.
    /// Dates and times, which no key takes, are refused here.
    static func tomlDocument(_ bytes: [UInt8], fileName: String) throws(CastleError) -> [(String, JSON)] {
        guard bytes.count <= bytes_max else {
            throw CastleError(.dataError, "\(fileName): longer than \(bytes_max) bytes")
        }
        // toml++ reads a C string: a NUL byte would end the document early.
        guard let text = String(validating: bytes, as: UTF8.self), !bytes.contains(0) else {
            throw CastleError(.dataError, "\(fileName): not UTF-8 text")
        }
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            let at = error.source.begin
            throw CastleError(.dataError, "\(fileName):\(at.line):\(at.column): \(error.description)")
        } catch {
            throw CastleError(.dataError, "\(fileName): not a TOML document (\(error))")
        }
        return try members(of: table, path: [], fileName: fileName)
    }

    private static func members(
        of table: TOMLTable,
        path: [String],
        fileName: String
    ) throws(CastleError) -> [(String, JSON)] {
        var members: [(String, JSON)] = []
        for (key, value) in table {
            members.append((key, try json(value.tomlValue, path: path + [key], fileName: fileName)))
        }
        return members
    }

    private static func json(_ value: TOMLValue, path: [String], fileName: String) throws(CastleError) -> JSON {
        switch value.type {
        case .string: return .string(value.string!)
        case .int: return .number(String(value.int!))
        case .bool: return .bool(value.bool!)
        case .double: return .number("")
        case .array:
            var values: [JSON] = []
            for (index, element) in value.array!.enumerated() {
                values.append(try json(element.tomlValue, path: path + ["\(index + 1)"], fileName: fileName))
            }
            return .array(values)
        case .table: return .object(try members(of: value.table!, path: path, fileName: fileName))
        case .date, .time, .dateTime:
            throw CastleError(
                .dataError,
                "\(fileName): \(path.joined(separator: ".")) is a TOML date or time, which no key takes"
            )
        }
    }

    func fail(_ reason: String) -> CastleError { CastleError(.dataError, "\(fileName): \(reason)") }

    func allowOnly(_ names: Set<String>) throws(CastleError) {
        if let unknown = members.first(where: { !names.contains($0.0) }) {
            throw fail("unknown member \"\(unknown.0)\" (known: \(names.sorted().joined(separator: ", ")))")
        }
    }

    subscript(_ name: String) -> JSON? { members.first { $0.0 == name }?.1 }

    func string(_ name: String) throws(CastleError) -> String? {
        guard let value = self[name] else { return nil }
        guard case .string(let text) = value else { throw fail("\(name) is \(value.typeName), not a string") }
        return text
    }

    /// A decimal, which is written as a string (`"0.01"`): read exactly from its text, never through a
    /// binary float. A number (JSON `0.01`, TOML `0.01`) is refused with how to write it.
    func decimal(_ name: String) throws(CastleError) -> String? {
        if case .number = self[name] {
            throw fail(
                "\(name) is a number: write the decimal as a string (\"0.01\", not 0.01), so that it is read exactly, never as a binary float"
            )
        }
        return try string(name)
    }

    func strings(_ name: String) throws(CastleError) -> [String]? {
        guard let value = self[name] else { return nil }
        guard case .array(let values) = value else { throw fail("\(name) is \(value.typeName), not an array") }
        var result: [String] = []
        for element in values {
            guard case .string(let text) = element else { throw fail("\(name) holds \(element.typeName)") }
            result.append(text)
        }
        return result
    }

    func integer(_ name: String) throws(CastleError) -> Int? {
        guard let value = self[name] else { return nil }
        guard case .number(let text) = value, let number = Int(text) else { throw fail("\(name) is not an integer") }
        return number
    }
}
