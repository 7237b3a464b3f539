import CastleSupport
import Logging
import Pipeline
import ServiceLifecycle
import Storage
import Synchronization

/// Whether the service should stop: the group shuts down gracefully (a signal), or it is cancelled
/// because another service failed (the port taken, say). A loop that heeded only the first went on
/// after the second, its sleeps returning at once: 100% of a core, and serve never exited.
func stopAsked() -> Bool {
    Task.isShuttingDownGracefully || Task.isCancelled
}

/// The in-process durable matcher (`castle match --queue`'s worker) as a service of serve's group. It
/// waits for the schema to be current (a store being migrated makes `/ready` say so meanwhile), then
/// runs until the group shuts down, committing the batch in hand. While another matcher owns the
/// partition it stands by (`/ready` 503, orders refused) with its view following the owner's log; when
/// it takes the partition, its view reads the rest of that log before its own commits carry it on.
struct MatcherService: Service {
    let state: ServerState
    let logger: Logger

    func run() async throws {
        while !stopAsked() {
            if await schemaIsCurrent() { break }
            try? await Task.sleep(for: .seconds(1))
        }
        if stopAsked() { return }
        var options = MatchWorker.Options()
        options.instrumentsPath = state.options.instrumentsPath
        options.showProgress = false
        let state = state
        let path = state.path
        options.whileStandingBy = {
            path.matcher.withLock { $0 = .standby }
            _ = try? await state.catchUp()
        }
        // The view reads the log as stored once no other matcher can add to it; the worker's commit hook
        // then carries it on.
        options.onOwned = { () async throws(CastleError) in
            try await state.catchUp()
            path.matcher.withLock { $0 = .active }
        }
        options.onMatched = { batch in path.matched(batch) }
        options.onCommitted = { offset in path.stored(through: offset) }
        options.waitForMessages = { timeout in await path.doorbell.wait(timeoutSeconds: timeout) }
        let worker = MatchWorker(
            store: state.store,
            queue: state.queue,
            options: options,
            shouldStop: { stopAsked() },
            log: { [logger] message in logger.info("\(message)") }
        )
        defer { path.results.failAll(CancellationError()) }
        _ = try await worker.run()
    }

    private func schemaIsCurrent() async -> Bool {
        for backend in [state.store, state.queue] {
            guard let schema = backend.schema else { continue }
            do throws(CastleError) {
                let status = try await Migrator(database: schema, storeName: backend.displayURL).status()
                if !status.isCurrent { return false }
            } catch {
                return false
            }
        }
        return true
    }
}

/// With `--matcher external`: follows the event log that separate `castle match --queue` processes
/// write, for the view and for the replies of waiting requests.
struct LogFollowerService: Service {
    let state: ServerState

    func run() async throws {
        let path = state.path
        defer { path.results.failAll(CancellationError()) }
        // Starting until the view has read the log as stored once.
        while !stopAsked() {
            do throws(CastleError) {
                for lines in try await state.catchUp() { path.followed(lines) }
                path.matcher.withLock { $0 = .external }
                break
            } catch {
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        while !stopAsked() {
            let segments = (try? await state.catchUp()) ?? []
            for lines in segments { path.followed(lines) }
            if segments.isEmpty { try? await Task.sleep(for: .milliseconds(5)) }
        }
    }
}
