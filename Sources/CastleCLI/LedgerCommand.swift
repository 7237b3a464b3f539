public import Accounting
public import ArgumentParser
import CastleSupport
import Ledger
import Pipeline
import Storage
import Streams

#if canImport(Glibc)
import Glibc
#endif

struct LedgerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "The double-entry ledger in the store: post entries, settle trades, show balances, verify.",
        discussion: """
            Formats, the fee schedule and exit codes: docs/ledger.md.

            Examples:
              castle ledger post deposits.ndjson --instruments datasets/instruments.ndjson
              castle ledger settle --instruments datasets/instruments.ndjson --fees fees.ndjson
              castle ledger balances --account available:a1 --format csv
              castle ledger verify
            """,
        subcommands: [Post.self, Settle.self, Balances.self, Verify.self]
    )

    /// `--instruments`: the asset scales and the markets (docs/ledger.md).
    struct InstrumentsOption: ParsableArguments {
        @Option(
            help: ArgumentHelp(
                "Instruments file: asset scales, and each symbol's base and quote (without it: ISO 4217 currencies only).",
                valueName: "file"
            )
        )
        var instruments: String?

        func load() throws(CastleError) -> LedgerInstruments {
            guard let instruments else { return .isoOnly }
            return try LedgerInstruments.load(path: instruments)
        }
    }

    /// Now, in nanoseconds since the epoch: when an entry was posted.
    static func now() -> Int64 { wallClockMilliseconds() * 1_000_000 }

    struct Post: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Post NDJSON entries (deposits, withdrawals, transfers, reversals) to the ledger.",
            usage: "castle ledger post [<file>] [<options>]",
            discussion: """
                One entry a line, as shared/spec/ledger.md and docs/ledger.md describe; plain or compressed, a file or stdin. The whole input is one transaction: any bad line or refused entry (FILE:LINE: reason, exit 65) posts nothing. Keys make it idempotent: the same entry again is a no-op, the same key with other content is refused (exists_with_different_content).

                Examples:
                  castle ledger post deposits.ndjson
                  zcat day.ndjson.gz | castle ledger post - --store postgres://castle@db/castle
                """
        )

        @OptionGroup var input: InputOptions
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var instrumentsOption: InstrumentsOption
        @OptionGroup var quietOption: QuietOption

        func run() async throws {
            try await runAsyncJob("ledger post") { () async throws(CastleError) in
                let instruments = try instrumentsOption.load()
                let summary = try await Backends.with(storeOptions.storeURL) { (backend) throws(CastleError) in
                    try await LedgerPost.run(
                        path: input.path,
                        assets: instruments.assets,
                        store: backend,
                        postedAt: LedgerCommand.now()
                    )
                }
                if !quietOption.quiet {
                    writeStandardError(
                        "castle ledger post: \(summary.entries) entries: \(summary.posted) posted, \(summary.alreadyPosted) already posted\n"
                    )
                }
            }
        }
    }

    struct Settle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Settle the durable matcher's trades into the ledger, exactly once.",
            usage: "castle ledger settle --instruments <file> [<options>]",
            discussion: """
                Reads the trades the durable worker (castle match --queue) stored after the consumer's settlement watermark, and posts for each the entry trade:CONSUMER:SEQ: the buyer pays quote and receives base, the maker and taker fees of --fees go to fees:exchange. Each batch of 20,000 is stored as one row (a settlement block; its entries read back one by one) and commits with the watermark, so a run killed at any point and run again settles every trade once. A trade that cannot be settled (a buyer without the funds, say) stops the run after the trades before it, exit 65 naming it. Another settle of the same consumer running: exit 75.

                Examples:
                  castle ledger settle --instruments datasets/instruments.ndjson
                  castle ledger settle --instruments instruments.ndjson --fees fees.ndjson
                  castle ledger settle --instruments instruments.ndjson --consumer match:0/2
                """
        )

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var instrumentsOption: InstrumentsOption

        @Option(
            help: ArgumentHelp(
                "The matcher consumer whose trades to settle, as castle events names them (default: the only one, match:0/1).",
                valueName: "name"
            )
        )
        var consumer: String?

        @Option(
            help: ArgumentHelp(
                "Fee schedule: NDJSON of maker_ppm and taker_ppm, per symbol or default (default: no fees).",
                valueName: "file"
            )
        )
        var fees: String?

        @Option(
            name: .customLong("unowned-account"),
            help: ArgumentHelp(
                "The owner whose available account settles orders that named no account (default: such trades are refused).",
                valueName: "owner"
            )
        )
        var unownedAccount: String?

        /// Trades per transaction; small values make the kill tests' runs long.
        @Option(help: .hidden)
        var batch: Int = LedgerSettle.defaultBatchTrades

        /// Fault injection for the kill -9 tests, in debug builds only (a release build refuses it): pause
        /// once this many batches are committed, until killed.
        @Option(name: .customLong("debug-fault-pause-after-batches"), help: .hidden)
        var debugFaultPauseAfterBatches: Int?

        @OptionGroup var quietOption: QuietOption

        func validate() throws {
            if instrumentsOption.instruments == nil {
                throw ValidationError("settle needs --instruments: the base and quote assets of each symbol")
            }
            if !(1...1_000_000).contains(batch) { throw ValidationError("--batch must be 1 to 1000000") }
            #if !DEBUG
            if debugFaultPauseAfterBatches != nil {
                throw ValidationError(
                    "--debug-fault-pause-after-batches is fault injection for tests: debug builds only"
                )
            }
            #endif
        }

        func run() async throws {
            try await runAsyncJob("ledger settle") { () async throws(CastleError) in
                let instruments = try instrumentsOption.load()
                let fees = try fees.map { (path) throws(CastleError) in try FeeTable.load(path: path) } ?? FeeTable()
                let quiet = quietOption.quiet
                try await Backends.with(storeOptions.storeURL) { (backend) throws(CastleError) in
                    var name = consumer ?? ""
                    if consumer == nil { name = try await EventLog.onlyConsumer(of: backend) }
                    let consumer = name
                    let bar = ProgressBar(label: "settle", forceDisabled: quiet)
                    let summary = try await LedgerSettle.run(
                        store: backend,
                        consumer: consumer,
                        instruments: instruments,
                        fees: fees,
                        unownedAccount: unownedAccount,
                        batchTrades: batch,
                        postedAt: LedgerCommand.now(),
                        debugPauseAfterBatches: debugFaultPauseAfterBatches
                    ) { through in bar.update(done: 0, total: nil, status: "through seq \(through)") }
                    bar.finish()
                    if !quiet {
                        writeStandardError(
                            "castle ledger settle: \(consumer): \(summary.trades) trades settled, through seq \(summary.through)\n"
                        )
                    }
                }
            }
        }
    }

    struct Balances: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the ledger's balances: a table on a terminal, else NDJSON, or --format.",
            usage: "castle ledger balances [<options>]",
            discussion: """
                One row per account and asset, sorted, amounts in the asset's unit with its decimals. NDJSON: {"account":…,"asset":…,"balance":"…"} a line; CSV: a header account,asset,balance.

                Examples:
                  castle ledger balances
                  castle ledger balances --account fees:exchange --format ndjson
                  castle ledger balances --asset USD --format csv -o usd.csv
                """
        )

        @OptionGroup var storeOptions: StoreOptions

        @Option(help: ArgumentHelp("Only this account (KIND:OWNER).", valueName: "account"))
        var account: String?

        @Option(help: ArgumentHelp("Only this asset code.", valueName: "code"))
        var asset: String?

        @Option(
            help: ArgumentHelp("table, ndjson or csv (default: table on a terminal, else ndjson).", valueName: "format")
        )
        var format: LedgerBalances.Format?

        @Option(name: [.short, .long], help: ArgumentHelp("Write here instead of stdout.", valueName: "file"))
        var output: String?

        func run() async throws {
            try await runAsyncJob("ledger balances") { () async throws(CastleError) in
                let format = format ?? (output == nil && isatty(1) == 1 ? .table : .ndjson)
                try await Backends.with(storeOptions.storeURL) { (backend) throws(CastleError) in
                    let text = try await LedgerBalances.render(
                        store: backend,
                        account: account,
                        asset: asset,
                        format: format
                    )
                    let sink = try OutputSink(path: output)
                    do throws(CastleError) {
                        try sink.write(text)
                        try sink.commit()
                    } catch {
                        sink.abort()
                        throw error
                    }
                }
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Prove the ledger: entries balance, the balances equal the postings, every asset sums to zero.",
            usage: "castle ledger verify [<options>]",
            discussion: """
                Exits 0 when every entry balances and obeys its rules, no account is below zero where its kind forbids it, the stored balances equal the sums of the postings, and every asset sums to zero over all accounts; else exits 1 with the first offending entry's key and the reason on stderr.

                Examples:
                  castle ledger verify
                  castle ledger verify --store postgres://castle@db/castle || page-the-oncall
                """
        )

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var quietOption: QuietOption

        func run() async throws {
            let result = try await runAsyncJob("ledger verify") { () async throws(CastleError) in
                try await Backends.with(storeOptions.storeURL) { (backend) throws(CastleError) in
                    try await LedgerVerify.run(store: backend)
                }
            }
            switch result {
            case .success(let summary):
                if !quietOption.quiet {
                    writeStandardError(
                        "castle ledger verify: ok: \(summary.entries) entries, \(summary.balances) balances\n"
                    )
                }
            case .failure(let failure):
                writeStandardError("castle ledger verify: \(failure)\n")
                throw ExitCode(1)
            }
        }
    }
}

extension LedgerBalances.Format: ExpressibleByArgument {}
