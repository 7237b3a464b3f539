import CastleSupport
import CoreMetrics
import Hummingbird
import MarketStream
import Pipeline
import Prometheus
import Storage
import Synchronization

/// What `/metrics` shows, through swift-metrics with a Prometheus factory of this server's own (no
/// global bootstrap, so several servers in one test process keep their own counts): request latency per
/// route, orders and trades, match latency (enqueue to verdict), queue depth, stream clients and drops.
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    let orders: CoreMetrics.Counter
    let trades: CoreMetrics.Counter
    let queueDepth: CoreMetrics.Gauge
    let matchLatency: CoreMetrics.Timer
    /// Trading requests refused with 429 (`--rate-limit`).
    let rateLimited: CoreMetrics.Counter
    /// `/v1/stream`'s clients and slow-consumer drops, in this registry.
    let stream: StreamRoute.Metrics
    private let routeTimers = Mutex<[String: CoreMetrics.Timer]>([:])
    private let enqueuedAt = Mutex<[Int64: UInt64]>([:])

    init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        let buckets: [Duration] = [
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
            .seconds(1),
        ]
        factory.defaultDurationHistogramBuckets = buckets
        self.factory = factory
        orders = CoreMetrics.Counter(label: "castle_orders_total", factory: factory)
        trades = CoreMetrics.Counter(label: "castle_trades_total", factory: factory)
        queueDepth = CoreMetrics.Gauge(label: "castle_queue_depth", factory: factory)
        matchLatency = CoreMetrics.Timer(label: "castle_match_latency_seconds", factory: factory)
        rateLimited = CoreMetrics.Counter(label: "castle_rate_limited_total", factory: factory)
        stream = StreamRoute.Metrics(factory: factory)
    }

    /// The latency timer of one route (its path pattern, not the path, so ids do not explode the labels).
    func timer(route: String, method: String) -> CoreMetrics.Timer {
        let key = method + " " + route
        return routeTimers.withLock { timers in
            if let timer = timers[key] { return timer }
            let timer = CoreMetrics.Timer(
                label: "castle_http_request_duration_seconds",
                dimensions: [("route", route), ("method", method)],
                factory: factory
            )
            timers[key] = timer
            return timer
        }
    }

    func enqueued(line: Int64) {
        let now = monotonicNanoseconds()
        enqueuedAt.withLock { $0[line] = now }
    }

    /// A batch of the in-process matcher: each message with its command's events, read.
    func matched(_ messages: [QueueMessage], _ commands: [CommandEvents]) {
        let now = monotonicNanoseconds()
        var tradeCount = 0
        var accepted = 0
        for command in commands {
            for event in command.events where event.kind == .trade { tradeCount += 1 }
            if command.events.first?.kind == .accepted { accepted += 1 }
        }
        if accepted > 0 { orders.increment(by: accepted) }
        if tradeCount > 0 { trades.increment(by: tradeCount) }
        let started = enqueuedAt.withLock { times in messages.compactMap { times.removeValue(forKey: $0.line) } }
        for start in started { matchLatency.recordNanoseconds(Int64(now - start)) }
    }

    func text() -> String { registry.emitToString() }
}

/// Records each request's latency under its route's pattern.
struct MetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics

    @concurrent func handle(
        _ request: Request,
        context: Context,
        next: @concurrent (Request, Context) async throws -> Response
    ) async throws
        -> Response
    {
        let start = monotonicNanoseconds()
        defer {
            let route = context.endpointPath ?? "unknown"
            metrics.timer(route: route, method: request.method.rawValue)
                .recordNanoseconds(Int64(monotonicNanoseconds() - start))
        }
        return try await next(request, context)
    }
}
