public import CastleSupport
import Logging
import PostgresNIO
public import Storage
import Synchronization

extension PostgresBackend {
    public func beginEnqueue(source: String) async throws(CastleError) -> any IngestSession {
        try await PostgresIngest.begin(backend: self, kind: .queue(source))
    }

    /// A row of `id, source, line, symbol, body, attempts::bigint` from queue_messages.
    static func message(_ row: PostgresRow) throws -> QueueMessage {
        let (id, source, line, symbol, body, attempts) = try row.decode(
            (Int64, String, Int64, String, String, Int64).self
        )
        return QueueMessage(id: id, source: source, line: line, symbol: symbol, body: body, attempts: Int(attempts))
    }

    public func read(partition: Partition, after: Int64, limit: Int) async throws(CastleError) -> [QueueMessage] {
        let count = Int64(partition.count)
        let index = Int64(partition.index)
        return try await transaction("reading partition \(partition)") { connection in
            // Walk the primary key from `after`: never a sort of the queue. The planner cannot know that
            // `shard % N = K` keeps 1/N of the rows, and would rather sort the whole queue than walk the
            // primary key in id order: tell it not to, for this transaction.
            try await connection.rows("SET LOCAL enable_seqscan = off")
            try await connection.rows("SET LOCAL enable_sort = off")
            return try await connection.rows(
                """
                SELECT id, source, line, symbol, body, attempts::bigint FROM queue_messages
                WHERE id > \(after) AND state = 0 AND shard % \(count) = \(index)
                ORDER BY id LIMIT \(max(limit, 0))
                """
            ).map(Self.message)
        }
    }

    public func markConsumed(partition: Partition, through: Int64, inFlight: Int64) async throws(CastleError) {
        let count = Int32(partition.count)
        let index = Int32(partition.index)
        let inFlight = max(through, inFlight)
        _ = try await transaction("recording the cursor of partition \(partition)") { connection in
            // Not durable on its own (the consumer's offset in the store is): no wait for the WAL flush.
            try await connection.rows("SET LOCAL synchronous_commit = off")
            try await connection.rows(
                """
                INSERT INTO queue_cursors (part_index, part_count, through, in_flight)
                VALUES (\(index), \(count), \(through), \(inFlight))
                ON CONFLICT (part_index, part_count) DO UPDATE SET through = EXCLUDED.through, in_flight = EXCLUDED.in_flight
                """
            )
            return 0
        }
    }

    public func recoverInFlight(
        partition: Partition,
        after: Int64,
        maxAttempts: Int
    )
        async throws(CastleError) -> (inFlight: Int64, attempts: Int)
    {
        let count = Int64(partition.count)
        let index = Int64(partition.index)
        let maxAttempts = Int32(clamping: maxAttempts)
        let result = try await transaction("recovering the messages in flight in partition \(partition)") {
            connection in
            let cursors = try await connection.rows(
                """
                SELECT through, in_flight FROM queue_cursors
                WHERE part_index = \(Int32(index)) AND part_count = \(Int32(count)) FOR UPDATE
                """
            )
            guard let row = cursors.first else { return [Int64(0), 0] }
            let (through, inFlight) = try row.decode((Int64, Int64).self)
            guard inFlight > after else { return [Int64(0), 0] }
            let start = max(after, through)
            try await connection.rows(
                """
                UPDATE queue_messages SET attempts = attempts + 1
                WHERE id > \(start) AND id <= \(inFlight) AND state = 0 AND shard % \(count) = \(index)
                """
            )
            try await connection.rows(
                """
                WITH dead AS (
                    UPDATE queue_messages SET state = 2,
                        last_error = 'not acknowledged after ' || attempts || ' deliveries'
                    WHERE id > \(start) AND id <= \(inFlight) AND state = 0 AND shard % \(count) = \(index)
                        AND attempts >= \(maxAttempts)
                    RETURNING id, source, line, body, attempts, last_error)
                INSERT INTO dead_letters (id, source, line, body, attempts, error)
                SELECT id, source, line, body, attempts, last_error FROM dead ON CONFLICT (id) DO NOTHING
                """
            )
            let most = try await connection.scalar(
                """
                SELECT coalesce(max(attempts), 0)::bigint FROM queue_messages
                WHERE id > \(start) AND id <= \(inFlight) AND state = 0 AND shard % \(count) = \(index)
                """
            )
            // Charged once: a worker that dies again before it has taken them back into flight (killed
            // while starting, say) must not count a delivery that never happened.
            try await connection.rows(
                """
                UPDATE queue_cursors SET in_flight = through
                WHERE part_index = \(Int32(index)) AND part_count = \(Int32(count))
                """
            )
            return [inFlight, most]
        }
        return (result[0], Int(result[1]))
    }

    public func lastLine(source: String) async throws(CastleError) -> Int64? {
        let rows = try await select(
            "the last line of \(source)",
            "SELECT max(line) FROM queue_messages WHERE source = \(source)"
        ) { try $0.decode(Int64?.self) }
        return rows.first ?? nil
    }

    public func reserveLines(
        source: String,
        count: Int64,
        above floor: Int64
    ) async throws(CastleError) -> ClosedRange<Int64> {
        let store = displayURL
        // The source's row is locked first (made when new), so that concurrent reservations take turns.
        return try await transaction("reserving lines of \(source)") { connection -> ClosedRange<Int64> in
            try await connection.rows(
                "INSERT INTO castle_order_ids (source, next_line) VALUES (\(source), 0) ON CONFLICT (source) DO NOTHING"
            )
            let stored = try await connection.scalar(
                "SELECT next_line FROM castle_order_ids WHERE source = \(source) FOR UPDATE"
            )
            let last = try await connection.rows("SELECT max(line) FROM queue_messages WHERE source = \(source)")
                .first?.decode(Int64?.self)
            let range = try LineReservation.range(
                next: stored == 0 ? nil : stored,
                lastLine: last ?? nil,
                floor: floor,
                count: count,
                store: store
            )
            try await connection.rows(
                "UPDATE castle_order_ids SET next_line = \(range.upperBound + 1) WHERE source = \(source)"
            )
            return range
        }
    }

    public func depth(partition: Partition?) async throws(CastleError) -> Int {
        let partition = partition ?? .whole
        let count = Int64(partition.count)
        let index = Int64(partition.index)
        return try await transaction("queue depth") { connection in
            // From the highest cursor that covers the whole partition on, along the primary key: what is
            // below it is done, and the count does not grow with the queue's history.
            try await connection.rows("SET LOCAL enable_seqscan = off")
            let floor = try await connection.scalar(
                """
                SELECT coalesce(max(through), 0) FROM queue_cursors c
                WHERE \(count) % c.part_count = 0 AND \(index) % c.part_count = c.part_index
                """
            )
            return Int(
                try await connection.scalar(
                    """
                    SELECT count(*) FROM queue_messages q
                    WHERE id > \(floor) AND state = 0 AND shard % \(count) = \(index)
                        AND NOT EXISTS (SELECT 1 FROM queue_cursors c
                            WHERE q.id <= c.through AND q.shard % c.part_count = c.part_index)
                    """
                )
            )
        }
    }

    public func deadLetters() async throws(CastleError) -> [DeadLetter] {
        try await select(
            "dead letters",
            "SELECT id, source, line, body, attempts::bigint, error FROM dead_letters ORDER BY id"
        ) { row in
            let (id, source, line, body, attempts, error) = try row.decode(
                (Int64, String, Int64, String, Int64, String).self
            )
            return DeadLetter(id: id, source: source, line: line, body: body, attempts: Int(attempts), error: error)
        }
    }

    public func waitForMessages(timeoutSeconds: Double) async throws(CastleError) {
        guard timeoutSeconds > 0 else { return }
        let milliseconds = Int64(min(timeoutSeconds, 86_400) * 1000)
        if !listener.isListening {
            do {
                try await listener.start(connection: try await dedicatedConnection())
            } catch {
                // No listener now: a short sleep keeps the caller polling, the next call tries again.
                try? await Task.sleep(for: .milliseconds(min(milliseconds, 200)))
                return
            }
        }
        await listener.wait(milliseconds: milliseconds)
    }

    public func acquire(partition: Partition, wait: Bool) async throws(CastleError) -> (any PartitionLock)? {
        let key = LockKey.partition(partition)
        let connection = try await dedicatedConnection()
        do {
            if wait {
                // Blocks in the server until the owner's session ends; cancelling closes the connection.
                _ = try await withTaskCancellationHandler {
                    try await connection.rows("SELECT pg_advisory_lock(\(key))")
                } onCancel: {
                    connection.closeSoon()
                }
            } else {
                let taken = try await connection.rows("SELECT pg_try_advisory_lock(\(key))").first?.decode(Bool.self)
                guard taken == true else {
                    try? await connection.close()
                    return nil
                }
            }
        } catch {
            try? await connection.close()
            throw storageError(error, "\(displayURL): locking partition \(partition)")
        }
        return PostgresPartitionLock(connection: connection, key: key)
    }
}

/// The owner of a partition: a session-level advisory lock on a connection of its own. Ends with the
/// connection, so a process that dies leaves the partition to its standby.
final class PostgresPartitionLock: PartitionLock {
    private let connection: PostgresConnection
    private let key: Int64
    private let released = Atomic<Bool>(false)

    init(connection: PostgresConnection, key: Int64) {
        self.connection = connection
        self.key = key
    }

    func release() async {
        guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return }
        _ = try? await connection.rows("SELECT pg_advisory_unlock(\(key))")
        try? await connection.close()
    }

    deinit {
        if !released.load(ordering: .acquiring) { connection.closeSoon() }
    }
}

/// `LISTEN castle_queue` on a connection of its own. A notification that arrives while no one waits is
/// kept, so the next wait returns at once: a consumer that found the queue empty and then waits does not
/// miss an enqueue that committed in between.
final class QueueListener: Sendable {
    private struct State {
        var task: Task<Void, Never>?
        var connection: PostgresConnection?
        var listening = false
        var pending = false
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
        /// Waiters woken (timeout, cancellation) before they were registered.
        var woken: Set<Int> = []
        var stopped = false
    }

    private let state = Mutex(State())

    var isListening: Bool { state.withLock { $0.listening } }

    /// Starts listening on `connection`; returns once the server has confirmed LISTEN.
    func start(connection: PostgresConnection) async throws {
        let proceed = state.withLock { state in
            guard !state.listening, !state.stopped else { return false }
            state.listening = true
            state.connection = connection
            return true
        }
        guard proceed else {
            try? await connection.close()
            return
        }
        let ready = AsyncStream<Result<Void, any Error>>.makeStream()
        let task = Task {
            do {
                try await connection.listen(on: "castle_queue") { notifications in
                    ready.continuation.yield(.success(()))
                    for try await _ in notifications { self.signal() }
                }
            } catch {
                ready.continuation.yield(.failure(error))
            }
            ready.continuation.finish()
            self.state.withLock { state in
                state.listening = false
                state.connection = nil
                state.task = nil
            }
            try? await connection.close()
            // Waiters go back to their callers, who poll and wait again.
            self.signal()
        }
        state.withLock { $0.task = task }
        for await outcome in ready.stream {
            try outcome.get()
            break
        }
    }

    private func signal() {
        let waiters = state.withLock { state in
            let waiters = state.waiters.values
            state.waiters = [:]
            if waiters.isEmpty { state.pending = true }
            return Array(waiters)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns at a notification (or one kept from before), at the timeout, or when the task is cancelled.
    func wait(milliseconds: Int64) async {
        if state.withLock({ state in
            defer { state.pending = false }
            return state.pending
        }) {
            return
        }
        let id = state.withLock { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        let timer = Task {
            guard (try? await Task.sleep(for: .milliseconds(milliseconds))) != nil else { return }
            self.wake(id)
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    if state.woken.remove(id) != nil { return true }
                    if state.pending || state.stopped || !state.listening {
                        state.pending = false
                        return true
                    }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            self.wake(id)
        }
        timer.cancel()
        _ = state.withLock { $0.woken.remove(id) }
    }

    private func wake(_ id: Int) {
        let waiter = state.withLock { state in
            guard let waiter = state.waiters.removeValue(forKey: id) else {
                state.woken.insert(id)
                return nil as CheckedContinuation<Void, Never>?
            }
            return waiter
        }
        waiter?.resume()
    }

    func stop() async {
        let (task, connection) = state.withLock { state in
            state.stopped = true
            return (state.task, state.connection)
        }
        task?.cancel()
        if let connection { try? await connection.close() }
        await task?.value
        signal()
    }
}
