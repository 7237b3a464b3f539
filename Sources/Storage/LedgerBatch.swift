/// Where a balance lives: one account, one asset code.
public struct LedgerBalanceKey: Sendable, Hashable, Comparable {
    public var account: String
    public var asset: String

    public init(account: String, asset: String) {
        self.account = account
        self.asset = asset
    }

    public static func < (a: LedgerBalanceKey, b: LedgerBalanceKey) -> Bool {
        a.account != b.account ? a.account < b.account : a.asset < b.asset
    }
}

/// What a backend reads of its stored ledger, inside the write transaction, before it posts a batch: only
/// the rows the batch names (``LedgerBatch/lookups``), so a batch costs the same on an empty ledger and a
/// big one.
public struct LedgerBatchContext: Sendable {
    /// Content hashes of the batch's keys that are stored.
    public var storedHashes: [String: [UInt8]] = [:]
    /// Stored entries the batch's reversals name.
    public var reversalTargets: [String: LedgerEntryRecord] = [:]
    /// Stored reversals of those targets: target key → the reversal's key.
    public var storedReversals: [String: String] = [:]
    /// Scales of the batch's asset codes that are stored.
    public var scales: [String: UInt8] = [:]
    /// Stored balances of the (account, asset) pairs the batch posts to.
    public var balances: [LedgerBalanceKey: Int128] = [:]

    public init() {}
}

/// The rows a batch needs read (see ``LedgerBatchContext``).
public struct LedgerBatchLookups: Sendable {
    public var keys: [String]
    public var reversalTargets: [String]
    public var assets: [String]
    public var balances: [LedgerBalanceKey]
}

/// What to write for an accepted batch.
public struct LedgerBatchPlan: Sendable {
    /// The new entries, in batch order, with their content hashes; the store numbers them in this order.
    public var newEntries: [(entry: LedgerEntryRecord, hash: [UInt8])]
    public var alreadyPosted: Int
    /// The balances after the batch, of every pair it posted to (sorted, so that backends lock rows in
    /// one order).
    public var balances: [LedgerBalanceRecord]
    /// Asset codes the store did not know yet, with their scales.
    public var newAssets: [(code: String, scale: UInt8)]
}

/// The store's checks of a batch, one implementation for every backend: a pure function of the batch and
/// what the backend read (``LedgerBatchContext``).
public enum LedgerBatch {
    /// The stored rows `entries` need.
    public static func lookups(_ entries: [LedgerEntryRecord]) -> LedgerBatchLookups {
        var keys: [String] = []
        var seenKeys: Set<String> = []
        var targets: [String] = []
        var assets: Set<String> = []
        var balances: Set<LedgerBalanceKey> = []
        for entry in entries {
            if seenKeys.insert(entry.key).inserted { keys.append(entry.key) }
            if let target = entry.reverses { targets.append(target) }
            for posting in entry.postings {
                assets.insert(posting.asset)
                balances.insert(LedgerBalanceKey(account: posting.account, asset: posting.asset))
            }
        }
        return LedgerBatchLookups(
            keys: keys,
            reversalTargets: Array(Set(targets)).sorted(),
            assets: assets.sorted(),
            balances: balances.sorted()
        )
    }

    /// Checks `entries` in order against the stored ledger and each other: a key posted before (stored or
    /// earlier in the batch) is a no-op with the same hash and refused with another; an asset keeps one
    /// scale; a reversal's target is posted, not reversed yet, and its postings negated; no posting leaves
    /// an account flagged non-negative below zero after its entry (an account's postings in one entry are
    /// netted first). The first refusal ends the batch.
    public static func plan(
        _ entries: [LedgerEntryRecord],
        context: LedgerBatchContext
    ) -> Result<LedgerBatchPlan, LedgerRefusal> {
        var hashes = context.storedHashes
        var batchEntries: [String: LedgerEntryRecord] = [:]
        var reversals = context.storedReversals
        var scales = context.scales
        var balances = context.balances
        var touched: Set<LedgerBalanceKey> = []
        var newAssets: [(code: String, scale: UInt8)] = []
        var newEntries: [(entry: LedgerEntryRecord, hash: [UInt8])] = []
        newEntries.reserveCapacity(entries.count)
        var alreadyPosted = 0
        // Entries of the batch by key, for reversals of an entry posted earlier in the same batch: kept
        // only when the batch has a reversal (a settlement batch has none, and 20,000 copies cost).
        let keepsEntries = !context.reversalTargets.isEmpty || entries.contains { $0.reverses != nil }
        for (index, entry) in entries.enumerated() {
            func refuse(_ code: LedgerRefusal.Code, _ reason: String) -> Result<LedgerBatchPlan, LedgerRefusal> {
                .failure(LedgerRefusal(index: index, key: entry.key, code: code, reason: reason))
            }
            let hash = entry.contentHash
            if let stored = hashes[entry.key] {
                if stored == hash {
                    alreadyPosted += 1
                    continue
                }
                return refuse(.existsWithDifferentContent, "key \"\(entry.key)\" is posted with other content")
            }
            for posting in entry.postings {
                if let problem = unstorable(posting) { return refuse(.invalid, problem) }
                if let scale = scales[posting.asset], scale != posting.scale {
                    return refuse(
                        .invalid,
                        "asset \(posting.asset) has scale \(scale) in the ledger, not \(posting.scale)"
                    )
                }
            }
            if let target = entry.reverses {
                guard let reversed = batchEntries[target] ?? context.reversalTargets[target] else {
                    return refuse(.reversedEntryMissing, "no entry \"\(target)\" to reverse")
                }
                if let by = reversals[target] {
                    return refuse(.alreadyReversed, "entry \"\(target)\" is already reversed by \"\(by)\"")
                }
                if !isNegation(entry.postings, of: reversed.postings) {
                    return refuse(.reversalMismatch, "the postings are not entry \"\(target)\"'s negated")
                }
            }
            var after: [LedgerBalanceKey: Int128] = [:]
            for posting in entry.postings {
                let key = LedgerBalanceKey(account: posting.account, asset: posting.asset)
                after[key, default: balances[key] ?? 0] += Int128(posting.amount)
            }
            for posting in entry.postings where !posting.mayGoNegative {
                if after[LedgerBalanceKey(account: posting.account, asset: posting.asset)]! < 0 {
                    return refuse(
                        .wouldGoNegative,
                        "\(posting.account) would go below zero in \(posting.asset)"
                    )
                }
            }
            // Accepted: only now does the running state change.
            for (key, balance) in after {
                balances[key] = balance
                touched.insert(key)
            }
            for posting in entry.postings where scales[posting.asset] == nil {
                scales[posting.asset] = posting.scale
                newAssets.append((posting.asset, posting.scale))
            }
            hashes[entry.key] = hash
            if keepsEntries { batchEntries[entry.key] = entry }
            if let target = entry.reverses { reversals[target] = entry.key }
            newEntries.append((entry, hash))
        }
        let rows = touched.sorted().map { key in
            LedgerBalanceRecord(
                account: key.account,
                asset: key.asset,
                scale: scales[key.asset]!,
                balance: balances[key]!
            )
        }
        return .success(
            LedgerBatchPlan(newEntries: newEntries, alreadyPosted: alreadyPosted, balances: rows, newAssets: newAssets)
        )
    }

    /// True when `postings` are `original`'s with every amount negated, in any order.
    static func isNegation(_ postings: [LedgerPostingRecord], of original: [LedgerPostingRecord]) -> Bool {
        guard postings.count == original.count else { return false }
        func sortKey(_ p: LedgerPostingRecord) -> String {
            "\(p.account)\t\(p.asset)\t\(p.scale)\t\(p.amount)\t\(p.mayGoNegative)"
        }
        let negated = original.map {
            LedgerPostingRecord(
                account: $0.account,
                asset: $0.asset,
                scale: $0.scale,
                amount: -$0.amount,
                mayGoNegative: $0.mayGoNegative
            )
        }
        return postings.map(sortKey).sorted() == negated.map(sortKey).sorted()
    }

    /// Why a posting cannot be stored in ``LedgerPostingsText``, or nil.
    static func unstorable(_ posting: LedgerPostingRecord) -> String? {
        for (field, text) in [("account", posting.account), ("asset", posting.asset)] {
            if text.isEmpty || text.utf8.contains(where: { $0 == 9 || $0 == 10 }) {
                return "\(field) \"\(text)\" is empty or has a tab or a line break"
            }
        }
        if posting.amount == Int64.min { return "an amount is Int64.min" }
        return nil
    }
}

/// The postings of an entry as one text column (SQLite and PostgreSQL alike): a line per posting,
/// `account TAB asset TAB scale TAB amount TAB flag` (flag `1` when the account may go below zero), so an
/// entry is one row and a trade's settlement one insert. Account and asset never hold a tab or a line
/// break (``LedgerBatch`` refuses them).
public enum LedgerPostingsText {
    public static func encode(_ postings: [LedgerPostingRecord]) -> String {
        var text = ""
        text.reserveCapacity(postings.count * 40)
        for (index, posting) in postings.enumerated() {
            if index > 0 { text += "\n" }
            text += posting.account
            text += "\t"
            text += posting.asset
            text += "\t"
            text += String(posting.scale)
            text += "\t"
            text += String(posting.amount)
            text += posting.mayGoNegative ? "\t1" : "\t0"
        }
        return text
    }

    /// Nil when `text` is not what ``encode(_:)`` writes (a damaged row).
    public static func decode(_ text: String) -> [LedgerPostingRecord]? {
        var postings: [LedgerPostingRecord] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == 5, !fields[0].isEmpty, !fields[1].isEmpty, let scale = UInt8(fields[2]),
                let amount = Int64(fields[3]), fields[4] == "0" || fields[4] == "1"
            else { return nil }
            postings.append(
                LedgerPostingRecord(
                    account: String(fields[0]),
                    asset: String(fields[1]),
                    scale: scale,
                    amount: amount,
                    mayGoNegative: fields[4] == "1"
                )
            )
        }
        return postings
    }
}
