import ArgumentParser
import CastleBench
import CastleSupport
import Streams

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure performance.",
        subcommands: [Match.self]
    )

    struct Match: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Engine throughput and per-message latency, in process.",
            usage: "castle bench match [<options>] [<file>]",
            discussion: """
                Generates a realistic workload (castle generate orders), or reads FILE (- for stdin), decodes it into commands before any clock starts, then applies it to a fresh engine --runs times without a clock in the loop (throughput), and --runs times with the clock around every message (latency, HdrHistogram). Reports medians over the runs: a table on stdout, or with --json one JSON object. Build with -c release to measure: bin/bench does.

                Examples:
                  castle bench match
                  castle bench match --messages 5000000 --runs 7 --json
                  castle bench match day.ndjson --instruments instruments.ndjson
                """
        )

        @Option(help: "Generated workload size.") var messages: Int = 2_000_000
        @Option(help: "Runs; figures are medians.") var runs: Int = 5
        @Option(help: "Seed of the generated workload.") var seed: UInt64 = 42
        @Argument(help: ArgumentHelp("Benchmark this NDJSON stream (- for stdin) instead.", valueName: "file"))
        var file: String?
        @Option(name: [.short, .long], help: ArgumentHelp("The same as FILE.", valueName: "file"))
        var input: String?
        @Option(help: ArgumentHelp("Instruments file for FILE.", valueName: "file")) var instruments: String?
        @Flag(help: "Print one JSON object instead of a table.") var json = false
        @OptionGroup var quietOption: QuietOption
        @OptionGroup var regionOption: RegionOption

        func validate() throws {
            guard messages > 0, runs > 0 else { throw ValidationError("--messages and --runs must be positive") }
            if let file, let input {
                throw ValidationError("give the input once, as FILE or as -i FILE, not both ('\(file)', '\(input)')")
            }
        }

        func run() async throws {
            var config = MatchBenchmark.Config()
            config.messages = messages
            config.runs = runs
            config.seed = seed
            config.inputPath = file ?? input
            config.instrumentsPath = instruments
            let quiet = quietOption.quiet
            let report = try await runJob("bench match") { [config] () throws(CastleError) in
                let progress = ProgressBar(label: "bench", forceDisabled: quiet)
                defer { progress.finish() }
                return try MatchBenchmark(config).run { progress.update(done: 0, total: nil, status: $0) }
            }
            if json {
                let perRun = report.throughputPerRun.map { String(Int($0)) }.joined(separator: ",")
                print(
                    """
                    {"benchmark":"match","messages":\(report.messages),"runs":\(report.runs),\
                    "throughput_msgs_per_s_median":\(Int(report.throughputMedian)),\
                    "throughput_msgs_per_s_runs":[\(perRun)],\
                    "latency_ns_p50":\(report.latencyP50Ns),"latency_ns_p99":\(report.latencyP99Ns),\
                    "latency_ns_p999":\(report.latencyP999Ns),"latency_ns_max":\(report.latencyMaxNs),\
                    "clock_overhead_ns":\(report.clockOverheadNs),"events":\(report.events),\
                    "trades":\(report.trades),"resting_at_end":\(report.restingAtEnd)}
                    """
                )
            } else {
                print(
                    """
                    castle bench match — \(report.messages) messages, median of \(report.runs) runs
                      throughput        \(formatCount(report.throughputMedian)) msgs/s   (runs: \(report.throughputPerRun.map { formatCount($0) }.joined(separator: ", ")))
                      latency p50       \(report.latencyP50Ns) ns
                      latency p99       \(report.latencyP99Ns) ns
                      latency p99.9     \(report.latencyP999Ns) ns
                      latency max       \(report.latencyMaxNs) ns
                      clock overhead    \(report.clockOverheadNs) ns (included in the latencies)
                      events \(report.events), trades \(report.trades), resting at end \(report.restingAtEnd)
                    """
                )
            }
        }
    }
}
