public import CastleSupport
import Crypto
import Storage
import Streams

/// A residency policy (`--residency FILE`, docs/snapshots.md): what happens to the personal fields of the
/// schema (``PersonalField/accounts``) on their way into a snapshot.
///
/// ```json
/// {"policy": "eu-pseudonymised", "accounts": "pseudonymise", "key_env": "CASTLE_RESIDENCY_KEY",
///  "exchange_owners": ["house"]}
/// ```
///
/// `accounts` is `pseudonymise` (each account id becomes the hex HMAC-SHA-256 of it under the key: the
/// same id gives the same pseudonym in every table, the owners of the users' ledger accounts included,
/// so the restored region matches and settles as the source did), `drop` (the id is removed: orders
/// without an account; refused for a store with a ledger) or `keep`. The key is `key` in the file or,
/// better, the environment variable `key_env` names; at least 16 bytes. `exchange_owners` lists account
/// ids that are the exchange's own (its house account): kept in clear everywhere.
public struct ResidencyPolicy: Sendable {
    public enum Action: String, Sendable {
        case keep
        case drop
        case pseudonymise
    }

    public var name: String
    public var accounts: Action
    /// Account ids that are the exchange's own, not a person's (the house owner `castle ledger settle
    /// --unowned-account` books orders without an account to): kept as they are in every table.
    public var exchangeOwners: Set<String>
    /// The HMAC key's bytes (SymmetricKey is not Sendable; one is made per use).
    let key: [UInt8]?

    public init(name: String, accounts: Action, key: [UInt8]?, exchangeOwners: Set<String> = []) {
        self.name = name
        self.accounts = accounts
        self.key = key
        self.exchangeOwners = exchangeOwners
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
        for (key, _) in members where !["policy", "accounts", "key", "key_env", "exchange_owners"].contains(key) {
            throw CastleError(
                .dataError,
                "\(path): unknown field \"\(key)\" (known: policy, accounts, key, key_env, exchange_owners)"
            )
        }
        var exchangeOwners: Set<String> = []
        if let value = json["exchange_owners"] {
            guard let owners = value.array else {
                throw CastleError(.dataError, "\(path): \"exchange_owners\" must be an array of account ids")
            }
            for owner in owners {
                guard let text = owner.string, !text.isEmpty else {
                    throw CastleError(.dataError, "\(path): \"exchange_owners\" holds \(owner.text), not an account id")
                }
                exchangeOwners.insert(text)
            }
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
        self.init(name: name, accounts: action, key: key, exchangeOwners: exchangeOwners)
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
    /// at most 64 bytes, so a pseudonym is a valid id, and a valid ledger owner).
    func pseudonym(_ account: String) -> String {
        guard let key else { return account }
        let digest = HMAC<SHA256>.authenticationCode(for: Array(account.utf8), using: SymmetricKey(data: key))
        return hexString(Array(digest))
    }

    /// What an account id becomes: the exchange's own owners stay as they are; under `drop` it is removed
    /// (empty), under `pseudonymise` hashed, under `keep` kept.
    func replacement(_ account: String) -> String {
        if exchangeOwners.contains(account) { return account }
        switch accounts {
        case .keep: return account
        case .drop: return ""
        case .pseudonymise: return pseudonym(account)
        }
    }

    /// A ledger account name with its owner replaced when it is a user's (``PersonalField/userOwner(ofLedgerAccount:)``).
    func ledgerAccount(_ name: Substring) -> String {
        guard let owner = PersonalField.userOwner(ofLedgerAccount: name) else { return String(name) }
        return String(name[..<owner.startIndex]) + replacement(String(owner))
    }

    /// The rewriter for `table`, nil when the policy leaves it alone. It throws (65) for a ledger row under
    /// `drop`: a ledger cannot lose its accounts' owners and still balance and settle.
    func rewriter(for table: TableInfo) -> ((inout [RowValue]) throws(CastleError) -> Void)? {
        guard accounts != .keep else { return nil }
        var steps: [(Int, PersonalField.Shape)] = []
        for field in PersonalField.accounts where field.table == table.name {
            guard let index = table.columns.firstIndex(where: { $0.name == field.column }) else { continue }
            steps.append((index, field.shape))
        }
        guard !steps.isEmpty else { return nil }
        let entryColumns = LedgerEntryColumns(table)
        return { (row) throws(CastleError) in
            for (index, shape) in steps {
                switch (shape, row[index]) {
                case (.account, .text(let text)) where !text.isEmpty:
                    // An empty account is "no account": nothing personal in it.
                    row[index] = .text(self.replacement(text))
                case (.ndjson(let members), .text(let text)):
                    row[index] = .text(
                        String(decoding: self.rewriteLines(Array(text.utf8), members: members), as: UTF8.self)
                    )
                case (.ndjson(let members), .blob(let bytes)):
                    row[index] = .blob(self.rewriteLines(bytes, members: members))
                case (.ledgerAccount, .text(let name)):
                    try self.refuseDroppingTheLedger(table)
                    row[index] = .text(self.ledgerAccount(name[...]))
                case (.ledgerPostings, .text(let text)):
                    try self.refuseDroppingTheLedger(table)
                    try entryColumns.rewritePostings(text, at: index, in: &row, policy: self)
                case (.settlementBlock, .blob(let body)):
                    try self.refuseDroppingTheLedger(table)
                    try self.rewriteBlock(body, at: index, in: &row, table: table)
                default:
                    continue
                }
            }
        }
    }

    /// Replaces a settlement block's body with its accounts rewritten, and its content hash with the new
    /// body's; a block that names no user's account is left byte for byte.
    private func rewriteBlock(
        _ body: [UInt8],
        at index: Int,
        in row: inout [RowValue],
        table: TableInfo
    ) throws(CastleError) {
        guard let block = SettlementBlock.decode(body) else {
            let first = table.columns.firstIndex { $0.name == "first_seq" }.map { row[$0] }
            let number = if case .integer(let n)? = first { String(n) } else { "?" }
            throw CastleError(
                .dataError,
                "\(table.name) first_seq \(number): a body that cannot be read, so its accounts cannot be rewritten"
            )
        }
        let rewritten = block.renamingAccounts { self.ledgerAccount($0[...]) }
        guard rewritten != block else { return }
        let newBody = rewritten.encoded()
        row[index] = .blob(newBody)
        if let hash = table.columns.firstIndex(where: { $0.name == "content_hash" }) {
            row[hash] = .blob(SettlementBlock.contentHash(newBody))
        }
    }

    /// A ledger whose users' accounts lose their owners no longer balances per owner, and a restored
    /// region could not settle its trades: `drop` is refused for a store with a ledger.
    private func refuseDroppingTheLedger(_ table: TableInfo) throws(CastleError) {
        guard accounts == .drop else { return }
        throw CastleError(
            .dataError,
            "residency policy \(name): \"accounts\": \"drop\" cannot apply to the ledger (\(table.name) has rows): "
                + "a ledger without its accounts' owners does not balance or settle; use \"pseudonymise\""
        )
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
            if accounts == .drop && !exchangeOwners.contains(account) { continue }
            rewritten.append((key, .string(replacement(account))))
        }
        return Array(JSON.object(rewritten).text.utf8)
    }
}

/// The columns of `ledger_entries` a rewrite of its postings needs: the entry's fields, so that its
/// content hash can be computed again over the rewritten postings (a key posted again in the restored
/// region is then "already posted", as in the source).
struct LedgerEntryColumns: Sendable {
    let seq, key, kind, ts, ref, reverses, memo, hash: Int?

    init(_ table: TableInfo) {
        func index(_ name: String) -> Int? { table.columns.firstIndex { $0.name == name } }
        seq = index("seq")
        key = index("key")
        kind = index("kind")
        ts = index("ts")
        ref = index("ref")
        reverses = index("reverses")
        memo = index("memo")
        hash = index("content_hash")
    }

    /// Replaces the postings text at `index` with its accounts rewritten, and the content hash with the
    /// rewritten entry's; a row that names no user's account is left byte for byte.
    func rewritePostings(
        _ text: String,
        at index: Int,
        in row: inout [RowValue],
        policy: ResidencyPolicy
    ) throws(CastleError) {
        let original = row
        func value(_ column: Int?) -> RowValue { column.map { original[$0] } ?? .null }
        guard var postings = LedgerPostingsText.decode(text) else {
            let number = if case .integer(let n) = value(seq) { String(n) } else { "?" }
            throw CastleError(
                .dataError,
                "ledger_entries seq \(number): postings that cannot be read, so their accounts cannot be rewritten"
            )
        }
        var changed = false
        for (position, posting) in postings.enumerated() {
            let account = policy.ledgerAccount(posting.account[...])
            if account != posting.account {
                postings[position].account = account
                changed = true
            }
        }
        guard changed else { return }
        row[index] = .text(LedgerPostingsText.encode(postings))
        guard let hash else { return }
        func string(_ column: Int?) -> String? { if case .text(let s) = value(column) { s } else { nil } }
        var nanoseconds: Int64 = 0
        if case .integer(let n) = value(ts) { nanoseconds = n }
        let entry = LedgerEntryRecord(
            key: string(key) ?? "",
            kind: string(kind) ?? "",
            ts: nanoseconds,
            ref: string(ref),
            reverses: string(reverses),
            memo: string(memo),
            postings: postings
        )
        row[hash] = .blob(entry.contentHash)
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
