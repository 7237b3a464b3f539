import Foundation
import Testing

/// The real LOBSTER sample days, beside the project (../shared/datasets); tests that need them skip
/// with a message when they are absent.
enum SharedData {
    static var lobster: URL? {
        let base: URL
        if let path = ProcessInfo.processInfo.environment["CASTLE_SHARED_DATASETS"] {
            base = URL(fileURLWithPath: path)
        } else {
            base = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/datasets")
        }
        let dir = base.appendingPathComponent("lobster")
        return FileManager.default.fileExists(atPath: dir.path) ? dir : nil
    }

    static func file(_ name: String) -> String { lobster!.appendingPathComponent(name).path }
    static let googMessages = "GOOG_2012-06-21_34200000_57600000_message_1.csv"
    static let googBook = "GOOG_2012-06-21_34200000_57600000_orderbook_1.csv"
    static let aaplMessages = "AAPL_2012-06-21_34200000_57600000_message_10.first999.csv"
    static let aaplBook = "AAPL_2012-06-21_34200000_57600000_orderbook_10.first999.csv"
}

@Suite(.enabled(if: SharedData.lobster != nil, "the LOBSTER samples are not in ../shared/datasets"))
struct LobsterReplayCLITests {
    @Test func aFullDayVerifiesRowForRow() async throws {
        let result = try await CastleProcess.run([
            "replay", "-i", SharedData.file(SharedData.googMessages), "--orderbook",
            SharedData.file(SharedData.googBook),
            "--verify", "--stats",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("verify: 49481 rows equal / 49481 rows compared"), "\(result.stderr)")
        #expect(result.stdoutText.contains("\"execute_hidden\": 3913"))
        #expect(result.stdoutText.contains("\"count\": 11678"), "trades: 7765 visible + 3913 hidden executions")
    }

    /// Snapshots after every event, in LOBSTER's layout, reproduce the orderbook file itself.
    @Test func eventSnapshotsReproduceTheOrderbookFile() async throws {
        let result = try await CastleProcess.run([
            "replay", "-q", "-i", SharedData.file(SharedData.aaplMessages), "--orderbook",
            SharedData.file(SharedData.aaplBook),
            "--snapshots", "10@event", "--format", "csv",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let expected = try String(contentsOfFile: SharedData.file(SharedData.aaplBook), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        var rows = result.lines
        #expect(rows.removeFirst().hasPrefix("time_ns,ask_price_1,ask_size_1,bid_price_1,bid_size_1"))
        #expect(rows.count == expected.count)
        // Our prices are decimals; LOBSTER's are dollars × 10000.
        func lobsterUnits(_ field: Substring) -> String {
            if field == "9999999999" || field == "-9999999999" { return String(field) }
            let parts = field.split(separator: ".", omittingEmptySubsequences: false)
            let fraction = parts.count == 2 ? String(parts[1]) : ""
            return String(
                Int(parts[0])! * 10_000
                    + (fraction.isEmpty ? 0 : Int(fraction.padding(toLength: 4, withPad: "0", startingAt: 0))!)
            )
        }
        var mismatches = 0
        for (row, want) in zip(rows, expected) {
            let fields = row.split(separator: ",", omittingEmptySubsequences: false).dropFirst()
            let converted = fields.enumerated().map {
                $0.offset % 2 == 0 ? lobsterUnits($0.element) : String($0.element)
            }
            if converted.joined(separator: ",") != want { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    @Test func aDisagreeingRowFailsVerificationWithItsLine() async throws {
        let dir = try TemporaryDirectory()
        var rows = try String(contentsOfFile: SharedData.file(SharedData.aaplBook), encoding: .utf8).split(
            separator: "\n"
        ).map(String.init)
        var fields = rows[499].split(separator: ",").map(String.init)
        fields[1] = String(Int(fields[1])! + 1)  // one more share at the best ask of row 500
        rows[499] = fields.joined(separator: ",")
        let book = try dir.write("AAPL_orderbook.csv", rows.joined(separator: "\n"))
        let result = try await CastleProcess.run([
            "replay", "-q", "-i", SharedData.file(SharedData.aaplMessages), "--orderbook", book, "--verify",
            "-o", dir.path("trades.ndjson"),
        ])
        #expect(result.status == 65)
        #expect(
            result.stderr.contains(
                "verify: 997 rows equal / 998 rows compared; first disagreement at orderbook line 500"
            ),
            "\(result.stderr)"
        )
    }

    @Test func garbledAndTruncatedFilesNameLineAndColumn() async throws {
        let dir = try TemporaryDirectory()
        let good = try String(contentsOfFile: SharedData.file(SharedData.aaplMessages), encoding: .utf8).split(
            separator: "\n"
        )
        var garbled = Array(good.prefix(20)).map(String.init)
        garbled[11] = "34200.5,1,123,abc,5859400,1"
        let path = try dir.write("X_message_10.csv", garbled.joined(separator: "\n") + "\n")
        let result = try await CastleProcess.run(["replay", "-i", path, "-o", dir.path("out.ndjson")])
        #expect(result.status == 65)
        #expect(result.stderr.contains("\(path):12:"), "\(result.stderr)")
        #expect(!dir.exists("out.ndjson"), "nothing written on failure")
        let cut = try dir.write("Y_message_10.csv", good.prefix(5).joined(separator: "\n") + "\n34200.9,1,77")
        let truncated = try await CastleProcess.run(["replay", "-i", cut])
        #expect(truncated.status == 65)
        #expect(truncated.stderr.contains("\(cut):6:"), "\(truncated.stderr)")
    }

    @Test func barsAndChart() async throws {
        let dir = try TemporaryDirectory()
        let result = try await CastleProcess.run([
            "replay", "-i", SharedData.file(SharedData.googMessages), "--orderbook",
            SharedData.file(SharedData.googBook),
            "--bars", "5m", "--format", "csv", "-o", dir.path("bars.csv"), "--chart", dir.path("day.svg"), "--checksum",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let bars = try dir.read("bars.csv").split(separator: "\n")
        #expect(bars.first == "start_ns,open,high,low,close,volume,vwap,trades")
        #expect(bars.count == 79, "6.5 hours of 5-minute bars, plus the header")
        let total = bars.dropFirst().map { Int($0.split(separator: ",")[5])! }.reduce(0, +)
        #expect(total == 706_125)
        let svg = try dir.read("day.svg")
        #expect(svg.hasPrefix("<svg") || svg.hasPrefix("<?xml"))
        #expect(svg.contains("GOOG"))
        let again = try await CastleProcess.run([
            "replay", "-q", "-i", SharedData.file(SharedData.googMessages), "--orderbook",
            SharedData.file(SharedData.googBook),
            "--bars", "5m", "--format", "csv", "--checksum",
        ])
        let sum = { (text: String) in
            text.split(separator: "\n").first { $0.hasPrefix("sha256:") }?.split(separator: " ").first
        }
        #expect(sum(result.stderr) != nil)
        #expect(sum(result.stderr) == sum(again.stderr), "same input, same bytes")
    }
}

@Suite struct RematchReplayCLITests {
    static let day = """
        {"op":"new","id":1,"symbol":"X","side":"sell","price":"101","qty":"5","ts":1000000000}
        {"op":"new","id":2,"symbol":"X","side":"sell","price":"102","qty":"5","ts":2000000000}
        {"op":"new","id":3,"symbol":"X","side":"buy","price":"101","qty":"2","ts":3000000000}
        {"op":"new","id":4,"symbol":"X","side":"buy","price":"102","qty":"6","ts":61000000000}
        {"op":"cancel","id":2,"ts":62000000000}

        """

    @Test func tradesBarsAndStatsOfARematch() async throws {
        let trades = try await CastleProcess.run(["replay", "-q", "--format", "csv"], stdin: Data(Self.day.utf8))
        #expect(trades.status == 0, "\(trades.stderr)")
        #expect(trades.lines.count == 4, "header and three trades: \(trades.stdoutText)")
        let bars = try await CastleProcess.run(
            ["replay", "-q", "--bars", "1m", "--format", "csv"],
            stdin: Data(Self.day.utf8)
        )
        #expect(
            bars.lines == [
                "start_ns,open,high,low,close,volume,vwap,trades",
                "0,101,101,101,101,2,101,1",
                "60000000000,101,102,101,102,6,101.5,2",
            ]
        )
    }

    /// The user's order queues behind the recorded one at the same price, in strict FIFO.
    @Test func injectedOrdersQueueAndFill() async throws {
        let dir = try TemporaryDirectory()
        let mine = try dir.write(
            "mine.ndjson",
            #"{"op":"new","id":1,"symbol":"X","side":"sell","price":"101","qty":"4","ts":1500000000}"# + "\n"
                + #"{"op":"new","id":2,"symbol":"X","side":"buy","price":"90","qty":"1","ts":1500000000}"# + "\n"
        )
        let result = try await CastleProcess.run(["replay", "-q", "--inject", mine], stdin: Data(Self.day.utf8))
        #expect(result.status == 0, "\(result.stderr)")
        // Recorded order 1 (5 @ 101) is ahead: buy 2 @ 101 at 3 s takes 2 of it; buy 6 @ 102 at 61 s takes
        // its last 3, then 3 of ours (our 4 @ 101), then none of 102.
        #expect(
            result.lines == [
                #"{"id":1,"symbol":"X","side":"sell","price":"101","qty":"4","filled":"3","unfilled":"1","avg_price":"101","fills":1,"time_to_first_fill_ns":59500000000,"time_to_fill_ns":null,"status":"partial","reason":null}"#,
                #"{"id":2,"symbol":"X","side":"buy","price":"90","qty":"1","filled":"0","unfilled":"1","avg_price":null,"fills":0,"time_to_first_fill_ns":null,"time_to_fill_ns":null,"status":"open","reason":null}"#,
            ]
        )
    }

    @Test func theWindowLimitsWhatIsReported() async throws {
        let result = try await CastleProcess.run(
            ["replay", "-q", "--from", "00:00:02.5", "--to", "00:01:30"],
            stdin: Data(Self.day.utf8)
        )
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.lines.count == 3, "the trades at 3 s and 61 s: \(result.stdoutText)")
        let early = try await CastleProcess.run(["replay", "-q", "--to", "00:00:02.5"], stdin: Data(Self.day.utf8))
        #expect(early.lines.isEmpty)
    }

    @Test func severalSymbolsNeedAChoice() async throws {
        let dir = try TemporaryDirectory()
        #expect(
            try await CastleProcess.run(["generate", "orders", "--count", "2000", "-o", dir.path("day.ndjson")]).status
                == 0
        )
        let result = try await CastleProcess.run(["replay", "-i", dir.path("day.ndjson"), "-o", dir.path("out")])
        #expect(result.status == 64)
        #expect(result.stderr.contains("choose it with --symbol"))
        #expect(try dir.contents() == ["day.ndjson"])
        let chosen = try await CastleProcess.run([
            "replay", "-q", "-i", dir.path("day.ndjson"), "--symbols", "ETH-USD", "--stats",
        ])
        #expect(chosen.status == 0, "\(chosen.stderr)")
        #expect(chosen.stdoutText.contains("\"symbol\": \"ETH-USD\""))
    }

    @Test func aClosedPipeEndsQuietly() async throws {
        let command =
            "set -o pipefail; '\(CastleProcess.binary)' generate orders --count 300000 | '\(CastleProcess.binary)' replay -q --symbols BTC-USD | head -n 1"
        let result = try await CastleProcess.shell(["/bin/bash", "-c", command])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.lines.count == 1)
    }

    @Test func badOptionsAreUsageErrors() async throws {
        for args in [
            ["--snapshots", "ten"], ["--bars", "1 minute"], ["--speed", "fast"], ["--from", "9.30"], ["--verify"],
        ] {
            let result = try await CastleProcess.run(["replay", "-q"] + args, stdin: Data(Self.day.utf8))
            #expect(result.status == 64, "\(args): \(result.stderr)")
        }
    }
}
