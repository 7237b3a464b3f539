public import CastleCore
import MatchingEngine

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
        let reader = LineReader(source: source)
        let output = try OutputSink(path: options.outputPath, writeBehind: true)
        let bookOut = try options.bookOutPath.map { path throws(CastleError) in try OutputSink(path: path) }
        let writer = EventWriter(sink: output, instruments: instruments)
        var exchange = Exchange(instruments: instruments, defaultSTP: options.stp)
        var events: [Event] = []
        events.reserveCapacity(1024)
        var summary = Summary()
        let progress = ProgressBar(label: "match", forceDisabled: !options.showProgress)
        var namesSeen = (0, 0)

        do throws(CastleError) {
            while let line = try reader.next() {
                if line.tooLong {
                    events.append(
                        .rejected(op: nil, id: nil, reason: .malformed, detail: .lineTooLong, line: line.number, ts: nil))
                } else if isBlank(line.bytes) {
                    continue
                } else {
                    summary.commands += 1
                    switch decoder.decode(line.bytes, lineNumber: line.number) {
                    case .command(let command):
                        exchange.apply(command, into: &events)
                    case .rejected(let op, let id, let reason, let detail):
                        events.append(.rejected(op: op, id: id, reason: reason, detail: detail, line: line.number, ts: nil))
                    }
                }
                if namesSeen != (decoder.symbols.count, decoder.accounts.count) {
                    writer.syncNames(symbols: decoder.symbols, accounts: decoder.accounts)
                    namesSeen = (decoder.symbols.count, decoder.accounts.count)
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
                if summary.commands & 0xFFFF == 0 {
                    progress.update(
                        done: source.consumedBytes, total: source.sizeBytes, status: "\(summary.commands) commands")
                }
            }
            progress.finish()
            if let bookOut {
                try BookWriter.write(exchange, symbols: decoder.symbols, to: bookOut)
            }
            try output.commit()
            try bookOut?.commit()
        } catch {
            progress.finish()
            output.abort()
            bookOut?.abort()
            throw error
        }
        summary.restingOrders = exchange.liveOrderCount
        return summary
    }

    @inline(__always)
    private static func isBlank(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        for byte in bytes where byte != 0x20 && byte != 0x09 { return false }
        return true
    }
}
