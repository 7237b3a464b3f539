internal import CSQLite
public import CastleSupport
public import Storage

#if canImport(Glibc)
import Glibc
#endif

/// The queue: a table with lease columns and a cursor row per owned partition.
extension SQLiteBackend {

    private static let insertMessage =
        "INSERT OR IGNORE INTO queue_messages (source, line, symbol, shard, body) VALUES (?, ?, ?, ?, ?)"

    private static func bind(_ statement: Statement, _ row: OrderRow, source: String) {
        statement.bind(1, source)
        statement.bind(2, row.line)
        statement.bind(3, row.symbol)
        statement.bind(4, Partition.shard(of: row.symbol))
        statement.bind(5, row.body)
    }

    public func beginEnqueue(source: String) async throws(CastleError) -> any IngestSession {
        try await SQLiteIngest.begin(path: path, name: displayURL, sql: Self.insertMessage) { statement, row in
            Self.bind(statement, row, source: source)
        }
    }

    /// One job on the writer connection, queued behind the matcher's reads and commits rather than
    /// waiting for the write lock (a session's connection of its own waits in 1 ms steps behind them).
    public func enqueue(_ rows: [OrderRow], source: String) async throws(CastleError) -> Int {
        try await withConnection { (connection) throws(CastleError) -> Int in
            try connection.writeTransaction { () throws(CastleError) -> Int in
                let insert = try connection.prepare(Self.insertMessage)
                var added = 0
                for row in rows {
                    Self.bind(insert, row, source: source)
                    try insert.run()
                    added += connection.changes
                }
                return added
            }
        }
    }

    private static let partitionFilter = "(? = 1 OR shard % ? = ?)"
    /// Done through an owner's cursor (``markConsumed(partition:through:inFlight:)``), row untouched.
    private static let consumedByAnOwner = """
        EXISTS (SELECT 1 FROM queue_cursors c
            WHERE queue_messages.id <= c.through AND queue_messages.shard % c.part_count = c.part_index)
        """

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

    public func depth(partition: Partition?) async throws(CastleError) -> Int {
        let partition = partition ?? .whole
        return try await withConnection { (connection) throws(CastleError) in
            // From the highest cursor that covers the whole partition on: what is below it is done, and the
            // walk along the rowid does not grow with the queue's history.
            let statement = try connection.prepare(
                """
                SELECT count(*) FROM queue_messages WHERE state = 0 AND \(Self.partitionFilter)
                    AND id > (SELECT coalesce(max(through), 0) FROM queue_cursors c
                        WHERE ? % c.part_count = 0 AND ? % c.part_count = c.part_index)
                    AND NOT \(Self.consumedByAnOwner)
                """
            )
            statement.bind(1, partition: partition)
            statement.bind(4, partition.count)
            statement.bind(5, partition.index)
            try statement.step()
            return statement.int(0)
        }
    }

    public func lastLine(source: String) async throws(CastleError) -> Int64? {
        try await withConnection { (connection) throws(CastleError) -> Int64? in
            // The (source, line) unique index answers it at once.
            let statement = try connection.prepare("SELECT max(line) FROM queue_messages WHERE source = ?")
            defer { connection.resetAll() }
            statement.bind(1, source)
            try statement.step()
            return statement.isNull(0) ? nil : statement.int64(0)
        }
    }

    public func reserveLines(
        source: String,
        count: Int64,
        above floor: Int64
    ) async throws(CastleError) -> ClosedRange<Int64> {
        let store = displayURL
        return try await withConnection { (connection) throws(CastleError) -> ClosedRange<Int64> in
            defer { connection.resetAll() }
            return try connection.writeTransaction { () throws(CastleError) -> ClosedRange<Int64> in
                let next = try connection.prepare("SELECT next_line FROM castle_order_ids WHERE source = ?")
                next.bind(1, source)
                let stored = try next.step() ? next.int64(0) : nil
                let last = try connection.prepare("SELECT max(line) FROM queue_messages WHERE source = ?")
                last.bind(1, source)
                try last.step()
                let range = try LineReservation.range(
                    next: stored,
                    lastLine: last.isNull(0) ? nil : last.int64(0),
                    floor: floor,
                    count: count,
                    store: store
                )
                let move = try connection.prepare(
                    "INSERT OR REPLACE INTO castle_order_ids (source, next_line) VALUES (?, ?)"
                )
                move.bind(1, source)
                move.bind(2, range.upperBound + 1)
                try move.run()
                return range
            }
        }
    }

    public func deadLetters() async throws(CastleError) -> [DeadLetter] {
        try await withConnection { (connection) throws(CastleError) in
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
        try await withConnection { (connection) throws(CastleError) in
            try Self.read(connection, partition: partition, after: after, limit: limit)
        }
    }

    public func markConsumed(partition: Partition, through: Int64, inFlight: Int64) async throws(CastleError) {
        try await withConnection { (connection) throws(CastleError) in
            try Self.markConsumed(connection, partition: partition, through: through, inFlight: inFlight)
        }
    }

    /// One job on the writer connection: the mark follows the read without waiting behind other jobs
    /// (a group commit's fsync, under serve's load).
    public func readMarkingInFlight(
        partition: Partition,
        after: Int64,
        limit: Int,
        through: Int64
    ) async throws(CastleError) -> (messages: [QueueMessage], marked: Bool) {
        try await withConnection { (connection) throws(CastleError) -> (messages: [QueueMessage], marked: Bool) in
            let messages = try Self.read(connection, partition: partition, after: after, limit: limit)
            guard let last = Self.lastToMark(messages) else { return (messages, false) }
            try Self.markConsumed(connection, partition: partition, through: through, inFlight: last.id)
            return (messages, true)
        }
    }

    private static func read(
        _ connection: SQLiteConnection,
        partition: Partition,
        after: Int64,
        limit: Int
    ) throws(CastleError) -> [QueueMessage] {
        let select = try connection.prepare(
            """
            SELECT id, source, line, symbol, body, attempts FROM queue_messages
            WHERE id > ? AND state = 0 AND \(partitionFilter) ORDER BY id LIMIT ?
            """
        )
        select.bind(1, after)
        select.bind(2, partition: partition)
        select.bind(5, limit)
        var messages: [QueueMessage] = []
        while try select.step() {
            messages.append(message(select))
        }
        return messages
    }

    private static func markConsumed(
        _ connection: SQLiteConnection,
        partition: Partition,
        through: Int64,
        inFlight: Int64
    ) throws(CastleError) {
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

    public func recoverInFlight(
        partition: Partition,
        after: Int64,
        maxAttempts: Int
    )
        async throws(CastleError) -> (inFlight: Int64, attempts: Int)
    {
        try await withConnection { (connection) throws(CastleError) in
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
                let attempts = most.int(0)
                // Charged once: a worker that dies again before it has taken them back into flight (killed
                // while starting, say) must not count a delivery that never happened.
                let settle = try connection.prepare(
                    "UPDATE queue_cursors SET in_flight = through WHERE part_index = ? AND part_count = ?"
                )
                settle.bind(1, partition.index)
                settle.bind(2, partition.count)
                try settle.run()
                return (inFlight, attempts)
            }
        }
    }

    /// SQLite has no notifications: a short sleep (20 ms), so a worker that caught up with its producer
    /// is back soon after the next commit; idle, the worker reads once a poll and writes nothing.
    public func waitForMessages(timeoutSeconds: Double) async throws(CastleError) {
        try? await Task.sleep(for: .milliseconds(Int(min(timeoutSeconds, 0.02) * 1000)))
    }

    public func acquire(partition: Partition, wait: Bool) async throws(CastleError) -> (any PartitionLock)? {
        let lockPath = "\(path).match-\(partition.index)-of-\(partition.count).lock"
        let fd = Glibc.open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
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
