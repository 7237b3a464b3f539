internal import CSQLite
public import CastleSupport
public import Storage

// The row seam (``TableStore``) for SQLite: tables from sqlite_master and `PRAGMA table_info`, read in one
// read transaction on a connection of its own, restored in one BEGIN IMMEDIATE transaction that also
// applies the migrations the snapshot needs.

extension SQLiteBackend: TableStore {
    public func withTableRead<T>(
        _ body: (any TableReadTransaction) async throws(CastleError) -> T
    ) async throws(CastleError) -> T {
        // A connection of its own, so that the writer's statements never see or end this read.
        let connection = try await SQLiteSerialConnection.open(path: path, name: displayURL)
        let read: SQLiteTableRead
        do throws(CastleError) {
            read = try await connection.run { (connection) throws(CastleError) -> SQLiteTableRead.Header in
                // The first read after BEGIN fixes the WAL snapshot every later read of this transaction sees.
                try connection.execute("BEGIN")
                return SQLiteTableRead.Header(
                    schemaVersion: try SQLiteBackend.readMigrations(connection).map(\.version).max() ?? 0,
                    region: try SQLiteBackend.readRegion(connection),
                    tables: try SQLiteBackend.listTables(connection)
                )
            }.reading(on: connection)
        } catch {
            await connection.close()
            throw error
        }
        let result: Result<T, CastleError>
        do throws(CastleError) {
            result = .success(try await body(read))
        } catch {
            result = .failure(error)
        }
        _ = try? await connection.run { (connection) throws(CastleError) in try connection.execute("ROLLBACK") }
        await connection.close()
        return try result.get()
    }

    public func restoreTables(
        schemaVersion: Int,
        replace: Bool,
        region: String?,
        _ body: (any TableRestoreTransaction) async throws(CastleError) -> Void
    ) async throws(CastleError) {
        let connection = try await SQLiteSerialConnection.open(path: path, name: displayURL)
        let displayURL = displayURL
        do throws(CastleError) {
            let tables = try await connection.run { (connection) throws(CastleError) -> [TableInfo] in
                // A rollback journal for the restore: under WAL every page is written twice (into the WAL,
                // then by the checkpoint into the database), and a restore writes nearly every page of the
                // store. With a rollback journal a page that did not exist before the transaction goes
                // once into the database, and the journal keeps only the few pages that did (as atomic,
                // under synchronous = FULL: a crash leaves a hot journal that the next open rolls back).
                // Only possible with no other connection open; when one is, the restore stays in WAL.
                _ = connection.trySetJournalMode("delete")
                try connection.execute("BEGIN IMMEDIATE")
                try connection.execute(SQLiteBackend.migrationsTable)
                let pending = try Self.migrationsToApply(
                    upTo: schemaVersion,
                    applied: try SQLiteBackend.readMigrations(connection),
                    known: Migration.all(for: .sqlite),
                    store: displayURL
                )
                for migration in pending {
                    for statement in migration.up { try connection.execute(statement) }
                    let record = try connection.prepare(
                        "INSERT INTO castle_migrations (version, name, checksum) VALUES (?, ?, ?)"
                    )
                    record.bind(1, migration.version)
                    record.bind(2, migration.name)
                    record.bind(3, migration.checksum)
                    try record.run()
                }
                let tables = try SQLiteBackend.listTables(connection)
                for table in tables {
                    if replace {
                        try connection.execute("DELETE FROM \(quoted(table.name))")
                        continue
                    }
                    let count = try connection.prepare("SELECT count(*) FROM \(quoted(table.name))")
                    _ = try count.step()
                    let rows = count.int64(0)
                    if rows > 0 { throw Self.notEmpty(displayURL, table: table.name, rows: rows) }
                }
                if let region, try connection.tableExists("castle_region") {
                    let record = try connection.prepare("INSERT OR REPLACE INTO castle_region (id, name) VALUES (1, ?)")
                    record.bind(1, region)
                    try record.run()
                }
                return tables
            }
            let restore = SQLiteTableRestore(connection: connection, tables: tables)
            do throws(CastleError) {
                try await body(restore)
            } catch {
                // The batch in flight ends before the rollback (the connection's jobs run in order).
                try? await restore.finish()
                throw error
            }
            try await restore.finish()
            try await connection.run { (connection) throws(CastleError) in
                try connection.execute("COMMIT")
                // Back to WAL; should another connection have come meanwhile, its open switches it.
                _ = connection.trySetJournalMode("wal")
            }
        } catch {
            _ = try? await connection.run { (connection) throws(CastleError) in
                try connection.execute("ROLLBACK")
                _ = connection.trySetJournalMode("wal")
            }
            await connection.close()
            throw error
        }
        await connection.close()
    }

    public func storedRegion() async throws(CastleError) -> String? {
        try await withConnection { (connection) throws(CastleError) in try Self.readRegion(connection) }
    }

    public func recordRegion(_ name: String) async throws(CastleError) {
        try await withConnection { (connection) throws(CastleError) in
            try connection.writeTransaction { () throws(CastleError) in
                let statement = try connection.prepare(
                    "INSERT OR REPLACE INTO castle_region (id, name) VALUES (1, ?)"
                )
                statement.bind(1, name)
                try statement.run()
            }
        }
    }

    /// castle's bookkeeping of applied migrations, made by the first migration transaction.
    static let migrationsTable = """
        CREATE TABLE IF NOT EXISTS castle_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,
            applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))
        """

    static func readRegion(_ connection: SQLiteConnection) throws(CastleError) -> String? {
        guard try connection.tableExists("castle_region") else { return nil }
        let statement = try connection.prepare("SELECT name FROM castle_region WHERE id = 1")
        return try statement.step() ? statement.string(0) : nil
    }

    /// The data tables, sorted by name, with their columns in declared order and their primary key (the
    /// rowid for a table without one).
    static func listTables(_ connection: SQLiteConnection) throws(CastleError) -> [TableInfo] {
        let names = try connection.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        var tableNames: [String] = []
        while try names.step() {
            let name = names.string(0)
            if !TableInfo.isBookkeeping(name) { tableNames.append(name) }
        }
        var tables: [TableInfo] = []
        for name in tableNames {
            let info = try connection.prepare("SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid")
            info.bind(1, name)
            var columns: [TableColumn] = []
            var key: [(Int, String)] = []
            while try info.step() {
                let column = info.string(0)
                columns.append(TableColumn(name: column, type: columnType(declared: info.string(1))))
                let position = info.int(2)
                if position > 0 { key.append((position, column)) }
            }
            let primaryKey = key.sorted { $0.0 < $1.0 }.map(\.1)
            tables.append(
                TableInfo(name: name, columns: columns, primaryKey: primaryKey.isEmpty ? ["rowid"] : primaryKey)
            )
        }
        return tables
    }

    /// SQLite's affinity rules, narrowed to the seam's three types: INT (and BOOL, stored as 0 and 1) is an
    /// integer, BLOB binary, everything else text (a decimal stays the text it was written as).
    static func columnType(declared: String) -> ColumnType {
        let type = declared.uppercased()
        if type.contains("INT") || type.contains("BOOL") { return .integer }
        if type.contains("BLOB") { return .blob }
        return .text
    }
}

/// `name` as an SQL identifier. Names come from the schema or are checked against it first.
func quoted(_ name: String) -> String {
    "\"" + name.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\""
}

/// The read transaction of ``SQLiteBackend/withTableRead(_:)``.
final class SQLiteTableRead: TableReadTransaction {
    struct Header: Sendable {
        var schemaVersion: Int
        var region: String?
        var tables: [TableInfo]

        func reading(on connection: SQLiteSerialConnection) -> SQLiteTableRead {
            SQLiteTableRead(header: self, connection: connection)
        }
    }

    let schemaVersion: Int
    let region: String?
    let tables: [TableInfo]
    private let connection: SQLiteSerialConnection

    init(header: Header, connection: SQLiteSerialConnection) {
        schemaVersion = header.schemaVersion
        region = header.region
        tables = header.tables
        self.connection = connection
    }

    /// A statement outside the connection's cache (which is reset after every job), stepped across jobs:
    /// one pass over the table in key order. Touched only on the connection's thread.
    private final class Cursor: @unchecked Sendable {
        var handle: OpaquePointer?
    }

    func scan(
        _ table: TableInfo,
        _ visit: ([[RowValue]]) async throws(CastleError) -> Void
    ) async throws(CastleError) {
        let columns = table.columns.map { quoted($0.name) }.joined(separator: ", ")
        let order = table.primaryKey.map { $0 == "rowid" ? "rowid" : quoted($0) }.joined(separator: ", ")
        let sql = "SELECT \(columns) FROM \(quoted(table.name)) ORDER BY \(order)"
        let types = table.columns.map(\.type)
        let cursor = Cursor()
        do throws(CastleError) {
            try await connection.run { (connection) throws(CastleError) in
                let status = sqlite3_prepare_v2(connection.handle, sql, -1, &cursor.handle, nil)
                guard status == SQLITE_OK else { throw connection.error(status, "reading \(table.name)") }
            }
            // One batch read ahead: the connection's thread steps the cursor while the caller takes the last.
            let ahead = Fetched()
            var pending = connection.start { (connection) throws(CastleError) in
                ahead.rows = try Self.fetch(cursor, types, connection)
            }
            do throws(CastleError) {
                while true {
                    try await pending.value()
                    let batch = ahead.rows
                    ahead.rows = []
                    if batch.isEmpty { break }
                    pending = connection.start { (connection) throws(CastleError) in
                        ahead.rows = try Self.fetch(cursor, types, connection)
                    }
                    try await visit(batch)
                }
            } catch {
                // The read ahead ends before the cursor is finished (the connection's jobs run in order).
                try? await pending.value()
                throw error
            }
        } catch {
            _ = try? await connection.run { (_) throws(CastleError) in Self.finish(cursor) }
            throw error
        }
        _ = try? await connection.run { (_) throws(CastleError) in Self.finish(cursor) }
    }

    /// The batch read ahead: written on the connection's thread, read after its job is waited for.
    private final class Fetched: @unchecked Sendable {
        var rows: [[RowValue]] = []
    }

    private static func finish(_ cursor: Cursor) {
        sqlite3_finalize(cursor.handle)
        cursor.handle = nil
    }

    /// Up to a batch of rows from the cursor; none at the end.
    private static func fetch(
        _ cursor: Cursor,
        _ types: [ColumnType],
        _ connection: SQLiteConnection
    ) throws(CastleError) -> [[RowValue]] {
        guard let handle = cursor.handle else { return [] }
        var rows: [[RowValue]] = []
        rows.reserveCapacity(tableRowsBatch_max)
        while rows.count < tableRowsBatch_max {
            let status = sqlite3_step(handle)
            if status == SQLITE_DONE {
                finish(cursor)
                break
            }
            guard status == SQLITE_ROW else { throw connection.error(status, "reading rows") }
            var row: [RowValue] = []
            row.reserveCapacity(types.count)
            for (index, type) in types.enumerated() {
                let column = Int32(index)
                if sqlite3_column_type(handle, column) == SQLITE_NULL {
                    row.append(.null)
                    continue
                }
                switch type {
                case .integer:
                    row.append(.integer(sqlite3_column_int64(handle, column)))
                case .text:
                    let text = sqlite3_column_text(handle, column)
                    let count = Int(sqlite3_column_bytes(handle, column))
                    row.append(.text(String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)))
                case .blob:
                    let count = Int(sqlite3_column_bytes(handle, column))
                    let blob = sqlite3_column_blob(handle, column)
                    row.append(.blob(count > 0 ? Array(UnsafeRawBufferPointer(start: blob, count: count)) : []))
                }
            }
            rows.append(row)
        }
        return rows
    }
}

/// The write transaction of ``SQLiteBackend/restoreTables(schemaVersion:replace:region:_:)``. Batches are
/// inserted on the connection's thread, in order, while the caller decodes the next ones:
/// ``insert(_:into:columns:)`` waits only when ``batchesAhead`` are queued (and throws the error of the
/// one it waited for), ``finish()`` for all of them, before the commit. Two, not one: decoding and
/// inserting a batch take about as long, and with one queued every batch waited for the slower of the
/// two.
final class SQLiteTableRestore: TableRestoreTransaction {
    let tables: [TableInfo]
    private let connection: SQLiteSerialConnection
    /// Queued batches, oldest first.
    private var inFlight: [SQLitePending] = []
    static let batchesAhead = 2

    init(connection: SQLiteSerialConnection, tables: [TableInfo]) {
        self.connection = connection
        self.tables = tables
    }

    func insert(_ rows: [[RowValue]], into table: TableInfo, columns: [String]) async throws(CastleError) {
        if inFlight.count >= Self.batchesAhead { try await inFlight.removeFirst().value() }
        // Several rows a statement (VALUES (…), (…), …): one step and one reset for all of them. The rows a
        // batch has beyond a multiple go one a statement.
        let perStatement = Self.rowsPerStatement(columns: columns.count)
        let names = columns.map(quoted).joined(separator: ", ")
        let row = "(" + Array(repeating: "?", count: columns.count).joined(separator: ", ") + ")"
        let insert = "INSERT INTO \(quoted(table.name)) (\(names)) VALUES "
        let manySQL = insert + Array(repeating: row, count: perStatement).joined(separator: ", ")
        let oneSQL = insert + row
        let width = columns.count
        let pending = connection.start { (connection) throws(CastleError) in
            let many = try connection.prepare(manySQL)
            let one = try connection.prepare(oneSQL)
            // Text and blobs are copied into one buffer per statement and bound in place (SQLITE_STATIC): it
            // lives through the step, and SQLite makes no copy of its own.
            let values = RowBuffer()
            defer {
                sqlite3_clear_bindings(many.handle)
                sqlite3_clear_bindings(one.handle)
                values.deallocate()
            }
            var start = 0
            while start < rows.count {
                let count = rows.count - start >= perStatement ? perStatement : 1
                let statement = count == perStatement ? many : one
                let chunk = rows[start..<start + count]
                var size = 0
                for row in chunk {
                    for value in row {
                        switch value {
                        case .text(let text): size += text.utf8.count
                        case .blob(let bytes): size += bytes.count
                        case .null, .integer: break
                        }
                    }
                }
                values.reserve(size)
                var offset = 0
                for (rowIndex, row) in chunk.enumerated() {
                    for (index, value) in row.enumerated() {
                        let position = Int32(rowIndex * width + index + 1)
                        switch value {
                        case .null: sqlite3_bind_null(statement.handle, position)
                        case .integer(let number): statement.bind(position, number)
                        case .text(var text):
                            let count = text.withUTF8 { bytes in values.copy(bytes, at: offset) }
                            _ = sqlite3_bind_text64(
                                statement.handle,
                                position,
                                (values.base + offset).assumingMemoryBound(to: CChar.self),
                                sqlite3_uint64(count),
                                nil,  // SQLITE_STATIC
                                UInt8(SQLITE_UTF8)
                            )
                            offset += count
                        // An empty array has no address, which SQLite would bind as NULL.
                        case .blob(let bytes) where bytes.isEmpty: sqlite3_bind_zeroblob(statement.handle, position, 0)
                        case .blob(let bytes):
                            let count = bytes.withUnsafeBufferPointer { bytes in values.copy(bytes, at: offset) }
                            _ = sqlite3_bind_blob64(
                                statement.handle,
                                position,
                                values.base + offset,
                                sqlite3_uint64(count),
                                nil  // SQLITE_STATIC
                            )
                            offset += count
                        }
                    }
                }
                try statement.run()
                start += count
            }
        }
        inFlight.append(pending)
    }

    /// Rows a multi-row insert takes: 32, fewer for a table so wide that they would pass SQLite's limit of
    /// 32,766 bound values.
    static func rowsPerStatement(columns: Int) -> Int {
        max(1, min(32, 32_766 / max(1, columns)))
    }

    /// Waits for every queued batch; throws the first error.
    func finish() async throws(CastleError) {
        while !inFlight.isEmpty { try await inFlight.removeFirst().value() }
    }
}

/// A growable buffer of one row's text and blob bytes, on the connection's thread.
private final class RowBuffer {
    private(set) var base = UnsafeMutableRawPointer.allocate(byteCount: 4_096, alignment: 16)
    private var capacity = 4_096

    func reserve(_ count: Int) {
        guard count > capacity else { return }
        base.deallocate()
        capacity = max(count, capacity * 2)
        base = .allocate(byteCount: capacity, alignment: 16)
    }

    /// Copies `bytes` to `offset` (within the reserved count) and returns their count.
    func copy(_ bytes: UnsafeBufferPointer<UInt8>, at offset: Int) -> Int {
        if let source = bytes.baseAddress, bytes.count > 0 {
            (base + offset).copyMemory(from: source, byteCount: bytes.count)
        }
        return bytes.count
    }

    func deallocate() { base.deallocate() }
}
