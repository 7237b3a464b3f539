internal import CSQLite
public import CastleSupport
public import Storage

#if canImport(Glibc)
import Glibc
#endif

/// The ledger on SQLite: each batch in one `BEGIN IMMEDIATE` transaction on the writer connection, with
/// prepared statements; the checks are ``LedgerBatch``'s, on the rows the batch names, read inside the
/// same transaction.
extension SQLiteBackend: LedgerStore {
    public func postLedgerEntries(
        _ entries: [LedgerEntryRecord],
        postedAt: Int64,
        watermark: LedgerWatermarkAdvance?
    ) async throws(CastleError) -> LedgerPostOutcome {
        let displayURL = displayURL
        return try await withConnection { (connection) throws(CastleError) in
            try connection.writeTransaction { () throws(CastleError) -> LedgerPostOutcome in
                try Self.checkWatermark(connection, watermark, store: displayURL)
                return try Self.post(connection, entries, postedAt: postedAt, watermark: watermark, store: displayURL)
            }
        }
    }

    public func postSettlementBlock(
        _ block: SettlementBlock,
        postedAt: Int64,
        watermark: LedgerWatermarkAdvance
    ) async throws(CastleError) -> LedgerPostOutcome {
        let displayURL = displayURL
        // Encoded and hashed on the caller's thread, not the writer's.
        let body = block.encoded()
        let hash = SettlementBlock.contentHash(body)
        return try await withConnection { (connection) throws(CastleError) in
            try connection.writeTransaction { () throws(CastleError) -> LedgerPostOutcome in
                try Self.checkWatermark(connection, watermark, store: displayURL)
                var oneByOne = block.isEmpty
                if !oneByOne { oneByOne = try Self.anyKeyStored(connection, block) }
                if oneByOne {
                    return try Self.post(
                        connection,
                        block.records(),
                        postedAt: postedAt,
                        watermark: watermark,
                        store: displayURL
                    )
                }
                var balances: [LedgerBalanceKey: Int128] = [:]
                let balance = try connection.prepare(
                    "SELECT balance FROM ledger_balances WHERE account = ? AND asset = ?"
                )
                for key in block.balanceKeys {
                    balance.bind(1, key.account)
                    balance.bind(2, key.asset)
                    if try balance.step() {
                        balances[key] = try Self.balanceValue(balance.string(0), store: displayURL)
                    }
                    balance.reset()
                }
                var scales: [String: UInt8] = [:]
                let scale = try connection.prepare("SELECT scale FROM ledger_assets WHERE code = ?")
                for asset in block.assets {
                    scale.bind(1, asset.code)
                    if try scale.step() { scales[asset.code] = UInt8(truncatingIfNeeded: scale.int(0)) }
                    scale.reset()
                }
                let plan: SettlementBlockPlan
                switch block.plan(balances: balances, scales: scales) {
                case .success(let accepted): plan = accepted
                case .failure(let refusal): return .refused(refusal)
                }
                let tsRange = block.tsRange
                let insert = try connection.prepare(
                    """
                    INSERT INTO ledger_trade_blocks (first_seq, consumer, first_trade_seq, last_trade_seq, entry_count,
                        min_ts, max_ts, posted_at, content_hash, body)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """
                )
                insert.bind(1, try Self.lastSeq(connection) + 1)
                insert.bind(2, block.consumer)
                insert.bind(3, block.firstTradeSeq)
                insert.bind(4, block.lastTradeSeq)
                insert.bind(5, block.count)
                insert.bind(6, tsRange.lowerBound)
                insert.bind(7, tsRange.upperBound)
                insert.bind(8, postedAt)
                insert.bind(9, hash)
                insert.bind(10, body)
                try insert.run()
                try Self.write(connection, newAssets: plan.newAssets, balances: plan.balances, watermark: watermark)
                return .committed(posted: block.count, alreadyPosted: 0)
            }
        }
    }

    /// Refuses (75) when the consumer's stored watermark is not where the settler read it.
    static func checkWatermark(
        _ connection: SQLiteConnection,
        _ watermark: LedgerWatermarkAdvance?,
        store: String
    ) throws(CastleError) {
        guard let watermark else { return }
        try watermark.check(stored: try Self.watermark(connection, consumer: watermark.consumer), store: store)
    }

    /// Posts entries one by one inside the caller's transaction (``postLedgerEntries(_:postedAt:watermark:)``).
    static func post(
        _ connection: SQLiteConnection,
        _ entries: [LedgerEntryRecord],
        postedAt: Int64,
        watermark: LedgerWatermarkAdvance?,
        store: String
    ) throws(CastleError) -> LedgerPostOutcome {
        // Optimistic first: new keys are the rule, so the batch is planned without reading them and
        // written with `ON CONFLICT (key) DO NOTHING`; a key already there (no row changed) or a refusal
        // rolls back to the savepoint and plans again with the keys read (LedgerBatchContext.keysRead).
        // Batches with reversals, or with keys a settlement block may hold (not in `ledger_entries`, so
        // no conflict would tell), take the full way at once.
        if !entries.contains(where: { $0.reverses != nil || SettlementBlock.parseTradeKey($0.key) != nil }) {
            try connection.execute("SAVEPOINT optimistic")
            var context = try Self.context(connection, entries, keys: false, store: store)
            context.keysRead = false
            if case .success(let plan) = LedgerBatch.plan(entries, context: context),
                try Self.write(connection, plan, postedAt: postedAt, watermark: watermark, optimistic: true)
            {
                try connection.execute("RELEASE optimistic")
                return .committed(posted: plan.newEntries.count, alreadyPosted: plan.alreadyPosted)
            }
            try connection.execute("ROLLBACK TO optimistic")
            try connection.execute("RELEASE optimistic")
        }
        let plan: LedgerBatchPlan
        switch LedgerBatch.plan(entries, context: try Self.context(connection, entries, keys: true, store: store)) {
        case .success(let accepted): plan = accepted
        case .failure(let refusal): return .refused(refusal)
        }
        _ = try Self.write(connection, plan, postedAt: postedAt, watermark: watermark, optimistic: false)
        return .committed(posted: plan.newEntries.count, alreadyPosted: plan.alreadyPosted)
    }

    /// The last posting sequence number given, to an entry row or a block's entry (0 for none).
    static func lastSeq(_ connection: SQLiteConnection) throws(CastleError) -> Int64 {
        let last = try connection.prepare(
            """
            SELECT max(coalesce((SELECT max(seq) FROM ledger_entries), 0),
                coalesce((SELECT first_seq + entry_count - 1 FROM ledger_trade_blocks ORDER BY first_seq DESC LIMIT 1), 0))
            """
        )
        defer { last.reset() }
        try last.step()
        return last.int64(0)
    }

    /// Whether any of the block's keys is stored: in an earlier block of the consumer, or as an entry row.
    /// Entry keys are text, so the rows are found by the ranges of keys of each length of `seq` digits
    /// (within one length, text order is numeric order); a range also holds the shorter keys that are
    /// prefixes of its numbers (at most a tenth of the block, and only where such rows exist).
    static func anyKeyStored(_ connection: SQLiteConnection, _ block: SettlementBlock) throws(CastleError) -> Bool {
        let previous = try connection.prepare(
            """
            SELECT last_trade_seq FROM ledger_trade_blocks WHERE consumer = ? AND first_trade_seq <= ?
            ORDER BY first_trade_seq DESC LIMIT 1
            """
        )
        previous.bind(1, block.consumer)
        previous.bind(2, block.lastTradeSeq)
        let overlaps = try previous.step() && previous.int64(0) >= block.firstTradeSeq
        previous.reset()
        if overlaps { return true }
        let rows = try connection.prepare("SELECT key FROM ledger_entries WHERE key BETWEEN ? AND ?")
        defer { rows.reset() }
        var low = block.firstTradeSeq
        while low <= block.lastTradeSeq {
            let digits = String(low).utf8.count
            let high = digits >= 19 ? block.lastTradeSeq : min(block.lastTradeSeq, Self.power(of: 10, digits) - 1)
            rows.bind(1, SettlementBlock.tradeKey(consumer: block.consumer, seq: low))
            rows.bind(2, SettlementBlock.tradeKey(consumer: block.consumer, seq: high))
            while try rows.step() {
                if let parsed = SettlementBlock.parseTradeKey(rows.string(0)), parsed.consumer == block.consumer,
                    block.index(ofTradeSeq: parsed.seq) != nil
                {
                    return true
                }
            }
            rows.reset()
            if high == .max { break }
            low = high + 1
        }
        return false
    }

    private static func power(of base: Int64, _ exponent: Int) -> Int64 {
        var result: Int64 = 1
        for _ in 0..<exponent { result *= base }
        return result
    }

    /// The block holding trade `seq` of `consumer`, if any.
    static func block(
        _ connection: SQLiteConnection,
        consumer: String,
        tradeSeq: Int64,
        store: String
    ) throws(CastleError) -> StoredSettlementBlock? {
        let statement = try connection.prepare(
            """
            \(blockColumns) WHERE consumer = ? AND first_trade_seq <= ? ORDER BY first_trade_seq DESC LIMIT 1
            """
        )
        defer { statement.reset() }
        statement.bind(1, consumer)
        statement.bind(2, tradeSeq)
        guard try statement.step() else { return nil }
        let stored = try storedBlock(statement, store: store)
        return stored.block.index(ofTradeSeq: tradeSeq) == nil ? nil : stored
    }

    static let blockColumns =
        "SELECT first_seq, consumer, entry_count, posted_at, content_hash, body FROM ledger_trade_blocks"

    static func storedBlock(_ row: Statement, store: String) throws(CastleError) -> StoredSettlementBlock {
        try StoredSettlementBlock.decode(
            firstSeq: row.int64(0),
            consumer: row.string(1),
            entryCount: row.int64(2),
            postedAt: row.int64(3),
            contentHash: row.bytes(4),
            body: row.bytes(5),
            store: store
        )
    }

    /// Writes an accepted plan: the new entries, assets, balances and the watermark. With `optimistic`, an
    /// entry whose key is there already is not written, and the call returns false at once (the caller
    /// rolls back); else true.
    static func write(
        _ connection: SQLiteConnection,
        _ plan: LedgerBatchPlan,
        postedAt: Int64,
        watermark: LedgerWatermarkAdvance?,
        optimistic: Bool
    ) throws(CastleError) -> Bool {
        var seq = try lastSeq(connection)
        let insert = try connection.prepare(
            """
            INSERT INTO ledger_entries
            (seq, key, kind, ts, ref, reverses, memo, postings, content_hash, posted_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """ + (optimistic ? " ON CONFLICT (key) DO NOTHING" : "")
        )
        for (entry, hash) in plan.newEntries {
            seq += 1
            insert.bind(1, seq)
            insert.bind(2, entry.key)
            insert.bind(3, entry.kind)
            insert.bind(4, entry.ts)
            insert.bind(5, optional: entry.ref)
            insert.bind(6, optional: entry.reverses)
            insert.bind(7, optional: entry.memo)
            insert.bind(8, utf8: entry.postingsText)
            insert.bind(9, hash)
            insert.bind(10, postedAt)
            try insert.run()
            if optimistic && connection.changes == 0 { return false }
        }
        try write(connection, newAssets: plan.newAssets, balances: plan.balances, watermark: watermark)
        return true
    }

    /// Writes what every accepted post writes besides its entries: new assets, balances, the watermark.
    static func write(
        _ connection: SQLiteConnection,
        newAssets: [(code: String, scale: UInt8)],
        balances: [LedgerBalanceRecord],
        watermark: LedgerWatermarkAdvance?
    ) throws(CastleError) {
        let asset = try connection.prepare("INSERT INTO ledger_assets (code, scale) VALUES (?, ?)")
        for (code, scale) in newAssets {
            asset.bind(1, code)
            asset.bind(2, Int(scale))
            try asset.run()
        }
        let balance = try connection.prepare(
            """
            INSERT INTO ledger_balances (account, asset, balance) VALUES (?, ?, ?)
            ON CONFLICT (account, asset) DO UPDATE SET balance = excluded.balance
            """
        )
        for row in balances {
            balance.bind(1, row.account)
            balance.bind(2, row.asset)
            balance.bind(3, String(row.balance))
            try balance.run()
        }
        if let watermark {
            let move = try connection.prepare(
                "INSERT OR REPLACE INTO ledger_watermarks (consumer, through_seq) VALUES (?, ?)"
            )
            move.bind(1, watermark.consumer)
            move.bind(2, watermark.next)
            try move.run()
        }
    }

    /// The stored rows the batch names (``LedgerBatch/lookups(_:keys:)``), its keys' only when `keys`.
    static func context(
        _ connection: SQLiteConnection,
        _ entries: [LedgerEntryRecord],
        keys: Bool,
        store: String
    ) throws(CastleError) -> LedgerBatchContext {
        let lookups = LedgerBatch.lookups(entries, keys: keys)
        var context = LedgerBatchContext()
        // A key shaped like a settlement's may be in a block rather than a row.
        var blocks: [Int64: StoredSettlementBlock] = [:]
        func blockEntry(_ key: String) throws(CastleError) -> LedgerEntryRecord? {
            guard let (consumer, tradeSeq) = SettlementBlock.parseTradeKey(key) else { return nil }
            if let cached = blocks.values.first(where: {
                $0.block.consumer == consumer && $0.block.index(ofTradeSeq: tradeSeq) != nil
            }) {
                return cached.block.record(at: cached.block.index(ofTradeSeq: tradeSeq)!)
            }
            guard let stored = try block(connection, consumer: consumer, tradeSeq: tradeSeq, store: store) else {
                return nil
            }
            blocks[stored.firstSeq] = stored
            return stored.block.record(at: stored.block.index(ofTradeSeq: tradeSeq)!)
        }
        let hash = try connection.prepare("SELECT content_hash FROM ledger_entries WHERE key = ?")
        for key in lookups.keys {
            hash.bind(1, key)
            if try hash.step() {
                context.storedHashes[key] = hash.bytes(0)
            } else if let entry = try blockEntry(key) {
                context.storedHashes[key] = entry.contentHash
            }
            hash.reset()
        }
        let target = try connection.prepare("\(entryColumns) WHERE key = ?")
        let reversal = try connection.prepare("SELECT key FROM ledger_entries WHERE reverses = ?")
        for key in lookups.reversalTargets {
            target.bind(1, key)
            if try target.step() {
                context.reversalTargets[key] = try storedEntry(target, store: store).entry
            } else {
                context.reversalTargets[key] = try blockEntry(key)
            }
            target.reset()
            reversal.bind(1, key)
            if try reversal.step() { context.storedReversals[key] = reversal.string(0) }
            reversal.reset()
        }
        let scale = try connection.prepare("SELECT scale FROM ledger_assets WHERE code = ?")
        for code in lookups.assets {
            scale.bind(1, code)
            if try scale.step() { context.scales[code] = UInt8(truncatingIfNeeded: scale.int(0)) }
            scale.reset()
        }
        let balance = try connection.prepare("SELECT balance FROM ledger_balances WHERE account = ? AND asset = ?")
        for key in lookups.balances {
            balance.bind(1, key.account)
            balance.bind(2, key.asset)
            if try balance.step() { context.balances[key] = try balanceValue(balance.string(0), store: store) }
            balance.reset()
        }
        return context
    }

    static let entryColumns =
        "SELECT seq, posted_at, key, kind, ts, ref, reverses, memo, postings FROM ledger_entries"

    static func storedEntry(_ row: Statement, store: String) throws(CastleError) -> StoredLedgerEntry {
        let key = row.string(2)
        guard let postings = LedgerPostingsText.decode(row.string(8)) else {
            throw LedgerStoreErrors.damagedRow(store: store, key: key)
        }
        return StoredLedgerEntry(
            seq: row.int64(0),
            postedAt: row.int64(1),
            entry: LedgerEntryRecord(
                key: key,
                kind: row.string(3),
                ts: row.int64(4),
                ref: row.isNull(5) ? nil : row.string(5),
                reverses: row.isNull(6) ? nil : row.string(6),
                memo: row.isNull(7) ? nil : row.string(7),
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

    static func watermark(_ connection: SQLiteConnection, consumer: String) throws(CastleError) -> Int64 {
        let statement = try connection.prepare("SELECT through_seq FROM ledger_watermarks WHERE consumer = ?")
        statement.bind(1, consumer)
        defer { statement.reset() }
        return try statement.step() ? statement.int64(0) : 0
    }

    public func readLedgerEntries(_ query: LedgerEntryQuery) async throws(CastleError) -> [StoredLedgerEntry] {
        let displayURL = displayURL
        return try await withConnection { (connection) throws(CastleError) in
            // One fixed statement per combination of filters, so each can use its index.
            var sql = "\(Self.entryColumns) WHERE seq > ?"
            if query.ts != nil { sql += " AND ts BETWEEN ? AND ?" }
            if query.ref != nil { sql += " AND ref = ?" }
            sql += " ORDER BY seq LIMIT ?"
            let statement = try connection.prepare(sql)
            defer { statement.reset() }
            var index: Int32 = 1
            statement.bind(index, query.afterSeq)
            if let ts = query.ts {
                statement.bind(index + 1, ts.lowerBound)
                statement.bind(index + 2, ts.upperBound)
                index += 2
            }
            if let ref = query.ref {
                index += 1
                statement.bind(index, ref)
            }
            statement.bind(index + 1, query.limit)
            var rows: [StoredLedgerEntry] = []
            while try statement.step() { rows.append(try Self.storedEntry(statement, store: displayURL)) }
            var merge = LedgerEntryMerge(query: query, rows: rows)
            guard merge.wantsBlocks else { return merge.finish() }
            var blockSQL = "\(Self.blockColumns) WHERE first_seq + entry_count - 1 > ?"
            if query.ts != nil { blockSQL += " AND max_ts >= ? AND min_ts <= ?" }
            let blocks = try connection.prepare(blockSQL + " ORDER BY first_seq")
            defer { blocks.reset() }
            blocks.bind(1, query.afterSeq)
            if let ts = query.ts {
                blocks.bind(2, ts.lowerBound)
                blocks.bind(3, ts.upperBound)
            }
            while try blocks.step(), merge.add(try Self.storedBlock(blocks, store: displayURL)) {}
            return merge.finish()
        }
    }

    public func ledgerBalances(account: String?, asset: String?) async throws(CastleError) -> [LedgerBalanceRecord] {
        let displayURL = displayURL
        return try await withConnection { (connection) throws(CastleError) in
            var sql = """
                SELECT b.account, b.asset, a.scale, b.balance FROM ledger_balances b
                JOIN ledger_assets a ON a.code = b.asset WHERE 1 = 1
                """
            if account != nil { sql += " AND b.account = ?" }
            if asset != nil { sql += " AND b.asset = ?" }
            sql += " ORDER BY b.account, b.asset"
            let statement = try connection.prepare(sql)
            defer { statement.reset() }
            var index: Int32 = 0
            if let account {
                index += 1
                statement.bind(index, account)
            }
            if let asset {
                index += 1
                statement.bind(index, asset)
            }
            var result: [LedgerBalanceRecord] = []
            while try statement.step() {
                result.append(
                    LedgerBalanceRecord(
                        account: statement.string(0),
                        asset: statement.string(1),
                        scale: UInt8(truncatingIfNeeded: statement.int(2)),
                        balance: try Self.balanceValue(statement.string(3), store: displayURL)
                    )
                )
            }
            return result
        }
    }

    public func recomputedLedgerBalances() async throws(CastleError) -> [LedgerBalanceRecord] {
        let displayURL = displayURL
        return try await withConnection { (connection) throws(CastleError) in
            let statement = try connection.prepare("SELECT key, postings FROM ledger_entries ORDER BY seq")
            defer { statement.reset() }
            var sums: [LedgerBalanceKey: (scale: UInt8, balance: Int128)] = [:]
            while try statement.step() {
                guard let postings = LedgerPostingsText.decode(statement.string(1)) else {
                    throw LedgerStoreErrors.damagedRow(store: displayURL, key: statement.string(0))
                }
                for posting in postings {
                    sums[LedgerBalanceKey(account: posting.account, asset: posting.asset), default: (posting.scale, 0)]
                        .balance += Int128(posting.amount)
                }
            }
            let blocks = try connection.prepare("\(Self.blockColumns) ORDER BY first_seq")
            defer { blocks.reset() }
            while try blocks.step() {
                let block = try Self.storedBlock(blocks, store: displayURL).block
                for posting in block.postings {
                    let pair = block.pairs[Int(posting.pair)]
                    let asset = block.assets[Int(pair.asset)]
                    let key = LedgerBalanceKey(account: block.accounts[Int(pair.account)].name, asset: asset.code)
                    sums[key, default: (asset.scale, 0)].balance += Int128(posting.amount)
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
        try await withConnection { (connection) throws(CastleError) in
            try Self.watermark(connection, consumer: consumer)
        }
    }

    /// An `flock` on a file beside the database, as a matcher's partition: the kernel releases it however
    /// the process ends. The consumer's name is in the file name, bytes other than `[A-Za-z0-9._-]` as
    /// `%XX`.
    public func acquireSettlementLock(consumer: String) async throws(CastleError) -> (any PartitionLock)? {
        var name = ""
        for byte in consumer.utf8 {
            let scalar = Unicode.Scalar(byte)
            if byte < 128
                && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)
                    || "._-".unicodeScalars.contains(scalar))
            {
                name.unicodeScalars.append(scalar)
            } else {
                name += "%" + String(byte, radix: 16, uppercase: true)
            }
        }
        let lockPath = "\(path).settle-\(name).lock"
        let fd = Glibc.open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { throw CastleError(.cantCreate, "\(lockPath): cannot open the settlement lock") }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { return FileLock(fd: fd) }
        let failure = errno
        Glibc.close(fd)
        if failure != EWOULDBLOCK { throw CastleError(.ioError, "\(lockPath): cannot lock") }
        return nil
    }
}

extension Statement {
    /// Ends the statement's use: a statement left on a row would keep its read transaction open.
    func reset() { sqlite3_reset(handle) }

    func bind(_ index: Int32, optional value: String?) {
        if let value { bind(index, value) } else { sqlite3_bind_null(handle, index) }
    }
}
