public import CastleSupport
import Synchronization

/// An in-process backend for tests: `memory://NAME` opens the same instance for the same name within one
/// process. It keeps the queue's and the store's semantics (idempotent ingest, the owner's cursor,
/// attempts, dead letters, offsets) so the conformance suite runs against it unchanged. It has no schema.
public final class MemoryBackend: Store, MessageQueue {
    struct Message {
        var message: QueueMessage
        var done = false
    }

    struct State {
        var datasets: [String: [Int64: OrderRow]] = [:]
        var messages: [Message] = []
        var enqueued: Set<String> = []
        var deadLetters: [DeadLetter] = []
        var consumers: [String: MatcherState] = [:]
        var events: [String: [EventSegment]] = [:]
        var trades: [String: [TradeRow]] = [:]
        var ownedPartitions: Set<Partition> = []
        /// The owners' cursors: (through, in flight) per partition.
        var cursors: [Partition: (through: Int64, inFlight: Int64)] = [:]
        /// The region recorded by `castle migrate up` or a restore.
        var region: String?
        /// Per source, the next line ``reserveLines(source:count:above:)`` may give.
        var reservedLines: [String: Int64] = [:]
        /// `castle serve`'s client order ids (ClientOrderStore.swift).
        var clientOrders: [ClientOrderClaim.Key: ClientOrderClaim] = [:]

        mutating func bury(_ message: QueueMessage, error: String) {
            deadLetters.append(
                DeadLetter(
                    id: message.id,
                    source: message.source,
                    line: message.line,
                    body: message.body,
                    attempts: message.attempts,
                    error: error
                )
            )
        }

        /// Done by an owner's cursor, though its row was never touched.
        func consumed(_ message: QueueMessage) -> Bool {
            cursors.contains { partition, cursor in
                message.id <= cursor.through && partition.contains(symbol: message.symbol)
            }
        }
    }

    /// Internal for the row seam (MemoryTableRows.swift).
    let state = Mutex(State())
    /// The ledger's state (MemoryLedger.swift), under its own lock.
    let ledger = Mutex(MemoryLedgerState())
    public let displayURL: String
    /// `castle reconcile`'s runs, watermarks, resolutions and lock (ReconcileStore.swift).
    let reconcile = MemoryReconcileState()

    private static let instances = Mutex<[String: MemoryBackend]>([:])

    /// The instance for `name`, made on first use.
    public static func named(_ name: String) -> MemoryBackend {
        instances.withLock { instances in
            if let existing = instances[name] { return existing }
            let backend = MemoryBackend(displayURL: "memory://\(name)")
            instances[name] = backend
            return backend
        }
    }

    public init(displayURL: String = "memory://") {
        self.displayURL = displayURL
    }

    public var schema: (any SchemaDatabase)? { nil }

    public func close() async {}

    // MARK: Store

    public func beginIngest(dataset name: String) async throws(CastleError) -> any IngestSession {
        MemoryIngest(backend: self) { state, rows in
            var added = 0
            var table = state.datasets[name] ?? [:]
            for row in rows where table[row.line] == nil {
                table[row.line] = row
                added += 1
            }
            state.datasets[name] = table
            return added
        }
    }

    public func datasets() async throws(CastleError) -> [DatasetInfo] {
        state.withLock { state in
            state.datasets.map { DatasetInfo(name: $0.key, rows: Int64($0.value.count)) }.sorted { $0.name < $1.name }
        }
    }

    public func readDataset(_ name: String, afterLine: Int64, limit: Int) async throws(CastleError) -> [OrderRow] {
        state.withLock { state in
            let rows = state.datasets[name] ?? [:]
            return Array(rows.values.filter { $0.line > afterLine }.sorted { $0.line < $1.line }.prefix(limit))
        }
    }

    public func loadMatcherState(consumer: String) async throws(CastleError) -> MatcherState {
        state.withLock { $0.consumers[consumer] ?? MatcherState() }
    }

    public func commitMatch(_ commit: MatchCommit, previousOffset: Int64) async throws(CastleError) {
        try state.withLock { (state) throws(CastleError) in
            var consumer = state.consumers[commit.consumer] ?? MatcherState()
            guard consumer.offset == previousOffset else {
                throw StoreErrors.offsetMoved(
                    store: displayURL,
                    consumer: commit.consumer,
                    stored: consumer.offset,
                    expected: previousOffset
                )
            }
            consumer.offset = commit.offset
            consumer.lastSeq = commit.lastSeq
            let deleted = Set(commit.deletes)
            var orders = Dictionary(consumer.orders.map { ($0.id, $0) }, uniquingKeysWith: { $1 })
            for id in deleted { orders[id] = nil }
            for row in commit.upserts { orders[row.id] = row }
            consumer.orders = Array(orders.values)
            state.consumers[commit.consumer] = consumer
            if let events = commit.events { state.events[commit.consumer, default: []].append(events) }
            state.trades[commit.consumer, default: []].append(contentsOf: commit.trades)
        }
    }

    public func eventConsumers() async throws(CastleError) -> [String] {
        state.withLock { $0.events.keys.sorted() }
    }

    public func readEvents(consumer: String, fromSeq: Int64, limit: Int) async throws(CastleError) -> [EventSegment] {
        state.withLock { state in
            Array((state.events[consumer] ?? []).filter { $0.lastSeq >= fromSeq }.prefix(limit))
        }
    }

    public func readTrades(consumer: String, afterSeq: Int64, limit: Int) async throws(CastleError) -> [TradeRow] {
        state.withLock { state in
            Array((state.trades[consumer] ?? []).filter { $0.seq > afterSeq }.prefix(limit))
        }
    }

    // MARK: MessageQueue

    public func beginEnqueue(source: String) async throws(CastleError) -> any IngestSession {
        MemoryIngest(backend: self) { state, rows in
            var added = 0
            for row in rows {
                guard state.enqueued.insert("\(source)\u{0}\(row.line)").inserted else { continue }
                let id = Int64(state.messages.count + 1)
                let message = QueueMessage(
                    id: id,
                    source: source,
                    line: row.line,
                    symbol: row.symbol,
                    body: row.body,
                    attempts: 0
                )
                state.messages.append(Message(message: message))
                added += 1
            }
            return added
        }
    }

    public func depth(partition: Partition?) async throws(CastleError) -> Int {
        state.withLock { state in
            state.messages.count {
                !$0.done && (partition?.contains(symbol: $0.message.symbol) ?? true) && !state.consumed($0.message)
            }
        }
    }

    public func lastLine(source: String) async throws(CastleError) -> Int64? {
        state.withLock { state in state.messages.lazy.filter { $0.message.source == source }.map(\.message.line).max() }
    }

    public func reserveLines(
        source: String,
        count: Int64,
        above floor: Int64
    ) async throws(CastleError) -> ClosedRange<Int64> {
        try state.withLock { (state) throws(CastleError) -> ClosedRange<Int64> in
            let last = state.messages.lazy.filter { $0.message.source == source }.map(\.message.line).max()
            let range = try LineReservation.range(
                next: state.reservedLines[source],
                lastLine: last,
                floor: floor,
                count: count,
                store: displayURL
            )
            state.reservedLines[source] = range.upperBound + 1
            return range
        }
    }

    public func deadLetters() async throws(CastleError) -> [DeadLetter] {
        state.withLock { $0.deadLetters.sorted { $0.id < $1.id } }
    }

    public func read(partition: Partition, after: Int64, limit: Int) async throws(CastleError) -> [QueueMessage] {
        state.withLock { state in
            Array(
                state.messages.lazy.filter { !$0.done && $0.message.id > after }.map(\.message)
                    .filter { partition.contains(symbol: $0.symbol) }.prefix(limit)
            )
        }
    }

    public func markConsumed(partition: Partition, through: Int64, inFlight: Int64) async throws(CastleError) {
        state.withLock { $0.cursors[partition] = (through, max(through, inFlight)) }
    }

    public func recoverInFlight(
        partition: Partition,
        after: Int64,
        maxAttempts: Int
    )
        async throws(CastleError) -> (inFlight: Int64, attempts: Int)
    {
        state.withLock { state in
            guard let cursor = state.cursors[partition], cursor.inFlight > after else { return (0, 0) }
            let start = max(after, cursor.through)
            var most = 0
            for index in state.messages.indices {
                var entry = state.messages[index]
                let id = entry.message.id
                guard id > start, id <= cursor.inFlight, !entry.done, partition.contains(symbol: entry.message.symbol)
                else { continue }
                entry.message.attempts += 1
                if entry.message.attempts >= maxAttempts {
                    entry.done = true
                    state.bury(entry.message, error: "not acknowledged after \(entry.message.attempts) deliveries")
                } else {
                    most = max(most, entry.message.attempts)
                }
                state.messages[index] = entry
            }
            // Charged once: a worker that dies again before it has taken them back into flight (killed
            // while starting, say) must not count a delivery that never happened.
            state.cursors[partition]?.inFlight = cursor.through
            return (cursor.inFlight, most)
        }
    }

    public func waitForMessages(timeoutSeconds: Double) async throws(CastleError) {
        try? await Task.sleep(for: .milliseconds(min(Int(timeoutSeconds * 1000), 50)))
    }

    public func acquire(partition: Partition, wait: Bool) async throws(CastleError) -> (any PartitionLock)? {
        while true {
            let taken = state.withLock { $0.ownedPartitions.insert(partition).inserted }
            if taken { return MemoryPartitionLock(backend: self, partition: partition) }
            if !wait { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    fileprivate func release(_ partition: Partition) {
        _ = state.withLock { $0.ownedPartitions.remove(partition) }
    }

    fileprivate func apply(_ change: (inout State) -> Int) -> Int {
        state.withLock { change(&$0) }
    }
}

/// Rows held back until commit, then applied under the backend's lock at once.
final class MemoryIngest: IngestSession {
    private let backend: MemoryBackend
    private let applyRows: @Sendable (inout MemoryBackend.State, [OrderRow]) -> Int
    private let pending = Mutex<[OrderRow]>([])

    init(backend: MemoryBackend, apply: @escaping @Sendable (inout MemoryBackend.State, [OrderRow]) -> Int) {
        self.backend = backend
        self.applyRows = apply
    }

    func append(_ rows: [OrderRow]) async throws(CastleError) {
        pending.withLock { $0.append(contentsOf: rows) }
    }

    func commit() async throws(CastleError) -> Int {
        let rows = pending.withLock { rows in
            defer { rows = [] }
            return rows
        }
        return backend.apply { applyRows(&$0, rows) }
    }

    func rollback() async { pending.withLock { $0 = [] } }
}

final class MemoryPartitionLock: PartitionLock {
    private let backend: MemoryBackend
    private let partition: Partition
    init(backend: MemoryBackend, partition: Partition) {
        self.backend = backend
        self.partition = partition
    }
    func release() async { backend.release(partition) }
}
