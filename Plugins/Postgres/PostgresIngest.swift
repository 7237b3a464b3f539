import CastleSupport
import Logging
import PostgresNIO
import Storage
import Synchronization

/// An ingest or enqueue session: one transaction on a connection of its own. Rows are copied (`COPY …
/// FROM STDIN`, text format) into a temporary table as they come; `commit()` moves the new ones into
/// their table with one `INSERT … SELECT … ON CONFLICT DO NOTHING` and commits. Dataset rows that are
/// certainly new (lines above the dataset's highest) skip the temporary table.
final class PostgresIngest: IngestSession {
    enum Kind: Sendable {
        case dataset(String)
        case queue(String)
    }

    private let connection: PostgresConnection
    private let kind: Kind
    private let displayURL: String
    private let finished = Atomic<Bool>(false)

    private struct Progress {
        /// The highest line of the dataset so far (its rows and this session's); nil before the first append.
        var lastLine: Int64?
        /// Rows copied straight into `dataset_orders`: all new.
        var direct = 0
        /// Whether rows wait in the temporary table.
        var staged = false
    }

    private let progress = Mutex(Progress())

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
        do {
            switch kind {
            case .queue:
                try await copy(rows, into: "castle_ingest", columns: ["line", "symbol", "shard", "body"], shard: true)
            case .dataset(let name):
                try await appendToDataset(name, rows)
            }
        } catch {
            await rollback()
            throw storageError(error, "\(displayURL): \(what)")
        }
    }

    /// Rows above every line of the dataset, in increasing order (a new file, or the rest of one), are
    /// copied straight into `dataset_orders`: they cannot be there yet. Others wait in the temporary
    /// table for `INSERT … ON CONFLICT DO NOTHING` at commit. The dataset's advisory lock, held to the
    /// end of the transaction, keeps a concurrent session from adding lines meanwhile.
    private func appendToDataset(_ name: String, _ rows: [OrderRow]) async throws {
        var floor: Int64
        if let known = progress.withLock({ $0.lastLine }) {
            floor = known
        } else {
            try await connection.rows("SELECT pg_advisory_xact_lock(\(LockKey.key("dataset:" + name)))")
            let top = try await connection.rows(
                "SELECT max(line) FROM dataset_orders WHERE dataset = \(name)"
            ).first?.decode(Int64?.self)
            floor = (top ?? nil) ?? Int64.min
        }
        var increasing = true
        var highest = floor
        for row in rows {
            if row.line <= highest { increasing = false }
            highest = max(highest, row.line)
        }
        if increasing {
            try await copy(rows, into: "dataset_orders", columns: ["dataset", "line", "symbol", "body"], prefix: name)
            progress.withLock { $0.direct += rows.count }
        } else {
            try await copy(rows, into: "castle_ingest", columns: ["line", "symbol", "body"])
            progress.withLock { $0.staged = true }
        }
        // Later direct rows stay above the staged ones too, so the first row of a line always wins.
        floor = highest
        progress.withLock { $0.lastLine = floor }
    }

    /// `COPY table (columns) FROM STDIN` in text format, in writes of about a megabyte.
    private func copy(
        _ rows: [OrderRow],
        into table: String,
        columns: [String],
        prefix: String? = nil,
        shard: Bool = false
    ) async throws {
        try await connection.copyFrom(table: table, columns: columns, logger: silentLogger) { writer in
            var buffer = ByteBufferAllocator().buffer(capacity: 1 << 20)
            for row in rows {
                if let prefix {
                    buffer.writeCopyField(prefix)
                    buffer.writeInteger(UInt8(ascii: "\t"))
                }
                buffer.writeCopyField(row.line)
                buffer.writeInteger(UInt8(ascii: "\t"))
                buffer.writeCopyField(row.symbol)
                buffer.writeInteger(UInt8(ascii: "\t"))
                if shard {
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
    }

    func commit() async throws(CastleError) -> Int {
        guard !finished.load(ordering: .acquiring) else {
            throw CastleError(.software, "\(displayURL): \(what): the session is already committed or rolled back")
        }
        do {
            var added: Int64
            switch kind {
            case .dataset(let name):
                let (direct, staged) = progress.withLock { ($0.direct, $0.staged) }
                added = Int64(direct)
                if staged {
                    // Within the session the first row of a line wins (the temporary table is read in
                    // insertion order), as against the table the row already there wins.
                    added += try await connection.scalar(
                        """
                        WITH added AS (
                            INSERT INTO dataset_orders (dataset, line, symbol, body)
                            SELECT \(name), line, symbol, body FROM castle_ingest
                            ON CONFLICT (dataset, line) DO NOTHING RETURNING 1)
                        SELECT count(*) FROM added
                        """
                    )
                }
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
