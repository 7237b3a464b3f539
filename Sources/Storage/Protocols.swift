public import CastleSupport

/// The store: datasets of orders as ingested, the matcher's event log and trades, resting-order state
/// and consumer offsets. Backends (memory, SQLite, PostgreSQL) implement it and ``MessageQueue``; the
/// ``StorageRegistry`` opens one by URL. Errors are ``CastleError``s with sysexits codes and never carry
/// credentials.
public protocol Store: AnyObject, Sendable {
    /// The URL with any password removed: safe for logs and errors.
    var displayURL: String { get }

    /// The schema: migrations and their lock. Nil for a backend without one (memory).
    var schema: (any SchemaDatabase)? { get }

    /// Starts writing rows into dataset `name`, all in one transaction. Rows whose line is already in the
    /// dataset are skipped, so ingesting the same file twice adds nothing.
    func beginIngest(dataset name: String) async throws(CastleError) -> any IngestSession

    func datasets() async throws(CastleError) -> [DatasetInfo]

    /// Rows of a dataset with `line > afterLine`, in line order, at most `limit`.
    func readDataset(_ name: String, afterLine: Int64, limit: Int) async throws(CastleError) -> [OrderRow]

    /// The consumer's offset, last event `seq` and resting orders (any order; callers sort by priority).
    func loadMatcherState(consumer: String) async throws(CastleError) -> MatcherState

    /// Writes one batch of the matcher in one transaction: its events, trades, upserted and deleted
    /// resting orders, and the consumer's new offset and last `seq`. Refuses (``CastleError/Kind/software``),
    /// writing nothing, when the stored offset is not equal to `previousOffset` (0 for a new consumer):
    /// a second writer for the same consumer. Every backend checks it inside the write transaction
    /// (PostgreSQL with the offset row locked `FOR UPDATE`, SQLite under `BEGIN IMMEDIATE`, memory under
    /// its lock).
    ///
    /// Atomic but not fsynced (SQLite `synchronous = NORMAL` in WAL mode, PostgreSQL `synchronous_commit
    /// = off`): it survives the process being killed, and a power loss can only take the last batches
    /// away whole, offset included. The worker then applies their messages again from the durable queue
    /// and, matching being deterministic, writes the same events with the same `seq`s. So the output is
    /// as durable as its input, without a second fsync per batch; any later fsynced commit to the same
    /// database (an enqueue, a settle) makes every batch before it durable too.
    func commitMatch(_ commit: MatchCommit, previousOffset: Int64) async throws(CastleError)

    /// Consumers that wrote events, sorted.
    func eventConsumers() async throws(CastleError) -> [String]

    /// Event segments of a consumer whose `lastSeq >= fromSeq`, in `seq` order, at most `limit`.
    func readEvents(consumer: String, fromSeq: Int64, limit: Int) async throws(CastleError) -> [EventSegment]

    /// All trades of a consumer, in `seq` order, with `seq > afterSeq`, at most `limit`.
    func readTrades(consumer: String, afterSeq: Int64, limit: Int) async throws(CastleError) -> [TradeRow]

    /// The backend's background work while it is open, until the calling task is cancelled or its service
    /// group shuts down gracefully: PostgreSQL's connection pool (`PostgresClient.run()`), which answers no
    /// statement until it runs. Memory and SQLite have none and return at once. Run it beside the work:
    /// ``StorageRegistry/withBackend(_:_:)`` does, in a task group; the durable worker runs it as a
    /// service of its `ServiceGroup`.
    func run() async

    /// Ends what the backend holds besides its background work (listener connection, SQLite thread).
    /// Call it once, after the last use; ``StorageRegistry/withBackend(_:_:)`` does on every path.
    func close() async
}

/// A durable queue of order-stream commands, consumed by the owner of each partition as a log: it holds
/// ``acquire(partition:wait:)``, reads after its offset with ``read(partition:after:limit:)``, and makes
/// processing exactly-once with its offset in the store (``Store/commitMatch(_:previousOffset:)``). A
/// cursor row per partition (``markConsumed(partition:through:inFlight:)``) says what is done and what is
/// in flight, so a new owner can count a delivery for what the last one died working on. Memory keeps
/// the messages and cursors in process; SQLite in tables of the database file, the owner holding an
/// `flock`; PostgreSQL in tables, the owner holding a session advisory lock, with LISTEN/NOTIFY to wake
/// waiting consumers.
public protocol MessageQueue: AnyObject, Sendable {
    var displayURL: String { get }

    /// Starts enqueueing rows of `source`, in one transaction. A (source, line) already enqueued, even if
    /// long consumed, is skipped: enqueueing the same file twice adds nothing. Ids are given in append
    /// order and become visible in id order.
    func beginEnqueue(source: String) async throws(CastleError) -> any IngestSession

    /// Enqueues `rows` of `source` in one transaction, as a session of ``beginEnqueue(source:)`` would
    /// (a line already enqueued is skipped), and returns how many were new: the small, frequent batches
    /// of a producer that stays (serve's group commit). SQLite runs it on its writer connection, where a
    /// session opens a connection of its own.
    func enqueue(_ rows: [OrderRow], source: String) async throws(CastleError) -> Int

    /// For the owner of `partition` (it holds ``acquire(partition:wait:)``): messages with `id > after`, in
    /// id order, at most `limit`, not dead. Nothing is recorded: nobody else takes from an owned
    /// partition, and ``markConsumed(partition:through:inFlight:)`` says what is done.
    func read(partition: Partition, after: Int64, limit: Int) async throws(CastleError) -> [QueueMessage]

    /// The owner's bookkeeping, one row per partition: every message of the partition up to `through` is
    /// done (``depth(partition:)`` skips them, with no write per message), and those in
    /// `through+1...inFlight` are being worked on. Not durable on its own: the consumer's offset in the
    /// store is what counts, this only catches up with it. SQLite commits it without an fsync,
    /// PostgreSQL with `synchronous_commit` off.
    func markConsumed(partition: Partition, through: Int64, inFlight: Int64) async throws(CastleError)

    /// ``read(partition:after:limit:)``, then, when it read something and none of it was delivered before
    /// (every `attempts` is 0), ``markConsumed(partition:through:inFlight:)`` up to the last message read;
    /// `marked` says whether it did. An owner that reads its next batch while it works on one saves the
    /// mark's round trip before that batch (SQLite does both in one job on its writer connection).
    func readMarkingInFlight(
        partition: Partition,
        after: Int64,
        limit: Int,
        through: Int64
    ) async throws(CastleError) -> (messages: [QueueMessage], marked: Bool)

    /// For a new owner: counts one more delivery for each message the previous owner left in flight (it
    /// died working on them), moves those now delivered `maxAttempts` times to the dead letters with
    /// "not acknowledged after N deliveries", and returns the end of the in-flight range and the most
    /// deliveries of a message still in it (0 when nothing was in flight).
    func recoverInFlight(
        partition: Partition,
        after: Int64,
        maxAttempts: Int
    )
        async throws(CastleError) -> (inFlight: Int64, attempts: Int)

    /// Messages neither done (up to a cursor's `through`) nor dead, in `partition` (all when nil).
    func depth(partition: Partition?) async throws(CastleError) -> Int

    /// The highest line ever enqueued from `source` (consumed, dead or not); nil when none was.
    func lastLine(source: String) async throws(CastleError) -> Int64?

    /// Reserves `count` (≥ 1) consecutive lines of `source` for one producer, atomically: above `floor`,
    /// above every line enqueued from `source`, and above every range reserved before on this store, by
    /// any process. Producers that take their lines from here never enqueue the same line: serve's order
    /// ids, with several servers taking orders on one store.
    func reserveLines(source: String, count: Int64, above floor: Int64) async throws(CastleError) -> ClosedRange<Int64>

    func deadLetters() async throws(CastleError) -> [DeadLetter]

    /// Returns when messages may have arrived, or after `timeoutSeconds`: a notification where the
    /// backend has one (PostgreSQL's LISTEN), a short sleep otherwise.
    func waitForMessages(timeoutSeconds: Double) async throws(CastleError)

    /// Makes this process the owner of `partition`: held until the lock is released or the process
    /// ends, however it ends. With `wait`, blocks until the current owner goes (a standby); without,
    /// returns nil when another process owns it.
    func acquire(partition: Partition, wait: Bool) async throws(CastleError) -> (any PartitionLock)?
}

extension MessageQueue {
    public func readMarkingInFlight(
        partition: Partition,
        after: Int64,
        limit: Int,
        through: Int64
    ) async throws(CastleError) -> (messages: [QueueMessage], marked: Bool) {
        let messages = try await read(partition: partition, after: after, limit: limit)
        guard let last = Self.lastToMark(messages) else { return (messages, false) }
        try await markConsumed(partition: partition, through: through, inFlight: last.id)
        return (messages, true)
    }

    /// Where ``readMarkingInFlight(partition:after:limit:through:)`` marks a batch read: its last message
    /// when none of it was delivered before; nil when one was (or nothing was read).
    public static func lastToMark(_ messages: [QueueMessage]) -> QueueMessage? {
        messages.allSatisfy { $0.attempts == 0 } ? messages.last : nil
    }

    public func enqueue(_ rows: [OrderRow], source: String) async throws(CastleError) -> Int {
        let session = try await beginEnqueue(source: source)
        do throws(CastleError) {
            try await session.append(rows)
            return try await session.commit()
        } catch {
            await session.rollback()
            throw error
        }
    }
}

/// Rows written in one transaction: nothing is visible until ``commit()``, and ``rollback()`` (or an
/// error) leaves the store as it was.
public protocol IngestSession: AnyObject, Sendable {
    func append(_ rows: [OrderRow]) async throws(CastleError)
    /// Makes the rows visible; returns how many were new (the others were already there).
    func commit() async throws(CastleError) -> Int
    func rollback() async
}

public protocol PartitionLock: AnyObject, Sendable {
    func release() async
}

/// The SQL schema of a backend, for ``Migrator``.
public protocol SchemaDatabase: AnyObject, Sendable {
    var dialect: SQLDialect { get }

    /// Applied migrations, by version; empty when the bookkeeping table does not exist yet.
    func appliedMigrations() async throws(CastleError) -> [AppliedMigration]

    /// Runs `work` in one transaction that holds the migration lock (PostgreSQL: a transaction-level
    /// advisory lock; SQLite: BEGIN IMMEDIATE), committing when it returns and rolling back when it throws.
    func withMigrationTransaction(
        _ work: (any SQLSession) async throws(CastleError) -> Void
    )
        async throws(CastleError)
}

/// Statements inside a migration transaction.
public protocol SQLSession: AnyObject {
    /// One statement, no results.
    func execute(_ sql: String) async throws(CastleError)
    func appliedMigrations() async throws(CastleError) -> [AppliedMigration]
    func recordMigration(_ migration: AppliedMigration) async throws(CastleError)
    func forgetMigration(version: Int) async throws(CastleError)
}

public enum SQLDialect: String, Sendable {
    case sqlite
    case postgres
}

public struct AppliedMigration: Sendable, Hashable {
    public var version: Int
    public var name: String
    /// SHA-256 of the migration's `up` SQL, lowercase hex.
    public var checksum: String

    public init(version: Int, name: String, checksum: String) {
        self.version = version
        self.name = name
        self.checksum = checksum
    }
}

/// The arithmetic of ``MessageQueue/reserveLines(source:count:above:)``, the same on every backend.
public enum LineReservation {
    /// The lines to give: from the first above `floor`, `lastLine` and the stored `next` (all that apply),
    /// `count` of them. Refused (65) when `count` is not positive or the range would pass `Int64.max`.
    public static func range(
        next: Int64?,
        lastLine: Int64?,
        floor: Int64,
        count: Int64,
        store: String
    ) throws(CastleError) -> ClosedRange<Int64> {
        let start = max(next ?? 1, (lastLine ?? 0) &+ 1, floor &+ 1, 1)
        guard count >= 1, start > 0, start <= Int64.max - count else {
            throw CastleError(.dataError, "\(store): cannot reserve \(count) lines from \(start)")
        }
        return start...(start + count - 1)
    }
}
