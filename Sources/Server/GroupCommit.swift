import CastleSupport
import Storage
import Synchronization
import Tracing

/// Group commit for the queue: requests hand in their rows and wait; one flush at a time writes every row
/// waiting in one transaction (one fsync), and the next flush starts when it finishes with whatever
/// arrived meanwhile. Under load, batches grow by themselves; alone, a request waits for one commit.
actor GroupCommitter {
    private let queue: any MessageQueue
    private let source: String
    /// A row waiting for the next flush: the request's span (to link to) and its continuation.
    private struct Waiter {
        var row: OrderRow
        var span: InstrumentationContext?
        var done: CheckedContinuation<Void, any Error>
    }
    private var waiting: [Waiter] = []
    private var flushing = false
    /// Told after each successful flush: the in-process matcher's doorbell.
    private let afterFlush: @Sendable () -> Void
    /// `--otlp-endpoint` given: each flush is a span `queue.commit` of its own, linked to the spans of the
    /// requests it commits.
    private let tracing: Bool

    init(queue: any MessageQueue, source: String, tracing: Bool, afterFlush: @escaping @Sendable () -> Void) {
        self.queue = queue
        self.source = source
        self.tracing = tracing
        self.afterFlush = afterFlush
    }

    /// Returns once `row` is committed to the queue (durable), or throws what the commit threw. `span`: the
    /// request's span, which the commit's span links to.
    func enqueue(_ row: OrderRow, span: InstrumentationContext?) async throws {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            waiting.append(Waiter(row: row, span: span, done: done))
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
            let span = startServerSpan(tracing, "queue.commit", context: .topLevel)
            if let span {
                span.attributes["castle.queue.rows"] = batch.count
                for case let request? in batch.map(\.span) { span.addLink(SpanLink(context: request, attributes: [:])) }
            }
            do throws(CastleError) {
                let session = try await queue.beginEnqueue(source: source)
                do throws(CastleError) {
                    try await session.append(batch.map(\.row))
                    _ = try await session.commit()
                } catch {
                    await session.rollback()
                    throw error
                }
                span?.end()
                afterFlush()
                for entry in batch { entry.done.resume() }
            } catch {
                span?.end(failing: error)
                for entry in batch { entry.done.resume(throwing: error) }
            }
        }
        flushing = false
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
/// hook hands each its events.
final class MatchResults: Sendable {
    private enum Slot {
        case waiting(CheckedContinuation<[String], any Error>?)
        case done([String])
    }

    private let slots = Mutex<[Int64: Slot]>([:])

    /// Called before the message is enqueued, so that no verdict can arrive unexpected.
    func expect(_ line: Int64) {
        slots.withLock { $0[line] = .waiting(nil) }
    }

    func forget(_ line: Int64) {
        let waiter = slots.withLock { slots -> CheckedContinuation<[String], any Error>? in
            defer { slots[line] = nil }
            if case .waiting(let waiter) = slots[line] { return waiter }
            return nil
        }
        waiter?.resume(throwing: CancellationError())
    }

    /// The events of `line`, once matched; throws `CancellationError` when the task is cancelled (and
    /// forgets the line: a verdict arriving later is dropped).
    func wait(_ line: Int64) async throws -> [String] {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[String], any Error>) in
                let ready = slots.withLock { slots -> Result<[String], any Error>? in
                    if case .done(let events) = slots[line] {
                        slots[line] = nil
                        return .success(events)
                    }
                    // Cancelled before the continuation was stored: onCancel found nothing to resume.
                    if Task.isCancelled {
                        slots[line] = nil
                        return .failure(CancellationError())
                    }
                    slots[line] = .waiting(continuation)
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            let waiter = slots.withLock { slots -> CheckedContinuation<[String], any Error>? in
                guard case .waiting(let waiter) = slots[line] else { return nil }
                slots[line] = nil
                return waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    func fulfil(_ line: Int64, events: [String]) {
        let waiter = slots.withLock { slots -> CheckedContinuation<[String], any Error>? in
            switch slots[line] {
            case .waiting(let waiter?):
                slots[line] = nil
                return waiter
            case .waiting(nil):
                slots[line] = .done(events)
                return nil
            case .done, nil:
                return nil
            }
        }
        waiter?.resume(returning: events)
    }

    /// Ends every wait: the matcher stopped.
    func failAll(_ error: any Error) {
        let waiters = slots.withLock { slots -> [CheckedContinuation<[String], any Error>] in
            defer { slots = [:] }
            return slots.values.compactMap { if case .waiting(let waiter?) = $0 { waiter } else { nil } }
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }
}

/// Order ids (and queue lines) serve hands out: increasing, and increasing across restarts too, as they
/// start from the wall clock in microseconds (a restart takes longer than a microsecond).
final class IDGenerator: Sendable {
    private let last = Mutex<Int64>(0)

    func next() -> Int64 {
        let now = wallClockMilliseconds() * 1000
        return last.withLock { last in
            last = max(last + 1, now)
            return last
        }
    }
}
