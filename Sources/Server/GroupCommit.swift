import CastleSupport
import Storage
import Synchronization
import Tracing

/// Group commit: requests hand in their items and wait; one flush at a time writes every item waiting,
/// in one transaction (one fsync), and the next flush starts when it finishes with whatever arrived
/// meanwhile. Under load, batches grow by themselves; alone, a request waits for one commit. `flush`
/// returns one result per item, in order.
actor GroupCommitter<Item: Sendable, Outcome: Sendable> {
    typealias Flush = @Sendable ([Item]) async throws(CastleError) -> [Outcome]
    /// An item waiting for the next flush: the request's span (to link to) and its continuation.
    private struct Waiter {
        var item: Item
        var span: InstrumentationContext?
        var done: CheckedContinuation<Outcome, any Error>
    }
    private let flush: Flush
    /// With `--otlp-endpoint`, each flush is a span of this name of its own, linked to the spans of the
    /// requests it commits, with the number of items as the attribute `count`; nil: no spans.
    private let span: (name: String, count: String)?
    private var waiting: [Waiter] = []
    private var flushing = false

    init(span: (name: String, count: String)?, flush: @escaping Flush) {
        self.span = span
        self.flush = flush
    }

    /// Returns once `item` is committed (durable) with its outcome, or throws what the commit threw.
    /// `span`: the request's span, which the flush's span links to.
    func commit(_ item: Item, span: InstrumentationContext? = nil) async throws -> Outcome {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Outcome, any Error>) in
            waiting.append(Waiter(item: item, span: span, done: done))
            if !flushing {
                flushing = true
                Task { await self.flushUntilEmpty() }
            }
        }
    }

    private func flushUntilEmpty() async {
        while !waiting.isEmpty {
            let batch = waiting
            waiting = []
            let span = self.span.flatMap { startServerSpan(true, $0.name, context: .topLevel) }
            if let span, let count = self.span?.count {
                span.attributes[count] = batch.count
                for case let request? in batch.map(\.span) { span.addLink(SpanLink(context: request, attributes: [:])) }
            }
            do throws(CastleError) {
                let outcomes = try await flush(batch.map(\.item))
                span?.end()
                for (entry, outcome) in zip(batch, outcomes) { entry.done.resume(returning: outcome) }
            } catch {
                span?.end(failing: error)
                for entry in batch { entry.done.resume(throwing: error) }
            }
        }
        flushing = false
    }
}

extension GroupCommitter where Item == OrderRow, Outcome == Void {
    /// Rows of `source` into the queue (a line already there is skipped: the queue keeps the first);
    /// `afterFlush` is told after each commit. With `tracing`, each flush is a span `queue.commit`.
    init(queue: any MessageQueue, source: String, tracing: Bool, afterFlush: @escaping @Sendable () -> Void) {
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
/// hook hands each its events. Several requests may wait for one line (an order and the retries of it):
/// each holds its own ticket. A wait ends at its deadline with ``VerdictTimedOut``: one sweeper task,
/// running only while someone waits, ends the overdue waits, instead of a timer for every request.
final class MatchResults: Sendable {
    struct Ticket: Sendable {
        let line: Int64
        fileprivate let number: Int
    }

    /// No verdict by the wait's deadline.
    struct VerdictTimedOut: Error {}

    private enum Slot {
        case waiting(CheckedContinuation<[String], any Error>?, deadline: ContinuousClock.Instant)
        case done([String])
    }

    private struct State {
        var slots: [Int64: [Int: Slot]] = [:]
        var issued = 0
        /// Continuations stored (waits under way).
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
            state.slots[line, default: [:]][state.issued] = .waiting(nil, deadline: .now)
            return Ticket(line: line, number: state.issued)
        }
    }

    /// Ends the ticket's wait, if it waits, with a `CancellationError`; a verdict arriving later is
    /// dropped for it.
    func forget(_ ticket: Ticket) {
        let waiter = state.withLock { state in Self.remove(ticket, from: &state) }
        if case .waiting(let waiter?, _) = waiter { waiter.resume(throwing: CancellationError()) }
    }

    private static func remove(_ ticket: Ticket, from state: inout State) -> Slot? {
        let slot = state.slots[ticket.line]?.removeValue(forKey: ticket.number)
        if state.slots[ticket.line]?.isEmpty == true { state.slots[ticket.line] = nil }
        if case .waiting(_?, _) = slot { state.waits -= 1 }
        return slot
    }

    /// The events of the ticket's line, once matched; throws ``VerdictTimedOut`` after `timeout`, and
    /// `CancellationError` when the task is cancelled (and forgets the ticket).
    func wait(_ ticket: Ticket, timeout: Duration) async throws -> [String] {
        let deadline = ContinuousClock.now + timeout
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[String], any Error>) in
                let (ready, startSweeper) = state.withLock { state -> (Result<[String], any Error>?, Bool) in
                    switch state.slots[ticket.line]?[ticket.number] {
                    case .done(let events):
                        _ = Self.remove(ticket, from: &state)
                        return (.success(events), false)
                    case .waiting:
                        // Cancelled before the continuation was stored: onCancel found nothing to resume.
                        if Task.isCancelled {
                            _ = Self.remove(ticket, from: &state)
                            return (.failure(CancellationError()), false)
                        }
                        state.slots[ticket.line]?[ticket.number] = .waiting(continuation, deadline: deadline)
                        state.waits += 1
                        defer { state.sweeping = true }
                        return (nil, !state.sweeping)
                    case nil:
                        return (.failure(CancellationError()), false)
                    }
                }
                if let ready { continuation.resume(with: ready) }
                if startSweeper { Task { await self.sweep() } }
            }
        } onCancel: {
            forget(ticket)
        }
    }

    /// Ends the overdue waits every `sweepEvery`, until none is left.
    private func sweep() async {
        while true {
            try? await Task.sleep(for: sweepEvery)
            let now = ContinuousClock.now
            let (overdue, more) = state.withLock { state -> ([CheckedContinuation<[String], any Error>], Bool) in
                var overdue: [CheckedContinuation<[String], any Error>] = []
                for (line, slots) in state.slots {
                    for (number, slot) in slots {
                        guard case .waiting(let waiter?, let deadline) = slot, deadline <= now else { continue }
                        overdue.append(waiter)
                        _ = Self.remove(Ticket(line: line, number: number), from: &state)
                    }
                }
                state.sweeping = state.waits > 0
                return (overdue, state.sweeping)
            }
            for waiter in overdue { waiter.resume(throwing: VerdictTimedOut()) }
            if !more { return }
        }
    }

    func fulfil(_ line: Int64, events: [String]) {
        let waiters = state.withLock { state -> [CheckedContinuation<[String], any Error>] in
            guard var slots = state.slots[line] else { return [] }
            var waiters: [CheckedContinuation<[String], any Error>] = []
            for (number, slot) in slots {
                switch slot {
                case .waiting(let waiter?, _):
                    waiters.append(waiter)
                    slots[number] = nil
                case .waiting(nil, _):
                    slots[number] = .done(events)
                case .done:
                    break
                }
            }
            state.waits -= waiters.count
            state.slots[line] = slots.isEmpty ? nil : slots
            return waiters
        }
        for waiter in waiters { waiter.resume(returning: events) }
    }

    /// Ends every wait: the matcher stopped.
    func failAll(_ error: any Error) {
        let waiters = state.withLock { state -> [CheckedContinuation<[String], any Error>] in
            defer {
                state.slots = [:]
                state.waits = 0
            }
            return state.slots.values.flatMap { slots in
                slots.values.compactMap { if case .waiting(let waiter?, _) = $0 { waiter } else { nil } }
            }
        }
        for waiter in waiters { waiter.resume(throwing: error) }
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
