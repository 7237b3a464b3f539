import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import MarketStream
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOWebSocket

/// What a connection of serve's listeners has around Hummingbird's HTTP/1 channel with the WebSocket
/// upgrade (`base`): first in its pipeline, `--idle-timeout` (``IdleTimeoutHandler``), then, on the
/// API's listener and unless traced, the order path read from the connection's bytes
/// (``OrderChannelHandler``); behind NIO's HTTP codec, a first request's HTTP/1.0 and its refusal when
/// it is not HTTP (``FirstRequestHandler``), and what Hummingbird's answers leave out
/// (``AnswerHandler``); after a WebSocket upgrade, the refusal of unmasked frames
/// (``UnmaskedFrameHandler``).
struct ConnectionFront: ServerChildChannel {
    let base: HTTP1WebSocketUpgradeChannel
    /// nil: connections are never closed for being idle.
    let idleTimeout: Duration?
    /// nil: no ``OrderChannelHandler``; every request goes to Hummingbird.
    let orders: OrderChannelHandler.Shared?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<HTTP1WebSocketUpgradeChannel.Value> {
        do {
            let pipeline = channel.pipeline.syncOperations
            if let idleTimeout { try pipeline.addHandler(IdleTimeoutHandler(timeout: TimeAmount(idleTimeout))) }
            if let orders { try pipeline.addHandler(OrderChannelHandler(orders)) }
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            let parser = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try pipeline.addHandler(FirstRequestHandler(), position: .after(parser))
            try pipeline.addHandler(UpgradeWatcher())
            return value
        }
    }

    func handle(value: HTTP1WebSocketUpgradeChannel.Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }

    /// A listener of serve's: Hummingbird's HTTP/1 with `/v1/stream`'s WebSocket upgrade, each connection
    /// behind a front with `--idle-timeout` and, given `orders`, the order path. Behind NIO's HTTP codec,
    /// for Hummingbird's requests: ``AnswerHandler`` and, with `--idle-timeout`,
    /// ``RequestProgressHandler``.
    static func server(state: ServerState, orders: OrderChannelHandler.Shared?) -> HTTPServerBuilder {
        let webSocketResponder = StreamRoute.router(feed: state.market.feed, metrics: state.metrics.stream)
            .buildResponder()
        let idleTimeout = state.options.idleTimeout
        return HTTPServerBuilder { responder in
            ConnectionFront(
                base: HTTP1WebSocketUpgradeChannel(
                    responder: responder,
                    webSocketResponder: webSocketResponder,
                    configuration: .init(
                        // Made for each connection (an autoclosure).
                        http1: .init(
                            additionalChannelHandlers: idleTimeout == nil
                                ? [AnswerHandler()] : [AnswerHandler(), RequestProgressHandler()]
                        ),
                        // RFC 6455: a text message that is not UTF-8 fails the connection (close code 1007).
                        ws: .init(validateUTF8: true)
                    )
                ),
                idleTimeout: idleTimeout,
                orders: orders
            )
        }
    }
}

/// A connection's first request, as NIO's HTTP parser reads it: an HTTP/1.0 request that does not ask
/// for keep-alive goes on marked `Connection: close`, so that its connection is closed once it is
/// answered (as an HTTP/1.0 client, such as many health checkers, expects); one the parser refuses (a
/// request line or header that is not HTTP/1.1, a header block over NIO's limits, a bad
/// `Content-Length`) is answered with a JSON error, and the connection closed.
///
/// Why the refusal: Hummingbird answers a request it cannot parse with a 400 and closes, but, with the WebSocket
/// upgrade, only from a connection's second request on. Until a first request's head is read, the
/// upgrade's negotiation waits for one, and the parser's error reaches no one: the client would wait,
/// unanswered, until `--idle-timeout` closed the connection (forever without one). This handler sits
/// right behind the parser, in front of the upgrade's handler, and leaves at the first request head.
final class FirstRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private var answered = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var head) = unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        // HTTP/1.0 closes after each answer unless asked to keep the connection alive; Hummingbird's
        // requests carry no version, only their `Connection` header.
        if !head.isKeepAlive { head.headers.replaceOrAdd(name: "Connection", value: "close") }
        // An HTTP/1.0 client knows no 100 (Continue): RFC 9110 has the server ignore its expectation.
        if head.version == .http1_0 { head.headers.remove(name: "Expect") }
        context.fireChannelRead(wrapInboundOut(.head(head)))
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The input ended inside a request: the client left, or `--idle-timeout` ended it (which answers
        // nothing).
        guard let error = error as? HTTPParserError, error != .invalidEOFState else {
            context.fireErrorCaught(error)
            return
        }
        if answered { return }
        answered = true
        let refusal = APIError.unreadable(error)
        let body = ByteBuffer(string: refusal.text)
        var head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: refusal.status.code))
        head.headers.add(name: "Content-Type", value: "application/json")
        head.headers.add(name: "Content-Length", value: String(body.readableBytes))
        head.headers.add(name: "Connection", value: "close")
        head.headers.add(name: "Date", value: HTTPDate.shared.now)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlushThenClose(wrapOutboundOut(.end(nil)))
    }
}

/// What HTTP/1.1 has a server tell a client, and Hummingbird's answers leave out; behind NIO's HTTP
/// codec, for the requests Hummingbird answers (the order path sends it those below):
/// - `Expect: 100-continue` (RFC 9110, section 10.1.1): the client waits for a `100 (Continue)` before
///   it sends the body (curl a second, others longer), and the server must send one or the final
///   answer at once. The `100` goes as the request's head is read or, while answers to earlier requests
///   on the connection are still being written (pipelining), right after the last of them, never
///   inside one.
/// - `Connection: close` on a request (or an HTTP/1.0 one, ``FirstRequestHandler``): Hummingbird
///   closes the connection after its answer, which says so (RFC 9112, section 9.6).
/// - A request NIO's parser refuses after the first (the first is ``FirstRequestHandler``'s):
///   Hummingbird answers the requests before it, then a `400` with no body, and closes. That answer
///   gets the JSON error and status every other refusal has.
final class AnswerHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private struct Expectations {
        /// Still waiting for its 100.
        var expectsContinue: Bool
        /// Its answer is the connection's last (Hummingbird's test of the header: the value `close`).
        let closes: Bool
    }

    /// For each request read and not yet answered whole, oldest first.
    private var requests = CircularBuffer<Expectations>()
    /// Set by the parser's error; Hummingbird's empty `400` comes after the answers before it.
    private var refusal: APIError?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let request) = unwrapInboundIn(data) {
            let expectsContinue = request.headerFields[.expect].map { $0.lowercased() == "100-continue" } ?? false
            requests.append(
                Expectations(expectsContinue: expectsContinue, closes: request.headerFields[.connection] == "close")
            )
            if expectsContinue && requests.count == 1 { sendContinue(context) }
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? HTTPParserError, error != .invalidEOFState { refusal = .unreadable(error) }
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let part = unwrapOutboundIn(data)
        if case .head(var head) = part, let refusal, Self.isHummingbirdsRefusal(head) {
            let body = ByteBuffer(string: refusal.text)
            head.status = refusal.status
            head.headerFields[.contentType] = "application/json"
            head.headerFields[.contentLength] = String(body.readableBytes)
            head.headerFields[.date] = HTTPDate.shared.now
            context.write(wrapOutboundOut(.head(head)), promise: promise)
            context.write(wrapOutboundOut(.body(body)), promise: nil)
            return
        }
        switch part {
        case .head(var response) where requests.first?.closes == true && response.status.kind != .informational:
            response.headerFields[.connection] = "close"
            context.write(wrapOutboundOut(.head(response)), promise: promise)
        case .end:
            context.write(data, promise: promise)
            guard !requests.isEmpty else { return }
            requests.removeFirst()
            if requests.first?.expectsContinue == true { sendContinue(context) }
        default:
            context.write(data, promise: promise)
        }
    }

    /// Hummingbird's answer to a request its parser refused: nothing else of serve's is empty.
    private static func isHummingbirdsRefusal(_ response: HTTPResponse) -> Bool {
        response.status == .badRequest && response.headerFields[.contentLength] == "0"
            && response.headerFields[.connection] == "close"
    }

    /// Sends the oldest request its 100.
    private func sendContinue(_ context: ChannelHandlerContext) {
        requests[requests.startIndex].expectsContinue = false
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponse(status: .continue))), promise: nil)
    }
}

extension APIError {
    /// A request NIO's parser refuses: 431 for a header block over its limits, else 400.
    static func unreadable(_ error: HTTPParserError) -> APIError {
        if error == .headerOverflow {
            return APIError(
                status: .requestHeaderFieldsTooLarge,
                code: "malformed",
                message: "the request's header is too large"
            )
        }
        // What the parser says, where it says something.
        let detail = [.unknown, .paused].contains(error) ? "" : ": \(error)"
        return .malformed("the request could not be read as HTTP/1.1\(detail)")
    }
}

/// Put last in a connection's pipeline before its first request: at a WebSocket upgrade (whose handlers
/// NIO then adds behind it) it puts ``UnmaskedFrameHandler`` behind the frame decoder; at the first
/// request that is not one, it leaves. Either way it leaves, and costs the requests nothing.
final class UpgradeWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is HTTPServerUpgradeEvents {
            let pipeline = context.pipeline.syncOperations
            if let decoder = try? pipeline.handler(type: ByteToMessageHandler<WebSocketFrameDecoder>.self) {
                try? pipeline.addHandler(UnmaskedFrameHandler(), position: .after(decoder))
            }
            pipeline.removeHandler(context: context, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// RFC 6455, section 5.1: a client masks every frame it sends, and a server closes the connection on a
/// frame that is not masked, here with a close frame of code 1002 (protocol error). NIO's frame decoder
/// and hummingbird-websocket take either kind.
final class UnmaskedFrameHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private var closing = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if unwrapInboundIn(data).maskKey != nil {
            context.fireChannelRead(data)
            return
        }
        if closing { return }
        closing = true
        var code = context.channel.allocator.buffer(capacity: 2)
        code.write(webSocketErrorCode: .protocolError)
        context.writeAndFlushThenClose(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: code)))
    }
}

extension ChannelHandlerContext {
    /// Writes `data`, the last of an answer, and closes the connection once it is written (or failed to).
    func writeAndFlushThenClose(_ data: NIOAny) {
        let written = eventLoop.makePromise(of: Void.self)
        writeAndFlush(data, promise: written)
        let channel = channel
        written.futureResult.whenComplete { _ in channel.close(promise: nil) }
    }
}

/// `--idle-timeout`: closes a connection on which no request is being answered and, for that long,
/// either nothing was read or written, or a request has been arriving without arriving whole: one that
/// never sent anything, one that sent part of a request (its head, its head and part of its body) and
/// went quiet or trickles the rest, a keep-alive connection left open after its last answer.
///
/// A request is being answered from when it was read whole to when its answer was written whole, and
/// it is never cut, however long the answer takes (an order waits for the matcher). The handlers that
/// read requests say when (``RequestProgress``): the order path (``OrderChannelHandler``) and, for
/// Hummingbird's requests, ``RequestProgressHandler`` behind NIO's HTTP codec. A WebSocket connection
/// leaves the handler at its upgrade (the `101` answer): the stream's pings watch it.
///
/// Closing, it first tells the handlers behind that the input ended, as if the client had half-closed:
/// Hummingbird, waiting for a request, then stops quietly (a channel closed under it is logged as an
/// error). Nothing is answered: there may be no request to answer.
final class IdleTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private let timeout: TimeAmount
    private var lastActivity = NIODeadline.now()
    /// When the first bytes of a request not yet read whole were read (nil: none is arriving).
    private var arrivingSince: NIODeadline?
    /// Requests read whole, and answered, on this connection: while more were read than answered, one
    /// is being answered. (Counts, not a flag: an answer may be written before its request's body was
    /// read, and the requests of a pipelining client are read before the first is answered.)
    private var requestsRead = 0
    private var requestsAnswered = 0
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    private var answering: Bool { requestsRead > requestsAnswered }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { schedule(context, at: .now() + timeout) }
    }

    func channelActive(context: ChannelHandlerContext) {
        lastActivity = .now()
        if timer == nil { schedule(context, at: lastActivity + timeout) }
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastActivity = .now()
        if !answering, arrivingSince == nil { arrivingSince = lastActivity }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        lastActivity = .now()
        // A WebSocket's upgrade is no request of the handlers behind (NIO's upgrader answers it).
        if !answering, case .byteBuffer(let bytes) = unwrapOutboundIn(data),
            bytes.readableBytesView.starts(with: "HTTP/1.1 101 ".utf8)
        {
            context.write(data, promise: promise)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.write(data, promise: promise)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        switch event as? RequestProgress {
        case .read:
            requestsRead += 1
            arrivingSince = nil
        case .answered:
            requestsAnswered += 1
            lastActivity = .now()
        case nil:
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        promise?.succeed()
    }

    private func schedule(_ context: ChannelHandlerContext, at deadline: NIODeadline) {
        let handler = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = handler.value
            handler.expired(context: context)
        }
    }

    private func expired(context: ChannelHandlerContext) {
        timer = nil
        guard context.channel.isActive else { return }
        let due = (arrivingSince ?? lastActivity) + timeout
        if answering {
            schedule(context, at: .now() + timeout)
        } else if due > .now() {
            schedule(context, at: due)
        } else {
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            context.close(promise: nil)
        }
    }
}

/// What the handlers that read requests tell ``IdleTimeoutHandler``, as outbound user events.
enum RequestProgress {
    /// A request was read whole, its head and its body.
    case read
    /// A request's answer was written whole.
    case answered
}

/// Hummingbird's requests, for ``IdleTimeoutHandler``: behind NIO's HTTP codec, it sees where each
/// request and each answer ends.
final class RequestProgressHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .end = unwrapInboundIn(data) { context.triggerUserOutboundEvent(RequestProgress.read, promise: nil) }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let isEnd = if case .end = unwrapOutboundIn(data) { true } else { false }
        context.write(data, promise: promise)
        if isEnd { context.triggerUserOutboundEvent(RequestProgress.answered, promise: nil) }
    }
}
