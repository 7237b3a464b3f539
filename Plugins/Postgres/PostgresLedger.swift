public import CastleSupport
import PostgresNIO
public import Storage

extension LockKey {
    /// Held for the length of every ledger write transaction: posts are serialised, so the balances a
    /// batch is checked against are the ones it updates, and `seq` is dense and in commit order.
    static let ledger = key("castle:ledger")

    static func settlement(_ consumer: String) -> Int64 { key("settle:\(consumer)") }
}

/// The ledger on PostgreSQL: each batch in one transaction holding the ledger's advisory lock; the rows
/// the batch names are read with one statement per kind (`= ANY`), and the new entries and balances are
/// written with one statement each (`unnest` of column arrays). The checks are ``LedgerBatch``'s.
extension PostgresBackend: LedgerStore {
    public func postLedgerEntries(
        _ entries: [LedgerEntryRecord],
        postedAt: Int64,
        watermark: LedgerWatermarkAdvance?
    ) async throws(CastleError) -> LedgerPostOutcome {
        let displayURL = displayURL
        return try await transaction("posting ledger entries") { connection in
            try await connection.rows("SELECT pg_advisory_xact_lock(\(LockKey.ledger))")
            try await Self.checkWatermark(connection, watermark, store: displayURL)
            return try await Self.post(connection, entries, postedAt: postedAt, watermark: watermark, store: displayURL)
        }
    }

    public func postSettlementBlock(
        _ block: SettlementBlock,
        postedAt: Int64,
        watermark: LedgerWatermarkAdvance
    ) async throws(CastleError) -> LedgerPostOutcome {
        let displayURL = displayURL
        let body = block.encoded()
        let hash = SettlementBlock.contentHash(body)
        return try await transaction("posting a settlement block") { connection in
            try await connection.rows("SELECT pg_advisory_xact_lock(\(LockKey.ledger))")
            try await Self.checkWatermark(connection, watermark, store: displayURL)
            let records = block.records()
            // Any of its keys stored already (an earlier block, an entry posted by hand): one by one.
            let overlaps = try await connection.scalar(
                """
                SELECT count(*) FROM (SELECT last_trade_seq FROM ledger_trade_blocks
                    WHERE consumer = \(block.consumer) AND first_trade_seq <= \(block.lastTradeSeq)
                    ORDER BY first_trade_seq DESC LIMIT 1) b WHERE b.last_trade_seq >= \(block.firstTradeSeq)
                """
            )
            let stored = try await connection.scalar(
                "SELECT count(*) FROM ledger_entries WHERE key = ANY(\(records.map(\.key))::text[])"
            )
            if block.isEmpty || overlaps > 0 || stored > 0 {
                return try await Self.post(
                    connection,
                    records,
                    postedAt: postedAt,
                    watermark: watermark,
                    store: displayURL
                )
            }
            let keys = block.balanceKeys
            var balances: [LedgerBalanceKey: Int128] = [:]
            for row in try await connection.rows(
                """
                SELECT b.account, b.asset, b.balance::text FROM ledger_balances b
                JOIN unnest(\(keys.map(\.account))::text[], \(keys.map(\.asset))::text[])
                    AS k(account, asset) ON b.account = k.account AND b.asset = k.asset
                """
            ) {
                let (account, asset, balance) = try row.decode((String, String, String).self)
                balances[LedgerBalanceKey(account: account, asset: asset)] = try Self.balanceValue(
                    balance,
                    store: displayURL
                )
            }
            var scales: [String: UInt8] = [:]
            for row in try await connection.rows(
                "SELECT code, scale FROM ledger_assets WHERE code = ANY(\(block.assets.map(\.code))::text[])"
            ) {
                let (code, scale) = try row.decode((String, Int16).self)
                scales[code] = UInt8(truncatingIfNeeded: scale)
            }
            let plan: SettlementBlockPlan
            switch block.plan(balances: balances, scales: scales) {
            case .success(let accepted): plan = accepted
            case .failure(let refusal): return LedgerPostOutcome.refused(refusal)
            }
            let tsRange = block.tsRange
            let firstSeq = try await Self.lastSeq(connection) + 1
            try await connection.rows(
                """
                INSERT INTO ledger_trade_blocks (first_seq, consumer, first_trade_seq, last_trade_seq, entry_count,
                    min_ts, max_ts, posted_at, content_hash, body)
                VALUES (\(firstSeq), \(block.consumer), \(block.firstTradeSeq), \(block.lastTradeSeq),
                    \(Int64(block.count)), \(tsRange.lowerBound), \(tsRange.upperBound), \(postedAt),
                    \(ByteBuffer(bytes: hash)), \(ByteBuffer(bytes: body)))
                """
            )
            try await Self.write(connection, newAssets: plan.newAssets, balances: plan.balances, watermark: watermark)
            return LedgerPostOutcome.committed(posted: block.count, alreadyPosted: 0)
        }
    }

    /// Refuses (75) when the consumer's stored watermark is not where the settler read it.
    static func checkWatermark(
        _ connection: PostgresConnection,
        _ watermark: LedgerWatermarkAdvance?,
        store: String
    ) async throws {
        guard let watermark else { return }
        let stored = try await connection.scalar(
            "SELECT through_seq FROM ledger_watermarks WHERE consumer = \(watermark.consumer)"
        )
        try watermark.check(stored: stored, store: store)
    }

    /// The last posting sequence number given, to an entry row or a block's entry (0 for none).
    static func lastSeq(_ connection: PostgresConnection) async throws -> Int64 {
        try await connection.scalar(
            """
            SELECT greatest((SELECT coalesce(max(seq), 0) FROM ledger_entries),
                (SELECT coalesce(max(first_seq + entry_count - 1), 0) FROM ledger_trade_blocks))
            """
        )
    }

    /// Posts entries one by one inside the caller's transaction, which holds the ledger's lock.
    static func post(
        _ connection: PostgresConnection,
        _ entries: [LedgerEntryRecord],
        postedAt: Int64,
        watermark: LedgerWatermarkAdvance?,
        store displayURL: String
    ) async throws -> LedgerPostOutcome {
        let context = try await Self.context(connection, entries, store: displayURL)
        let plan: LedgerBatchPlan
        switch LedgerBatch.plan(entries, context: context) {
        case .success(let accepted): plan = accepted
        case .failure(let refusal): return LedgerPostOutcome.refused(refusal)
        }
        if !plan.newEntries.isEmpty {
            let first = try await lastSeq(connection) + 1
            let new = plan.newEntries.map(\.entry)
            try await connection.rows(
                """
                INSERT INTO ledger_entries
                    (seq, key, kind, ts, ref, reverses, memo, postings, content_hash, posted_at)
                SELECT \(first) - 1 + e.n, e.key, e.kind, e.ts, CASE WHEN e.has_ref THEN e.ref END,
                    CASE WHEN e.has_reverses THEN e.reverses END, CASE WHEN e.has_memo THEN e.memo END,
                    e.postings, decode(e.hash, 'hex'), \(postedAt)
                FROM unnest(\(new.map(\.key))::text[], \(new.map(\.kind))::text[], \(new.map(\.ts))::bigint[],
                    \(new.map { $0.ref ?? "" })::text[], \(new.map { $0.ref != nil })::boolean[],
                    \(new.map { $0.reverses ?? "" })::text[], \(new.map { $0.reverses != nil })::boolean[],
                    \(new.map { $0.memo ?? "" })::text[], \(new.map { $0.memo != nil })::boolean[],
                    \(new.map { LedgerPostingsText.encode($0.postings) })::text[],
                    \(plan.newEntries.map { hexString($0.hash) })::text[])
                    WITH ORDINALITY
                    AS e(key, kind, ts, ref, has_ref, reverses, has_reverses, memo, has_memo, postings, hash, n)
                """
            )
        }
        try await write(connection, newAssets: plan.newAssets, balances: plan.balances, watermark: watermark)
        return LedgerPostOutcome.committed(posted: plan.newEntries.count, alreadyPosted: plan.alreadyPosted)
    }

    /// Writes what every accepted post writes besides its entries: new assets, balances, the watermark.
    static func write(
        _ connection: PostgresConnection,
        newAssets: [(code: String, scale: UInt8)],
        balances: [LedgerBalanceRecord],
        watermark: LedgerWatermarkAdvance?
    ) async throws {
        if !newAssets.isEmpty {
            try await connection.rows(
                """
                INSERT INTO ledger_assets (code, scale)
                SELECT * FROM unnest(\(newAssets.map(\.code))::text[], \(newAssets.map { Int16($0.scale) })::smallint[])
                """
            )
        }
        if !balances.isEmpty {
            try await connection.rows(
                """
                INSERT INTO ledger_balances (account, asset, balance)
                SELECT b.account, b.asset, b.balance::numeric
                FROM unnest(\(balances.map(\.account))::text[], \(balances.map(\.asset))::text[],
                    \(balances.map { String($0.balance) })::text[]) AS b(account, asset, balance)
                ON CONFLICT (account, asset) DO UPDATE SET balance = EXCLUDED.balance
                """
            )
        }
        if let watermark {
            try await connection.rows(
                """
                INSERT INTO ledger_watermarks (consumer, through_seq) VALUES (\(watermark.consumer), \(watermark.next))
                ON CONFLICT (consumer) DO UPDATE SET through_seq = EXCLUDED.through_seq
                """
            )
        }
    }

    /// The stored rows the batch names (``LedgerBatch/lookups(_:)``), one statement per kind.
    static func context(
        _ connection: PostgresConnection,
        _ entries: [LedgerEntryRecord],
        store: String
    ) async throws -> LedgerBatchContext {
        let lookups = LedgerBatch.lookups(entries)
        var context = LedgerBatchContext()
        for row in try await connection.rows(
            "SELECT key, encode(content_hash, 'hex') FROM ledger_entries WHERE key = ANY(\(lookups.keys)::text[])"
        ) {
            let (key, hash) = try row.decode((String, String).self)
            context.storedHashes[key] = unhex(hash)
        }
        // Keys shaped like a settlement's that no row holds may be in a block.
        var blocks: [StoredSettlementBlock] = []
        func blockEntry(_ key: String) async throws -> LedgerEntryRecord? {
            guard let (consumer, tradeSeq) = SettlementBlock.parseTradeKey(key) else { return nil }
            func entry(_ stored: StoredSettlementBlock) -> LedgerEntryRecord? {
                guard stored.block.consumer == consumer, let index = stored.block.index(ofTradeSeq: tradeSeq) else {
                    return nil
                }
                return stored.block.record(at: index)
            }
            for stored in blocks { if let found = entry(stored) { return found } }
            guard
                let row = try await connection.rows(
                    """
                    \(unescaped: blockColumns) WHERE consumer = \(consumer) AND first_trade_seq <= \(tradeSeq)
                    ORDER BY first_trade_seq DESC LIMIT 1
                    """
                ).first
            else { return nil }
            let stored = try storedBlock(row, store: store)
            blocks.append(stored)
            return entry(stored)
        }
        for key in lookups.keys where context.storedHashes[key] == nil {
            if let entry = try await blockEntry(key) { context.storedHashes[key] = entry.contentHash }
        }
        if !lookups.reversalTargets.isEmpty {
            for row in try await connection.rows(
                "\(unescaped: entryColumns) WHERE key = ANY(\(lookups.reversalTargets)::text[])"
            ) {
                let stored = try storedEntry(row, store: store)
                context.reversalTargets[stored.entry.key] = stored.entry
            }
            for key in lookups.reversalTargets where context.reversalTargets[key] == nil {
                context.reversalTargets[key] = try await blockEntry(key)
            }
            for row in try await connection.rows(
                "SELECT reverses, key FROM ledger_entries WHERE reverses = ANY(\(lookups.reversalTargets)::text[])"
            ) {
                let (target, key) = try row.decode((String, String).self)
                context.storedReversals[target] = key
            }
        }
        for row in try await connection.rows(
            "SELECT code, scale FROM ledger_assets WHERE code = ANY(\(lookups.assets)::text[])"
        ) {
            let (code, scale) = try row.decode((String, Int16).self)
            context.scales[code] = UInt8(truncatingIfNeeded: scale)
        }
        for row in try await connection.rows(
            """
            SELECT b.account, b.asset, b.balance::text FROM ledger_balances b
            JOIN unnest(\(lookups.balances.map(\.account))::text[], \(lookups.balances.map(\.asset))::text[])
                AS k(account, asset) ON b.account = k.account AND b.asset = k.asset
            """
        ) {
            let (account, asset, balance) = try row.decode((String, String, String).self)
            context.balances[LedgerBalanceKey(account: account, asset: asset)] = try balanceValue(balance, store: store)
        }
        return context
    }

    static let entryColumns =
        "SELECT seq, posted_at, key, kind, ts, ref, reverses, memo, postings FROM ledger_entries"

    static let blockColumns =
        "SELECT first_seq, consumer, entry_count, posted_at, content_hash, body FROM ledger_trade_blocks"

    static func storedBlock(_ row: PostgresRow, store: String) throws -> StoredSettlementBlock {
        let (firstSeq, consumer, count, postedAt, hash, body) = try row.decode(
            (Int64, String, Int64, Int64, ByteBuffer, ByteBuffer).self
        )
        return try StoredSettlementBlock.decode(
            firstSeq: firstSeq,
            consumer: consumer,
            entryCount: count,
            postedAt: postedAt,
            contentHash: Array(hash.readableBytesView),
            body: Array(body.readableBytesView),
            store: store
        )
    }

    static func storedEntry(_ row: PostgresRow, store: String) throws -> StoredLedgerEntry {
        let (seq, postedAt, key, kind, ts, ref, reverses, memo, text) = try row.decode(
            (Int64, Int64, String, String, Int64, String?, String?, String?, String).self
        )
        guard let postings = LedgerPostingsText.decode(text) else {
            throw LedgerStoreErrors.damagedRow(store: store, key: key)
        }
        return StoredLedgerEntry(
            seq: seq,
            postedAt: postedAt,
            entry: LedgerEntryRecord(
                key: key,
                kind: kind,
                ts: ts,
                ref: ref,
                reverses: reverses,
                memo: memo,
                postings: postings
            )
        )
    }

    static func balanceValue(_ text: String, store: String) throws(CastleError) -> Int128 {
        guard let value = Int128(text) else {
            throw CastleError(.dataError, "\(store): a ledger balance is not an integer: \"\(text)\"")
        }
        return value
    }

    public func readLedgerEntries(_ query: LedgerEntryQuery) async throws(CastleError) -> [StoredLedgerEntry] {
        let displayURL = displayURL
        // Bounds that match every row stand in for an absent filter: one statement for all queries.
        let from = query.ts?.lowerBound ?? Int64.min
        let through = query.ts?.upperBound ?? Int64.max
        // One snapshot for the rows and the blocks between them.
        return try await transaction("reading ledger entries") { connection in
            try await connection.rows("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            var rows: [StoredLedgerEntry] = []
            for row in try await connection.rows(
                """
                \(unescaped: Self.entryColumns) WHERE seq > \(query.afterSeq) AND ts BETWEEN \(from) AND \(through)
                AND (\(query.ref == nil) OR ref = \(query.ref ?? "")) ORDER BY seq LIMIT \(max(query.limit, 0))
                """
            ) { rows.append(try Self.storedEntry(row, store: displayURL)) }
            var merge = LedgerEntryMerge(query: query, rows: rows)
            guard merge.wantsBlocks else { return merge.finish() }
            // A few blocks at a time, while the merge wants more.
            var after = query.afterSeq
            while true {
                let page = try await connection.rows(
                    """
                    \(unescaped: Self.blockColumns) WHERE first_seq + entry_count - 1 > \(after)
                    AND max_ts >= \(from) AND min_ts <= \(through) ORDER BY first_seq LIMIT 4
                    """
                )
                var wantsMore = !page.isEmpty
                for row in page where wantsMore {
                    let stored = try Self.storedBlock(row, store: displayURL)
                    wantsMore = merge.add(stored)
                    after = stored.lastSeq
                }
                if !wantsMore { return merge.finish() }
            }
        }
    }

    public func ledgerBalances(account: String?, asset: String?) async throws(CastleError) -> [LedgerBalanceRecord] {
        let displayURL = displayURL
        let rows = try await select(
            "reading ledger balances",
            """
            SELECT b.account, b.asset, a.scale, b.balance::text FROM ledger_balances b
            JOIN ledger_assets a ON a.code = b.asset
            WHERE (\(account == nil) OR b.account = \(account ?? "")) AND (\(asset == nil) OR b.asset = \(asset ?? ""))
            """
        ) { row in try row.decode((String, String, Int16, String).self) }
        var result: [LedgerBalanceRecord] = []
        for (account, asset, scale, balance) in rows {
            result.append(
                LedgerBalanceRecord(
                    account: account,
                    asset: asset,
                    scale: UInt8(truncatingIfNeeded: scale),
                    balance: try Self.balanceValue(balance, store: displayURL)
                )
            )
        }
        // Sorted here, by Swift's order, as the other backends: the server's collation may differ.
        return result.sorted {
            LedgerBalanceKey(account: $0.account, asset: $0.asset)
                < LedgerBalanceKey(account: $1.account, asset: $1.asset)
        }
    }

    public func recomputedLedgerBalances() async throws(CastleError) -> [LedgerBalanceRecord] {
        var sums: [LedgerBalanceKey: (scale: UInt8, balance: Int128)] = [:]
        var after: Int64 = 0
        while true {
            let page = try await readLedgerEntries(LedgerEntryQuery(afterSeq: after, limit: 10_000))
            guard let last = page.last else { break }
            for stored in page {
                for posting in stored.entry.postings {
                    sums[LedgerBalanceKey(account: posting.account, asset: posting.asset), default: (posting.scale, 0)]
                        .balance += Int128(posting.amount)
                }
            }
            after = last.seq
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

    public func settlementWatermark(consumer: String) async throws(CastleError) -> Int64 {
        try await perform("reading the settlement watermark of \(consumer)") {
            try await client.withConnection { connection in
                try await connection.scalar("SELECT through_seq FROM ledger_watermarks WHERE consumer = \(consumer)")
            }
        }
    }

    /// A session-level advisory lock on a connection of its own, as a matcher's partition: it ends with
    /// the connection, so a settle that dies leaves the consumer to the next.
    public func acquireSettlementLock(consumer: String) async throws(CastleError) -> (any PartitionLock)? {
        let key = LockKey.settlement(consumer)
        let connection = try await dedicatedConnection()
        do {
            let taken = try await connection.rows("SELECT pg_try_advisory_lock(\(key))").first?.decode(Bool.self)
            guard taken == true else {
                try? await connection.close()
                return nil
            }
        } catch {
            try? await connection.close()
            throw storageError(error, "\(displayURL): locking the settlement of \(consumer)")
        }
        return PostgresPartitionLock(connection: connection, key: key)
    }
}

private func unhex(_ text: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var high: UInt8?
    for char in text.utf8 {
        let value = char <= 57 ? char - 48 : char - 87
        if let first = high {
            bytes.append(first << 4 | value)
            high = nil
        } else {
            high = value
        }
    }
    return bytes
}
