public import CastleCore
public import CastleSupport
import Codecs
import MatchingEngine
import Streams

/// `castle match` as a library call: reads the contract's NDJSON commands, runs them through the
/// engine, writes events (and optionally the final book). Streams: memory follows the live book.
public enum MatchStream {
    public struct Options: Sendable {
        /// nil or `-`: stdin.
        public var inputPath: String?
        /// nil or `-`: stdout.
        public var outputPath: String?
        public var bookOutPath: String?
        public var instrumentsPath: String?
        public var stp: STPMode = .cancelTaker
        /// Stop at the first malformed or invalid command (exit 65) instead of rejecting it and going on.
        public var strict = false
        public var showProgress = true

        public init() {}
    }

    public struct Summary: Sendable {
        public var commands = 0
        public var events = 0
        public var trades = 0
        public var rejected = 0
        /// `file:line: reason (detail)` of the first rejected malformed or invalid command.
        public var firstInputError: String?
        public var restingOrders = 0
    }

    public static func run(_ options: Options) throws(CastleError) -> Summary {
        var decoder = CommandDecoder()
        var instruments: [SymbolID: Instrument] = [:]
        if let path = options.instrumentsPath {
            instruments = try InstrumentsFile.load(path: path, symbols: &decoder.symbols)
        }
        let source = try InputSource(path: options.inputPath)
        let output = try OutputSink(path: options.outputPath, writeBehind: true)
        let bookOut = try options.bookOutPath.map { path throws(CastleError) in try OutputSink(path: path) }
        let writer = EventWriter(sink: output, instruments: instruments)
        // The decoder runs on its own thread; these copies of its name tables grow with each batch in
        // the same order, so they give the same ids.
        var symbols = decoder.symbols
        var accounts = decoder.accounts
        writer.syncNames(symbols: symbols, accounts: accounts)
        let reader = DecodingReader(source: source, decoder: decoder)
        var exchange = Exchange(instruments: instruments, defaultSTP: options.stp)
        var events: [Event] = []
        events.reserveCapacity(1024)
        var summary = Summary()
        let progress = ProgressBar(label: "match", forceDisabled: !options.showProgress)

        do throws(CastleError) {
            while let batch = try reader.next() {
                if !batch.newSymbols.isEmpty || !batch.newAccounts.isEmpty {
                    for name in batch.newSymbols { _ = name.withUnsafeBufferPointer { symbols.intern($0) } }
                    for name in batch.newAccounts { _ = name.withUnsafeBufferPointer { accounts.intern($0) } }
                    writer.syncNames(symbols: symbols, accounts: accounts)
                }
                for item in batch.items {
                    summary.commands += 1
                    switch item {
                    case .command(let command):
                        exchange.apply(command, into: &events)
                    case .rejected(let op, let id, let reason, let detail, let line):
                        events.append(.rejected(op: op, id: id, reason: reason, detail: detail, line: line, ts: nil))
                    }
                    for event in events {
                        switch event {
                        case .trade:
                            summary.trades += 1
                        case .rejected(_, _, let reason, let detail, let lineNumber, _):
                            summary.rejected += 1
                            if reason == .malformed || reason == .invalid {
                                let message = "\(source.name):\(lineNumber): \(reason.name) (\(detail.text))"
                                if options.strict { throw CastleError(.dataError, message) }
                                if summary.firstInputError == nil { summary.firstInputError = message }
                            }
                        default:
                            break
                        }
                        try writer.write(event)
                    }
                    summary.events += events.count
                    events.removeAll(keepingCapacity: true)
                }
                progress.update(
                    done: batch.consumedBytes,
                    total: source.sizeBytes,
                    status: "\(summary.commands) commands"
                )
            }
            progress.finish()
            if let bookOut {
                try BookWriter.write(exchange, symbols: symbols, to: bookOut)
            }
            try output.commit()
            try bookOut?.commit()
        } catch {
            reader.close()
            progress.finish()
            output.abort()
            bookOut?.abort()
            throw error
        }
        summary.restingOrders = exchange.liveOrderCount
        return summary
    }
}
