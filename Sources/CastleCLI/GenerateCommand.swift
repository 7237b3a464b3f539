import ArgumentParser
import CastleCore
import CastleSupport
import Streams
import SyntheticData

struct GenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Make realistic synthetic data, deterministic by seed.",
        subcommands: [Orders.self, Instruments.self]
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
}
