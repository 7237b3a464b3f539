import Formats
import Logging
import PostgresNIO
import Storage
import Synchronization

/// An ingest or enqueue session: one transaction on a connection of its own. Rows are copied (`COPY …
/// FROM STDIN`, text format) into a temporary table as they come; `commit()` moves the new ones into
/// their table with one `INSERT … SELECT … ON CONFLICT DO NOTHING` and commits.
final class PostgresIngest: IngestSession {
    enum Kind: Sendable {
        case dataset(String)
        case queue(String)
    }

    private let connection: PostgresConnection
    private let kind: Kind
    private let displayURL: String
    private let finished = Atomic<Bool>(false)

    private init(connection: PostgresConnection, kind: Kind, displayURL: String) {
        self.connection = connection
        self.kind = kind
        self.displayURL = displayURL
    }

    static func begin(backend: PostgresBackend, kind: Kind) async throws(CastleError) -> PostgresIngest {
        let connection = try await backend.dedicatedConnection()
        let session = PostgresIngest(connection: connection, kind: kind, displayURL: backend.displayURL)
        do {
            try await connection.rows("BEGIN")
            switch kind {
            case .dataset:
                try await connection.rows(
                    "CREATE TEMP TABLE castle_ingest (line BIGINT, symbol TEXT, body TEXT) ON COMMIT DROP"
                )
            case .queue:
                try await connection.rows(
                    """
                    CREATE TEMP TABLE castle_ingest (
                        n BIGINT GENERATED ALWAYS AS IDENTITY, line BIGINT, symbol TEXT, shard BIGINT, body TEXT)
                    ON COMMIT DROP
                    """
                )
            }
        } catch {
            await session.rollback()
            throw storageError(error, "\(backend.displayURL): \(session.what)")
        }
        return session
    }

    private var what: String {
        switch kind {
        case .dataset(let name): "ingesting into dataset \(name)"
        case .queue(let source): "enqueueing \(source)"
        }
    }

    func append(_ rows: [OrderRow]) async throws(CastleError) {
        guard !rows.isEmpty else { return }
        guard !finished.load(ordering: .acquiring) else {
            throw CastleError(.software, "\(displayURL): \(what): the session is already committed or rolled back")
        }
        let isQueue: Bool
        if case .queue = kind { isQueue = true } else { isQueue = false }
        let columns = isQueue ? ["line", "symbol", "shard", "body"] : ["line", "symbol", "body"]
        do {
            try await connection.copyFrom(table: "castle_ingest", columns: columns, logger: silentLogger) { writer in
                var buffer = ByteBufferAllocator().buffer(capacity: 1 << 20)
                for row in rows {
                    buffer.writeCopyField(row.line)
                    buffer.writeInteger(UInt8(ascii: "\t"))
                    buffer.writeCopyField(row.symbol)
                    buffer.writeInteger(UInt8(ascii: "\t"))
                    if isQueue {
                        buffer.writeCopyField(Partition.shard(of: row.symbol))
                        buffer.writeInteger(UInt8(ascii: "\t"))
                    }
                    buffer.writeCopyField(row.body)
                    buffer.writeInteger(UInt8(ascii: "\n"))
                    if buffer.readableBytes >= 1 << 20 {
                        try await writer.write(buffer)
                        buffer.clear()
                    }
                }
                if buffer.readableBytes > 0 { try await writer.write(buffer) }
            }
        } catch {
            await rollback()
            throw storageError(error, "\(displayURL): \(what)")
        }
    }

    func commit() async throws(CastleError) -> Int {
        guard !finished.load(ordering: .acquiring) else {
            throw CastleError(.software, "\(displayURL): \(what): the session is already committed or rolled back")
        }
        do {
            let added: Int64
            switch kind {
            case .dataset(let name):
                // Within the session the first row of a line wins (the temporary table is read in
                // insertion order), as against the table the row already there wins.
                added = try await connection.scalar(
                    """
                    WITH added AS (
                        INSERT INTO dataset_orders (dataset, line, symbol, body)
                        SELECT \(name), line, symbol, body FROM castle_ingest
                        ON CONFLICT (dataset, line) DO NOTHING RETURNING 1)
                    SELECT count(*) FROM added
                    """
                )
            case .queue(let source):
                // Under the queue lock, so ids become visible in id order: a consumer that saw id n never
                // finds an id below n committed later. Ids are max + 1, 2, … in append order, with no gaps.
                try await connection.rows("SELECT pg_advisory_xact_lock(\(LockKey.queue))")
                added = try await connection.scalar(
                    """
                    WITH fresh AS (
                        SELECT DISTINCT ON (line) n, line, symbol, shard, body FROM castle_ingest t
                        WHERE NOT EXISTS (
                            SELECT 1 FROM queue_messages q WHERE q.source = \(source) AND q.line = t.line)
                        ORDER BY line, n),
                    top AS (SELECT coalesce(max(id), 0) AS id FROM queue_messages),
                    added AS (
                        INSERT INTO queue_messages (id, source, line, symbol, shard, body)
                        SELECT top.id + row_number() OVER (ORDER BY fresh.n), \(source), fresh.line, fresh.symbol,
                            fresh.shard, fresh.body
                        FROM fresh CROSS JOIN top ORDER BY fresh.n
                        ON CONFLICT DO NOTHING RETURNING 1)
                    SELECT count(*) FROM added
                    """
                )
                if added > 0 {
                    // Keeps the BIGSERIAL's sequence past the ids given here, for anyone inserting by default.
                    try await connection.rows(
                        """
                        SELECT setval(pg_get_serial_sequence('queue_messages', 'id'), (SELECT max(id) FROM queue_messages))
                        """
                    )
                    // Delivered to listeners when the transaction commits.
                    try await connection.rows("NOTIFY castle_queue")
                }
            }
            try await connection.rows("COMMIT")
            finished.store(true, ordering: .releasing)
            try? await connection.close()
            return Int(added)
        } catch {
            await rollback()
            throw storageError(error, "\(displayURL): \(what)")
        }
    }

    func rollback() async {
        guard !finished.exchange(true, ordering: .acquiringAndReleasing) else { return }
        _ = try? await connection.rows("ROLLBACK")
        try? await connection.close()
    }

    deinit {
        // Dropped without commit or rollback: closing the connection rolls the transaction back.
        if !finished.load(ordering: .acquiring) { connection.closeSoon() }
    }
}
