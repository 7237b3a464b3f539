import Foundation
import Testing

/// `castle snapshot` end to end, through the real binary: round trips across backends with the matcher
/// resuming identically, kill -9 during a restore, residency, and the cross-region drill through S3 (moto).
@Suite("castle snapshot") struct SnapshotCLITests {
    /// A region: a store with a day's first part matched by the durable worker and its dataset ingested.
    struct Region {
        let directory: TemporaryDirectory
        let store: TestStore
        let lines: [Substring]
    }

    static let dayCount = 4_000
    static let firstPart = 0..<2_500
    static let secondPart = 2_500..<4_000

    static func makeRegion(_ kind: String, directory: TemporaryDirectory? = nil) async throws -> Region {
        let directory = try directory ?? TemporaryDirectory()
        let store = try await TestStore.make(kind, in: directory)
        let path = directory.path("day.ndjson")
        let generated = try await CastleProcess.run([
            "generate", "orders", "--seed", "31", "--count", "\(dayCount)", "--accounts", "40", "-o", path,
        ])
        #expect(generated.status == 0)
        let migrate = try await CastleProcess.run(["migrate", "up", "--store", store.url, "--region", "eu-west-1"])
        #expect(migrate.status == 0, "\(migrate.stderr)")
        let region = Region(
            directory: directory,
            store: store,
            lines: try directory.read("day.ndjson").split(separator: "\n", omittingEmptySubsequences: false)
        )
        let ingest = try await CastleProcess.run(["ingest", path, "--dataset", "day", "--store", store.url, "-q"])
        #expect(ingest.status == 0, "\(ingest.stderr)")
        try await enqueue(region, into: store.url, lines: firstPart, name: "first")
        try await drain(store.url)
        return region
    }

    /// Enqueues `lines` of the day (0-based), each on its own line number.
    static func enqueue(_ region: Region, into url: String, lines: Range<Int>, name: String) async throws {
        let text = region.lines.indices.map { lines.contains($0) ? String(region.lines[$0]) : "" }
            .joined(separator: "\n")
        let part = try region.directory.write("\(name)-\(UUID().uuidString.prefix(6)).ndjson", text)
        let ingest = try await CastleProcess.run(["ingest", part, "--to", "queue", "--store", url, "-q"])
        #expect(ingest.status == 0, "\(ingest.stderr)")
    }

    static func drain(_ url: String) async throws {
        let run = try await CastleProcess.run(["match", "--queue", url, "--store", url, "--drain", "--batch", "300"])
        #expect(run.status == 0, "\(run.stderr)")
    }

    static func events(_ url: String) async throws -> Data {
        let events = try await CastleProcess.run(["events", "--store", url])
        #expect(events.status == 0, "\(events.stderr)")
        return events.stdout
    }

    /// The manifest of an archive (`inspect --json`), parsed.
    static func manifest(_ path: String) async throws -> [String: Any] {
        let inspect = try await CastleProcess.run(["snapshot", "inspect", path, "--json"])
        try #require(inspect.status == 0, "\(inspect.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: inspect.stdout) as? [String: Any])
    }

    /// Every table's name, rows and SHA-256: what must be equal between two snapshots of equal stores.
    static func tableSums(_ manifest: [String: Any]) -> [String] {
        ((manifest["tables"] as? [[String: Any]]) ?? []).map { table in
            "\(table["name"] ?? "?") \(table["rows"] ?? "?") \(table["sha256"] ?? "?")"
        }
    }

    static func snapshot(_ url: String, to path: String, extra: [String] = []) async throws {
        let create = try await CastleProcess.run(["snapshot", "create", "--store", url, "-o", path] + extra)
        #expect(create.status == 0, "\(create.stderr)")
        let verify = try await CastleProcess.run(["snapshot", "verify", path])
        #expect(verify.status == 0, "\(verify.stderr)")
    }

    static func restore(_ path: String, into url: String, extra: [String] = []) async throws {
        let restore = try await CastleProcess.run(["snapshot", "restore", path, "--into", url] + extra)
        #expect(restore.status == 0, "\(restore.stderr)")
    }

    // MARK: Round trip

    /// SQLite → archive → PostgreSQL → archive → SQLite: every table's checksum equal at each step, and
    /// each target continues the matcher exactly as the source does.
    @Test(.enabled(if: TestStore.postgresEnabled, TestStore.postgresSkipReason))
    func roundTripSQLiteToPostgresToSQLite() async throws {
        let source = try await Self.makeRegion("sqlite")
        let directory = source.directory
        let first = directory.path("a.tar.zst")
        try await Self.snapshot(source.store.url, to: first)
        let manifest = try await Self.manifest(first)
        #expect(manifest["region"] as? String == "eu-west-1", "the store's region is in the manifest")
        #expect(manifest["source_backend"] as? String == "sqlite")
        let matcher = try #require(manifest["matcher"] as? [[String: Any]])
        #expect(matcher.count == 1 && (matcher.first?["last_seq"] as? Int ?? 0) > 0, "\(matcher)")

        let postgresDirectory = try TemporaryDirectory()
        let postgres = try await TestStore.make("postgres", in: postgresDirectory)
        try await Self.restore(first, into: postgres.url, extra: ["--region", "us-east-1"])
        let second = directory.path("b.tar.gz")
        try await Self.snapshot(postgres.url, to: second, extra: ["--compression", "gzip"])
        let secondManifest = try await Self.manifest(second)
        #expect(secondManifest["region"] as? String == "us-east-1", "the target recorded its own region")
        #expect(secondManifest["source_backend"] as? String == "postgres")
        #expect(Self.tableSums(secondManifest) == Self.tableSums(manifest), "PostgreSQL holds the same rows")

        let back = TestStore(url: "sqlite://\(directory.path("back.db"))")
        try await Self.restore(second, into: back.url)
        let third = directory.path("c.tar.xz")
        try await Self.snapshot(back.url, to: third, extra: ["--compression", "xz"])
        #expect(Self.tableSums(try await Self.manifest(third)) == Self.tableSums(manifest), "and SQLite again")

        // The rest of the day, in every region: the same events, hence the same trades and books.
        for url in [source.store.url, postgres.url, back.url] {
            try await Self.enqueue(source, into: url, lines: Self.secondPart, name: "second")
            try await Self.drain(url)
        }
        let expected = try await Self.events(source.store.url)
        #expect(!expected.isEmpty)
        for url in [postgres.url, back.url] {
            #expect(firstDifference(try await Self.events(url), expected) == nil, "\(url) resumed as the source did")
        }
    }

    /// SQLite into a second SQLite file and back, and into memory's logical tables: equal checksums.
    @Test func roundTripSQLiteToSQLite() async throws {
        let source = try await Self.makeRegion("sqlite")
        let archive = source.directory.path("a.tar.zst")
        try await Self.snapshot(source.store.url, to: archive)
        let target = "sqlite://\(source.directory.path("copy.db"))"
        try await Self.restore(archive, into: target)
        let again = source.directory.path("b.tar.zst")
        try await Self.snapshot(target, to: again)
        #expect(Self.tableSums(try await Self.manifest(again)) == Self.tableSums(try await Self.manifest(archive)))
        #expect(firstDifference(try await Self.events(target), try await Self.events(source.store.url)) == nil)
        // Memory takes every table of the schema too (the ledger's and reconcile's, empty here).
        let memory = try await CastleProcess.run(["snapshot", "restore", archive, "--into", "memory://region"])
        #expect(memory.status == 0, "\(memory.stderr)")
        #expect(memory.stderr.contains("matcher partitions verified"), "\(memory.stderr)")

        // Refused without --force, all-or-nothing with it.
        let refused = try await CastleProcess.run(["snapshot", "restore", archive, "--into", target])
        #expect(refused.status == 73, "a target with rows is refused: \(refused.stderr)")
        #expect(refused.stderr.contains("--force"), "and the message names the way out: \(refused.stderr)")
        try await Self.restore(archive, into: target, extra: ["--force"])
        #expect(firstDifference(try await Self.events(target), try await Self.events(source.store.url)) == nil)
    }

    /// The same bytes from stdin as from a file, and the archive to stdout equals the archive to a file.
    @Test func stdinAndStdout() async throws {
        let source = try await Self.makeRegion("sqlite")
        let piped = try await CastleProcess.run(["snapshot", "create", "--store", source.store.url, "-o", "-", "-q"])
        #expect(piped.status == 0, "\(piped.stderr)")
        let verify = try await CastleProcess.run(["snapshot", "verify", "-"], stdin: piped.stdout)
        #expect(verify.status == 0, "\(verify.stderr)")
        let target = "sqlite://\(source.directory.path("from-stdin.db"))"
        let restore = try await CastleProcess.run(["snapshot", "restore", "-", "--into", target], stdin: piped.stdout)
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect(restore.stderr.contains("matcher partitions verified"), "\(restore.stderr)")
        #expect(firstDifference(try await Self.events(target), try await Self.events(source.store.url)) == nil)
        // inspect reads the manifest only: from a file (from a pipe, the writer would meet a closed pipe).
        let file = source.directory.path("piped.tar.zst")
        try piped.stdout.write(to: URL(fileURLWithPath: file))
        let inspect = try await CastleProcess.run(["snapshot", "inspect", file])
        #expect(inspect.status == 0 && inspect.stdoutText.contains("dataset_orders"), "\(inspect.stdoutText)")
    }

    /// A snapshot of a schema newer than this castle is refused with 78, a broken one with 65, a store
    /// named with another region with 64.
    @Test func refusalsHaveTheirExitCodes() async throws {
        let source = try await Self.makeRegion("sqlite")
        let other = try await CastleProcess.run([
            "snapshot", "create", "--store", source.store.url, "--region", "ap-south-1", "-o",
            source.directory.path("x.tar.zst"),
        ])
        #expect(other.status == 64, "the store is eu-west-1: \(other.stderr)")
        #expect(!source.directory.exists("x.tar.zst"), "and nothing was written")
        let garbage = try source.directory.write("garbage.tar.zst", "not an archive at all\n")
        let verify = try await CastleProcess.run(["snapshot", "verify", garbage])
        #expect(verify.status == 65, "\(verify.stderr)")
        let missing = try await CastleProcess.run(["snapshot", "verify", source.directory.path("none.tar.zst")])
        #expect(missing.status == 66, "\(missing.stderr)")
        let failed = try await CastleProcess.run([
            "snapshot", "restore", garbage, "--into", "sqlite://\(source.directory.path("new.db"))",
        ])
        #expect(failed.status == 65, "\(failed.stderr)")
        #expect(!source.directory.exists("new.db"), "a failed restore leaves no new store behind")
    }

    // MARK: Kill -9

    /// A restore killed with SIGKILL while it writes leaves the target exactly as it was; the same
    /// restore run again to its end succeeds.
    @Test func killDuringRestoreLeavesTheTargetAsItWas() async throws {
        try await Self.killDuringRestore("sqlite")
    }

    @Test(.enabled(if: TestStore.postgresEnabled, TestStore.postgresSkipReason))
    func killDuringRestoreIntoPostgresLeavesTheTargetAsItWas() async throws {
        try await Self.killDuringRestore("postgres")
    }

    static func killDuringRestore(_ kind: String) async throws {
        let directory = try TemporaryDirectory()
        let big = TestStore(url: "sqlite://\(directory.path("big.db"))")
        #expect(try await CastleProcess.run(["migrate", "up", "--store", big.url]).status == 0)
        let orders = directory.path("orders.ndjson")
        #expect(
            try await CastleProcess.run(["generate", "orders", "--seed", "5", "--count", "200000", "-o", orders]).status
                == 0
        )
        #expect(
            try await CastleProcess.run(["ingest", orders, "--dataset", "big", "--store", big.url, "-q"]).status == 0
        )
        let archive = directory.path("big.tar.zst")
        try await Self.snapshot(big.url, to: archive)

        let target = try await Self.makeRegion(kind, directory: directory)
        let before = directory.path("before.tar.zst")
        try await Self.snapshot(target.store.url, to: before)
        // The restore pauses, inside its transaction, once it has handed 120,000 of the archive's rows to
        // the store (a debug build's fault injection), so that the kill comes while it writes however
        // loaded the machine is.
        let restore = try Background(
            [
                "snapshot", "restore", archive, "--into", target.store.url, "--force", "-q",
                "--debug-fault-pause-after-rows", "120000",
            ],
            stderrPath: directory.path("restore.err")
        )
        let paused = try await eventually("the restore pauses after 120,000 rows") {
            restore.hasExited || restore.stderr.contains("paused after")
        }
        #expect(paused && !restore.hasExited, "\(restore.stderr)")
        // It has written some rows and not all: on SQLite the transaction's pages reach the WAL as it
        // grows; on PostgreSQL its session has sent a COPY.
        let writing = try await eventually("the restore writes into the target") {
            if restore.hasExited { return true }
            if kind == "sqlite" {
                let wal = String(target.store.url.dropFirst("sqlite://".count)) + "-wal"
                let size = (try? FileManager.default.attributesOfItem(atPath: wal)[.size] as? Int) ?? 0
                return size > 4 << 20
            }
            let psql = try #require(CastleProcess.which("psql"))
            let database = String(target.store.url.split(separator: "/").last!.prefix { $0 != "?" })
            let copying = try await CastleProcess.shell([
                psql, try #require(TestStore.postgresServer), "-tAc",
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '\(database)' AND query LIKE 'COPY %'",
            ])
            return copying.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) != "0"
        }
        #expect(writing)
        #expect(await restore.killHard(), "killed while restoring: \(restore.stderr)")
        let after = directory.path("after.tar.zst")
        try await Self.snapshot(target.store.url, to: after)
        #expect(Self.tableSums(try await Self.manifest(after)) == Self.tableSums(try await Self.manifest(before)))
        let verify = try await CastleProcess.run(["migrate", "verify", "--store", target.store.url])
        #expect(verify.status == 0, "\(verify.stderr)")

        try await Self.restore(archive, into: target.store.url, extra: ["--force"])
        let done = directory.path("done.tar.zst")
        try await Self.snapshot(target.store.url, to: done)
        #expect(Self.tableSums(try await Self.manifest(done)) == Self.tableSums(try await Self.manifest(archive)))
    }

    // MARK: Residency

    /// A pseudonymised snapshot restores, and the matcher on it gives the same trades as the source,
    /// each account replaced by its HMAC-SHA-256 under the policy's key, consistently everywhere.
    @Test func residencyPseudonymisesAccountsConsistently() async throws {
        let source = try await Self.makeRegion("sqlite")
        let key = "a residency key of enough bytes"
        let policy = try source.directory.write(
            "policy.json",
            #"{"policy": "eu-pseudonymised", "accounts": "pseudonymise", "key_env": "SNAPSHOT_TEST_KEY"}"#
        )
        let archive = source.directory.path("pseudo.tar.zst")
        let create = try await CastleProcess.run(
            ["snapshot", "create", "--store", source.store.url, "--residency", policy, "-o", archive],
            environment: ["SNAPSHOT_TEST_KEY": key]
        )
        #expect(create.status == 0, "\(create.stderr)")
        let manifest = try await Self.manifest(archive)
        let residency = try #require(manifest["residency"] as? [String: Any])
        #expect(residency["policy"] as? String == "eu-pseudonymised")
        #expect((residency["pseudonymised"] as? [String])?.contains("resting_orders.account") == true)
        let target = "sqlite://\(source.directory.path("pseudo.db"))"
        try await Self.restore(archive, into: target)

        // Both regions finish the day; the target's part of the day is pseudonymised as its region would
        // receive it.
        try await Self.enqueue(source, into: source.store.url, lines: Self.secondPart, name: "second")
        try await Self.drain(source.store.url)
        let accounts = Set(
            source.lines.compactMap { line -> String? in
                guard let range = line.range(of: #""account":""#) else { return nil }
                return String(line[range.upperBound...].prefix { $0 != "\"" })
            }
        )
        let pseudonyms = try await Self.hmac(Array(accounts), key: key)
        let pseudoLines = source.lines.map { line in
            var text = String(line)
            for (account, pseudonym) in pseudonyms {
                text = text.replacingOccurrences(of: #""account":"\#(account)""#, with: #""account":"\#(pseudonym)""#)
            }
            return Substring(text)
        }
        let pseudoRegion = Region(directory: source.directory, store: TestStore(url: target), lines: pseudoLines)
        try await Self.enqueue(pseudoRegion, into: target, lines: Self.secondPart, name: "second-pseudo")
        try await Self.drain(target)

        var expected = String(decoding: try await Self.events(source.store.url), as: UTF8.self)
        for (account, pseudonym) in pseudonyms {
            for field in ["account", "maker_account", "taker_account"] {
                expected = expected.replacingOccurrences(
                    of: #""\#(field)":"\#(account)""#,
                    with: #""\#(field)":"\#(pseudonym)""#
                )
            }
        }
        let actual = try await Self.events(target)
        #expect(String(decoding: actual, as: UTF8.self).contains("maker_account"), "trades were made")
        #expect(firstDifference(actual, Data(expected.utf8)) == nil, "the same trades, with hashed accounts")
        for account in accounts {
            #expect(!String(decoding: actual, as: UTF8.self).contains(#""\#(account)""#), "no clear account left")
        }
    }

    /// The ledger under a pseudonymising policy: a region whose accounts were funded (`ledger post`), whose
    /// trades the durable worker matched and `ledger settle` booked, is snapshotted and restored into a
    /// fresh SQLite file. There the ledger verifies, every user's balance stands under its pseudonym with
    /// the source's amount, no member of the archive names a user in clear (blobs decoded), and the rest
    /// of the day, received with pseudonymised accounts, matches and settles to the balances the source
    /// reaches, pseudonymised. The house account (`exchange_owners`) stays in clear, so that
    /// `--unowned-account house` settles on both sides.
    @Test func residencyPseudonymisesTheLedger() async throws {
        let directory = try TemporaryDirectory()
        let source = try await TestStore.make("sqlite", in: directory).url
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let instruments = root.appendingPathComponent("datasets/instruments.ndjson").path
        let day = directory.path("day.ndjson")
        for step in [
            ["generate", "orders", "--seed", "31", "--count", "\(Self.dayCount)", "--accounts", "40", "-o", day],
            ["migrate", "up", "--store", source],
        ] {
            let run = try await CastleProcess.run(step)
            try #require(run.status == 0, "\(step): \(run.stderr)")
        }
        let region = Region(
            directory: directory,
            store: TestStore(url: source),
            lines: try directory.read("day.ndjson").split(separator: "\n", omittingEmptySubsequences: false)
        )
        let accounts = (1...40).map { "a\($0)" }
        var funds: [String] = []
        for (index, owner) in (accounts + ["house"]).enumerated() {
            for (asset, amount) in [
                ("USD", "1000000000"), ("BTC", "100000"), ("ETH", "1000000"), ("SOL", "10000000"),
                ("DOGE", "10000000000"),
            ] {
                // Keys without the owner in them: a key is kept as it is (docs/snapshots.md).
                funds.append(
                    #"{"key":"fund-\#(index)-\#(asset)","kind":"deposit","ts":1,"postings":[{"account":"external:world","asset":"\#(asset)","amount":"-\#(amount)"},{"account":"available:\#(owner)","asset":"\#(asset)","amount":"\#(amount)"}]}"#
                )
            }
        }
        let fundsFile = try directory.write("funds.ndjson", funds.joined(separator: "\n") + "\n")
        let fees = try directory.write("fees.ndjson", #"{"maker_ppm":100,"taker_ppm":250}"# + "\n")
        func matchAndSettle(_ store: String) async throws {
            let match = try await CastleProcess.run([
                "match", "--queue", store, "--store", store, "--drain", "--instruments", instruments, "-q",
            ])
            try #require(match.status == 0, "\(match.stderr)")
            let settle = try await CastleProcess.run([
                "ledger", "settle", "--store", store, "--instruments", instruments, "--fees", fees,
                "--unowned-account", "house",
            ])
            try #require(settle.status == 0, "\(store): \(settle.stderr)")
            #expect(!settle.stderr.contains(": 0 trades settled"), "trades were settled: \(settle.stderr)")
            let verify = try await CastleProcess.run(["ledger", "verify", "--store", store])
            #expect(verify.status == 0, "\(store): \(verify.stderr)")
        }
        func balances(_ store: String) async throws -> [String] {
            let run = try await CastleProcess.run(["ledger", "balances", "--store", store, "--format", "ndjson"])
            try #require(run.status == 0, "\(run.stderr)")
            return run.lines.sorted()
        }
        let post = try await CastleProcess.run([
            "ledger", "post", fundsFile, "--store", source, "--instruments", instruments,
        ])
        try #require(post.status == 0, "\(post.stderr)")
        try await Self.enqueue(region, into: source, lines: Self.firstPart, name: "first")
        try await matchAndSettle(source)

        let key = "a residency key of enough bytes"
        let policy = try directory.write(
            "policy.json",
            #"{"policy": "eu-pseudonymised", "accounts": "pseudonymise", "key_env": "SNAPSHOT_TEST_KEY", "exchange_owners": ["house"]}"#
        )
        let archive = directory.path("pseudo.tar.gz")
        let create = try await CastleProcess.run(
            [
                "snapshot", "create", "--store", source, "--residency", policy, "--compression", "gzip", "-o",
                archive,
            ],
            environment: ["SNAPSHOT_TEST_KEY": key]
        )
        try #require(create.status == 0, "\(create.stderr)")
        let residency = try #require(try await Self.manifest(archive)["residency"] as? [String: Any])
        for name in ["ledger_entries.postings.account", "ledger_balances.account"] {
            #expect((residency["pseudonymised"] as? [String])?.contains(name) == true, "the manifest names \(name)")
        }

        // Every member decompressed, its text blobs decoded: no user's account id as a whole word anywhere.
        let python = try #require(CastleProcess.which("python3"), "python3 reads the archive")
        let scan = """
            import base64, json, re, sys, tarfile
            with tarfile.open(sys.argv[1], "r:*") as tar:
                members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
            manifest = json.loads(members["manifest.json"])
            texts = [members["manifest.json"].decode()]
            for table in manifest["tables"]:
                blobs = {c["name"] for c in table["columns"] if c["type"] == "blob"}
                for line in members[table["file"]].decode().splitlines():
                    for name, value in json.loads(line).items():
                        if isinstance(value, str) and name not in blobs:
                            texts.append(value)
                        elif isinstance(value, str):
                            try:  # the blobs that are text (the matcher's event runs), not the content hashes
                                texts.append(base64.b64decode(value).decode("utf-8"))
                            except UnicodeDecodeError:
                                pass
            text = "\\n".join(texts)
            for owner in sys.argv[2:]:
                words = re.findall("(?<![A-Za-z0-9._-])" + re.escape(owner) + "(?![A-Za-z0-9._-])", text)
                print(owner, len(words))
            """
        let scanned = try await CastleProcess.shell([python, "-c", scan, archive] + accounts + ["house"])
        try #require(scanned.status == 0, "\(scanned.stderr)")
        let counts = Dictionary(
            uniqueKeysWithValues: scanned.lines.map { line in
                let parts = line.split(separator: " ")
                return (String(parts[0]), Int(parts[1]) ?? -1)
            }
        )
        #expect((counts["house"] ?? 0) > 0, "the scan finds a clear owner: the house's, kept")
        for account in accounts {
            #expect(counts[account] == 0, "\(account) is in clear \(counts[account] ?? -1) times")
        }

        let target = "sqlite://\(directory.path("pseudo.db"))"
        try await Self.restore(archive, into: target)
        let verify = try await CastleProcess.run(["ledger", "verify", "--store", target])
        #expect(verify.status == 0, "\(verify.stderr)")
        let pseudonyms = try await Self.hmac(accounts, key: key)
        func pseudonymised(_ lines: [String]) -> [String] {
            lines.map { line in
                var text = line
                for (account, pseudonym) in pseudonyms {
                    text = text.replacingOccurrences(
                        of: #""account":"available:\#(account)""#,
                        with: #""account":"available:\#(pseudonym)""#
                    )
                }
                return text
            }.sorted()
        }
        let sourceBalances = try await balances(source)
        #expect(sourceBalances.contains { $0.contains(#""account":"available:a1""#) })
        #expect(try await balances(target) == pseudonymised(sourceBalances), "the same amounts, pseudonymised")

        // Both regions finish the day and settle it; the target's part arrives with pseudonymised accounts.
        try await Self.enqueue(region, into: source, lines: Self.secondPart, name: "second")
        try await matchAndSettle(source)
        let pseudoRegion = Region(
            directory: directory,
            store: TestStore(url: target),
            lines: region.lines.map { line in
                var text = String(line)
                for (account, pseudonym) in pseudonyms {
                    text = text.replacingOccurrences(
                        of: #""account":"\#(account)""#,
                        with: #""account":"\#(pseudonym)""#
                    )
                }
                return Substring(text)
            }
        )
        try await Self.enqueue(pseudoRegion, into: target, lines: Self.secondPart, name: "second-pseudo")
        try await matchAndSettle(target)
        #expect(try await balances(target) == pseudonymised(try await balances(source)), "settled as the source")
    }

    /// HMAC-SHA-256 of each account under `key`, as hex, computed outside castle (Python's hmac).
    static func hmac(_ accounts: [String], key: String) async throws -> [String: String] {
        let python = try #require(CastleProcess.which("python3"), "python3 computes the expected pseudonyms")
        let script = """
            import hmac, hashlib, sys
            key = sys.argv[1].encode()
            for account in sys.argv[2:]:
                print(account, hmac.new(key, account.encode(), hashlib.sha256).hexdigest())
            """
        let result = try await CastleProcess.shell([python, "-c", script, key] + accounts)
        try #require(result.status == 0, "\(result.stderr)")
        var map: [String: String] = [:]
        for line in result.lines {
            let parts = line.split(separator: " ")
            map[String(parts[0])] = String(parts[1])
        }
        return map
    }

    // MARK: Cross-region drill

    static var s3Tools: (moto: String, aws: String)? {
        guard let moto = CastleProcess.which("moto_server"), let aws = CastleProcess.which("aws") else { return nil }
        return (moto, aws)
    }

    /// Region A streams its snapshot into S3 (moto on loopback) with `aws s3 cp -`; region B streams it
    /// back out of S3 into its own store; B resumes as A does.
    @Test(
        .enabled(
            if: s3Tools != nil,
            "moto_server and aws are not on PATH: bin/setup.sh installs them (pip install 'moto[server]' awscli); crossRegionDrillThroughFiles runs the same flow through files"
        )
    )
    func crossRegionDrillThroughS3() async throws {
        let tools = try #require(Self.s3Tools)
        let source = try await Self.makeRegion("sqlite")
        let server = try await MotoServer.start(tools.moto, directory: source.directory)
        defer { server.stop() }
        let aws = "\(tools.aws) --endpoint-url \(server.endpoint)"
        let environment = [
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
        ]
        let bucket = try await CastleProcess.shell(
            ["/bin/sh", "-c", "\(aws) s3 mb s3://castle-drill"],
            environment: environment
        )
        try #require(bucket.status == 0, "\(bucket.stderr)")
        let castle = CastleProcess.binary
        let upload = try await CastleProcess.shell(
            [
                "/bin/bash", "-c",
                "set -o pipefail; '\(castle)' snapshot create --store '\(source.store.url)' -o - -q | \(aws) s3 cp - s3://castle-drill/eu.tar.zst",
            ],
            environment: environment
        )
        #expect(upload.status == 0, "\(upload.stderr)")
        let target = "sqlite://\(source.directory.path("us-east-1.db"))"
        let download = try await CastleProcess.shell(
            [
                "/bin/bash", "-c",
                "set -o pipefail; \(aws) s3 cp s3://castle-drill/eu.tar.zst - | '\(castle)' snapshot restore - --into '\(target)' --region us-east-1",
            ],
            environment: environment
        )
        #expect(download.status == 0, "\(download.stderr)")
        try await Self.finishTheDayInBoth(source, target: target)
    }

    /// The same drill through files, which always runs.
    @Test func crossRegionDrillThroughFiles() async throws {
        let source = try await Self.makeRegion("sqlite")
        let archive = source.directory.path("eu.tar.zst")
        try await Self.snapshot(source.store.url, to: archive)
        let target = "sqlite://\(source.directory.path("us-east-1.db"))"
        try await Self.restore(archive, into: target, extra: ["--region", "us-east-1"])
        try await Self.finishTheDayInBoth(source, target: target)
    }

    static func finishTheDayInBoth(_ source: Region, target: String) async throws {
        for url in [source.store.url, target] {
            try await Self.enqueue(source, into: url, lines: Self.secondPart, name: "second")
            try await Self.drain(url)
        }
        let expected = try await Self.events(source.store.url)
        #expect(firstDifference(try await Self.events(target), expected) == nil, "region B resumed as A did")
    }
}

/// moto's S3 server on a free loopback port, for one test.
final class MotoServer: @unchecked Sendable {
    let process = Process()
    let endpoint: String

    private init(endpoint: String) { self.endpoint = endpoint }

    static func start(_ moto: String, directory: TemporaryDirectory) async throws -> MotoServer {
        let python = try #require(CastleProcess.which("python3"))
        let probe = try await CastleProcess.shell([
            python, "-c", "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])",
        ])
        let port = probe.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        let server = MotoServer(endpoint: "http://127.0.0.1:\(port)")
        server.process.executableURL = URL(fileURLWithPath: moto)
        server.process.arguments = ["-H", "127.0.0.1", "-p", port]
        server.process.standardInput = FileHandle.nullDevice
        server.process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        _ = FileManager.default.createFile(atPath: directory.path("moto.log"), contents: nil)
        server.process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: directory.path("moto.log")))
        try server.process.run()
        // Ready when it answers HTTP.
        let curl = try #require(CastleProcess.which("curl") ?? CastleProcess.which("python3"))
        let check =
            curl.hasSuffix("curl")
            ? [curl, "-sf", "-o", "/dev/null", server.endpoint]
            : [curl, "-c", "import urllib.request; urllib.request.urlopen('\(server.endpoint)')"]
        let ready = try await eventually("moto answers on \(server.endpoint)") {
            try await CastleProcess.shell(check).status == 0 || !server.process.isRunning
        }
        try #require(
            ready && server.process.isRunning,
            "moto did not start: \((try? directory.read("moto.log")) ?? "")"
        )
        return server
    }

    /// SIGKILL: moto's server outlived SIGTERM in full runs and was left behind on its port.
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}
