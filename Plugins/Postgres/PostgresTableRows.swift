public import CastleSupport
import Logging
import PostgresNIO
public import Storage

// The row seam (``TableStore``) for PostgreSQL: tables from information_schema, read through one cursor per
// table inside one REPEATABLE READ READ ONLY transaction, restored with COPY inside one transaction that
// also applies the migrations the snapshot needs and moves identity sequences past the restored rows.

extension PostgresBackend: TableStore {
    public func withTableRead<T>(
        _ body: (any TableReadTransaction) async throws(CastleError) -> T
    ) async throws(CastleError) -> T {
        let connection = try await dedicatedConnection()
        defer { connection.closeSoon() }
        let read = try await perform("starting a consistent read") { () async throws -> PostgresTableRead in
            try await connection.rows("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            let version = try await PostgresSQLSession.applied(on: connection).map(\.version).max() ?? 0
            return PostgresTableRead(
                connection: connection,
                displayURL: displayURL,
                schemaVersion: version,
                region: try await Self.readRegion(connection),
                tables: try await Self.listTables(connection)
            )
        }
        let result: Result<T, CastleError>
        do throws(CastleError) {
            result = .success(try await body(read))
        } catch {
            result = .failure(error)
        }
        _ = try? await connection.rows("ROLLBACK")
        return try result.get()
    }

    public func restoreTables(
        schemaVersion: Int,
        replace: Bool,
        region: String?,
        _ body: (any TableRestoreTransaction) async throws(CastleError) -> Void
    ) async throws(CastleError) {
        let connection = try await dedicatedConnection()
        defer { connection.closeSoon() }
        let displayURL = displayURL
        do throws(CastleError) {
            let tables = try await perform("preparing the restore") { () async throws -> [PostgresTable] in
                try await connection.rows("BEGIN")
                // The migration lock: no `castle migrate` runs beside the restore's own migrations.
                try await connection.rows("SELECT pg_advisory_xact_lock(\(LockKey.migrations))")
                try await connection.rows(PostgresQuery(unsafeSQL: Self.migrationsTable))
                let pending = try Self.migrationsToApply(
                    upTo: schemaVersion,
                    applied: try await PostgresSQLSession.applied(on: connection),
                    known: Migration.all(for: .postgres),
                    store: displayURL
                )
                for migration in pending {
                    for statement in migration.up { try await connection.rows(PostgresQuery(unsafeSQL: statement)) }
                    try await connection.rows(
                        """
                        INSERT INTO castle_migrations (version, name, checksum)
                        VALUES (\(Int32(migration.version)), \(migration.name), \(migration.checksum))
                        """
                    )
                }
                let tables = try await Self.listTables(connection)
                if replace {
                    if !tables.isEmpty {
                        let names = tables.map { quoted($0.info.name) }.joined(separator: ", ")
                        try await connection.rows(PostgresQuery(unsafeSQL: "TRUNCATE \(names)"))
                    }
                } else {
                    for table in tables {
                        let rows = try await connection.scalar(
                            PostgresQuery(unsafeSQL: "SELECT count(*) FROM \(quoted(table.info.name))")
                        )
                        if rows > 0 { throw Self.notEmpty(displayURL, table: table.info.name, rows: rows) }
                    }
                }
                if let region, try await Self.hasRegionTable(connection) {
                    try await connection.rows(
                        """
                        INSERT INTO castle_region (id, name) VALUES (1, \(region))
                        ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name
                        """
                    )
                }
                return tables
            }
            try await body(PostgresTableRestore(connection: connection, displayURL: displayURL, tables: tables))
            try await perform("finishing the restore") {
                // Identity and serial columns continue after the restored rows, as they did at the source.
                let sequences = try await connection.rows(
                    """
                    SELECT table_name::text, column_name::text,
                        pg_get_serial_sequence(quote_ident(table_name), column_name)
                    FROM information_schema.columns
                    WHERE table_schema = current_schema()
                        AND pg_get_serial_sequence(quote_ident(table_name), column_name) IS NOT NULL
                    """
                )
                for row in sequences {
                    let (table, column, sequence) = try row.decode((String, String, String).self)
                    guard !TableInfo.isBookkeeping(table) else { continue }
                    try await connection.rows(
                        PostgresQuery(
                            unsafeSQL: """
                                SELECT setval(\(literal(sequence)),
                                    coalesce((SELECT max(\(quoted(column))) FROM \(quoted(table))), 1),
                                    (SELECT max(\(quoted(column))) FROM \(quoted(table))) IS NOT NULL)
                                """
                        )
                    )
                }
                try await connection.rows("COMMIT")
            }
        } catch {
            _ = try? await connection.rows("ROLLBACK")
            throw error
        }
    }

    public func storedRegion() async throws(CastleError) -> String? {
        try await perform("reading the region") {
            try await client.withConnection { connection in try await Self.readRegion(connection) }
        }
    }

    public func recordRegion(_ name: String) async throws(CastleError) {
        _ = try await perform("recording the region") {
            try await client.withConnection { connection in
                try await connection.rows(
                    """
                    INSERT INTO castle_region (id, name) VALUES (1, \(name))
                    ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name
                    """
                )
            }
        }
    }

    static let migrationsTable = """
        CREATE TABLE IF NOT EXISTS castle_migrations (
            version INT PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now())
        """

    static func hasRegionTable(_ connection: PostgresConnection) async throws -> Bool {
        try await connection.rows("SELECT to_regclass('castle_region') IS NOT NULL").first?.decode(Bool.self) == true
    }

    static func readRegion(_ connection: PostgresConnection) async throws -> String? {
        guard try await hasRegionTable(connection) else { return nil }
        return try await connection.rows("SELECT name FROM castle_region WHERE id = 1").first?.decode(String.self)
    }

    /// The data tables of the current schema, sorted by name (bytewise), with their columns in declared
    /// order and their primary keys.
    static func listTables(_ connection: PostgresConnection) async throws -> [PostgresTable] {
        let columnRows = try await connection.rows(
            """
            SELECT c.table_name::text, c.column_name::text, c.data_type::text
            FROM information_schema.columns c JOIN information_schema.tables t
                ON t.table_schema = c.table_schema AND t.table_name = c.table_name
            WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
            ORDER BY c.table_name COLLATE "C", c.ordinal_position
            """
        )
        let keyRows = try await connection.rows(
            """
            SELECT k.table_name::text, k.column_name::text
            FROM information_schema.table_constraints c JOIN information_schema.key_column_usage k
                ON k.constraint_schema = c.constraint_schema AND k.constraint_name = c.constraint_name
                AND k.table_name = c.table_name
            WHERE c.table_schema = current_schema() AND c.constraint_type = 'PRIMARY KEY'
            ORDER BY k.table_name, k.ordinal_position
            """
        )
        var keys: [String: [String]] = [:]
        for row in keyRows {
            let (table, column) = try row.decode((String, String).self)
            keys[table, default: []].append(column)
        }
        var tables: [PostgresTable] = []
        for row in columnRows {
            let (table, column, dataType) = try row.decode((String, String, String).self)
            guard !TableInfo.isBookkeeping(table) else { continue }
            if tables.last?.info.name != table {
                tables.append(
                    PostgresTable(info: TableInfo(name: table, columns: [], primaryKey: keys[table] ?? []), types: [])
                )
            }
            tables[tables.count - 1].info.columns.append(TableColumn(name: column, type: columnType(dataType)))
            tables[tables.count - 1].types.append(dataType)
        }
        return tables.sorted { Array($0.info.name.utf8).lexicographicallyPrecedes(Array($1.info.name.utf8)) }
    }

    /// The seam's type of a PostgreSQL data type: integers and booleans are integers, bytea binary,
    /// everything else (text, numeric, timestamps) its text form.
    static func columnType(_ dataType: String) -> ColumnType {
        switch dataType {
        case "smallint", "integer", "bigint", "boolean": .integer
        case "bytea": .blob
        default: .text
        }
    }
}

/// A table with the PostgreSQL data type of each column (for casts and collations).
struct PostgresTable: Sendable {
    var info: TableInfo
    var types: [String]

    /// Each column as the seam reads it: integers widened to bigint, booleans as 0 and 1, bytea as is,
    /// everything else as text.
    var selectList: String {
        zip(info.columns, types).map { column, type in
            let name = quoted(column.name)
            switch type {
            case "smallint", "integer", "bigint": return "\(name)::bigint"
            case "boolean": return "\(name)::int::bigint"
            case "bytea": return name
            default: return "\(name)::text"
            }
        }.joined(separator: ", ")
    }

    /// The primary key (all columns for a table without one), text in bytewise order as SQLite sorts it,
    /// so that the same rows come out in the same order from either backend.
    var orderBy: String {
        let key = info.primaryKey.isEmpty ? info.columns.map(\.name) : info.primaryKey
        return key.map { name in
            let type = types[info.columns.firstIndex { $0.name == name } ?? 0]
            let textual = type == "text" || type == "character varying" || type == "character"
            return textual ? "\(quoted(name)) COLLATE \"C\"" : quoted(name)
        }.joined(separator: ", ")
    }
}

func quoted(_ name: String) -> String {
    "\"" + name.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\""
}

func literal(_ text: String) -> String {
    "'" + text.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "''") + "'"
}

/// The read transaction of ``PostgresBackend/withTableRead(_:)``: one cursor per table, fetched a batch at
/// a time, so the server sorts once and the client holds one batch.
final class PostgresTableRead: TableReadTransaction {
    let schemaVersion: Int
    let region: String?
    let tables: [TableInfo]
    private let postgresTables: [String: PostgresTable]
    private let connection: PostgresConnection
    private let displayURL: String

    init(
        connection: PostgresConnection,
        displayURL: String,
        schemaVersion: Int,
        region: String?,
        tables: [PostgresTable]
    ) {
        self.connection = connection
        self.displayURL = displayURL
        self.schemaVersion = schemaVersion
        self.region = region
        self.tables = tables.map(\.info)
        postgresTables = Dictionary(tables.map { ($0.info.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    func scan(
        _ table: TableInfo,
        _ visit: ([[RowValue]]) async throws(CastleError) -> Void
    ) async throws(CastleError) {
        guard let described = postgresTables[table.name] else {
            throw CastleError(.software, "\(displayURL): no table \(table.name) in this read")
        }
        let types = table.columns.map(\.type)
        let connection = connection
        let displayURL = displayURL
        func run<T>(_ body: () async throws -> T) async throws(CastleError) -> T {
            do { return try await body() } catch { throw storageError(error, "\(displayURL): reading \(table.name)") }
        }
        _ = try await run {
            try await connection.rows(
                PostgresQuery(
                    unsafeSQL: """
                        DECLARE castle_scan NO SCROLL CURSOR FOR
                        SELECT \(described.selectList) FROM \(quoted(table.name)) ORDER BY \(described.orderBy)
                        """
                )
            )
        }
        while true {
            let batch = try await run { () async throws -> [[RowValue]] in
                try await connection.rows(
                    PostgresQuery(unsafeSQL: "FETCH FORWARD \(tableRowsBatch_max) FROM castle_scan")
                ).map { row in
                    var values: [RowValue] = []
                    values.reserveCapacity(types.count)
                    for (cell, type) in zip(row, types) {
                        guard cell.bytes != nil else {
                            values.append(.null)
                            continue
                        }
                        switch type {
                        case .integer: values.append(.integer(try cell.decode(Int64.self)))
                        case .text: values.append(.text(try cell.decode(String.self)))
                        case .blob: values.append(.blob(Array(try cell.decode(ByteBuffer.self).readableBytesView)))
                        }
                    }
                    return values
                }
            }
            if batch.isEmpty { break }
            try await visit(batch)
        }
        _ = try await run { try await connection.rows("CLOSE castle_scan") }
    }
}

/// The write transaction of ``PostgresBackend/restoreTables(schemaVersion:replace:region:_:)``: each batch
/// is one `COPY … FROM STDIN` in text format, which the server casts to each column's type.
final class PostgresTableRestore: TableRestoreTransaction {
    let tables: [TableInfo]
    private let connection: PostgresConnection
    private let displayURL: String

    init(connection: PostgresConnection, displayURL: String, tables: [PostgresTable]) {
        self.connection = connection
        self.displayURL = displayURL
        self.tables = tables.map(\.info)
    }

    func insert(_ rows: [[RowValue]], into table: TableInfo, columns: [String]) async throws(CastleError) {
        guard !rows.isEmpty else { return }
        // Names were checked against the schema: COPY quotes them but does not escape them.
        let known = Set(table.columns.map(\.name))
        guard tables.contains(where: { $0.name == table.name }),
            columns.allSatisfy({ known.contains($0) && !$0.contains("\"") })
        else { throw CastleError(.software, "\(displayURL): insert into \(table.name) with unchecked columns") }
        do {
            try await connection.copyFrom(table: table.name, columns: columns, logger: silentLogger) { writer in
                var buffer = ByteBufferAllocator().buffer(capacity: 1 << 20)
                for row in rows {
                    for (index, value) in row.enumerated() {
                        if index > 0 { buffer.writeInteger(UInt8(ascii: "\t")) }
                        switch value {
                        case .null: buffer.writeString("\\N")
                        case .integer(let number): buffer.writeCopyField(number)
                        case .text(let text): buffer.writeCopyField(text)
                        case .blob(let bytes):
                            // bytea's hex form, its backslash escaped for COPY's text format.
                            buffer.writeString("\\\\x")
                            let digits = Array("0123456789abcdef".utf8)
                            for byte in bytes {
                                buffer.writeInteger(digits[Int(byte >> 4)])
                                buffer.writeInteger(digits[Int(byte & 15)])
                            }
                        }
                    }
                    buffer.writeInteger(UInt8(ascii: "\n"))
                    if buffer.readableBytes >= 1 << 20 {
                        try await writer.write(buffer)
                        buffer.clear()
                    }
                }
                if buffer.readableBytes > 0 { try await writer.write(buffer) }
            }
        } catch {
            throw storageError(error, "\(displayURL): restoring \(table.name)")
        }
    }
}
