internal import CSQLite
public import CastleSupport
public import Storage

#if canImport(Glibc)
import Glibc
#endif

/// The embedded backend: one SQLite file in WAL mode, one writer connection with prepared statements,
/// batched transactions. The queue is a table with lease columns; a partition's owner holds an `flock`
/// on a file beside the database, which the kernel releases however the process ends.
public final class SQLiteBackend: Store, MessageQueue, SchemaDatabase, @unchecked Sendable {
    public let displayURL: String
    let path: String
    /// The writer connection, on a thread of its own.
    private let connection: SQLiteSerialConnection

    private init(url: StorageURL, connection: SQLiteSerialConnection) {
        displayURL = url.description
        path = url.path
        self.connection = connection
    }

    /// Opens the database file at the URL's path, on a thread of its own. Unless `create`, a missing file
    /// is ``StorageRegistry/missingStore(_:)``: only `castle migrate up` makes a store.
    public static func open(url: StorageURL, create: Bool = false) async throws(CastleError) -> SQLiteBackend {
        if !create && access(url.path, F_OK) != 0 { throw StorageRegistry.missingStore(url) }
        return SQLiteBackend(
            url: url,
            connection: try await SQLiteSerialConnection.open(path: url.path, name: url.description)
        )
    }

    public var schema: (any SchemaDatabase)? { self }
    public var dialect: SQLDialect { .sqlite }

    /// Closes the connection and ends its thread.
    public func close() async {
        await connection.close()
    }

    /// `work` with the writer connection, on its thread.
    func withConnection<T: Sendable>(
        _ work: @escaping @Sendable (SQLiteConnection) throws(CastleError) -> T
    ) async throws(CastleError) -> T {
        try await connection.run(work)
    }

    // MARK: Schema

    public func appliedMigrations() async throws(CastleError) -> [AppliedMigration] {
        try await withConnection { (connection) throws(CastleError) in try Self.readMigrations(connection) }
    }

    static func readMigrations(_ connection: SQLiteConnection) throws(CastleError) -> [AppliedMigration] {
        guard try connection.tableExists("castle_migrations") else { return [] }
        let statement = try connection.prepare("SELECT version, name, checksum FROM castle_migrations ORDER BY version")
        var applied: [AppliedMigration] = []
        while try statement.step() {
            applied.append(
                AppliedMigration(
                    version: statement.int(0),
                    name: statement.string(1),
                    checksum: statement.string(2)
                )
            )
        }
        return applied
    }

    public func withMigrationTransaction(
        _ work: (any SQLSession) async throws(CastleError) -> Void
    )
        async throws(CastleError)
    {
        // A connection of its own: BEGIN IMMEDIATE is the lock, held across the migration's statements.
        let connection = try await SQLiteSerialConnection.open(path: path, name: displayURL)
        let session = SQLiteMigrationSession(connection: connection)
        do throws(CastleError) {
            try await connection.run { (connection) throws(CastleError) in
                // A second `migrate up` waits for the one in progress (up to five minutes), not just the
                // 10 s that other writers wait: a migration may rewrite a large table, and the first run's
                // statements may wait for a loaded machine's CPU. Each attempt waits 10 s in the busy handler.
                let started = monotonicNanoseconds()
                while true {
                    do throws(CastleError) {
                        try connection.execute("BEGIN IMMEDIATE")
                        break
                    } catch  where error.kind == .temporaryFailure && monotonicNanoseconds() - started < 300_000_000_000
                    {
                        continue
                    }
                }
                try connection.execute(SQLiteBackend.migrationsTable)
            }
            try await work(session)
            try await connection.run { (connection) throws(CastleError) in try connection.execute("COMMIT") }
        } catch {
            _ = try? await connection.run { (connection) throws(CastleError) in try connection.execute("ROLLBACK") }
            await connection.close()
            throw error
        }
        await connection.close()
    }

    // MARK: Store

    public func beginIngest(dataset name: String) async throws(CastleError) -> any IngestSession {
        try await SQLiteIngest.begin(
            path: path,
            name: displayURL,
            sql: "INSERT OR IGNORE INTO dataset_orders (dataset, line, symbol, body) VALUES (?, ?, ?, ?)"
        ) { statement, row in
            statement.bind(1, name)
            statement.bind(2, row.line)
            statement.bind(3, row.symbol)
            statement.bind(4, row.body)
        }
    }

    public func datasets() async throws(CastleError) -> [DatasetInfo] {
        try await withConnection { (connection) throws(CastleError) in
            let statement = try connection.prepare(
                "SELECT dataset, count(*) FROM dataset_orders GROUP BY dataset ORDER BY dataset"
            )
            var result: [DatasetInfo] = []
            while try statement.step() {
                result.append(DatasetInfo(name: statement.string(0), rows: statement.int64(1)))
            }
            return result
        }
    }

    public func readDataset(_ name: String, afterLine: Int64, limit: Int) async throws(CastleError) -> [OrderRow] {
        try await withConnection { (connection) throws(CastleError) in
            let statement = try connection.prepare(
                "SELECT line, symbol, body FROM dataset_orders WHERE dataset = ? AND line > ? ORDER BY line LIMIT ?"
            )
            statement.bind(1, name)
            statement.bind(2, afterLine)
            statement.bind(3, limit)
            var rows: [OrderRow] = []
            while try statement.step() {
                rows.append(OrderRow(line: statement.int64(0), symbol: statement.string(1), body: statement.string(2)))
            }
            return rows
        }
    }

    public func loadMatcherState(consumer: String) async throws(CastleError) -> MatcherState {
        try await withConnection { (connection) throws(CastleError) in
            var state = MatcherState()
            let offsets = try connection.prepare(
                "SELECT applied_offset, last_seq FROM consumer_offsets WHERE consumer = ?"
            )
            offsets.bind(1, consumer)
            if try offsets.step() {
                state.offset = offsets.int64(0)
                state.lastSeq = offsets.int64(1)
            }
            let orders = try connection.prepare(
                """
                SELECT id, symbol, side, price, qty, account, post_only, stp, priority
                FROM resting_orders WHERE consumer = ? ORDER BY priority
                """
            )
            orders.bind(1, consumer)
            while try orders.step() {
                state.orders.append(
                    RestingOrderRow(
                        id: UInt64(bitPattern: orders.int64(0)),
                        symbol: orders.string(1),
                        side: UInt8(truncatingIfNeeded: orders.int(2)),
                        price: orders.int64(3),
                        qty: orders.int64(4),
                        account: orders.string(5),
                        postOnly: orders.int(6) != 0,
                        stp: UInt8(truncatingIfNeeded: orders.int(7)),
                        priority: orders.int64(8)
                    )
                )
            }
            return state
        }
    }

    public func commitMatch(_ commit: MatchCommit, previousOffset: Int64) async throws(CastleError) {
        let displayURL = displayURL
        try await withConnection { (connection) throws(CastleError) in
            // Not fsynced: the batch is a deterministic function of queue messages that are (see
            // ``Store/commitMatch(_:previousOffset:)``).
            try connection.writeTransaction(durable: false) { () throws(CastleError) in
                let current = try connection.prepare("SELECT applied_offset FROM consumer_offsets WHERE consumer = ?")
                current.bind(1, commit.consumer)
                let stored = try current.step() ? current.int64(0) : 0
                guard stored == previousOffset else {
                    throw StoreErrors.offsetMoved(
                        store: displayURL,
                        consumer: commit.consumer,
                        stored: stored,
                        expected: previousOffset
                    )
                }
                if let events = commit.events {
                    let insert = try connection.prepare(
                        "INSERT INTO match_events (consumer, first_seq, last_seq, body) VALUES (?, ?, ?, ?)"
                    )
                    insert.bind(1, commit.consumer)
                    insert.bind(2, events.firstSeq)
                    insert.bind(3, events.lastSeq)
                    insert.bind(4, events.body)
                    try insert.run()
                }
                let trade = try connection.prepare(
                    """
                    INSERT INTO trades
                    (consumer, seq, symbol, price, qty, maker, taker, side, ts, maker_account, taker_account)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """
                )
                for row in commit.trades {
                    trade.bind(1, commit.consumer)
                    trade.bind(2, row.seq)
                    trade.bind(3, row.symbol)
                    trade.bind(4, row.price)
                    trade.bind(5, row.qty)
                    trade.bind(6, Int64(bitPattern: row.maker))
                    trade.bind(7, Int64(bitPattern: row.taker))
                    trade.bind(8, row.side)
                    trade.bind(9, row.ts)
                    trade.bind(10, optional: row.makerAccount)
                    trade.bind(11, optional: row.takerAccount)
                    try trade.run()
                }
                let delete = try connection.prepare("DELETE FROM resting_orders WHERE consumer = ? AND id = ?")
                for id in commit.deletes {
                    delete.bind(1, commit.consumer)
                    delete.bind(2, Int64(bitPattern: id))
                    try delete.run()
                }
                let upsert = try connection.prepare(
                    """
                    INSERT OR REPLACE INTO resting_orders
                    (consumer, id, symbol, side, price, qty, account, post_only, stp, priority)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """
                )
                for row in commit.upserts {
                    upsert.bind(1, commit.consumer)
                    upsert.bind(2, Int64(bitPattern: row.id))
                    upsert.bind(3, row.symbol)
                    upsert.bind(4, Int(row.side))
                    upsert.bind(5, row.price)
                    upsert.bind(6, row.qty)
                    upsert.bind(7, row.account)
                    upsert.bind(8, row.postOnly ? 1 : 0)
                    upsert.bind(9, Int(row.stp))
                    upsert.bind(10, row.priority)
                    try upsert.run()
                }
                let offset = try connection.prepare(
                    "INSERT OR REPLACE INTO consumer_offsets (consumer, applied_offset, last_seq) VALUES (?, ?, ?)"
                )
                offset.bind(1, commit.consumer)
                offset.bind(2, commit.offset)
                offset.bind(3, commit.lastSeq)
                try offset.run()
            }
        }
    }

    public func eventConsumers() async throws(CastleError) -> [String] {
        try await withConnection { (connection) throws(CastleError) in
            let statement = try connection.prepare("SELECT DISTINCT consumer FROM match_events ORDER BY consumer")
            var result: [String] = []
            while try statement.step() { result.append(statement.string(0)) }
            return result
        }
    }

    public func readEvents(consumer: String, fromSeq: Int64, limit: Int) async throws(CastleError) -> [EventSegment] {
        try await withConnection { (connection) throws(CastleError) in
            let statement = try connection.prepare(
                """
                SELECT first_seq, last_seq, body FROM match_events
                WHERE consumer = ? AND last_seq >= ? ORDER BY first_seq LIMIT ?
                """
            )
            statement.bind(1, consumer)
            statement.bind(2, fromSeq)
            statement.bind(3, limit)
            var result: [EventSegment] = []
            while try statement.step() {
                result.append(
                    EventSegment(firstSeq: statement.int64(0), lastSeq: statement.int64(1), body: statement.bytes(2))
                )
            }
            return result
        }
    }

    public func readTrades(consumer: String, afterSeq: Int64, limit: Int) async throws(CastleError) -> [TradeRow] {
        try await withConnection { (connection) throws(CastleError) in
            let statement = try connection.prepare(
                """
                SELECT seq, symbol, price, qty, maker, taker, side, ts, maker_account, taker_account FROM trades
                WHERE consumer = ? AND seq > ? ORDER BY seq LIMIT ?
                """
            )
            statement.bind(1, consumer)
            statement.bind(2, afterSeq)
            statement.bind(3, limit)
            var result: [TradeRow] = []
            while try statement.step() {
                result.append(
                    TradeRow(
                        seq: statement.int64(0),
                        symbol: statement.string(1),
                        price: statement.int64(2),
                        qty: statement.int64(3),
                        maker: UInt64(bitPattern: statement.int64(4)),
                        taker: UInt64(bitPattern: statement.int64(5)),
                        side: statement.string(6),
                        ts: statement.isNull(7) ? nil : statement.int64(7),
                        makerAccount: statement.isNull(8) ? nil : statement.string(8),
                        takerAccount: statement.isNull(9) ? nil : statement.string(9)
                    )
                )
            }
            return result
        }
    }

}

/// Statements of a migration, on the connection that holds BEGIN IMMEDIATE.
final class SQLiteMigrationSession: SQLSession {
    let connection: SQLiteSerialConnection
    init(connection: SQLiteSerialConnection) { self.connection = connection }

    func execute(_ sql: String) async throws(CastleError) {
        try await connection.run { (connection) throws(CastleError) in try connection.execute(sql) }
    }

    func appliedMigrations() async throws(CastleError) -> [AppliedMigration] {
        try await connection.run { (connection) throws(CastleError) in try SQLiteBackend.readMigrations(connection) }
    }

    func recordMigration(_ migration: AppliedMigration) async throws(CastleError) {
        try await connection.run { (connection) throws(CastleError) in
            let statement = try connection.prepare(
                "INSERT INTO castle_migrations (version, name, checksum) VALUES (?, ?, ?)"
            )
            statement.bind(1, migration.version)
            statement.bind(2, migration.name)
            statement.bind(3, migration.checksum)
            try statement.run()
        }
    }

    func forgetMigration(version: Int) async throws(CastleError) {
        try await connection.run { (connection) throws(CastleError) in
            let statement = try connection.prepare("DELETE FROM castle_migrations WHERE version = ?")
            statement.bind(1, version)
            try statement.run()
        }
    }
}
