import CastleSupport
import CastleTesting
import PostgresBackend
import Storage
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The server the tests use: `CASTLE_TEST_POSTGRES_URL` (bin/test starts a throwaway one). Each test
/// makes a database of its own on it and drops it at the end, so the tests run in parallel.
enum PostgresTestServer {
    static var url: String? { environment("CASTLE_TEST_POSTGRES_URL") }

    /// By hand without a server the tests are skipped; under CI they run and fail.
    static var enabled: Bool { url != nil || environment("CI") != nil }

    static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        let text = String(cString: value)
        return text.isEmpty ? nil : text
    }

    /// Runs `body` with a backend on a fresh, migrated (unless `migrated` is false) database.
    static func withDatabase(
        migrated: Bool = true,
        _ body: (PostgresBackend, StorageURL) async throws -> Void
    ) async throws {
        guard let server = url else {
            Issue.record("CI is set but CASTLE_TEST_POSTGRES_URL is not: the PostgreSQL tests must run in CI")
            return
        }
        let serverURL = try StorageURL(parsing: server)
        let name = "castle_t_" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        try await PostgresBackend.administer(serverURL, "CREATE DATABASE \(name)")
        var databaseURL = serverURL
        databaseURL.path = name
        do {
            let backend = try await PostgresBackend.open(databaseURL)
            try await running(backend) {
                if migrated { try await Migrator(database: backend, storeName: backend.displayURL).up() }
                try await body(backend, databaseURL)
            }
        } catch {
            try? await PostgresBackend.administer(serverURL, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
            throw error
        }
        try await PostgresBackend.administer(serverURL, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }
}

/// Runs `body` with the backend's pool running beside it, then closes the backend, whatever `body` does.
func running(_ backend: PostgresBackend, _ body: () async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await backend.run() }
        do {
            try await body()
        } catch {
            await backend.close()
            group.cancelAll()
            throw error
        }
        await backend.close()
        group.cancelAll()
    }
}

func orderRow(_ line: Int64, _ symbol: String, _ body: String? = nil) -> OrderRow {
    OrderRow(line: line, symbol: symbol, body: body ?? #"{"cmd":"new","line":\#(line),"symbol":"\#(symbol)"}"#)
}

@Suite("PostgreSQL backend", .enabled(if: PostgresTestServer.enabled, "CASTLE_TEST_POSTGRES_URL is not set"))
struct PostgresBackendTests {
    @Test("migrate up, verify, down and up again")
    func migrations() async throws {
        try await PostgresTestServer.withDatabase(migrated: false) { backend, _ in
            #expect(try await backend.appliedMigrations().isEmpty)
            let migrator = Migrator(database: backend, storeName: backend.displayURL)
            await #expect(throws: CastleError.self) { try await migrator.requireCurrent() }
            let applied = try await migrator.up()
            #expect(applied.map(\.version) == Migration.all(for: .postgres).map(\.version))
            #expect(try await migrator.status().isCurrent)
            try await migrator.requireCurrent()
            #expect(try await migrator.up().isEmpty)
            #expect(try await backend.appliedMigrations().map(\.checksum) == applied.map(\.checksum))

            // A migration edited after it ran is refused.
            var edited = Migration.all(for: .postgres)
            edited[0].up.append("SELECT 1")
            let strict = Migrator(database: backend, storeName: backend.displayURL, migrations: edited)
            let refusal = await #expect(throws: CastleError.self) { try await strict.requireCurrent() }
            #expect(refusal?.kind == .config)

            #expect(
                try await migrator.down(to: 1).map(\.version)
                    == Migration.all(for: .postgres).map(\.version).filter { $0 > 1 }.reversed()
            )
            #expect(try await backend.appliedMigrations().map(\.version) == [1])
            #expect(try await migrator.down(to: 0).map(\.version) == [1])
            #expect(try await backend.appliedMigrations().isEmpty)
            // The tables are gone: the store says to migrate.
            let missing = await #expect(throws: CastleError.self) { try await backend.datasets() }
            #expect(missing?.kind == .config)
            try await migrator.up()
            #expect(try await backend.datasets().isEmpty)
        }
    }

    @Test("a failing migration leaves the database as it was")
    func failingMigration() async throws {
        try await PostgresTestServer.withDatabase(migrated: false) { backend, _ in
            let good = Migration(
                version: 1,
                name: "0001_good.postgres.sql",
                up: ["CREATE TABLE first_table (a INT)"],
                down: ["DROP TABLE first_table"]
            )
            let broken = Migration(
                version: 2,
                name: "0002_broken.postgres.sql",
                up: ["CREATE TABLE second_table (b INT)", "CREATE TABLE oops ("],
                down: ["DROP TABLE second_table"]
            )
            let migrator = Migrator(database: backend, storeName: backend.displayURL, migrations: [good, broken])
            let failure = await #expect(throws: CastleError.self) { try await migrator.up() }
            #expect(failure?.message.contains("0002_broken.postgres.sql") == true)
            #expect(failure?.message.contains("nothing was applied") == true)
            let applied = try await backend.appliedMigrations()
            #expect(applied.isEmpty)
            // Neither table exists: creating them again succeeds.
            let again = Migrator(
                database: backend,
                storeName: backend.displayURL,
                migrations: [good, Migration(version: 2, name: "0002_fixed", up: broken.up.dropLast(), down: [])]
            )
            let reapplied = try await again.up()
            #expect(reapplied.map(\.version) == [1, 2])
        }
    }

    @Test("ingest is idempotent, transactional and paged by line")
    func ingest() async throws {
        try await PostgresTestServer.withDatabase { backend, _ in
            let tricky = "{\"note\":\"back\\\\slash\\ttab\",\"raw\":\"a\tb\",\"u\":\"é€😀\"}"
            let first = try await backend.beginIngest(dataset: "day1")
            try await first.append([orderRow(1, "BTC-USD"), orderRow(2, "ETH-USD", tricky)])
            try await first.append([orderRow(3, "BTC-USD"), orderRow(2, "ETH-USD", "duplicate")])
            #expect(try await first.commit() == 3)

            let second = try await backend.beginIngest(dataset: "day1")
            try await second.append([orderRow(3, "BTC-USD"), orderRow(4, "SOL-USD")])
            #expect(try await second.commit() == 1)

            let dropped = try await backend.beginIngest(dataset: "day2")
            try await dropped.append([orderRow(1, "BTC-USD")])
            await dropped.rollback()

            #expect(try await backend.datasets() == [DatasetInfo(name: "day1", rows: 4)])
            let page1 = try await backend.readDataset("day1", afterLine: 0, limit: 2)
            #expect(page1.map(\.line) == [1, 2])
            #expect(page1[1].body == tricky)
            #expect(page1[1].symbol == "ETH-USD")
            let page2 = try await backend.readDataset("day1", afterLine: 2, limit: 10)
            #expect(page2.map(\.line) == [3, 4])
            #expect(try await backend.readDataset("day2", afterLine: 0, limit: 10).isEmpty)

            // Increasing runs go straight to the table, others through the staging table: the first row
            // of a line wins either way.
            let mixed = try await backend.beginIngest(dataset: "day3")
            try await mixed.append([orderRow(10, "A"), orderRow(11, "A")])
            try await mixed.append([orderRow(5, "A")])
            try await mixed.append([orderRow(12, "A"), orderRow(13, "A")])
            try await mixed.append([orderRow(13, "A", "late duplicate"), orderRow(11, "A", "late duplicate")])
            #expect(try await mixed.commit() == 5)
            let day3 = try await backend.readDataset("day3", afterLine: 0, limit: 10)
            #expect(day3.map(\.line) == [5, 10, 11, 12, 13])
            #expect(day3.allSatisfy { $0.body != "late duplicate" })
        }
    }

    @Test("enqueue, read as a log, the cursor, messages in flight and dead letters")
    func queue() async throws {
        try await PostgresTestServer.withDatabase { backend, _ in
            let session = try await backend.beginEnqueue(source: "day1.ndjson")
            try await session.append((1...5).map { orderRow($0, "BTC-USD") })
            #expect(try await session.commit() == 5)
            let again = try await backend.beginEnqueue(source: "day1.ndjson")
            try await again.append((4...6).map { orderRow($0, "BTC-USD") })
            #expect(try await again.commit() == 1)
            #expect(try await backend.depth(partition: nil) == 6)

            let batch = try await backend.read(partition: .whole, after: 0, limit: 4)
            #expect(batch.map(\.id) == [1, 2, 3, 4])
            #expect(batch.map(\.line) == [1, 2, 3, 4])
            #expect(batch.allSatisfy { $0.attempts == 0 && $0.source == "day1.ndjson" })
            #expect(try await backend.read(partition: .whole, after: 4, limit: 10).map(\.id) == [5, 6])

            // Done through 2, 3 and 4 in flight; the owner dies twice with them: dead after 2 deliveries.
            try await backend.markConsumed(partition: .whole, through: 2, inFlight: 4)
            #expect(try await backend.depth(partition: nil) == 4)
            var recovered = try await backend.recoverInFlight(partition: .whole, after: 2, maxAttempts: 2)
            #expect(recovered.inFlight == 4 && recovered.attempts == 1)
            // A restart that dies before taking them back into flight delivered nothing: no charge.
            recovered = try await backend.recoverInFlight(partition: .whole, after: 2, maxAttempts: 2)
            #expect(recovered.inFlight == 0 && recovered.attempts == 0)
            #expect(try await backend.deadLetters().isEmpty)
            // Taken back into flight, and the owner dies again.
            try await backend.markConsumed(partition: .whole, through: 2, inFlight: 4)
            recovered = try await backend.recoverInFlight(partition: .whole, after: 2, maxAttempts: 2)
            #expect(recovered.inFlight == 4 && recovered.attempts == 0)
            #expect(
                try await backend.deadLetters()
                    == [3, 4].map { line in
                        DeadLetter(
                            id: line,
                            source: "day1.ndjson",
                            line: line,
                            body: orderRow(line, "BTC-USD").body,
                            attempts: 2,
                            error: "not acknowledged after 2 deliveries"
                        )
                    }
            )
            #expect(try await backend.depth(partition: nil) == 2)
            #expect(try await backend.read(partition: .whole, after: 2, limit: 10).map(\.id) == [5, 6])
        }
    }

    @Test("read and depth keep to their partition")
    func partitions() async throws {
        try await PostgresTestServer.withDatabase { backend, _ in
            let symbols = ["BTC-USD", "ETH-USD", "SOL-USD", "XRP-USD", "ADA-USD", "DOGE-USD", "AAPL", "MSFT"]
            let session = try await backend.beginEnqueue(source: "mixed")
            try await session.append((1...40).map { orderRow(Int64($0), symbols[$0 % symbols.count]) })
            #expect(try await session.commit() == 40)
            var seen: [Int64] = []
            for index in 0..<3 {
                let partition = Partition(index: index, count: 3)
                let messages = try await backend.read(partition: partition, after: 0, limit: 100)
                #expect(messages.allSatisfy { partition.contains(symbol: $0.symbol) })
                #expect(messages.map(\.id) == messages.map(\.id).sorted())
                #expect(try await backend.depth(partition: partition) == messages.count)
                seen += messages.map(\.id)
            }
            #expect(seen.sorted() == Array(1...40))
        }
    }

    @Test("commitMatch writes one batch and refuses a stale offset")
    func commitMatch() async throws {
        try await PostgresTestServer.withDatabase { backend, _ in
            #expect(try await backend.loadMatcherState(consumer: "m0") == MatcherState())
            let resting = RestingOrderRow(
                id: UInt64.max,
                symbol: "BTC-USD",
                side: 1,
                price: 100,
                qty: 5,
                account: "acct",
                postOnly: true,
                stp: 2,
                priority: 7
            )
            let gone = RestingOrderRow(
                id: 9,
                symbol: "BTC-USD",
                side: 0,
                price: 99,
                qty: 1,
                account: "",
                postOnly: false,
                stp: 0,
                priority: 3
            )
            let trade = TradeRow(
                seq: 2,
                symbol: "BTC-USD",
                price: 100,
                qty: 1,
                maker: UInt64.max - 1,
                taker: 42,
                side: "buy",
                ts: nil
            )
            try await backend.commitMatch(
                MatchCommit(
                    consumer: "m0",
                    offset: 10,
                    lastSeq: 3,
                    events: EventSegment(firstSeq: 1, lastSeq: 3, body: Array("a\nb\nc\n".utf8)),
                    trades: [trade],
                    upserts: [gone, resting]
                ),
                previousOffset: 0
            )
            let stale = await #expect(throws: CastleError.self) {
                try await backend.commitMatch(
                    MatchCommit(consumer: "m0", offset: 11, lastSeq: 4, events: nil),
                    previousOffset: 0
                )
            }
            #expect(stale?.kind == .temporaryFailure, "a lost partition is exit 75")
            var moved = resting
            moved.qty = 2
            try await backend.commitMatch(
                MatchCommit(
                    consumer: "m0",
                    offset: 12,
                    lastSeq: 5,
                    events: EventSegment(firstSeq: 4, lastSeq: 5, body: [0, 255]),
                    trades: [TradeRow(seq: 5, symbol: "X", price: 1, qty: 1, maker: 1, taker: 2, side: "sell", ts: 77)],
                    upserts: [moved],
                    deletes: [9]
                ),
                previousOffset: 10
            )
            let state = try await backend.loadMatcherState(consumer: "m0")
            #expect(state.offset == 12)
            #expect(state.lastSeq == 5)
            #expect(state.orders == [moved])
            #expect(try await backend.eventConsumers() == ["m0"])
            #expect(try await backend.readEvents(consumer: "m0", fromSeq: 0, limit: 10).map(\.firstSeq) == [1, 4])
            #expect(try await backend.readEvents(consumer: "m0", fromSeq: 4, limit: 10).map(\.body) == [[0, 255]])
            let trades = try await backend.readTrades(consumer: "m0", afterSeq: 0, limit: 10)
            #expect(trades.first == trade)
            #expect(trades.map(\.ts) == [nil, 77])
            #expect(try await backend.readTrades(consumer: "m0", afterSeq: 2, limit: 10).map(\.seq) == [5])
        }
    }

    @Test("a partition has one owner; a standby takes over when it goes")
    func partitionLock() async throws {
        try await PostgresTestServer.withDatabase { backend, url in
            let other = try await PostgresBackend.open(url)
            let partition = Partition(index: 1, count: 4)
            let owner = try #require(try await backend.acquire(partition: partition, wait: false))
            #expect(try await other.acquire(partition: partition, wait: false) == nil)
            // Another partition is free.
            let neighbour = try await other.acquire(partition: Partition(index: 2, count: 4), wait: false)
            #expect(neighbour != nil)
            await neighbour?.release()

            let standby = Task { try await other.acquire(partition: partition, wait: true) }
            try await Task.sleep(for: .milliseconds(200))
            await owner.release()
            let taken = try await standby.value
            #expect(taken != nil)
            #expect(try await backend.acquire(partition: partition, wait: false) == nil)
            await taken?.release()
            let back = try await backend.acquire(partition: partition, wait: false)
            #expect(back != nil)
            await back?.release()
            await other.close()
        }
    }

    @Test("waitForMessages wakes up on an enqueue from another process")
    func listen() async throws {
        try await PostgresTestServer.withDatabase { backend, url in
            let producer = try await PostgresBackend.open(url)
            // Idle: returns after the timeout.
            try await backend.waitForMessages(timeoutSeconds: 0.2)
            let clock = ContinuousClock()
            let start = clock.now
            let waiter = Task { try await backend.waitForMessages(timeoutSeconds: 30) }
            try await Task.sleep(for: .milliseconds(100))
            let session = try await producer.beginEnqueue(source: "live")
            try await session.append([orderRow(1, "BTC-USD")])
            #expect(try await session.commit() == 1)
            try await waiter.value
            #expect(clock.now - start < .seconds(20))
            #expect(try await backend.read(partition: .whole, after: 0, limit: 10).count == 1)
            await producer.close()
        }
    }
}

@Test("an unreachable server is unavailable, named without its password")
func postgresUnreachable() async throws {
    let error = await #expect(throws: CastleError.self) {
        _ = try await StorageRegistry.open("postgres://castle:s3cret-pw@127.0.0.1:1/nowhere")
    }
    // The registry knows postgres:// only once the plugin registered; either way nothing leaks.
    #expect(error?.message.contains("s3cret-pw") == false)
    PostgresPlugin.register()
    let registered = await #expect(throws: CastleError.self) {
        _ = try await StorageRegistry.open("postgres://castle:s3cret-pw@127.0.0.1:1/nowhere")
    }
    #expect(registered?.kind == .unavailable)
    #expect(registered?.message.contains("127.0.0.1:1") == true)
    #expect(registered?.message.contains("cannot connect") == true)
    #expect(registered?.message.contains("s3cret-pw") == false)
}

/// The shared conformance suites (storage, reconcile, ledger), each check on a fresh database.
@Suite(
    "PostgreSQL backend conformance",
    .enabled(if: PostgresTestServer.enabled, "CASTLE_TEST_POSTGRES_URL is not set")
)
struct PostgresConformanceTests {
    @Test(arguments: StorageConformance.checkNames)
    func postgres(_ check: String) async throws {
        try await PostgresTestServer.withDatabase { backend, _ in
            try await StorageConformance.run(check, on: backend)
        }
    }

    @Test(arguments: ReconcileConformance.checkNames)
    func postgresReconcile(_ check: String) async throws {
        try await PostgresTestServer.withDatabase { backend, _ in
            try await ReconcileConformance.run(check, on: backend)
        }
    }

    @Test(arguments: LedgerConformance.checkNames)
    func postgresLedger(_ check: String) async throws {
        try await PostgresTestServer.withDatabase { backend, _ in
            try await LedgerConformance.run(check, on: backend)
        }
    }
}
