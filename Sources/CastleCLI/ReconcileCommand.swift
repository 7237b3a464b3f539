import ArgumentParser
import CastleSupport
import Ledger
import Reconcile
import Storage
import Streams

#if canImport(Glibc)
import Glibc
#endif

struct ReconcileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconcile",
        abstract: "Prove processor and bank records against the ledger; list every break.",
        discussion: """
            Reads each --source (a Stripe or PayPal CSV, any CSV with --mapping, or a camt.053 statement; plain or compressed), matches its records against the ledger's entries by the rules in priority order, and writes one result per record (spec/reconcile.md) plus a balance proof per bank statement. The same inputs give byte-identical reports. Formats, mapping and rules files: docs/reconcile.md.

            Exit codes: 0 no breaks, 1 breaks found, 64 usage, 65 bad input (file:line: reason, or the XML element path), 66 unreadable, 69 store unreachable, 75 another run holds the lock, 78 migrate first.

            Examples:
              castle reconcile --source stripe.csv --source bank.xml
              castle reconcile --source stripe.csv --ledger ledger.ndjson -o out.ndjson
              castle reconcile --source export.csv --mapping bank.json --format csv
              castle reconcile --source stripe.csv.gz --from 2026-12-01 --to 2026-12-02
              castle reconcile --source stripe.csv --since-last --store sqlite://c.db
              castle reconcile show r-3f2a9c0d1e2b4a5c
            """,
        subcommands: [Run.self, Show.self, Resolve.self],
        defaultSubcommand: Run.self
    )

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",
            abstract: "Reconcile the sources against the ledger (the default).",
            discussion: """
                Examples:
                  castle reconcile --source stripe.csv --source bank.xml
                  castle reconcile run --source paypal.csv --ledger ledger.ndjson
                """
        )

        @Option(
            name: .customLong("source"),
            help: ArgumentHelp("A processor or bank file (several allowed).", valueName: "file")
        )
        var sources: [String] = []

        @Option(name: .customLong("source-format"), help: "The sources' format (default: detected from content).")
        var sourceFormat: SourceFormat?

        @Option(
            help: ArgumentHelp(
                "A column mapping file (JSON or TOML), or a built-in layout: stripe_balance_transactions, stripe_payments, stripe_payouts, paypal_activity.",
                valueName: "file"
            )
        )
        var mapping: String?

        @Option(help: ArgumentHelp("A rules file (JSON or TOML; default: the built-in rules).", valueName: "file"))
        var rules: String?

        @Option(
            help: ArgumentHelp(
                "The ledger as an entries NDJSON file (docs/ledger.md); default: the store's ledger (castle ledger post).",
                valueName: "file"
            )
        )
        var ledger: String?

        @Option(help: ArgumentHelp("The first day of the window (YYYY-MM-DD).", valueName: "date"))
        var from: String?

        @Option(
            help: ArgumentHelp(
                "The day after the window (YYYY-MM-DD, exclusive, as --to is everywhere).",
                valueName: "date"
            )
        )
        var to: String?

        @Flag(
            name: .customLong("since-last"),
            help: "Only records after each source's stored watermark (needs a store)."
        )
        var sinceLast = false

        @Option(
            help: ArgumentHelp(
                "The store: its ledger (without --ledger), and where the run, its results and watermarks are kept and resolved breaks honoured (default: $CASTLE_STORE, else sqlite://castle.db; with --ledger and neither, nothing is stored).",
                valueName: "url"
            )
        )
        var store: String?

        @Flag(name: .customLong("dry-run"), help: "Report, but store nothing (no run, no watermarks).")
        var dryRun = false

        @Option(help: "The report's format (default: table on a terminal, else ndjson).")
        var format: ReportFormat?

        @Option(name: [.short, .long], help: ArgumentHelp("Output file (default: stdout).", valueName: "file"))
        var output: String?

        @OptionGroup var quiet: QuietOption

        func validate() throws {
            guard !sources.isEmpty else { throw ValidationError("give at least one --source FILE") }
            guard (from == nil) == (to == nil) else { throw ValidationError("--from and --to go together") }
            if sinceLast && from != nil { throw ValidationError("--since-last and --from/--to exclude each other") }
            if sinceLast && storeURL == nil {
                throw ValidationError("--since-last reads watermarks from a store: give --store URL")
            }
            if let from, day(from) == nil { throw ValidationError("--from '\(from)' is not a date (YYYY-MM-DD)") }
            if let to, day(to) == nil { throw ValidationError("--to '\(to)' is not a date (YYYY-MM-DD)") }
            if let from, let to, day(from)! >= day(to)! {
                throw ValidationError("--from \(from) is not before --to \(to)")
            }
        }

        func day(_ text: String) -> Int32? { text.utf8.count == 10 ? CivilDate.parseISO(Substring(text)) : nil }

        /// The store: `--store`, else `$CASTLE_STORE`; when the ledger comes from the store, else the default
        /// store. With `--ledger FILE` and no store named, nothing is stored.
        var storeURL: String? {
            let environment = environment()
            if let url = store ?? environment["CASTLE_STORE"] { return url }
            return ledger == nil ? StorageRegistry.defaultURL(environment: environment) : nil
        }

        func request() throws(CastleError) -> ReconcileRequest {
            var request = ReconcileRequest(sources: sources, format: sourceFormat)
            if let mapping {
                if let builtIn = ColumnMapping.builtIn.first(where: { $0.name == mapping }) {
                    request.mapping = builtIn
                } else {
                    request.mapping = try ColumnMapping.parse(try readSmallFile(mapping), name: mapping)
                }
            }
            if let rules { request.rules = try RuleSet.parse(try readSmallFile(rules), name: rules) }
            if let from, let to { request.window = day(from)!...(day(to)! - 1) }
            return request
        }

        func run() async throws {
            let format = format ?? (isatty(1) == 1 ? .table : .ndjson)
            let settings = (ledger: ledger, output: output, format: format, dryRun: dryRun, sinceLast: sinceLast)
            let storeURL = storeURL
            // Said once the work starts (with a store: once the lock is held), so a script or a test knows.
            let announcement =
                quiet.quiet ? nil : "castle reconcile: reading \(sources.count) source(s) and the ledger\n"
            let report = try await runAsyncJob("reconcile") { () async throws(CastleError) -> ReconcileReport in
                var request = try request()
                // Reads the sources, and the ledger from the store when `stored` is given, else from the --ledger
                // file.
                typealias Read = @Sendable (ReconcileRequest, [LedgerItem]?) throws(CastleError) -> ReconcileInputs
                let read: Read = { (request, stored) throws(CastleError) -> ReconcileInputs in
                    if let stored { return try ReconcileJob.read(request, ledgerItems: stored) }
                    guard let ledger = settings.ledger else {
                        throw CastleError(.software, "no ledger to reconcile against")
                    }
                    return try ReconcileJob.read(request, ledger: LedgerEntriesFile(path: ledger))
                }
                let write = { @Sendable (report: ReconcileReport) throws(CastleError) in
                    // A report of a million records is hundreds of MB: the kernel's copy on a thread of its own.
                    let sink = try OutputSink(path: settings.output, writeBehind: true)
                    try ReportWriter.write(report.records, run: report.run, format: settings.format, to: sink)
                    try sink.commit()
                }
                guard let storeURL else {
                    if let announcement { writeStandardError(announcement) }
                    return try await onOwnThread { [request] () throws(CastleError) -> ReconcileReport in
                        let report = ReconcileJob.reconcile(try read(request, nil), request: request)
                        try write(report)
                        return report
                    }
                }
                return try await Backends.with(storeURL) { (backend) throws(CastleError) -> ReconcileReport in
                    let store = try reconcileStore(backend)
                    guard let lock = try await store.acquireReconcileLock() else {
                        throw CastleError(
                            .temporaryFailure,
                            "\(backend.displayURL): another castle reconcile holds the lock; try again when it ends"
                        )
                    }
                    if let announcement { writeStandardError(announcement) }
                    do throws(CastleError) {
                        request.resolutions = try await store.reconcileResolutions()
                        if settings.sinceLast { request.watermarks = try await store.reconcileWatermarks() }
                        let stored = settings.ledger == nil ? try await StoredLedger.items(from: backend) : nil
                        let inputs = try await onOwnThread { [request] () throws(CastleError) -> ReconcileInputs in
                            try read(request, stored)
                        }
                        // What runs over other days claimed (a rerun of the same days is not a duplicate of
                        // itself): their records are duplicates here, their entries are not matched again.
                        let days = ReconcileJob.days(inputs, request: request)
                        if let days {
                            request.earlier = try await store.reconcileClaims(days: days.lookup, excluding: days.days)
                        }
                        let (report, claims) = try await onOwnThread {
                            [request] () -> (ReconcileReport, [ReconcileClaim]) in
                            let report = ReconcileJob.reconcile(inputs, request: request)
                            return (report, settings.dryRun ? [] : ReconcileJob.claims(report, inputs: inputs))
                        }
                        // Stored before the report is written: a run killed in between is stored, and its
                        // rerun stores nothing twice and writes the same report.
                        if !settings.dryRun {
                            _ = try await store.saveReconcileRun(
                                storedRun(report, window: request.window),
                                days: report.days,
                                claims: claims,
                                watermarks: report.watermarks
                            )
                        }
                        try await onOwnThread { () throws(CastleError) in try write(report) }
                        await lock.release()
                        return report
                    } catch {
                        await lock.release()
                        throw error
                    }
                }
            }
            if !quiet.quiet { writeStandardError(report.summary + (dryRun ? " (dry run: nothing stored)" : "") + "\n") }
            if report.breaks > 0 { throw ExitCode(1) }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a stored run's report.",
            discussion: """
                Examples:
                  castle reconcile show r-3f2a9c0d1e2b4a5c --store sqlite://c.db
                  castle reconcile show r-3f2a9c0d1e2b4a5c --format csv -o old.csv
                """
        )

        @Argument(help: "The run id, as the summary line printed it.") var run: String
        @Option(help: "The report's format (default: table on a terminal, else ndjson).") var format: ReportFormat?
        @Option(name: [.short, .long], help: ArgumentHelp("Output file (default: stdout).", valueName: "file"))
        var output: String?
        @OptionGroup var storeOptions: StoreOptions

        func run() async throws {
            let format = format ?? (isatty(1) == 1 ? .table : .ndjson)
            try await runAsyncJob("reconcile show") { () async throws(CastleError) in
                try await Backends.with(storeOptions.storeURL) { (backend) throws(CastleError) in
                    guard let stored = try await reconcileStore(backend).loadReconcileRun(run) else {
                        throw CastleError(.noInput, "\(backend.displayURL): no reconcile run \(run)")
                    }
                    try await onOwnThread { [output] () throws(CastleError) in
                        let sink = try OutputSink(path: output)
                        switch format {
                        case .ndjson: for row in stored.results { try sink.write(row.ndjson + "\n") }
                        case .csv:
                            try sink.write(ReportWriter.csvColumns.joined(separator: ",") + "\n")
                            for row in stored.results {
                                // A run stored before `earlier_run` was added has one column less.
                                let short = ReportWriter.splitCSVLine(row.csv).count < ReportWriter.csvColumns.count
                                try sink.write(row.csv + (short ? ",\n" : "\n"))
                            }
                        case .table:
                            try ReportWriter.writeTable(
                                stored.results.map { ReportWriter.splitCSVLine($0.csv) },
                                to: sink
                            )
                        }
                        try sink.commit()
                    }
                }
            }
        }
    }

    struct Resolve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Clear a break of a stored run for good, with a note.",
            discussion: """
                RECORD is the first external id of the break, else its first ledger key. Later runs still list the break, with the note, and no longer count it.

                Example:
                  castle reconcile resolve r-3f2a9c0d1e2b4a5c txn_1Nx --note "refunded"
                """
        )

        @Argument(help: "The run id.") var run: String
        @Argument(help: "The break's record: its first external id, else its first ledger key.") var record: String
        @Option(help: "Why it is cleared.") var note: String
        @OptionGroup var storeOptions: StoreOptions

        func validate() throws {
            guard !note.isEmpty else { throw ValidationError("--note must not be empty") }
        }

        func run() async throws {
            try await runAsyncJob("reconcile resolve") { () async throws(CastleError) in
                try await Backends.with(storeOptions.storeURL) { (backend) throws(CastleError) in
                    try await reconcileStore(backend).resolveReconcileRecord(run: run, record: record, note: note)
                }
            }
        }
    }
}

func reconcileStore(_ backend: any Backend) throws(CastleError) -> any ReconcileStore {
    guard let store = backend as? any ReconcileStore else {
        throw CastleError(.config, "\(backend.displayURL): this backend does not store reconcile runs")
    }
    return store
}

/// The run as the store keeps it: each result's class, the record a person resolves it by, and its line
/// in both formats.
func storedRun(_ report: ReconcileReport, window: ClosedRange<Int32>?) -> ReconcileRun {
    ReconcileRun(
        run: report.run,
        windowFrom: window?.lowerBound,
        windowTo: window?.upperBound,
        breaks: report.breaks,
        results: report.records.map { record in
            ReconcileResultRow(
                resultClass: record.resultClass.rawValue,
                record: record.recordID,
                ndjson: ReportWriter.ndjsonLine(record, run: report.run),
                csv: ReportWriter.csvRow(record, run: report.run).map(ReportWriter.csvField).joined(separator: ",")
            )
        }
    )
}

/// A configuration file (mapping, rules) read whole: at most 1 MiB.
func readSmallFile(_ path: String) throws(CastleError) -> [UInt8] {
    let source = try InputSource(path: path)
    let limit = 1 << 20
    let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: limit + 1)
    defer { buffer.deallocate() }
    var count = 0
    while count <= limit {
        let n = try source.readBytes(into: buffer + count, count: limit + 1 - count)
        if n == 0 { break }
        count += n
    }
    if count > limit { throw CastleError(.dataError, "\(path): larger than 1 MiB") }
    return Array(UnsafeBufferPointer(start: buffer, count: count))
}
