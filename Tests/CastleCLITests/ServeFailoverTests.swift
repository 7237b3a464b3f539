import Foundation
import NIOHTTP1
import Testing

/// The failover drill (docs/serve.md): two `castle serve` processes on one PostgreSQL store. The first
/// one's matcher owns the partition; the second stands by (`/ready` 503, orders refused). The active one
/// is killed with SIGKILL under load; the standby takes the partition, and no acknowledged order is lost.
@Suite(.serialized, .enabled(if: TestStore.postgresEnabled, TestStore.postgresSkipReason))
struct ServeFailoverTests {
    /// `/ready` of `base` answers `status` with `"matcher": matcher` (and no queued message, if `drained`).
    private static func ready(
        _ base: String,
        _ status: Int,
        matcher: String,
        drained: Bool = false
    ) async throws
        -> Bool
    {
        let ready = try await http(.GET, base + "/ready")
        return ready.status == status && ready.json["matcher"] as? String == matcher
            && (!drained || ready.json["matcher_lag"] as? Int == 0)
    }

    /// Client order ids on PostgreSQL: ServeCLITests' retry check, against this store.
    @Test func aRetryFindsTheFirstOrderOnPostgreSQL() async throws {
        let dir = try TemporaryDirectory()
        let store = try await TestStore.make("postgres", in: dir)
        try await retryFindsTheFirstOrder(dir, storeURL: store.url)
    }

    @Test func theStandbyTakesOverAndNoAcknowledgedOrderIsLost() async throws {
        let dir = try TemporaryDirectory()
        let store = try await TestStore.make("postgres", in: dir)
        let a = try await ServeProcess.start(dir, storeURL: store.url, stderrName: "a.err")
        try #require(
            try await eventually("A's matcher owns the partition") {
                try await Self.ready(a.base, 200, matcher: "active")
            }
        )
        let b = try await ServeProcess.start(dir, storeURL: store.url, migrate: false, stderrName: "b.err")
        try #require(try await eventually("B stands by") { try await Self.ready(b.base, 503, matcher: "standby") })

        // A standby refuses an order at once (its verdict would come from A's matcher, which B does not
        // hear) and enqueues nothing: no event ever names this account.
        let refused = try await http(
            .POST,
            b.base + "/v1/orders",
            account: "standby-probe",
            body: #"{"symbol":"S0","side":"buy","price":"1","qty":"1"}"#
        )
        #expect(refused.status == 503 && refused.errorCode == "not_ready", "\(refused.body)")
        #expect(refused.body.contains("standing by"), "\(refused.body)")

        // Load on A, some orders crossing; A dies mid-load.
        let acked = Acked(signalAt: 300)
        async let loading: Void = placeOrders(a.base, clients: 8, acked: acked)
        await acked.reachedSignalPoint()
        #expect(await a.server.killHard(), "A was running when killed")
        await loading
        let ackedByA = acked.ids
        #expect(ackedByA.count >= 300)

        // B takes the partition, matches what A left in the queue, and its view is the store's.
        try #require(
            try await eventually("B takes over and drains the queue") {
                try await Self.ready(b.base, 200, matcher: "active", drained: true)
            }
        )
        #expect(b.server.stderr.contains("took over partition"), "\(b.server.stderr)")
        try await Self.expectBooksEqualEvents(b.base, store.url, when: "right after the takeover")

        // More orders, now on B: every one acknowledged.
        let more = Acked(signalAt: 1)
        await placeOrders(b.base, clients: 4, perClient: 25, acked: more)
        #expect(more.ids.count == 100, "B acknowledged every order: \(more.ids.count) of 100")
        try await Self.expectBooksEqualEvents(b.base, store.url, when: "after B's own orders")
        #expect(await b.stop() == 0, "\(b.server.stderr)")

        // Every acknowledged order is in the log exactly once, the seqs run 1, 2, 3, ..., and the log is
        // what castle match gives for the queue's commands in queue order.
        let logged = try await acceptedIDs(store.url)
        let missing = (ackedByA + more.ids).filter { logged[$0] != 1 }
        #expect(missing.isEmpty, "\(missing.count) acknowledged orders not in the log once, e.g. \(missing.prefix(5))")
        #expect(logged.allSatisfy { $0.value == 1 }, "no order accepted twice")
        let events = try await CastleProcess.run(["events", "--store", store.url])
        #expect(events.status == 0, "\(events.stderr)")
        let seqs = events.lines.map { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["seq"] as? Int
        }
        #expect(seqs == Array(1...seqs.count), "seqs contiguous from 1")
        #expect(!events.stdoutText.contains("standby-probe"), "the standby enqueued nothing")
        #expect(events.stdoutText.contains(#""event":"trade""#), "the load traded")

        let psql = try #require(CastleProcess.which("psql"), "psql is not on PATH (Debian: postgresql-client)")
        let queued = try await CastleProcess.shell([
            psql, store.url, "-Atc", "SELECT body FROM queue_messages ORDER BY id",
        ])
        #expect(queued.status == 0, "\(queued.stderr)")
        let commands = try dir.write("queued.ndjson", queued.stdoutText)
        let reference = try await CastleProcess.run(["match", "-i", commands, "-q"])
        #expect(reference.status == 0, "\(reference.stderr)")
        let difference = firstDifference(events.stdout, reference.stdout)
        #expect(difference == nil, "the log is castle match of the queue: \(difference ?? "")")
    }

    /// `GET /v1/book/{symbol}` of the load's three symbols equals the books kept from the stored events.
    private static func expectBooksEqualEvents(_ base: String, _ storeURL: String, when: String) async throws {
        let events = try await CastleProcess.run(["events", "--store", storeURL])
        #expect(events.status == 0, "\(events.stderr)")
        var books = EventBooks()
        for line in events.lines {
            try books.apply(#require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]))
        }
        #expect(books.resting > 0, "orders rest, so the comparison means something")
        for symbol in ["S0", "S1", "S2"] {
            let book = try await http(.GET, base + "/v1/book/\(symbol)?depth=1000")
            #expect(book.status == 200, "\(book.body)")
            for (key, side) in [("bids", "buy"), ("asks", "sell")] {
                let served = book.json[key] as? [[String]] ?? []
                #expect(served == books.levels(symbol, side: side), "\(symbol) \(key) \(when): \(book.body)")
            }
        }
    }
}
