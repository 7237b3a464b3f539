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
    /// False when the backend did not read the batch's keys (``LedgerBatch/lookups(_:keys:)`` without
    /// them): ``LedgerBatch/plan(_:context:)`` then takes every key for new, neither stored nor twice in
    /// the batch. A backend planning so must write the entries so that a key already there stops it (on
    /// SQLite, `ON CONFLICT (key) DO NOTHING` changing no row), and then plan the batch again with its
    /// keys read, as it must when such a plan refuses an entry (a posted entry counted twice may look
    /// like an overdraft): what the plan accepts is then exactly what the full one would.
    public var keysRead = true

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
    /// The stored rows `entries` need; without their keys when `keys` is false (see
    /// ``LedgerBatchContext/keysRead``).
    public static func lookups(_ entries: [LedgerEntryRecord], keys readsKeys: Bool = true) -> LedgerBatchLookups {
        var keys: [String] = []
        keys.reserveCapacity(entries.count)
        var seenKeys: Set<String> = []
        seenKeys.reserveCapacity(entries.count)
        var targets: [String] = []
        var pairs = LedgerSlotTable()
        for entry in entries {
            if readsKeys && seenKeys.insert(entry.key).inserted { keys.append(entry.key) }
            if let target = entry.reverses { targets.append(target) }
            for posting in entry.postings { _ = pairs.slot(account: posting.account, asset: posting.asset) }
        }
        return LedgerBatchLookups(
            keys: keys,
            reversalTargets: Array(Set(targets)).sorted(),
            assets: Set(pairs.keys.map(\.asset)).sorted(),
            balances: pairs.keys.sorted()
        )
    }

    /// Checks `entries` in order against the stored ledger and each other: a key posted before (stored or
    /// earlier in the batch) is a no-op with the same hash and refused with another; an asset keeps one
    /// scale; a reversal's target is posted, not reversed yet, and its postings negated; no posting leaves
    /// an account flagged non-negative below zero after its entry (an account's postings in one entry are
    /// netted first). The first refusal ends the batch.
    ///
    /// The (account, asset) pairs are interned once per batch into dense slots (``LedgerSlotTable``), so
    /// a posting costs an array access rather than hashing two strings into dictionaries several times.
    public static func plan(
        _ entries: [LedgerEntryRecord],
        context: LedgerBatchContext
    ) -> Result<LedgerBatchPlan, LedgerRefusal> {
        var slots = PlanSlots(context: context)
        // Content hashes of the batch's accepted entries by key (an index into newEntries).
        var batchKeys: [String: Int] = [:]
        if context.keysRead { batchKeys.reserveCapacity(entries.count) }
        var batchEntries: [String: LedgerEntryRecord] = [:]
        var reversals = context.storedReversals
        var newAssets: [(code: String, scale: UInt8)] = []
        var newEntries: [(entry: LedgerEntryRecord, hash: [UInt8])] = []
        newEntries.reserveCapacity(entries.count)
        var alreadyPosted = 0
        // Scratch for one entry: each posting's slot, and the distinct slots with their balance after it.
        var postingSlots: [Int] = []
        var entrySlots: [Int] = []
        var entryAfter: [Int128] = []
        // Entries of the batch by key, for reversals of an entry posted earlier in the same batch: kept
        // only when the batch has a reversal (a settlement batch has none, and 20,000 copies cost).
        let keepsEntries = !context.reversalTargets.isEmpty || entries.contains { $0.reverses != nil }
        for (index, entry) in entries.enumerated() {
            func refuse(_ code: LedgerRefusal.Code, _ reason: String) -> Result<LedgerBatchPlan, LedgerRefusal> {
                .failure(LedgerRefusal(index: index, key: entry.key, code: code, reason: reason))
            }
            let hash = entry.contentHash
            let posted =
                context.storedHashes.isEmpty ? nil : context.storedHashes[entry.key]
            if context.keysRead, let stored = posted ?? batchKeys[entry.key].map({ newEntries[$0].hash }) {
                if stored == hash {
                    alreadyPosted += 1
                    continue
                }
                return refuse(.existsWithDifferentContent, "key \"\(entry.key)\" is posted with other content")
            }
            postingSlots.removeAll(keepingCapacity: true)
            for posting in entry.postings {
                let slot = slots.slot(posting)
                postingSlots.append(slot)
                if let problem = slots.problem[slot] { return refuse(.invalid, problem) }
                if posting.amount == Int64.min { return refuse(.invalid, "an amount is Int64.min") }
                if let scale = slots.assetScales[slots.asset[slot]], scale != posting.scale {
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
            // An account's postings in one entry are netted before the sign check (at most 64 postings:
            // a linear search beats hashing).
            entrySlots.removeAll(keepingCapacity: true)
            entryAfter.removeAll(keepingCapacity: true)
            for (posting, slot) in zip(entry.postings, postingSlots) {
                if let at = entrySlots.firstIndex(of: slot) {
                    entryAfter[at] += Int128(posting.amount)
                } else {
                    entrySlots.append(slot)
                    entryAfter.append(slots.balance[slot] + Int128(posting.amount))
                }
            }
            for (posting, slot) in zip(entry.postings, postingSlots) where !posting.mayGoNegative {
                if entryAfter[entrySlots.firstIndex(of: slot)!] < 0 {
                    return refuse(
                        .wouldGoNegative,
                        "\(posting.account) would go below zero in \(posting.asset)"
                    )
                }
            }
            // Accepted: only now does the running state change.
            for (slot, balance) in zip(entrySlots, entryAfter) {
                slots.balance[slot] = balance
                slots.touched[slot] = true
            }
            for (posting, slot) in zip(entry.postings, postingSlots) where slots.assetScales[slots.asset[slot]] == nil {
                slots.assetScales[slots.asset[slot]] = posting.scale
                newAssets.append((posting.asset, posting.scale))
            }
            if context.keysRead { batchKeys[entry.key] = newEntries.count }
            if keepsEntries { batchEntries[entry.key] = entry }
            if let target = entry.reverses { reversals[target] = entry.key }
            newEntries.append((entry, hash))
        }
        let keys = slots.table.keys
        let rows = keys.indices.filter { slots.touched[$0] }
            .sorted { keys[$0] < keys[$1] }
            .map { slot in
                LedgerBalanceRecord(
                    account: keys[slot].account,
                    asset: keys[slot].asset,
                    scale: slots.assetScales[slots.asset[slot]]!,
                    balance: slots.balance[slot]
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
        if let problem = unstorable(account: posting.account, asset: posting.asset) { return problem }
        if posting.amount == Int64.min { return "an amount is Int64.min" }
        return nil
    }

    /// Why an account or asset cannot be stored in ``LedgerPostingsText``, or nil.
    static func unstorable(account: String, asset: String) -> String? {
        for (field, text) in [("account", account), ("asset", asset)] {
            if text.isEmpty || text.utf8.contains(where: { $0 == 9 || $0 == 10 }) {
                return "\(field) \"\(text)\" is empty or has a tab or a line break"
            }
        }
        return nil
    }
}

/// ``LedgerBatch/plan(_:context:)``'s state per (account, asset) pair of the batch, by slot: the running
/// balance, whether the batch changed it, its asset (an index into the asset arrays) and why its account
/// or asset cannot be stored, if so; and per asset code its scale in the ledger so far (nil: not known).
private struct PlanSlots {
    let context: LedgerBatchContext
    var table = LedgerSlotTable()
    var balance: [Int128] = []
    var touched: [Bool] = []
    var asset: [Int] = []
    var problem: [String?] = []
    var assetCodes: [String] = []
    var assetScales: [UInt8?] = []
    var assetIndex: [String: Int] = [:]

    init(context: LedgerBatchContext) { self.context = context }

    /// The posting's slot, set up from the context when it is new.
    mutating func slot(_ posting: LedgerPostingRecord) -> Int {
        let (slot, isNew) = table.slot(account: posting.account, asset: posting.asset)
        guard isNew else { return slot }
        let key = table.keys[slot]
        let index: Int
        if let known = assetIndex[key.asset] {
            index = known
        } else {
            index = assetCodes.count
            assetIndex[key.asset] = index
            assetCodes.append(key.asset)
            assetScales.append(context.scales[key.asset])
        }
        balance.append(context.balances[key] ?? 0)
        touched.append(false)
        asset.append(index)
        problem.append(LedgerBatch.unstorable(account: key.account, asset: key.asset))
        return slot
    }
}

/// Interns (account, asset) pairs into dense slots 0, 1, 2, … in order of first sight. Open addressing
/// over an FNV-1a hash of the UTF-8 bytes, seeded per process: Swift's `Hasher` (SipHash, seeded and
/// finalised per lookup) cost more than the rest of a batch's checks for keys this short. Slot numbers
/// depend only on the order of the pairs, never on the hash, so everything built on them is
/// deterministic.
struct LedgerSlotTable {
    /// The pairs, by slot.
    private(set) var keys: [LedgerBalanceKey] = []
    /// Slot + 1 per bucket, 0 when empty; a power of two, at most half full.
    private var buckets: [Int32] = Array(repeating: 0, count: 64)

    private static let seed = UInt64.random(in: 0...UInt64.max)

    /// The pair's slot, and whether this call added it.
    mutating func slot(account: String, asset: String) -> (slot: Int, isNew: Bool) {
        let mask = buckets.count - 1
        var bucket = Self.hash(account, asset) & mask
        while true {
            let stored = Int(buckets[bucket])
            if stored == 0 { break }
            let key = keys[stored - 1]
            if key.account == account && key.asset == asset { return (stored - 1, false) }
            bucket = (bucket + 1) & mask
        }
        let slot = keys.count
        precondition(slot < Int32.max - 1, "too many balances in one batch")
        keys.append(LedgerBalanceKey(account: account, asset: asset))
        buckets[bucket] = Int32(slot + 1)
        if keys.count * 2 > buckets.count { grow() }
        return (slot, true)
    }

    private mutating func grow() {
        buckets = Array(repeating: 0, count: buckets.count * 2)
        let mask = buckets.count - 1
        for (slot, key) in keys.enumerated() {
            var bucket = Self.hash(key.account, key.asset) & mask
            while buckets[bucket] != 0 { bucket = (bucket + 1) & mask }
            buckets[bucket] = Int32(slot + 1)
        }
    }

    private static func hash(_ account: String, _ asset: String) -> Int {
        var hash = seed
        mix(account, into: &hash)
        hash = (hash ^ 0xff) &* 0x9e37_79b9_7f4a_7c15  // a separator no UTF-8 text holds
        mix(asset, into: &hash)
        return Int(truncatingIfNeeded: hash ^ (hash >> 29))
    }

    /// Eight bytes at a time, each word multiplied in (the strings are short: a word or two).
    private static func mix(_ text: String, into hash: inout UInt64) {
        let prime: UInt64 = 0x9e37_79b9_7f4a_7c15
        let done = text.utf8.withContiguousStorageIfAvailable { utf8 -> UInt64 in
            var value = hash
            let raw = UnsafeRawBufferPointer(utf8)
            var at = 0
            while at + 8 <= raw.count {
                value = (value ^ raw.loadUnaligned(fromByteOffset: at, as: UInt64.self)) &* prime
                value ^= value >> 32
                at += 8
            }
            var tail: UInt64 = UInt64(raw.count - at)
            while at < raw.count {
                tail = tail << 8 | UInt64(raw[at])
                at += 1
            }
            value = (value ^ tail) &* prime
            return value ^ (value >> 32)
        }
        if let done {
            hash = done
        } else {
            for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* prime }
        }
    }
}

/// The postings of an entry as one text column (SQLite and PostgreSQL alike): a line per posting,
/// `account TAB asset TAB scale TAB amount TAB flag` (flag `1` when the account may go below zero), so an
/// entry is one row and a trade's settlement one insert. Account and asset never hold a tab or a line
/// break (``LedgerBatch`` refuses them).
public enum LedgerPostingsText {
    public static func encode(_ postings: [LedgerPostingRecord]) -> String {
        var bytes: [UInt8] = []
        encode(postings, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// ``encode(_:)``'s text as UTF-8, appended to `bytes` (a writer reuses one buffer for a batch).
    public static func encode(_ postings: [LedgerPostingRecord], into bytes: inout [UInt8]) {
        for (index, posting) in postings.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: "\n")) }
            utf8(posting.account, into: &bytes)
            bytes.append(UInt8(ascii: "\t"))
            utf8(posting.asset, into: &bytes)
            bytes.append(UInt8(ascii: "\t"))
            decimal(Int64(posting.scale), into: &bytes)
            bytes.append(UInt8(ascii: "\t"))
            decimal(posting.amount, into: &bytes)
            bytes.append(UInt8(ascii: "\t"))
            bytes.append(posting.mayGoNegative ? UInt8(ascii: "1") : UInt8(ascii: "0"))
        }
    }

    static func utf8(_ text: String, into bytes: inout [UInt8]) {
        if text.utf8.withContiguousStorageIfAvailable({ bytes.append(contentsOf: $0) }) == nil {
            bytes.append(contentsOf: text.utf8)
        }
    }

    /// `String(value)`'s digits, without making a String.
    static func decimal(_ value: Int64, into bytes: inout [UInt8]) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: UInt64.max has 20 digits
        withUnsafeMutableBytes(of: &digits) { buffer in
            var at = buffer.count
            repeat {
                at -= 1
                buffer[at] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[at...]))
        }
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
