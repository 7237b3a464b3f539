import CastleSupport
import Hummingbird
import Logging
import NIOCore
import NIOPosix

/// `--stream-port`: `/v1/stream` (and `/health`, for a load balancer in front of it) on a listener with
/// event-loop threads of its own, the market-data service of the seed beside the trading API.
///
/// Why: a fan-out writes to every subscriber at once, and a thousand of them take the event loop that
/// writes for 10 to 20 ms every `--stream-interval`. On the API's port, the HTTP requests on those event
/// loops wait meanwhile. On a listener of its own, the kernel shares the cores between the two, and
/// the orders go on (docs/serve-performance.md). The stream on the API's port stays, for the page and
/// for clients that know one address.
struct StreamListener {
    let application: Application<RouterResponder<BasicRequestContext>>
    /// As given: 0 is any free port.
    let port: Int
    private let eventLoops: MultiThreadedEventLoopGroup

    /// One thread per two cores: on two cores, two threads gave the API's requests a worse p99 than one.
    static var threads: Int { max(1, System.coreCount / 2) }

    init(state: ServerState, port: Int, logger: Logger) {
        self.port = port
        eventLoops = MultiThreadedEventLoopGroup(numberOfThreads: Self.threads)
        let router = Router(options: .autoGenerateHeadEndpoints)
        router.middlewares.add(ErrorMiddleware())
        Routes.addHealth(to: router)
        let host = state.options.host
        application = Application(
            router: router,
            server: ConnectionFront.server(state: state, orders: nil),
            configuration: ApplicationConfiguration(address: .hostname(host, port: port)),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? port
                writeStandardError("castle serve: streams on ws://\(host):\(port)/v1/stream\n")
            },
            eventLoopGroupProvider: .shared(eventLoops),
            logger: logger
        )
    }

    /// Once the application has stopped: its threads end.
    func shutDown() async {
        try? await eventLoops.shutdownGracefully()
    }
}
