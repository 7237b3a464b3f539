public import CastleSupport
import Synchronization

/// The memory backend's ledger: the same checks as SQLite and PostgreSQL (``LedgerBatch``), applied
/// under one lock, so a batch is all or nothing here too.
struct MemoryLedgerState {
    /// Every entry, a block's included (memory expands blocks: one way to find a key).
    var entries: [StoredLedgerEntry] = []
    /// Per entry: whether a settlement block holds it (it is then not a `ledger_entries` row).
    var inBlock: [Bool] = []
    /// The settlement blocks, by the `seq` of their first entry (the `ledger_trade_blocks` rows).
    var blocks: [Int64: StoredSettlementBlock] = [:]
    var hashes: [String: [UInt8]] = [:]
    var positions: [String: Int] = [:]
    /// Reversed key → the reversal's key.
    var reversals: [String: String] = [:]
    var scales: [String: UInt8] = [:]
    var balances: [LedgerBalanceKey: Int128] = [:]
    var watermarks: [String: Int64] = [:]
    var settlers: Set<String> = []

    func context(for entries: [LedgerEntryRecord]) -> LedgerBatchContext {
        let lookups = LedgerBatch.lookups(entries)
        var context = LedgerBatchContext()
        for key in lookups.keys { context.storedHashes[key] = hashes[key] }
        for target in lookups.reversalTargets {
            context.reversalTargets[target] = positions[target].map { self.entries[$0].entry }
            context.storedReversals[target] = reversals[target]
        }
        for asset in lookups.assets { context.scales[asset] = scales[asset] }
        for key in lookups.balances { context.balances[key] = balances[key] }
        return context
    }

    /// Refuses (75) when the consumer's stored watermark is not where the settler read it.
    func checkWatermark(_ watermark: LedgerWatermarkAdvance?, store: String) throws(CastleError) {
        guard let watermark else { return }
        try watermark.check(stored: watermarks[watermark.consumer] ?? 0, store: store)
    }

    /// ``LedgerStore/postLedgerEntries(_:postedAt:watermark:)`` once the watermark is checked.
    mutating func post(
        _ batch: [LedgerEntryRecord],
        postedAt: Int64,
        watermark: LedgerWatermarkAdvance?
    ) -> LedgerPostOutcome {
        let plan: LedgerBatchPlan
        switch LedgerBatch.plan(batch, context: context(for: batch)) {
        case .success(let accepted): plan = accepted
        case .failure(let refusal): return .refused(refusal)
        }
        for (entry, hash) in plan.newEntries { append(entry, hash: hash, postedAt: postedAt, inBlock: false) }
        for asset in plan.newAssets { scales[asset.code] = asset.scale }
        for row in plan.balances { balances[LedgerBalanceKey(account: row.account, asset: row.asset)] = row.balance }
        if let watermark { watermarks[watermark.consumer] = watermark.next }
        return .committed(posted: plan.newEntries.count, alreadyPosted: plan.alreadyPosted)
    }

    /// Records an entry with the next `seq`.
    mutating func append(_ entry: LedgerEntryRecord, hash: [UInt8], postedAt: Int64, inBlock: Bool) {
        positions[entry.key] = entries.count
        hashes[entry.key] = hash
        if let target = entry.reverses { reversals[target] = entry.key }
        entries.append(StoredLedgerEntry(seq: Int64(entries.count + 1), postedAt: postedAt, entry: entry))
        self.inBlock.append(inBlock)
    }
}

extension MemoryBackend: LedgerStore {
    public func postLedgerEntries(
        _ entries: [LedgerEntryRecord],
        postedAt: Int64,
        watermark: LedgerWatermarkAdvance?
    ) async throws(CastleError) -> LedgerPostOutcome {
        try ledger.withLock { (state) throws(CastleError) -> LedgerPostOutcome in
            try state.checkWatermark(watermark, store: displayURL)
            return state.post(entries, postedAt: postedAt, watermark: watermark)
        }
    }

    public func postSettlementBlock(
        _ block: SettlementBlock,
        postedAt: Int64,
        watermark: LedgerWatermarkAdvance
    ) async throws(CastleError) -> LedgerPostOutcome {
        let records = block.records()
        return try ledger.withLock { (state) throws(CastleError) -> LedgerPostOutcome in
            try state.checkWatermark(watermark, store: displayURL)
            if records.isEmpty || records.contains(where: { state.hashes[$0.key] != nil }) {
                return state.post(records, postedAt: postedAt, watermark: watermark)
            }
            let plan: SettlementBlockPlan
            switch block.plan(balances: state.balances, scales: state.scales) {
            case .success(let accepted): plan = accepted
            case .failure(let refusal): return .refused(refusal)
            }
            let firstSeq = Int64(state.entries.count + 1)
            state.blocks[firstSeq] = StoredSettlementBlock(firstSeq: firstSeq, postedAt: postedAt, block: block)
            for entry in records { state.append(entry, hash: entry.contentHash, postedAt: postedAt, inBlock: true) }
            for asset in plan.newAssets { state.scales[asset.code] = asset.scale }
            for row in plan.balances {
                state.balances[LedgerBalanceKey(account: row.account, asset: row.asset)] = row.balance
            }
            state.watermarks[watermark.consumer] = watermark.next
            return .committed(posted: records.count, alreadyPosted: 0)
        }
    }

    public func readLedgerEntries(_ query: LedgerEntryQuery) async throws(CastleError) -> [StoredLedgerEntry] {
        ledger.withLock { state in
            let start = Int(max(0, min(query.afterSeq, Int64(state.entries.count))))
            return Array(
                state.entries[start...].lazy.filter { stored in
                    (query.ts?.contains(stored.entry.ts) ?? true) && (query.ref.map { $0 == stored.entry.ref } ?? true)
                }
                .prefix(query.limit)
            )
        }
    }

    public func ledgerBalances(account: String?, asset: String?) async throws(CastleError) -> [LedgerBalanceRecord] {
        ledger.withLock { state in
            state.balances.filter { key, _ in
                (account.map { $0 == key.account } ?? true) && (asset.map { $0 == key.asset } ?? true)
            }
            .sorted { $0.key < $1.key }
            .map {
                LedgerBalanceRecord(
                    account: $0.key.account,
                    asset: $0.key.asset,
                    scale: state.scales[$0.key.asset]!,
                    balance: $0.value
                )
            }
        }
    }

    public func recomputedLedgerBalances() async throws(CastleError) -> [LedgerBalanceRecord] {
        ledger.withLock { state in
            var sums: [LedgerBalanceKey: (scale: UInt8, balance: Int128)] = [:]
            for stored in state.entries {
                for posting in stored.entry.postings {
                    let key = LedgerBalanceKey(account: posting.account, asset: posting.asset)
                    sums[key, default: (posting.scale, 0)].balance += Int128(posting.amount)
                }
            }
            return sums.sorted { $0.key < $1.key }.map {
                LedgerBalanceRecord(
                    account: $0.key.account,
                    asset: $0.key.asset,
                    scale: $0.value.scale,
                    balance: $0.value.balance
                )
            }
        }
    }

    public func settlementWatermark(consumer: String) async throws(CastleError) -> Int64 {
        ledger.withLock { $0.watermarks[consumer] ?? 0 }
    }

    public func acquireSettlementLock(consumer: String) async throws(CastleError) -> (any PartitionLock)? {
        let taken = ledger.withLock { $0.settlers.insert(consumer).inserted }
        return taken ? MemorySettlementLock(backend: self, consumer: consumer) : nil
    }

    fileprivate func releaseSettlement(_ consumer: String) {
        _ = ledger.withLock { $0.settlers.remove(consumer) }
    }
}

final class MemorySettlementLock: PartitionLock {
    private let backend: MemoryBackend
    private let consumer: String
    init(backend: MemoryBackend, consumer: String) {
        self.backend = backend
        self.consumer = consumer
    }
    func release() async { backend.releaseSettlement(consumer) }
}
