import CastleSupport
import CoreMetrics
import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `POST /v1/orders` answered from the connection's channel, in front of Hummingbird's router. Put by
/// ``Installer`` before the codec that turns NIO's HTTP/1 parts into HTTP types for Hummingbird, it sees
/// each request's parts first, as NIO reads them. The busiest request of the API skips the codec, the
/// hand-over to the connection's task, the router and the middleware chain, and has no task of its own:
/// it is enqueued from here and answered from the matcher's verdict (docs/serve-performance.md).
///
/// It does what those would, with the same code: the account (``AccountMiddleware/account(_:)``),
/// `--rate-limit` (``RateLimiter/admitOrRefuse(_:metrics:)``), the body cap (413), the order itself
/// (``Trading/place(account:body:)``), errors as JSON (``APIError/text``), the route's latency metric,
/// a `Date` header. A request it does not take (another route, a query, `Expect`, `Connection`, HTTP/1.0)
/// goes on to Hummingbird, and so does everything with `--otlp-endpoint`, whose spans come from the
/// router's middleware.
///
/// Responses keep the order of the requests on a connection (HTTP/1.1 pipelining): what arrives while
/// an order is answered, and an order that arrives while Hummingbird answers, waits in ``held``, and
/// reading stops once ``heldPartsMax`` parts wait. A graceful stop (`ChannelShouldQuiesceEvent`) waits
/// for the order in hand.
final class OrderChannelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// What every connection's handler shares.
    struct Shared: Sendable {
        let trading: Trading
        let limiter: RateLimiter?
        let metrics: ServerMetrics
        let date = HTTPDate()
        /// The route's latency, under the router's labels for it (looked up once, not per request).
        let latency: CoreMetrics.Timer

        init(trading: Trading, limiter: RateLimiter?, metrics: ServerMetrics) {
            self.trading = trading
            self.limiter = limiter
            self.metrics = metrics
            latency = metrics.timer(route: "/v1/orders", method: "POST")
        }
    }

    private enum Order {
        /// Its body being read; `tooLarge` once it is over the cap (the rest is read and dropped).
        case reading(HTTPHeaders, body: [UInt8], tooLarge: Bool, started: UInt64)
        /// Being placed; its response not written yet.
        case answering
    }

    private let shared: Shared
    private var order: Order?
    /// Requests handed on to Hummingbird whose response has not ended.
    private var handedOn = 0
    /// Parts waiting for the response before them (see the type's comment), oldest first.
    private var held = CircularBuffer<HTTPServerRequestPart>()
    private var readHeld = false
    private var quiesceHeld = false
    /// Told to stop: nothing held is taken any more (Hummingbird closes after the response in hand).
    private var isStopping = false
    private var isActive = true

    init(_ shared: Shared) {
        self.shared = shared
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if isWaiting {
            held.append(part)
        } else {
            take(part, context: context)
        }
    }

    /// An order is being answered, or parts wait for a response before them.
    private var isWaiting: Bool {
        if case .answering = order { return true }
        return !held.isEmpty
    }

    private func take(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch (part, order) {
        case (.head(let head), nil) where Self.isOrder(head):
            if handedOn > 0 {
                held.append(part)
            } else {
                order = .reading(head.headers, body: [], tooLarge: false, started: monotonicNanoseconds())
            }
        case (.head, nil):
            handedOn += 1
            context.fireChannelRead(wrapInboundOut(part))
        case (.body(let buffer), .reading(let headers, let body, let tooLarge, let started)):
            let over = tooLarge || body.count + buffer.readableBytes > ServerLimits.bodyBytesMax
            order = .reading(
                headers,
                body: over ? [] : body + buffer.readableBytesView,
                tooLarge: over,
                started: started
            )
        case (.end, .reading(let headers, let body, let tooLarge, let started)):
            order = .answering
            answer(headers, body: body, tooLarge: tooLarge, started: started, context: context)
        default:
            context.fireChannelRead(wrapInboundOut(part))
        }
    }

    /// Whether this handler answers the request: an HTTP/1.1 keep-alive `POST /v1/orders` without a query or
    /// `Expect`.
    private static func isOrder(_ head: HTTPRequestHead) -> Bool {
        head.method == .POST && head.uri == "/v1/orders" && head.version == .http1_1
            && !head.headers.contains(name: "connection") && !head.headers.contains(name: "expect")
    }

    private func answer(
        _ headers: HTTPHeaders,
        body: [UInt8],
        tooLarge: Bool,
        started: UInt64,
        context: ChannelHandlerContext
    ) {
        let loop = context.eventLoop
        let handler = NIOLoopBound((self, context), eventLoop: loop)
        // Called back from the matcher's verdict (or at once for a bad request): the response is written
        // on the connection's loop.
        let finish: @Sendable (Result<Trading.Reply, APIError>) -> Void = { result in
            let reply: (status: HTTPResponse.Status, text: String, fields: HTTPFields)
            switch result {
            case .success(let placed): reply = (placed.status, placed.text, [:])
            case .failure(let error): reply = (error.status, error.text, error.headers)
            }
            loop.execute {
                let (handler, context) = handler.value
                handler.respond(reply.status, reply.text, fields: reply.fields, started: started, context: context)
            }
        }
        do throws(APIError) {
            if tooLarge { throw APIError.tooLarge }
            let account = try AccountMiddleware.account(headers[AccountMiddleware.header.rawName])
            try shared.limiter?.admitOrRefuse(account, metrics: shared.metrics)
            shared.trading.place(account: account, body: body, then: finish)
        } catch {
            finish(.failure(error))
        }
    }

    private func respond(
        _ status: HTTPResponse.Status,
        _ text: String,
        fields: HTTPFields,
        started: UInt64,
        context: ChannelHandlerContext
    ) {
        order = nil
        shared.latency.recordNanoseconds(Int64(monotonicNanoseconds() - started))
        // The client went: nothing to write, and the context is not to be used once removed.
        guard isActive else { return }
        var body = context.channel.allocator.buffer(capacity: text.utf8.count)
        body.writeString(text)
        var headers = HTTPHeaders()
        for field in fields { headers.add(name: field.name.rawName, value: field.value) }
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        headers.add(name: "Date", value: shared.date.now)
        let head = HTTPResponseHead(version: .http1_1, status: .init(statusCode: status.code), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        if quiesceHeld {
            quiesceHeld = false
            stop(context: context)
            return
        }
        playHeld(context: context)
    }

    /// Takes the parts held, in order, until one has to wait again; then reads on, if a read was held.
    private func playHeld(context: ChannelHandlerContext) {
        if isStopping { return }
        var played = false
        // Hummingbird's channel passes on what it was given at the end of a read: so ends what was held.
        defer { if played { context.fireChannelReadComplete() } }
        while let part = held.first {
            if case .answering = order { return }
            if case .head(let head) = part, Self.isOrder(head), handedOn > 0 { return }
            held.removeFirst()
            take(part, context: context)
            played = true
        }
        if readHeld && held.count < Self.heldPartsMax {
            readHeld = false
            context.read()
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        context.write(data, promise: promise)
        // Hummingbird's response to a request handed on: once it ends, an order held behind it may go.
        // (Hummingbird may also answer what never came through here, such as a request it could not parse.)
        if case .end = unwrapOutboundIn(data), handedOn > 0 {
            handedOn -= 1
            if handedOn == 0 { playHeld(context: context) }
        }
    }

    /// Reading goes on while an order is answered, until this many parts wait (a client pipelining its
    /// requests): stopping at every order would cost NIO two `epoll_ctl` calls a request, to take the
    /// socket out of the readable set and back (docs/serve-performance.md).
    static let heldPartsMax = 4

    func read(context: ChannelHandlerContext) {
        if held.count >= Self.heldPartsMax {
            readHeld = true
        } else {
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is ChannelShouldQuiesceEvent where order != nil:
            quiesceHeld = true
        case is ChannelShouldQuiesceEvent:
            stop(context: context)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// A graceful stop, once no order is in hand: what is held is dropped, as Hummingbird drops what
    /// follows the request it answers, and Hummingbird is told (it closes the connection when idle).
    private func stop(context: ChannelHandlerContext) {
        isStopping = true
        held.removeAll()
        context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
    }

    func channelInactive(context: ChannelHandlerContext) {
        isActive = false
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        isActive = false
    }
}

extension OrderChannelHandler {
    /// Puts an ``OrderChannelHandler`` in the pipeline of an HTTP/1 connection. Hummingbird adds its
    /// `additionalChannelHandlers` after the codec that turns NIO's HTTP/1 parts into HTTP types; this one,
    /// once added, puts the order handler before that codec and leaves. Orders then skip the codec:
    /// converting a request's head and its response cost serve about 5% of its CPU
    /// (docs/serve-performance.md).
    final class Installer: ChannelInboundHandler, RemovableChannelHandler {
        // NIO takes only inbound or outbound handlers; this one reads nothing, and is gone before a read.
        typealias InboundIn = NIOAny

        private let shared: Shared

        init(_ shared: Shared) {
            self.shared = shared
        }

        func handlerAdded(context: ChannelHandlerContext) {
            let pipeline = context.pipeline.syncOperations
            do {
                let codec = try pipeline.handler(type: HTTP1ToHTTPServerCodec.self)
                try pipeline.addHandler(OrderChannelHandler(shared), position: .before(codec))
            } catch {
                // Orders go to the router instead: the same answers, at a higher cost.
                assertionFailure("no HTTP/1 codec in the connection's pipeline: \(error)")
            }
            pipeline.removeHandler(context: context, promise: nil)
        }
    }
}

/// The `Date` header's value (RFC 9110's IMF-fixdate), formatted once a second.
final class HTTPDate: Sendable {
    private let cache = Mutex<(second: Int, text: String)>((-1, ""))

    var now: String {
        let second = time(nil)
        return cache.withLock { cache in
            if cache.second != second { cache = (second, Self.format(second)) }
            return cache.text
        }
    }

    private static func format(_ second: Int) -> String {
        var seconds = second
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return
            "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
