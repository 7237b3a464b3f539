import Foundation
import Testing

/// A store the durable-matcher tests run against: a SQLite file, or a fresh database on the throwaway
/// PostgreSQL server that bin/test starts (`CASTLE_TEST_POSTGRES_URL`).
struct TestStore {
    let url: String

    /// Nil (and the test is skipped, saying why) when PostgreSQL is wanted but not there; under CI that
    /// is a failure instead, since CI must run the PostgreSQL tests.
    static func make(_ kind: String, in directory: TemporaryDirectory) throws -> TestStore? {
        if kind == "sqlite" { return TestStore(url: "sqlite://\(directory.path("castle.db"))") }
        let environment = ProcessInfo.processInfo.environment
        guard let server = environment["CASTLE_TEST_POSTGRES_URL"] else {
            if environment["CI"] != nil {
                Issue.record("CASTLE_TEST_POSTGRES_URL is not set: bin/test starts PostgreSQL for these tests")
            } else {
                print("skipped: PostgreSQL tests need CASTLE_TEST_POSTGRES_URL (bin/test sets it)")
            }
            return nil
        }
        let name = "castle_\(UUID().uuidString.prefix(8).lowercased())"
        let created = try CastleProcess.shell(["/usr/bin/psql", server, "-qc", "CREATE DATABASE \(name)"])
        #expect(created.status == 0, "CREATE DATABASE: \(created.stderr)")
        guard let slash = server.lastIndex(of: "/") else { return nil }
        return TestStore(url: "\(server[..<slash])/\(name)")
    }
}

/// A castle process started in the background, to be killed.
final class Background {
    let process = Process()
    let stderrPath: String

    init(_ arguments: [String], stderrPath: String, environment: [String: String] = [:]) throws {
        self.stderrPath = stderrPath
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: CastleProcess.binary)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        try process.run()
    }

    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// SIGKILL, as a crash would; true if it was still running.
    @discardableResult
    func killHard() -> Bool {
        let wasRunning = process.isRunning
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        return wasRunning
    }

    func wait() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }
}

@Suite(.serialized) struct DurableMatchCLITests {
    /// A day with several symbols and accounts, the reference run of `castle match` over it, and a store
    /// holding it in the queue.
    struct Day {
        let directory: TemporaryDirectory
        let store: TestStore
        let reference: Data
        let referenceBook: String
    }

    static func prepare(_ kind: String, count: Int) throws -> Day? {
        let directory = try TemporaryDirectory()
        guard let store = try TestStore.make(kind, in: directory) else { return nil }
        let day = directory.path("day.ndjson")
        #expect(
            try CastleProcess.run(["generate", "orders", "--seed", "23", "--count", "\(count)", "-o", day]).status == 0
        )
        let reference = try CastleProcess.run(["match", "-i", day, "-q", "--book-out", directory.path("ref-book.json")])
        #expect(reference.status == 0)
        let migrate = try CastleProcess.run(["migrate", "up", "--store", store.url])
        #expect(migrate.status == 0, "\(migrate.stderr)")
        let ingest = try CastleProcess.run(["ingest", day, "--to", "queue", "--store", store.url, "-q"])
        #expect(ingest.status == 0, "\(ingest.stderr)")
        return Day(
            directory: directory,
            store: store,
            reference: reference.stdout,
            referenceBook: try directory.read("ref-book.json")
        )
    }

    static func events(_ day: Day) throws -> Data {
        let events = try CastleProcess.run(["events", "--store", day.store.url])
        #expect(events.status == 0, "\(events.stderr)")
        return events.stdout
    }

    @Test(arguments: ["sqlite", "postgres"])
    func anUninterruptedRunEqualsCastleMatch(_ kind: String) throws {
        guard let day = try Self.prepare(kind, count: 5_000) else { return }
        let run = try CastleProcess.run(
            [
                "match", "--queue", day.store.url, "--store", day.store.url, "--drain", "--batch", "700", "--book-out",
                day.directory.path("book.json"),
            ]
        )
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try Self.events(day) == day.reference, "the stored event log is castle match's output, byte for byte")
        #expect(try day.directory.read("book.json") == day.referenceBook)
        let again = try CastleProcess.run(["match", "--queue", day.store.url, "--store", day.store.url, "--drain"])
        #expect(again.status == 0)
        #expect(again.stderr.contains("0 messages"), "a drained queue gives nothing more: \(again.stderr)")
        #expect(try Self.events(day) == day.reference)
    }

    /// Killed with SIGKILL at random moments, at least ten times over one stream, and started again each
    /// time: the final event log (hence the trades) and the book equal an uninterrupted run's.
    @Test(arguments: ["sqlite", "postgres"])
    func killedAtRandomItResumesExactly(_ kind: String) throws {
        guard let day = try Self.prepare(kind, count: 120_000) else { return }
        var random = SystemRandomNumberGenerator()
        var kills = 0
        var runs = 0
        while kills < 12 && runs < 100 {
            runs += 1
            let worker = try Background(
                // Kills are not poison: enough attempts that no message is ever dead-lettered here.
                [
                    "match", "--queue", day.store.url, "--store", day.store.url, "--drain", "--batch", "200",
                    "--max-attempts", "1000", "-q",
                ],
                stderrPath: day.directory.path("worker-\(runs).log")
            )
            // Some kills land while it starts or rebuilds its books, most while it works: all are fair.
            usleep(UInt32.random(in: 50_000...250_000, using: &random))
            if worker.killHard() {
                kills += 1
            } else if worker.process.terminationStatus == 0 {
                break
            } else {
                Issue.record("worker failed: \(worker.stderr)")
                return
            }
        }
        #expect(kills >= 10, "the worker was killed \(kills) times")
        let finish = try CastleProcess.run(
            [
                "match", "--queue", day.store.url, "--store", day.store.url, "--drain", "--book-out",
                day.directory.path("book.json"),
            ]
        )
        #expect(finish.status == 0, "\(finish.stderr)")
        let events = try Self.events(day)
        #expect(events.count == day.reference.count, "event log length after \(kills) kills")
        #expect(events == day.reference, "after \(kills) kills the event log equals an uninterrupted run")
        #expect(try day.directory.read("book.json") == day.referenceBook, "and so does the book")
    }

    /// Two workers for one partition: the second stands by; when the owner dies, it takes over and
    /// finishes the stream.
    @Test(arguments: ["sqlite", "postgres"])
    func theStandbyTakesOverWhenTheOwnerDies(_ kind: String) throws {
        guard let day = try Self.prepare(kind, count: 80_000) else { return }
        let owner = try Background(
            [
                "match", "--queue", day.store.url, "--store", day.store.url, "--drain", "--batch", "200", "--partition",
                "0/1",
            ],
            stderrPath: day.directory.path("owner.log")
        )
        usleep(300_000)
        let standby = try Background(
            [
                "match", "--queue", day.store.url, "--store", day.store.url, "--drain", "--batch", "200", "--partition",
                "0/1",
                "--book-out", day.directory.path("book.json"),
            ],
            stderrPath: day.directory.path("standby.log")
        )
        var waited = 0
        while !standby.stderr.contains("standing by") && waited < 100 {
            usleep(50_000)
            waited += 1
        }
        #expect(standby.stderr.contains("standing by"), "the second worker waits: \(standby.stderr)")
        #expect(owner.killHard(), "the owner was still working when killed")
        #expect(standby.wait() == 0, "\(standby.stderr)")
        #expect(standby.stderr.contains("took over"), "\(standby.stderr)")
        #expect(try Self.events(day) == day.reference, "the standby finished the stream exactly")
        #expect(try day.directory.read("book.json") == day.referenceBook)
    }

    @Test func partitionsSplitTheWorkAndEachLogIsExact() throws {
        guard let day = try Self.prepare("sqlite", count: 5_000) else { return }
        for index in 0..<2 {
            let run = try CastleProcess.run([
                "match", "--queue", day.store.url, "--store", day.store.url, "--drain", "--partition", "\(index)/2",
                "-q",
            ])
            #expect(run.status == 0, "\(run.stderr)")
        }
        let ambiguous = try CastleProcess.run(["events", "--store", day.store.url])
        #expect(ambiguous.status == 64 && ambiguous.stderr.contains("--partition"), "\(ambiguous.stderr)")
        var trades = 0
        for index in 0..<2 {
            let log = try CastleProcess.run(["events", "--store", day.store.url, "--partition", "\(index)/2"])
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
    @Test(arguments: ["sqlite", "postgres"])
    func sigtermStopsCleanly(_ kind: String) throws {
        guard let day = try Self.prepare(kind, count: 40_000) else { return }
        let worker = try Background(
            ["match", "--queue", day.store.url, "--store", day.store.url, "--batch", "200"],
            stderrPath: day.directory.path("worker.log")
        )
        usleep(700_000)
        kill(worker.process.processIdentifier, SIGTERM)
        #expect(worker.wait() == 0, "a graceful stop exits 0: \(worker.stderr)")
        #expect(worker.stderr.contains("castle match:") && !worker.stderr.contains(" 0 messages"), "\(worker.stderr)")
        let finish = try CastleProcess.run([
            "match", "--queue", day.store.url, "--store", day.store.url, "--drain", "-q",
        ])
        #expect(finish.status == 0, "\(finish.stderr)")
        #expect(try Self.events(day) == day.reference)
    }

    /// A message that crashes the worker every time (fault injection) goes to the dead letters after its
    /// attempts, alone, and the worker goes on: the log equals castle match of the stream without it.
    @Test(arguments: ["sqlite", "postgres"])
    func aPoisonMessageEndsInTheDeadLetters(_ kind: String) throws {
        let directory = try TemporaryDirectory()
        guard let store = try TestStore.make(kind, in: directory) else { return }
        let day = directory.path("day.ndjson")
        #expect(try CastleProcess.run(["generate", "orders", "--seed", "5", "--count", "3000", "-o", day]).status == 0)
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
        let expected = try CastleProcess.run(["match", "-i", reference, "-q"]).stdout
        #expect(try CastleProcess.run(["migrate", "up", "--store", store.url]).status == 0)
        #expect(try CastleProcess.run(["ingest", day, "--to", "queue", "--store", store.url, "-q"]).status == 0)

        var runs = 0
        var status: Int32 = -1
        while status != 0 && runs < 30 {
            runs += 1
            let worker = try Background(
                ["match", "--store", store.url, "--drain", "--batch", "500", "--max-attempts", "3", "-q"],
                stderrPath: directory.path("run-\(runs).log"),
                environment: ["CASTLE_FAULT_CRASH_ON_ID": victim]
            )
            status = worker.wait()
        }
        #expect(status == 0, "the worker got past the poison")
        #expect(runs <= 3 * poisoned.count + 1, "each poison message crashed it at most 3 times: \(runs) runs")
        let queue = try CastleProcess.run(["queue", "--store", store.url])
        #expect(queue.lines.count == poisoned.count, "only the poison went to the dead letters: \(queue.stdoutText)")
        #expect(queue.lines.allSatisfy { $0.contains("not acknowledged after 3 deliveries") }, "\(queue.stdoutText)")
        #expect(
            Set(queue.lines.compactMap { $0.firstMatch(of: /"line":(\d+)/).map { Int($0.1)! } })
                == Set(poisoned.map { $0 + 1 })
        )
        #expect(queue.stderr.contains("depth 0"), "\(queue.stderr)")
        let events = try CastleProcess.run(["events", "--store", store.url])
        #expect(events.stdout == expected, "the rest of the stream was applied exactly once")
    }
}
