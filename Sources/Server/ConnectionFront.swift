import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore

/// What a connection of serve's listeners has in front of Hummingbird's HTTP/1 channel with the WebSocket
/// upgrade (`base`), first in its pipeline: `--idle-timeout` (NIO's `IdleStateHandler`, and
/// ``IdleConnectionCloser``), then, on the API's listener and unless traced, the order path read from
/// the connection's bytes (``OrderChannelHandler``).
struct ConnectionFront<Base: ServerChildChannel>: ServerChildChannel {
    let base: Base
    /// nil: connections are never closed for being idle.
    let idleTimeout: Duration?
    /// nil: no ``OrderChannelHandler``; every request goes to Hummingbird.
    let orders: OrderChannelHandler.Shared?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Base.Value> {
        do {
            let pipeline = channel.pipeline.syncOperations
            if let idleTimeout {
                try pipeline.addHandler(IdleStateHandler(readTimeout: TimeAmount(idleTimeout)))
                try pipeline.addHandler(IdleConnectionCloser())
            }
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

/// Closes a connection from which nothing was read for `--idle-timeout` (``IdleStateHandler``'s read
/// event): a keep-alive connection left open, a request never finished, a WebSocket client that stopped
/// answering pings. The handlers behind are first told that the input ended, as if the client had
/// half-closed: Hummingbird, waiting for a request, then stops quietly (a channel closed under it is
/// logged as an error).
final class IdleConnectionCloser: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

extension ServeOptions {
    /// hummingbird-websocket's defaults, but for the pings: every half of `--idle-timeout`, so that a
    /// client that answers them is never idle.
    var webSocketConfiguration: WebSocketServerConfiguration {
        guard let idleTimeout else { return .init() }
        return .init(autoPing: .enabled(timePeriod: idleTimeout / 2))
    }
}
