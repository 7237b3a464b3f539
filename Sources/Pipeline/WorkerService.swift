public import CastleSupport
import Logging
import ServiceLifecycle
import Storage
import Synchronization
import UnixSignals

/// Holds the worker's outcome for the caller of the service group.
final class Outcome: Sendable {
    let value = Mutex<Result<MatchWorker.Summary, CastleError>?>(nil)
}

extension MatchWorker {
    /// Opens the store at `storeURL` and the queue at `queueURL` (the same backend when the URLs are
    /// equal), and runs the worker under a service group beside the backends' background work (the
    /// PostgreSQL connection pool), as Hummingbird runs its application beside its services. SIGTERM
    /// and SIGINT stop it gracefully: the batch in hand is committed, the partition released, the pool
    /// shut down after the worker, and the run ends with its summary. Both backends are closed on every
    /// path. Refuses a store or queue whose schema is not this binary's.
    public static func runUntilSignalled(
        storeURL: String,
        queueURL: String,
        options: Options
    ) async throws(CastleError) -> Summary {
        let store = try await StorageRegistry.open(storeURL)
        let queue: any Backend
        if queueURL == storeURL {
            queue = store
        } else {
            do throws(CastleError) {
                queue = try await StorageRegistry.open(queueURL)
            } catch {
                await store.close()
                throw error
            }
        }
        let backends: [any Backend] = queue === store ? [store] : [store, queue]
        let result = Outcome()
        var logger = Logger(label: "castle.match")
        logger.logLevel = .error
        // Shut down in reverse order: the worker first, then the pools it was using.
        var services = backends.map { backend in
            ServiceGroupConfiguration.ServiceConfiguration(
                service: BackendService(backend: backend),
                successTerminationBehavior: .ignore
            )
        }
        services.append(
            .init(
                service: WorkerService(store: store, queue: queue, options: options, result: result),
                successTerminationBehavior: .gracefullyShutdownGroup
            )
        )
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        var failure: CastleError?
        do {
            try await group.run()
        } catch {
            failure = error as? CastleError ?? CastleError(.software, "\(error)")
        }
        for backend in backends { await backend.close() }
        if let failure { throw failure }
        switch result.value.withLock({ $0 }) {
        case .success(let summary): return summary
        case .failure(let error): throw error
        case nil: throw CastleError(.software, "the matcher stopped without a result")
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

/// Backends are Sendable; the summary crosses back through the mutex.
private struct WorkerService: Service {
    let store: any Backend
    let queue: any Backend
    let options: MatchWorker.Options
    let result: Outcome

    func run() async throws {
        let worker = MatchWorker(store: store, queue: queue, options: options) { Task.isShuttingDownGracefully }
        do throws(CastleError) {
            for backend in [store, queue] {
                if let schema = backend.schema {
                    try await Migrator(database: schema, storeName: backend.displayURL).requireCurrent()
                }
            }
            let summary = try await worker.run()
            result.value.withLock { $0 = .success(summary) }
        } catch {
            result.value.withLock { $0 = .failure(error) }
        }
    }
}
