import Foundation
import NIOHTTP1
import Synchronization
import Testing

/// What an acknowledged order survives: a graceful stop mid-load, and a kill -9 mid-load then a restart.
@Suite(.serialized) struct ServeDurabilityTests {
    /// Posts orders from `clients` concurrent clients until a request fails (the server went away);
    /// returns the ids the server acknowledged (201). `acked` is told each one as it comes.
    private func load(_ base: String, clients: Int, acked: Acked) async {
        await withTaskGroup(of: Void.self) { group in
            for client in 0..<clients {
                group.addTask {
                    var n = 0
                    while true {
                        n += 1
                        let side = n % 2 == 0 ? "buy" : "sell"
                        let price = 100 + (n % 7) - 3
                        let body = #"{"symbol":"S\#(client % 3)","side":"\#(side)","price":"\#(price)","qty":"1"}"#
                        guard
                            let answer = try? await http(
                                .POST,
                                base + "/v1/orders",
                                account: "c\(client)",
                                body: body,
                                timeoutSeconds: 10
                            ),
                            answer.status == 201, let id = answer.json["id"] as? Int
                        else { return }
                        acked.add(id)
                    }
                }
            }
        }
    }

    /// The ids of `accepted` events in the store's event log, with how many times each appears.
    private func acceptedIDs(_ storeURL: String) async throws -> [Int: Int] {
        let log = try await CastleProcess.run(["events", "--store", storeURL])
        #expect(log.status == 0, "\(log.stderr)")
        var counts: [Int: Int] = [:]
        for line in log.lines {
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                object["event"] as? String == "accepted", let id = object["id"] as? Int
            else { continue }
            counts[id, default: 0] += 1
        }
        return counts
    }

    @Test func sigtermMidLoadLosesNoAcknowledgedOrder() async throws {
        let dir = try TemporaryDirectory()
        let serve = try await ServeProcess.start(dir)
        let acked = Acked(signalAt: 300)
        async let loading: Void = load(serve.base, clients: 8, acked: acked)
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
        async let loading: Void = load(serve.base, clients: 8, acked: acked)
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
