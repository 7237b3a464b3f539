import ArgumentParser
import CastleSupport
import Server
import Storage

/// `castle serve`: parses only; the server is the Server module's.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the exchange online: the trading and market-data HTTP API, health and metrics.",
        discussion: """
            Listens on --host:--port (port 0: any free port) and prints `castle serve: listening on http://HOST:PORT` on stderr. The market-data stream is /v1/stream on that port; with --stream-port, also on a port of its own, with threads of its own, so that a fan-out to many clients does not hold up the API (printed as `castle serve: streams on ws://HOST:PORT/v1/stream`). Orders go into the queue of --queue (default: the store), are matched by the durable matcher of `castle match --queue` (in this process, or with --matcher external in separate `castle match --queue` processes), and their events go to the store. /health is liveness; /ready answers 200 only when the store answers, its migrations are current and the matcher owns its partition and has caught up, and reports --region; a second serve on the same store stands by (503, orders refused) and takes over when the first dies. A connection with no request on it being answered is closed when idle for --idle-timeout seconds, or when a request has been arriving on it that long (trickled). With --otlp-endpoint, traces (a span per request, the order path's group commit and wait for the matcher) go over OTLP/HTTP to a collector. SIGTERM or SIGINT: stop accepting, answer what is in flight, commit the matcher's batch, export the last spans, exit 0. See docs/serve.md.

            Examples:
              castle serve --store sqlite://castle.db --port 8080
              castle serve --store postgres://castle@db:5432/castle --region eu-west
              castle serve --port 0 --log-format json
              curl -s localhost:8080/ready
              castle serve --instruments datasets/instruments.ndjson --feed datasets/orders-100k.ndjson.gz --speed 0.05
              castle serve --otlp-endpoint http://localhost:4318
              castle serve --port 8080 --stream-port 8081
            """
    )

    @OptionGroup var storeOptions: StoreOptions

    @Option(help: ArgumentHelp("The queue orders go into (default: the store).", valueName: "url"))
    var queue: String?

    @Option(help: ArgumentHelp("Address to listen on.", valueName: "host"))
    var host = "127.0.0.1"

    @Option(help: ArgumentHelp("Port to listen on; 0: any free port.", valueName: "port"))
    var port = 8080

    @Option(
        name: .customLong("stream-port"),
        help: ArgumentHelp(
            "Serve /v1/stream on this port too, on threads of its own (0: any free port).",
            valueName: "port"
        )
    )
    var streamPort: Int?

    @Option(help: ArgumentHelp("Where the matcher runs.", valueName: "where"))
    var matcher: ServeOptions.Matcher = .inProcess

    @Option(help: ArgumentHelp("The region /ready reports.", valueName: "name"))
    var region = "local"

    @Option(
        name: .customLong("log-format"),
        help: ArgumentHelp("Log lines on stderr as text or JSON.", valueName: "format")
    )
    var logFormat: ServeOptions.LogFormat = .text

    @Option(
        help: ArgumentHelp("Instruments file (tick, lot, decimals); other symbols are rejected.", valueName: "file")
    )
    var instruments: String?

    @Option(
        help: ArgumentHelp(
            "An order stream (NDJSON, gzip too) played into the API as a live market, paced by its ts.",
            valueName: "file"
        )
    )
    var feed: String?

    @Option(help: ArgumentHelp("With --feed: play N times faster than recorded (fractions slow it).", valueName: "n"))
    var speed = 1.0

    @Option(
        name: .customLong("verdict-timeout"),
        help: ArgumentHelp(
            "Seconds an order request waits for the matcher's verdict before a 503 (the order stays queued).",
            valueName: "s"
        )
    )
    var verdictTimeout = 10.0

    @Option(
        name: .customLong("idle-timeout"),
        help: ArgumentHelp(
            "Seconds a connection with no request being answered may sit idle, or take to send a request, before it is closed (0: never).",
            valueName: "s"
        )
    )
    var idleTimeout = 75.0

    @Option(
        name: .customLong("rate-limit"),
        help: ArgumentHelp(
            "Trading requests a second per account, in bursts of up to N; over it, 429 (default: no limit).",
            valueName: "N"
        )
    )
    var rateLimit: Int?

    @Option(
        name: .customLong("stream-interval"),
        help: ArgumentHelp(
            "Milliseconds between two fan-outs of the market data; what comes meanwhile goes in one (0: at once).",
            valueName: "ms"
        )
    )
    var streamInterval = 100

    @Option(
        name: .customLong("otlp-endpoint"),
        help: ArgumentHelp("Export traces over OTLP/HTTP to this collector (off by default).", valueName: "url")
    )
    var otlpEndpoint: String?

    @Option(
        name: .customLong("otlp-service-name"),
        help: ArgumentHelp("With --otlp-endpoint: the traces' service.name (default: castle).", valueName: "name")
    )
    var otlpServiceName: String?

    func validate() throws {
        guard speed > 0, speed.isFinite else {
            throw ValidationError("--speed must be a positive number, not \(speed)")
        }
        guard verdictTimeout > 0, verdictTimeout <= 3600 else {
            throw ValidationError(
                "--verdict-timeout must be more than 0 and at most 3600 seconds, not \(verdictTimeout)"
            )
        }
        guard (0...86_400).contains(idleTimeout) else {
            throw ValidationError("--idle-timeout must be from 0 (never) to 86400 seconds, not \(idleTimeout)")
        }
        guard (0...10_000).contains(streamInterval) else {
            throw ValidationError("--stream-interval must be 0 to 10000 milliseconds, not \(streamInterval)")
        }
        if let rateLimit, !(1...1_000_000).contains(rateLimit) {
            throw ValidationError("--rate-limit must be 1 to 1000000 requests a second, not \(rateLimit)")
        }
        if let otlpEndpoint, !(otlpEndpoint.hasPrefix("http://") || otlpEndpoint.hasPrefix("https://")) {
            throw ValidationError("--otlp-endpoint must be an http:// or https:// URL, not '\(otlpEndpoint)'")
        }
        if let otlpServiceName {
            guard otlpEndpoint != nil else { throw ValidationError("--otlp-service-name needs --otlp-endpoint") }
            guard !otlpServiceName.isEmpty else { throw ValidationError("--otlp-service-name must not be empty") }
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0 to 65535, not \(port)") }
        if let streamPort {
            guard (0...65535).contains(streamPort) else {
                throw ValidationError("--stream-port must be 0 to 65535, not \(streamPort)")
            }
            guard streamPort == 0 || streamPort != port else {
                throw ValidationError("--stream-port must differ from --port (\(port))")
            }
        }
        if matcher == .inProcess, let queue, queue != storeOptions.storeURL {
            throw ValidationError(
                "the in-process matcher commits its queue offset and its results in one transaction: --queue must be the store ('\(queue)' is not '\(storeOptions.storeURL)'), or use --matcher external"
            )
        }
    }

    func run() async throws {
        var options = ServeOptions(storeURL: storeOptions.storeURL, queueURL: queue ?? storeOptions.storeURL)
        options.host = host
        options.port = port
        options.streamPort = streamPort
        options.matcher = matcher
        options.region = region
        options.logFormat = logFormat
        options.instrumentsPath = instruments
        options.feedPath = feed
        options.feedSpeed = speed
        options.rateLimit = rateLimit
        options.streamInterval = .milliseconds(streamInterval)
        options.verdictTimeout = .milliseconds(Int64((verdictTimeout * 1000).rounded(.up)))
        options.idleTimeout = idleTimeout == 0 ? nil : .milliseconds(Int64((idleTimeout * 1000).rounded(.up)))
        options.otlpEndpoint = otlpEndpoint
        if let otlpServiceName { options.otlpServiceName = otlpServiceName }
        try await runAsyncJob("serve") { () async throws(CastleError) in try await CastleServer.run(options) }
    }
}

extension ServeCommand: StopsGracefully {
    var stopsGracefully: Bool { true }
}
