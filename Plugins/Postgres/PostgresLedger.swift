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
            if let watermark {
                let stored = try await connection.scalar(
                    "SELECT through_seq FROM ledger_watermarks WHERE consumer = \(watermark.consumer)"
                )
                guard stored == watermark.previous else {
                    throw LedgerStoreErrors.watermarkMoved(
                        store: displayURL,
                        consumer: watermark.consumer,
                        stored: stored,
                        expected: watermark.previous
                    )
                }
            }
            let context = try await Self.context(connection, entries, store: displayURL)
            let plan: LedgerBatchPlan
            switch LedgerBatch.plan(entries, context: context) {
            case .success(let accepted): plan = accepted
            case .failure(let refusal): return LedgerPostOutcome.refused(refusal)
            }
            if !plan.newEntries.isEmpty {
                let first = try await connection.scalar("SELECT coalesce(max(seq), 0) FROM ledger_entries") + 1
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
            if !plan.newAssets.isEmpty {
                try await connection.rows(
                    """
                    INSERT INTO ledger_assets (code, scale)
                    SELECT * FROM unnest(\(plan.newAssets.map(\.code))::text[],
                        \(plan.newAssets.map { Int16($0.scale) })::smallint[])
                    """
                )
            }
            if !plan.balances.isEmpty {
                try await connection.rows(
                    """
                    INSERT INTO ledger_balances (account, asset, balance)
                    SELECT b.account, b.asset, b.balance::numeric
                    FROM unnest(\(plan.balances.map(\.account))::text[], \(plan.balances.map(\.asset))::text[],
                        \(plan.balances.map { String($0.balance) })::text[]) AS b(account, asset, balance)
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
            return LedgerPostOutcome.committed(posted: plan.newEntries.count, alreadyPosted: plan.alreadyPosted)
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
        if !lookups.reversalTargets.isEmpty {
            for row in try await connection.rows(
                "\(unescaped: entryColumns) WHERE key = ANY(\(lookups.reversalTargets)::text[])"
            ) {
                let stored = try storedEntry(row, store: store)
                context.reversalTargets[stored.entry.key] = stored.entry
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
        return try await select(
            "reading ledger entries",
            """
            \(unescaped: Self.entryColumns) WHERE seq > \(query.afterSeq) AND ts BETWEEN \(from) AND \(through)
            AND (\(query.ref == nil) OR ref = \(query.ref ?? "")) ORDER BY seq LIMIT \(max(query.limit, 0))
            """
        ) { row in try Self.storedEntry(row, store: displayURL) }
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
