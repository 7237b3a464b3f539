import ArgumentParser
import CastleCore
import Formats
import Pipeline
import Storage

struct MatchCommand: AsyncParsableCommand {
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

            The durable worker: with --queue or --store (default $CASTLE_STORE, else sqlite://castle.db),
            or with --drain or --partition, castle reads its partition of the queue as a log, in order,
            and for each batch writes the events, trades, resting orders and its queue offset to the
            store in one transaction (no ack per message: the offset says what is done). Killed at any
            moment and started again, it rebuilds its books from the store and goes on: nothing lost,
            nothing applied twice. `castle events` prints its event log. --partition K/N splits symbols
            by hash over N workers; a second worker for a taken partition waits as a standby and takes
            over when the owner dies. SIGTERM or SIGINT stop it after the batch in hand. See docs/storage.md.

              castle ingest day.ndjson.gz --to queue && castle match --queue sqlite://castle.db --drain
              castle match --queue postgres://castle@db:5432/castle --store postgres://castle@db:5432/castle --partition 0/4
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

    @Option(
        help: ArgumentHelp(
            "Run as the durable worker on this queue URL (the store's URL: the same backend).",
            valueName: "url"
        )
    )
    var queue: String?

    @Option(
        help: ArgumentHelp(
            "With --queue: the store for results (default: $CASTLE_STORE, else sqlite://castle.db).",
            valueName: "url"
        )
    )
    var store: String?

    @Option(help: ArgumentHelp("With --queue: the symbols of partition K of N (by hash).", valueName: "k/n"))
    var partition: String?

    @Flag(help: "With --queue: exit 0 once the queue is empty (for batch jobs).")
    var drain = false

    @Option(help: ArgumentHelp("With --queue: messages per transaction.", valueName: "n"))
    var batch = 5_000

    @Option(help: ArgumentHelp("With --queue: deliveries before a message goes to the dead letters.", valueName: "n"))
    var maxAttempts = 5

    /// --queue or --store, or a worker-only option (--drain, --partition), runs the durable worker.
    var isDurable: Bool { queue != nil || store != nil || drain || partition != nil }

    func validate() throws {
        guard isDurable else { return }
        if input != nil || output != nil || strict {
            throw ValidationError(
                "--queue runs the durable worker: --input, --output and --strict do not apply (see castle events)"
            )
        }
        if let partition, Partition(parsing: partition) == nil {
            throw ValidationError("--partition must be K/N with 0 ≤ K < N; got '\(partition)'")
        }
        if batch < 1 || maxAttempts < 1 { throw ValidationError("--batch and --max-attempts must be at least 1") }
    }

    func run() async throws {
        if isDurable { return try await runDurable() }
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

extension MatchCommand {
    func runDurable() async throws {
        let start = monotonicNanoseconds()
        let summary = try await runAsyncJob("match") { () async throws(CastleError) -> MatchWorker.Summary in
            let storeURL = store ?? StorageRegistry.defaultURL(environment: environment())
            var options = MatchWorker.Options()
            options.partition = partition.flatMap(Partition.init(parsing:)) ?? .whole
            options.batchSize = batch
            options.maxAttempts = maxAttempts
            options.drain = drain
            options.instrumentsPath = instruments
            options.bookOutPath = bookOut
            options.stp = stp
            options.showProgress = !quiet
            return try await MatchWorker.runUntilSignalled(
                storeURL: storeURL,
                queueURL: queue ?? storeURL,
                options: options
            )
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
