import Foundation
import HTTPTypes
public import Hummingbird
public import HummingbirdWebSocket
public import MarketFeed
public import Metrics
import NIOCore
import NIOWebSocket

/// `GET /v1/stream`: the market-data WebSocket of spec/serve.md, on ``MarketFeed``. JSON text frames:
/// the client subscribes and unsubscribes (`{"op","channel","symbol"}`), the server answers
/// `{"op":"subscribed"|"unsubscribed",…}` or `{"error":{…}}` and sends the channels' messages. One task
/// reads the client's frames; the feed's messages go straight to the channel (``ChannelFeedSink``), and
/// the feed never waits for either.
public enum StreamRoute {
    /// The largest frame a client may send: a subscribe is a few dozen bytes.
    static let inboundBytesMax = 4096
    /// How long a dropped connection's close frame may wait, by default, for a client that does not read.
    public static let closeTimeoutDefault = Duration.seconds(5)

    /// The account header of the trading routes (spec/serve.md), read on the upgrade request too.
    public static let accountHeader = HTTPField.Name("X-Castle-Account")!

    /// The stream's metrics, made by the caller's factory: serve passes its own Prometheus registry's
    /// (it bootstraps no global one, so metrics made with the default factory would never be scraped).
    public struct Metrics: Sendable {
        let clients: Gauge
        let droppedSlowConsumers: Counter

        public init(factory: any MetricsFactory = MetricsSystem.factory) {
            clients = Gauge(label: "castle_ws_clients", factory: factory)
            droppedSlowConsumers = Counter(label: "castle_ws_dropped_slow_consumers_total", factory: factory)
        }
    }

    /// The router of WebSocket upgrades (hummingbird-websocket consults it only for upgrade requests).
    public static func router(
        feed: MarketFeed,
        metrics: Metrics = Metrics(),
        closeTimeout: Duration = closeTimeoutDefault
    ) -> Router<StreamRequestContext> {
        let router = Router(context: StreamRequestContext.self)
        router.ws(
            "v1/stream",
            onUpgrade: { inbound, outbound, context in
                // Refusals come after the upgrade, as a JSON error and a close frame: a refused upgrade can
                // only be an empty 400 here (hummingbird-websocket), and a browser shows a script neither.
                let account = streamAccount(context.request)
                if let account, !isValidAccount(account) {
                    try await outbound.write(
                        .text(errorText(code: "unauthenticated", "the account must be 1-64 characters of A-Za-z0-9_.-"))
                    )
                    try await outbound.close(.policyViolation, reason: "bad account")
                    return
                }
                let sink = ChannelFeedSink(
                    channel: context.requestContext.channel,
                    bufferMessagesMax: feed.limits.bufferMessagesMax
                )
                let connection: FeedConnection
                do {
                    connection = try feed.connect(account: account, sink: sink)
                } catch {
                    try await outbound.write(.text(errorText(error)))
                    try await outbound.close(.unknown(1013), reason: "too many streams")
                    return
                }
                metrics.clients.record(feed.counts.connections)
                defer {
                    connection.close()
                    metrics.clients.record(feed.counts.connections)
                }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        await sink.finished()
                        try await closeIfDropped(connection, outbound, metrics: metrics, closeTimeout: closeTimeout)
                    }
                    group.addTask {
                        for try await message in inbound.messages(maxSize: inboundBytesMax) {
                            guard case .text(let text) = message else {
                                connection.send(errorText(code: "malformed", "send JSON text frames"))
                                continue
                            }
                            handle(text, on: connection)
                        }
                        connection.close()
                    }
                    // Whichever ends first ends the other: the client left, or the feed dropped it.
                    try await group.next()
                    connection.close()
                    group.cancelAll()
                }
            }
        )
        return router
    }

    /// The account of the `orders` channel: the `X-Castle-Account` header, as on the trading routes, or
    /// the `account` query parameter, because a browser cannot set headers on a WebSocket upgrade.
    static func streamAccount(_ request: Request) -> String? {
        request.headers[accountHeader] ?? request.uri.queryParameters.get("account")
    }

    /// spec/serve.md: 1-64 characters of `[A-Za-z0-9_.-]`.
    static func isValidAccount(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count)
            && name.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"):
                    true
                default: false
                }
            }
    }

    /// Once the feed has finished the connection: a close frame, if the feed dropped it.
    private static func closeIfDropped(
        _ connection: FeedConnection,
        _ outbound: WebSocketOutboundWriter,
        metrics: Metrics,
        closeTimeout: Duration
    ) async throws {
        let code: WebSocketErrorCode
        let reason: String
        switch connection.dropReason {
        case .slowConsumer:
            metrics.droppedSlowConsumers.increment()
            code = .unknown(4001)
            reason = FeedDropReason.slowConsumer.rawValue
        case .shutdown:
            code = .goingAway
            reason = "server stopping"
        case nil:
            return  // the client left
        }
        // The close frame waits behind what the client has not read. A client answers it once it has
        // read everything, and its answer ends the reading task, which ends this one; a client that
        // never reads is cut off after closeTimeout (the handler returns, the library closes the channel).
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await outbound.close(code, reason: reason) }
            try await Task.sleep(for: closeTimeout)
            group.cancelAll()
        }
    }

    /// One client frame: a subscribe or an unsubscribe, strictly (unknown fields are refused).
    static func handle(_ text: String, on connection: FeedConnection) {
        // `messages(maxSize:)` caps only a message in several frames; one frame may be up to the
        // WebSocket's frame cap (16 KiB, past which hummingbird-websocket closes with 1009).
        guard text.utf8.count <= inboundBytesMax else {
            connection.send(errorText(code: "malformed", "a message over \(inboundBytesMax) bytes"))
            return
        }
        guard
            let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        else {
            connection.send(errorText(code: "malformed", "not a JSON object"))
            return
        }
        if let unknown = object.keys.sorted().first(where: { !["op", "channel", "symbol"].contains($0) }) {
            connection.send(errorText(code: "malformed", "unknown field \(unknown)"))
            return
        }
        guard let op = object["op"] as? String, op == "subscribe" || op == "unsubscribe" else {
            connection.send(errorText(code: "malformed", "op must be subscribe or unsubscribe"))
            return
        }
        guard let channelName = object["channel"] as? String, let channel = FeedChannel(rawValue: channelName) else {
            connection.send(errorText(code: "malformed", "channel must be trades, book or orders"))
            return
        }
        let symbol: String?
        switch object["symbol"] {
        case nil: symbol = nil
        case let name as String: symbol = name
        default:
            connection.send(errorText(code: "malformed", "symbol must be a string"))
            return
        }
        let answer = answerText(op == "subscribe" ? "subscribed" : "unsubscribed", channel, symbol)
        if op == "unsubscribe" {
            connection.unsubscribe(channel, symbol: symbol)
            connection.send(answer)
            return
        }
        do {
            try connection.subscribe(channel, symbol: symbol, acknowledgement: answer)
        } catch {
            connection.send(errorText(error))
        }
    }

    static func answerText(_ op: String, _ channel: FeedChannel, _ symbol: String?) -> String {
        var object: [String: String] = ["op": op, "channel": channel.rawValue]
        if let symbol { object["symbol"] = symbol }
        return jsonText(object)
    }

    static func errorText(_ error: any Error) -> String {
        guard let error = error as? FeedError else { return errorText(code: "internal", "\(error)") }
        let (code, message) = error.codeAndMessage
        return errorText(code: code, message)
    }

    static func errorText(code: String, _ message: String) -> String {
        jsonText(["error": ["code": code, "message": message]])
    }

    private static func jsonText(_ object: Any) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}

/// The request context of the stream's router: hummingbird-websocket's basic one, plus the connection's
/// NIO channel, which ``ChannelFeedSink`` writes the feed's messages to.
public struct StreamRequestContext: RequestContext, WebSocketRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<Self>
    let channel: any Channel

    public init(source: Source) {
        coreContext = CoreRequestContextStorage(source: source)
        webSocket = WebSocketHandlerReference()
        channel = source.channel
    }
}
