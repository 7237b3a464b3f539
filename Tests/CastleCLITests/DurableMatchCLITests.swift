import Foundation
import Testing

/// A store the durable-matcher tests run against: a SQLite file, or a fresh database on the throwaway
/// PostgreSQL server that bin/test starts (`CASTLE_TEST_POSTGRES_URL`).
struct TestStore {
    let url: String

    static var postgresServer: String? {
        ProcessInfo.processInfo.environment["CASTLE_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The backends a test runs on: SQLite always; PostgreSQL when bin/test started one, and under CI,
    /// where its absence is a failure (``make(_:in:)``), never a silent pass.
    static var kinds: [String] {
        postgresServer != nil || ProcessInfo.processInfo.environment["CI"] != nil ? ["sqlite", "postgres"] : ["sqlite"]
    }

    /// Whether the PostgreSQL variant of a test can run; the reason shows beside it when it is skipped.
    static var postgresEnabled: Bool { kinds.contains("postgres") }

    static let postgresSkipReason: Comment =
        "PostgreSQL is not configured: bin/test starts one; by hand, set CASTLE_TEST_POSTGRES_URL"

    static func make(_ kind: String, in directory: TemporaryDirectory) async throws -> TestStore {
        if kind == "sqlite" { return TestStore(url: "sqlite://\(directory.path("castle.db"))") }
        let server = try #require(
            postgresServer,
            "CASTLE_TEST_POSTGRES_URL is not set: bin/test starts PostgreSQL for these tests, and CI must run them"
        )
        let psql = try #require(CastleProcess.which("psql"), "psql is not on PATH (Debian: postgresql-client)")
        let name = "castle_\(UUID().uuidString.prefix(8).lowercased())"
        let created = try await CastleProcess.shell([psql, server, "-qc", "CREATE DATABASE \(name)"])
        try #require(created.status == 0, "CREATE DATABASE: \(created.stderr)")
        // The server's URL with this database in place of its own, keeping any query (connect_timeout).
        let query = server.firstIndex(of: "?").map { server[$0...] } ?? ""
        let base = server.prefix { $0 != "?" }
        let slash = try #require(base.lastIndex(of: "/"))
        return TestStore(url: "\(base[..<slash])/\(name)\(query)")
    }
}

/// Where two outputs first differ, with the lines there; nil when they are byte-identical. Swift Testing's
/// own diff of two large `Data` values runs for minutes, so the tests compare through this.
func firstDifference(_ actual: Data, _ expected: Data) -> String? {
    guard actual != expected else { return nil }
    let offset =
        zip(actual, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        ?? min(actual.count, expected.count)
    func line(_ data: Data) -> String {
        let start = data[..<min(offset, data.count)].lastIndex(of: 10).map { $0 + 1 } ?? 0
        let end = data[min(offset, data.count)...].firstIndex(of: 10) ?? data.count
        return String(decoding: data[start..<end], as: UTF8.self)
    }
    return "\(actual.count) bytes against \(expected.count); first difference at byte \(offset):\n"
        + "  got:      \(line(actual))\n  expected: \(line(expected))"
}

@Suite(.serialized) struct DurableMatchCLITests {
    // Each scenario runs on SQLite and, in a suite that shows as skipped with its reason when no server is
    // configured, on PostgreSQL.
    @Suite("on SQLite") struct OnSQLite {
        @Test func anUninterruptedRunEqualsCastleMatch() async throws {
            try await DurableMatchCLITests.anUninterruptedRunEqualsCastleMatch("sqlite")
        }
        @Test func killedAtRandomItResumesExactly() async throws {
            try await DurableMatchCLITests.killedAtRandomItResumesExactly("sqlite")
        }
        @Test func theStandbyTakesOverWhenTheOwnerDies() async throws {
            try await DurableMatchCLITests.theStandbyTakesOverWhenTheOwnerDies("sqlite")
        }
        @Test func sigtermStopsCleanly() async throws { try await DurableMatchCLITests.sigtermStopsCleanly("sqlite") }
        @Test func aPoisonMessageEndsInTheDeadLetters() async throws {
            try await DurableMatchCLITests.aPoisonMessageEndsInTheDeadLetters("sqlite")
        }
    }

    @Suite("on PostgreSQL", .enabled(if: TestStore.postgresEnabled, TestStore.postgresSkipReason))
    struct OnPostgres {
        @Test func anUninterruptedRunEqualsCastleMatch() async throws {
            try await DurableMatchCLITests.anUninterruptedRunEqualsCastleMatch("postgres")
        }
        @Test func killedAtRandomItResumesExactly() async throws {
            try await DurableMatchCLITests.killedAtRandomItResumesExactly("postgres")
        }
        @Test func theStandbyTakesOverWhenTheOwnerDies() async throws {
            try await DurableMatchCLITests.theStandbyTakesOverWhenTheOwnerDies("postgres")
        }
        @Test func sigtermStopsCleanly() async throws { try await DurableMatchCLITests.sigtermStopsCleanly("postgres") }
        @Test func aPoisonMessageEndsInTheDeadLetters() async throws {
            try await DurableMatchCLITests.aPoisonMessageEndsInTheDeadLetters("postgres")
        }
    }

    /// A day with several symbols and accounts, the reference run of `castle match` over it, and a store
    /// holding it (or its first `queued` lines) in the queue.
    struct Day {
        let directory: TemporaryDirectory
        let store: TestStore
        let reference: Data
        let referenceBook: String
        let lines: [Substring]
    }

    static func prepare(_ kind: String, count: Int, queued: Int? = nil) async throws -> Day {
        let directory = try TemporaryDirectory()
        let store = try await TestStore.make(kind, in: directory)
        let path = directory.path("day.ndjson")
        let generated = try await CastleProcess.run([
            "generate", "orders", "--seed", "23", "--count", "\(count)", "-o", path,
        ])
        #expect(generated.status == 0)
        let reference = try await CastleProcess.run([
            "match", "-i", path, "-q", "--book-out", directory.path("ref-book.json"),
        ])
        #expect(reference.status == 0)
        let migrate = try await CastleProcess.run(["migrate", "up", "--store", store.url])
        #expect(migrate.status == 0, "\(migrate.stderr)")
        let day = Day(
            directory: directory,
            store: store,
            reference: reference.stdout,
            referenceBook: try directory.read("ref-book.json"),
            lines: try directory.read("day.ndjson").split(separator: "\n", omittingEmptySubsequences: false)
        )
        try await enqueue(day, lines: 0..<(queued ?? count), name: "first")
        return day
    }

    /// Enqueues `lines` of the day (0-based), each on its own line number: the others are left blank in
    /// the file that is ingested, and blank lines are no rows.
    static func enqueue(_ day: Day, lines: Range<Int>, name: String) async throws {
        let text = day.lines.indices.map { lines.contains($0) ? String(day.lines[$0]) : "" }.joined(separator: "\n")
        let part = try day.directory.write("\(name).ndjson", text)
        let ingest = try await CastleProcess.run(["ingest", part, "--to", "queue", "--store", day.store.url, "-q"])
        #expect(ingest.status == 0, "\(ingest.stderr)")
    }

    static func events(_ day: Day) async throws -> Data {
        let events = try await CastleProcess.run(["events", "--store", day.store.url])
        #expect(events.status == 0, "\(events.stderr)")
        return events.stdout
    }

    static func anUninterruptedRunEqualsCastleMatch(_ kind: String) async throws {
        let day = try await Self.prepare(kind, count: 5_000)
        let run = try await CastleProcess.run(
            [
                "match", "--queue", day.store.url, "--store", day.store.url, "--drain", "--batch", "700", "--book-out",
                day.directory.path("book.json"),
            ]
        )
        #expect(run.status == 0, "\(run.stderr)")
        let log = try await Self.events(day)
        #expect(
            firstDifference(log, day.reference) == nil,
            "the stored event log is castle match's output, byte for byte"
        )
        #expect(try day.directory.read("book.json") == day.referenceBook)
        let again = try await CastleProcess.run([
            "match", "--queue", day.store.url, "--store", day.store.url, "--drain",
        ])
        #expect(again.status == 0)
        #expect(again.stderr.contains("0 messages"), "a drained queue gives nothing more: \(again.stderr)")
        #expect(firstDifference(try await Self.events(day), day.reference) == nil)
    }

    /// Killed with SIGKILL at random moments, at least ten times over one stream, and started again each
    /// time: the final event log (hence the trades) and the book equal an uninterrupted run's. The moments
    /// are random on purpose (some kills land while the worker starts or rebuilds its books, most while it
    /// works). No assertion depends on how fast the machine is: a slower worker is only killed more, and a
    /// worker that drains the queue before its kill gets the next part of the day, and the waits before
    /// the kills that follow are halved (the day goes into the queue in parts as the kills go on, so a fast
    /// machine still sees its ten kills: with waits of 50–250 ms only, a quiet machine once drained all
    /// twelve parts with eight kills).
    static func killedAtRandomItResumesExactly(_ kind: String) async throws {
        let count = 120_000
        let part = 10_000
        let day = try await Self.prepare(kind, count: count, queued: part)
        var queued = part
        var random = SystemRandomNumberGenerator()
        var kills = 0
        var runs = 0
        // The longest wait before a kill, in ms; each wait is random between a fifth of it and it.
        var longest = 250
        while kills < 12 && runs < 200 {
            runs += 1
            let worker = try Background(
                // Kills are not poison: enough attempts that no message is ever dead-lettered here.
                [
                    "match", "--queue", day.store.url, "--store", day.store.url, "--drain", "--batch", "200",
                    "--max-attempts", "1000", "-q",
                ],
                stderrPath: day.directory.path("worker-\(runs).log")
            )
            try await Task.sleep(for: .milliseconds(Int.random(in: (longest / 5)...longest, using: &random)))
            if await worker.killHard() {
                kills += 1
            } else if await worker.wait() == 0 {
                guard queued < count else { break }
                longest = max(10, longest / 2)
                let next = min(queued + part, count)
                try await enqueue(day, lines: queued..<next, name: "part-\(runs)")
                queued = next
            } else {
                Issue.record("worker failed: \(worker.stderr)")
                return
            }
        }
        if queued < count { try await enqueue(day, lines: queued..<count, name: "rest") }
        #expect(kills >= 10, "the worker was killed \(kills) times")
        // A kill that lands while a message is in flight counts a delivery for it, as a crash of its own
        // would; one that lands while a worker starts, before it takes messages into flight, counts
        // nothing. So no message was delivered more often than the worker was killed, and the finish, with
        // one attempt more than that, must bury none. (With the default five, a loaded machine, where
        // the worker is slow to commit its first message after each start, once buried the day's first
        // message after six kills had landed while it was in flight.)
        let finish = try await CastleProcess.run(
            [
                "match", "--queue", day.store.url, "--store", day.store.url, "--drain", "--book-out",
                day.directory.path("book.json"), "--max-attempts", "\(kills + 1)",
            ]
        )
        #expect(finish.status == 0, "\(finish.stderr)")
        let queue = try await CastleProcess.run(["queue", "--store", day.store.url])
        #expect(queue.status == 0 && queue.stdout.isEmpty, "no dead letters: \(queue.stdoutText)")
        let events = try await Self.events(day)
        let difference = firstDifference(events, day.reference)
        #expect(
            difference == nil,
            "after \(kills) kills the event log equals an uninterrupted run: \(difference ?? "")"
        )
        #expect(try day.directory.read("book.json") == day.referenceBook, "and so does the book")
    }

    /// Whether every queued message has been matched (`castle queue` says depth 0).
    static func queueIsEmpty(_ day: Day) async throws -> Bool {
        let queue = try await CastleProcess.run(["queue", "--store", day.store.url])
        return queue.status == 0 && queue.stderr.contains("depth 0,")
    }

    /// Whether the worker has committed at least one batch: its events are in the store.
    static func hasCommitted(_ day: Day) async throws -> Bool {
        let events = try await CastleProcess.run(["events", "--store", day.store.url])
        return events.status == 0 && !events.stdout.isEmpty
    }

    /// Two workers for one partition: the second stands by; when the owner dies, it takes over and
    /// finishes the stream. Only the first part of the day is queued at first; once the owner has matched
    /// it, the owner is frozen (SIGSTOP) and the rest is queued, so that it dies with work pending,
    /// however fast or slow the machine.
    static func theStandbyTakesOverWhenTheOwnerDies(_ kind: String) async throws {
        let day = try await Self.prepare(kind, count: 40_000, queued: 10_000)
        let owner = try Background(
            // Without --drain the owner waits for more when the queue is empty: it is alive until killed.
            ["match", "--queue", day.store.url, "--store", day.store.url, "--batch", "200", "--partition", "0/1"],
            stderrPath: day.directory.path("owner.log")
        )
        // Frozen once it has matched all it was given, so that it holds no write lock (SQLite) while the
        // rest is queued.
        guard try await eventually("the owner matches the first part", { try await Self.queueIsEmpty(day) }) else {
            return
        }
        owner.signal(SIGSTOP)
        try await Self.enqueue(day, lines: 10_000..<40_000, name: "rest")
        let standby = try Background(
            [
                "match", "--queue", day.store.url, "--store", day.store.url, "--drain", "--batch", "200", "--partition",
                "0/1", "--book-out", day.directory.path("book.json"),
            ],
            stderrPath: day.directory.path("standby.log")
        )
        #expect(await standby.waitFor("standing by"), "the second worker waits: \(standby.stderr)")
        #expect(await owner.killHard(), "the owner was still there when killed: \(owner.stderr)")
        #expect(await standby.wait() == 0, "\(standby.stderr)")
        #expect(standby.stderr.contains("took over"), "\(standby.stderr)")
        #expect(
            firstDifference(try await Self.events(day), day.reference) == nil,
            "the standby finished the stream exactly"
        )
        #expect(try day.directory.read("book.json") == day.referenceBook)
    }

    @Test func partitionsSplitTheWorkAndEachLogIsExact() async throws {
        let day = try await Self.prepare("sqlite", count: 5_000)
        for index in 0..<2 {
            let run = try await CastleProcess.run([
                "match", "--queue", day.store.url, "--store", day.store.url, "--drain", "--partition", "\(index)/2",
                "-q",
            ])
            #expect(run.status == 0, "\(run.stderr)")
        }
        let ambiguous = try await CastleProcess.run(["events", "--store", day.store.url])
        #expect(ambiguous.status == 64 && ambiguous.stderr.contains("--partition"), "\(ambiguous.stderr)")
        var trades = 0
        for index in 0..<2 {
            let log = try await CastleProcess.run(["events", "--store", day.store.url, "--partition", "\(index)/2"])
            #expect(log.status == 0)
            #expect(!log.lines.isEmpty, "partition \(index) has events")
            trades += log.lines.count { $0.contains(#""event":"trade""#) }
        }
        let referenceTrades = String(decoding: day.reference, as: UTF8.self).split(separator: "\n").count {
            $0.contains(#""event":"trade""#)
        }
        #expect(trades == referenceTrades, "the partitions trade what one worker trades")
    }

    /// SIGTERM stops the worker after the batch in hand: exit 0, and a restart finishes the stream exactly.
    /// The worker does not drain, so it is still running whenever the signal comes; it comes once the
    /// worker has committed a batch.
    static func sigtermStopsCleanly(_ kind: String) async throws {
        let day = try await Self.prepare(kind, count: 40_000)
        let worker = try Background(
            ["match", "--queue", day.store.url, "--store", day.store.url, "--batch", "200"],
            stderrPath: day.directory.path("worker.log")
        )
        guard try await eventually("the worker commits a batch", { try await Self.hasCommitted(day) }) else { return }
        worker.signal(SIGTERM)
        #expect(await worker.wait() == 0, "a graceful stop exits 0: \(worker.stderr)")
        #expect(worker.stderr.contains("castle match:") && !worker.stderr.contains(" 0 messages"), "\(worker.stderr)")
        let finish = try await CastleProcess.run([
            "match", "--queue", day.store.url, "--store", day.store.url, "--drain", "-q",
        ])
        #expect(finish.status == 0, "\(finish.stderr)")
        #expect(firstDifference(try await Self.events(day), day.reference) == nil)
    }

    /// A message that crashes the worker every time (fault injection) goes to the dead letters after its
    /// attempts, alone, and the worker goes on: the log equals castle match of the stream without it.
    static func aPoisonMessageEndsInTheDeadLetters(_ kind: String) async throws {
        let directory = try TemporaryDirectory()
        let store = try await TestStore.make(kind, in: directory)
        let day = directory.path("day.ndjson")
        #expect(
            try await CastleProcess.run(["generate", "orders", "--seed", "5", "--count", "3000", "-o", day]).status == 0
        )
        var lines = try directory.read("day.ndjson").split(separator: "\n", omittingEmptySubsequences: false).map(
            String.init
        )
        let victim = try #require(lines[1500].firstMatch(of: /"id":(\d+)/)?.1).description
        let poisoned = lines.indices.filter {
            lines[$0].contains("\"id\":\(victim),") || lines[$0].contains("\"id\":\(victim)}")
        }
        // The reference: the same stream with the poison lines blank, so every other line keeps its number.
        for index in poisoned { lines[index] = "" }
        let reference = try directory.write("reference.ndjson", lines.joined(separator: "\n"))
        let expected = try await CastleProcess.run(["match", "-i", reference, "-q"]).stdout
        #expect(try await CastleProcess.run(["migrate", "up", "--store", store.url]).status == 0)
        #expect(try await CastleProcess.run(["ingest", day, "--to", "queue", "--store", store.url, "-q"]).status == 0)

        var runs = 0
        var status: Int32 = -1
        while status != 0 && runs < 30 {
            runs += 1
            let worker = try Background(
                [
                    "match", "--store", store.url, "--drain", "--batch", "500", "--max-attempts", "3", "-q",
                    "--debug-fault-crash-on-id", victim,
                ],
                stderrPath: directory.path("run-\(runs).log")
            )
            status = await worker.wait()
        }
        #expect(status == 0, "the worker got past the poison")
        #expect(runs <= 3 * poisoned.count + 1, "each poison message crashed it at most 3 times: \(runs) runs")
        let queue = try await CastleProcess.run(["queue", "--store", store.url])
        #expect(queue.lines.count == poisoned.count, "only the poison went to the dead letters: \(queue.stdoutText)")
        #expect(queue.lines.allSatisfy { $0.contains("not acknowledged after 3 deliveries") }, "\(queue.stdoutText)")
        #expect(
            Set(queue.lines.compactMap { $0.firstMatch(of: /"line":(\d+)/).map { Int($0.1)! } })
                == Set(poisoned.map { $0 + 1 })
        )
        #expect(queue.stderr.contains("depth 0"), "\(queue.stderr)")
        let events = try await CastleProcess.run(["events", "--store", store.url])
        #expect(firstDifference(events.stdout, expected) == nil, "the rest of the stream was applied exactly once")
    }

    /// Fault injection is a debug build's flag, named for what it is; the environment variable that once
    /// armed it in any build does nothing now.
    @Test func faultInjectionIsNotArmedByTheEnvironment() async throws {
        let directory = try TemporaryDirectory()
        let store = try await TestStore.make("sqlite", in: directory)
        let day = directory.path("day.ndjson")
        #expect(
            try await CastleProcess.run(["generate", "orders", "--seed", "5", "--count", "200", "-o", day]).status == 0
        )
        let victim = try #require(try directory.read("day.ndjson").firstMatch(of: /"id":(\d+)/)?.1).description
        #expect(try await CastleProcess.run(["migrate", "up", "--store", store.url]).status == 0)
        #expect(try await CastleProcess.run(["ingest", day, "--to", "queue", "--store", store.url, "-q"]).status == 0)
        let run = try await CastleProcess.run(
            ["match", "--store", store.url, "--drain", "-q"],
            environment: ["CASTLE_FAULT_CRASH_ON_ID": victim]
        )
        #expect(run.status == 0, "the variable is ignored: \(run.stderr)")
        let help = try await CastleProcess.run(["match", "--help"])
        #expect(!help.stdoutText.contains("debug-fault"), "the debug flag is hidden from --help")
    }
}
