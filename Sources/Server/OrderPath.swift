import CastleCore
import CastleSupport
import Codecs
import HTTPTypes
import Pipeline
import Storage
import Synchronization
import Tracing

/// REST order → queue (group commit, durable) → matcher → events → store: a command is answered with
/// its events once it is durable in the queue and the matcher has applied it. The in-process matcher's
/// verdict goes out while its batch commits (``MatchWorker/Options/onMatched``): the queue is the
/// record, and matching it again gives the same events.
final class OrderPath: Sendable {
    static let source = "serve"

    let view: ExchangeView
    let results = MatchResults<CommandEvents>()
    let doorbell = Doorbell()
    let ids: IDGenerator
    let committer: GroupCommitter<OrderRow, Void>
    /// Client order ids, claimed in batches like the queue's rows.
    let claims: GroupCommitter<ClientOrderClaim, ClientOrderClaim>
    /// Where the matcher's events are stored, for the first replies of retried orders.
    let store: any Store
    let metrics: ServerMetrics
    let verdictTimeout: Duration
    /// Where the matcher stands: a standby refuses commands (``submit(line:symbol:body:orderID:)``).
    let matcher: Mutex<MatcherRole>
    /// `--otlp-endpoint` given: each command gets an `order.enqueue` and an `order.verdict` span.
    let tracing: Bool

    init(
        queue: any MessageQueue,
        store: any Store & ClientOrderStore,
        view: ExchangeView,
        metrics: ServerMetrics,
        verdictTimeout: Duration,
        matcher: MatcherRole,
        tracing: Bool
    ) {
        self.view = view
        self.store = store
        self.metrics = metrics
        self.verdictTimeout = verdictTimeout
        self.matcher = Mutex(matcher)
        self.tracing = tracing
        ids = IDGenerator(queue: queue, source: Self.source)
        let doorbell = self.doorbell
        committer = GroupCommitter(queue: queue, source: Self.source, tracing: tracing) { doorbell.ring() }
        claims = GroupCommitter(span: tracing ? ("client_order_ids.claim", "castle.claims") : nil) {
            (batch: [ClientOrderClaim]) throws(CastleError) in
            try await store.claimClientOrderIDs(batch)
        }
    }

    /// This server's commands that the in-process matcher has applied but whose batch is not in the store
    /// yet (the two batches in flight at most), by queue line: a retried order reads its first reply here
    /// (``replay(order:)``), as the stored log does not have it yet.
    private let unstored = Mutex<[Int64: (id: Int64, events: CommandEvents)]>([:])

    /// The in-process matcher's hook once a batch is matched: the batch's events are read once, the view
    /// learns them first, then each waiting request gets its own, to reply from.
    func matched(_ batch: MatchWorker.MatchedBatch) {
        let messages = batch.messages
        let lines = LoggedLines(ndjson: batch.events)
        precondition(lines.count == batch.eventCounts.reduce(0, +), "the matcher writes one JSON object a line")
        var start = 0
        // Each shares the batch's arrays, none copies them.
        let commands = batch.eventCounts.map { count in
            defer { start += count }
            return CommandEvents(lines, start..<start + count)
        }
        unstored.withLock { unstored in
            for (message, command) in zip(messages, commands) where message.source == Self.source {
                unstored[message.line] = (message.id, command)
            }
        }
        view.apply(lines.events)
        for (message, command) in zip(messages, commands) where message.source == Self.source {
            results.fulfil(message.line, events: command)
        }
        metrics.matched(messages, commands)
    }

    /// The in-process matcher's hook once a batch is committed: its events are in the stored log.
    func stored(through offset: Int64) {
        unstored.withLock { unstored in unstored = unstored.filter { $0.value.id > offset } }
    }

    /// Queue lines of the cancels and amends in flight, by the order they name: how events read back
    /// from an external matcher's log find their request (``followed(_:)``).
    private let commandsByOrder = Mutex<[UInt64: Int64]>([:])

    /// Whether `event` is the first of a command's events: a command's events start with `accepted`,
    /// `rejected`, `amended` or a user `canceled`, and never span segments.
    private static func startsCommand(_ event: LoggedEvent) -> Bool {
        switch event.kind {
        case .accepted, .rejected, .amended: true
        case .canceled: event.reason == "user"
        case .trade, nil: false
        }
    }

    /// Events read from the log that external matchers write: cut into commands, each handed to the
    /// request that sent it. A new order's queue line is its id.
    func followed(_ lines: LoggedLines) {
        var start = 0
        var owner: Int64?
        func close(at end: Int) {
            if let owner, start < end { results.fulfil(owner, events: CommandEvents(lines, start..<end)) }
            start = end
            owner = nil
        }
        let events = lines.events
        for index in events.indices where Self.startsCommand(events[index]) {
            close(at: index)
            if let id = events[index].id {
                let kind = events[index].kind
                let isNew = kind == .accepted || (kind == .rejected && events[index].op == "new")
                owner = isNew ? Int64(bitPattern: id) : commandsByOrder.withLock { $0.removeValue(forKey: id) }
            }
        }
        close(at: events.count)
    }

    /// Claims a client order id for an order, durably; returns the claim that holds (an earlier one when
    /// the id was used before).
    func claim(_ claim: ClientOrderClaim) async throws(APIError) -> ClientOrderClaim {
        do {
            return try await claims.commit(claim, span: tracing ? .current : nil)
        } catch {
            throw APIError.notReady("the store did not take the client order id: \(error)")
        }
    }

    /// A standby's verdicts would come from another process's matcher, which this one does not hear: it
    /// takes no commands (checked before anything is claimed or enqueued).
    func refuseIfStandingBy() throws(APIError) {
        if matcher.withLock({ $0 }) == .standby {
            throw APIError.notReady(
                "this server's matcher is standing by (another one owns the partition): send orders to the server whose /ready answers 200"
            )
        }
    }

    /// Enqueues one command line (its queue line is `line`, its partition key `symbol`) and calls `done`
    /// with its events once matched, or with why not; throws, without enqueueing, when this server takes
    /// no commands. `done` runs on the thread that ends the wait (the matcher's, the group commit's): it
    /// must not block. `orderID` names the order a cancel or amend is for.
    /// With tracing, the wait for the group commit is the span `order.enqueue` and the wait for the
    /// matcher `order.verdict` (with `castle.order.verdict`, the first event's kind), both with `castle.order.id`
    /// (the order a cancel or amend is for) and `castle.queue.line`.
    func submit(
        line: Int64,
        symbol: String,
        body: String,
        orderID: UInt64? = nil,
        then done: @escaping @Sendable (Result<CommandEvents, APIError>) -> Void
    ) throws(APIError) {
        try refuseIfStandingBy()
        let ticket = results.expect(line)
        if let orderID { commandsByOrder.withLock { $0[orderID] = line } }
        metrics.enqueued(line: line)
        enqueue(OrderRow(line: line, symbol: symbol, body: body), ticket: ticket, orderID: orderID, then: done)
    }

    /// ``submit(line:symbol:body:orderID:then:)``, awaited.
    func submit(
        line: Int64,
        symbol: String,
        body: String,
        orderID: UInt64? = nil
    ) async throws(APIError) -> CommandEvents {
        try await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<CommandEvents, APIError>, Never>) in
            do throws(APIError) {
                try submit(line: line, symbol: symbol, body: body, orderID: orderID) {
                    continuation.resume(returning: $0)
                }
            } catch {
                continuation.resume(returning: .failure(error))
            }
        }.get()
    }

    /// The events of a new order placed before (a retry of it): from the log when it was matched, else
    /// once it is. The row goes into the queue again, which keeps the first and skips it when there:
    /// the first attempt may have claimed its id and stopped before enqueueing.
    func replay(order row: OrderRow) async throws(APIError) -> CommandEvents {
        try refuseIfStandingBy()
        // Whether the order was matched is read from the view, which has not read the stored log yet.
        if matcher.withLock({ $0 }) == .starting {
            throw APIError.notReady("starting: the log is being read; retry once /ready answers 200")
        }
        let ticket = results.expect(row.line)
        if let seq = view.verdictSeq(of: UInt64(row.line)) {
            results.forget(ticket)
            // Taken into `unstored` before the view has it, and out of it only once stored.
            if let events = unstored.withLock({ $0[row.line]?.events }) { return events }
            return try await commandEvents(startingAt: seq)
        }
        return try await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<CommandEvents, APIError>, Never>) in
            enqueue(row, ticket: ticket, orderID: nil) { continuation.resume(returning: $0) }
        }.get()
    }

    /// The row into the group commit, then the wait for its verdict: callbacks, no task of its own.
    private func enqueue(
        _ row: OrderRow,
        ticket: MatchResults<CommandEvents>.Ticket,
        orderID: UInt64?,
        then done: @escaping @Sendable (Result<CommandEvents, APIError>) -> Void
    ) {
        let spanOrderID = orderID.map { Int64(bitPattern: $0) } ?? row.line
        // The request's context, for the verdict's span, started later on another task.
        let request = tracing ? InstrumentationContext.current : nil
        let enqueueSpan = startServerSpan(tracing, "order.enqueue")
        enqueueSpan?.attributes["castle.order.id"] = spanOrderID
        enqueueSpan?.attributes["castle.queue.line"] = row.line
        committer.commit(row, span: enqueueSpan?.context) { [self] committed in
            if case .failure(let error) = committed {
                results.forget(ticket)
                enqueueSpan?.end(failing: error)
                done(.failure(.notReady("the queue did not take the order: \(error)")))
                return
            }
            enqueueSpan?.end()
            let verdictSpan = startServerSpan(tracing, "order.verdict", context: request)
            verdictSpan?.attributes["castle.order.id"] = spanOrderID
            verdictSpan?.attributes["castle.queue.line"] = row.line
            results.wait(ticket, timeout: verdictTimeout) { [self] verdict in
                switch verdict {
                case .success(let events):
                    verdictSpan?.attributes["castle.order.verdict"] = events.events.first?.kind?.rawValue
                    verdictSpan?.end()
                    done(.success(events))
                case .failure(let error):
                    let failure = noVerdict(error, line: ticket.line)
                    verdictSpan?.end(failing: failure)
                    done(.failure(failure))
                }
            }
        }
    }

    /// Why a wait for the matcher's verdict on queue line `line` ended without one.
    private func noVerdict(_ error: any Error, line: Int64) -> APIError {
        if error is MatchResults<CommandEvents>.VerdictTimedOut {
            return APIError.notReady(
                "no verdict within \(verdictTimeout) (the matcher is behind or not running); command \(line) is durable in the queue and will be matched"
            )
        }
        return APIError.notReady(
            "the matcher stopped before it answered; the order is durable and will be matched on restart"
        )
    }

    /// The events of the command whose first event has `seq`, read back from the stored log.
    private func commandEvents(startingAt seq: Int64) async throws(APIError) -> CommandEvents {
        let segments: [EventSegment]
        do {
            segments = try await store.readEvents(consumer: ServerState.consumer, fromSeq: seq, limit: 1)
        } catch {
            throw APIError.notReady("the store did not answer: \(error)")
        }
        let segment = LoggedLines(ndjson: segments.first?.body ?? [])
        let events = segment.events
        guard let first = events.firstIndex(where: { ($0.seq ?? .min) >= seq }) else {
            throw APIError(status: .internalServerError, code: "internal", message: "event \(seq) is not in the log")
        }
        let end = events[(first + 1)...].firstIndex(where: Self.startsCommand) ?? events.count
        return CommandEvents(segment, first..<end)
    }
}

/// Where serve's matcher stands, as `/ready` reports it (`matcher`).
enum MatcherRole: String, Sendable {
    /// In process, before it has taken the partition or found it taken; with `--matcher external`, before
    /// the view has read the stored log once. New orders are taken; retries wait for the view (503).
    case starting
    /// In process, waiting while another matcher (another serve, a `castle match`) owns the partition.
    case standby
    /// In process, owning the partition, with the view caught up with the store.
    case active
    /// `--matcher external`: separate `castle match --queue` processes match.
    case external
}

/// One member of a request body as read: a JSON string's text (unescaped) or a number as written.
struct BodyValue {
    var text: String
    var isString: Bool
}

/// A request body's members, by the names its route allows. A route allows a handful of names, so they
/// are found by comparing them in turn: a dictionary's hashing cost more (docs/serve-performance.md).
struct BodyMembers {
    /// The names allowed, in the order ``given`` lists members.
    let names: [String]
    private var values: [BodyValue?]

    init(names: [String]) {
        self.names = names
        values = Array(repeating: nil, count: names.count)
    }

    subscript(name: String) -> BodyValue? {
        names.firstIndex(of: name).flatMap { values[$0] }
    }

    var isEmpty: Bool { values.allSatisfy { $0 == nil } }

    /// The members given, in the order of ``names``.
    var given: [(name: String, value: BodyValue)] {
        zip(names, values).compactMap { name, value in value.map { (name, $0) } }
    }

    /// The index of the allowed name whose UTF-8 is `key`.
    fileprivate func index(of key: UnsafeBufferPointer<UInt8>) -> Int? {
        names.firstIndex { $0.utf8.elementsEqual(key) }
    }

    fileprivate mutating func set(_ index: Int, _ value: BodyValue) { values[index] = value }

    fileprivate func has(_ index: Int) -> Bool { values[index] != nil }
}

/// Reads a request body as one flat JSON object with only `allowed` keys, each a string or a number;
/// everything else is `malformed` (400).
func readBody(_ bytes: [UInt8], allowed: [String]) throws(APIError) -> BodyMembers {
    var members = BodyMembers(names: allowed)
    var problem: String?
    var scratch: [UInt8] = []
    let valid = bytes.withUnsafeBufferPointer { buffer in
        FlatJSON.scan(buffer) { key, value in
            guard problem == nil else { return }
            let index: Int?
            if key.kind == .escapedString {
                _ = key.decodedString(into: &scratch)
                index = scratch.withUnsafeBufferPointer { members.index(of: $0) }
            } else {
                index = members.index(of: key.bytes)
            }
            guard let index else {
                problem = "unknown field \(jsonStringLiteral(name(of: key)))"
                return
            }
            let name = members.names[index]
            guard !members.has(index) else {
                problem = "field \(jsonStringLiteral(name)) given twice"
                return
            }
            switch value.kind {
            case .string:
                members.set(index, BodyValue(text: String(decoding: value.bytes, as: UTF8.self), isString: true))
            case .escapedString:
                guard value.decodedString(into: &scratch) else {
                    problem = "field \(jsonStringLiteral(name)) is not valid Unicode"
                    return
                }
                members.set(index, BodyValue(text: String(decoding: scratch, as: UTF8.self), isString: true))
            case .number:
                members.set(index, BodyValue(text: String(decoding: value.bytes, as: UTF8.self), isString: false))
            case .other:
                problem = "field \(jsonStringLiteral(name)) must be a string or a number"
            }
        }
    }
    guard valid else { throw .malformed("the body is not one JSON object") }
    if let problem { throw .malformed(problem) }
    return members
}

/// A key's text, unescaped, for an error message.
private func name(of key: JSONValue) -> String {
    var text: [UInt8] = []
    if key.kind == .escapedString, key.decodedString(into: &text) { return String(decoding: text, as: UTF8.self) }
    return String(decoding: key.bytes, as: UTF8.self)
}
