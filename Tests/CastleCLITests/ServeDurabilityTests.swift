import Foundation
import NIOHTTP1
import Synchronization
import Testing

/// What an acknowledged order survives: a graceful stop mid-load, and a kill -9 mid-load then a restart.
@Suite(.serialized) struct ServeDurabilityTests {
    @Test func sigtermMidLoadLosesNoAcknowledgedOrder() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir)
        let acked = Acked(signalAt: 300)
        async let loading: Void = placeOrders(serve.base, clients: 8, acked: acked)
        await acked.reachedSignalPoint()
        serve.server.signal(SIGTERM)
        await loading
        #expect(await serve.server.wait() == 0, "\(serve.server.stderr)")
        let ids = acked.ids
        #expect(ids.count >= 300)
        let logged = try await acceptedIDs(serve.storeURL)
        let missing = ids.filter { logged[$0] != 1 }
        #expect(
            missing.isEmpty,
            "\(missing.count) acknowledged orders not in the log exactly once, e.g. \(missing.prefix(5))"
        )
    }

    @Test func killMidLoadThenRestartKeepsEveryAcknowledgedOrderOnce() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir)
        let acked = Acked(signalAt: 300)
        async let loading: Void = placeOrders(serve.base, clients: 8, acked: acked)
        await acked.reachedSignalPoint()
        #expect(await serve.server.killHard())
        await loading
        let ids = acked.ids
        #expect(ids.count >= 300)

        let restarted = try await ServeProcess.start(dir, migrate: false, stderrName: "serve2.err")
        let caughtUp = try await eventually("the restarted matcher drains the queue") {
            let ready = try await http(.GET, restarted.base + "/ready")
            return ready.status == 200 && ready.json["matcher_lag"] as? Int == 0
        }
        #expect(caughtUp)
        // The restarted server's market data is rebuilt from the stored event log.
        let book = try await http(.GET, restarted.base + "/v1/book/S0")
        #expect(book.status == 200, "\(book.body)")
        #expect((book.json["seq"] as? Int ?? 0) > 0)
        #expect(await restarted.stop() == 0)
        let logged = try await acceptedIDs(restarted.storeURL)
        let missing = ids.filter { logged[$0] != 1 }
        #expect(
            missing.isEmpty,
            "\(missing.count) acknowledged orders not in the log exactly once, e.g. \(missing.prefix(5))"
        )
        let duplicated = logged.filter { $0.value > 1 }
        #expect(duplicated.isEmpty, "orders accepted twice: \(duplicated.prefix(5))")
    }
}

/// Acknowledged ids from concurrent clients, and a wait for the count to reach a point.
final class Acked: Sendable {
    private let state = Mutex<(ids: [Int], waiter: CheckedContinuation<Void, Never>?, fired: Bool)>(([], nil, false))
    let signalAt: Int

    init(signalAt: Int) {
        self.signalAt = signalAt
    }

    var ids: [Int] { state.withLock { $0.ids } }

    func add(_ id: Int) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.ids.append(id)
            guard state.ids.count >= signalAt, !state.fired else { return nil }
            state.fired = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    func reachedSignalPoint() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if state.fired { return true }
                state.waiter = continuation
                return false
            }
            if now { continuation.resume() }
        }
    }
}
