import CastleSupport
import Pipeline
import Storage
import Synchronization

/// What the routes and services share: the options, the open backends, the event-fed view of the
/// exchange and the order path.
final class ServerState: Sendable {
    let options: ServeOptions
    let store: any Backend
    let queue: any Backend
    let metrics = ServerMetrics()
    let view: ExchangeView
    /// The market-data fan-out (`/v1/stream`), fed by the view with every event line it applies.
    let market: MarketBridge
    let path: OrderPath
    let trading: Trading
    /// `--rate-limit`: one limiter for every door to the trading routes.
    let rateLimiter: RateLimiter?
    /// The consumer whose event log serve reads: the matcher of the whole queue.
    static let consumer = EventLog.consumer(of: .whole)

    init(options: ServeOptions, store: any Backend, queue: any Backend, market: MarketBridge) {
        self.options = options
        self.store = store
        self.queue = queue
        self.market = market
        view = ExchangeView(market: market)
        path = OrderPath(
            queue: queue,
            store: store,
            view: view,
            metrics: metrics,
            verdictTimeout: options.verdictTimeout,
            matcher: .starting,
            tracing: options.otlpEndpoint != nil
        )
        trading = Trading(path: path, listed: market.listedSymbols, clientOrders: store)
        rateLimiter = options.rateLimit.map { RateLimiter(perSecond: $0) }
    }

    /// Reads the event log after what the view holds, up to its end: at start, and whenever the view
    /// may have missed events (external matchers).
    /// Returns the lines read, in seq order, each segment's lines together (a line that is not one JSON
    /// object left out).
    @discardableResult
    func catchUp() async throws(CastleError) -> [LoggedLines] {
        var read: [LoggedLines] = []
        while true {
            let segments = try await store.readEvents(consumer: Self.consumer, fromSeq: view.lastSeq + 1, limit: 100)
            let before = view.lastSeq
            for segment in segments {
                let lines = LoggedLines(ndjson: segment.body)
                view.apply(lines.events)
                read.append(lines)
            }
            if segments.isEmpty || view.lastSeq == before { return read }
        }
    }

    /// What `/ready` reports; `ready` only when every part is.
    struct Readiness: Encodable {
        var ready: Bool
        var region: String
        var migrations: String
        var matcher: String
        var matcherLag: Int
        var store: String

        enum CodingKeys: String, CodingKey {
            case ready, region, migrations, matcher, store
            case matcherLag = "matcher_lag"
        }
    }

    /// More queued messages than this and the matcher has not caught up: a load balancer should send
    /// traffic elsewhere until it has.
    static let readyLagMax = 1_000

    func readiness() async -> Readiness {
        var migrations = "none"
        var storeAnswers = true
        var lag = 0
        do throws(CastleError) {
            for backend in [store, queue] {
                guard let schema = backend.schema else { continue }
                let status = try await Migrator(database: schema, storeName: backend.displayURL).status()
                if !status.isCurrent {
                    migrations = !status.pending.isEmpty ? "pending" : !status.changed.isEmpty ? "changed" : "newer"
                    break
                }
                migrations = "current"
            }
            lag = try await queue.depth(partition: nil)
        } catch {
            storeAnswers = false
        }
        // Only the server whose matcher owns the partition takes orders.
        let matcher = path.matcher.withLock { $0 }
        let ready =
            storeAnswers && (migrations == "current" || migrations == "none") && lag <= Self.readyLagMax
            && (matcher == .active || matcher == .external)
        return Readiness(
            ready: ready,
            region: options.region,
            migrations: storeAnswers ? migrations : "unknown",
            matcher: matcher.rawValue,
            matcherLag: lag,
            store: storeAnswers ? "ok" : "unreachable"
        )
    }
}
