public import CastleSupport
import Hummingbird
import Logging
import MarketStream
import NIOCore
import Pipeline
import ServiceLifecycle
import Storage
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// `castle serve`: one HTTP application (Hummingbird 2; two with `--stream-port`) run as a Service in a
/// swift-service-lifecycle ServiceGroup, beside the backends' background work (the PostgreSQL pool)
/// and, with `--matcher in-process`, the durable matcher of `castle match --queue`. SIGTERM and SIGINT
/// stop the group gracefully: the server stops accepting and answers what is in flight, the matcher
/// commits its batch, the backends close last.
public enum CastleServer {
    public static func run(_ options: ServeOptions) async throws(CastleError) {
        let store = try await StorageRegistry.open(options.storeURL)
        let queue: any Backend
        if options.queueURL == options.storeURL {
            queue = store
        } else {
            do throws(CastleError) {
                queue = try await StorageRegistry.open(options.queueURL)
            } catch {
                await store.close()
                throw error
            }
        }
        let backends: [any Backend] = queue === store ? [store] : [store, queue]
        var failure: CastleError?
        do {
            try await runGroup(options, store: store, queue: queue, backends: backends)
        } catch {
            failure = error as? CastleError ?? CastleError(.software, "\(error)")
        }
        for backend in backends { await backend.close() }
        if let failure { throw failure }
    }

    private static func runGroup(
        _ options: ServeOptions,
        store: any Backend,
        queue: any Backend,
        backends: [any Backend]
    ) async throws {
        let logger = ServerLogging.logger(label: "castle.serve", format: options.logFormat)
        let state = ServerState(
            options: options,
            store: store,
            queue: queue,
            market: try MarketBridge(instrumentsPath: options.instrumentsPath)
        )
        // A feed file is read and checked whole before anything starts: a bad line stops serve here.
        var replay: FeedReplay?
        if let path = options.feedPath { replay = try await FeedReplay.load(path: path, speed: options.feedSpeed) }
        let listening = AsyncStream<Int>.makeStream()
        let router = Routes.build(state)
        // The page at / and its files; /v1/stream upgrades through a router of its own.
        WebRoutes.add(to: router)
        let host = options.host
        // POST /v1/orders read in front of NIO's HTTP codec (``OrderChannelHandler``), unless traced: spans
        // come from the router's middleware.
        let orders = OrderChannelHandler.Shared(
            trading: state.trading,
            limiter: state.rateLimiter,
            metrics: state.metrics
        )
        let traced = options.otlpEndpoint != nil
        let application = Application(
            router: router,
            server: ConnectionFront.server(state: state, orders: traced ? nil : orders),
            configuration: ApplicationConfiguration(address: .hostname(host, port: options.port)),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? options.port
                listening.continuation.yield(port)
                writeStandardError("castle serve: listening on http://\(host):\(port)\n")
            },
            logger: logger
        )
        // Shut down in reverse order: the server first (no new orders), then the matcher (its batch
        // committed), then the pools both were using.
        var services = backends.map { backend in
            ServiceGroupConfiguration.ServiceConfiguration(
                service: BackendService(backend: backend),
                successTerminationBehavior: .ignore
            )
        }
        // First, so stopped last: the spans of the requests answered while stopping are exported too.
        // It never stops serve: its failures are warnings on stderr.
        if let endpoint = options.otlpEndpoint {
            let exporter = try ServerTracing.bootstrap(
                endpoint: endpoint,
                serviceName: options.otlpServiceName,
                logFormat: options.logFormat
            )
            services.insert(
                .init(service: exporter, successTerminationBehavior: .ignore, failureTerminationBehavior: .ignore),
                at: 0
            )
            logger.info("tracing to \(ServerTracing.tracesURL(endpoint)) (OTLP/HTTP, protobuf)")
        }
        if options.matcher == .inProcess {
            services.append(
                .init(
                    service: MatcherService(state: state, logger: logger),
                    successTerminationBehavior: .gracefullyShutdownGroup,
                    failureTerminationBehavior: .gracefullyShutdownGroup
                )
            )
        } else {
            services.append(.init(service: LogFollowerService(state: state), successTerminationBehavior: .ignore))
        }
        // Before the application: the group stops services in reverse order, so the streams get their
        // close frames from the stopping server, and the fan-out stops after it.
        let feed = MarketFeedService(feed: state.market.feed, pace: options.streamInterval)
        services.append(.init(service: feed, successTerminationBehavior: .ignore))
        services.append(Listener.service(application, option: "--port", address: "\(host):\(options.port)"))
        // After the application, so stopped first: its streams get their close frames while the API
        // still answers.
        let streamListener = options.streamPort.map { StreamListener(state: state, port: $0, logger: logger) }
        if let streamListener {
            services.append(
                Listener.service(
                    streamListener.application,
                    option: "--stream-port",
                    address: "\(host):\(streamListener.port)"
                )
            )
        }
        if let replay {
            services.append(
                .init(
                    service: FeedReplayService(replay: replay, host: host, listening: listening.stream, logger: logger),
                    successTerminationBehavior: .ignore,
                    failureTerminationBehavior: .gracefullyShutdownGroup
                )
            )
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        do {
            try await group.run()
        } catch {
            await streamListener?.shutDown()
            throw error
        }
        await streamListener?.shutDown()
    }
}

/// An application listening on `address` (given by `option`) as a service. An address it cannot listen
/// on is the error of the option that named it, rather than NIO's `bind(…)` text and the exit code of
/// a bug.
private struct Listener<Application: ApplicationProtocol>: Service {
    let application: Application
    let option: String
    let address: String

    /// The listener in serve's group. When it stops, or fails, the others stop as on SIGTERM (the
    /// matcher commits its batch); a failure is then serve's error.
    static func service(
        _ application: Application,
        option: String,
        address: String
    ) -> ServiceGroupConfiguration.ServiceConfiguration {
        .init(
            service: Listener(application: application, option: option, address: address),
            successTerminationBehavior: .gracefullyShutdownGroup,
            failureTerminationBehavior: .gracefullyShutdownGroup
        )
    }

    func run() async throws {
        do {
            try await application.run()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw CastleError(
                .temporaryFailure,
                "cannot listen on \(address) (\(option)): another process listens there; stop it, or choose another port (0: any free port)"
            )
        } catch let error as IOError where error.errnoCode == EACCES {
            let reason = String(cString: strerror(error.errnoCode))
            throw CastleError(.usage, "cannot listen on \(address) (\(option)): \(reason)")
        } catch let error as IOError where error.errnoCode == EADDRNOTAVAIL {
            throw CastleError(.usage, "cannot listen on \(address) (--host): not an address of this machine")
        } catch is SocketAddressError.UnknownHost {
            throw CastleError(.usage, "cannot listen on \(address) (--host): no such host")
        }
    }
}

/// A backend's background work (``Store/run()``) as a service: ends when the group shuts down.
private struct BackendService: Service {
    let backend: any Backend

    func run() async throws {
        await backend.run()
    }
}
