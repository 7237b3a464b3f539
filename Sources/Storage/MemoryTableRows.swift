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

    public func withTableRead<T>(
        _ body: (any TableReadTransaction) async throws(CastleError) -> T
    ) async throws(CastleError) -> T {
        // A copy of the state taken under the lock is the consistent read (copy on write: cheap until a
        // writer changes something).
        let copy = state.withLock { $0 }
        return try await body(MemoryTableRead(state: copy))
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
            let current = MemoryTableRead(state: state.withLock { $0 })
            for table in Self.tables {
                let rows = current.rows(of: table.name).count
                if rows > 0 { throw Self.notEmpty(displayURL, table: table.name, rows: Int64(rows)) }
            }
        }
        let restore = MemoryTableRestore()
        try await body(restore)
        var fresh = try restore.state(store: displayURL)
        fresh.region = region ?? state.withLock { $0.region }
        // Swapped in whole: nothing of the restore is visible before this line, and all of it after.
        state.withLock { $0 = fresh }
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

    init(state: MemoryBackend.State) { self.state = state }

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

    func state(store: String) throws(CastleError) -> MemoryBackend.State {
        var state = MemoryBackend.State()
        func integer(_ row: [String: RowValue], _ name: String) -> Int64 {
            if case .integer(let value) = row[name] { return value }
            return 0
        }
        func text(_ row: [String: RowValue], _ name: String) -> String {
            if case .text(let value) = row[name] { return value }
            return ""
        }
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
            let ts: Int64? = if case .integer(let value) = row["ts"] { value } else { nil }
            let makerAccount: String? = if case .text(let value) = row["maker_account"] { value } else { nil }
            let takerAccount: String? = if case .text(let value) = row["taker_account"] { value } else { nil }
            state.trades[text(row, "consumer"), default: []].append(
                TradeRow(
                    seq: integer(row, "seq"),
                    symbol: text(row, "symbol"),
                    price: integer(row, "price"),
                    qty: integer(row, "qty"),
                    maker: UInt64(bitPattern: integer(row, "maker")),
                    taker: UInt64(bitPattern: integer(row, "taker")),
                    side: text(row, "side"),
                    ts: ts,
                    makerAccount: makerAccount,
                    takerAccount: takerAccount
                )
            )
        }
        return state
    }
}
