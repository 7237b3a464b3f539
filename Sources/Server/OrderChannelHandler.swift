import CastleSupport
import CoreMetrics
import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `POST /v1/orders` read from the connection's bytes and answered there, in front of NIO's HTTP codec
/// and Hummingbird. The busiest request of the API skips NIO's HTTP parser and response encoder, the
/// codec to HTTP types, the hand-over to the connection's task, the router and the middleware chain,
/// and has no task of its own: it is enqueued from here and answered from the matcher's verdict
/// (docs/serve-performance.md).
///
/// It does what those would, with the same code: the account (``AccountMiddleware/account(_:)``),
/// `--rate-limit` (``RateLimiter/admitOrRefuse(_:metrics:)``), the order itself
/// (``Trading/place(account:body:then:)``), errors as JSON (``APIError/text``), the route's latency
/// metric, a `Date` header.
///
/// A connection starts here (``ConnectionFront``). Orders are taken one at a time, in the order they come, each
/// answered before the next is read from what waits (HTTP/1.1 pipelining). The first request that is
/// not a plain order (``OrderRequest``: another route, a header it does not take, a body over the cap,
/// bytes that are not HTTP) goes, with everything after it, to NIO's codec and Hummingbird once the
/// order before it is answered, and this handler leaves the connection: Hummingbird then answers
/// everything on it, orders too, as it would have from the start (a WebSocket upgrade included). A
/// graceful stop (`ChannelShouldQuiesceEvent`) waits for the order in hand, then closes the connection.
final class OrderChannelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// What every connection's handler shares.
    struct Shared: Sendable {
        let trading: Trading
        let limiter: RateLimiter?
        let metrics: ServerMetrics
        /// The route's latency, under the router's labels for it (looked up once, not per request).
        let latency: CoreMetrics.Timer

        init(trading: Trading, limiter: RateLimiter?, metrics: ServerMetrics) {
            self.trading = trading
            self.limiter = limiter
            self.metrics = metrics
            latency = metrics.timer(route: "/v1/orders", method: "POST")
        }
    }

    private let shared: Shared
    /// Read, not taken yet.
    private var unread: ByteBuffer?
    /// An order is being placed; its response is not written yet.
    private var answering = false
    /// The client closed its side (`ChannelEvent.inputClosed`): the connection ends once what was read
    /// is answered.
    private var inputClosed = false
    /// ``inputClosed`` passed on (NIO's codec and Hummingbird see the end of the input).
    private var inputClosedPassedOn = false
    private var quiescing = false
    private var readHeld = false
    private var isActive = true

    init(_ shared: Shared) {
        self.shared = shared
    }

    /// Reading goes on while an order is answered, until this many bytes wait (a client pipelining its
    /// requests): stopping at every order would cost NIO two `epoll_ctl` calls a request, to take the
    /// socket out of the readable set and back. As many as the longest order taken, so that what waits
    /// always holds a whole request, or the start of one that is not taken here.
    static let unreadBytesMax = OrderRequest.headBytesMax + ServerLimits.bodyBytesMax

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if unread == nil {
            unread = bytes
        } else {
            unread!.writeBuffer(&bytes)
        }
        takeNext(context: context)
    }

    /// Takes the next order from what was read, if no order is in hand; hands the connection on at the
    /// first request that is not one.
    private func takeNext(context: ChannelHandlerContext) {
        if answering || quiescing { return }
        if var bytes = unread, bytes.readableBytes > 0 {
            switch bytes.withUnsafeReadableBytes(OrderRequest.parse) {
            case .incomplete:
                break
            case .other:
                handOn(context: context)
                return
            case .order(let request):
                bytes.moveReaderIndex(forwardBy: request.length)
                unread = bytes.readableBytes > 0 ? bytes : nil
                answering = true
                context.triggerUserOutboundEvent(RequestProgress.read, promise: nil)
                answer(request, context: context)
                return
            }
        }
        if inputClosed {
            // What is left can only be a request cut short: NIO's codec says so, as it would have.
            handOn(context: context)
        } else if readHeld, (unread?.readableBytes ?? 0) < Self.unreadBytesMax {
            readHeld = false
            context.read()
        }
    }

    private func answer(_ request: OrderRequest, context: ChannelHandlerContext) {
        let started = monotonicNanoseconds()
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
            let account = try AccountMiddleware.account(request.accounts)
            try shared.limiter?.admitOrRefuse(account, metrics: shared.metrics)
            shared.trading.place(account: account, body: request.body, then: finish)
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
        answering = false
        shared.latency.recordNanoseconds(Int64(monotonicNanoseconds() - started))
        // The client went: nothing to write, and the context is not to be used once removed.
        guard isActive else { return }
        var response = context.channel.allocator.buffer(capacity: text.utf8.count + 192)
        response.writeString("HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\n")
        for field in fields { response.writeString("\(field.name.rawName): \(field.value)\r\n") }
        response.writeString("Content-Type: application/json\r\nContent-Length: \(text.utf8.count)\r\n")
        response.writeString("Date: \(HTTPDate.shared.now)\r\n\r\n")
        response.writeString(text)
        if quiescing {
            context.writeAndFlush(wrapOutboundOut(response)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
            return
        }
        context.writeAndFlush(wrapOutboundOut(response), promise: nil)
        context.triggerUserOutboundEvent(RequestProgress.answered, promise: nil)
        takeNext(context: context)
    }

    /// From here on NIO's codec and Hummingbird have the connection: what was read and not taken goes to
    /// them, then whatever this handler held back, and the handler leaves the pipeline.
    private func handOn(context: ChannelHandlerContext) {
        if let unread, unread.readableBytes > 0 {
            context.fireChannelRead(wrapInboundOut(unread))
            // Hummingbird takes what was read at the end of a read; this may be after an answer, not a read.
            context.fireChannelReadComplete()
        }
        unread = nil
        if inputClosed { passOnInputClosed(context: context) }
        if readHeld { context.read() }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if (unread?.readableBytes ?? 0) >= Self.unreadBytesMax {
            readHeld = true
        } else {
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is ChannelShouldQuiesceEvent:
            // Whatever was read after the order in hand is dropped, as Hummingbird drops what follows the
            // request it answers when told to stop.
            quiescing = true
            unread = nil
            if !answering { context.close(promise: nil) }
        case let event as ChannelEvent where event == .inputClosed:
            inputClosed = true
            takeNext(context: context)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        isActive = false
        // Hummingbird waits for the first request NIO's codec reads; none will come. Told the input is
        // closed, it stops waiting quietly (a channel gone without that is logged as an error).
        passOnInputClosed(context: context)
        context.fireChannelInactive()
    }

    private func passOnInputClosed(context: ChannelHandlerContext) {
        if inputClosedPassedOn { return }
        inputClosedPassedOn = true
        context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        isActive = false
    }
}

/// The `Date` header's value (RFC 9110's IMF-fixdate), formatted once a second, for the answers serve
/// writes itself (Hummingbird dates its own).
final class HTTPDate: Sendable {
    static let shared = HTTPDate()
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
