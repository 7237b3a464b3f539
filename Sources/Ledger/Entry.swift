/// What an entry records.
public enum EntryKind: String, Sendable, Hashable, CaseIterable {
    case deposit, withdrawal, fee, trade, transfer, adjustment, reversal
}

/// One leg of an entry: `amount` minor units of `asset` to `account` (negative: from it).
public struct Posting: Sendable, Hashable, Comparable {
    public var account: Account
    public var asset: Asset
    public var amount: Int64

    public init(account: Account, asset: Asset, amount: Int64) {
        self.account = account
        self.asset = asset
        self.amount = amount
    }

    public static func < (a: Posting, b: Posting) -> Bool {
        if a.account != b.account { return a.account < b.account }
        if a.asset != b.asset { return a.asset < b.asset }
        return a.amount < b.amount
    }
}

/// A balanced set of postings under an idempotency key. Entries are immutable once posted; two entries
/// are the same content when every field is equal, postings in the same order.
public struct Entry: Sendable, Hashable {
    public var key: String
    public var kind: EntryKind
    /// Business time, nanoseconds since the Unix epoch.
    public var ts: Int64
    /// The external reference reconciliation matches on (processor id, bank reference, EndToEndId).
    public var ref: String?
    /// For a reversal: the key of the entry it cancels.
    public var reverses: String?
    public var memo: String?
    public var postings: [Posting]

    public static let keyLength_max = 128
    public static let refLength_max = 128
    public static let memoLength_max = 1024
    public static let postings_max = 64

    public init(
        key: String,
        kind: EntryKind,
        ts: Int64,
        ref: String? = nil,
        reverses: String? = nil,
        memo: String? = nil,
        postings: [Posting]
    ) {
        self.key = key
        self.kind = kind
        self.ts = ts
        self.ref = ref
        self.reverses = reverses
        self.memo = memo
        self.postings = postings
    }

    /// The rules an entry obeys on its own, without the journal: the key is 1–128 bytes of UTF-8 without
    /// control characters; `ts` is not negative; `ref` (≤ 128 bytes) and `memo` (≤ 1024 bytes) when
    /// present are not empty; `reverses` is present exactly for a reversal; 2–64 postings, none of zero
    /// and none of Int64.min; one scale per asset code. Balance is checked apart, by ``unbalancedAsset``.
    public func validate() throws(LedgerInputError) {
        try Self.validateKey(key, field: "key")
        if ts < 0 { throw LedgerInputError("ts \(ts) is negative") }
        if let ref { try Self.validateText(ref, field: "ref", max: Self.refLength_max) }
        if let memo { try Self.validateText(memo, field: "memo", max: Self.memoLength_max) }
        switch (kind, reverses) {
        case (.reversal, nil): throw LedgerInputError("a reversal names the key it reverses in \"reverses\"")
        case (.reversal, let reversed?):
            try Self.validateKey(reversed, field: "reverses")
            if reversed == key { throw LedgerInputError("entry \(quoted(key)) reverses itself") }
        case (_, nil): break
        case (_, _?): throw LedgerInputError("only a reversal has \"reverses\", not a \(kind.rawValue)")
        }
        guard (2...Self.postings_max).contains(postings.count) else {
            throw LedgerInputError("\(postings.count) postings: an entry has 2 to \(Self.postings_max)")
        }
        for (index, posting) in postings.enumerated() {
            if posting.amount == 0 { throw LedgerInputError("posting \(index + 1): the amount is zero") }
            if posting.amount == Int64.min { throw LedgerInputError("posting \(index + 1): the amount is too large") }
            // The earlier postings of the same code all have one scale (else this threw already): at most
            // 64 postings, so a linear search, not a dictionary.
            if let earlier = postings[..<index].first(where: { $0.asset.code == posting.asset.code }),
                earlier.asset.scale != posting.asset.scale
            {
                throw LedgerInputError(
                    "asset \(posting.asset.code) appears with scales \(earlier.asset.scale) and \(posting.asset.scale)"
                )
            }
        }
    }

    /// The first asset (in posting order) whose amounts do not sum to zero, or nil when the entry balances.
    public var unbalancedAsset: Asset? {
        // At most 64 postings: a sum per posting's asset by linear search, not a dictionary.
        for posting in postings {
            var sum: Int128 = 0
            for other in postings where other.asset == posting.asset { sum += Int128(other.amount) }
            if sum != 0 { return posting.asset }
        }
        return nil
    }

    /// Each posting with its amount negated: what a reversal of this entry posts.
    public var negatedPostings: [Posting] {
        postings.map { Posting(account: $0.account, asset: $0.asset, amount: -$0.amount) }
    }

    /// True when `postings` are exactly `entry`'s negated, as a multiset (order free).
    public func reverses(_ entry: Entry) -> Bool {
        postings.count == entry.postings.count && postings.sorted() == entry.negatedPostings.sorted()
    }

    /// Whether `key` passes ``validate()``'s rules for a key: 1–128 bytes, no control character.
    public static func isValidKey(_ key: String) -> Bool { (try? validateKey(key, field: "key")) != nil }

    static func validateKey(_ key: String, field: String) throws(LedgerInputError) {
        guard (1...keyLength_max).contains(key.utf8.count) else {
            throw LedgerInputError("\(field) is \(key.utf8.count) bytes: 1 to \(keyLength_max)")
        }
        // ASCII (every key castle makes) needs no Unicode tables: its control characters are 0–31 and 127.
        let isASCII = key.utf8.allSatisfy { $0 < 0x80 }
        if isASCII
            ? key.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f })
            : key.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        {
            throw LedgerInputError("\(field) \(quoted(key)) has a control character")
        }
    }

    static func validateText(_ text: String, field: String, max: Int) throws(LedgerInputError) {
        guard (1...max).contains(text.utf8.count) else {
            throw LedgerInputError("\(field) is \(text.utf8.count) bytes: 1 to \(max) (leave it out when empty)")
        }
    }
}
