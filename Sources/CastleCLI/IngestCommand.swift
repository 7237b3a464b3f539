import ArgumentParser
import CastleSupport
import Pipeline
import Storage

struct IngestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Load an order stream into the store as a dataset, or into the queue.",
        discussion: """
            Reads the order-stream contract's NDJSON, CSV with a header naming the contract's fields (op,id,symbol,side,type,price,qty,tif,account,stp,ts), or a LOBSTER message file (with --symbol and --date), plain or compressed (gzip, zstd, xz, bzip2), from FILE or stdin. Each row is validated per the contract; bad rows go to --rejects with their line and reason. Over --max-errors bad rows the run stops with exit 65 and nothing is committed: the whole file goes in one transaction. Rows are keyed by their line, so ingesting the same file twice adds nothing.

            With --commit-every N, a transaction commits after every N rows instead: a live intake piped into stdin feeds the worker as it goes. A failure then keeps what was committed before it (the error says through which line), and running the same input again adds only the rest.

            The rows become a dataset of the store (for castle replay --dataset), or, with --into queue or --queue URL, messages of the queue for the durable worker (castle match --queue). The queue lives in the store's backend: --queue and --store, when both are given, must be the same URL. See docs/storage.md.

            Examples:
              castle migrate up && castle ingest datasets/orders-100k.ndjson.gz
              castle ingest day.ndjson.gz --into queue
              castle ingest day.ndjson.gz --queue sqlite://day.db
              castle ingest orders.csv --dataset 2026-11-24 --rejects bad.ndjson
              castle ingest AAPL_message_10.csv --symbol AAPL --date 2012-06-21
              feed | castle ingest - --dataset live --into queue --commit-every 5000
            """
    )

    @OptionGroup var inputOptions: InputOptions

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var regionOption: RegionOption

    @Option(
        help: ArgumentHelp(
            "Load into this queue (implies --into queue); the store's backend (--store, if given, must be this URL).",
            valueName: "url"
        )
    )
    var queue: String?

    @Option(help: ArgumentHelp("Where the rows go: a dataset of the store, or its queue.", valueName: "store|queue"))
    var into: Destination?

    @Option(name: .customLong("to"), help: .hidden)
    var legacyTo: Destination?

    @Option(
        help: ArgumentHelp(
            "Dataset name, also the queue's source name (default: the file name without extensions).",
            valueName: "name"
        )
    )
    var dataset: String?

    @Option(
        name: .customLong("input-format"),
        help: ArgumentHelp("ndjson, csv or lobster (default: from the file name).", valueName: "format")
    )
    var inputFormat: Ingest.Format?

    @Option(name: .customLong("format"), help: .hidden)
    var legacyFormat: Ingest.Format?

    @Option(help: ArgumentHelp("Write bad rows here as NDJSON: line, reason, input.", valueName: "file"))
    var rejects: String?

    @Option(help: ArgumentHelp("Bad rows tolerated before the run fails and commits nothing.", valueName: "n"))
    var maxErrors = 0

    @Option(help: ArgumentHelp("Commit after every N rows, not once at the end.", valueName: "n"))
    var commitEvery: Int?

    @Option(help: ArgumentHelp("Instruments file: rows of other symbols are rejected.", valueName: "file"))
    var instruments: String?

    @Option(help: ArgumentHelp("LOBSTER: the symbol of the file.", valueName: "symbol"))
    var symbol: String?

    @Option(help: ArgumentHelp("LOBSTER: the trading day, YYYY-MM-DD.", valueName: "date"))
    var date: String?

    @OptionGroup var quietOption: QuietOption

    enum Destination: String, ExpressibleByArgument, CaseIterable {
        case store, queue
    }

    /// Where the rows go: naming a queue means the queue.
    var destination: Destination { into ?? legacyTo ?? (queue != nil ? .queue : .store) }

    func validate() throws {
        if inputOptions.path == nil && dataset == nil { throw ValidationError("reading stdin needs --dataset NAME") }
        if maxErrors < 0 { throw ValidationError("--max-errors must be 0 or more") }
        if let commitEvery, commitEvery < 1 { throw ValidationError("--commit-every must be 1 or more") }
        if into != nil && legacyTo != nil { throw ValidationError("give --into once (--to is its old name)") }
        if inputFormat != nil && legacyFormat != nil {
            throw ValidationError("give --input-format once (--format is its old name)")
        }
        if queue != nil && destination == .store {
            throw ValidationError("--queue loads into the queue: drop --into store, or drop --queue")
        }
        if let queue, let store = storeOptions.store, queue != store {
            throw ValidationError(
                "--queue and --store must name the same backend: the queue lives in the store ('\(queue)' is not '\(store)')"
            )
        }
    }

    /// `path/orders-100k.ndjson.gz` → `orders-100k`.
    static func datasetName(of path: String) -> String {
        let file = path.split(separator: "/").last.map(String.init) ?? path
        return file.split(separator: ".").first.map(String.init) ?? file
    }

    func run() async throws {
        let name = dataset ?? Self.datasetName(of: inputOptions.path ?? "stdin")
        let destination = destination
        let start = monotonicNanoseconds()
        let summary = try await runAsyncJob("ingest") { () async throws(CastleError) -> Ingest.Summary in
            let url = queue ?? storeOptions.storeURL
            var options = Ingest.Options()
            options.inputPath = inputOptions.path
            options.format = inputFormat ?? legacyFormat
            options.target = destination == .queue ? .queue(source: name) : .dataset(name)
            options.rejectsPath = rejects
            options.maxErrors = maxErrors
            options.commitEvery = commitEvery
            options.instrumentsPath = instruments
            options.lobsterSymbol = symbol
            options.lobsterDate = date
            options.showProgress = !quietOption.quiet
            return try await Backends.with(url) { (backend) throws(CastleError) in
                try await Ingest.run(options, into: backend)
            }
        }
        guard !quietOption.quiet else { return }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        var line =
            "castle ingest: \(name): \(summary.rows) rows, \(summary.added) new, \(summary.duplicates) already there, "
        line += "\(summary.rejected) rejected"
        if summary.skipped > 0 { line += ", \(summary.skipped) skipped (not orders)" }
        line += " into the \(destination == .queue ? "queue" : "store")"
        if summary.commits > 1 { line += " in \(summary.commits) transactions" }
        line += "; \(format2(seconds)) s, "
        line += "\(formatCount(Double(summary.rows) / max(seconds, 1e-9))) rows/s\n"
        if let first = summary.firstError { line += "castle ingest: first bad row: \(first)\n" }
        writeStandardError(line)
    }
}
