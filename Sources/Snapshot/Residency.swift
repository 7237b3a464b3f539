public import CastleSupport
import Crypto
import Storage
import Streams

/// A residency policy (`--residency FILE`, docs/snapshots.md): what happens to the personal fields of the
/// schema (``PersonalField/accounts``) on their way into a snapshot.
///
/// ```json
/// {"policy": "eu-pseudonymised", "accounts": "pseudonymise", "key_env": "CASTLE_RESIDENCY_KEY"}
/// ```
///
/// `accounts` is `pseudonymise` (each account id becomes the hex HMAC-SHA-256 of it under the key: the
/// same id gives the same pseudonym in every table, so the restored region matches and settles as the
/// source did), `drop` (the id is removed: orders without an account) or `keep`. The key is `key` in
/// the file or, better, the environment variable `key_env` names; at least 16 bytes.
public struct ResidencyPolicy: Sendable {
    public enum Action: String, Sendable {
        case keep
        case drop
        case pseudonymise
    }

    public var name: String
    public var accounts: Action
    /// The HMAC key's bytes (SymmetricKey is not Sendable; one is made per use).
    let key: [UInt8]?

    public init(name: String, accounts: Action, key: [UInt8]?) {
        self.name = name
        self.accounts = accounts
        self.key = key
    }

    /// Reads a policy file; errors name the file (65 for a bad policy, 66 when it cannot be read).
    public init(file path: String, environment: [String: String]) throws(CastleError) {
        let bytes = try readSmallFile(path, limit: 1 << 16)
        let json: JSON
        do throws(JSON.SyntaxError) {
            json = try JSON.parse(bytes, limits: .snapshotDocument)
        } catch {
            throw CastleError(.dataError, "\(path): \(error)")
        }
        guard case .object(let members) = json else { throw CastleError(.dataError, "\(path): not a JSON object") }
        for (key, _) in members where !["policy", "accounts", "key", "key_env"].contains(key) {
            throw CastleError(.dataError, "\(path): unknown field \"\(key)\" (known: policy, accounts, key, key_env)")
        }
        guard let name = json["policy"]?.string, !name.isEmpty else {
            throw CastleError(.dataError, "\(path): \"policy\" (the policy's name) is missing")
        }
        guard let actionText = json["accounts"]?.string, let action = Action(rawValue: actionText) else {
            throw CastleError(.dataError, "\(path): \"accounts\" must be \"pseudonymise\", \"drop\" or \"keep\"")
        }
        var key: [UInt8]?
        if let variable = json["key_env"]?.string {
            guard let value = environment[variable], !value.isEmpty else {
                throw CastleError(.usage, "\(path): the key's environment variable \(variable) is not set")
            }
            key = Array(value.utf8)
        } else if let value = json["key"]?.string {
            key = Array(value.utf8)
        }
        if action == .pseudonymise {
            guard let key, key.count >= 16 else {
                throw CastleError(
                    .dataError,
                    "\(path): pseudonymising needs a key of at least 16 bytes (key or key_env)"
                )
            }
        }
        self.init(name: name, accounts: action, key: key)
    }

    /// What the manifest records.
    var record: SnapshotManifest.Residency {
        let names = PersonalField.accounts.flatMap(\.names)
        return SnapshotManifest.Residency(
            policy: name,
            dropped: accounts == .drop ? names : [],
            pseudonymised: accounts == .pseudonymise ? names : []
        )
    }

    /// The pseudonym of an account id: 64 lowercase hex digits of HMAC-SHA-256 (castle's account ids are
    /// at most 64 bytes, so a pseudonym is a valid id).
    func pseudonym(_ account: String) -> String {
        guard let key else { return account }
        let digest = HMAC<SHA256>.authenticationCode(for: Array(account.utf8), using: SymmetricKey(data: key))
        return hexString(Array(digest))
    }

    /// The rewriter for `table`, nil when the policy leaves it alone.
    func rewriter(for table: TableInfo) -> ((inout [RowValue]) -> Void)? {
        guard accounts != .keep else { return nil }
        let fields = PersonalField.accounts.filter { $0.table == table.name }
        var steps: [(Int, [String]?)] = []
        for field in fields {
            guard let index = table.columns.firstIndex(where: { $0.name == field.column }) else { continue }
            steps.append((index, field.members))
        }
        guard !steps.isEmpty else { return nil }
        return { row in
            for (index, members) in steps {
                guard case .text(let text) = row[index] else {
                    if case .blob(let bytes) = row[index], let members {
                        row[index] = .blob(self.rewriteLines(bytes, members: members))
                    }
                    continue
                }
                if let members {
                    row[index] = .text(
                        String(decoding: self.rewriteLines(Array(text.utf8), members: members), as: UTF8.self)
                    )
                } else if !text.isEmpty {
                    // An empty account is "no account": nothing personal in it.
                    row[index] = .text(self.accounts == .drop ? "" : self.pseudonym(text))
                }
            }
        }
    }

    /// Rewrites the named members of each JSON line in `bytes`; lines without them are kept byte for byte.
    func rewriteLines(_ bytes: [UInt8], members: [String]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
            let line = Array(bytes[start..<end])
            out.append(contentsOf: rewriteLine(line, members: members))
            if end < bytes.count { out.append(UInt8(ascii: "\n")) }
            start = end + 1
        }
        return out
    }

    private func rewriteLine(_ line: [UInt8], members: [String]) -> [UInt8] {
        // Cheap test first: most event lines name no account.
        guard members.contains(where: { line.contains(subsequence: Array("\"\($0)\"".utf8)) }),
            case .object(let fields)? = try? JSON.parse(line, limits: .snapshotDocument)
        else { return line }
        var rewritten: [(String, JSON)] = []
        for (key, value) in fields {
            guard members.contains(key), case .string(let account) = value else {
                rewritten.append((key, value))
                continue
            }
            switch accounts {
            case .keep: rewritten.append((key, value))
            case .drop: continue
            case .pseudonymise: rewritten.append((key, .string(pseudonym(account))))
            }
        }
        return Array(JSON.object(rewritten).text.utf8)
    }
}

extension Array where Element == UInt8 {
    func contains(subsequence needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return needle.isEmpty }
        var index = 0
        while index + needle.count <= count {
            if self[index] == needle[0] && self[index..<index + needle.count].elementsEqual(needle) { return true }
            index += 1
        }
        return false
    }
}

func hexString(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 15)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// The bytes of a small file (a policy), refusing one larger than `limit`.
func readSmallFile(_ path: String, limit: Int) throws(CastleError) -> [UInt8] {
    let input = try InputSource(path: path)
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 14)
    while true {
        let n = try chunk.withUnsafeMutableBytes { raw in
            Result { () throws(CastleError) -> Int in try input.readBytes(into: raw.baseAddress!, count: raw.count) }
        }.get()
        if n == 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
        if bytes.count > limit { throw CastleError(.dataError, "\(path): larger than \(limit) bytes") }
    }
    return bytes
}
