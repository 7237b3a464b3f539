public import CastleCore
public import CastleSupport
import Crypto
import MarketData
import MatchingEngine
public import Reports
import Streams

/// `castle replay` as a library call: a recorded market day through book reconstruction (`rebuild`,
/// for level-3 feeds such as LOBSTER) or through the matching engine (`rematch`, for the order-stream
/// contract), with its analytics. Streams: memory follows the book, not the day.
public enum ReplayJob {
    public enum InputFormat: String, Sendable, CaseIterable {
        case ndjson, lobster
    }

    public enum Mode: String, Sendable, CaseIterable {
        case rebuild, rematch
    }

    public struct Options: Sendable {
        public var inputPath: String?
        /// nil: inferred from the file name (`*_message_*.csv` or `.csv` is LOBSTER, anything else NDJSON).
        public var inputFormat: InputFormat?
        /// LOBSTER's orderbook file: seeds the book and, with `verify`, checks every row.
        public var orderbookPath: String?
        /// nil: `rebuild` for LOBSTER, `rematch` for NDJSON.
        public var mode: Mode?
        public var verify = false
        /// Orders of the user's (contract NDJSON with `ts`) merged by time into a rematch.
        public var injectPath: String?
        public var from: ReplaySpec.TimeBound?
        public var to: ReplaySpec.TimeBound?
        /// The symbol to analyse (rematch); nil: the stream's only symbol.
        public var symbol: String?
        public var speed: ReplaySpec.Speed = .max
        /// Stop after this many input messages.
        public var limit: Int?
        public var outputPath: String?
        public var format: ReplayFormat = .ndjson
        public var snapshots: ReplaySpec.Snapshots?
        public var barsIntervalNs: Int64?
        public var stats = false
        public var statsOutPath: String?
        public var fillsOutPath: String?
        public var chartPath: String?
        public var checksum = false
        public var instrumentsPath: String?
        public var stp: STPMode = .cancelTaker
        public var strict = false
        public var showProgress = true

        public init() {}

        /// The data stream: snapshots, else bars, else stats, else the fill report, else trades.
        public var stream: ReplayStream {
            if snapshots != nil { return .snapshots }
            if barsIntervalNs != nil { return .bars }
            if stats { return .stats }
            if injectPath != nil { return .fills }
            return .trades
        }

        public var resolvedFormat: InputFormat {
            if let inputFormat { return inputFormat }
            guard let name = inputPath?.split(separator: "/").last.map(String.init) else { return .ndjson }
            var stem = name
            for suffix in [".gz", ".zst", ".xz", ".bz2"] where stem.hasSuffix(suffix) { stem.removeLast(suffix.count) }
            return stem.contains("_message_") || stem.hasSuffix(".csv") ? .lobster : .ndjson
        }
    }

    public struct Summary: Sendable {
        public var messages = 0
        public var trades = 0
        public var stream: ReplayStream = .trades
        /// SHA-256 of the data stream, hex, with `--checksum`.
        public var checksum: String?
        /// One line for people: the day's statistics.
        public var statsSummary = ""
        /// `rows equal / rows compared` and the first disagreement, with `--verify`.
        public var verification: String?
        public var verificationFailed = false
        public var injected = 0
        public var symbol = ""
        public var halts: [String] = []
    }

    public static func run(
        _ options: Options,
        now: @escaping () -> UInt64 = monotonicNanoseconds,
        sleep: @escaping (UInt64) -> Void = sleepNanoseconds
    ) throws(CastleError) -> Summary {
        let format = options.resolvedFormat
        let mode = options.mode ?? (format == .lobster ? .rebuild : .rematch)
        if format == .lobster && mode == .rematch {
            throw CastleError(
                .usage,
                "--mode rematch needs the order-stream contract (NDJSON); LOBSTER days are rebuilt"
            )
        }
        if format == .ndjson && mode == .rebuild {
            throw CastleError(.usage, "--mode rebuild needs a level-3 feed (--input-format lobster)")
        }
        if options.verify && options.orderbookPath == nil {
            throw CastleError(.usage, "--verify needs --orderbook FILE")
        }
        if options.injectPath != nil && mode != .rematch {
            throw CastleError(.usage, "--inject works with rematch (an order stream), not with a LOBSTER rebuild")
        }
        let output = try OutputSink(path: options.outputPath, writeBehind: true)
        var hasher: SHA256? = options.checksum ? SHA256() : nil
        if hasher != nil {
            output.observer = { bytes in hasher!.update(bufferPointer: UnsafeRawBufferPointer(bytes)) }
        }
        let side = try SideOutputs(options)
        var pacer: Pacer?
        if case .times(let thousandths) = options.speed {
            pacer = Pacer(thousandths: thousandths, now: now, sleep: sleep)
        }
        do throws(CastleError) {
            var summary =
                mode == .rebuild
                ? try LobsterReplay.run(options, output: output, side: side, pacer: &pacer)
                : try Rematch.run(options, output: output, side: side, pacer: &pacer)
            summary.stream = options.stream
            try output.commit()
            try side.commit()
            if let digest = hasher?.finalize() {
                summary.checksum = digest.map { byte in
                    let hex = Array("0123456789abcdef")
                    return String([hex[Int(byte >> 4)], hex[Int(byte & 15)]])
                }.joined()
            }
            return summary
        } catch {
            output.abort()
            side.abort()
            throw error
        }
    }
}

/// The files a replay writes beside its data stream: `--stats-out`, `--fills-out`, `--chart`.
final class SideOutputs {
    let stats: OutputSink?
    let fills: OutputSink?
    let chart: OutputSink?

    init(_ options: ReplayJob.Options) throws(CastleError) {
        stats = try options.statsOutPath.map { path throws(CastleError) in try OutputSink(path: path) }
        fills = try options.fillsOutPath.map { path throws(CastleError) in try OutputSink(path: path) }
        chart = try options.chartPath.map { path throws(CastleError) in try OutputSink(path: path) }
    }

    func commit() throws(CastleError) {
        try stats?.commit()
        try fills?.commit()
        try chart?.commit()
    }

    func abort() {
        stats?.abort()
        fills?.abort()
        chart?.abort()
    }
}

/// Sleeps for `ns` nanoseconds (pacing `--speed`).
public func sleepNanoseconds(_ ns: UInt64) {
    var request = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
