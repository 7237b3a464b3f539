import AsyncHTTPClient
import CastleCore
public import CastleSupport
import Codecs
import Foundation
public import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Streams
import Synchronization

/// `castle serve --feed FILE --speed N`: an order stream (the contract of `castle match`) played into
/// the server's own trading API over HTTP, paced by the commands' `ts` as a live market would send
/// them, N times faster than recorded. Each command's `account` becomes the `X-Castle-Account` header;
/// the file's order ids are the feed's own (cancels and amends are mapped to the ids the server gave).
///
/// The whole file is read and checked before the first order is sent, so a bad line stops the feed
/// with its file and line and nothing of the file applied.
public struct FeedReplay: Sendable {
    /// One command of the file, ready to send.
    struct Order: Sendable {
        var op: Op
        /// The id in the file.
        var fileID: OrderID
        var account: String?
        /// For a `new`: its symbol (a cancel or an amend goes with its `new`'s).
        var symbol: String?
        /// The JSON body of a `new` or an `amend`.
        var body: String?
        var ts: Timestamp?
        var line: Int
    }

    /// Requests in flight at once: enough to keep the server busy, bounded.
    static let inFlightMax = 32
    /// Commands one file may hold (the file is read whole before it plays).
    static let ordersMax = 5_000_000

    let path: String
    let speed: Double
    let orders: [Order]

    /// Reads and checks the whole file on a thread of its own.
    public static func load(path: String, speed: Double) async throws(CastleError) -> FeedReplay {
        guard speed > 0, speed.isFinite else { throw CastleError(.usage, "--speed must be a positive number") }
        // Each run's client order ids are its own: a second run plays the day again, while a request
        // retried within a run never places its order twice.
        let run = String(wallClockMilliseconds(), radix: 36)
        let orders = try await onOwnThread { () throws(CastleError) -> [Order] in try read(path, run: run) }
        return FeedReplay(path: path, speed: speed, orders: orders)
    }

    private static func read(_ path: String, run: String) throws(CastleError) -> [Order] {
        let reader = LineReader(source: try InputSource(path: path))
        var decoder = CommandDecoder()
        var orders: [Order] = []
        while let line = try reader.next() {
            if line.isBlank { continue }
            if line.tooLong { throw CastleError(.dataError, "\(path):\(line.number): line too long") }
            switch decoder.decode(line.bytes, lineNumber: line.number) {
            case .rejected(_, _, let reason, let detail):
                throw CastleError(.dataError, "\(path):\(line.number): \(reason.name): \(detail.text)")
            case .command(let command):
                guard orders.count < ordersMax else {
                    throw CastleError(.dataError, "\(path):\(line.number): more than \(ordersMax) commands")
                }
                orders.append(order(command, decoder: decoder, run: run))
            }
        }
        return orders
    }

    private static func order(_ command: Command, decoder: CommandDecoder, run: String) -> Order {
        func text(_ value: FixedDecimal) -> String { formatDecimal(value.mantissa, decimals: value.scale) }
        var fields: [(String, String)] = []
        switch command.op {
        case .new:
            fields.append(("symbol", jsonStringLiteral(decoder.symbols.string(of: command.symbol))))
            fields.append(("side", jsonStringLiteral(command.side.name.description)))
            fields.append(("type", jsonStringLiteral(command.type == .limit ? "limit" : "market")))
            if let price = command.price { fields.append(("price", jsonStringLiteral(text(price)))) }
            if let qty = command.qty { fields.append(("qty", jsonStringLiteral(text(qty)))) }
            fields.append(("tif", jsonStringLiteral(command.tif.name.description)))
            if let stp = command.stp { fields.append(("stp", jsonStringLiteral(stp.name.description))) }
            fields.append(("client_order_id", jsonStringLiteral("feed-\(run)-\(command.line)")))
        case .amend:
            if let price = command.price { fields.append(("price", jsonStringLiteral(text(price)))) }
            if let qty = command.qty { fields.append(("qty", jsonStringLiteral(text(qty)))) }
        case .cancel:
            break
        }
        let body = fields.isEmpty ? nil : "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
        return Order(
            op: command.op,
            fileID: command.id,
            account: command.account == .none ? nil : decoder.accounts.string(of: command.account),
            symbol: command.op == .new ? decoder.symbols.string(of: command.symbol) : nil,
            body: body,
            ts: command.ts,
            line: command.line
        )
    }

    /// What the feed did.
    public struct Outcome: Sendable {
        public var sent = 0
        /// Answered with a 4xx (the API's rejections: the file's own invalid orders, cancels of filled ones).
        public var refused = 0
        /// Cancels and amends of orders the feed never got an id for.
        public var skipped = 0
    }

    /// Plays the orders into `baseURL` (`http://HOST:PORT`). Ends when the file is done, or with the
    /// task's cancellation (graceful stop). A server error (5xx) or a failed connection stops it.
    public func play(into baseURL: String, logger: Logger) async throws -> Outcome {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            let outcome = try await play(into: baseURL, client: client, logger: logger)
            try await client.shutdown()
            return outcome
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private func play(into baseURL: String, client: HTTPClient, logger: Logger) async throws -> Outcome {
        let ids = ServerIDs()
        var outcome = Outcome()
        let start = ContinuousClock.now
        let firstTS = orders.first(where: { $0.ts != nil })?.ts
        try await withThrowingTaskGroup(of: Answer.self) { group in
            var inFlight = 0
            for order in orders {
                if let ts = order.ts, let firstTS {
                    // Paced by the recorded time: a sleep until the order is due, not a busy wait.
                    let due = start + .nanoseconds(Int64(Double(ts - firstTS) / speed))
                    if due > .now { try await Task.sleep(until: due, clock: .continuous) }
                }
                if inFlight == Self.inFlightMax, let answer = try await group.next() {
                    inFlight -= 1
                    outcome.count(answer)
                }
                try Task.checkCancellation()
                // A new's id is awaited by the cancels and amends that name it.
                let pending = ids.reserve(order)
                group.addTask { try await send(order, pending: pending, ids: ids, to: baseURL, client: client) }
                inFlight += 1
                outcome.sent += 1
            }
            while let answer = try await group.next() { outcome.count(answer) }
        }
        logger.info(
            "feed done",
            metadata: [
                "file": "\(path)", "sent": "\(outcome.sent)", "refused": "\(outcome.refused)",
                "skipped": "\(outcome.skipped)",
            ]
        )
        return outcome
    }

    enum Answer {
        case accepted
        case refused
        case skipped
    }

    private func send(
        _ order: Order,
        pending: ServerIDs.Pending,
        ids: ServerIDs,
        to baseURL: String,
        client: HTTPClient
    ) async throws -> Answer {
        // Whatever happens, the cancels and amends waiting for this order's id, and the symbol's next
        // command, are released.
        defer { pending.resolve(nil) }
        _ = await pending.after?.value
        var request: HTTPClientRequest
        switch order.op {
        case .new:
            request = HTTPClientRequest(url: baseURL + "/v1/orders")
            request.method = .POST
        case .cancel, .amend:
            guard let serverID = await pending.previous?.value else { return .skipped }
            request = HTTPClientRequest(url: baseURL + "/v1/orders/\(serverID)")
            request.method = order.op == .cancel ? .DELETE : .PATCH
        }
        request.headers.add(name: "X-Castle-Account", value: pending.account ?? "feed")
        if let body = order.body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await client.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        if response.status.code >= 500 {
            throw CastleError(
                .unavailable,
                "\(path):\(order.line): the server answered \(response.status.code): \(String(buffer: body))"
            )
        }
        guard (200..<300).contains(response.status.code) else {
            pending.resolve(nil)
            return .refused
        }
        if order.op == .new {
            let object = try? JSONSerialization.jsonObject(with: Data(String(buffer: body).utf8)) as? [String: Any]
            pending.resolve((object?["id"] as? NSNumber)?.uint64Value)
        }
        return .accepted
    }
}

extension FeedReplay.Outcome {
    fileprivate mutating func count(_ answer: FeedReplay.Answer) {
        switch answer {
        case .accepted: break
        case .refused: refused += 1
        case .skipped: skipped += 1
        }
    }
}

/// The server's id of each of the file's orders, known once the `new` is answered: a cancel or an amend
/// waits for the id of the `new` that came before it in the file.
final class ServerIDs: Sendable {
    /// An id that arrives later, awaited by any number of tasks; resolved once (later calls are ignored).
    final class Promise: Sendable {
        private enum State {
            case waiting([CheckedContinuation<UInt64?, Never>])
            case done(UInt64?)
        }
        private let state = Mutex(State.waiting([]))

        var value: UInt64? {
            get async {
                await withCheckedContinuation { continuation in
                    let ready: UInt64?? = state.withLock { state in
                        switch state {
                        case .done(let id): return .some(id)
                        case .waiting(var waiters):
                            waiters.append(continuation)
                            state = .waiting(waiters)
                            return .none
                        }
                    }
                    if let ready { continuation.resume(returning: ready) }
                }
            }
        }

        func resolve(_ id: UInt64?) {
            let waiters: [CheckedContinuation<UInt64?, Never>] = state.withLock { state in
                guard case .waiting(let waiters) = state else { return [] }
                state = .done(id)
                return waiters
            }
            for waiter in waiters { waiter.resume(returning: id) }
        }
    }

    /// What one command waits for (`previous`: the `new` it names) and resolves (`own`: its own id);
    /// `account`: the account of the `new` a cancel or an amend names (only the owner may touch it).
    ///
    /// Commands of one symbol are sent one after the other, in the file's order (`after`: the previous
    /// command of the symbol, `done`: this one), so every book sees the file's sequence; symbols go in
    /// parallel.
    struct Pending: Sendable {
        let previous: Promise?
        let own: Promise?
        var account: String?
        let after: Promise?
        let done: Promise

        func resolve(_ id: UInt64?) {
            own?.resolve(id)
            done.resolve(nil)
        }
    }

    private struct Latest {
        var orders: [OrderID: (promise: Promise, account: String?, symbol: String?)] = [:]
        var lastOfSymbol: [String: Promise] = [:]
    }

    private let latest = Mutex(Latest())

    func reserve(_ order: FeedReplay.Order) -> Pending {
        latest.withLock { latest in
            let done = Promise()
            switch order.op {
            case .new:
                let promise = Promise()
                latest.orders[order.fileID] = (promise, order.account, order.symbol)
                let after = order.symbol.flatMap { latest.lastOfSymbol.updateValue(done, forKey: $0) }
                return Pending(previous: nil, own: promise, account: order.account, after: after, done: done)
            case .cancel, .amend:
                let new = latest.orders[order.fileID]
                let after = new?.symbol.flatMap { latest.lastOfSymbol.updateValue(done, forKey: $0) }
                return Pending(
                    previous: new?.promise,
                    own: nil,
                    account: new?.account ?? order.account,
                    after: after,
                    done: done
                )
            }
        }
    }
}

/// The feed in serve's group: waits until the server listens, plays the file, and is done (the server
/// goes on); graceful stop cancels it. A failure stops the group.
struct FeedReplayService: Service {
    let replay: FeedReplay
    let host: String
    let listening: AsyncStream<Int>
    let logger: Logger

    func run() async throws {
        var ports = listening.makeAsyncIterator()
        guard let port = await ports.next() else { return }
        do {
            try await cancelWhenGracefulShutdown {
                _ = try await replay.play(into: "http://\(host):\(port)", logger: logger)
            }
        } catch {
            // A graceful stop cancels the feed mid-file: that is the stop working, not a failure.
            if stopAsked() { return }
            throw error
        }
    }
}
