import Foundation
import Testing

/// The grammar every subcommand follows (docs/cli.md): one input as FILE, `-` or -i; --queue means the
/// queue; typed values; --version, completions and help that reads at 80 columns.
@Suite struct GrammarCLITests {
    static let orders = """
        {"op":"new","id":1,"symbol":"X","side":"sell","price":"101","qty":"5","ts":1000000000}
        {"op":"new","id":2,"symbol":"X","side":"sell","price":"102","qty":"5","ts":2000000000}
        {"op":"new","id":3,"symbol":"X","side":"buy","price":"101","qty":"2","ts":3000000000}
        {"op":"new","id":4,"symbol":"X","side":"buy","price":"102","qty":"6","ts":61000000000}
        {"op":"cancel","id":2,"ts":62000000000}

        """

    /// The same output for FILE, `-i FILE` and `-` with the file on stdin; FILE and -i together is exit 64.
    @Test(arguments: [["match"], ["replay", "--symbol", "X"]])
    func inputIsAnArgumentADashOrDashI(_ command: [String]) async throws {
        let directory = try TemporaryDirectory()
        let file = try directory.write("day.ndjson", Self.orders)
        let positional = try await CastleProcess.run(command + [file, "-q"])
        #expect(positional.status == 0, "\(positional.stderr)")
        #expect(!positional.stdout.isEmpty)
        let synonym = try await CastleProcess.run(command + ["-i", file, "-q"])
        #expect(synonym.status == 0, "\(synonym.stderr)")
        #expect(synonym.stdout == positional.stdout)
        let dash = try await CastleProcess.run(command + ["-", "-q"], stdin: Data(Self.orders.utf8))
        #expect(dash.status == 0, "\(dash.stderr)")
        #expect(dash.stdout == positional.stdout)
        let dashI = try await CastleProcess.run(command + ["-i", "-", "-q"], stdin: Data(Self.orders.utf8))
        #expect(dashI.stdout == positional.stdout)
        let both = try await CastleProcess.run(command + [file, "-i", file])
        #expect(both.status == 64, "\(both.stderr)")
        #expect(both.stderr.contains("not both"), "\(both.stderr)")
        #expect(both.stdout.isEmpty)
    }

    func migrated(_ directory: TemporaryDirectory, _ name: String = "castle.db") async throws -> String {
        let url = "sqlite://\(directory.path(name))"
        let up = try await CastleProcess.run(["migrate", "up", "--store", url, "-q"])
        #expect(up.status == 0, "\(up.stderr)")
        return url
    }

    @Test func ingestTakesFileDashOrDashI() async throws {
        let directory = try TemporaryDirectory()
        let url = try await migrated(directory)
        let file = try directory.write("day.ndjson", Self.orders)
        let positional = try await CastleProcess.run(["ingest", file, "--store", url, "--dataset", "a"])
        #expect(positional.status == 0, "\(positional.stderr)")
        #expect(positional.stderr.contains("5 rows, 5 new"), "\(positional.stderr)")
        let synonym = try await CastleProcess.run(["ingest", "-i", file, "--store", url, "--dataset", "b"])
        #expect(synonym.stderr.contains("5 rows, 5 new"), "\(synonym.stderr)")
        let dash = try await CastleProcess.run(
            ["ingest", "-", "--store", url, "--dataset", "c"],
            stdin: Data(Self.orders.utf8)
        )
        #expect(dash.stderr.contains("5 rows, 5 new"), "\(dash.stderr)")
        let stdinNeedsAName = try await CastleProcess.run(
            ["ingest", "-", "--store", url],
            stdin: Data(Self.orders.utf8)
        )
        #expect(stdinNeedsAName.status == 64 && stdinNeedsAName.stderr.contains("--dataset"))
        let both = try await CastleProcess.run(["ingest", file, "-i", file, "--store", url])
        #expect(both.status == 64, "\(both.stderr)")
        let replayed = try await CastleProcess.run(["replay", "--store", url, "--dataset", "c", "--symbol", "X", "-q"])
        let direct = try await CastleProcess.run(["replay", file, "--symbol", "X", "-q"])
        #expect(replayed.status == 0 && replayed.stdout == direct.stdout, "\(replayed.stderr)")
    }

    /// `ingest FILE --queue URL` loads the queue, not a dataset of the store, and the worker matches it.
    @Test func ingestWithAQueueLoadsTheQueue() async throws {
        let directory = try TemporaryDirectory()
        let url = try await migrated(directory)
        let file = try directory.write("day.ndjson", Self.orders)
        let ingest = try await CastleProcess.run(["ingest", file, "--queue", url])
        #expect(ingest.status == 0, "\(ingest.stderr)")
        #expect(ingest.stderr.contains("into the queue"), "\(ingest.stderr)")
        let queue = try await CastleProcess.run(["queue", "--queue", url])
        #expect(queue.stderr.contains("depth 5"), "\(queue.stderr)")
        let written = try await CastleProcess.run(["queue", "--queue", url, "-o", directory.path("dead.ndjson"), "-q"])
        #expect(written.status == 0 && written.stderr.isEmpty, "-q: no summary: \(written.stderr)")
        #expect(try directory.read("dead.ndjson") == "", "-o: the dead letters (none) in a file")
        let noDataset = try await CastleProcess.run(["replay", "--store", url, "--dataset", "day", "--symbol", "X"])
        #expect(noDataset.status == 66, "no dataset was written: \(noDataset.stderr)")
        let drained = try await CastleProcess.run(["match", "--queue", url, "--drain", "-q"])
        #expect(drained.status == 0, "\(drained.stderr)")
        let events = try await CastleProcess.run(["events", "--store", url])
        let direct = try await CastleProcess.run(["match", file, "-q"])
        #expect(events.status == 0 && events.stdout == direct.stdout, "\(events.stderr)")
        let contradiction = try await CastleProcess.run(["ingest", file, "--queue", url, "--into", "store"])
        #expect(contradiction.status == 64, "\(contradiction.stderr)")
    }

    /// The worker commits its queue offset and its results in one transaction: one backend.
    @Test func aQueueAndAStoreOnDifferentBackendsAreAUsageError() async throws {
        let directory = try TemporaryDirectory()
        let one = try await migrated(directory, "one.db")
        let other = try await migrated(directory, "other.db")
        let file = try directory.write("day.ndjson", Self.orders)
        for command in [
            ["match", "--queue", one, "--store", other, "--drain"],
            ["ingest", file, "--queue", one, "--store", other],
            ["queue", "--queue", one, "--store", other],
        ] {
            let result = try await CastleProcess.run(command)
            #expect(result.status == 64, "\(command): \(result.stderr)")
            #expect(result.stderr.contains("same backend"), "\(command): \(result.stderr)")
        }
        let same = try await CastleProcess.run(["match", "--queue", one, "--store", one, "--drain", "-q"])
        #expect(same.status == 0, "\(same.stderr)")
    }

    @Test(arguments: [
        ["events", "--partition", "2/2"], ["queue", "--partition", "1/0"], ["match", "--drain", "--partition", "x"],
        ["events", "--partition", "-1/2"], ["match", "--partition", "0/2000"],
    ])
    func aBadPartitionIsAUsageErrorThatSaysKN(_ command: [String]) async throws {
        let result = try await CastleProcess.run(command + ["--store", "memory://grammar"])
        #expect(result.status == 64, "\(result.stderr)")
        #expect(result.stderr.contains("--partition"), "\(result.stderr)")
        #expect(result.stderr.contains("K/N"), "the help says what a partition is: \(result.stderr)")
    }

    @Test func typedOptionsRefuseOtherValues() async throws {
        for (command, valid) in [
            (["replay", "--format", "xml"], "csv"), (["replay", "--mode", "fast"], "rematch"),
            (["replay", "--input-format", "csv"], "lobster"), (["ingest", "--input-format", "xml"], "lobster"),
        ] {
            let result = try await CastleProcess.run(command, stdin: Data())
            #expect(result.status == 64, "\(command): \(result.stderr)")
            #expect(result.stderr.contains(valid), "\(command) lists the valid values: \(result.stderr)")
        }
    }

    @Test func versionShowsTheCommitAndTheSchema() async throws {
        let result = try await CastleProcess.run(["--version"])
        #expect(result.status == 0, "\(result.stderr)")
        let line = result.stdoutText.trimmingCharacters(in: .newlines)
        #expect(line.hasPrefix("castle "), "\(line)")
        #expect(line.contains("(commit "), "\(line)")
        #expect(line.range(of: #"schema [0-9]+\)$"#, options: .regularExpression) != nil, "\(line)")
    }

    @Test(arguments: ["bash", "zsh", "fish"])
    func completionScripts(_ shell: String) async throws {
        let result = try await CastleProcess.run(["--generate-completion-script", shell])
        #expect(result.status == 0, "\(result.stderr)")
        for word in ["castle", "match", "replay", "ingest", "migrate", "--store"] {
            #expect(result.stdoutText.contains(word), "\(shell) completion knows \(word)")
        }
    }

    static let helps: [[String]] = [
        [], ["match"], ["replay"], ["ingest"], ["migrate"], ["migrate", "status"], ["migrate", "up"],
        ["migrate", "down"], ["migrate", "verify"], ["events"], ["queue"], ["generate"], ["generate", "orders"],
        ["generate", "instruments"], ["bench"], ["bench", "match"],
    ]

    func help(_ command: [String]) async throws -> CastleProcess.Result {
        try await CastleProcess.shell(["/usr/bin/env", "COLUMNS=80", CastleProcess.binary] + command + ["--help"])
    }

    @Test func topLevelHelpListsEveryExitCode() async throws {
        let result = try await help([])
        #expect(result.status == 0)
        for code in [0, 1, 10, 11, 12, 64, 65, 66, 69, 70, 73, 74, 75, 78] {
            #expect(
                result.lines.contains { $0.hasPrefix("  \(code) ") },
                "exit code \(code) in castle --help:\n\(result.stdoutText)"
            )
        }
    }

    @Test(arguments: helps)
    func helpFitsEightyColumns(_ command: [String]) async throws {
        let result = try await help(command)
        #expect(result.status == 0, "\(command): \(result.stderr)")
        for line in result.lines {
            #expect(line.count <= 80, "castle \(command.joined(separator: " ")) --help: \(line.count) columns: \(line)")
        }
    }
}
