import Foundation
import Testing

/// `castle migrate`, `castle ingest` and the store URL handling, through the built binary on SQLite files.
@Suite struct StoreCLITests {
    static let sample = #"""
        {"op":"new","id":1,"symbol":"AAPL","side":"buy","price":"100.5","qty":"10","account":"a"}
        {"op":"new","id":2,"symbol":"MSFT","side":"sell","price":"300","qty":"5"}

        {"op":"cancel","id":1}
        {"op":"amend","id":2,"qty":"3"}
        """#

    func migrated(_ directory: TemporaryDirectory) async throws -> String {
        let url = "sqlite://\(directory.path("castle.db"))"
        let up = try await CastleProcess.run(["migrate", "up", "--store", url])
        #expect(up.status == 0, "\(up.stderr)")
        return url
    }

    @Test func migrateStatusUpDownVerifyAndDryRun() async throws {
        let directory = try TemporaryDirectory()
        let url = "sqlite://\(directory.path("castle.db"))"
        var status = try await CastleProcess.run(["migrate", "status", "--store", url])
        #expect(status.status == 10, "pending: exit 10")
        #expect(status.lines.count == 12 && status.lines.allSatisfy { $0.contains("\tpending\t") }, "\(status.lines)")
        let dry = try await CastleProcess.run(["migrate", "up", "--dry-run", "--store", url])
        #expect(dry.status == 0 && dry.stdoutText.contains("CREATE TABLE queue_messages"))
        status = try await CastleProcess.run(["migrate", "status", "--store", url])
        #expect(status.status == 10, "a dry run changes nothing")
        #expect(try await CastleProcess.run(["migrate", "up", "--to", "1", "--store", url]).status == 0)
        status = try await CastleProcess.run(["migrate", "status", "--store", url])
        #expect(status.status == 10 && status.lines[0].contains("applied") && status.lines[1].contains("pending"))
        let refused = try await CastleProcess.run(["events", "--store", url])
        #expect(refused.status == 78, "other subcommands refuse a store that needs migrating")
        #expect(refused.stderr.contains("castle migrate up"), "and name the fix: \(refused.stderr)")
        #expect(try await CastleProcess.run(["migrate", "up", "--store", url]).status == 0)
        #expect(try await CastleProcess.run(["migrate", "verify", "--store", url]).status == 0)
        #expect(try await CastleProcess.run(["migrate", "status", "--store", url]).status == 0)
        let down = try await CastleProcess.run(["migrate", "down", "--to", "1", "--store", url])
        #expect(down.status == 0 && down.stderr.contains("reverted 0012_event_bodies_out_of_the_key"), "\(down.stderr)")
        #expect(down.stderr.contains("0011_trade_blocks"), "\(down.stderr)")
        #expect(down.stderr.contains("0007_region"), "\(down.stderr)")
        #expect(down.stderr.contains("0002_matcher"), "newest first, down to version 1: \(down.stderr)")
        #expect(try await CastleProcess.run(["migrate", "status", "--store", url]).status == 10)
    }

    @Test func aChangedOrNewerMigrationIsRefused() async throws {
        let directory = try TemporaryDirectory()
        let url = try await migrated(directory)
        let path = directory.path("castle.db")
        var sql = try await CastleProcess.shell(
            [
                "/usr/bin/env", "python3", "-c",
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE castle_migrations SET checksum='00' WHERE version=2\"); c.commit()",
                path,
            ]
        )
        #expect(sql.status == 0, "\(sql.stderr)")
        let verify = try await CastleProcess.run(["migrate", "verify", "--store", url])
        #expect(verify.status == 12 && verify.stderr.contains("0002_matcher.sqlite.sql"), "\(verify.stderr)")
        let ingest = try await CastleProcess.run(
            ["ingest", "--dataset", "d", "--store", url],
            stdin: Data(Self.sample.utf8)
        )
        #expect(ingest.status == 78 && ingest.stderr.contains("0002_matcher.sqlite.sql"), "\(ingest.stderr)")
        sql = try await CastleProcess.shell(
            [
                "/usr/bin/env", "python3", "-c",
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE castle_migrations SET checksum=(SELECT checksum FROM castle_migrations WHERE version=2) WHERE version=2\"); c.execute(\"INSERT INTO castle_migrations (version, name, checksum) VALUES (99, '0099_future.sql', 'x')\"); c.commit()",
                path,
            ]
        )
        let newer = try await CastleProcess.run(["migrate", "status", "--store", url])
        #expect(newer.status == 12 || newer.status == 11, "\(newer.stderr)")
    }

    @Test func ingestIsIdempotentAndReadsBackInReplay() async throws {
        let directory = try TemporaryDirectory()
        let url = try await migrated(directory)
        let file = try directory.write("day.ndjson", Self.sample)
        let first = try await CastleProcess.run(["ingest", file, "--store", url])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stderr.contains("4 rows, 4 new, 0 already there, 0 rejected"), "\(first.stderr)")
        let second = try await CastleProcess.run(["ingest", file, "--store", url])
        #expect(second.stderr.contains("4 rows, 0 new, 4 already there"), "\(second.stderr)")
        let queued = try await CastleProcess.run(["ingest", file, "--to", "queue", "--store", url])
        #expect(queued.status == 0 && queued.stderr.contains("4 new"), "\(queued.stderr)")
        let again = try await CastleProcess.run(["ingest", file, "--to", "queue", "--store", url])
        #expect(again.stderr.contains("0 new"), "enqueueing the same file twice adds nothing: \(again.stderr)")
        let match = try await CastleProcess.run(["match", "--store", url, "--drain", "-q"])
        #expect(match.status == 0)
        let expected = try await CastleProcess.run(["match", "-i", file, "-q"])
        #expect(try await CastleProcess.run(["events", "--store", url]).stdout == expected.stdout)
        let fromThree = try await CastleProcess.run(["events", "--store", url, "--from-seq", "3"])
        #expect(fromThree.lines == Array(expected.lines.dropFirst(2)), "--from-seq")
    }

    /// 0012 moves the event log's bodies out of its key (a rowid table); down puts them back. The log
    /// reads the same on either side, and the table is what each version says.
    @Test func migration12KeepsTheEventLog() async throws {
        let directory = try TemporaryDirectory()
        let url = try await migrated(directory)
        let file = try directory.write("day.ndjson", Self.sample)
        #expect(try await CastleProcess.run(["ingest", file, "--to", "queue", "--store", url]).status == 0)
        #expect(try await CastleProcess.run(["match", "--store", url, "--drain", "-q"]).status == 0)
        let events = try await CastleProcess.run(["events", "--store", url])
        #expect(events.status == 0 && events.lines.count == 4, "\(events.stdoutText)")
        func tableSQL() async throws -> String {
            let sql = try await CastleProcess.shell(
                [
                    "/usr/bin/env", "python3", "-c",
                    "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT sql FROM sqlite_master WHERE name='match_events'\").fetchone()[0])",
                    directory.path("castle.db"),
                ]
            )
            #expect(sql.status == 0, "\(sql.stderr)")
            return sql.stdoutText
        }
        #expect(try await !tableSQL().contains("WITHOUT ROWID"))
        let down = try await CastleProcess.run(["migrate", "down", "--to", "11", "--store", url])
        #expect(down.status == 0, "\(down.stderr)")
        #expect(try await tableSQL().contains("WITHOUT ROWID"))
        #expect(try await CastleProcess.run(["migrate", "up", "--store", url]).status == 0)
        #expect(try await CastleProcess.run(["events", "--store", url]).stdout == events.stdout)
    }

    @Test func badRowsGoToRejectsAndOverMaxErrorsNothingIsCommitted() async throws {
        let directory = try TemporaryDirectory()
        let url = try await migrated(directory)
        let file = try directory.write(
            "bad.ndjson",
            Self.sample + "\nnot json\n" + #"{"op":"new","id":9,"symbol":"AAPL","side":"up","price":"1","qty":"1"}"#
                + "\n"
        )
        let failed = try await CastleProcess.run(
            ["ingest", file, "--store", url, "--rejects", directory.path("rejects.ndjson"), "--max-errors", "1"]
        )
        #expect(failed.status == 65, "\(failed.stderr)")
        #expect(failed.stderr.contains("bad.ndjson:7:"), "names file and line: \(failed.stderr)")
        #expect(failed.stderr.contains("nothing was ingested"))
        let rejects = try directory.read("rejects.ndjson").split(separator: "\n")
        #expect(
            rejects.count == 2 && rejects[0].contains(#""line":6"#) && rejects[0].contains("malformed"),
            "\(rejects)"
        )
        var replay = try await CastleProcess.run(["replay", "--store", url, "--dataset", "bad", "--stats"])
        #expect(replay.status != 0, "nothing of the failed run was committed")
        let tolerated = try await CastleProcess.run(["ingest", file, "--store", url, "--max-errors", "2"])
        #expect(tolerated.status == 0 && tolerated.stderr.contains("4 new") && tolerated.stderr.contains("2 rejected"))
        replay = try await CastleProcess.run([
            "replay", "--store", url, "--dataset", "bad", "--symbols", "AAPL", "--stats",
        ])
        #expect(replay.status == 0, "\(replay.stderr)")
        #expect(replay.stdoutText.contains("AAPL"), "the dataset replays: \(replay.stdoutText)")
    }

    @Test func commitEveryKeepsWhatWasCommittedBeforeABadRow() async throws {
        let directory = try TemporaryDirectory()
        let url = try await migrated(directory)
        var lines = (1...31).map {
            #"{"op":"new","id":\#($0),"symbol":"AAPL","side":"buy","price":"\#($0)","qty":"1"}"#
        }
        lines[25] = "not json"
        let file = try directory.write("live.ndjson", lines.joined(separator: "\n") + "\n")
        let failed = try await CastleProcess.run(
            ["ingest", "-", "--dataset", "live", "--into", "queue", "--store", url, "--commit-every", "10"],
            stdin: Data((lines.joined(separator: "\n") + "\n").utf8)
        )
        #expect(failed.status == 65, "\(failed.stderr)")
        #expect(failed.stderr.contains("<stdin>:26:"), "names the line: \(failed.stderr)")
        #expect(
            failed.stderr.contains(
                "the open transaction was rolled back; the 2 transactions before it stay committed, through line 20"
            ),
            "\(failed.stderr)"
        )
        var queue = try await CastleProcess.run(["queue", "--store", url])
        #expect(queue.stderr.contains("depth 20,"), "lines 1-20 are in the queue: \(queue.stderr)")
        let rerun = try await CastleProcess.run(
            [
                "ingest", file, "--dataset", "live", "--into", "queue", "--store", url, "--commit-every", "10",
                "--max-errors", "1",
            ]
        )
        #expect(rerun.status == 0, "\(rerun.stderr)")
        #expect(
            rerun.stderr.contains("30 rows, 10 new, 20 already there, 1 rejected into the queue in 3 transactions"),
            "\(rerun.stderr)"
        )
        queue = try await CastleProcess.run(["queue", "--store", url])
        #expect(queue.stderr.contains("depth 30,"), "\(queue.stderr)")
        let bad = try await CastleProcess.run(["ingest", file, "--store", url, "--commit-every", "0"])
        #expect(bad.status == 64 && bad.stderr.contains("--commit-every must be 1 or more"), "\(bad.stderr)")
    }

    @Test func csvRowsBecomeTheContract() async throws {
        let directory = try TemporaryDirectory()
        let url = try await migrated(directory)
        let csv = try directory.write(
            "day.csv",
            """
            op,id,symbol,side,price,qty,account
            new,1,AAPL,buy,100.5,10,"acct, one"
            new,2,AAPL,sell,100.5,4,
            cancel,1,,,,,
            new,x,AAPL,buy,1,1,

            """
        )
        let run = try await CastleProcess.run(["ingest", csv, "--store", url, "--to", "queue", "--max-errors", "1"])
        #expect(run.status == 0 && run.stderr.contains("3 new") && run.stderr.contains("1 rejected"), "\(run.stderr)")
        #expect(try await CastleProcess.run(["match", "--store", url, "--drain", "-q"]).status == 0)
        let events = try await CastleProcess.run(["events", "--store", url]).lines
        #expect(
            events.contains { $0.contains(#""event":"trade""#) && $0.contains(#""maker_account":"acct, one""#) },
            "\(events)"
        )
        #expect(events.last?.contains(#""event":"canceled","id":1,"qty":"6""#) == true, "\(events)")
    }

    @Test func urlsAreCheckedAndPasswordsNeverShown() async throws {
        let unknown = try await CastleProcess.run(["events", "--store", "redis://localhost/0"])
        #expect(unknown.status == 64 && unknown.stderr.contains("sqlite://") && unknown.stderr.contains("postgres://"))
        let unreachable = try await CastleProcess.run([
            "events", "--store", "postgres://castle:s3cret@127.0.0.1:1/castle",
        ])
        #expect(unreachable.status == 69, "\(unreachable.stderr)")
        #expect(unreachable.stderr.contains("127.0.0.1:1"), "names host and port: \(unreachable.stderr)")
        #expect(!unreachable.stderr.contains("s3cret"), "never the password")
        let directory = try TemporaryDirectory()
        let notADatabase = try directory.write("text.db", "this is not a database\n")
        let garbage = try await CastleProcess.run(["migrate", "status", "--store", "sqlite://\(notADatabase)"])
        #expect(garbage.status != 0 && garbage.stderr.contains(notADatabase), "\(garbage.stderr)")
    }

    /// A query with no parameter name once crashed the parser (SIGILL); it is a usage error that names the
    /// URL, from --store and from $CASTLE_STORE alike, with any password hidden.
    @Test(arguments: ["sqlite:///x.db?=", "sqlite:///x.db?&=1", "postgres://u:pw@h/db?=x", "sqlite:///x.db?=&a"])
    func aURLWithAnEmptyQueryNameIsAUsageError(_ url: String) async throws {
        let directory = try TemporaryDirectory()
        let given = try await CastleProcess.run(["queue", "--store", url], directory: directory.url)
        let fromEnvironment = try await CastleProcess.run(
            ["queue"],
            directory: directory.url,
            environment: ["CASTLE_STORE": url]
        )
        for run in [given, fromEnvironment] {
            #expect(run.status == 64, "\(run.stderr)")
            #expect(run.stderr.contains("query parameter has no name"), "\(run.stderr)")
            #expect(!run.stderr.contains("pw"), "never the password: \(run.stderr)")
        }
        #expect(try directory.contents().isEmpty)
    }

    /// Only `castle migrate up` creates a store. The commands that read one say that there is none and how
    /// to make one (exit 66), and leave no empty file behind; migrate status and dry runs report a missing
    /// file as an empty store.
    @Test func readingCommandsCreateNoStore() async throws {
        let directory = try TemporaryDirectory()
        for arguments in [
            ["events"], ["queue"], ["replay", "--dataset", "day"], ["match", "--drain"],
            ["ingest", "-", "--dataset", "day"], ["migrate", "down", "--to", "0"],
        ] {
            let run = try await CastleProcess.run(arguments, stdin: Data(), directory: directory.url)
            #expect(run.status == 66, "\(arguments): \(run.stderr)")
            #expect(run.stderr.contains("castle migrate up"), "\(arguments) says how to make one: \(run.stderr)")
        }
        let status = try await CastleProcess.run(["migrate", "status"], directory: directory.url)
        #expect(
            status.status == 10 && !status.lines.isEmpty && status.lines.allSatisfy { $0.contains("\tpending\t") },
            "all pending: \(status.stdoutText)"
        )
        #expect(status.stderr.contains("sqlite://castle.db"), "\(status.stderr)")
        let dry = try await CastleProcess.run(["migrate", "up", "--dry-run"], directory: directory.url)
        #expect(dry.status == 0 && dry.stdoutText.contains("CREATE TABLE"), "\(dry.stderr)")
        #expect(try await CastleProcess.run(["migrate", "verify"], directory: directory.url).status == 10)
        let left = try directory.contents()
        #expect(left.isEmpty, "nothing created: \(left)")
        let up = try await CastleProcess.run(["migrate", "up"], directory: directory.url)
        #expect(up.status == 0 && directory.exists("castle.db"), "\(up.stderr)")
        #expect(try await CastleProcess.run(["events"], directory: directory.url).status == 0)
    }
}

@Suite(.enabled(if: SharedData.lobster != nil, "the LOBSTER samples are not in ../shared/datasets"))
struct LobsterIngestCLITests {
    /// A real LOBSTER day becomes an order stream: submissions, partial cancels, deletions and visible
    /// executions are rows; hidden executions, cross trades, halts and messages about orders that rested
    /// before the file began are skipped, and every line is one or the other.
    @Test func aLobsterDayIngestsAsAnOrderStream() async throws {
        let directory = try TemporaryDirectory()
        let url = "sqlite://\(directory.path("castle.db"))"
        #expect(try await CastleProcess.run(["migrate", "up", "--store", url]).status == 0)
        let path = SharedData.file(SharedData.googMessages)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        let notOrders = lines.count { ["5", "6", "7"].contains($0.split(separator: ",")[1]) }
        let firstAdd = lines.first { $0.split(separator: ",")[1] == "1" }!.split(separator: ",")

        let missing = try await CastleProcess.run(["ingest", path, "--store", url])
        #expect(missing.status == 64 && missing.stderr.contains("--symbol"), "\(missing.stderr)")
        let run = try await CastleProcess.run(
            ["ingest", path, "--symbol", "GOOG", "--date", "2012-06-21", "--store", url, "--to", "queue"]
        )
        #expect(run.status == 0, "\(run.stderr)")
        // "…: N rows, N new, 0 already there, 0 rejected, S skipped (not orders) …"
        let summary = run.stderr.split(separator: ":").dropFirst(2).joined()
        let numbers = summary.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        #expect(numbers.count >= 5, "\(run.stderr)")
        let (rows, added, rejected, skipped) = (numbers[0], numbers[1], numbers[3], numbers[4])
        #expect(rows == added && rejected == 0)
        #expect(rows + skipped == lines.count, "every line is a row or skipped: \(run.stderr)")
        #expect(skipped >= notOrders, "hidden executions, cross trades and halts are skipped")
        let again = try await CastleProcess.run(
            ["ingest", path, "--symbol", "GOOG", "--date", "2012-06-21", "--store", url, "--to", "queue"]
        )
        #expect(again.stderr.contains("0 new"), "\(again.stderr)")

        #expect(try await CastleProcess.run(["match", "--store", url, "--drain", "-q"]).status == 0)
        let events = try await CastleProcess.run(["events", "--store", url]).lines
        let first = try #require(events.first)
        // 2012-06-21 00:00 UTC is 1340236800 s; LOBSTER's time is seconds after midnight.
        let time = firstAdd[0].split(separator: ".")
        let fraction = String(time[1]).padding(toLength: 9, withPad: "0", startingAt: 0)
        let ts = (1_340_236_800 + Int(time[0])!) * 1_000_000_000 + Int(fraction)!
        #expect(first.contains(#""event":"accepted","id":\#(firstAdd[2]),"symbol":"GOOG""#), "\(first)")
        #expect(first.contains(#""ts":\#(ts)"#), "\(first)")
        #expect(events.contains { $0.contains(#""event":"trade""#) }, "visible executions trade again")
    }

    /// Injected orders and the taker ids of LOBSTER executions once shared the top bit: an injected order
    /// with id 3 made the recorded execution at line 3 a `duplicate_id` rejection, and the trades dropped
    /// while the statistics said "rejected 0". The two id spaces no longer meet, so injecting an order
    /// changes no recorded trade.
    @Test func injectedIdsNeverMeetLobsterExecutions() async throws {
        let directory = try TemporaryDirectory()
        let url = "sqlite://\(directory.path("castle.db"))"
        #expect(try await CastleProcess.run(["migrate", "up", "--store", url]).status == 0)
        let path = SharedData.file(SharedData.googMessages)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        // The first visible execution (type 4) in the file: its taker's id is 2^63 + its line.
        let executionLine = try #require(lines.firstIndex { $0.split(separator: ",")[1] == "4" }) + 1
        let ingest = try await CastleProcess.run(
            ["ingest", path, "--symbol", "GOOG", "--date", "2012-06-21", "--store", url, "--dataset", "goog", "-q"]
        )
        #expect(ingest.status == 0, "\(ingest.stderr)")
        // A far-away sell that never trades, with the execution's line as its id.
        let mine = try directory.write(
            "mine.ndjson",
            #"{"op":"new","id":\#(executionLine),"symbol":"GOOG","side":"sell","price":"9999","qty":"1","ts":1340258400000000000}"#
                + "\n"
        )
        func stats(_ extra: [String]) async throws -> String {
            let run = try await CastleProcess.run(
                ["replay", "--dataset", "goog", "--store", url, "--symbols", "GOOG", "--stats", "-q"] + extra
            )
            #expect(run.status == 0, "\(run.stderr)")
            return run.stdoutText
        }
        let plain = try await stats([])
        let injected = try await stats(["--inject", mine, "--fills-out", directory.path("fills.ndjson")])
        func trades(_ text: String) -> String? {
            text.firstMatch(of: /"trades":\s*\{\s*"count":\s*(\d+),\s*"volume":\s*"([^"]+)"/).map {
                "\($0.1) trades, volume \($0.2)"
            }
        }
        func rejected(_ text: String) -> String? { text.firstMatch(of: /"rejected":\s*(\d+)/).map { String($0.1) } }
        #expect(trades(plain) != nil, "\(plain)")
        #expect(trades(injected) == trades(plain), "every recorded trade is still there: \(injected)")
        #expect(rejected(injected) == rejected(plain), "and nothing more was rejected: \(injected)")
        #expect(try directory.read("fills.ndjson").contains(#""status":"open""#), "the injected order rests")
    }
}
