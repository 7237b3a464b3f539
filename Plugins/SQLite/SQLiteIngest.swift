import Formats
import Storage

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
