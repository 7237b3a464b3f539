import CastleCore
import CastleSupport
import MarketData
import Reports
import Streams

/// What a replay writes as its data stream (stdout or `-o`): exactly one of these.
public enum ReplayStream: String, Sendable {
    case snapshots, bars, stats, fills, trades
}

/// The analytics of one symbol's replay, fed by either mode: book snapshots at events or at time
/// boundaries, trades, bars, statistics and the chart. Events before `--from` update nothing here; the
/// caller still applies them to its book.
final class ReplayAnalytics {
    let priceDecimals: UInt8
    let qtyDecimals: UInt8
    var stats: DayStats
    private var bars: BarBuilder?
    private var barWriter: BarWriter?
    private var tradeWriter: TradeWriter?
    private var snapshotWriter: SnapshotWriter?
    private let snapshotSpec: ReplaySpec.Snapshots?
    private var nextBoundaryNs: Int64?
    private(set) var chart: DayChart?
    private(set) var trades = 0

    init(
        stream: ReplayStream,
        sink: OutputSink,
        format: ReplayFormat,
        snapshots: ReplaySpec.Snapshots?,
        barsIntervalNs: Int64?,
        chartSymbol: String?,
        chartDate: String?,
        priceDecimals: UInt8,
        qtyDecimals: UInt8,
        messageNames: [String]
    ) throws(CastleError) {
        self.priceDecimals = priceDecimals
        self.qtyDecimals = qtyDecimals
        stats = DayStats(messageNames: messageNames)
        snapshotSpec = snapshots
        switch stream {
        case .snapshots:
            snapshotWriter = try SnapshotWriter(
                sink: sink,
                format: format,
                priceDecimals: priceDecimals,
                qtyDecimals: qtyDecimals,
                levels: snapshots?.levels ?? 10
            )
        case .bars:
            barWriter = try BarWriter(
                sink: sink,
                format: format,
                priceDecimals: priceDecimals,
                qtyDecimals: qtyDecimals
            )
        case .trades:
            tradeWriter = try TradeWriter(
                sink: sink,
                format: format,
                priceDecimals: priceDecimals,
                qtyDecimals: qtyDecimals
            )
        case .stats, .fills:
            break
        }
        if let barsIntervalNs { bars = BarBuilder(intervalNs: barsIntervalNs) }
        if let chartSymbol {
            chart = DayChart(
                symbol: chartSymbol,
                date: chartDate,
                priceDecimals: priceDecimals,
                qtyDecimals: qtyDecimals
            )
        }
    }

    /// Reused for every snapshot written.
    private var scratch = L2Snapshot(timeNs: 0, bids: [], asks: [])

    /// Fills a snapshot of the book's best `levels` per side.
    typealias BookView = (_ levels: Int, _ into: inout L2Snapshot) -> Void

    /// Before an event at `timeNs` is applied: snapshots due at time boundaries show the book as it was.
    func before(timeNs: Int64, book: BookView) throws(CastleError) {
        guard let writer = snapshotWriter, let spec = snapshotSpec, let interval = spec.intervalNs else { return }
        guard let boundary = nextBoundaryNs else {
            // The first boundary is the first multiple of the interval after the first event.
            nextBoundaryNs = (timeNs / interval + 1) * interval
            return
        }
        var next = boundary
        while timeNs >= next {
            book(spec.levels, &scratch)
            scratch.timeNs = next
            try writer.write(scratch)
            next += interval
        }
        nextBoundaryNs = next
    }

    /// After an event: statistics, the chart's quote, and a snapshot per event when asked for.
    func after(
        timeNs: Int64,
        line: Int,
        bestBid: L2Level?,
        bestAsk: L2Level?,
        book: BookView
    ) throws(CastleError) {
        stats.observe(timeNs: timeNs, line: line, bestBid: bestBid, bestAsk: bestAsk)
        chart?.quote(timeNs: timeNs, bestBid: bestBid?.price, bestAsk: bestAsk?.price)
        if let writer = snapshotWriter, let spec = snapshotSpec, spec.intervalNs == nil {
            book(spec.levels, &scratch)
            scratch.timeNs = timeNs
            try writer.write(scratch)
        }
    }

    func trade(_ trade: TradePrint) throws(CastleError) {
        trades += 1
        stats.trade(trade)
        chart?.trade(timeNs: trade.timeNs, qty: trade.qty)
        try tradeWriter?.write(trade)
        if var builder = bars {
            if let bar = builder.add(trade) { try barWriter?.write(bar) }
            bars = builder
        }
    }

    /// Closes the last bar.
    func finish() throws(CastleError) {
        if var builder = bars, let bar = builder.finish() {
            try barWriter?.write(bar)
            bars = builder
        }
    }
}
