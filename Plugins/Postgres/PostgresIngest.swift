import CastleSupport
import Logging
import PostgresNIO
import Storage
import Synchronization

/// An ingest or enqueue session: one transaction on a connection of its own. Rows are copied (`COPY …
/// FROM STDIN`, text format) into a temporary table as they come; `commit()` moves the new ones into
/// their table with one `INSERT … SELECT … ON CONFLICT DO NOTHING` and commits. Rows that are certainly
/// new (lines increasing and above the dataset's or the source's highest) skip the temporary table: a
/// file loaded once, or a live intake (serve's groups, `ingest --commit-every`), never makes one.
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
        /// Queue only: the id the next row copied straight into `queue_messages` gets (nil before the
        /// first append takes the queue lock).
        var nextID: Int64?
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
            case .queue(let source):
                try await appendToQueue(source, rows)
            case .dataset(let name):
                try await appendToDataset(name, rows)
            }
        } catch {
            await rollback()
            throw storageError(error, "\(displayURL): \(what)")
        }
    }

    /// The temporary table that rows wait in when they may be there already, made on first use.
    private func stage(_ rows: [OrderRow], queue: Bool) async throws {
        if !progress.withLock({ $0.staged }) {
            try await connection.rows(
                queue
                    ? """
                    CREATE TEMP TABLE castle_ingest (
                        n BIGINT GENERATED ALWAYS AS IDENTITY, line BIGINT, symbol TEXT, shard BIGINT, body TEXT)
                    ON COMMIT DROP
                    """
                    : "CREATE TEMP TABLE castle_ingest (line BIGINT, symbol TEXT, body TEXT) ON COMMIT DROP"
            )
            progress.withLock { $0.staged = true }
        }
        try await copy(
            rows,
            into: "castle_ingest",
            columns: queue ? ["line", "symbol", "shard", "body"] : ["line", "symbol", "body"],
            shard: queue
        )
    }

    /// Rows above every line of the source in the queue, in increasing order, are copied straight into
    /// `queue_messages` with the next ids: they cannot be there yet. The queue lock is taken at the first
    /// append and held to the end of the transaction, so ids become visible in id order (a consumer
    /// that saw id n never finds an id below n committed later) and are max + 1, 2, … in append order.
    /// Once a row is staged, the rest are too, so that commit gives them ids after the direct ones.
    private func appendToQueue(_ source: String, _ rows: [OrderRow]) async throws {
        var (floor, nextID, staged) = progress.withLock { ($0.lastLine, $0.nextID, $0.staged) }
        if nextID == nil {
            try await connection.rows("SELECT pg_advisory_xact_lock(\(LockKey.queue))")
            nextID = try await connection.scalar("SELECT coalesce(max(id), 0) + 1 FROM queue_messages")
            let top = try await connection.rows(
                "SELECT max(line) FROM queue_messages WHERE source = \(source)"
            ).first?.decode(Int64?.self)
            floor = (top ?? nil) ?? Int64.min
        }
        var increasing = !staged
        var highest = floor ?? Int64.min
        for row in rows {
            if row.line <= highest { increasing = false }
            highest = max(highest, row.line)
        }
        if increasing, let first = nextID {
            try await copy(
                rows,
                into: "queue_messages",
                columns: ["id", "source", "line", "symbol", "shard", "body"],
                prefix: source,
                shard: true,
                firstID: first
            )
            progress.withLock {
                $0.direct += rows.count
                $0.nextID = first + Int64(rows.count)
                $0.lastLine = highest
            }
        } else {
            try await stage(rows, queue: true)
            progress.withLock { $0.nextID = nextID }
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
            try await stage(rows, queue: false)
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
        shard: Bool = false,
        firstID: Int64? = nil
    ) async throws {
        try await connection.copyFrom(table: table, columns: columns, logger: silentLogger) { writer in
            var buffer = ByteBufferAllocator().buffer(capacity: 1 << 20)
            var id = firstID ?? 0
            for row in rows {
                if firstID != nil {
                    buffer.writeCopyField(id)
                    buffer.writeInteger(UInt8(ascii: "\t"))
                    id += 1
                }
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
                let (direct, staged, locked) = progress.withLock { ($0.direct, $0.staged, $0.nextID != nil) }
                added = Int64(direct)
                guard locked else { break }  // nothing appended
                // Under the queue lock (taken at the first append), so ids become visible in id order.
                // Ids are max + 1, 2, … in append order, with no gaps, after the rows copied directly.
                if staged {
                    added += try await connection.scalar(
                        """
                        WITH fresh AS (
                            SELECT DISTINCT ON (line) n, line, symbol, shard, body FROM castle_ingest t
                            WHERE NOT EXISTS (
                                SELECT 1 FROM queue_messages q WHERE q.source = \(source) AND q.line = t.line)
                            ORDER BY line, n),
                        top AS (SELECT coalesce(max(id), 0) AS id FROM queue_messages),
                        added AS (
                            INSERT INTO queue_messages (id, source, line, symbol, shard, body)
                            SELECT top.id + row_number() OVER (ORDER BY fresh.n), \(source), fresh.line,
                                fresh.symbol, fresh.shard, fresh.body
                            FROM fresh CROSS JOIN top ORDER BY fresh.n
                            ON CONFLICT DO NOTHING RETURNING 1)
                        SELECT count(*) FROM added
                        """
                    )
                }
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
