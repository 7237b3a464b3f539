internal import CSQLite
public import CastleSupport
public import Storage
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Registers `sqlite://` with the ``StorageRegistry``.
public enum SQLitePlugin {
    public static func register() {
        StorageRegistry.register(scheme: "sqlite") { url throws(CastleError) in try SQLiteBackend(url: url) }
    }
}

/// The embedded backend: one SQLite file in WAL mode, one writer connection with prepared statements,
/// batched transactions. The queue is a table with lease columns; a partition's owner holds an `flock`
/// on a file beside the database, which the kernel releases however the process ends.
public final class SQLiteBackend: Store, MessageQueue, SchemaDatabase, @unchecked Sendable {
    public let displayURL: String
    let path: String
    /// Used only under `lock`.
    private let connection: SQLiteConnection
    private let lock = Mutex(())

    public init(url: StorageURL) throws(CastleError) {
        displayURL = url.description
        path = url.path
        connection = try SQLiteConnection(path: url.path, name: url.description)
    }

    public var schema: (any SchemaDatabase)? { self }
    public var dialect: SQLDialect { .sqlite }

    public func close() async {}

    private func withConnection<T>(_ work: (SQLiteConnection) throws(CastleError) -> T) throws(CastleError) -> T {
        try lock.withLock { (_) throws(CastleError) -> T in
            defer { connection.resetAll() }
            return try work(connection)
        }
    }

    // MARK: Schema

    public func appliedMigrations() async throws(CastleError) -> [AppliedMigration] {
        try withConnection { (connection) throws(CastleError) in try Self.readMigrations(connection) }
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
        let session = SQLiteMigrationSession(connection: try SQLiteConnection(path: path, name: displayURL))
        try session.connection.execute("BEGIN IMMEDIATE")
        do {
            try session.connection.execute(
                """
                CREATE TABLE IF NOT EXISTS castle_migrations (
                    version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,
                    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))
                """
            )
            try await work(session)
            try session.connection.execute("COMMIT")
        } catch {
            try? session.connection.execute("ROLLBACK")
            throw error
        }
    }

    // MARK: Store

    public func beginIngest(dataset name: String) async throws(CastleError) -> any IngestSession {
        try SQLiteIngest(
            connection: SQLiteConnection(path: path, name: displayURL),
            sql: "INSERT OR IGNORE INTO dataset_orders (dataset, line, symbol, body) VALUES (?, ?, ?, ?)"
        ) { statement, row in
            statement.bind(1, name)
            statement.bind(2, row.line)
            statement.bind(3, row.symbol)
            statement.bind(4, row.body)
        }
    }

    public func datasets() async throws(CastleError) -> [DatasetInfo] {
        try withConnection { (connection) throws(CastleError) in
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
        try withConnection { (connection) throws(CastleError) in
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
        try withConnection { (connection) throws(CastleError) in
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
        try withConnection { (connection) throws(CastleError) in
            try connection.writeTransaction { () throws(CastleError) in
                let current = try connection.prepare("SELECT applied_offset FROM consumer_offsets WHERE consumer = ?")
                current.bind(1, commit.consumer)
                let stored = try current.step() ? current.int64(0) : 0
                guard stored == previousOffset else {
                    throw CastleError(
                        .software,
                        "\(displayURL): consumer \(commit.consumer) is at offset \(stored), not \(previousOffset): "
                            + "another worker is writing it"
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
                    INSERT INTO trades (consumer, seq, symbol, price, qty, maker, taker, side, ts)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
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
        try withConnection { (connection) throws(CastleError) in
            let statement = try connection.prepare("SELECT DISTINCT consumer FROM match_events ORDER BY consumer")
            var result: [String] = []
            while try statement.step() { result.append(statement.string(0)) }
            return result
        }
    }

    public func readEvents(consumer: String, fromSeq: Int64, limit: Int) async throws(CastleError) -> [EventSegment] {
        try withConnection { (connection) throws(CastleError) in
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
        try withConnection { (connection) throws(CastleError) in
            let statement = try connection.prepare(
                """
                SELECT seq, symbol, price, qty, maker, taker, side, ts FROM trades
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
                        ts: statement.isNull(7) ? nil : statement.int64(7)
                    )
                )
            }
            return result
        }
    }

    // MARK: MessageQueue

    public func beginEnqueue(source: String) async throws(CastleError) -> any IngestSession {
        try SQLiteIngest(
            connection: SQLiteConnection(path: path, name: displayURL),
            sql: "INSERT OR IGNORE INTO queue_messages (source, line, symbol, shard, body) VALUES (?, ?, ?, ?, ?)"
        ) { statement, row in
            statement.bind(1, source)
            statement.bind(2, row.line)
            statement.bind(3, row.symbol)
            statement.bind(4, Partition.shard(of: row.symbol))
            statement.bind(5, row.body)
        }
    }

    private static let partitionFilter = "(? = 1 OR shard % ? = ?)"
    /// Done through an owner's cursor (``markConsumed(partition:through:inFlight:)``), row untouched.
    private static let consumedByAnOwner = """
        EXISTS (SELECT 1 FROM queue_cursors c
            WHERE queue_messages.id <= c.through AND queue_messages.shard % c.part_count = c.part_index)
        """

    public func receive(
        partition: Partition,
        limit: Int,
        leaseSeconds: Int,
        maxAttempts: Int
    )
        async throws(CastleError) -> [QueueMessage]
    {
        let now = wallClockMilliseconds()
        return try withConnection { (connection) throws(CastleError) in
            try connection.writeTransaction(durable: false) { () throws(CastleError) in
                let select = try connection.prepare(
                    """
                    SELECT id, source, line, symbol, body, attempts FROM queue_messages
                    WHERE state = 0 AND lease_until <= ? AND \(Self.partitionFilter)
                        AND id > coalesce(
                            (SELECT through FROM queue_cursors WHERE part_index = ? AND part_count = ?), 0)
                        AND NOT \(Self.consumedByAnOwner)
                    ORDER BY id LIMIT ?
                    """
                )
                select.bind(1, now)
                select.bind(2, partition: partition)
                select.bind(5, partition.index)
                select.bind(6, partition.count)
                select.bind(7, limit)
                var candidates: [QueueMessage] = []
                while try select.step() {
                    candidates.append(Self.message(select))
                }
                // Messages delivered maxAttempts times without an ack go to the dead letters; the others
                // are leased with one statement over the run of ids (the same filter keeps it exact).
                var delivered: [QueueMessage] = []
                for var message in candidates {
                    if message.attempts >= maxAttempts {
                        try Self.bury(
                            connection,
                            message.id,
                            error: "not acknowledged after \(message.attempts) deliveries"
                        )
                        continue
                    }
                    message.attempts += 1
                    delivered.append(message)
                }
                if let first = delivered.first?.id, let last = delivered.last?.id {
                    let lease = try connection.prepare(
                        """
                        UPDATE queue_messages SET attempts = attempts + 1, lease_until = ?
                        WHERE id BETWEEN ? AND ? AND state = 0 AND lease_until <= ? AND attempts < ?
                            AND \(Self.partitionFilter)
                        """
                    )
                    lease.bind(1, now + Int64(leaseSeconds) * 1000)
                    lease.bind(2, first)
                    lease.bind(3, last)
                    lease.bind(4, now)
                    lease.bind(5, maxAttempts)
                    lease.bind(6, partition: partition)
                    try lease.run()
                }
                return delivered
            }
        }
    }

    /// A row of `SELECT id, source, line, symbol, body, attempts FROM queue_messages`.
    private static func message(_ row: Statement) -> QueueMessage {
        QueueMessage(
            id: row.int64(0),
            source: row.string(1),
            line: row.int64(2),
            symbol: row.string(3),
            body: row.string(4),
            attempts: row.int(5)
        )
    }

    /// Moves one message to the dead letters.
    private static func bury(_ connection: SQLiteConnection, _ id: Int64, error: String) throws(CastleError) {
        let copy = try connection.prepare(
            """
            INSERT OR REPLACE INTO dead_letters (id, source, line, body, attempts, error)
            SELECT id, source, line, body, attempts, ? FROM queue_messages WHERE id = ?
            """
        )
        copy.bind(1, error)
        copy.bind(2, id)
        try copy.run()
        let mark = try connection.prepare("UPDATE queue_messages SET state = 2, last_error = ? WHERE id = ?")
        mark.bind(1, error)
        mark.bind(2, id)
        try mark.run()
    }

    public func ack(_ ids: [Int64]) async throws(CastleError) {
        guard !ids.isEmpty else { return }
        try withConnection { (connection) throws(CastleError) in
            try connection.writeTransaction(durable: false) { () throws(CastleError) in
                // Acks come in runs of ids (a partition's batch): one statement a run of consecutive ids.
                let single = try connection.prepare("UPDATE queue_messages SET state = 1 WHERE id = ? AND state = 0")
                let range = try connection.prepare(
                    "UPDATE queue_messages SET state = 1 WHERE id BETWEEN ? AND ? AND state = 0"
                )
                let sorted = ids.sorted()
                var start = 0
                while start < sorted.count {
                    var end = start
                    while end + 1 < sorted.count && sorted[end + 1] == sorted[end] + 1 { end += 1 }
                    if end == start {
                        single.bind(1, sorted[start])
                        try single.run()
                    } else {
                        range.bind(1, sorted[start])
                        range.bind(2, sorted[end])
                        try range.run()
                    }
                    start = end + 1
                }
            }
        }
    }

    public func fail(_ ids: [Int64], error: String, maxAttempts: Int) async throws(CastleError) {
        try withConnection { (connection) throws(CastleError) in
            try connection.writeTransaction(durable: false) { () throws(CastleError) in
                let read = try connection.prepare("SELECT attempts FROM queue_messages WHERE id = ? AND state = 0")
                let release = try connection.prepare(
                    "UPDATE queue_messages SET lease_until = 0, last_error = ? WHERE id = ?"
                )
                for id in ids {
                    read.bind(1, id)
                    guard try read.step() else { continue }
                    let attempts = read.int(0)
                    sqlite3_reset(read.handle)
                    if attempts >= maxAttempts {
                        try Self.bury(connection, id, error: error)
                    } else {
                        release.bind(1, error)
                        release.bind(2, id)
                        try release.run()
                    }
                }
            }
        }
    }

    public func releaseLeases(partition: Partition) async throws(CastleError) {
        try withConnection { (connection) throws(CastleError) in
            let statement = try connection.prepare(
                "UPDATE queue_messages SET lease_until = 0 WHERE state = 0 AND lease_until > 0 AND \(Self.partitionFilter)"
            )
            statement.bind(1, partition: partition)
            try statement.run()
        }
    }

    public func depth(partition: Partition?) async throws(CastleError) -> Int {
        let partition = partition ?? .whole
        return try withConnection { (connection) throws(CastleError) in
            let statement = try connection.prepare(
                "SELECT count(*) FROM queue_messages WHERE state = 0 AND \(Self.partitionFilter) AND NOT \(Self.consumedByAnOwner)"
            )
            statement.bind(1, partition: partition)
            try statement.step()
            return statement.int(0)
        }
    }

    public func deadLetters() async throws(CastleError) -> [DeadLetter] {
        try withConnection { (connection) throws(CastleError) in
            let statement = try connection.prepare(
                "SELECT id, source, line, body, attempts, error FROM dead_letters ORDER BY id"
            )
            var result: [DeadLetter] = []
            while try statement.step() {
                result.append(
                    DeadLetter(
                        id: statement.int64(0),
                        source: statement.string(1),
                        line: statement.int64(2),
                        body: statement.string(3),
                        attempts: statement.int(4),
                        error: statement.string(5)
                    )
                )
            }
            return result
        }
    }

    public func read(partition: Partition, after: Int64, limit: Int) async throws(CastleError) -> [QueueMessage] {
        try withConnection { (connection) throws(CastleError) in
            let select = try connection.prepare(
                """
                SELECT id, source, line, symbol, body, attempts FROM queue_messages
                WHERE id > ? AND state = 0 AND \(Self.partitionFilter) ORDER BY id LIMIT ?
                """
            )
            select.bind(1, after)
            select.bind(2, partition: partition)
            select.bind(5, limit)
            var messages: [QueueMessage] = []
            while try select.step() {
                messages.append(Self.message(select))
            }
            return messages
        }
    }

    public func markConsumed(partition: Partition, through: Int64, inFlight: Int64) async throws(CastleError) {
        try withConnection { (connection) throws(CastleError) in
            try connection.writeTransaction(durable: false) { () throws(CastleError) in
                let upsert = try connection.prepare(
                    """
                    INSERT INTO queue_cursors (part_index, part_count, through, in_flight) VALUES (?, ?, ?, ?)
                    ON CONFLICT (part_index, part_count) DO UPDATE SET through = excluded.through,
                        in_flight = excluded.in_flight
                    """
                )
                upsert.bind(1, partition.index)
                upsert.bind(2, partition.count)
                upsert.bind(3, through)
                upsert.bind(4, max(through, inFlight))
                try upsert.run()
            }
        }
    }

    public func recoverInFlight(
        partition: Partition,
        after: Int64,
        maxAttempts: Int
    )
        async throws(CastleError) -> (inFlight: Int64, attempts: Int)
    {
        try withConnection { (connection) throws(CastleError) in
            try connection.writeTransaction { () throws(CastleError) -> (inFlight: Int64, attempts: Int) in
                let cursor = try connection.prepare(
                    "SELECT through, in_flight FROM queue_cursors WHERE part_index = ? AND part_count = ?"
                )
                cursor.bind(1, partition.index)
                cursor.bind(2, partition.count)
                guard try cursor.step() else { return (0, 0) }
                let (through, inFlight) = (cursor.int64(0), cursor.int64(1))
                sqlite3_reset(cursor.handle)
                guard inFlight > after else { return (0, 0) }
                let range = "id > ? AND id <= ? AND state = 0 AND \(Self.partitionFilter)"
                let count = try connection.prepare("UPDATE queue_messages SET attempts = attempts + 1 WHERE \(range)")
                let bindRange = { (statement: Statement) in
                    statement.bind(1, max(after, through))
                    statement.bind(2, inFlight)
                    statement.bind(3, partition: partition)
                }
                bindRange(count)
                try count.run()
                let exhausted = try connection.prepare(
                    "SELECT id, attempts FROM queue_messages WHERE \(range) AND attempts >= ?"
                )
                bindRange(exhausted)
                exhausted.bind(6, maxAttempts)
                var dead: [(Int64, Int)] = []
                while try exhausted.step() { dead.append((exhausted.int64(0), exhausted.int(1))) }
                for (id, attempts) in dead {
                    try Self.bury(connection, id, error: "not acknowledged after \(attempts) deliveries")
                }
                let most = try connection.prepare(
                    "SELECT coalesce(max(attempts), 0) FROM queue_messages WHERE \(range)"
                )
                bindRange(most)
                try most.step()
                return (inFlight, most.int(0))
            }
        }
    }

    /// SQLite has no notifications: a short sleep, so an idle worker wakes a few times a second.
    public func waitForMessages(timeoutSeconds: Double) async throws(CastleError) {
        try? await Task.sleep(for: .milliseconds(Int(min(timeoutSeconds, 0.1) * 1000)))
    }

    public func acquire(partition: Partition, wait: Bool) async throws(CastleError) -> (any PartitionLock)? {
        let lockPath = "\(path).match-\(partition.index)-of-\(partition.count).lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { throw CastleError(.cantCreate, "\(lockPath): cannot open the partition lock") }
        while true {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return FileLock(fd: fd) }
            if errno != EWOULDBLOCK {
                Glibc.close(fd)
                throw CastleError(.ioError, "\(lockPath): cannot lock")
            }
            if !wait {
                Glibc.close(fd)
                return nil
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// An exclusive `flock`: released by `release()`, or by the kernel when the process ends.
final class FileLock: PartitionLock {
    private let fd: Int32
    init(fd: Int32) { self.fd = fd }
    func release() async {
        flock(fd, LOCK_UN)
        close(fd)
    }
}

/// Rows inserted on a connection of its own inside BEGIN IMMEDIATE ... COMMIT.
final class SQLiteIngest: IngestSession, @unchecked Sendable {
    private let connection: SQLiteConnection
    private let sql: String
    private let bind: (Statement, OrderRow) -> Void
    private var added = 0
    private var open = true

    init(connection: SQLiteConnection, sql: String, bind: @escaping (Statement, OrderRow) -> Void) throws(CastleError) {
        self.connection = connection
        self.sql = sql
        self.bind = bind
        try connection.execute("BEGIN IMMEDIATE")
    }

    deinit { if open { try? connection.execute("ROLLBACK") } }

    func append(_ rows: [OrderRow]) async throws(CastleError) {
        let statement = try connection.prepare(sql)
        for row in rows {
            bind(statement, row)
            try statement.run()
            added += connection.changes
        }
    }

    func commit() async throws(CastleError) -> Int {
        open = false
        try connection.execute("COMMIT")
        return added
    }

    func rollback() async {
        guard open else { return }
        open = false
        try? connection.execute("ROLLBACK")
    }
}

/// Statements of a migration, on the connection that holds BEGIN IMMEDIATE.
final class SQLiteMigrationSession: SQLSession {
    let connection: SQLiteConnection
    init(connection: SQLiteConnection) { self.connection = connection }

    func execute(_ sql: String) async throws(CastleError) { try connection.execute(sql) }

    func appliedMigrations() async throws(CastleError) -> [AppliedMigration] {
        try SQLiteBackend.readMigrations(connection)
    }

    func recordMigration(_ migration: AppliedMigration) async throws(CastleError) {
        let statement = try connection.prepare(
            "INSERT INTO castle_migrations (version, name, checksum) VALUES (?, ?, ?)"
        )
        statement.bind(1, migration.version)
        statement.bind(2, migration.name)
        statement.bind(3, migration.checksum)
        try statement.run()
    }

    func forgetMigration(version: Int) async throws(CastleError) {
        let statement = try connection.prepare("DELETE FROM castle_migrations WHERE version = ?")
        statement.bind(1, version)
        try statement.run()
    }
}
