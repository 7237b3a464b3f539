import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import MarketStream
import NIOCore

/// What a connection of serve's listeners has in front of Hummingbird's HTTP/1 channel with the WebSocket
/// upgrade (`base`), first in its pipeline: `--idle-timeout` (``IdleTimeoutHandler``), then, on the
/// API's listener and unless traced, the order path read from the connection's bytes
/// (``OrderChannelHandler``).
struct ConnectionFront<Base: ServerChildChannel>: ServerChildChannel {
    let base: Base
    /// nil: connections are never closed for being idle.
    let idleTimeout: Duration?
    /// nil: no ``OrderChannelHandler``; every request goes to Hummingbird.
    let orders: OrderChannelHandler.Shared?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Base.Value> {
        do {
            let pipeline = channel.pipeline.syncOperations
            if let idleTimeout { try pipeline.addHandler(IdleTimeoutHandler(timeout: TimeAmount(idleTimeout))) }
            if let orders { try pipeline.addHandler(OrderChannelHandler(orders)) }
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return base.setup(channel: channel, logger: logger)
    }

    func handle(value: Base.Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension ConnectionFront where Base == HTTP1WebSocketUpgradeChannel {
    /// A listener of serve's: Hummingbird's HTTP/1 with `/v1/stream`'s WebSocket upgrade, each connection
    /// behind a front with `--idle-timeout` and, given `orders`, the order path.
    static func server(state: ServerState, orders: OrderChannelHandler.Shared?) -> HTTPServerBuilder {
        let webSocketResponder = StreamRoute.router(feed: state.market.feed, metrics: state.metrics.stream)
            .buildResponder()
        let idleTimeout = state.options.idleTimeout
        return HTTPServerBuilder { responder in
            ConnectionFront(
                base: HTTP1WebSocketUpgradeChannel(
                    responder: responder,
                    webSocketResponder: webSocketResponder,
                    configuration: .init()
                ),
                idleTimeout: idleTimeout,
                orders: orders
            )
        }
    }
}

/// `--idle-timeout`: closes a connection on which, for that long, nothing was read or written while
/// serve was not answering a request: one that never sent anything, one that sent part of a request's
/// head and went quiet, a keep-alive connection left open after its last answer.
///
/// A request is being answered from the end of its head (`\r\n\r\n` among the bytes read since serve
/// last wrote) to serve's next write, and it is never cut, however long the answer takes (an order
/// waits for the matcher). What the handler cannot see without parsing HTTP, it leaves alone: a body
/// that trickles in after its head is given all the time it takes. A WebSocket connection leaves the
/// handler at its upgrade (the `101` answer): the stream's pings watch it.
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
    /// A request's head was read since serve last wrote: it is being answered.
    private var answering = false
    /// How many bytes of `\r\n\r\n` the bytes read since serve last wrote end with.
    private var headEndMatched = 0
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

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
        if !answering {
            answering = unwrapInboundIn(data).withUnsafeReadableBytes { findHeadEnd($0) }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        lastActivity = .now()
        if answering {
            answering = false
            headEndMatched = 0
            if case .byteBuffer(let bytes) = unwrapOutboundIn(data),
                bytes.readableBytesView.starts(with: "HTTP/1.1 101 ".utf8)
            {
                context.write(data, promise: promise)
                context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
                return
            }
        }
        context.write(data, promise: promise)
    }

    /// Whether `bytes` complete a request's head, going on from what earlier reads ended with.
    private func findHeadEnd(_ bytes: UnsafeRawBufferPointer) -> Bool {
        for byte in bytes {
            switch (headEndMatched, byte) {
            case (3, UInt8(ascii: "\n")): return true
            case (1, UInt8(ascii: "\n")): headEndMatched = 2
            case (2, UInt8(ascii: "\r")): headEndMatched = 3
            case (_, UInt8(ascii: "\r")): headEndMatched = 1
            default: headEndMatched = 0
            }
        }
        return false
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
        let due = lastActivity + timeout
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
