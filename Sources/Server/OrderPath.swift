import CastleCore
import CastleSupport
import Codecs
import Pipeline
import Storage
import Synchronization
import Tracing

/// REST order → queue (group commit, durable) → matcher → events → store: a command is answered with
/// its events only once it is durable in the queue and the matcher has committed its verdict.
final class OrderPath: Sendable {
    static let source = "serve"

    let view: ExchangeView
    let results = MatchResults()
    let doorbell = Doorbell()
    let ids = IDGenerator()
    let committer: GroupCommitter
    let metrics: ServerMetrics
    let verdictTimeout: Duration
    /// `--otlp-endpoint` given: each command gets an `order.enqueue` and an `order.verdict` span.
    let tracing: Bool

    init(queue: any MessageQueue, view: ExchangeView, metrics: ServerMetrics, verdictTimeout: Duration, tracing: Bool) {
        self.view = view
        self.metrics = metrics
        self.verdictTimeout = verdictTimeout
        self.tracing = tracing
        let doorbell = self.doorbell
        committer = GroupCommitter(queue: queue, source: Self.source, tracing: tracing) { doorbell.ring() }
    }

    /// The in-process matcher's commit hook: the view learns the events first, then each waiting request
    /// gets its own.
    func committed(_ messages: [MatchWorker.CommittedMessage]) {
        view.apply(messages.lazy.flatMap(\.events))
        for message in messages where message.source == Self.source {
            results.fulfil(message.line, events: message.events)
        }
        metrics.matched(messages)
    }

    /// Queue lines of the cancels and amends in flight, by the order they name: how events read back
    /// from an external matcher's log find their request (``followed(_:)``).
    private let commandsByOrder = Mutex<[UInt64: Int64]>([:])

    /// Events read from the log that external matchers write: cut into commands (a command's events
    /// start with `accepted`, `rejected`, `amended` or a user `canceled`, and never span segments), each
    /// handed to the request that sent it. A new order's queue line is its id.
    func followed(_ lines: [String]) {
        var group: [String] = []
        var owner: Int64?
        func close() {
            if let owner, !group.isEmpty { results.fulfil(owner, events: group) }
            group = []
            owner = nil
        }
        for line in lines {
            guard let event = EventFields(line) else { continue }
            let kind = event["event"] ?? ""
            let id = event.uint("id")
            let startsCommand =
                kind == "accepted" || kind == "rejected" || kind == "amended"
                || (kind == "canceled" && event["reason"] == "user")
            if startsCommand {
                close()
                if let id {
                    let isNew = kind == "accepted" || (kind == "rejected" && event["op"] == "new")
                    owner = isNew ? Int64(bitPattern: id) : commandsByOrder.withLock { $0.removeValue(forKey: id) }
                }
            }
            group.append(line)
        }
        close()
    }

    /// Enqueues one command line (its queue line is `line`, its partition key `symbol`) and returns its
    /// events once matched. `orderID` names the order a cancel or amend is for.
    /// With tracing, the wait for the group commit is the span `order.enqueue` and the wait for the
    /// matcher `order.verdict` (with `castle.order.verdict`, the first event's kind), both with `castle.order.id`
    /// (the order a cancel or amend is for) and `castle.queue.line`.
    func submit(line: Int64, symbol: String, body: String, orderID: UInt64? = nil) async throws(APIError) -> [String] {
        results.expect(line)
        if let orderID { commandsByOrder.withLock { $0[orderID] = line } }
        metrics.enqueued(line: line)
        let spanOrderID = orderID.map { Int64(bitPattern: $0) } ?? line
        let enqueueSpan = startServerSpan(tracing, "order.enqueue")
        enqueueSpan?.attributes["castle.order.id"] = spanOrderID
        enqueueSpan?.attributes["castle.queue.line"] = line
        do {
            try await committer.enqueue(OrderRow(line: line, symbol: symbol, body: body), span: enqueueSpan?.context)
        } catch {
            results.forget(line)
            enqueueSpan?.end(failing: error)
            throw APIError.notReady("the queue did not take the order: \(error)")
        }
        enqueueSpan?.end()
        let verdictSpan = startServerSpan(tracing, "order.verdict")
        verdictSpan?.attributes["castle.order.id"] = spanOrderID
        verdictSpan?.attributes["castle.queue.line"] = line
        do throws(APIError) {
            let verdict = try await awaitVerdict(line)
            verdictSpan?.attributes["castle.order.verdict"] = verdict.first.flatMap { EventFields($0)?["event"] }
            verdictSpan?.end()
            return verdict
        } catch {
            verdictSpan?.end(failing: error)
            throw error
        }
    }

    /// The events of queue line `line` once the matcher has committed them.
    private func awaitVerdict(_ line: Int64) async throws(APIError) -> [String] {
        let results = results
        let verdict: [String]?
        do {
            verdict = try await withThrowingTaskGroup(of: [String]?.self) { group in
                group.addTask { try await results.wait(line) }
                group.addTask { [verdictTimeout] in
                    try await Task.sleep(for: verdictTimeout)
                    return nil
                }
                defer { group.cancelAll() }
                return try await group.next()!
            }
        } catch {
            throw APIError.notReady(
                "the matcher stopped before it answered; the order is durable and will be matched on restart"
            )
        }
        guard let verdict else {
            throw APIError.notReady(
                "no verdict within \(verdictTimeout) (the matcher is behind or not running); command \(line) is durable in the queue and will be matched"
            )
        }
        return verdict
    }
}

/// One member of a request body as read: a JSON string's text (unescaped) or a number as written.
struct BodyValue {
    var text: String
    var isString: Bool
}

/// Reads a request body as one flat JSON object with only `allowed` keys, each a string or a number;
/// everything else is `malformed` (400).
func readBody(_ bytes: [UInt8], allowed: Set<String>) throws(APIError) -> [String: BodyValue] {
    var members: [String: BodyValue] = [:]
    var problem: String?
    var scratch: [UInt8] = []
    let valid = bytes.withUnsafeBufferPointer { buffer in
        FlatJSON.scan(buffer) { key, value in
            guard problem == nil else { return }
            let name: String
            if key.kind == .escapedString {
                _ = key.decodedString(into: &scratch)
                name = String(decoding: scratch, as: UTF8.self)
            } else {
                name = String(decoding: key.bytes, as: UTF8.self)
            }
            guard allowed.contains(name) else {
                problem = "unknown field \(jsonStringLiteral(name))"
                return
            }
            guard members[name] == nil else {
                problem = "field \(jsonStringLiteral(name)) given twice"
                return
            }
            switch value.kind {
            case .string:
                members[name] = BodyValue(text: String(decoding: value.bytes, as: UTF8.self), isString: true)
            case .escapedString:
                guard value.decodedString(into: &scratch) else {
                    problem = "field \(jsonStringLiteral(name)) is not valid Unicode"
                    return
                }
                members[name] = BodyValue(text: String(decoding: scratch, as: UTF8.self), isString: true)
            case .number:
                members[name] = BodyValue(text: String(decoding: value.bytes, as: UTF8.self), isString: false)
            case .other:
                problem = "field \(jsonStringLiteral(name)) must be a string or a number"
            }
        }
    }
    guard valid else { throw .malformed("the body is not one JSON object") }
    if let problem { throw .malformed(problem) }
    return members
}
