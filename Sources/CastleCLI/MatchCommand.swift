import ArgumentParser
import CastleCore
import Formats

struct MatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "match",
        abstract: "Run the matching engine over an order stream: NDJSON commands in, events out.",
        discussion: """
            Reads the order-stream contract (docs/order-stream.md) from --input or stdin, plain or
            compressed (gzip, zstd, xz, bzip2: recognised by content). Writes one event per line to
            --output or stdout. A file output is written to a temporary name and renamed when the run
            succeeds, so a failed run leaves nothing behind. A malformed line or a bad field becomes a
            `rejected` event with its line number and the stream goes on; with --strict the run stops
            at the first one with `file:line: reason` on stderr and exit 65.

            Examples:
              castle match -i datasets/orders-100k.ndjson.gz --instruments datasets/instruments.ndjson -o events.ndjson
              castle generate orders --count 1000 | castle match | grep '"event":"trade"'
              castle match -i day.ndjson --book-out book.json --stp cancel_both --strict > events.ndjson
            """
    )

    @Option(name: [.short, .long], help: ArgumentHelp("Commands to read (default: stdin).", valueName: "file"))
    var input: String?

    @Option(name: [.short, .long], help: ArgumentHelp("Where to write events (default: stdout).", valueName: "file"))
    var output: String?

    @Option(
        name: .customLong("book-out"),
        help: ArgumentHelp("Write the final resting book as JSON.", valueName: "file")
    )
    var bookOut: String?

    @Option(
        help: ArgumentHelp(
            "Self-trade prevention for orders that name none: cancel_taker, cancel_maker, cancel_both or none.",
            valueName: "mode"
        ),
        transform: parseSTPMode
    )
    var stp: STPMode = .cancelTaker

    @Option(
        help: ArgumentHelp("Instruments file (tick, lot, decimals); other symbols are rejected.", valueName: "file")
    )
    var instruments: String?

    @Flag(help: "Stop at the first malformed or invalid command (exit 65).")
    var strict = false

    @Flag(name: [.short, .long], help: "No progress bar and no summary on stderr.")
    var quiet = false

    func run() throws {
        var options = MatchStream.Options()
        options.inputPath = input
        options.outputPath = output
        options.bookOutPath = bookOut
        options.instrumentsPath = instruments
        options.stp = stp
        options.strict = strict
        options.showProgress = !quiet
        let start = monotonicNanoseconds()
        let summary = try runJob("match") { () throws(CastleError) in try MatchStream.run(options) }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        guard !quiet else { return }
        var line = "castle match: \(summary.commands) commands, \(summary.events) events, \(summary.trades) trades, "
        line += "\(summary.rejected) rejected, \(summary.restingOrders) orders resting; "
        line += "\(format2(seconds)) s, \(formatCount(Double(summary.commands) / max(seconds, 1e-9))) commands/s\n"
        if let first = summary.firstInputError { line += "castle match: first bad input: \(first)\n" }
        writeStandardError(line)
    }
}
