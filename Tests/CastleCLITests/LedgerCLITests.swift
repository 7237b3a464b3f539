import Foundation
import Testing

/// `castle ledger post|balances|verify|settle` through the real binary, on a SQLite file and on the
/// throwaway PostgreSQL server (skipped, with the reason, when none is configured).
@Suite(.serialized) struct LedgerCLITests {
    @Suite("on SQLite") struct OnSQLite {
        @Test func postBalancesAndVerify() async throws { try await LedgerCLITests.postBalancesAndVerify("sqlite") }
        @Test func settleSettlesEachTradeOnce() async throws {
            try await LedgerCLITests.settleSettlesEachTradeOnce("sqlite")
        }
        @Test func killedDuringSettleARerunGivesTheSameLedger() async throws {
            try await LedgerCLITests.killedDuringSettleARerunGivesTheSameLedger("sqlite")
        }
    }

    @Suite("on PostgreSQL", .enabled(if: TestStore.postgresEnabled, TestStore.postgresSkipReason))
    struct OnPostgres {
        @Test func postBalancesAndVerify() async throws { try await LedgerCLITests.postBalancesAndVerify("postgres") }
        @Test func settleSettlesEachTradeOnce() async throws {
            try await LedgerCLITests.settleSettlesEachTradeOnce("postgres")
        }
        @Test func killedDuringSettleARerunGivesTheSameLedger() async throws {
            try await LedgerCLITests.killedDuringSettleARerunGivesTheSameLedger("postgres")
        }
    }

    static let instruments = """
        {"asset":"USD","scale":6}
        {"asset":"BTC","scale":8}
        {"symbol":"BTC-USD","tick":"0.01","lot":"0.0001"}
        {"symbol":"ETH-USD","tick":"0.01","lot":"0.001","base":"ETH","quote":"USD"}

        """

    static let deposits = """
        {"key":"dep-1","kind":"deposit","ts":1719561600000000000,"ref":"ch_1","memo":"card deposit","postings":[{"account":"clearing:stripe","asset":"USD","amount":"-100.25"},{"account":"available:alice","asset":"USD","amount":"100.25"}]}
        {"key":"dep-2","kind":"deposit","ts":1719561600000000001,"postings":[{"account":"external:world","asset":"BTC","amount":"-0.5"},{"account":"available:bob","asset":"BTC","amount":"0.5"}]}

        {"key":"wd-1","kind":"withdrawal","ts":1719561600000000002,"postings":[{"account":"available:alice","asset":"USD","amount":"-0.25"},{"account":"bank:main","asset":"USD","amount":"0.25"}]}

        """

    /// A migrated store and a directory with the instruments file.
    static func migrated(_ kind: String) async throws -> (TemporaryDirectory, TestStore, String) {
        let directory = try TemporaryDirectory()
        let store = try await TestStore.make(kind, in: directory)
        let migrate = try await CastleProcess.run(["migrate", "up", "--store", store.url])
        try #require(migrate.status == 0, "\(migrate.stderr)")
        return (directory, store, try directory.write("instruments.ndjson", instruments))
    }

    static func postBalancesAndVerify(_ kind: String) async throws {
        let (directory, store, instruments) = try await migrated(kind)
        let file = try directory.write("deposits.ndjson", deposits)
        let post = ["ledger", "post", file, "--store", store.url, "--instruments", instruments]
        let first = try await CastleProcess.run(post)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stderr.contains("3 entries: 3 posted, 0 already posted"), "\(first.stderr)")
        let again = try await CastleProcess.run(post)
        #expect(again.status == 0 && again.stderr.contains("3 entries: 0 posted, 3 already posted"), "\(again.stderr)")

        let ndjson = try await CastleProcess.run(["ledger", "balances", "--store", store.url, "--format", "ndjson"])
        #expect(ndjson.status == 0, "\(ndjson.stderr)")
        #expect(
            ndjson.stdoutText == """
                {"account":"available:alice","asset":"USD","balance":"100.000000"}
                {"account":"available:bob","asset":"BTC","balance":"0.50000000"}
                {"account":"bank:main","asset":"USD","balance":"0.250000"}
                {"account":"clearing:stripe","asset":"USD","balance":"-100.250000"}
                {"account":"external:world","asset":"BTC","balance":"-0.50000000"}

                """
        )
        let csv = try await CastleProcess.run(
            ["ledger", "balances", "--store", store.url, "--format", "csv", "--asset", "BTC"]
        )
        #expect(
            csv.stdoutText == "account,asset,balance\navailable:bob,BTC,0.50000000\nexternal:world,BTC,-0.50000000\n",
            "\(csv.stdoutText)"
        )
        let table = try await CastleProcess.run(
            ["ledger", "balances", "--store", store.url, "--format", "table", "--account", "available:alice"]
        )
        #expect(
            table.stdoutText == "ACCOUNT          ASSET     BALANCE\navailable:alice  USD    100.000000\n",
            "\(table.stdoutText)"
        )
        let verify = try await CastleProcess.run(["ledger", "verify", "--store", store.url])
        #expect(verify.status == 0 && verify.stderr.contains("ok: 3 entries, 5 balances"), "\(verify.stderr)")

        // A key again with other content, and an overdraft: refused, naming the line, nothing of the file posted.
        let changed = try directory.write(
            "changed.ndjson",
            """
            {"key":"dep-3","kind":"deposit","ts":1,"postings":[{"account":"clearing:stripe","asset":"USD","amount":"-1"},{"account":"available:carol","asset":"USD","amount":"1"}]}
            {"key":"dep-1","kind":"deposit","ts":1,"postings":[{"account":"clearing:stripe","asset":"USD","amount":"-1"},{"account":"available:alice","asset":"USD","amount":"1"}]}
            """
        )
        let refused = try await CastleProcess.run(
            ["ledger", "post", changed, "--store", store.url, "--instruments", instruments]
        )
        #expect(refused.status == 65, "\(refused.stderr)")
        #expect(
            refused.stderr.contains("\(changed):2: entry \"dep-1\": exists_with_different_content"),
            "\(refused.stderr)"
        )
        let overdraft = try directory.write(
            "overdraft.ndjson",
            """
            {"key":"dep-4","kind":"deposit","ts":1,"postings":[{"account":"clearing:stripe","asset":"USD","amount":"-1"},{"account":"available:dan","asset":"USD","amount":"1"}]}
            {"key":"wd-2","kind":"withdrawal","ts":1,"postings":[{"account":"available:alice","asset":"USD","amount":"-100.000001"},{"account":"bank:main","asset":"USD","amount":"100.000001"}]}
            """
        )
        let negative = try await CastleProcess.run(
            ["ledger", "post", overdraft, "--store", store.url, "--instruments", instruments]
        )
        #expect(negative.status == 65, "\(negative.stderr)")
        #expect(
            negative.stderr.contains(
                ":2: entry \"wd-2\": would_go_negative: available:alice would go below zero in USD"
            ),
            "\(negative.stderr)"
        )
        let after = try await CastleProcess.run(["ledger", "balances", "--store", store.url, "--format", "ndjson"])
        #expect(after.stdout == ndjson.stdout, "refused files change nothing: \(after.stdoutText)")
    }

    /// Every kind of bad entry file: a clear `FILE:LINE: reason`, exit 65, and nothing posted, even where
    /// earlier lines of the file were good.
    @Test(arguments: [
        (
            "truncated", #"{"key":"t","kind":"deposit","ts":1,"postings":[{"account":"clearing:x","as"#, "2",
            "the text ends inside a string"
        ),
        ("wrong type", #"{"key":"t","kind":"deposit","ts":"1","postings":[]}"#, "2", "ts"),
        (
            "too many decimals",
            #"{"key":"t","kind":"deposit","ts":1,"postings":[{"account":"clearing:x","asset":"USD","amount":"-1.0000001"},{"account":"available:a","asset":"USD","amount":"1.0000001"}]}"#,
            "2", "more decimals than USD's scale of 6"
        ),
        (
            "unbalanced",
            #"{"key":"t","kind":"deposit","ts":1,"postings":[{"account":"clearing:x","asset":"USD","amount":"-1"},{"account":"available:a","asset":"USD","amount":"2"}]}"#,
            "2", "unbalanced"
        ),
        (
            "unknown asset",
            #"{"key":"t","kind":"deposit","ts":1,"postings":[{"account":"clearing:x","asset":"XYZ","amount":"-1"},{"account":"available:a","asset":"XYZ","amount":"1"}]}"#,
            "2", "XYZ"
        ),
        (
            "unknown account kind",
            #"{"key":"t","kind":"deposit","ts":1,"postings":[{"account":"wallet:x","asset":"USD","amount":"-1"},{"account":"available:a","asset":"USD","amount":"1"}]}"#,
            "2", "wallet"
        ),
        ("not JSON", "dep-1,deposit,100", "2", "malformed JSON"),
    ])
    func hostileEntryFilesPostNothing(
        _ name: String,
        _ line: String,
        _ lineNumber: String,
        _ reason: String
    )
        async throws
    {
        let (directory, store, instruments) = try await Self.migrated("sqlite")
        let good =
            #"{"key":"ok","kind":"deposit","ts":1,"postings":[{"account":"clearing:x","asset":"USD","amount":"-5"},{"account":"available:a","asset":"USD","amount":"5"}]}"#
        let file = try directory.write("bad.ndjson", good + "\n" + line + "\n")
        let post = try await CastleProcess.run(
            ["ledger", "post", file, "--store", store.url, "--instruments", instruments]
        )
        #expect(post.status == 65, "\(name): \(post.stderr)")
        #expect(post.stderr.contains("\(file):\(lineNumber): "), "\(name) names file and line: \(post.stderr)")
        #expect(post.stderr.contains(reason), "\(name) says why: \(post.stderr)")
        let balances = try await CastleProcess.run(["ledger", "balances", "--store", store.url, "--format", "ndjson"])
        #expect(balances.status == 0 && balances.stdout.isEmpty, "\(name): the good first line was not posted")
    }

    @Test func verifyNamesTheFirstOffendingEntry() async throws {
        let (directory, store, instruments) = try await Self.migrated("sqlite")
        let file = try directory.write("deposits.ndjson", Self.deposits)
        #expect(
            try await CastleProcess.run(["ledger", "post", file, "--store", store.url, "--instruments", instruments])
                .status == 0
        )
        // A hand edit of the projection: verify finds that the balance is not the sum of its postings.
        let path = String(store.url.dropFirst("sqlite://".count))
        let edit = try await CastleProcess.shell(
            [
                "/usr/bin/env", "python3", "-c",
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE ledger_balances SET balance='100000001' WHERE account='available:alice'\"); c.commit()",
                path,
            ]
        )
        #expect(edit.status == 0, "\(edit.stderr)")
        let verify = try await CastleProcess.run(["ledger", "verify", "--store", store.url])
        #expect(verify.status == 1, "\(verify.stderr)")
        #expect(
            verify.stderr.contains("dep-1: the balance of available:alice USD is 100.000001"),
            "names the first entry of the account: \(verify.stderr)"
        )
    }

    @Test func aStoreNotMigratedForTheLedgerExits78() async throws {
        let directory = try TemporaryDirectory()
        let url = "sqlite://\(directory.path("castle.db"))"
        #expect(try await CastleProcess.run(["migrate", "up", "--to", "4", "--store", url]).status == 0)
        let balances = try await CastleProcess.run(["ledger", "balances", "--store", url])
        #expect(balances.status == 78 && balances.stderr.contains("castle migrate up"), "\(balances.stderr)")
        let unreachable = try await CastleProcess.run(
            ["ledger", "verify", "--store", "postgres://castle@127.0.0.1:1/castle?connect_timeout=2"]
        )
        #expect(unreachable.status == 69, "\(unreachable.stderr)")
    }

    @Test(arguments: [
        ("{\"maker_ppm\":100,\"taker_ppm\":250}\n{\"maker_ppm\":1,\"taker_ppm\":1}\n", "2", "a second default line"),
        ("{\"maker_ppm\":100}\n", "1", "maker_ppm and taker_ppm are both required"),
        (
            "{\"symbol\":\"BTC-USD\",\"maker_ppm\":1000000,\"taker_ppm\":1}\n", "1",
            "maker_ppm is not an integer from 0 to 999999"
        ),
        ("{\"maker_ppm\":\"100\",\"taker_ppm\":1}\n", "1", "maker_ppm is not an integer"),
        ("{\"maker_bp\":1,\"taker_ppm\":1}\n", "1", "unknown field \"maker_bp\""),
    ])
    func aBadFeeScheduleNamesFileAndLine(_ content: String, _ line: String, _ reason: String) async throws {
        let (directory, store, instruments) = try await Self.migrated("sqlite")
        let fees = try directory.write("fees.ndjson", content)
        let settle = try await CastleProcess.run(
            ["ledger", "settle", "--store", store.url, "--instruments", instruments, "--fees", fees]
        )
        #expect(settle.status == 65, "\(settle.stderr)")
        #expect(settle.stderr.contains("\(fees):\(line): \(reason)"), "\(settle.stderr)")
    }

    // MARK: Settling the durable matcher's trades

    /// A store holding the durable matcher's trades for a generated day, and every account funded.
    struct Day {
        let directory: TemporaryDirectory
        let store: TestStore
        let instruments: String
        let fees: String
        let trades: Int
    }

    static func matchedDay(_ kind: String, orders: Int) async throws -> Day {
        let directory = try TemporaryDirectory()
        let store = try await TestStore.make(kind, in: directory)
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let instruments = root.appendingPathComponent("datasets/instruments.ndjson").path
        let day = directory.path("day.ndjson")
        let steps: [[String]] = [
            ["generate", "orders", "--seed", "31", "--count", "\(orders)", "-o", day],
            ["migrate", "up", "--store", store.url],
            ["ingest", day, "--to", "queue", "--store", store.url, "-q"],
            ["match", "--queue", store.url, "--store", store.url, "--drain", "--instruments", instruments, "-q"],
        ]
        for step in steps {
            let run = try await CastleProcess.run(step)
            try #require(run.status == 0, "\(step): \(run.stderr)")
        }
        // Funds for every account the generator uses, and the house account of orders without one.
        var lines: [String] = []
        for owner in (1...100).map({ "a\($0)" }) + ["house"] {
            for (asset, amount) in [
                ("USD", "1000000000"), ("BTC", "100000"), ("ETH", "1000000"), ("SOL", "10000000"),
                ("DOGE", "10000000000"),
            ] {
                lines.append(
                    #"{"key":"fund-\#(owner)-\#(asset)","kind":"deposit","ts":1,"postings":[{"account":"external:world","asset":"\#(asset)","amount":"-\#(amount)"},{"account":"available:\#(owner)","asset":"\#(asset)","amount":"\#(amount)"}]}"#
                )
            }
        }
        let funds = try directory.write("funds.ndjson", lines.joined(separator: "\n") + "\n")
        let post = try await CastleProcess.run([
            "ledger", "post", funds, "--store", store.url, "--instruments", instruments,
        ])
        try #require(post.status == 0, "\(post.stderr)")
        let fees = try directory.write(
            "fees.ndjson",
            #"{"maker_ppm":100,"taker_ppm":250}"# + "\n" + #"{"symbol":"DOGE-USD","maker_ppm":0,"taker_ppm":1000}"#
                + "\n"
        )
        let events = try await CastleProcess.run(["events", "--store", store.url])
        let trades = events.stdoutText.split(separator: "\n").count { $0.contains(#""event":"trade""#) }
        try #require(trades > 100, "the day has trades to settle: \(trades)")
        return Day(directory: directory, store: store, instruments: instruments, fees: fees, trades: trades)
    }

    static func settle(_ day: Day, _ extra: [String] = []) -> [String] {
        [
            "ledger", "settle", "--store", day.store.url, "--instruments", day.instruments, "--fees", day.fees,
            "--unowned-account", "house",
        ] + extra
    }

    static func settleSettlesEachTradeOnce(_ kind: String) async throws {
        let day = try await matchedDay(kind, orders: 6_000)
        let refusedWithoutHouse = try await CastleProcess.run(
            ["ledger", "settle", "--store", day.store.url, "--instruments", day.instruments]
        )
        #expect(refusedWithoutHouse.status == 65, "orders without an account: \(refusedWithoutHouse.stderr)")
        #expect(refusedWithoutHouse.stderr.contains("named no account"), "\(refusedWithoutHouse.stderr)")
        #expect(refusedWithoutHouse.stderr.contains("trade trade:match:0/1:"), "names the trade")
        let first = try await CastleProcess.run(settle(day))
        #expect(first.status == 0, "\(first.stderr)")
        let verify = try await CastleProcess.run(["ledger", "verify", "--store", day.store.url])
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(verify.stderr.contains("ok: \(505 + day.trades) entries"), "one entry per trade: \(verify.stderr)")
        let again = try await CastleProcess.run(settle(day))
        #expect(again.status == 0 && again.stderr.contains(": 0 trades settled"), "nothing twice: \(again.stderr)")
        let fees = try await CastleProcess.run(
            ["ledger", "balances", "--store", day.store.url, "--account", "fees:exchange", "--format", "csv"]
        )
        let feeLines = fees.stdoutText.split(separator: "\n").dropFirst()
        #expect(
            !feeLines.isEmpty && feeLines.allSatisfy { !$0.hasSuffix(",0.000000") },
            "fees earned: \(fees.stdoutText)"
        )

        // Another settle holding the consumer's lock: exit 75 (on SQLite the lock is a file to flock).
        if kind == "sqlite", let flock = CastleProcess.which("flock") {
            let lockFile = String(day.store.url.dropFirst("sqlite://".count)) + ".settle-match%3A0%2F1.lock"
            let command = ([CastleProcess.binary] + settle(day)).map { "'\($0)'" }.joined(separator: " ")
            let locked = try await CastleProcess.shell([flock, "-n", lockFile, "-c", command])
            #expect(locked.status == 75, "\(locked.stderr)")
            #expect(locked.stderr.contains("another castle ledger settle"), "\(locked.stderr)")
        }
    }

    static func killedDuringSettleARerunGivesTheSameLedger(_ kind: String) async throws {
        let reference = try await matchedDay(kind, orders: 6_000)
        let whole = try await CastleProcess.run(settle(reference))
        try #require(whole.status == 0, "\(whole.stderr)")
        let expected = try await CastleProcess.run(
            ["ledger", "balances", "--store", reference.store.url, "--format", "ndjson"]
        )

        let day = try await matchedDay(kind, orders: 6_000)
        var kills = 0
        var runs = 0
        while kills < 4 && runs < 20 {
            runs += 1
            // Small batches, each its own transaction; the run pauses once a few are committed (a debug
            // build's fault injection) and is killed there, however loaded the machine is.
            let settler = try Background(
                settle(day, ["--batch", "40", "-q", "--debug-fault-pause-after-batches", "\(Int.random(in: 1...3))"]),
                stderrPath: day.directory.path("settle-\(runs).log")
            )
            if await settler.waitFor("paused after"), await settler.killHard() {
                kills += 1
                continue
            }
            let status = await settler.wait()
            // 75: PostgreSQL had not yet ended the killed run's session, which held the settlement lock.
            guard status == 75 else {
                Issue.record("settle exited \(status) before its pause: \(settler.stderr)")
                return
            }
        }
        #expect(kills >= 1, "settle was killed \(kills) times")
        let finish = try await CastleProcess.run(settle(day))
        #expect(finish.status == 0, "\(finish.stderr)")
        let balances = try await CastleProcess.run([
            "ledger", "balances", "--store", day.store.url, "--format", "ndjson",
        ])
        let difference = firstDifference(balances.stdout, expected.stdout)
        #expect(
            difference == nil,
            "after \(kills) kills the balances equal an uninterrupted run's: \(difference ?? "")"
        )
        let verify = try await CastleProcess.run(["ledger", "verify", "--store", day.store.url])
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(verify.stderr.contains("ok: \(505 + day.trades) entries"), "each trade once: \(verify.stderr)")
    }
}
