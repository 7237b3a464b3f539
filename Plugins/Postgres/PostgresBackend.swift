public import CastleSupport
public import Logging
import PostgresNIO
public import Storage
import Synchronization

/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`: the store and the durable queue in PostgreSQL, for
/// several processes at once. Plain statements go through a connection pool; an ingest or enqueue
/// session, a partition lock and the queue listener each hold a connection of their own.
public final class PostgresBackend: Store, MessageQueue, SchemaDatabase {
    public let displayURL: String
    let client: PostgresClient
    let connectionConfiguration: PostgresConnection.Configuration
    /// The driver's logger: connections and the pool.
    let logger: Logger
    let listener: QueueListener
    private let connectionIDs = Atomic<Int>(1)

    /// Connects, checks that the server answers (`SELECT 1`, within `connect_timeout` seconds from the URL,
    /// as libpq reads it, else `timeoutSeconds`), and makes the pool.
    /// The pool answers once ``run()`` runs (``StorageRegistry/withBackend(_:_:)``, or a service group).
    /// `logger` gets the driver's own messages (connections, the pool): castle's, at `error` level unless
    /// `CASTLE_DB_DEBUG` asks for more.
    public static func open(
        _ url: StorageURL,
        timeoutSeconds: Int = 5,
        logger: Logger = silentLogger
    ) async throws(CastleError) -> PostgresBackend {
        var timeoutSeconds = timeoutSeconds
        if let text = url.query["connect_timeout"] {
            guard let seconds = Int(text), seconds > 0, seconds <= 3_600 else {
                throw CastleError(.usage, "\(url): connect_timeout must be 1 to 3600 seconds, got '\(text)'")
            }
            timeoutSeconds = seconds
        }
        let configuration = PostgresConfiguration(url: url, timeoutSeconds: timeoutSeconds)
        let displayURL = configuration.displayURL
        try PostgresConfiguration.validate(url, displayURL: displayURL)
        // Reachability and credentials first, on a connection of its own: the pool would retry quietly.
        do {
            let probe = configuration.connection
            try await withTimeout(seconds: timeoutSeconds) {
                let connection = try await PostgresConnection.connect(configuration: probe, id: 0, logger: logger)
                do {
                    // A server that accepts and then says nothing: the timeout closes the connection.
                    _ = try await withTaskCancellationHandler {
                        try await connection.rows("SELECT 1")
                    } onCancel: {
                        connection.closeSoon()
                    }
                } catch {
                    try? await connection.close()
                    throw error
                }
                try? await connection.close()
            }
        } catch {
            throw CastleError(.unavailable, "cannot connect to \(displayURL): \(describe(error))")
        }
        return PostgresBackend(configuration: configuration, logger: logger)
    }

    init(configuration: PostgresConfiguration, logger: Logger) {
        self.displayURL = configuration.displayURL
        self.client = PostgresClient(configuration: configuration.pool, backgroundLogger: logger)
        self.connectionConfiguration = configuration.connection
        self.logger = logger
        self.listener = QueueListener()
    }

    public var schema: (any SchemaDatabase)? { self }
    public var dialect: SQLDialect { .postgres }

    /// The connection pool (`PostgresClient.run()`), until the task is cancelled or the service group
    /// shuts down gracefully. Once it ends the pool answers no more: the backend is closed.
    @concurrent public func run() async {
        await client.run()
    }

    /// Stops the queue listener and its connection; the pool ends with ``run()``.
    public func close() async {
        await listener.stop()
    }

    // MARK: Running statements

    /// A connection of its own, outside the pool: for a session, a lock or the listener.
    func dedicatedConnection() async throws(CastleError) -> PostgresConnection {
        let configuration = connectionConfiguration
        let id = connectionIDs.wrappingAdd(1, ordering: .relaxed).newValue
        do {
            return try await PostgresConnection.connect(configuration: configuration, id: id, logger: logger)
        } catch {
            throw CastleError(.unavailable, "cannot connect to \(displayURL): \(describe(error))")
        }
    }

    /// `body` with an error turned into a ``CastleError`` naming the store and what was being done.
    func perform<T>(_ what: String, _ body: () async throws -> T) async throws(CastleError) -> T {
        do {
            return try await body()
        } catch {
            throw storageError(error, "\(displayURL): \(what)")
        }
    }

    /// `body` on a pooled connection in one transaction: committed when it returns, rolled back when it throws.
    func transaction<T: Sendable>(
        _ what: String,
        _ body: (PostgresConnection) async throws -> T
    ) async throws(CastleError) -> T {
        try await perform(what) {
            try await client.withConnection { connection in
                try await connection.rows("BEGIN")
                let value: T
                do {
                    value = try await body(connection)
                } catch {
                    _ = try? await connection.rows("ROLLBACK")
                    throw error
                }
                try await connection.rows("COMMIT")
                return value
            }
        }
    }

    /// One statement on a pooled connection, its rows decoded by `decode`.
    func select<T: Sendable>(
        _ what: String,
        _ query: PostgresQuery,
        _ decode: (PostgresRow) throws -> T
    ) async throws(CastleError) -> [T] {
        try await perform(what) {
            try await client.withConnection { connection in
                try await connection.rows(query).map(decode)
            }
        }
    }

    // MARK: Store

    public func beginIngest(dataset name: String) async throws(CastleError) -> any IngestSession {
        try await PostgresIngest.begin(backend: self, kind: .dataset(name))
    }

    public func datasets() async throws(CastleError) -> [DatasetInfo] {
        try await select("datasets", "SELECT dataset, count(*) FROM dataset_orders GROUP BY dataset") { row in
            let (name, rows) = try row.decode((String, Int64).self)
            return DatasetInfo(name: name, rows: rows)
        }.sorted { $0.name < $1.name }
    }

    public func readDataset(_ name: String, afterLine: Int64, limit: Int) async throws(CastleError) -> [OrderRow] {
        try await select(
            "reading dataset \(name)",
            """
            SELECT line, symbol, body FROM dataset_orders WHERE dataset = \(name) AND line > \(afterLine)
            ORDER BY line LIMIT \(max(limit, 0))
            """
        ) { row in
            let (line, symbol, body) = try row.decode((Int64, String, String).self)
            return OrderRow(line: line, symbol: symbol, body: body)
        }
    }

    public func loadMatcherState(consumer: String) async throws(CastleError) -> MatcherState {
        try await transaction("loading consumer \(consumer)") { connection in
            try await connection.rows("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            var state = MatcherState()
            if let row = try await connection.rows(
                "SELECT applied_offset, last_seq FROM consumer_offsets WHERE consumer = \(consumer)"
            ).first {
                (state.offset, state.lastSeq) = try row.decode((Int64, Int64).self)
            }
            state.orders = try await connection.rows(
                """
                SELECT id, symbol, side, price, qty, account, post_only, stp, priority
                FROM resting_orders WHERE consumer = \(consumer)
                """
            ).map { row in
                let (id, symbol, side, price, qty, account, postOnly, stp, priority) = try row.decode(
                    (Int64, String, Int16, Int64, Int64, String, Bool, Int16, Int64).self
                )
                return RestingOrderRow(
                    id: UInt64(bitPattern: id),
                    symbol: symbol,
                    side: UInt8(truncatingIfNeeded: side),
                    price: price,
                    qty: qty,
                    account: account,
                    postOnly: postOnly,
                    stp: UInt8(truncatingIfNeeded: stp),
                    priority: priority
                )
            }
            return state
        }
    }

    public func commitMatch(_ commit: MatchCommit, previousOffset: Int64) async throws(CastleError) {
        let displayURL = displayURL
        try await transaction("committing consumer \(commit.consumer)") { connection in
            // No wait for the WAL flush: the batch is a deterministic function of queue messages that are
            // durable (see ``Store/commitMatch(_:previousOffset:)``). The batch's events (about 1 MB for
            // 5,000 messages) are compressed with lz4 where the server has it: pglz took a quarter of the
            // server's time in a drain. Stored values say how they were compressed, so older rows and
            // servers without lz4 (no row here: pglz as before) read the same.
            try await connection.rows(
                """
                SELECT set_config('synchronous_commit', 'off', true),
                    (SELECT set_config('default_toast_compression', 'lz4', true) FROM pg_settings
                        WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals))
                """
            )
            // The row exists and is locked before it is read: two first commits of one consumer cannot both pass.
            try await connection.rows(
                """
                INSERT INTO consumer_offsets (consumer, applied_offset, last_seq) VALUES (\(commit.consumer), 0, 0)
                ON CONFLICT (consumer) DO NOTHING
                """
            )
            let stored = try await connection.scalar(
                "SELECT applied_offset FROM consumer_offsets WHERE consumer = \(commit.consumer) FOR UPDATE"
            )
            guard stored == previousOffset else {
                throw StoreErrors.offsetMoved(
                    store: displayURL,
                    consumer: commit.consumer,
                    stored: stored,
                    expected: previousOffset
                )
            }
            if let events = commit.events {
                try await connection.rows(
                    """
                    INSERT INTO match_events (consumer, first_seq, last_seq, body)
                    VALUES (\(commit.consumer), \(events.firstSeq), \(events.lastSeq), \(ByteBuffer(bytes: events.body)))
                    """
                )
            }
            if !commit.trades.isEmpty {
                // One statement for the batch's trades: a column array each, unnested on the server.
                let trades = commit.trades
                let hasTimestamp = trades.map { $0.ts != nil }
                try await connection.rows(
                    """
                    INSERT INTO trades
                        (consumer, seq, symbol, price, qty, maker, taker, side, ts, maker_account, taker_account)
                    SELECT \(commit.consumer), t.seq, t.symbol, t.price, t.qty, t.maker, t.taker, t.side,
                        CASE WHEN t.has_ts THEN t.ts END, CASE WHEN t.has_maker_account THEN t.maker_account END,
                        CASE WHEN t.has_taker_account THEN t.taker_account END
                    FROM unnest(\(trades.map(\.seq))::bigint[], \(trades.map(\.symbol))::text[],
                        \(trades.map(\.price))::bigint[], \(trades.map(\.qty))::bigint[],
                        \(trades.map { Int64(bitPattern: $0.maker) })::bigint[],
                        \(trades.map { Int64(bitPattern: $0.taker) })::bigint[], \(trades.map(\.side))::text[],
                        \(trades.map { $0.ts ?? 0 })::bigint[], \(hasTimestamp)::boolean[],
                        \(trades.map { $0.makerAccount ?? "" })::text[], \(trades.map { $0.makerAccount != nil })::boolean[],
                        \(trades.map { $0.takerAccount ?? "" })::text[], \(trades.map { $0.takerAccount != nil })::boolean[])
                        AS t(seq, symbol, price, qty, maker, taker, side, ts, has_ts, maker_account, has_maker_account,
                            taker_account, has_taker_account)
                    """
                )
            }
            if !commit.deletes.isEmpty {
                let ids = commit.deletes.map { Int64(bitPattern: $0) }
                try await connection.rows(
                    "DELETE FROM resting_orders WHERE consumer = \(commit.consumer) AND id = ANY(\(ids))"
                )
            }
            // The last upsert of an id wins, as one statement may not touch a row twice.
            var latest: [UInt64: Int] = [:]
            for (index, order) in commit.upserts.enumerated() { latest[order.id] = index }
            let upserts = commit.upserts.enumerated().filter { latest[$0.element.id] == $0.offset }.map(\.element)
            if !upserts.isEmpty {
                try await connection.rows(
                    """
                    INSERT INTO resting_orders
                        (consumer, id, symbol, side, price, qty, account, post_only, stp, priority)
                    SELECT \(commit.consumer), o.* FROM unnest(
                        \(upserts.map { Int64(bitPattern: $0.id) })::bigint[], \(upserts.map(\.symbol))::text[],
                        \(upserts.map { Int16($0.side) })::smallint[], \(upserts.map(\.price))::bigint[],
                        \(upserts.map(\.qty))::bigint[], \(upserts.map(\.account))::text[],
                        \(upserts.map(\.postOnly))::boolean[], \(upserts.map { Int16($0.stp) })::smallint[],
                        \(upserts.map(\.priority))::bigint[])
                        AS o(id, symbol, side, price, qty, account, post_only, stp, priority)
                    ON CONFLICT (consumer, id) DO UPDATE SET symbol = EXCLUDED.symbol, side = EXCLUDED.side,
                        price = EXCLUDED.price, qty = EXCLUDED.qty, account = EXCLUDED.account,
                        post_only = EXCLUDED.post_only, stp = EXCLUDED.stp, priority = EXCLUDED.priority
                    """
                )
            }
            try await connection.rows(
                """
                UPDATE consumer_offsets SET applied_offset = \(commit.offset), last_seq = \(commit.lastSeq)
                WHERE consumer = \(commit.consumer)
                """
            )
        }
    }

    public func eventConsumers() async throws(CastleError) -> [String] {
        try await select("event consumers", "SELECT DISTINCT consumer FROM match_events") { row in
            try row.decode(String.self)
        }.sorted()
    }

    public func readEvents(consumer: String, fromSeq: Int64, limit: Int) async throws(CastleError) -> [EventSegment] {
        try await select(
            "reading events of \(consumer)",
            """
            SELECT first_seq, last_seq, body FROM match_events WHERE consumer = \(consumer) AND last_seq >= \(fromSeq)
            ORDER BY first_seq LIMIT \(max(limit, 0))
            """
        ) { row in
            let (first, last, body) = try row.decode((Int64, Int64, ByteBuffer).self)
            return EventSegment(firstSeq: first, lastSeq: last, body: Array(body.readableBytesView))
        }
    }

    public func readTrades(consumer: String, afterSeq: Int64, limit: Int) async throws(CastleError) -> [TradeRow] {
        try await select(
            "reading trades of \(consumer)",
            """
            SELECT seq, symbol, price, qty, maker, taker, side, ts, maker_account, taker_account FROM trades
            WHERE consumer = \(consumer) AND seq > \(afterSeq) ORDER BY seq LIMIT \(max(limit, 0))
            """
        ) { row in
            let (seq, symbol, price, qty, maker, taker, side, ts, makerAccount, takerAccount) = try row.decode(
                (Int64, String, Int64, Int64, Int64, Int64, String, Int64?, String?, String?).self
            )
            return TradeRow(
                seq: seq,
                symbol: symbol,
                price: price,
                qty: qty,
                maker: UInt64(bitPattern: maker),
                taker: UInt64(bitPattern: taker),
                side: side,
                ts: ts,
                makerAccount: makerAccount,
                takerAccount: takerAccount
            )
        }
    }

    // MARK: SchemaDatabase

    public func appliedMigrations() async throws(CastleError) -> [AppliedMigration] {
        try await perform("reading applied migrations") {
            try await client.withConnection { connection in
                try await PostgresSQLSession.applied(on: connection)
            }
        }
    }

    public func withMigrationTransaction(
        _ work: (any SQLSession) async throws(CastleError) -> Void
    ) async throws(CastleError) {
        let displayURL = displayURL
        let connection = try await dedicatedConnection()
        defer { connection.closeSoon() }
        let session = PostgresSQLSession(connection: connection, displayURL: displayURL)
        try await perform("migrating") {
            try await connection.rows("BEGIN")
            try await connection.rows("SELECT pg_advisory_xact_lock(\(LockKey.migrations))")
            try await connection.rows(PostgresQuery(unsafeSQL: Self.migrationsTable))
        }
        do {
            try await work(session)
        } catch {
            _ = try? await connection.rows("ROLLBACK")
            throw error
        }
        _ = try await perform("committing the migration") { try await connection.rows("COMMIT") }
    }
}

/// Statements of a migration, on the connection that holds its transaction and lock.
final class PostgresSQLSession: SQLSession {
    let connection: PostgresConnection
    let displayURL: String

    init(connection: PostgresConnection, displayURL: String) {
        self.connection = connection
        self.displayURL = displayURL
    }

    static func applied(on connection: PostgresConnection) async throws -> [AppliedMigration] {
        let exists = try await connection.rows("SELECT to_regclass('castle_migrations') IS NOT NULL").first?.decode(
            Bool.self
        )
        guard exists == true else { return [] }
        return try await connection.rows(
            "SELECT version::bigint, name, checksum FROM castle_migrations ORDER BY version"
        ).map { row in
            let (version, name, checksum) = try row.decode((Int64, String, String).self)
            return AppliedMigration(version: Int(version), name: name, checksum: checksum)
        }
    }

    func execute(_ sql: String) async throws(CastleError) {
        do {
            try await connection.rows(PostgresQuery(unsafeSQL: sql))
        } catch {
            throw CastleError(kind(of: error), describe(error))
        }
    }

    func appliedMigrations() async throws(CastleError) -> [AppliedMigration] {
        do {
            return try await Self.applied(on: connection)
        } catch {
            throw storageError(error, "\(displayURL): reading applied migrations")
        }
    }

    func recordMigration(_ migration: AppliedMigration) async throws(CastleError) {
        do {
            try await connection.rows(
                """
                INSERT INTO castle_migrations (version, name, checksum)
                VALUES (\(Int32(migration.version)), \(migration.name), \(migration.checksum))
                """
            )
        } catch {
            throw storageError(error, "\(displayURL): recording migration \(migration.name)")
        }
    }

    func forgetMigration(version: Int) async throws(CastleError) {
        do {
            try await connection.rows("DELETE FROM castle_migrations WHERE version = \(Int32(version))")
        } catch {
            throw storageError(error, "\(displayURL): forgetting migration \(version)")
        }
    }
}

extension PostgresBackend {
    /// Runs one statement on its own connection to `url`, outside any transaction: `CREATE DATABASE`,
    /// `DROP DATABASE` and the like, for tests and tools.
    public static func administer(_ url: StorageURL, _ sql: String) async throws(CastleError) {
        let configuration = PostgresConfiguration(url: url, timeoutSeconds: 5)
        let shown = configuration.displayURL
        do {
            let connection = try await PostgresConnection.connect(
                configuration: configuration.connection,
                id: 0,
                logger: silentLogger
            )
            defer { connection.closeSoon() }
            try await connection.rows(PostgresQuery(unsafeSQL: sql))
        } catch {
            throw storageError(error, "\(shown)")
        }
    }
}
