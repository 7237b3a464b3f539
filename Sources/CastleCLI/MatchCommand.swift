import ArgumentParser
import CastleCore
import CastleSupport
import Pipeline
import Storage

struct MatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "match",
        abstract: "Run the matching engine over an order stream: NDJSON commands in, events out.",
        discussion: """
            Reads the order-stream contract (docs/order-stream.md) from FILE or stdin, plain or compressed (gzip, zstd, xz, bzip2: recognised by content), and writes one event per line to -o FILE or stdout. A file output is written under a temporary name and renamed when the run succeeds, so a failed run leaves nothing behind. A malformed line or a bad field becomes a `rejected` event with its line number and the stream goes on; with --strict the run stops at the first one with `file:line: reason` on stderr and exit 65.

            Examples:
              castle match day.ndjson.gz -o events.ndjson
              castle generate orders --count 1000 | castle match | grep trade
              castle match day.ndjson --book-out book.json --strict > events.ndjson
              castle match day.ndjson --instruments instruments.ndjson

            The durable worker runs with --queue URL, --store URL, --drain or --partition. It reads its partition of the queue as a log, in order, and, for each batch, writes the events, trades, resting orders and its queue offset to the store in one transaction (no ack per message: the offset says what is done); so the queue and the store are one backend, and --queue and --store, when both are given, must be the same URL. Killed at any moment and started again, it rebuilds its books from the store and goes on: nothing lost, nothing applied twice. `castle events` prints its event log. --partition K/N splits symbols by hash over N workers; a second worker for a taken partition waits as a standby and takes over when the owner dies. SIGTERM or SIGINT stop it after the batch in hand. See docs/storage.md.

            Examples:
              castle ingest day.ndjson.gz --into queue && castle match --drain
              castle match --queue postgres://castle@db:5432/castle --partition 0/4
            """
    )

    @OptionGroup var inputOptions: InputOptions

    @Option(name: [.short, .long], help: ArgumentHelp("Where to write events (default: stdout).", valueName: "file"))
    var output: String?

    @Option(
        name: .customLong("book-out"),
        help: ArgumentHelp("Write the final resting book as JSON.", valueName: "file")
    )
    var bookOut: String?

    @Option(help: ArgumentHelp("Self-trade prevention for orders that name none.", valueName: "mode"))
    var stp: STPChoice = .cancel_taker

    @Option(
        help: ArgumentHelp("Instruments file (tick, lot, decimals); other symbols are rejected.", valueName: "file")
    )
    var instruments: String?

    @Flag(help: "Stop at the first malformed or invalid command (exit 65).")
    var strict = false

    @OptionGroup var quietOption: QuietOption
    @OptionGroup var regionOption: RegionOption

    @Option(
        help: ArgumentHelp(
            "Run the durable worker on this queue; the store is the same backend (--store, if given, must be this URL).",
            valueName: "url"
        )
    )
    var queue: String?

    @Option(
        help: ArgumentHelp(
            "Run the durable worker on this store and its queue (default: --queue, else $CASTLE_STORE, else sqlite://castle.db).",
            valueName: "url"
        )
    )
    var store: String?

    @Option(help: ArgumentHelp("Worker: take partition K/N, \(partitionHelpText).", valueName: "k/n"))
    var partition: Partition?

    @Flag(help: "Worker: exit 0 once the queue is empty (for batch jobs).")
    var drain = false

    @Option(help: ArgumentHelp("Worker: messages per transaction.", valueName: "n"))
    var batch = MatchWorker.Options().batchSize

    @Option(help: ArgumentHelp("Worker: deliveries before a message goes to the dead letters.", valueName: "n"))
    var maxAttempts = 5

    /// Fault injection for the poison-message tests, in debug builds only: a release build refuses it, so no
    /// production worker can be made to crash by a stray flag or variable.
    @Option(name: .customLong("debug-fault-crash-on-id"), help: .hidden)
    var debugFaultCrashOnID: OrderID?

    /// --queue or --store, or a worker-only option (--drain, --partition), runs the durable worker.
    var isDurable: Bool { queue != nil || store != nil || drain || partition != nil }

    /// The worker's one backend: the queue's URL, which must be the store's when both are given.
    static func workerURL(queue: String?, store: String?) throws -> String {
        if let queue, let store, queue != store {
            throw ValidationError(
                "--queue and --store must name the same backend: the worker commits its queue offset and its results in one transaction ('\(queue)' is not '\(store)')"
            )
        }
        return queue ?? store ?? StorageRegistry.defaultURL(environment: environment())
    }

    func validate() throws {
        guard isDurable else { return }
        if inputOptions.given != nil || output != nil || strict {
            throw ValidationError(
                "the durable worker reads the queue: FILE, --input, --output and --strict do not apply (see castle events)"
            )
        }
        _ = try Self.workerURL(queue: queue, store: store)
        if batch < 1 || maxAttempts < 1 { throw ValidationError("--batch and --max-attempts must be at least 1") }
        #if !DEBUG
        if debugFaultCrashOnID != nil {
            throw ValidationError("--debug-fault-crash-on-id is fault injection for tests: debug builds only")
        }
        #endif
    }

    func run() async throws {
        if isDurable { return try await runDurable() }
        var options = MatchStream.Options()
        options.inputPath = inputOptions.path
        options.outputPath = output
        options.bookOutPath = bookOut
        options.instrumentsPath = instruments
        options.stp = stp.mode
        options.strict = strict
        options.showProgress = !quietOption.quiet
        let start = monotonicNanoseconds()
        let summary = try await runJob("match") { [options] () throws(CastleError) in try MatchStream.run(options) }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        guard !quietOption.quiet else { return }
        var line = "castle match: \(summary.commands) commands, \(summary.events) events, \(summary.trades) trades, "
        line += "\(summary.rejected) rejected, \(summary.restingOrders) orders resting; "
        line += "\(format2(seconds)) s, \(formatCount(Double(summary.commands) / max(seconds, 1e-9))) commands/s\n"
        if let first = summary.firstInputError { line += "castle match: first bad input: \(first)\n" }
        writeStandardError(line)
    }
}

extension MatchCommand: StopsGracefully {
    var stopsGracefully: Bool { isDurable }

    func runDurable() async throws {
        let url = try Self.workerURL(queue: queue, store: store)
        let quiet = quietOption.quiet
        let start = monotonicNanoseconds()
        let summary = try await runAsyncJob("match") { () async throws(CastleError) -> MatchWorker.Summary in
            var options = MatchWorker.Options()
            options.partition = partition ?? .whole
            options.batchSize = batch
            options.maxAttempts = maxAttempts
            options.drain = drain
            options.instrumentsPath = instruments
            options.bookOutPath = bookOut
            options.stp = stp.mode
            options.showProgress = !quiet
            options.debugCrashOnID = debugFaultCrashOnID
            return try await MatchWorker.runUntilSignalled(storeURL: url, queueURL: url, options: options)
        }
        guard !quiet else { return }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        var line = "castle match: \(summary.messages) messages, \(summary.events) events, \(summary.trades) trades"
        if summary.restoredOrders > 0 || summary.startOffset > 0 {
            line += "; resumed after offset \(summary.startOffset) with \(summary.restoredOrders) resting orders, "
            line += "ready in \(format2(summary.secondsToReady)) s"
        }
        line += "; \(format2(seconds)) s, \(formatCount(Double(summary.messages) / max(seconds, 1e-9))) messages/s\n"
        writeStandardError(line)
    }
}
