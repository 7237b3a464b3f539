import CastleCore
public import CastleSupport
import Codecs
import Histogram
import MatchingEngine
import Streams
import SyntheticData

/// In-process engine benchmark: a workload is generated (or read) and decoded into commands before
/// any clock starts; then each run applies all of them to a fresh ``Exchange``.
public struct MatchBenchmark {
    public struct Config: Sendable {
        public var messages = 2_000_000
        public var runs = 5
        public var seed: UInt64 = 42
        /// Benchmark this NDJSON stream instead of a generated one.
        public var inputPath: String?
        public var instrumentsPath: String?

        public init() {}
    }

    public struct Report: Sendable {
        public var messages: Int
        public var runs: Int
        /// Messages per second of each throughput run, in run order.
        public var throughputPerRun: [Double]
        public var throughputMedian: Double
        /// Per-message latency from the timed runs, nanoseconds (median over runs of each percentile).
        public var latencyP50Ns: UInt64
        public var latencyP99Ns: UInt64
        public var latencyP999Ns: UInt64
        public var latencyMaxNs: UInt64
        /// What reading the clock twice costs, measured the same way: included in the latencies above.
        public var clockOverheadNs: UInt64
        public var events: Int
        public var trades: Int
        public var restingAtEnd: Int
    }

    public let config: Config

    public init(_ config: Config) { self.config = config }

    public func run(progress: (String) -> Void = { _ in }) throws(CastleError) -> Report {
        progress("preparing workload")
        let (commands, instruments) = try prepare()
        var throughputs: [Double] = []
        var p50: [UInt64] = []
        var p99: [UInt64] = []
        var p999: [UInt64] = []
        var pmax: [UInt64] = []
        var events: [Event] = []
        events.reserveCapacity(4096)
        var eventCount = 0
        var trades = 0
        var resting = 0
        for run in 1...config.runs {
            progress("run \(run)/\(config.runs): throughput")
            // Throughput: no clock inside the loop.
            var exchange = Exchange(instruments: instruments)
            eventCount = 0
            trades = 0
            let start = monotonicNanoseconds()
            for command in commands {
                exchange.apply(command, into: &events)
                eventCount &+= events.count
                events.removeAll(keepingCapacity: true)
            }
            let elapsed = monotonicNanoseconds() - start
            throughputs.append(Double(commands.count) / (Double(elapsed) / 1e9))
            resting = exchange.liveOrderCount

            progress("run \(run)/\(config.runs): latency")
            // Latency: the clock around each message.
            var histogram = Histogram<UInt64>(
                highestTrackableValue: 60_000_000_000,
                numberOfSignificantValueDigits: .three
            )
            var timed = Exchange(instruments: instruments)
            for command in commands {
                let t0 = monotonicNanoseconds()
                timed.apply(command, into: &events)
                let t1 = monotonicNanoseconds()
                _ = histogram.record(t1 - t0)
                for event in events { if case .trade = event { trades += 1 } }
                events.removeAll(keepingCapacity: true)
            }
            p50.append(histogram.valueAtPercentile(50))
            p99.append(histogram.valueAtPercentile(99))
            p999.append(histogram.valueAtPercentile(99.9))
            pmax.append(histogram.max)
        }
        var overhead = Histogram<UInt64>(highestTrackableValue: 1_000_000_000, numberOfSignificantValueDigits: .three)
        for _ in 0..<100_000 {
            let t0 = monotonicNanoseconds()
            let t1 = monotonicNanoseconds()
            _ = overhead.record(t1 - t0)
        }
        return Report(
            messages: commands.count,
            runs: config.runs,
            throughputPerRun: throughputs,
            throughputMedian: median(throughputs),
            latencyP50Ns: median(p50),
            latencyP99Ns: median(p99),
            latencyP999Ns: median(p999),
            latencyMaxNs: median(pmax),
            clockOverheadNs: overhead.valueAtPercentile(50),
            events: eventCount,
            trades: trades,
            restingAtEnd: resting
        )
    }

    /// Decodes the workload into commands, before any clock starts.
    private func prepare() throws(CastleError) -> ([Command], [SymbolID: Instrument]) {
        var decoder = CommandDecoder()
        var commands: [Command] = []
        var instruments: [SymbolID: Instrument] = [:]
        func add(_ bytes: UnsafeBufferPointer<UInt8>, _ number: Int) {
            if case .command(let command) = decoder.decode(bytes, lineNumber: number) { commands.append(command) }
        }
        if let path = config.inputPath {
            if let instrumentsPath = config.instrumentsPath {
                instruments = try InstrumentsFile.load(path: instrumentsPath, symbols: &decoder.symbols)
            }
            let reader = LineReader(source: try InputSource(path: path))
            while let line = try reader.next() {
                if !line.tooLong { add(line.bytes, line.number) }
            }
        } else {
            var flowConfig = OrderFlow.Config()
            flowConfig.seed = config.seed
            flowConfig.count = config.messages
            for symbol in flowConfig.symbols {
                let id = decoder.symbols.intern(symbol.name)!
                instruments[id] = Instrument(
                    priceDecimals: symbol.tick.scale,
                    qtyDecimals: symbol.lot.scale,
                    tick: symbol.tick.mantissa,
                    lot: symbol.lot.mantissa
                )
            }
            commands.reserveCapacity(config.messages)
            var flow = OrderFlow(flowConfig)
            var line: [UInt8] = []
            var number = 0
            while flow.next(into: &line) {
                number += 1
                line.withUnsafeBufferPointer { add($0, number) }
            }
        }
        return (commands, instruments)
    }
}

func median<T: Comparable>(_ values: [T]) -> T {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}
