import Foundation
import Testing

/// `castle generate payments` and `castle reconcile` through the built binary: the injected breaks and
/// nothing else, exit codes, stored runs on SQLite and PostgreSQL, the lock, kill -9 and rerun.
@Suite struct ReconcileCLITests {
    /// A generated payments day in `directory/day`.
    func day(_ directory: TemporaryDirectory, seed: Int = 7, count: Int = 3000) async throws -> String {
        let out = directory.path("day")
        let generated = try await CastleProcess.run([
            "generate", "payments", "--seed", "\(seed)", "--count", "\(count)", "--break-rate", "0.05", "-o", out,
        ])
        try #require(generated.status == 0, "\(generated.stderr)")
        return out
    }

    func reconcileArguments(_ day: String) -> [String] {
        [
            "reconcile", "--source", "\(day)/stripe.csv", "--source", "\(day)/bank.camt053.xml", "--ledger",
            "\(day)/ledger.ndjson",
        ]
    }

    /// `class [external] [ledger]` per break of an NDJSON report, sorted; the same of an answer key.
    static func breaks(_ report: String) throws -> [String] {
        try report.split(separator: "\n").compactMap { line -> String? in
            let object = try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let resultClass = object["class"] as? String ?? ""
            if resultClass == "matched" || object["resolution"] != nil { return nil }
            if resultClass == "balance_proof" { return object["ok"] as? Bool == true ? nil : "balance_proof" }
            let external = (object["external"] as? [String] ?? []).joined(separator: ",")
            let ledger = (object["ledger"] as? [String] ?? []).joined(separator: ",")
            return "\(resultClass) [\(external)] [\(ledger)]"
        }.sorted()
    }

    static func answers(_ key: String) throws -> [String] {
        try breaks(key)
    }

    @Test func aGeneratedDayReportsExactlyItsInjectedBreaks() async throws {
        let directory = try TemporaryDirectory()
        let day = try await day(directory)
        let result = try await CastleProcess.run(reconcileArguments(day) + ["--format", "ndjson"])
        #expect(result.status == 1, "breaks found: exit 1. \(result.stderr)")
        let expected = try Self.answers(try String(contentsOfFile: "\(day)/answers.ndjson", encoding: .utf8))
        #expect(!expected.isEmpty)
        #expect(try Self.breaks(result.stdoutText) == expected)
        #expect(result.stderr.contains("castle reconcile: "), "\(result.stderr)")
        #expect(result.stderr.contains("breaks (") && result.stderr.contains("; run r-"), "\(result.stderr)")
        let again = try await CastleProcess.run(reconcileArguments(day) + ["--format", "ndjson"])
        #expect(firstDifference(again.stdout, result.stdout) == nil, "byte-identical on a rerun")
    }

    @Test func csvAndTableAndAnOutputFile() async throws {
        let directory = try TemporaryDirectory()
        let day = try await day(directory, count: 300)
        let csv = try await CastleProcess.run(
            reconcileArguments(day) + ["--format", "csv", "-o", directory.path("report.csv"), "-q"]
        )
        #expect(csv.status == 1 && csv.stdout.isEmpty && csv.stderr.isEmpty, "\(csv.stderr)")
        let text = try String(contentsOfFile: directory.path("report.csv"), encoding: .utf8)
        #expect(
            text.hasPrefix("run,class,rule,source,external,ledger,currency,external_amount,ledger_amount,difference")
        )
        let table = try await CastleProcess.run(reconcileArguments(day) + ["--format", "table"])
        #expect(table.lines.first?.hasPrefix("class") == true)
        #expect(table.stdoutText.contains("balance_proof") && table.stdoutText.contains("adds up"))
    }

    @Test func aCleanDayExitsZero() async throws {
        let directory = try TemporaryDirectory()
        let out = directory.path("clean")
        let generated = try await CastleProcess.run([
            "generate", "payments", "--seed", "3", "--count", "400", "--break-rate", "0", "-o", out,
        ])
        try #require(generated.status == 0)
        let result = try await CastleProcess.run(reconcileArguments(out))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains(" 0 breaks;"), "\(result.stderr)")
    }

    @Test func badInputUsageAndMissingFiles() async throws {
        let directory = try TemporaryDirectory()
        let day = try await day(directory, count: 50)
        let bad = try directory.write(
            "bad.csv",
            "id,amount,available_on,created,currency,fee,net,source,status,type,payout_id\ntxn_1,1.5,1,1,usd,0,0,ch,available,charge,\n"
        )
        let dataError = try await CastleProcess.run([
            "reconcile", "--source", bad, "--ledger", "\(day)/ledger.ndjson",
        ])
        #expect(dataError.status == 65)
        #expect(dataError.stderr.contains("\(bad):2:"), "\(dataError.stderr)")
        let missing = try await CastleProcess.run([
            "reconcile", "--source", directory.path("nope.csv"), "--ledger", "\(day)/ledger.ndjson",
        ])
        #expect(missing.status == 66, "\(missing.stderr)")
        let usage = try await CastleProcess.run(["reconcile", "--ledger", "\(day)/ledger.ndjson"])
        #expect(usage.status == 64)
        let window = try await CastleProcess.run(reconcileArguments(day) + ["--from", "2026-12-02"])
        #expect(window.status == 64, "--from without --to")
        let sinceLast = try await CastleProcess.run(reconcileArguments(day) + ["--since-last"])
        #expect(sinceLast.status == 64, "--since-last needs a store")
        let bomb = try directory.write(
            "bomb.xml",
            "<?xml version=\"1.0\"?><!DOCTYPE d [<!ENTITY a \"aaaa\">]><Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02\">&a;</Document>"
        )
        let refused = try await CastleProcess.run(["reconcile", "--source", bomb, "--ledger", "\(day)/ledger.ndjson"])
        #expect(refused.status == 65 && refused.stderr.contains("document type declaration"), "\(refused.stderr)")
    }

    @Test func aWindowNarrowsBothSides() async throws {
        let directory = try TemporaryDirectory()
        let day = try await day(directory, count: 300)
        let all = try await CastleProcess.run(reconcileArguments(day) + ["--format", "ndjson"])
        let first = try await CastleProcess.run(
            reconcileArguments(day) + ["--format", "ndjson", "--from", "2026-12-01", "--to", "2026-12-02"]
        )
        #expect(first.lines.count < all.lines.count && !first.lines.isEmpty, "\(first.stderr)")
    }

    @Test(arguments: TestStore.kinds)
    func storedRunsShowResolveAndSinceLast(_ kind: String) async throws {
        let directory = try TemporaryDirectory()
        let store = try await TestStore.make(kind, in: directory)
        let up = try await CastleProcess.run(["migrate", "up", "--store", store.url])
        try #require(up.status == 0, "\(up.stderr)")
        let day = try await day(directory, count: 500)
        let first = try await CastleProcess.run(reconcileArguments(day) + ["--store", store.url, "--format", "ndjson"])
        #expect(first.status == 1, "\(first.stderr)")
        let run = try #require(first.stderr.components(separatedBy: "; run ").last?.prefix { $0 != "\n" })
        // The same window again: the same report, nothing stored twice.
        let second = try await CastleProcess.run(
            reconcileArguments(day) + ["--store", store.url, "--format", "ndjson"]
        )
        #expect(firstDifference(second.stdout, first.stdout) == nil)
        let shown = try await CastleProcess.run([
            "reconcile", "show", String(run), "--store", store.url, "--format", "ndjson",
        ])
        #expect(shown.status == 0, "\(shown.stderr)")
        #expect(firstDifference(shown.stdout, first.stdout) == nil, "show prints the stored report")
        let shownCSV = try await CastleProcess.run([
            "reconcile", "show", String(run), "--store", store.url, "--format", "csv",
        ])
        #expect(shownCSV.lines.count == first.lines.count + 1)
        // Resolve one break: later runs list it with the note and no longer count it.
        let breaks = try Self.breaks(first.stdoutText)
        let target = try #require(breaks.first { $0.hasPrefix("unmatched_ledger") || $0.hasPrefix("amount_mismatch") })
        let record = String(
            target.split(separator: "[").dropFirst().map { $0.prefix { $0 != "]" } }.first { !$0.isEmpty }!.split(
                separator: ","
            ).first!
        )
        let resolved = try await CastleProcess.run([
            "reconcile", "resolve", String(run), record, "--note", "booked by hand", "--store", store.url,
        ])
        #expect(resolved.status == 0, "\(resolved.stderr)")
        let unknown = try await CastleProcess.run([
            "reconcile", "resolve", String(run), "no-such-record", "--note", "x", "--store", store.url,
        ])
        #expect(unknown.status == 66)
        let after = try await CastleProcess.run(reconcileArguments(day) + ["--store", store.url, "--format", "ndjson"])
        #expect(try Self.breaks(after.stdoutText).count == breaks.count - 1)
        #expect(after.stdoutText.contains("\"resolution\":\"booked by hand\""))
        // --since-last: everything is behind the watermarks now, so nothing is left to reconcile.
        let sinceLast = try await CastleProcess.run(
            reconcileArguments(day) + ["--store", store.url, "--format", "ndjson", "--since-last", "--dry-run"]
        )
        #expect(
            sinceLast.status == 0 && sinceLast.stdout.isEmpty,
            "\(sinceLast.stderr) \(sinceLast.stdoutText.prefix(300))"
        )
    }

    /// Issue 9's "done when": a generated payments day posted with `castle ledger post` into a store whose
    /// matched trades are then settled (with the sample instruments, so USD is kept at 6 decimals there, as
    /// a ledger that settles trades keeps it, while the processor and the bank speak cents), reconciled
    /// against the store's ledger (no --ledger), gives exactly the injected breaks, and the same report as
    /// the entries file does; on SQLite and on PostgreSQL with only the URL changed.
    @Test(arguments: TestStore.kinds)
    func theStoresLedgerGivesExactlyTheInjectedBreaks(_ kind: String) async throws {
        let matched = try await LedgerCLITests.matchedDay(kind, orders: 3_000)
        let (directory, store) = (matched.directory, matched.store)
        let day = try await day(directory, seed: 21, count: 1500)
        let posted = try await CastleProcess.run(
            ["ledger", "post", "\(day)/ledger.ndjson", "--store", store.url, "--instruments", matched.instruments]
        )
        try #require(posted.status == 0, "\(posted.stderr)")
        let settled = try await CastleProcess.run(LedgerCLITests.settle(matched))
        try #require(settled.status == 0, "\(settled.stderr)")
        let sources = ["--source", "\(day)/stripe.csv", "--source", "\(day)/bank.camt053.xml"]
        let fromStore = try await CastleProcess.run(
            ["reconcile"] + sources + ["--store", store.url, "--format", "ndjson", "--dry-run"]
        )
        #expect(fromStore.status == 1, "\(fromStore.stderr)")
        let expected = try Self.answers(try String(contentsOfFile: "\(day)/answers.ndjson", encoding: .utf8))
        #expect(try Self.breaks(fromStore.stdoutText) == expected)
        let fromFile = try await CastleProcess.run(reconcileArguments(day) + ["--format", "ndjson"])
        #expect(firstDifference(fromStore.stdout, fromFile.stdout) == nil, "the store's ledger is the file's")
    }

    @Test func aSecondOverlappingRunExits75AndKillNineThenRerunGivesTheSameReport() async throws {
        let directory = try TemporaryDirectory()
        let url = "sqlite://\(directory.path("castle.db"))"
        try #require(try await CastleProcess.run(["migrate", "up", "--store", url]).status == 0)
        let big = try await day(directory, seed: 9, count: 200_000)
        // The report a clean run gives, with no store involved.
        let clean = try await CastleProcess.run(reconcileArguments(big) + ["--format", "ndjson", "-q"])
        #expect(clean.status == 1)
        let first = try Background(
            reconcileArguments(big) + ["--store", url, "--format", "ndjson", "-o", directory.path("report.ndjson")],
            stderrPath: directory.path("first.err")
        )
        #expect(await first.waitFor("castle reconcile: reading"), "the first run holds the lock: \(first.stderr)")
        let second = try await CastleProcess.run(reconcileArguments(big) + ["--store", url])
        #expect(second.status == 75, "\(second.stderr)")
        #expect(second.stderr.contains("lock"))
        #expect(await first.killHard(), "killed while it still worked")
        #expect(!FileManager.default.fileExists(atPath: directory.path("report.ndjson")), "no half-written report")
        let rerun = try await CastleProcess.run(
            reconcileArguments(big) + ["--store", url, "--format", "ndjson", "-o", directory.path("report.ndjson")]
        )
        #expect(rerun.status == 1, "\(rerun.stderr)")
        let written = try Data(contentsOf: URL(fileURLWithPath: directory.path("report.ndjson")))
        #expect(firstDifference(written, clean.stdout) == nil, "the rerun's report is the clean run's")
    }

    /// The same rules as a TOML and as a JSON file give byte-identical reports; a hostile TOML file exits 65
    /// naming the file and the key.
    @Test func rulesInTOMLOrJSONGiveTheSameReport() async throws {
        let directory = try TemporaryDirectory()
        let day = try await day(directory, count: 300)
        let json = directory.path("rules.json")
        let toml = directory.path("rules.toml")
        try #"{"rules": [{"name": "ref", "match": "reference", "tolerance": "5.00", "window_days": 2}]}"#.write(
            toFile: json,
            atomically: true,
            encoding: .utf8
        )
        try "[[rules]]\nname = \"ref\"\nmatch = \"reference\"\ntolerance = \"5.00\"\nwindow_days = 2\n".write(
            toFile: toml,
            atomically: true,
            encoding: .utf8
        )
        let fromJSON = try await CastleProcess.run(reconcileArguments(day) + ["--format", "ndjson", "--rules", json])
        let fromTOML = try await CastleProcess.run(reconcileArguments(day) + ["--format", "ndjson", "--rules", toml])
        let standard = try await CastleProcess.run(reconcileArguments(day) + ["--format", "ndjson"])
        #expect(fromJSON.status == 1 && fromTOML.status == 1, "\(fromTOML.stderr)")
        #expect(!fromJSON.stdout.isEmpty)
        #expect(firstDifference(fromJSON.stdout, fromTOML.stdout) == nil, "byte-identical reports")
        #expect(firstDifference(fromJSON.stdout, standard.stdout) != nil, "the rules file changes the report")
        let hostile: [(String, String)] = [
            ("[[rules]]\nname = \"ref\"\nmatch = = \"reference\"\n", "rules.toml:3:"),
            ("[[rules]]\nname = \"ref\"\nmatch = \"reference\"\ntolerence = \"1\"\n", "unknown member \"tolerence\""),
            ("[[rules]]\nname = \"ref\"\nmatch = \"reference\"\ntolerance = 0.5\n", "tolerance is a number"),
            (
                "[[rules]]\nname = \"ref\"\nmatch = \"reference\"\nwindow_days = \"2\"\n",
                "window_days is not an integer"
            ),
        ]
        for (text, expected) in hostile {
            try text.write(toFile: toml, atomically: true, encoding: .utf8)
            let refused = try await CastleProcess.run(reconcileArguments(day) + ["--rules", toml])
            #expect(refused.status == 65, "\(text): \(refused.stderr)")
            #expect(refused.stderr.contains(toml) && refused.stderr.contains(expected), "\(refused.stderr)")
        }
    }

    /// A record an earlier stored run over other days claimed is a `duplicate` naming that run, and its
    /// ledger entry is not matched or reported again; a rerun of the same days is not a duplicate of itself.
    @Test func aRecordClaimedByARunOverOtherDaysIsADuplicateOfIt() async throws {
        let directory = try TemporaryDirectory()
        let url = "sqlite://\(directory.path("castle.db"))"
        try #require(try await CastleProcess.run(["migrate", "up", "-q", "--store", url]).status == 0)
        let day = try await day(directory, seed: 11, count: 600)
        let first = ["--from", "2026-12-01", "--to", "2026-12-03"]
        let second = ["--from", "2026-12-02", "--to", "2026-12-04"]
        func objects(_ text: String) throws -> [[String: Any]] {
            try text.split(separator: "\n").map {
                try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
            }
        }
        func strings(_ object: [String: Any], _ key: String) -> [String] { object[key] as? [String] ?? [] }
        let a = try await CastleProcess.run(reconcileArguments(day) + first + ["--store", url, "--format", "ndjson"])
        #expect(a.status == 1, "\(a.stderr)")
        let runA = try #require(a.stderr.components(separatedBy: "; run ").last?.prefix { $0 != "\n" })
        var claimedIDs: Set<String> = []
        var claimedKeys: Set<String> = []
        for object in try objects(a.stdoutText) where !strings(object, "external").isEmpty {
            if strings(object, "ledger").isEmpty { continue }
            claimedIDs.formUnion(strings(object, "external"))
            claimedKeys.formUnion(strings(object, "ledger"))
        }
        #expect(!claimedIDs.isEmpty && !claimedKeys.isEmpty)
        // The second window without a store: what it reads, as if no run came before.
        let alone = try await CastleProcess.run(reconcileArguments(day) + second + ["--format", "ndjson"])
        let overlap = Set(try objects(alone.stdoutText).flatMap { strings($0, "external") }).intersection(claimedIDs)
        #expect(!overlap.isEmpty, "the windows share a day")
        let b = try await CastleProcess.run(reconcileArguments(day) + second + ["--store", url, "--format", "ndjson"])
        #expect(b.status == 1, "\(b.stderr)")
        var duplicates: Set<String> = []
        for object in try objects(b.stdoutText) {
            #expect(strings(object, "ledger").allSatisfy { !claimedKeys.contains($0) }, "\(object)")
            guard let earlier = object["earlier_run"] as? String else {
                // A second copy within the export is a duplicate of the first, which names the earlier run.
                if object["class"] as? String == "duplicate" { continue }
                #expect(strings(object, "external").allSatisfy { !claimedIDs.contains($0) }, "\(object)")
                continue
            }
            #expect(earlier == String(runA) && object["class"] as? String == "duplicate", "\(object)")
            duplicates.formUnion(strings(object, "external"))
        }
        #expect(duplicates == overlap)
        // Reruns of the same days: the same reports, byte for byte, and nothing stored twice.
        let againA = try await CastleProcess.run(
            reconcileArguments(day) + first + ["--store", url, "--format", "ndjson"]
        )
        #expect(firstDifference(againA.stdout, a.stdout) == nil, "a rerun is not a duplicate of itself")
        let againB = try await CastleProcess.run(
            reconcileArguments(day) + second + ["--store", url, "--format", "ndjson"]
        )
        #expect(firstDifference(againB.stdout, b.stdout) == nil)
        let csv = try await CastleProcess.run(reconcileArguments(day) + second + ["--store", url, "--format", "csv"])
        #expect(csv.lines.first?.hasSuffix(",resolution,earlier_run") == true)
        #expect(csv.stdoutText.contains(",\(runA)\n"), "the CSV names the earlier run too")
    }
}
