/// Where a balance lives: one account, one asset.
public struct BalanceKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var account: Account
    public var asset: Asset

    public init(account: Account, asset: Asset) {
        self.account = account
        self.asset = asset
    }

    public static func < (a: BalanceKey, b: BalanceKey) -> Bool {
        a.account != b.account ? a.account < b.account : a.asset < b.asset
    }

    public var description: String { "\(account) \(asset)" }
}

/// What ``Journal/post(_:)`` did with an entry, TigerBeetle-style: one result code, no exceptions. Every
/// result but `.posted` leaves the journal exactly as it was.
public enum PostResult: Sendable, Hashable, CustomStringConvertible {
    /// Recorded; balances moved.
    case posted
    /// The same key with the same content is already posted: a no-op, so retries are safe.
    case alreadyPosted
    /// The key is posted with other content.
    case existsWithDifferentContent(key: String)
    /// The entry breaks a rule of its own (key, postings count, a zero amount, …), or names an asset with
    /// another scale than the journal knows it by.
    case invalid(LedgerInputError)
    /// The amounts of this asset do not sum to zero.
    case unbalanced(asset: Asset)
    /// The entry would take an account whose kind may not go below zero below zero.
    case wouldGoNegative(account: Account, asset: Asset)
    /// A reversal names a key that is not posted.
    case reversedEntryMissing(key: String)
    /// A reversal's postings are not exactly the reversed entry's negated.
    case reversalMismatch(key: String)
    /// The entry named by a reversal is already reversed (by the entry `by`).
    case alreadyReversed(key: String, by: String)

    /// The result's code as the spec and the CLI name it.
    public var code: String {
        switch self {
        case .posted: "posted"
        case .alreadyPosted: "already_posted"
        case .existsWithDifferentContent: "exists_with_different_content"
        case .invalid: "invalid"
        case .unbalanced: "unbalanced"
        case .wouldGoNegative: "would_go_negative"
        case .reversedEntryMissing: "reversed_entry_missing"
        case .reversalMismatch: "reversal_mismatch"
        case .alreadyReversed: "already_reversed"
        }
    }

    /// True for the two results after which the entry is in the journal.
    public var isSuccess: Bool { self == .posted || self == .alreadyPosted }

    public var description: String {
        switch self {
        case .posted, .alreadyPosted: code
        case .existsWithDifferentContent(let key): "\(code): key \(quoted(key)) is posted with other content"
        case .invalid(let error): "\(code): \(error.reason)"
        case .unbalanced(let asset): "\(code): the \(asset) amounts do not sum to zero"
        case .wouldGoNegative(let account, let asset): "\(code): \(account) would go below zero in \(asset)"
        case .reversedEntryMissing(let key): "\(code): no entry \(quoted(key)) to reverse"
        case .reversalMismatch(let key): "\(code): the postings are not entry \(quoted(key))'s negated"
        case .alreadyReversed(let key, let by): "\(code): entry \(quoted(key)) is already reversed by \(quoted(by))"
        }
    }
}

/// Why ``Journal/verify()`` failed: the first offending entry's key (nil when the fault is in the
/// projection alone and no entry touches it) and what is wrong.
public struct VerifyFailure: Error, Sendable, Hashable, CustomStringConvertible {
    public var key: String?
    public var reason: String

    public init(key: String?, reason: String) {
        self.key = key
        self.reason = reason
    }

    public var description: String { key.map { "\($0): \(reason)" } ?? reason }
}

/// The journal of entries and the balances they project, as a value: synchronous, deterministic, no I/O.
/// Storage backends keep the same two things (entries, balances) and load them back through
/// ``init(entries:balances:)`` for ``verify()``.
public struct Journal: Sendable {
    /// Every posted entry, in posting order.
    public private(set) var entries: [Entry] = []
    /// The projection: the balance of every (account, asset) ever posted to, zero included.
    public private(set) var balances: [BalanceKey: Int128] = [:]
    private var indexByKey: [String: Int] = [:]
    /// Reversed key → the reversal's key.
    private var reversedBy: [String: String] = [:]
    /// The one scale of each asset code.
    private var scales: [String: UInt8] = [:]

    public init() {}

    /// A journal as stored: the entries and the projection, taken as they are, unchecked, so that
    /// ``verify()`` can judge them. Entries with a duplicate key keep the first.
    public init(entries: [Entry], balances: [BalanceKey: Int128]) {
        self.entries = entries
        self.balances = balances
        for (index, entry) in entries.enumerated() {
            if indexByKey[entry.key] == nil { indexByKey[entry.key] = index }
            if let reversed = entry.reverses, reversedBy[reversed] == nil { reversedBy[reversed] = entry.key }
            for posting in entry.postings where scales[posting.asset.code] == nil {
                scales[posting.asset.code] = posting.asset.scale
            }
        }
    }

    public var count: Int { entries.count }

    public func entry(forKey key: String) -> Entry? { indexByKey[key].map { entries[$0] } }

    public func balance(of account: Account, in asset: Asset) -> Int128 {
        balances[BalanceKey(account: account, asset: asset)] ?? 0
    }

    /// The key of the reversal of `key`, when it is reversed.
    public func reversal(of key: String) -> String? { reversedBy[key] }

    /// Posts `entry` or refuses it; a refused entry changes nothing. The checks, in order: the entry's own
    /// rules, the key (same content: `.alreadyPosted`; other content: `.existsWithDifferentContent`),
    /// asset scales, balance per asset, a reversal's target, and last the balances it would leave.
    public mutating func post(_ entry: Entry) -> PostResult {
        do throws(LedgerInputError) {
            try entry.validate()
        } catch {
            return .invalid(error)
        }
        if let index = indexByKey[entry.key] {
            return entries[index] == entry ? .alreadyPosted : .existsWithDifferentContent(key: entry.key)
        }
        for posting in entry.postings {
            if let scale = scales[posting.asset.code], scale != posting.asset.scale {
                return .invalid(
                    LedgerInputError(
                        "asset \(posting.asset.code) has scale \(scale) in the journal, not \(posting.asset.scale)"
                    )
                )
            }
        }
        if let asset = entry.unbalancedAsset { return .unbalanced(asset: asset) }
        if let reversed = entry.reverses {
            guard let index = indexByKey[reversed] else { return .reversedEntryMissing(key: reversed) }
            if let by = reversedBy[reversed] { return .alreadyReversed(key: reversed, by: by) }
            if !entry.reverses(entries[index]) { return .reversalMismatch(key: reversed) }
        }
        // The balances the entry would leave, per (account, asset) it touches: an account may appear twice.
        var after: [BalanceKey: Int128] = [:]
        for posting in entry.postings {
            let key = BalanceKey(account: posting.account, asset: posting.asset)
            after[key, default: balances[key] ?? 0] += Int128(posting.amount)
        }
        for posting in entry.postings where !posting.account.kind.mayGoNegative {
            if after[BalanceKey(account: posting.account, asset: posting.asset)]! < 0 {
                return .wouldGoNegative(account: posting.account, asset: posting.asset)
            }
        }
        // Accepted: only now does anything change.
        for (key, balance) in after { balances[key] = balance }
        for posting in entry.postings { scales[posting.asset.code] = posting.asset.scale }
        indexByKey[entry.key] = entries.count
        if let reversed = entry.reverses { reversedBy[reversed] = entry.key }
        entries.append(entry)
        return .posted
    }

    /// Recomputes the balances from the postings, in order, and checks: every entry obeys its own rules
    /// and balances; keys are unique; a reversal follows the entry it reverses, matches it negated, and is
    /// its only one; no account goes below zero where its kind forbids it, after any entry; the projection
    /// equals the sum of the postings; every asset sums to zero over all accounts. Returns the first
    /// failure, naming the first offending entry's key.
    public func verify() -> Result<Void, VerifyFailure> {
        var recomputed: [BalanceKey: Int128] = [:]
        var seen: [String: Int] = [:]
        var reversed: Set<String> = []
        var scales: [String: UInt8] = [:]
        for (index, entry) in entries.enumerated() {
            func fail(_ reason: String) -> Result<Void, VerifyFailure> {
                .failure(VerifyFailure(key: entry.key, reason: reason))
            }
            do throws(LedgerInputError) {
                try entry.validate()
            } catch {
                return fail(error.reason)
            }
            if seen[entry.key] != nil { return fail("the key is posted twice") }
            seen[entry.key] = index
            for posting in entry.postings {
                if let scale = scales.updateValue(posting.asset.scale, forKey: posting.asset.code),
                    scale != posting.asset.scale
                {
                    return fail("asset \(posting.asset.code) has scale \(posting.asset.scale), earlier \(scale)")
                }
            }
            if let asset = entry.unbalancedAsset { return fail("the \(asset) amounts do not sum to zero") }
            if let target = entry.reverses {
                guard let targetIndex = seen[target] else {
                    return fail("reverses \(quoted(target)), not posted before it")
                }
                if !entry.reverses(entries[targetIndex]) {
                    return fail("the postings are not \(quoted(target))'s negated")
                }
                if !reversed.insert(target).inserted { return fail("\(quoted(target)) is reversed twice") }
            }
            for posting in entry.postings {
                recomputed[BalanceKey(account: posting.account, asset: posting.asset), default: 0] += Int128(
                    posting.amount
                )
            }
            for posting in entry.postings where !posting.account.kind.mayGoNegative {
                if recomputed[BalanceKey(account: posting.account, asset: posting.asset)]! < 0 {
                    return fail("\(posting.account) goes below zero in \(posting.asset)")
                }
            }
        }
        // The projection against the postings, in a deterministic order; a mismatch names the first entry
        // that touches the balance.
        let keys = Set(recomputed.keys).union(balances.keys).sorted()
        for key in keys where (recomputed[key] ?? 0) != (balances[key] ?? 0) {
            let first = entries.first { entry in
                entry.postings.contains { $0.account == key.account && $0.asset == key.asset }
            }
            let reason =
                "the balance of \(key) is \(key.asset.format(balances[key] ?? 0)), its postings sum to \(key.asset.format(recomputed[key] ?? 0))"
            return .failure(VerifyFailure(key: first?.key, reason: reason))
        }
        var totals: [Asset: Int128] = [:]
        for (key, balance) in balances { totals[key.asset, default: 0] += balance }
        for (asset, total) in totals.sorted(by: { $0.key < $1.key }) where total != 0 {
            let first = entries.first { entry in entry.postings.contains { $0.asset == asset } }
            return .failure(
                VerifyFailure(key: first?.key, reason: "\(asset) sums to \(asset.format(total)) over all accounts")
            )
        }
        return .success(())
    }

    /// The balances as sorted (account, asset, balance) rows, optionally of one account or one asset code.
    public func balanceRows(account: Account? = nil, assetCode: String? = nil) -> [(BalanceKey, Int128)] {
        balances.filter { key, _ in
            (account == nil || key.account == account) && (assetCode == nil || key.asset.code == assetCode)
        }
        .sorted { $0.key < $1.key }
        .map { ($0.key, $0.value) }
    }
}
