public import CastleSupport
import Synchronization

// The row seam (``TableStore``) for the memory backend: its state shown as the same logical tables, with
// the same columns, as the SQL schema has, so that a snapshot of memory restores into SQLite or
// PostgreSQL and the other way round.

extension MemoryBackend: TableStore {
    /// The tables of the SQL schema that memory keeps, sorted by name.
    static let tables: [TableInfo] = [
        table(
            "client_order_ids",
            ["account": .text, "client_order_id": .text, "order_id": .integer, "content": .text],
            ["account", "client_order_id"]
        ),
        table("consumer_offsets", ["consumer": .text, "applied_offset": .integer, "last_seq": .integer], ["consumer"]),
        table(
            "dataset_orders",
            ["dataset": .text, "line": .integer, "symbol": .text, "body": .text],
            ["dataset", "line"]
        ),
        table(
            "dead_letters",
            ["id": .integer, "source": .text, "line": .integer, "body": .text, "attempts": .integer, "error": .text],
            ["id"]
        ),
        table("ledger_assets", ["code": .text, "scale": .integer], ["code"]),
        table(
            "ledger_balances",
            ["account": .text, "asset": .text, "balance": .text],
            ["account", "asset"]
        ),
        table(
            "ledger_entries",
            [
                "seq": .integer, "key": .text, "kind": .text, "ts": .integer, "ref": .text, "reverses": .text,
                "memo": .text, "postings": .text, "content_hash": .blob, "posted_at": .integer,
            ],
            ["seq"]
        ),
        table(
            "ledger_trade_blocks",
            [
                "first_seq": .integer, "consumer": .text, "first_trade_seq": .integer, "last_trade_seq": .integer,
                "entry_count": .integer, "min_ts": .integer, "max_ts": .integer, "posted_at": .integer,
                "content_hash": .blob, "body": .blob,
            ],
            ["first_seq"]
        ),
        table("ledger_watermarks", ["consumer": .text, "through_seq": .integer], ["consumer"]),
        table(
            "match_events",
            ["consumer": .text, "first_seq": .integer, "last_seq": .integer, "body": .blob],
            ["consumer", "first_seq"]
        ),
        table(
            "queue_cursors",
            ["part_index": .integer, "part_count": .integer, "through": .integer, "in_flight": .integer],
            ["part_index", "part_count"]
        ),
        table(
            "queue_messages",
            [
                "id": .integer, "source": .text, "line": .integer, "symbol": .text, "shard": .integer, "body": .text,
                "attempts": .integer, "lease_until": .integer, "state": .integer, "last_error": .text,
            ],
            ["id"]
        ),
        table(
            "reconcile_claims",
            [
                "window_from": .integer, "window_to": .integer, "side": .integer, "id": .text, "day": .integer,
                "run": .text,
            ],
            ["window_from", "window_to", "side", "id"]
        ),
        table("reconcile_resolutions", ["record": .text, "run": .text, "note": .text], ["record"]),
        table(
            "reconcile_results",
            ["run": .text, "seq": .integer, "class": .text, "record": .text, "ndjson": .text, "csv": .text],
            ["run", "seq"]
        ),
        table(
            "reconcile_runs",
            ["run": .text, "window_from": .integer, "window_to": .integer, "breaks": .integer],
            ["run"]
        ),
        table("reconcile_watermarks", ["source": .text, "through_day": .integer], ["source"]),
        table(
            "resting_orders",
            [
                "consumer": .text, "id": .integer, "symbol": .text, "side": .integer, "price": .integer,
                "qty": .integer, "account": .text, "post_only": .integer, "stp": .integer, "priority": .integer,
            ],
            ["consumer", "id"]
        ),
        table(
            "trades",
            [
                "consumer": .text, "seq": .integer, "symbol": .text, "price": .integer, "qty": .integer,
                "maker": .integer, "taker": .integer, "side": .text, "ts": .integer, "maker_account": .text,
                "taker_account": .text,
            ],
            ["consumer", "seq"]
        ),
    ]

    /// A table whose columns are in the order written (a dictionary literal keeps it).
    private static func table(
        _ name: String,
        _ columns: KeyValuePairs<String, ColumnType>,
        _ key: [String]
    ) -> TableInfo {
        TableInfo(name: name, columns: columns.map { TableColumn(name: $0.key, type: $0.value) }, primaryKey: key)
    }

    /// Everything the row seam shows: the store's state, the ledger's and reconcile's.
    struct Contents {
        var state: State
        var ledger: MemoryLedgerState
        var reconcile: MemoryReconcileState.State
    }

    /// Runs `body` holding all three locks, in this order (reconcile, ledger, store): the only place that
    /// holds more than one, so a copy or a swap of them all is one step that no writer sees half of.
    private func withContents<T>(_ body: (inout Contents) -> T) -> T {
        reconcile.state.withLock { reconcile in
            ledger.withLock { ledger in
                state.withLock { state in
                    var contents = Contents(state: state, ledger: ledger, reconcile: reconcile)
                    defer { (state, ledger, reconcile) = (contents.state, contents.ledger, contents.reconcile) }
                    return body(&contents)
                }
            }
        }
    }

    public func withTableRead<T>(
        _ body: (any TableReadTransaction) async throws(CastleError) -> T
    ) async throws(CastleError) -> T {
        // A copy of the state taken under the locks is the consistent read (copy on write: cheap until a
        // writer changes something).
        let copy = withContents { $0 }
        return try await body(MemoryTableRead(contents: copy))
    }

    public func restoreTables(
        schemaVersion: Int,
        replace: Bool,
        region: String?,
        _ body: (any TableRestoreTransaction) async throws(CastleError) -> Void
    ) async throws(CastleError) {
        // Memory has no schema to migrate; a snapshot newer than this castle is refused all the same.
        _ = try Self.migrationsToApply(
            upTo: schemaVersion,
            applied: [],
            known: Migration.all(for: .sqlite),
            store: displayURL
        )
        if !replace {
            let current = MemoryTableRead(contents: withContents { $0 })
            for table in Self.tables {
                let rows = current.rows(of: table.name).count
                if rows > 0 { throw Self.notEmpty(displayURL, table: table.name, rows: Int64(rows)) }
            }
        }
        let restore = MemoryTableRestore()
        try await body(restore)
        var fresh = try restore.contents(store: displayURL)
        // Swapped in whole: nothing of the restore is visible before this line, and all of it after. The
        // locks held now (partitions, settlers, reconcile) stay held.
        withContents { contents in
            fresh.state.region = region ?? contents.state.region
            fresh.state.ownedPartitions = contents.state.ownedPartitions
            fresh.ledger.settlers = contents.ledger.settlers
            fresh.reconcile.locked = contents.reconcile.locked
            contents = fresh
        }
    }

    public func storedRegion() async throws(CastleError) -> String? {
        state.withLock { $0.region }
    }

    public func recordRegion(_ name: String) async throws(CastleError) {
        state.withLock { $0.region = name }
    }
}

/// Orders rows by their primary key as SQL does: integers by value, text and blobs bytewise.
func precedes(_ left: [RowValue], _ right: [RowValue], key: [Int]) -> Bool {
    for index in key {
        switch (left[index], right[index]) {
        case (.integer(let a), .integer(let b)) where a != b: return a < b
        case (.text(let a), .text(let b)) where a != b: return Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8))
        case (.blob(let a), .blob(let b)) where a != b: return a.lexicographicallyPrecedes(b)
        case (.null, .null), (.integer, .integer), (.text, .text), (.blob, .blob): continue
        case (.null, _): return true
        default: return false
        }
    }
    return false
}

final class MemoryTableRead: TableReadTransaction {
    private let state: MemoryBackend.State
    private let ledger: MemoryLedgerState
    private let reconcile: MemoryReconcileState.State

    init(contents: MemoryBackend.Contents) {
        state = contents.state
        ledger = contents.ledger
        reconcile = contents.reconcile
    }

    var schemaVersion: Int { Migration.all(for: .sqlite).last?.version ?? 0 }
    var region: String? { state.region }
    var tables: [TableInfo] { MemoryBackend.tables }

    func scan(
        _ table: TableInfo,
        _ visit: ([[RowValue]]) async throws(CastleError) -> Void
    ) async throws(CastleError) {
        var rows = self.rows(of: table.name)
        let key = table.primaryKey.compactMap { name in table.columns.firstIndex { $0.name == name } }
        rows.sort { precedes($0, $1, key: key) }
        var start = 0
        while start < rows.count {
            let end = min(rows.count, start + tableRowsBatch_max)
            try await visit(Array(rows[start..<end]))
            start = end
        }
    }

    /// The rows of one logical table, unsorted, in the column order of ``MemoryBackend/tables``.
    func rows(of table: String) -> [[RowValue]] {
        switch table {
        case "client_order_ids":
            return state.clientOrders.values.map { claim in
                [.text(claim.account), .text(claim.clientOrderID), .integer(claim.orderID), .text(claim.content)]
            }
        case "consumer_offsets":
            return state.consumers.map { name, consumer in
                [.text(name), .integer(consumer.offset), .integer(consumer.lastSeq)]
            }
        case "dataset_orders":
            return state.datasets.flatMap { name, rows in
                rows.values.map { [.text(name), .integer($0.line), .text($0.symbol), .text($0.body)] }
            }
        case "dead_letters":
            return state.deadLetters.map { letter in
                [
                    .integer(letter.id), .text(letter.source), .integer(letter.line), .text(letter.body),
                    .integer(Int64(letter.attempts)), .text(letter.error),
                ]
            }
        case "ledger_assets":
            return ledger.scales.map { code, scale in [.text(code), .integer(Int64(scale))] }
        case "ledger_balances":
            // As the SQL backends write them: the Int128 as its decimal text.
            return ledger.balances.map { key, balance in [.text(key.account), .text(key.asset), .text(String(balance))]
            }
        case "ledger_entries":
            return zip(ledger.entries, ledger.inBlock).filter { !$0.1 }.map { stored, _ in
                let entry = stored.entry
                return [
                    .integer(stored.seq), .text(entry.key), .text(entry.kind), .integer(entry.ts),
                    entry.ref.map(RowValue.text) ?? .null, entry.reverses.map(RowValue.text) ?? .null,
                    entry.memo.map(RowValue.text) ?? .null, .text(LedgerPostingsText.encode(entry.postings)),
                    .blob(ledger.hashes[entry.key] ?? entry.contentHash), .integer(stored.postedAt),
                ]
            }
        case "ledger_trade_blocks":
            return ledger.blocks.values.map { stored in
                let block = stored.block
                let body = block.encoded()
                return [
                    .integer(stored.firstSeq), .text(block.consumer), .integer(block.firstTradeSeq),
                    .integer(block.lastTradeSeq), .integer(Int64(block.count)), .integer(block.tsRange.lowerBound),
                    .integer(block.tsRange.upperBound), .integer(stored.postedAt),
                    .blob(SettlementBlock.contentHash(body)), .blob(body),
                ]
            }
        case "ledger_watermarks":
            return ledger.watermarks.map { consumer, through in [.text(consumer), .integer(through)] }
        case "match_events":
            return state.events.flatMap { consumer, segments in
                segments.map { [.text(consumer), .integer($0.firstSeq), .integer($0.lastSeq), .blob($0.body)] }
            }
        case "queue_cursors":
            return state.cursors.map { partition, cursor in
                [
                    .integer(Int64(partition.index)), .integer(Int64(partition.count)), .integer(cursor.through),
                    .integer(cursor.inFlight),
                ]
            }
        case "queue_messages":
            let errors = Dictionary(state.deadLetters.map { ($0.id, $0.error) }, uniquingKeysWith: { $1 })
            return state.messages.map { entry in
                let message = entry.message
                // As the SQL backends mark them: 0 waiting, 2 dead (with the dead letter's error).
                return [
                    .integer(message.id), .text(message.source), .integer(message.line), .text(message.symbol),
                    .integer(Partition.shard(of: message.symbol)), .text(message.body),
                    .integer(Int64(message.attempts)), .integer(0), .integer(entry.done ? 2 : 0),
                    entry.done ? errors[message.id].map(RowValue.text) ?? .null : .null,
                ]
            }
        case "reconcile_claims":
            return reconcile.claims.flatMap { days, claims in
                claims.map { claim in
                    [
                        .integer(Int64(days.lowerBound)), .integer(Int64(days.upperBound)),
                        .integer(Int64(claim.side.rawValue)), .text(claim.id), .integer(Int64(claim.day)),
                        .text(claim.run),
                    ]
                }
            }
        case "reconcile_resolutions":
            return reconcile.resolutions.map { record, resolution in
                [.text(record), .text(resolution.run), .text(resolution.note)]
            }
        case "reconcile_results":
            // `seq` is the result's place in its run's report, from 0, as the SQL backends number them.
            return reconcile.runs.values.flatMap { run in
                run.results.enumerated().map { seq, result in
                    [
                        .text(run.run), .integer(Int64(seq)), .text(result.resultClass), .text(result.record),
                        .text(result.ndjson), .text(result.csv),
                    ]
                }
            }
        case "reconcile_runs":
            return reconcile.runs.values.map { run in
                [
                    .text(run.run), run.windowFrom.map { .integer(Int64($0)) } ?? .null,
                    run.windowTo.map { .integer(Int64($0)) } ?? .null, .integer(Int64(run.breaks)),
                ]
            }
        case "reconcile_watermarks":
            return reconcile.watermarks.map { source, day in [.text(source), .integer(Int64(day))] }
        case "resting_orders":
            return state.consumers.flatMap { name, consumer in
                consumer.orders.map { order in
                    [
                        .text(name), .integer(Int64(bitPattern: order.id)), .text(order.symbol),
                        .integer(Int64(order.side)), .integer(order.price), .integer(order.qty), .text(order.account),
                        .integer(order.postOnly ? 1 : 0), .integer(Int64(order.stp)), .integer(order.priority),
                    ]
                }
            }
        case "trades":
            return state.trades.flatMap { consumer, trades in
                trades.map { trade in
                    [
                        .text(consumer), .integer(trade.seq), .text(trade.symbol), .integer(trade.price),
                        .integer(trade.qty), .integer(Int64(bitPattern: trade.maker)),
                        .integer(Int64(bitPattern: trade.taker)), .text(trade.side),
                        trade.ts.map(RowValue.integer) ?? .null, trade.makerAccount.map(RowValue.text) ?? .null,
                        trade.takerAccount.map(RowValue.text) ?? .null,
                    ]
                }
            }
        default:
            return []
        }
    }
}

/// Rows collected by table until the restore ends, then turned into a whole new state.
final class MemoryTableRestore: TableRestoreTransaction {
    var tables: [TableInfo] { MemoryBackend.tables }
    private var rows: [String: [[String: RowValue]]] = [:]

    func insert(_ rows: [[RowValue]], into table: TableInfo, columns: [String]) async throws(CastleError) {
        for row in rows {
            self.rows[table.name, default: []].append(Dictionary(zip(columns, row), uniquingKeysWith: { $1 }))
        }
    }

    func contents(store: String) throws(CastleError) -> MemoryBackend.Contents {
        var state = MemoryBackend.State()
        for row in rows["client_order_ids"] ?? [] {
            let claim = ClientOrderClaim(
                account: text(row, "account"),
                clientOrderID: text(row, "client_order_id"),
                orderID: integer(row, "order_id"),
                content: text(row, "content")
            )
            state.clientOrders[claim.key] = claim
        }
        for row in rows["dataset_orders"] ?? [] {
            let order = OrderRow(line: integer(row, "line"), symbol: text(row, "symbol"), body: text(row, "body"))
            state.datasets[text(row, "dataset"), default: [:]][order.line] = order
        }
        for row in rows["dead_letters"] ?? [] {
            state.deadLetters.append(
                DeadLetter(
                    id: integer(row, "id"),
                    source: text(row, "source"),
                    line: integer(row, "line"),
                    body: text(row, "body"),
                    attempts: Int(integer(row, "attempts")),
                    error: text(row, "error")
                )
            )
        }
        let messages = (rows["queue_messages"] ?? []).sorted { integer($0, "id") < integer($1, "id") }
        for (index, row) in messages.enumerated() {
            // Memory's ids are positions in its log: dense from 1, as the SQL queues give them.
            guard integer(row, "id") == Int64(index + 1) else {
                throw CastleError(.dataError, "\(store): queue_messages ids must be 1, 2, 3, …: memory keeps no gaps")
            }
            let message = QueueMessage(
                id: integer(row, "id"),
                source: text(row, "source"),
                line: integer(row, "line"),
                symbol: text(row, "symbol"),
                body: text(row, "body"),
                attempts: Int(integer(row, "attempts"))
            )
            state.messages.append(MemoryBackend.Message(message: message, done: integer(row, "state") != 0))
            state.enqueued.insert("\(message.source)\u{0}\(message.line)")
        }
        for row in rows["queue_cursors"] ?? [] {
            let index = Int(integer(row, "part_index"))
            let count = Int(integer(row, "part_count"))
            guard count >= 1, index >= 0, index < count else {
                throw CastleError(.dataError, "\(store): queue_cursors has partition \(index)/\(count)")
            }
            state.cursors[Partition(index: index, count: count)] = (integer(row, "through"), integer(row, "in_flight"))
        }
        for row in rows["consumer_offsets"] ?? [] {
            state.consumers[text(row, "consumer"), default: MatcherState()].offset = integer(row, "applied_offset")
            state.consumers[text(row, "consumer"), default: MatcherState()].lastSeq = integer(row, "last_seq")
        }
        for row in rows["resting_orders"] ?? [] {
            state.consumers[text(row, "consumer"), default: MatcherState()].orders.append(
                RestingOrderRow(
                    id: UInt64(bitPattern: integer(row, "id")),
                    symbol: text(row, "symbol"),
                    side: UInt8(truncatingIfNeeded: integer(row, "side")),
                    price: integer(row, "price"),
                    qty: integer(row, "qty"),
                    account: text(row, "account"),
                    postOnly: integer(row, "post_only") != 0,
                    stp: UInt8(truncatingIfNeeded: integer(row, "stp")),
                    priority: integer(row, "priority")
                )
            )
        }
        for row in (rows["match_events"] ?? []).sorted(by: { integer($0, "first_seq") < integer($1, "first_seq") }) {
            var body: [UInt8] = []
            if case .blob(let bytes) = row["body"] { body = bytes }
            state.events[text(row, "consumer"), default: []].append(
                EventSegment(firstSeq: integer(row, "first_seq"), lastSeq: integer(row, "last_seq"), body: body)
            )
        }
        for row in (rows["trades"] ?? []).sorted(by: { integer($0, "seq") < integer($1, "seq") }) {
            state.trades[text(row, "consumer"), default: []].append(
                TradeRow(
                    seq: integer(row, "seq"),
                    symbol: text(row, "symbol"),
                    price: integer(row, "price"),
                    qty: integer(row, "qty"),
                    maker: UInt64(bitPattern: integer(row, "maker")),
                    taker: UInt64(bitPattern: integer(row, "taker")),
                    side: text(row, "side"),
                    ts: optionalInteger(row, "ts"),
                    makerAccount: optionalText(row, "maker_account"),
                    takerAccount: optionalText(row, "taker_account")
                )
            )
        }
        return MemoryBackend.Contents(
            state: state,
            ledger: try ledger(store: store),
            reconcile: try reconcile(store: store)
        )
    }

    /// The ledger's tables as memory keeps them: entries by posting order (seq 1, 2, 3, …, as every store
    /// numbers them), the indexes beside them, the projection, the assets' scales and the watermarks.
    private func ledger(store: String) throws(CastleError) -> MemoryLedgerState {
        var ledger = MemoryLedgerState()
        for row in rows["ledger_assets"] ?? [] {
            ledger.scales[text(row, "code")] = try narrow(integer(row, "scale"), store, "ledger_assets.scale")
        }
        for row in rows["ledger_balances"] ?? [] {
            let key = LedgerBalanceKey(account: text(row, "account"), asset: text(row, "asset"))
            guard let balance = Int128(text(row, "balance")) else {
                throw CastleError(.dataError, "\(store): ledger_balances has a balance that is not an integer")
            }
            guard ledger.scales[key.asset] != nil else {
                throw CastleError(
                    .dataError,
                    "\(store): ledger_balances names asset \(key.asset), which ledger_assets lacks"
                )
            }
            ledger.balances[key] = balance
        }
        for row in rows["ledger_watermarks"] ?? [] {
            ledger.watermarks[text(row, "consumer")] = integer(row, "through_seq")
        }
        // Entry rows and the blocks' entries, by seq: memory keeps them in one array, without gaps.
        var all: [(stored: StoredLedgerEntry, hash: [UInt8]?, inBlock: Bool)] = []
        for row in rows["ledger_trade_blocks"] ?? [] {
            guard case .blob(let hash) = row["content_hash"], case .blob(let body) = row["body"] else {
                throw CastleError(.dataError, "\(store): ledger_trade_blocks has a row without its body or hash")
            }
            let stored = try StoredSettlementBlock.decode(
                firstSeq: integer(row, "first_seq"),
                consumer: text(row, "consumer"),
                entryCount: integer(row, "entry_count"),
                postedAt: integer(row, "posted_at"),
                contentHash: hash,
                body: body,
                store: store
            )
            ledger.blocks[stored.firstSeq] = stored
            for index in 0..<stored.block.count { all.append((stored.entry(at: index), nil, true)) }
        }
        for row in rows["ledger_entries"] ?? [] {
            let seq = integer(row, "seq")
            guard let postings = LedgerPostingsText.decode(text(row, "postings")) else {
                throw CastleError(.dataError, "\(store): ledger_entries seq \(seq) has postings memory cannot read")
            }
            let entry = LedgerEntryRecord(
                key: text(row, "key"),
                kind: text(row, "kind"),
                ts: integer(row, "ts"),
                ref: optionalText(row, "ref"),
                reverses: optionalText(row, "reverses"),
                memo: optionalText(row, "memo"),
                postings: postings
            )
            let hash: [UInt8]? = if case .blob(let bytes) = row["content_hash"] { bytes } else { nil }
            all.append((StoredLedgerEntry(seq: seq, postedAt: integer(row, "posted_at"), entry: entry), hash, false))
        }
        all.sort { $0.stored.seq < $1.stored.seq }
        for (index, item) in all.enumerated() {
            let entry = item.stored.entry
            guard item.stored.seq == Int64(index + 1) else {
                throw CastleError(
                    .dataError,
                    "\(store): ledger_entries and ledger_trade_blocks seqs must be 1, 2, 3, …: memory keeps no gaps"
                )
            }
            guard ledger.positions[entry.key] == nil else {
                throw CastleError(.dataError, "\(store): the ledger has key \(entry.key) twice")
            }
            if let target = entry.reverses, ledger.reversals[target] != nil {
                throw CastleError(.dataError, "\(store): ledger_entries reverses \(target) twice")
            }
            ledger.append(
                entry,
                hash: item.hash ?? entry.contentHash,
                postedAt: item.stored.postedAt,
                inBlock: item.inBlock
            )
        }
        return ledger
    }

    /// Reconcile's tables as memory keeps them: each run with its results in report order (seq 0, 1, 2, …,
    /// as every store numbers them), the watermarks, and each resolution with its run.
    private func reconcile(store: String) throws(CastleError) -> MemoryReconcileState.State {
        var reconcile = MemoryReconcileState.State()
        for row in rows["reconcile_runs"] ?? [] {
            let run = ReconcileRun(
                run: text(row, "run"),
                windowFrom: try optionalInteger(row, "window_from").map { (day) throws(CastleError) in
                    try narrow(day, store, "reconcile_runs.window_from")
                },
                windowTo: try optionalInteger(row, "window_to").map { (day) throws(CastleError) in
                    try narrow(day, store, "reconcile_runs.window_to")
                },
                breaks: try narrow(integer(row, "breaks"), store, "reconcile_runs.breaks"),
                results: []
            )
            reconcile.runs[run.run] = run
        }
        var results: [String: [ReconcileResultRow]] = [:]
        for row in (rows["reconcile_results"] ?? []).sorted(by: { integer($0, "seq") < integer($1, "seq") }) {
            let run = text(row, "run")
            guard integer(row, "seq") == Int64(results[run]?.count ?? 0) else {
                throw CastleError(
                    .dataError,
                    "\(store): reconcile_results seqs of a run must be 0, 1, 2, …: memory keeps no gaps"
                )
            }
            results[run, default: []].append(
                ReconcileResultRow(
                    resultClass: text(row, "class"),
                    record: text(row, "record"),
                    ndjson: text(row, "ndjson"),
                    csv: text(row, "csv")
                )
            )
        }
        for (run, rows) in results {
            guard reconcile.runs[run] != nil else {
                throw CastleError(
                    .dataError,
                    "\(store): reconcile_results names run \(run), which reconcile_runs lacks"
                )
            }
            reconcile.runs[run]?.results = rows
        }
        for row in rows["reconcile_watermarks"] ?? [] {
            reconcile.watermarks[text(row, "source")] = try narrow(
                integer(row, "through_day"),
                store,
                "reconcile_watermarks.through_day"
            )
        }
        for row in rows["reconcile_resolutions"] ?? [] {
            reconcile.resolutions[text(row, "record")] = (text(row, "run"), text(row, "note"))
        }
        for row in rows["reconcile_claims"] ?? [] {
            let from: Int32 = try narrow(integer(row, "window_from"), store, "reconcile_claims.window_from")
            let to: Int32 = try narrow(integer(row, "window_to"), store, "reconcile_claims.window_to")
            guard from <= to, let side = ReconcileClaim.Side(rawValue: Int(integer(row, "side"))) else {
                throw CastleError(.dataError, "\(store): reconcile_claims has a claim memory cannot hold")
            }
            reconcile.claims[from...to, default: []].append(
                ReconcileClaim(
                    side: side,
                    id: text(row, "id"),
                    day: try narrow(integer(row, "day"), store, "reconcile_claims.day"),
                    run: text(row, "run"),
                    days: from...to
                )
            )
        }
        return reconcile
    }
}

/// A row's value by column name, as the restore collected it; a missing or NULL value is 0, "" or nil.
private func integer(_ row: [String: RowValue], _ name: String) -> Int64 {
    optionalInteger(row, name) ?? 0
}

private func text(_ row: [String: RowValue], _ name: String) -> String {
    optionalText(row, name) ?? ""
}

private func optionalInteger(_ row: [String: RowValue], _ name: String) -> Int64? {
    if case .integer(let value) = row[name] { return value }
    return nil
}

private func optionalText(_ row: [String: RowValue], _ name: String) -> String? {
    if case .text(let value) = row[name] { return value }
    return nil
}

/// An integer column that memory keeps narrower than SQL's 64 bits; a value beyond it is refused.
private func narrow<T: FixedWidthInteger>(_ value: Int64, _ store: String, _ column: String) throws(CastleError) -> T {
    guard let narrowed = T(exactly: value) else {
        throw CastleError(.dataError, "\(store): \(column) \(value) is out of range for the memory backend")
    }
    return narrowed
}
