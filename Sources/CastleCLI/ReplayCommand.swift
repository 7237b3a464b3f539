import ArgumentParser
import CastleCore
import CastleSupport
import Pipeline
import Replay
import Reports
import Storage

struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Replay a recorded market day: book reconstruction or re-matching, with analytics.",
        discussion: """
            Inputs: the order-stream contract (NDJSON with ts; replayed through the matching engine, `rematch`) or a LOBSTER message file (applied to a market-by-order book, `rebuild`; with --orderbook the book is seeded from its first row and --verify checks every later row), from FILE or stdin, or a dataset of the store (--dataset). The format is inferred from the file name (*_message_*.csv is LOBSTER) unless --input-format says. Replay analyses one symbol; with several in the stream, pick one with --symbol.

            The data stream (stdout or -o) is one of: book snapshots (--snapshots LEVELS@INTERVAL), OHLCV bars (--bars INTERVAL), the day's statistics (--stats), the fill report of injected orders (--inject), or else the trades. --stats-out, --fills-out and --chart write files beside it. A summary goes to stderr. The same input gives the same bytes (--checksum prints their SHA-256).

            Examples:
              castle replay GOOG_message_1.csv --orderbook GOOG_orderbook_1.csv \\
                  --verify --stats
              castle replay day.ndjson --symbol BTC-USD --bars 1m --format csv \\
                  -o bars.csv --chart day.svg
              castle replay day.ndjson --symbol BTC-USD --inject mine.ndjson
              castle replay day.ndjson --symbol BTC-USD --snapshots 10@1s \\
                  --from 14:30 --to 14:45
              castle replay day.ndjson --symbol ETH-USD --speed 10 | tail -f
              castle replay --dataset 2026-11-24 --symbol BTC-USD --stats
            """
    )

    @OptionGroup var inputOptions: InputOptions

    @Option(name: .customLong("input-format"), help: "The input's format (default: from the file name).")
    var inputFormat: ReplayJob.InputFormat?

    @Option(
        help: ArgumentHelp("Replay a dataset of the store (see castle ingest) instead of a file.", valueName: "name")
    )
    var dataset: String?

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var regionOption: RegionOption

    @Option(help: ArgumentHelp("LOBSTER orderbook file of the same day.", valueName: "file"))
    var orderbook: String?

    @Option(help: "rebuild (LOBSTER default) or rematch (NDJSON default).")
    var mode: ReplayJob.Mode?

    @Flag(help: "Check every orderbook row against the reconstructed book; exit 65 if any differs.")
    var verify = false

    @Option(
        help: ArgumentHelp(
            "Your own orders (contract NDJSON with ts), merged by time into a rematch.",
            valueName: "file"
        )
    )
    var inject: String?

    @Option(help: ArgumentHelp("Start of the analysed window: HH:MM[:SS[.fff]] or epoch ns.", valueName: "time"))
    var from: String?

    @Option(help: ArgumentHelp("End of the window (exclusive).", valueName: "time"))
    var to: String?

    @Option(
        help: ArgumentHelp("The one symbol to analyse (rematch).", valueName: "symbol")
    )
    var symbol: String?

    @Option(name: .customLong("symbols"), help: .hidden)
    var legacySymbols: String?

    @Option(help: "max, or N times real time, paced by the recorded times.")
    var speed: String = "max"

    @Option(help: "Stop after N input messages.")
    var limit: Int?

    @Option(
        name: [.short, .long],
        help: ArgumentHelp("Where to write the data stream (default: stdout).", valueName: "file")
    )
    var output: String?

    @Option(help: "The format of the data stream.")
    var format: ReplayFormat = .ndjson

    @Option(help: ArgumentHelp("Book snapshots: LEVELS@INTERVAL, e.g. 10@1s or 5@event.", valueName: "spec"))
    var snapshots: String?

    @Option(help: ArgumentHelp("OHLCV bars with VWAP and trade count: 1s, 1m, 5m, …", valueName: "interval"))
    var bars: String?

    @Flag(help: "The day's statistics as the data stream.")
    var stats = false

    @Option(name: .customLong("stats-out"), help: ArgumentHelp("Also write the statistics here.", valueName: "file"))
    var statsOut: String?

    @Option(name: .customLong("fills-out"), help: ArgumentHelp("Also write the fill report here.", valueName: "file"))
    var fillsOut: String?

    @Option(help: ArgumentHelp("Write the day at a glance as SVG.", valueName: "file.svg"))
    var chart: String?

    @Flag(help: "Print the SHA-256 of the data stream on stderr.")
    var checksum = false

    @Option(help: ArgumentHelp("Instruments file (rematch).", valueName: "file"))
    var instruments: String?

    @Option(help: ArgumentHelp("Default self-trade prevention (rematch).", valueName: "mode"))
    var stp: STPChoice = .cancel_taker

    @Flag(help: "Stop at the first malformed or invalid line (exit 65).")
    var strict = false

    @OptionGroup var quietOption: QuietOption

    var quiet: Bool { quietOption.quiet }

    func options() throws -> ReplayJob.Options {
        var options = ReplayJob.Options()
        options.inputPath = inputOptions.path
        options.inputFormat = inputFormat
        options.orderbookPath = orderbook
        options.mode = mode
        options.verify = verify
        options.injectPath = inject
        if let from {
            guard let value = ReplaySpec.time(from) else {
                throw ValidationError("--from: expected HH:MM[:SS[.fff]] or epoch ns, got '\(from)'")
            }
            options.from = value
        }
        if let to {
            guard let value = ReplaySpec.time(to) else {
                throw ValidationError("--to: expected HH:MM[:SS[.fff]] or epoch ns, got '\(to)'")
            }
            options.to = value
        }
        if let legacySymbols {
            let list = legacySymbols.split(separator: ",").map(String.init)
            guard list.count == 1 else {
                throw ValidationError("--symbol: replay analyses one symbol at a time; run it once per symbol")
            }
            options.symbol = list[0]
        }
        if let symbol { options.symbol = symbol }
        guard let pace = ReplaySpec.speed(speed) else {
            throw ValidationError("--speed must be max or a positive number")
        }
        options.speed = pace
        if let limit {
            guard limit > 0 else { throw ValidationError("--limit must be positive") }
            options.limit = limit
        }
        options.outputPath = output
        options.format = format
        if let snapshots {
            guard let value = ReplaySpec.snapshots(snapshots) else {
                throw ValidationError(
                    "--snapshots: expected LEVELS@INTERVAL such as 10@1s or 5@event, got '\(snapshots)'"
                )
            }
            options.snapshots = value
        }
        if let bars {
            guard let value = ReplaySpec.duration(bars) else {
                throw ValidationError("--bars: expected an interval such as 1s, 1m, 5m, got '\(bars)'")
            }
            options.barsIntervalNs = value
        }
        options.stats = stats
        options.statsOutPath = statsOut
        options.fillsOutPath = fillsOut
        options.chartPath = chart
        options.checksum = checksum
        options.instrumentsPath = instruments
        options.stp = stp.mode
        options.strict = strict
        options.showProgress = !quiet
        return options
    }

    func validate() throws {
        if dataset != nil && inputOptions.given != nil { throw ValidationError("give FILE or --dataset, not both") }
        if symbol != nil && legacySymbols != nil {
            throw ValidationError("give --symbol once (--symbols is its old name)")
        }
        if storeOptions.store != nil && dataset == nil { throw ValidationError("--store needs --dataset NAME") }
    }

    func run() async throws {
        var options = try options()
        let start = monotonicNanoseconds()
        var exported: DatasetExport?
        if let dataset {
            exported = try await runAsyncJob("replay") { () async throws(CastleError) in
                try await Backends.with(storeOptions.storeURL) { (backend) throws(CastleError) in
                    try await DatasetExport(dataset: dataset, of: backend)
                }
            }
            options.inputPath = exported?.path
            options.inputFormat = .ndjson
        }
        defer { exported?.remove() }
        let summary = try await runJob("replay") { [options] () throws(CastleError) in try ReplayJob.run(options) }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        if let checksum = summary.checksum { writeStandardError("sha256:\(checksum)  \(output ?? "<stdout>")\n") }
        if !quiet {
            var text = "castle replay: \(summary.symbol), \(summary.messages) messages, \(summary.trades) trades"
            text +=
                "; \(format2(seconds)) s, \(formatCount(Double(summary.messages) / max(seconds, 1e-9))) messages/s\n"
            text += "castle replay: \(summary.statsSummary)\n"
            if summary.injected > 0 {
                text +=
                    "castle replay: \(summary.injected) injected orders, fill report in the \(options.stream == .fills ? "data stream" : "fills file")\n"
            }
            for halt in summary.halts { text += "castle replay: halt at \(halt)\n" }
            writeStandardError(text)
        }
        if let verification = summary.verification {
            writeStandardError("castle replay: \(verification)\n")
            if summary.verificationFailed { throw ExitCode(65) }
        }
    }
}
