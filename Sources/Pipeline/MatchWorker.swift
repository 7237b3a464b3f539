public import CastleCore
public import CastleSupport
import Codecs
import MatchingEngine
public import Storage
import Streams

#if canImport(Glibc)
import Glibc
#endif

/// The durable matcher behind `castle match --queue URL --store URL`: takes commands from the queue in
/// offset order, applies them, and writes each batch's events, trades, touched orders and the consumer
/// offset in one store transaction, then acks. After a crash it rebuilds its books from the stored
/// resting orders and goes on from the stored offset: messages at or below it are acked unapplied, so
/// nothing is applied twice and nothing is lost.
public final class MatchWorker {
    public struct Options: Sendable {
        public var partition = Partition.whole
        public var batchSize = 5_000
        public var leaseSeconds = 60
        public var maxAttempts = 5
        /// Exit once the partition's queue is empty.
        public var drain = false
        public var instrumentsPath: String?
        /// Where to write the final resting book when the worker ends (as `castle match --book-out`).
        public var bookOutPath: String?
        public var stp: STPMode = .cancelTaker
        public var showProgress = true
        /// Fault injection for the tests of poison messages: the worker aborts whenever it is about to apply
        /// a command for this order, as a crashing bug would. Set only by a debug build's hidden flag.
        public var debugCrashOnID: OrderID?

        public init() {}
    }

    public struct Summary: Sendable {
        public var restoredOrders = 0
        public var startOffset: Int64 = 0
        public var messages = 0
        public var events = 0
        public var trades = 0
        public var batches = 0
        /// From start to the first batch received (after rebuilding the books).
        public var secondsToReady = 0.0
    }

    let store: any Backend
    let queue: any Backend
    let options: Options
    let consumer: String
    /// Asked between batches: true stops the worker cleanly (SIGTERM).
    let shouldStop: @Sendable () -> Bool
    let log: @Sendable (String) -> Void

    public init(
        store: any Backend,
        queue: any Backend,
        options: Options,
        shouldStop: @escaping @Sendable () -> Bool = { false },
        log: @escaping @Sendable (String) -> Void = { writeStandardError("castle match: \($0)\n") }
    ) {
        self.store = store
        self.queue = queue
        self.options = options
        self.consumer = "match:\(options.partition)"
        self.shouldStop = shouldStop
        self.log = log
    }

    /// The engine and what the worker keeps beside it.
    struct Books {
        var exchange: Exchange
        var decoder = CommandDecoder()
        /// Priority (queue offset that placed it) of every resting order.
        var priorities: [OrderID: Int64] = [:]
        /// Orders that have a row in the store: an order placed and gone within one batch never gets one.
        var stored: Set<OrderID> = []
        var instruments: [SymbolID: Instrument]
    }

    public func run() async throws(CastleError) -> Summary {
        let started = monotonicNanoseconds()
        var summary = Summary()
        guard let lock = try await ownPartition() else { return summary }
        do {
            try await work(&summary, started: started)
            await lock.release()
            return summary
        } catch {
            await lock.release()
            throw error
        }
    }

    private func work(_ summary: inout Summary, started: UInt64) async throws(CastleError) {
        var decoder = CommandDecoder()
        var instruments: [SymbolID: Instrument] = [:]
        if let path = options.instrumentsPath {
            instruments = try InstrumentsFile.load(path: path, symbols: &decoder.symbols)
        }
        var books = Books(
            exchange: Exchange(instruments: instruments, defaultSTP: options.stp),
            decoder: decoder,
            instruments: instruments
        )
        let state = try await store.loadMatcherState(consumer: consumer)
        try restore(state, into: &books)
        summary.restoredOrders = state.orders.count
        summary.startOffset = state.offset
        // The previous owner's messages in flight, if it died working on them: one more delivery each.
        let recovered = try await queue.recoverInFlight(
            partition: options.partition,
            after: state.offset,
            maxAttempts: options.maxAttempts
        )
        if recovered.attempts > 0 {
            log("messages up to offset \(recovered.inFlight) were in flight when the last owner stopped")
        }
        if state.offset > 0 || !state.orders.isEmpty {
            log(
                "resuming \(consumer) after offset \(state.offset), seq \(state.lastSeq), \(state.orders.count) resting orders"
            )
        }

        let sink = OutputSink.inMemory()
        let writer = EventWriter(sink: sink, instruments: instruments, after: UInt64(state.lastSeq))
        writer.syncNames(symbols: books.decoder.symbols, accounts: books.decoder.accounts)
        var offset = state.offset
        var events: [Event] = []
        var ready = false
        // The cursor as last written: an idle worker writes nothing.
        var cursor: (through: Int64, inFlight: Int64)? = nil
        let progress = ProgressBar(label: "match", forceDisabled: !options.showProgress)
        defer { progress.finish() }

        // The partition is read as a log after the offset: no lease and no ack per message; the cursor
        // (markConsumed) says which messages are done and which are in flight. A message that was in flight
        // when the worker died twice is taken alone, so that one that kills the worker every time uses up
        // its own attempts and goes to the dead letters without its batch.
        while !shouldStop() {
            var messages = try await queue.read(partition: options.partition, after: offset, limit: options.batchSize)
            if let suspect = messages.firstIndex(where: { $0.attempts >= 2 }) {
                messages = suspect == 0 ? [messages[0]] : Array(messages[..<suspect])
            }
            if !ready {
                ready = true
                summary.secondsToReady = Double(monotonicNanoseconds() - started) / 1e9
            }
            if messages.isEmpty {
                try await markConsumed(through: offset, inFlight: offset, &cursor)
                if options.drain, try await queue.depth(partition: options.partition) == 0 { break }
                try await queue.waitForMessages(timeoutSeconds: 1)
                continue
            }
            try await markConsumed(through: offset, inFlight: messages.last!.id, &cursor)
            var commit = MatchCommit(consumer: consumer, offset: offset, lastSeq: Int64(writer.seq), events: nil)
            var touched: Set<OrderID> = []
            var applied = 0
            for message in messages {
                offset = message.id
                applied += 1
                let decoded =
                    message.body.utf8.withContiguousStorageIfAvailable { bytes in
                        books.decoder.decode(bytes, lineNumber: Int(message.line))
                    }
                    ?? Array(message.body.utf8).withUnsafeBufferPointer {
                        books.decoder.decode($0, lineNumber: Int(message.line))
                    }
                if books.decoder.symbols.count > writer.symbolCount
                    || books.decoder.accounts.count > writer.accountCount
                {
                    writer.syncNames(symbols: books.decoder.symbols, accounts: books.decoder.accounts)
                }
                switch decoded {
                case .command(let command):
                    if command.id == options.debugCrashOnID { abort() }
                    // A `new` with a live id is rejected: `before` then equals `after` and nothing moves.
                    let before = command.op == .cancel ? nil : books.exchange.liveOrder(command.id)
                    books.exchange.apply(command, into: &events)
                    touched.insert(command.id)
                    if command.op != .cancel, let after = books.exchange.liveOrder(command.id),
                        Self.placed(before: before, after: after)
                    {
                        books.priorities[command.id] = message.id
                    }
                case .rejected(let op, let id, let reason, let detail):
                    events.append(
                        .rejected(op: op, id: id, reason: reason, detail: detail, line: Int(message.line), ts: nil)
                    )
                }
                for event in events {
                    try writer.write(event)
                    switch event {
                    case .trade(let trade, let ts):
                        touched.insert(trade.maker)
                        commit.trades.append(
                            TradeRow(
                                seq: Int64(writer.seq),
                                symbol: books.decoder.symbols.string(of: trade.symbol),
                                price: trade.price,
                                qty: trade.qty,
                                maker: trade.maker,
                                taker: trade.taker,
                                side: trade.side == .buy ? "buy" : "sell",
                                ts: ts
                            )
                        )
                    case .canceled(let id, _, _, _, _):
                        touched.insert(id)
                    default:
                        break
                    }
                }
                summary.events += events.count
                events.removeAll(keepingCapacity: true)
            }
            let body = sink.takeBytes()
            if !body.isEmpty {
                commit.events = EventSegment(firstSeq: commit.lastSeq + 1, lastSeq: Int64(writer.seq), body: body)
            }
            for id in touched {
                if let order = books.exchange.liveOrder(id), let priority = books.priorities[id] {
                    commit.upserts.append(row(order, priority: priority, names: books.decoder))
                    books.stored.insert(id)
                } else {
                    books.priorities[id] = nil
                    if books.stored.remove(id) != nil { commit.deletes.append(id) }
                }
            }
            commit.upserts.sort { $0.id < $1.id }
            commit.deletes.sort()
            let previous = commit.offset
            commit.offset = offset
            commit.lastSeq = Int64(writer.seq)
            if applied > 0 { try await store.commitMatch(commit, previousOffset: previous) }
            summary.messages += applied
            summary.trades += commit.trades.count
            summary.batches += 1
            progress.update(
                done: summary.messages,
                total: nil,
                status: "\(summary.messages) messages, offset \(offset)"
            )
        }
        try await markConsumed(through: offset, inFlight: offset, &cursor)
        if let path = options.bookOutPath {
            let sink = try OutputSink(path: path)
            do throws(CastleError) {
                try BookWriter.write(books.exchange, symbols: books.decoder.symbols, to: sink)
                try sink.commit()
            } catch {
                sink.abort()
                throw error
            }
        }
    }

    /// Writes the queue's cursor for the partition, unless it already says so.
    private func markConsumed(
        through: Int64,
        inFlight: Int64,
        _ written: inout (through: Int64, inFlight: Int64)?
    ) async throws(CastleError) {
        if let written, written.through == through, written.inFlight == inFlight { return }
        try await queue.markConsumed(partition: options.partition, through: through, inFlight: inFlight)
        written = (through, inFlight)
    }

    /// Takes the partition, or waits as a standby until its owner goes. Nil when asked to stop meanwhile.
    private func ownPartition() async throws(CastleError) -> (any PartitionLock)? {
        if let lock = try await store.acquire(partition: options.partition, wait: false) { return lock }
        log("partition \(options.partition) is owned by another worker; standing by")
        while !shouldStop() {
            try? await Task.sleep(for: .milliseconds(100))
            if let lock = try await store.acquire(partition: options.partition, wait: false) {
                log("took over partition \(options.partition)")
                return lock
            }
        }
        return nil
    }

    /// Rebuilds the books from stored resting orders, in time priority.
    private func restore(_ state: MatcherState, into books: inout Books) throws(CastleError) {
        for stored in state.orders.sorted(by: { ($0.priority, $0.id) < ($1.priority, $1.id) }) {
            guard let symbol = books.decoder.symbols.intern(stored.symbol),
                let side = Side(rawValue: stored.side), let stp = STPMode(rawValue: stored.stp)
            else {
                throw CastleError(
                    .dataError,
                    "\(store.displayURL): stored order \(stored.id) of \(consumer) is unreadable"
                )
            }
            let account: AccountID =
                stored.account.isEmpty ? .none : books.decoder.accounts.intern(stored.account) ?? .none
            let order = LiveOrder(
                id: stored.id,
                symbol: symbol,
                side: side,
                price: stored.price,
                qty: stored.qty,
                account: account,
                postOnly: stored.postOnly,
                stp: stp
            )
            guard books.exchange.restore(order) else {
                throw CastleError(
                    .dataError,
                    "\(store.displayURL): stored order \(stored.id) of \(consumer) cannot rest (duplicate or crossed)"
                )
            }
            books.priorities[stored.id] = stored.priority
            books.stored.insert(stored.id)
        }
    }

    /// Did this command give the order a new place in its queue? A new order that rests, or an amend
    /// other than a same-price size-down.
    static func placed(before: LiveOrder?, after: LiveOrder) -> Bool {
        guard let before else { return true }
        return before.price != after.price || after.qty > before.qty
    }

    private func row(_ order: LiveOrder, priority: Int64, names: CommandDecoder) -> RestingOrderRow {
        RestingOrderRow(
            id: order.id,
            symbol: names.symbols.string(of: order.symbol),
            side: order.side.rawValue,
            price: order.price,
            qty: order.qty,
            account: order.account == .none ? "" : names.accounts.string(of: order.account),
            postOnly: order.postOnly,
            stp: order.stp.rawValue,
            priority: priority
        )
    }
}
