public import CastleSupport
import Logging
import ServiceLifecycle
public import Storage
import Synchronization
import UnixSignals

/// Holds the worker's outcome for the caller of the service group.
final class Outcome: Sendable {
    let value = Mutex<Result<MatchWorker.Summary, CastleError>?>(nil)
}

extension MatchWorker {
    /// Runs the worker under a service group that turns SIGTERM and SIGINT into a graceful stop: the
    /// batch in hand is committed and acked, the partition released, and the run ends with its summary.
    public static func runUntilSignalled(
        store: any Backend,
        queue: any Backend,
        options: Options
    ) async throws(CastleError) -> Summary {
        let result = Outcome()
        let service = WorkerService(store: store, queue: queue, options: options, result: result)
        var logger = Logger(label: "castle.match")
        logger.logLevel = .error
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        do {
            try await group.run()
        } catch {
            if let castle = error as? CastleError { throw castle }
            throw CastleError(.software, "\(error)")
        }
        switch result.value.withLock({ $0 }) {
        case .success(let summary): return summary
        case .failure(let error): throw error
        case nil: throw CastleError(.software, "the matcher stopped without a result")
        }
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
            let summary = try await worker.run()
            result.value.withLock { $0 = .success(summary) }
        } catch {
            result.value.withLock { $0 = .failure(error) }
        }
    }
}
