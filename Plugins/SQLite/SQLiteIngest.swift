import CastleSupport
import Storage

/// Rows inserted on a connection of its own (and its thread) inside BEGIN IMMEDIATE ... COMMIT. The write
/// lock is taken with the first rows, not at begin: a session reading its first batch (or an ingest that
/// commits every N rows, between two transactions) leaves the lock to a worker meanwhile.
final class SQLiteIngest: IngestSession, @unchecked Sendable {
    typealias Bind = @Sendable (Statement, OrderRow) -> Void

    private let connection: SQLiteSerialConnection
    private let sql: String
    private let bind: Bind
    /// Touched only on the connection's thread.
    private let counter = Counter()
    private var open = true
    /// BEGIN IMMEDIATE was sent (with the first rows).
    private var begun = false
    private var inFlight: SQLitePending?

    private final class Counter: @unchecked Sendable {
        var added = 0
    }

    private init(connection: SQLiteSerialConnection, sql: String, bind: @escaping Bind) {
        self.connection = connection
        self.sql = sql
        self.bind = bind
    }

    /// Opens a connection to `path`.
    static func begin(
        path: String,
        name: String,
        sql: String,
        bind: @escaping Bind
    ) async throws(CastleError) -> SQLiteIngest {
        let connection = try await SQLiteSerialConnection.open(path: path, name: name)
        return SQLiteIngest(connection: connection, sql: sql, bind: bind)
    }

    // Dropped without commit or rollback: closing the connection (on its thread) rolls back.

    /// Inserts `rows` on the connection's thread while the caller reads and validates the next batch:
    /// at most one batch is in flight (the caller waits for the previous one first), so memory stays
    /// bounded. An insert's error surfaces at the next append or at commit.
    func append(_ rows: [OrderRow]) async throws(CastleError) {
        try await settle()
        let (sql, bind, counter, begin) = (sql, bind, counter, !begun)
        begun = true
        inFlight = connection.start { (connection) throws(CastleError) in
            if begin { try connection.execute("BEGIN IMMEDIATE") }
            let statement = try connection.prepare(sql)
            for row in rows {
                bind(statement, row)
                try statement.run()
                counter.added += connection.changes
            }
        }
    }

    /// Waits for the batch in flight, if any.
    private func settle() async throws(CastleError) {
        guard let pending = inFlight else { return }
        inFlight = nil
        try await pending.value()
    }

    func commit() async throws(CastleError) -> Int {
        do throws(CastleError) {
            try await settle()
        } catch {
            await rollback()
            throw error
        }
        open = false
        let (counter, begun) = (counter, begun)
        // Closed either way: a failed COMMIT (the disk full, say) is rolled back as the connection closes.
        do throws(CastleError) {
            let added = try await connection.run { (connection) throws(CastleError) -> Int in
                if begun { try connection.execute("COMMIT") }
                return counter.added
            }
            await connection.close()
            return added
        } catch {
            await connection.close()
            throw error
        }
    }

    func rollback() async {
        guard open else { return }
        open = false
        _ = try? await settle()
        if begun {
            _ = try? await connection.run { (connection) throws(CastleError) in try connection.execute("ROLLBACK") }
        }
        await connection.close()
    }
}
