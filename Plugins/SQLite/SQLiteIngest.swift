import CastleSupport
import Storage

/// Rows inserted on a connection of its own (and its thread) inside BEGIN IMMEDIATE ... COMMIT.
final class SQLiteIngest: IngestSession, @unchecked Sendable {
    typealias Bind = @Sendable (Statement, OrderRow) -> Void

    private let connection: SQLiteSerialConnection
    private let sql: String
    private let bind: Bind
    /// Touched only on the connection's thread.
    private let counter = Counter()
    private var open = true
    private var inFlight: SQLitePending?

    private final class Counter: @unchecked Sendable {
        var added = 0
    }

    private init(connection: SQLiteSerialConnection, sql: String, bind: @escaping Bind) {
        self.connection = connection
        self.sql = sql
        self.bind = bind
    }

    /// Opens a connection to `path` and takes the write lock (BEGIN IMMEDIATE).
    static func begin(
        path: String,
        name: String,
        sql: String,
        bind: @escaping Bind
    ) async throws(CastleError) -> SQLiteIngest {
        let connection = try await SQLiteSerialConnection.open(path: path, name: name)
        do throws(CastleError) {
            try await connection.run { (connection) throws(CastleError) in try connection.execute("BEGIN IMMEDIATE") }
        } catch {
            await connection.close()
            throw error
        }
        return SQLiteIngest(connection: connection, sql: sql, bind: bind)
    }

    // Dropped without commit or rollback: closing the connection (on its thread) rolls back.

    /// Inserts `rows` on the connection's thread while the caller reads and validates the next batch:
    /// at most one batch is in flight (the caller waits for the previous one first), so memory stays
    /// bounded. An insert's error surfaces at the next append or at commit.
    func append(_ rows: [OrderRow]) async throws(CastleError) {
        try await settle()
        let (sql, bind, counter) = (sql, bind, counter)
        inFlight = connection.start { (connection) throws(CastleError) in
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
        let counter = counter
        let added = try await connection.run { (connection) throws(CastleError) -> Int in
            try connection.execute("COMMIT")
            return counter.added
        }
        await connection.close()
        return added
    }

    func rollback() async {
        guard open else { return }
        open = false
        _ = try? await settle()
        _ = try? await connection.run { (connection) throws(CastleError) in try connection.execute("ROLLBACK") }
        await connection.close()
    }
}
