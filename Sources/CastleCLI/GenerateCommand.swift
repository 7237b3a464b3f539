import ArgumentParser
import CastleCore
import CastleSupport
import Streams
import SyntheticData

#if canImport(Glibc)
import Glibc
#endif

struct GenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Make realistic synthetic data, deterministic by seed.",
        subcommands: [Orders.self, Instruments.self, Payments.self]
    )

    struct Orders: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Synthetic order flow in the order-stream contract's NDJSON.",
            usage: "castle generate orders [<options>]",
            discussion: """
                Four symbols (BTC-USD, ETH-USD, SOL-USD, DOGE-USD) whose mids follow a geometric Brownian motion; order distances from the mid follow a power law; ~15% IOC, ~95% of resting orders cancelled after an exponential lifetime, ~20% amended, a few percent duplicate cancels of dead orders; Zipf-weighted accounts. The same seed and count give the same bytes. Prices and quantities fit the instruments from `castle generate instruments`.

                Examples:
                  castle generate orders --seed 7 --count 1000000 -o day.ndjson
                  castle generate orders --count 100 --no-ts | head
                """
        )

        @Option(help: "Random seed.") var seed: UInt64 = 1
        @OptionGroup var regionOption: RegionOption
        @Option(help: "Number of commands.") var count: Int = 100_000
        @Option(help: "Number of distinct accounts.") var accounts: Int = 100
        @Flag(name: .customLong("no-ts"), help: "Leave out the ts field.") var noTimestamps = false
        @Option(name: [.short, .long], help: ArgumentHelp("Output file (default: stdout).", valueName: "file"))
        var output: String?

        func validate() throws {
            guard count >= 0 else { throw ValidationError("--count must not be negative") }
            guard accounts >= 1 else { throw ValidationError("--accounts must be at least 1") }
        }

        func run() async throws {
            var config = OrderFlow.Config()
            config.seed = seed
            config.count = count
            config.accounts = accounts
            config.timestamps = !noTimestamps
            try await runJob("generate orders") { [config] () throws(CastleError) in
                let sink = try OutputSink(path: output)
                var flow = OrderFlow(config)
                var line: [UInt8] = []
                line.reserveCapacity(256)
                while flow.next(into: &line) {
                    try sink.reserve(line.count + 1)
                    line.withUnsafeBufferPointer { sink.append($0) }
                    sink.append(UInt8(ascii: "\n"))
                }
                try sink.commit()
            }
        }
    }

    struct Instruments: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The instruments file that matches `castle generate orders`.",
            discussion: "Example:\n  castle generate instruments -o instruments.ndjson"
        )

        @Option(name: [.short, .long], help: ArgumentHelp("Output file (default: stdout).", valueName: "file"))
        var output: String?
        @OptionGroup var regionOption: RegionOption

        func run() async throws {
            try await runJob("generate instruments") { () throws(CastleError) in
                let sink = try OutputSink(path: output)
                for symbol in OrderFlow.defaultSymbols { try sink.write(symbol.instrumentsLine + "\n") }
                try sink.commit()
            }
        }
    }

    struct Payments: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A payments history with matching Stripe and bank files and injected breaks.",
            discussion: """
                Writes four files into the output directory: ledger.ndjson (entries for `castle ledger post`: card deposits through clearing:stripe, withdrawals to bank:main), stripe.csv (Stripe balance transactions, cents), bank.camt053.xml (a camt.053.001.02 statement of the withdrawals, one batch entry per ten) and answers.ndjson (each injected break and the class `castle reconcile` must report: dropped, duplicated, amount_shifted, date_shifted, split, reversed, failed_but_posted). The same seed gives the same bytes.

                Examples:
                  castle generate payments --seed 7 -o day
                  castle ledger post day/ledger.ndjson
                  castle reconcile --source day/stripe.csv --source day/bank.camt053.xml
                """
        )

        @Option(help: "Random seed.") var seed: UInt64 = 1
        @Option(help: "Number of card deposits (about a third as many withdrawals).") var count: Int = 1000
        @Option(name: .customLong("break-rate"), help: "Share of deposits given an injected break (0 to 1).")
        var breakRate: Double = 0.02
        @Option(name: [.short, .long], help: ArgumentHelp("Output directory (created if missing).", valueName: "dir"))
        var output: String

        func validate() throws {
            guard count >= 0 else { throw ValidationError("--count must not be negative") }
            guard (0...1).contains(breakRate) else { throw ValidationError("--break-rate is from 0 to 1") }
        }

        func run() async throws {
            var config = PaymentsDay.Config()
            config.seed = seed
            config.count = count
            config.breakRate = breakRate
            try await runJob("generate payments") { [config, output] () throws(CastleError) in
                if mkdir(output, 0o777) != 0 && errno != EEXIST {
                    throw CastleError(.cantCreate, "\(output): cannot create the directory: \(errnoText())")
                }
                let day = PaymentsDay.generate(config)
                for (name, text) in [
                    ("ledger.ndjson", day.ledger), ("stripe.csv", day.stripeCSV), ("bank.camt053.xml", day.camt053),
                    ("answers.ndjson", day.answers),
                ] {
                    let sink = try OutputSink(path: output + "/" + name)
                    try sink.write(text)
                    try sink.commit()
                }
            }
        }
    }
}
