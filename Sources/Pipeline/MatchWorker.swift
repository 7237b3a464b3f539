public import CastleCore
public import CastleSupport
import Codecs
import MatchingEngine
public import Storage
import Streams

#if canImport(Glibc)
import Glibc
#endif

/// The durable matcher behind `castle match --queue URL --store URL`: owns its partition, reads it as a
/// log after the stored offset, applies the commands in offset order, and writes each batch's events,
/// trades, touched orders and the consumer's new offset in one store transaction; there is no ack per
/// message, a cursor row per partition tells the queue what is done and what is in flight. After a
/// crash it rebuilds its books from the stored resting orders and reads on after the stored offset, so
/// nothing is applied twice and nothing is lost.
public final class MatchWorker {
    public struct Options: Sendable {
        public var partition = Partition.whole
        /// Messages per transaction, at most. 20,000 rather than 5,000 takes a third off a drain on
        /// PostgreSQL and a fifth on SQLite (fewer resting-order rows written and deleted again), for about
        /// 50 MB more memory at the peak. Under serve's load a batch is what arrived since the last one.
        public var batchSize = 20_000
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
        /// Called once each batch is matched, with every message of the batch and the events it gave,
        /// while the batch's commit goes on: `castle serve` answers its requests from it. The messages are
        /// durable in the queue by then, and matching is deterministic: if the commit never lands (the
        /// process dies, the store fails and the worker stops), the next owner applies the same messages
        /// from the same stored state and writes the same events with the same `seq`s. What it announces
        /// may not be in the store yet; ``onCommitted`` says when it is. Nil (the CLI's worker) costs
        /// nothing.
        public var onMatched: (@Sendable (MatchedBatch) -> Void)?
        /// Called after each batch is committed, with the queue offset it moved the consumer to: every
        /// message up to it, and the events ``onMatched`` gave for them, are in the store.
        public var onCommitted: (@Sendable (_ offset: Int64) -> Void)?
        /// Waits for new messages instead of ``MessageQueue/waitForMessages(timeoutSeconds:)``: an
        /// enqueuer in the same process wakes the worker at once rather than the worker polling.
        public var waitForMessages: (@Sendable (_ timeoutSeconds: Double) async -> Void)?
        /// Called while another worker owns the partition, before each attempt to take it (every 100 ms):
        /// a standby `castle serve` follows the owner's event log meanwhile.
        public var whileStandingBy: (@Sendable () async -> Void)?
        /// Called once the worker owns the partition, before it rebuilds its books: the last owner's
        /// commits are all in the store by then, and `castle serve` reads them into its view here.
        public var onOwned: (@Sendable () async throws(CastleError) -> Void)?

        public init() {}
    }

    /// A batch the worker applied: its messages and the events they gave.
    public struct MatchedBatch: Sendable {
        public var messages: [QueueMessage]
        /// How many lines of ``events`` each message gave, in order.
        public var eventCounts: [Int]
        /// The batch's events as contract NDJSON, one line each, as the store gets them.
        public var events: [UInt8]
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
        /// Where the consumer stood when the worker started.
        var offset: Int64
        var lastSeq: Int64
    }

    public func run() async throws(CastleError) -> Summary {
        let started = monotonicNanoseconds()
        var summary = Summary()
        guard let lock = try await ownPartition() else { return summary }
        do {
            try await options.onOwned?()
            try await work(&summary, started: started)
            await lock.release()
            return summary
        } catch {
            await lock.release()
            throw error
        }
    }

    /// The run after the partition is taken: restore, then batch after batch until stopped or drained.
    private func work(_ summary: inout Summary, started: UInt64) async throws(CastleError) {
        var books = try await restoreBooks(&summary)
        let sink = OutputSink.inMemory()
        let writer = EventWriter(sink: sink, instruments: books.instruments, after: UInt64(books.lastSeq))
        writer.syncNames(symbols: books.decoder.symbols, accounts: books.decoder.accounts)
        var offset = books.offset
        var ready = false
        // The cursor as last written: an idle worker writes nothing.
        var cursor: (through: Int64, inFlight: Int64)? = nil
        let progress = ProgressBar(label: "match", forceDisabled: !options.showProgress)
        defer { progress.finish() }

        // The partition is read as a log after the offset: no lease and no ack per message; the cursor
        // (markConsumed) says which messages are done and which are in flight.
        //
        // Two batches overlap: batch k commits on the store's side while batch k+1, read and marked in
        // flight first, is matched on this one, and batch k+2 is read. The commits stay in order, each
        // checked against the offset the one before it wrote, and nothing of batch k+1 is committed before
        // batch k is; batches are announced (`onMatched`) in order too, each once matched. A crash
        // meanwhile counts a delivery for the messages of both. When batch k+1 was never delivered before,
        // the read of batch k+2 marks it in flight too (one job on SQLite's writer, where a mark of its
        // own would wait behind a group commit's fsync before k+2 could be matched): a crash then counts
        // a delivery for k+2 as well. That is at most one more for an innocent message, and only while no
        // message of the batch in hand was delivered before: once one was, marks go batch by batch again,
        // so a poison message still uses up its attempts alone.
        var pending: Matched? = nil
        func settle(_ matched: Matched?, _ outcome: Result<Void, CastleError>) throws(CastleError) {
            guard let matched else { return }
            try outcome.get()
            options.onCommitted?(matched.through)
            offset = matched.through
            summary.messages += matched.messages.count
            summary.trades += matched.commit.trades.count
            summary.batches += 1
            progress.update(
                done: summary.messages,
                total: nil,
                status: "\(summary.messages) messages, offset \(offset)"
            )
        }
        // The batch after the one being matched, read meanwhile (nil: read it now), and whether that read
        // marked it in flight.
        var readAhead: Batch? = nil
        let (queue, partition, batchSize) = (queue, options.partition, options.batchSize)
        while !shouldStop() {
            let after = pending?.through ?? offset
            let batch: Batch
            if let ahead = readAhead {
                batch = ahead
            } else {
                let read = await Self.nextBatch(queue, partition, after: after, limit: batchSize, marking: offset)
                batch = try read.get()
            }
            let messages = batch.messages
            readAhead = nil
            if !ready {
                ready = true
                summary.secondsToReady = Double(monotonicNanoseconds() - started) / 1e9
            }
            guard let last = messages.last else {
                try settle(pending, await Self.commit(pending, to: store))
                pending = nil
                try await markConsumed(through: offset, inFlight: offset, &cursor)
                if options.drain, try await queue.depth(partition: options.partition) == 0 { break }
                if let wait = options.waitForMessages {
                    await wait(1)
                } else {
                    try await queue.waitForMessages(timeoutSeconds: 1)
                }
                continue
            }
            // A batch with a message delivered before (its worker died with it in flight) waits for the
            // batch before it to commit: if it kills this worker too, only its own messages count one
            // more delivery, and a poison message never takes an innocent one to the dead letters.
            if pending != nil, messages.contains(where: { $0.attempts > 0 }) {
                try settle(pending, await Self.commit(pending, to: store))
                pending = nil
            }
            if let marked = batch.markedThrough {
                cursor = (marked, last.id)
            } else {
                try await markConsumed(through: offset, inFlight: last.id, &cursor)
            }
            let previous = pending
            let store = store
            // Marked ahead only while this batch holds no message delivered before (see above).
            let markAhead = messages.allSatisfy { $0.attempts == 0 } ? offset : nil
            async let committed = Self.commit(previous, to: store)
            async let upcoming = Self.nextBatch(queue, partition, after: last.id, limit: batchSize, marking: markAhead)
            let matched: Matched
            do throws(CastleError) {
                matched = try match(
                    messages,
                    after: after,
                    books: &books,
                    writer: writer,
                    sink: sink,
                    summary: &summary
                )
            } catch {
                _ = await (committed, upcoming)
                throw error
            }
            // Announced before the batch before it is known to be committed: see `onMatched`.
            if let onMatched = options.onMatched {
                onMatched(
                    MatchedBatch(messages: matched.messages, eventCounts: matched.eventCounts, events: matched.body)
                )
            }
            let outcome = await committed
            readAhead = try await upcoming.get()
            try settle(previous, outcome)
            pending = matched
        }
        try settle(pending, await Self.commit(pending, to: store))
        try await markConsumed(through: offset, inFlight: offset, &cursor)
        if let path = options.bookOutPath { try writeBook(books, to: path) }
    }

    /// A batch matched and ready to commit.
    struct Matched: Sendable {
        var messages: [QueueMessage]
        /// Moves the consumer's offset from `after` (where the batch was read from) to `through` (its last
        /// message).
        var commit: MatchCommit
        var after: Int64
        var through: Int64
        var eventCounts: [Int]
        var body: [UInt8]
    }

    /// Applies the batch to the books and gathers what its commit writes.
    private func match(
        _ messages: [QueueMessage],
        after: Int64,
        books: inout Books,
        writer: EventWriter,
        sink: OutputSink,
        summary: inout Summary
    ) throws(CastleError) -> Matched {
        let firstSeq = Int64(writer.seq) + 1
        let through = messages.last!.id
        var batch = MatchCommit(consumer: consumer, offset: through, lastSeq: 0, events: nil)
        var eventCounts: [Int] = []
        let touched = try apply(
            messages,
            to: &books,
            writer: writer,
            commit: &batch,
            summary: &summary,
            eventCounts: &eventCounts
        )
        let body = sink.takeBytes()
        batch.lastSeq = Int64(writer.seq)
        if !body.isEmpty {
            batch.events = EventSegment(firstSeq: firstSeq, lastSeq: batch.lastSeq, body: body)
        }
        diff(touched, books: &books, into: &batch)
        return Matched(
            messages: messages,
            commit: batch,
            after: after,
            through: through,
            eventCounts: eventCounts,
            body: body
        )
    }

    /// Loads the consumer's state, puts its resting orders back in their books, and counts one more
    /// delivery for the messages the last owner died working on.
    private func restoreBooks(_ summary: inout Summary) async throws(CastleError) -> Books {
        var decoder = CommandDecoder()
        var instruments: [SymbolID: Instrument] = [:]
        if let path = options.instrumentsPath {
            instruments = try InstrumentsFile.load(path: path, symbols: &decoder.symbols)
        }
        let state = try await store.loadMatcherState(consumer: consumer)
        var books = Books(
            exchange: Exchange(instruments: instruments, defaultSTP: options.stp),
            decoder: decoder,
            instruments: instruments,
            offset: state.offset,
            lastSeq: state.lastSeq
        )
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
        return books
    }

    /// Messages read from the queue; `markedThrough`: the read marked them in flight, with the cursor's
    /// `through` at this value.
    struct Batch: Sendable {
        var messages: [QueueMessage]
        var markedThrough: Int64?
    }

    /// The next messages of the partition after `offset`, suspects isolated: a message that was in flight
    /// when the worker died twice is taken alone, so that one that kills the worker every time uses up
    /// its own attempts and goes to the dead letters without its batch. With `marking` (the cursor's
    /// `through`), a batch of messages never delivered before is marked in flight by the same read.
    private static func nextBatch(
        _ queue: any Backend,
        _ partition: Partition,
        after offset: Int64,
        limit: Int,
        marking through: Int64?
    ) async -> Result<Batch, CastleError> {
        do throws(CastleError) {
            guard let through else {
                let messages = try await queue.read(partition: partition, after: offset, limit: limit)
                return .success(Batch(messages: isolatingSuspects(messages)))
            }
            let read = try await queue.readMarkingInFlight(
                partition: partition,
                after: offset,
                limit: limit,
                through: through
            )
            if read.marked { return .success(Batch(messages: read.messages, markedThrough: through)) }
            return .success(Batch(messages: isolatingSuspects(read.messages)))
        } catch {
            return .failure(error)
        }
    }

    private static func isolatingSuspects(_ messages: [QueueMessage]) -> [QueueMessage] {
        guard let suspect = messages.firstIndex(where: { $0.attempts >= 2 }) else { return messages }
        return suspect == 0 ? [messages[0]] : Array(messages[..<suspect])
    }

    /// Decodes and applies each message in offset order, writing its events and collecting its trades;
    /// returns the orders the batch touched.
    private func apply(
        _ messages: [QueueMessage],
        to books: inout Books,
        writer: EventWriter,
        commit: inout MatchCommit,
        summary: inout Summary,
        eventCounts: inout [Int]
    ) throws(CastleError) -> Set<OrderID> {
        let countsEvents = options.onMatched != nil
        var touched: Set<OrderID> = []
        var events: [Event] = []
        for message in messages {
            let decoded =
                message.body.utf8.withContiguousStorageIfAvailable { bytes in
                    books.decoder.decode(bytes, lineNumber: Int(message.line))
                }
                ?? Array(message.body.utf8).withUnsafeBufferPointer {
                    books.decoder.decode($0, lineNumber: Int(message.line))
                }
            if books.decoder.symbols.count > writer.symbolCount || books.decoder.accounts.count > writer.accountCount {
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
                            ts: ts,
                            makerAccount: trade.makerAccount == .none
                                ? nil : books.decoder.accounts.string(of: trade.makerAccount),
                            takerAccount: trade.takerAccount == .none
                                ? nil : books.decoder.accounts.string(of: trade.takerAccount)
                        )
                    )
                case .canceled(let id, _, _, _, _, _, _):
                    touched.insert(id)
                default:
                    break
                }
            }
            summary.events += events.count
            if countsEvents { eventCounts.append(events.count) }
            events.removeAll(keepingCapacity: true)
        }
        return touched
    }

    /// The stored resting orders the batch changes: an upsert for each touched order still live, a delete
    /// for each one gone that had a row. An order placed and gone within the batch gets neither.
    private func diff(_ touched: Set<OrderID>, books: inout Books, into commit: inout MatchCommit) {
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
    }

    /// Writes the batch and the consumer's new offset in one store transaction; refused when the stored
    /// offset is not the one the batch started from (another worker). Nothing to write: success.
    private static func commit(_ matched: Matched?, to store: any Backend) async -> Result<Void, CastleError> {
        guard let matched else { return .success(()) }
        do throws(CastleError) {
            try await store.commitMatch(matched.commit, previousOffset: matched.after)
            return .success(())
        } catch {
            return .failure(error)
        }
    }

    /// The final resting book, as `castle match --book-out` writes it.
    private func writeBook(_ books: Books, to path: String) throws(CastleError) {
        let sink = try OutputSink(path: path)
        do throws(CastleError) {
            try BookWriter.write(books.exchange, symbols: books.decoder.symbols, to: sink)
            try sink.commit()
        } catch {
            sink.abort()
            throw error
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
            await options.whileStandingBy?()
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
