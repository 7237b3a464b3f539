import CastleCore
import CastleSupport
import Codecs
import MarketData
import Reports
import Streams

/// `rebuild`: a LOBSTER day applied to a market-by-order book, no matching. With `--orderbook`, the
/// book is seeded from the first row (the first message undone) and learns the levels that come into
/// view from beyond the file's depth; with `--verify` every later row is compared before it is learned.
enum LobsterReplay {
    /// LOBSTER prices are dollars × 10000; sizes are shares.
    static let priceDecimals: UInt8 = 4
    static let qtyDecimals: UInt8 = 0

    static func run(
        _ options: ReplayJob.Options,
        output: OutputSink,
        side: SideOutputs,
        pacer: inout Pacer?
    ) throws(CastleError) -> ReplayJob.Summary {
        for bound in [options.from, options.to] {
            if case .epochNs = bound {
                throw CastleError(.usage, "LOBSTER times are since midnight: give --from/--to as a time of day (09:30)")
            }
        }
        let messages = try LobsterMessageReader(path: options.inputPath)
        let rows = try options.orderbookPath.map { path throws(CastleError) in try LobsterOrderbookReader(path: path) }
        let (symbol, date) = names(options.inputPath)
        let analytics = try ReplayAnalytics(
            stream: options.stream,
            sink: output,
            format: options.format,
            snapshots: options.snapshots,
            barsIntervalNs: options.barsIntervalNs,
            chartSymbol: options.chartPath == nil ? nil : symbol,
            chartDate: date,
            priceDecimals: priceDecimals,
            qtyDecimals: qtyDecimals,
            messageNames: L3Event.Kind.allCases.map(DayStats.messageName)
        )
        if options.stream == .fills {
            throw CastleError(.usage, "--inject works with rematch (an order stream), not with a LOBSTER rebuild")
        }
        var book = L3Book(viewDepth: Int.max)
        var verification: BookVerification?
        var summary = ReplayJob.Summary()
        summary.symbol = symbol
        var inWindow = options.from == nil
        var attributed = 0

        while let event = try messages.next() {
            if let limit = options.limit, summary.messages >= limit { break }
            summary.messages += 1
            let row = try rows?.next(timeNs: event.timeNs)
            if rows != nil, row == nil {
                throw CastleError(
                    .dataError,
                    "\(options.orderbookPath!):\(summary.messages): the orderbook file ends before the message file"
                )
            }
            if summary.messages == 1, let row {
                // The state before the first message: its row with the message undone.
                book = L3Book(viewDepth: rows!.levels)
                book.seed(row.reverting(event))
                if options.verify { verification = BookVerification(depth: rows!.levels) }
            }
            if let to = options.to, to.isReached(by: event.timeNs, isEpoch: false) { break }
            if !inWindow, let from = options.from, from.isReached(by: event.timeNs, isEpoch: false) { inWindow = true }
            if inWindow {
                pacer?.wait(for: event.timeNs)
                try analytics.before(timeNs: event.timeNs) {
                    book.snapshot(levels: $0, timeNs: event.timeNs, into: &$1)
                }
            }
            let outcome = book.apply(event)
            if let row {
                // Row 1 seeded the book; every later row is compared before it is learned from.
                if summary.messages > 1 { verification?.compare(book, with: row, line: summary.messages) }
                book.learn(from: row)
            }
            guard inWindow else { continue }
            analytics.stats.count(event.kind)
            switch outcome.anomaly {
            case .attributedToPreexisting?: attributed += 1
            case .unknownOrder?: analytics.stats.anomaly(.unknownOrder, line: event.line)
            case .sizeExceedsOrder?: analytics.stats.anomaly(.overExecution, line: event.line)
            default: break
            }
            if let halt = outcome.halt {
                let state: DayStats.HaltState
                switch halt {
                case .halted: state = .halted
                case .quoting: state = .quotingResumed
                case .trading: state = .tradingResumed
                }
                analytics.stats.halt(state, timeNs: event.timeNs, line: event.line)
                summary.halts.append("line \(event.line): \(state.name)")
            }
            if let trade = outcome.trade { try analytics.trade(trade) }
            try analytics.after(
                timeNs: event.timeNs,
                line: event.line,
                bestBid: book.level(.buy, 0),
                bestAsk: book.level(.sell, 0)
            ) { book.snapshot(levels: $0, timeNs: event.timeNs, into: &$1) }
        }
        try analytics.finish()
        summary.trades = analytics.trades
        if options.stream == .stats {
            try StatsWriter.writeJSON(
                analytics.stats,
                to: output,
                priceDecimals: priceDecimals,
                qtyDecimals: qtyDecimals,
                symbol: symbol
            )
        }
        if let sink = side.stats {
            try StatsWriter.writeJSON(
                analytics.stats,
                to: sink,
                priceDecimals: priceDecimals,
                qtyDecimals: qtyDecimals,
                symbol: symbol
            )
        }
        if let sink = side.chart, let chart = analytics.chart { try chart.write(to: sink) }
        summary.statsSummary = StatsWriter.summary(
            analytics.stats,
            priceDecimals: priceDecimals,
            qtyDecimals: qtyDecimals
        )
        if attributed > 0 {
            summary.statsSummary += "; \(attributed) events on orders that rested before the file began"
        }
        if let verification {
            var text = "verify: \(verification.rowsEqual) rows equal / \(verification.rowsCompared) rows compared"
            if let first = verification.firstDisagreement {
                text += "; first disagreement at orderbook line \(first.line)"
                summary.verificationFailed = true
            }
            summary.verification = text
        }
        return summary
    }

    /// `GOOG_2012-06-21_34200000_57600000_message_1.csv` → ("GOOG", "2012-06-21").
    static func names(_ path: String?) -> (symbol: String, date: String?) {
        guard let file = path?.split(separator: "/").last else { return ("LOBSTER", nil) }
        let parts = file.split(separator: "_")
        guard parts.count >= 2 else { return (String(file), nil) }
        return (String(parts[0]), String(parts[1]))
    }
}
