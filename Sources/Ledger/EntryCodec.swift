public import CastleSupport

/// A line of entries NDJSON that could not be decoded: `line: reason`.
public struct EntryDecodeError: Error, Sendable, Hashable, CustomStringConvertible {
    public var line: Int
    public var reason: String

    public init(line: Int, reason: String) {
        self.line = line
        self.reason = reason
    }

    public var description: String { "\(line): \(reason)" }

    /// Bad input (exit 65), as `file:line: reason`.
    public func castleError(file: String) -> CastleError { CastleError(.dataError, "\(file):\(line): \(reason)") }
}

/// The entries NDJSON of the ledger contract: one object a line,
/// `{"key","kind","ts","ref"?,"reverses"?,"memo"?,"postings":[{"account","asset","amount"},…]}`.
/// Decoding is strict (unknown members, wrong types, a missing member, duplicate members, an amount off
/// its asset's scale are refused) and checks the entry's own rules (``Entry/validate()``); whether it
/// balances and fits the journal is ``Journal/post(_:)``'s to say. Encoding is canonical: members in the
/// order above, optional ones only when present, no spaces, amounts with exactly the asset's decimals.
public enum EntryCodec {
    public static let lineBytes_max = 65_536

    static let entryFields: Set<String> = ["key", "kind", "ts", "ref", "reverses", "memo", "postings"]
    static let postingFields: Set<String> = ["account", "asset", "amount"]

    /// Decodes one line (without its newline). `assets` gives each asset code its scale.
    public static func decode(
        _ line: [UInt8],
        lineNumber: Int,
        assets: AssetTable
    ) -> Result<Entry, EntryDecodeError> {
        do throws(LedgerInputError) {
            return .success(try decode(line, assets: assets))
        } catch {
            return .failure(EntryDecodeError(line: lineNumber, reason: error.reason))
        }
    }

    public static func decode(_ line: String, lineNumber: Int, assets: AssetTable) -> Result<Entry, EntryDecodeError> {
        decode(Array(line.utf8), lineNumber: lineNumber, assets: assets)
    }

    /// Decodes every non-blank line of `text`, stopping at the first error.
    public static func decodeAll(_ text: String, assets: AssetTable) -> Result<[Entry], EntryDecodeError> {
        var entries: [Entry] = []
        var lineNumber = 0
        for line in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            var bytes = Array(line)
            if bytes.last == 0x0D { bytes.removeLast() }
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            switch decode(bytes, lineNumber: lineNumber, assets: assets) {
            case .success(let entry): entries.append(entry)
            case .failure(let error): return .failure(error)
            }
        }
        return .success(entries)
    }

    static func decode(_ line: [UInt8], assets: AssetTable) throws(LedgerInputError) -> Entry {
        let limits = JSON.Limits(bytes_max: lineBytes_max, depth_max: 3, elements_max: Entry.postings_max)
        let value: JSON
        do throws(JSON.SyntaxError) {
            value = try JSON.parse(line, limits: limits)
        } catch {
            switch error.kind {
            case .tooLong: throw LedgerInputError("the line is \(line.count) bytes, longer than \(lineBytes_max)")
            case .notUTF8: throw LedgerInputError("the line is not valid UTF-8")
            case .grammar: throw LedgerInputError("malformed JSON at \(error)")
            }
        }
        guard case .object(let members) = value else {
            throw LedgerInputError("an entry is a JSON object")
        }
        let fields = try Fields(members, known: entryFields, what: "an entry")
        let key = try fields.string("key")
        let kindText = try fields.string("kind")
        guard let kind = EntryKind(rawValue: kindText) else {
            let kinds = EntryKind.allCases.map(\.rawValue).joined(separator: ", ")
            throw LedgerInputError("kind \(quoted(kindText)) is not one of \(kinds)")
        }
        let ts = try fields.nonNegativeInteger("ts")
        guard case .array(let values)? = fields["postings"] else {
            throw fields["postings"] == nil
                ? LedgerInputError("the member \"postings\" is missing")
                : LedgerInputError("\"postings\" is \(fields["postings"]!.typeName), not an array")
        }
        var postings: [Posting] = []
        for (index, value) in values.enumerated() {
            guard case .object(let members) = value else {
                throw LedgerInputError("posting \(index + 1) is \(value.typeName), not an object")
            }
            do throws(LedgerInputError) {
                let posting = try Fields(members, known: postingFields, what: "a posting")
                let account = try Account(parsing: try posting.string("account"))
                let code = try posting.string("asset")
                guard Asset.isValidCode(code) else {
                    throw LedgerInputError("asset code \(quoted(code)) is not 1–12 characters of A-Z and 0-9")
                }
                guard let asset = assets[code] else {
                    throw LedgerInputError("asset \(code) is unknown: no scale for it")
                }
                let amount = try asset.parseAmount(try posting.string("amount")).get()
                postings.append(Posting(account: account, asset: asset, amount: amount))
            } catch {
                throw LedgerInputError("posting \(index + 1): \(error.reason)")
            }
        }
        let entry = Entry(
            key: key,
            kind: kind,
            ts: ts,
            ref: try fields.optionalString("ref"),
            reverses: try fields.optionalString("reverses"),
            memo: try fields.optionalString("memo"),
            postings: postings
        )
        try entry.validate()
        return entry
    }

    /// The members of one object, checked against the names it may have.
    private struct Fields {
        let byName: [String: JSON]

        init(_ members: [(String, JSON)], known: Set<String>, what: String) throws(LedgerInputError) {
            var byName: [String: JSON] = [:]
            for (name, value) in members {
                guard known.contains(name) else { throw LedgerInputError("\(quoted(name)) is not a member of \(what)") }
                byName[name] = value
            }
            self.byName = byName
        }

        subscript(name: String) -> JSON? { byName[name] }

        func string(_ name: String) throws(LedgerInputError) -> String {
            guard let value = byName[name] else { throw LedgerInputError("the member \"\(name)\" is missing") }
            guard case .string(let text) = value else {
                throw LedgerInputError("\"\(name)\" is \(value.typeName), not a string")
            }
            return text
        }

        func optionalString(_ name: String) throws(LedgerInputError) -> String? {
            byName[name] == nil ? nil : try string(name)
        }

        func nonNegativeInteger(_ name: String) throws(LedgerInputError) -> Int64 {
            guard let value = byName[name] else { throw LedgerInputError("the member \"\(name)\" is missing") }
            guard case .number(let text) = value else {
                throw LedgerInputError("\"\(name)\" is \(value.typeName), not a number")
            }
            guard text.utf8.allSatisfy({ $0 &- 48 < 10 }) else {
                throw LedgerInputError("\"\(name)\" is \(text): a non-negative integer of nanoseconds")
            }
            guard let integer = Int64(text) else { throw LedgerInputError("\"\(name)\" is \(text): too large") }
            return integer
        }
    }

    /// The canonical line of `entry`, without a newline.
    public static func encode(_ entry: Entry) -> String {
        var out: [UInt8] = []
        encode(entry, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the canonical line of `entry` and a newline.
    public static func encodeLine(_ entry: Entry, to out: inout [UInt8]) {
        encode(entry, to: &out)
        out.append(UInt8(ascii: "\n"))
    }

    static func encode(_ entry: Entry, to out: inout [UInt8]) {
        func member(_ name: String, _ first: Bool = false) {
            if !first { out.append(UInt8(ascii: ",")) }
            appendJSONString(name, to: &out)
            out.append(UInt8(ascii: ":"))
        }
        out.append(UInt8(ascii: "{"))
        member("key", true)
        appendJSONString(entry.key, to: &out)
        member("kind")
        appendJSONString(entry.kind.rawValue, to: &out)
        member("ts")
        out.append(contentsOf: String(entry.ts).utf8)
        for (name, value) in [("ref", entry.ref), ("reverses", entry.reverses), ("memo", entry.memo)] {
            guard let value else { continue }
            member(name)
            appendJSONString(value, to: &out)
        }
        member("postings")
        out.append(UInt8(ascii: "["))
        for (index, posting) in entry.postings.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "{"))
            member("account", true)
            appendJSONString(posting.account.description, to: &out)
            member("asset")
            appendJSONString(posting.asset.code, to: &out)
            member("amount")
            appendJSONString(posting.asset.format(posting.amount), to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(contentsOf: "]}".utf8)
    }
}
