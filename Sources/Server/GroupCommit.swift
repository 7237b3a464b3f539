import CastleSupport
import Storage
import Synchronization
import Tracing

/// Group commit: requests hand in their items and are called back; one flush at a time writes every
/// item waiting, in one transaction (one fsync), and the next flush starts when it finishes with whatever
/// arrived meanwhile. Under load, batches grow by themselves; alone, a request waits for one commit.
/// `flush` returns one result per item, in order.
///
/// A lock, not an actor, and callbacks, not a suspended task per item: an order answered on its event
/// loop (``OrderChannelHandler``) hands its row in and is called back from the flush, with no task of its
/// own and no hop to one (docs/serve-performance.md). ``commit(_:span:)`` awaits the same for the
/// routes that run in a task.
final class GroupCommitter<Item: Sendable, Outcome: Sendable>: Sendable {
    typealias Flush = @Sendable ([Item]) async throws(CastleError) -> [Outcome]
    /// Called once with the item's outcome or the flush's error, on the flushing task: it must not block.
    typealias Done = @Sendable (Result<Outcome, CastleError>) -> Void
    /// An item waiting for the next flush: the request's span (to link to) and its callback.
    private struct Waiter: Sendable {
        var item: Item
        var span: InstrumentationContext?
        var done: Done
    }
    private struct State {
        var waiting: [Waiter] = []
        var flushing = false
    }
    private let flush: Flush
    /// With `--otlp-endpoint`, each flush is a span of this name of its own, linked to the spans of the
    /// requests it commits, with the number of items as the attribute `count`; nil: no spans.
    private let span: (name: String, count: String)?
    private let state = Mutex(State())

    init(span: (name: String, count: String)?, flush: @escaping Flush) {
        self.span = span
        self.flush = flush
    }

    /// Calls `done` once `item` is committed (durable) with its outcome, or with what the commit threw.
    /// `span`: the request's span, which the flush's span links to.
    func commit(_ item: Item, span: InstrumentationContext? = nil, then done: @escaping Done) {
        let startsFlushing = state.withLock { state in
            state.waiting.append(Waiter(item: item, span: span, done: done))
            defer { state.flushing = true }
            return !state.flushing
        }
        if startsFlushing { Task { await self.flushUntilEmpty() } }
    }

    /// Returns once `item` is committed (durable) with its outcome, or throws what the commit threw.
    func commit(_ item: Item, span: InstrumentationContext? = nil) async throws(CastleError) -> Outcome {
        try await withCheckedContinuation { (continuation: CheckedContinuation<Result<Outcome, CastleError>, Never>) in
            commit(item, span: span) { continuation.resume(returning: $0) }
        }.get()
    }

    private func flushUntilEmpty() async {
        while true {
            let batch = state.withLock { state in
                defer { state.waiting = [] }
                if state.waiting.isEmpty { state.flushing = false }
                return state.waiting
            }
            if batch.isEmpty { return }
            let span = self.span.flatMap { startServerSpan(true, $0.name, context: .topLevel) }
            if let span, let count = self.span?.count {
                span.attributes[count] = batch.count
                for case let request? in batch.map(\.span) { span.addLink(SpanLink(context: request, attributes: [:])) }
            }
            do throws(CastleError) {
                let outcomes = try await flush(batch.map(\.item))
                span?.end()
                for (entry, outcome) in zip(batch, outcomes) { entry.done(.success(outcome)) }
            } catch {
                span?.end(failing: error)
                for entry in batch { entry.done(.failure(error)) }
            }
        }
    }
}

extension GroupCommitter where Item == OrderRow, Outcome == Void {
    /// Rows of `source` into the queue (a line already there is skipped: the queue keeps the first);
    /// `afterFlush` is told after each commit. With `tracing`, each flush is a span `queue.commit`.
    convenience init(
        queue: any MessageQueue,
        source: String,
        tracing: Bool,
        afterFlush: @escaping @Sendable () -> Void
    ) {
        self.init(span: tracing ? ("queue.commit", "castle.queue.rows") : nil) {
            (rows: [OrderRow]) throws(CastleError) in
            _ = try await queue.enqueue(rows, source: source)
            afterFlush()
            return rows.map { _ in () }
        }
    }
}

/// Wakes the in-process matcher as soon as the queue has new messages, instead of it polling.
final class Doorbell: Sendable {
    private let state = Mutex<(rung: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func ring() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.rung = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns when rung (or if rung since the last wait), or after `timeoutSeconds`.
    func wait(timeoutSeconds: Double) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForRing() }
            group.addTask { try? await Task.sleep(for: .milliseconds(Int(timeoutSeconds * 1000))) }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForRing() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.rung || Task.isCancelled {
                        state.rung = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
    }
}

/// Requests waiting for the matcher's verdict on their message, by queue line; the matcher's commit
/// hook hands each its events (a `Verdict`: serve's ``CommandEvents``). Several requests may wait for one
/// line (an order and the retries of it): each holds its own ticket. A wait ends at its deadline with
/// ``VerdictTimedOut``: one sweeper task, running only while someone waits, ends the overdue waits,
/// instead of a timer for every request.
final class MatchResults<Verdict: Sendable>: Sendable {
    struct Ticket: Sendable {
        let line: Int64
        fileprivate let number: Int
    }

    /// No verdict by the wait's deadline.
    struct VerdictTimedOut: Error {}

    /// Called once with the line's events or why the wait ended, on the thread that ends it (the
    /// matcher's, the sweeper's, the caller's): it must not block.
    typealias Done = @Sendable (Result<Verdict, any Error>) -> Void

    private enum Slot {
        case waiting(Done?, deadline: ContinuousClock.Instant)
        case done(Verdict)
    }

    /// A line's tickets: nearly always one, so an array, not a dictionary (a request's wait cost an
    /// inner dictionary and its hashing before).
    private typealias Tickets = [(number: Int, slot: Slot)]

    private struct State {
        var slots: [Int64: Tickets] = [:]
        var issued = 0
        /// Callbacks stored (waits under way).
        var waits = 0
        var sweeping = false
    }

    private let state = Mutex(State())
    /// How often the sweeper looks for overdue waits: a wait ends at most this much after its deadline.
    private let sweepEvery: Duration

    init(sweepEvery: Duration = .milliseconds(100)) {
        self.sweepEvery = sweepEvery
    }

    /// Called before the message is enqueued (or looked for), so that no verdict can arrive unexpected.
    func expect(_ line: Int64) -> Ticket {
        state.withLock { state in
            state.issued += 1
            state.slots[line, default: []].append((state.issued, .waiting(nil, deadline: .now)))
            return Ticket(line: line, number: state.issued)
        }
    }

    /// Ends the ticket's wait, if it waits, with a `CancellationError`; a verdict arriving later is
    /// dropped for it.
    func forget(_ ticket: Ticket) {
        let waiter = state.withLock { state in Self.remove(ticket, from: &state) }
        if case .waiting(let done?, _) = waiter { done(.failure(CancellationError())) }
    }

    private static func remove(_ ticket: Ticket, from state: inout State) -> Slot? {
        guard var tickets = state.slots[ticket.line],
            let index = tickets.firstIndex(where: { $0.number == ticket.number })
        else { return nil }
        let slot = tickets.remove(at: index).slot
        state.slots[ticket.line] = tickets.isEmpty ? nil : tickets
        if case .waiting(_?, _) = slot { state.waits -= 1 }
        return slot
    }

    /// Calls `done` with the events of the ticket's line once matched (at once if they are in), with
    /// ``VerdictTimedOut`` after `timeout`, or with `CancellationError` if the ticket was forgotten.
    func wait(_ ticket: Ticket, timeout: Duration, then done: @escaping Done) {
        let deadline = ContinuousClock.now + timeout
        let (ready, startSweeper) = state.withLock { state -> (Result<Verdict, any Error>?, Bool) in
            guard let index = state.slots[ticket.line]?.firstIndex(where: { $0.number == ticket.number }) else {
                return (.failure(CancellationError()), false)
            }
            switch state.slots[ticket.line]![index].slot {
            case .done(let events):
                _ = Self.remove(ticket, from: &state)
                return (.success(events), false)
            case .waiting:
                state.slots[ticket.line]![index].slot = .waiting(done, deadline: deadline)
                state.waits += 1
                defer { state.sweeping = true }
                return (nil, !state.sweeping)
            }
        }
        if let ready { done(ready) }
        if startSweeper { Task { await self.sweep() } }
    }

    /// Ends the overdue waits every `sweepEvery`, until none is left.
    private func sweep() async {
        while true {
            try? await Task.sleep(for: sweepEvery)
            let now = ContinuousClock.now
            let (overdue, more) = state.withLock { state -> ([Done], Bool) in
                var overdue: [Done] = []
                for (line, tickets) in state.slots {
                    for (number, slot) in tickets {
                        guard case .waiting(let done?, let deadline) = slot, deadline <= now else { continue }
                        overdue.append(done)
                        _ = Self.remove(Ticket(line: line, number: number), from: &state)
                    }
                }
                state.sweeping = state.waits > 0
                return (overdue, state.sweeping)
            }
            for done in overdue { done(.failure(VerdictTimedOut())) }
            if !more { return }
        }
    }

    func fulfil(_ line: Int64, events: Verdict) {
        let waiters = state.withLock { state -> [Done] in
            guard let tickets = state.slots[line] else { return [] }
            var waiters: [Done] = []
            var kept: Tickets = []
            for (number, slot) in tickets {
                switch slot {
                case .waiting(let done?, _):
                    waiters.append(done)
                case .waiting(nil, _):
                    kept.append((number, .done(events)))
                case .done:
                    kept.append((number, slot))
                }
            }
            state.waits -= waiters.count
            state.slots[line] = kept.isEmpty ? nil : kept
            return waiters
        }
        for done in waiters { done(.success(events)) }
    }

    /// Ends every wait: the matcher stopped.
    func failAll(_ error: any Error) {
        let waiters = state.withLock { state -> [Done] in
            defer {
                state.slots = [:]
                state.waits = 0
            }
            return state.slots.values.flatMap { tickets in
                tickets.compactMap { if case .waiting(let done?, _) = $0.slot { done } else { nil } }
            }
        }
        for done in waiters { done(.failure(error)) }
    }
}

/// Order ids (and queue lines) serve hands out: taken from ranges the queue reserves for this server
/// (``MessageQueue/reserveLines(source:count:above:)``), so that no two servers on one store ever give
/// the same id, whatever their clocks say, and each range above the wall clock in microseconds, so that
/// serve's ids stay far from the small ids of ingested order files and increase across restarts.
final class IDGenerator: Sendable {
    /// Ids a reservation takes: a store write every few thousand orders.
    static let rangeSize: Int64 = 4096

    private struct State {
        var available: ClosedRange<Int64>.SubSequence = (0...0).dropFirst()
        /// The reservation under way, that every request which found no id left waits for.
        var refill: Task<ClosedRange<Int64>, any Error>?
    }

    private let state = Mutex(State())
    private let reserve: @Sendable () async throws(CastleError) -> ClosedRange<Int64>

    init(queue: any MessageQueue, source: String, rangeSize: Int64 = rangeSize) {
        reserve = { () throws(CastleError) in
            try await queue.reserveLines(source: source, count: rangeSize, above: wallClockMilliseconds() * 1000)
        }
    }

    /// The next id when the range in hand has one, without waiting; nil when a reservation is due
    /// (``next()`` makes it).
    func nextIfReady() -> Int64? {
        state.withLock { $0.available.popFirst() }
    }

    func next() async throws(APIError) -> Int64 {
        while true {
            let (id, refill) = state.withLock { state -> (Int64?, Task<ClosedRange<Int64>, any Error>?) in
                if let id = state.available.popFirst() { return (id, nil) }
                if state.refill == nil {
                    state.refill = Task { [reserve] () async throws -> ClosedRange<Int64> in try await reserve() }
                }
                return (nil, state.refill)
            }
            if let id { return id }
            guard let refill else { continue }
            let range: ClosedRange<Int64>
            do {
                range = try await refill.value
            } catch {
                state.withLock { if $0.refill == refill { $0.refill = nil } }
                throw APIError.notReady("no order id: the store did not reserve any: \(error)")
            }
            // The first waiter back puts the range in place; the others take ids from it.
            state.withLock { state in
                if state.refill == refill {
                    state.refill = nil
                    state.available = range[...]
                }
            }
        }
    }
}
