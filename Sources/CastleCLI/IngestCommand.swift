import ArgumentParser
import CastleSupport
import Pipeline
import Storage

struct IngestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Load an order stream into the store as a dataset, or into the queue.",
        discussion: """
            Reads the order-stream contract's NDJSON, CSV with a header naming the contract's fields
            (op,id,symbol,side,type,price,qty,tif,account,stp,ts), or a LOBSTER message file (with
            --symbol and --date), plain or compressed (gzip, zstd, xz, bzip2), from FILE or stdin. Each
            row is validated per the contract; bad rows go to --rejects with their line and reason. Over
            --max-errors bad rows the run stops with exit 65 and nothing is committed: the whole file
            goes in one transaction. Rows are keyed by their line, so ingesting the same file twice adds
            nothing. See docs/storage.md.

            Examples:
              castle migrate up && castle ingest datasets/orders-100k.ndjson.gz
              castle ingest day.ndjson.gz --to queue --store sqlite://day.db
              castle ingest orders.csv --dataset 2026-11-24 --rejects bad.ndjson --max-errors 100
              castle ingest AAPL_2012-06-21_34200000_57600000_message_10.csv --symbol AAPL --date 2012-06-21
            """
    )

    @Argument(help: ArgumentHelp("The file to read (default: stdin).", valueName: "file"))
    var input: String?

    @OptionGroup var storeOptions: StoreOptions

    @Option(help: ArgumentHelp("Queue URL for --to queue (default: the store).", valueName: "url"))
    var queue: String?

    @Option(help: ArgumentHelp("Where the rows go: store (a dataset) or queue.", valueName: "store|queue"))
    var to: Destination = .store

    @Option(
        help: ArgumentHelp(
            "Dataset name, also the queue's source name (default: the file name without extensions).",
            valueName: "name"
        )
    )
    var dataset: String?

    @Option(
        help: ArgumentHelp("ndjson, csv or lobster (default: from the file name).", valueName: "format"),
        transform: { text in
            guard let format = Ingest.Format(rawValue: text) else {
                throw ValidationError("--format must be ndjson, csv or lobster; got '\(text)'")
            }
            return format
        }
    )
    var format: Ingest.Format?

    @Option(help: ArgumentHelp("Write bad rows here as NDJSON: line, reason, input.", valueName: "file"))
    var rejects: String?

    @Option(help: ArgumentHelp("Bad rows tolerated before the run fails and commits nothing.", valueName: "n"))
    var maxErrors = 0

    @Option(help: ArgumentHelp("Instruments file: rows of other symbols are rejected.", valueName: "file"))
    var instruments: String?

    @Option(help: ArgumentHelp("LOBSTER: the symbol of the file.", valueName: "symbol"))
    var symbol: String?

    @Option(help: ArgumentHelp("LOBSTER: the trading day, YYYY-MM-DD.", valueName: "date"))
    var date: String?

    @Flag(name: [.short, .long], help: "No progress bar and no summary on stderr.")
    var quiet = false

    enum Destination: String, ExpressibleByArgument {
        case store, queue
    }

    func validate() throws {
        if input == nil && dataset == nil { throw ValidationError("reading stdin needs --dataset NAME") }
        if maxErrors < 0 { throw ValidationError("--max-errors must be 0 or more") }
    }

    /// `path/orders-100k.ndjson.gz` → `orders-100k`.
    static func datasetName(of path: String) -> String {
        let file = path.split(separator: "/").last.map(String.init) ?? path
        return file.split(separator: ".").first.map(String.init) ?? file
    }

    func run() async throws {
        let name = dataset ?? Self.datasetName(of: input ?? "stdin")
        let start = monotonicNanoseconds()
        let summary = try await runAsyncJob("ingest") { () async throws(CastleError) -> Ingest.Summary in
            let url = to == .queue ? (queue ?? storeOptions.storeURL) : storeOptions.storeURL
            let backend = try await Backends.open(url)
            var options = Ingest.Options()
            options.inputPath = input
            options.format = format
            options.target = to == .queue ? .queue(source: name) : .dataset(name)
            options.rejectsPath = rejects
            options.maxErrors = maxErrors
            options.instrumentsPath = instruments
            options.lobsterSymbol = symbol
            options.lobsterDate = date
            options.showProgress = !quiet
            let summary = try await Ingest.run(options, into: backend)
            await backend.close()
            return summary
        }
        guard !quiet else { return }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        var line =
            "castle ingest: \(name): \(summary.rows) rows, \(summary.added) new, \(summary.duplicates) already there, "
        line += "\(summary.rejected) rejected"
        if summary.skipped > 0 { line += ", \(summary.skipped) skipped (not orders)" }
        line += " into the \(to == .queue ? "queue" : "store"); \(format2(seconds)) s, "
        line += "\(formatCount(Double(summary.rows) / max(seconds, 1e-9))) rows/s\n"
        if let first = summary.firstError { line += "castle ingest: first bad row: \(first)\n" }
        writeStandardError(line)
    }
}
