/// What `castle serve` was asked to do: parsed by the CLI, run by ``CastleServer``.
public struct ServeOptions: Sendable {
    /// Where the matcher runs: in this process (the durable worker of `castle match --queue`), or in
    /// separate `castle match --queue` processes whose event log serve reads.
    public enum Matcher: String, Sendable, CaseIterable {
        case inProcess = "in-process"
        case external
    }

    public enum LogFormat: String, Sendable, CaseIterable {
        case text
        case json
    }

    public var storeURL: String
    /// The queue orders go into; the in-process matcher needs it to be the store (one transaction for
    /// its offset and its results), as `castle match --queue` does.
    public var queueURL: String
    public var host = "127.0.0.1"
    /// 0: any free port (printed on stderr once listening).
    public var port = 8080
    public var matcher = Matcher.inProcess
    /// Reported by `/ready`, for a load balancer or DNS failover between regions.
    public var region = "local"
    public var logFormat = LogFormat.text
    public var instrumentsPath: String?
    /// `--feed FILE`: an order stream played into the API as a live market (see ``FeedReplay``).
    public var feedPath: String?
    /// `--speed N`: the feed plays its commands' `ts` N times faster than recorded.
    public var feedSpeed = 1.0
    /// How long an order request waits for the matcher's verdict: past it, 503 `not_ready` (the order is
    /// durable in the queue and is matched when the matcher gets to it).
    public var verdictTimeout = Duration.seconds(10)
    /// `--idle-timeout S`: a connection on which nothing moved for this long while no request on it was
    /// being answered is closed (``IdleTimeoutHandler``). nil: never.
    public var idleTimeout: Duration? = .seconds(75)
    /// `--stream-port PORT`: `/v1/stream` on a listener of its own as well, with event-loop threads of
    /// its own (``StreamListener``); 0: any free port. nil: only on `port`.
    public var streamPort: Int?
    /// `--stream-interval MS`: the least time between two fan-outs of the market data (see
    /// ``MarketFeed/run(pace:)``); zero fans out every matcher commit at once.
    public var streamInterval = Duration.milliseconds(100)
    /// `--rate-limit N`: trading requests a second per account (bursts of up to N); nil: no limit.
    public var rateLimit: Int?
    /// `--otlp-endpoint URL`: the OpenTelemetry collector's OTLP/HTTP base URL; spans go to `URL/v1/traces`.
    /// Without it serve starts no tracer, and no span is made.
    public var otlpEndpoint: String?
    /// `--otlp-service-name`: the `service.name` of the spans' resource.
    public var otlpServiceName = "castle"

    public init(storeURL: String, queueURL: String) {
        self.storeURL = storeURL
        self.queueURL = queueURL
    }
}
