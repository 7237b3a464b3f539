import CastleCore
import CastleSupport
import Codecs
import MarketData
import MatchingEngine
import Reports
import Streams

/// `rematch`: the recorded orders (and the user's injected ones) through castle's matching engine.
enum Rematch {
    static func run(
        _ options: ReplayJob.Options,
        output: OutputSink,
        side: SideOutputs,
        pacer: inout Pacer?
    ) throws(CastleError) -> ReplayJob.Summary {
        var decoder = CommandDecoder()
        var instruments: [SymbolID: Instrument] = [:]
        if let path = options.instrumentsPath {
            instruments = try InstrumentsFile.load(path: path, symbols: &decoder.symbols)
        }
        var exchange = Exchange(instruments: instruments, defaultSTP: options.stp)
        let source = try InputSource(path: options.inputPath)
        let injected = try options.injectPath.map { path throws(CastleError) in try loadInjected(path, &decoder) } ?? []
        var nextInjected = 0
        var reports: [InjectedOrder] = []
        var reportIndex: [OrderID: Int] = [:]

        // The analysed symbol: named, or the first one the stream shows (and then the only one).
        var symbolID: SymbolID? = options.symbol.map { decoder.symbols.intern($0)! }
        // The decoder now runs on its own thread; this copy of its symbols grows with each batch in the
        // same order, so it gives the same ids.
        var symbols = decoder.symbols
        let reader = DecodingReader(source: source, decoder: decoder)
        defer { reader.close() }
        var analytics: ReplayAnalytics?
        /// Where each op is counted in the statistics, by `Op.rawValue`.
        var opSlots: [Int] = []
        func analyticsFor(_ symbol: SymbolID) throws(CastleError) -> ReplayAnalytics {
            if let analytics { return analytics }
            let instrument = exchange.instrument(of: symbol)
            let made = try ReplayAnalytics(
                stream: options.stream,
                sink: output,
                format: options.format,
                snapshots: options.snapshots,
                barsIntervalNs: options.barsIntervalNs,
                chartSymbol: options.chartPath == nil ? nil : symbols.string(of: symbol),
                chartDate: nil,
                priceDecimals: instrument.priceDecimals,
                qtyDecimals: instrument.qtyDecimals,
                messageNames: ["new", "cancel", "amend", "rejected"]
            )
            opSlots = [Op.new, .cancel, .amend].map { made.stats.messageSlot($0.name.description) }
            analytics = made
            return made
        }

        var summary = ReplayJob.Summary()
        var events: [Event] = []
        var inWindow = options.from == nil
        let progress = ProgressBar(label: "replay", forceDisabled: !options.showProgress)
        var lastTimeNs: Int64 = 0

        /// Applies one command, recorded or injected, and feeds what happened to the analytics.
        func apply(_ command: Command, line: Int, isInjected: Bool) throws(CastleError) {
            if !isInjected, !injected.isEmpty, SyntheticOrderID.isInjected(command.id) {
                throw CastleError(
                    .dataError,
                    "\(source.name):\(line): order id \(command.id) lies in the range that --inject keeps for "
                        + "injected orders (2^63 + 2^62 and up); replay this stream without --inject"
                )
            }
            let timeNs = command.ts ?? lastTimeNs
            lastTimeNs = timeNs
            if command.op == .new, symbolID == nil { symbolID = command.symbol }
            let target = symbolID
            if command.op == .new, command.symbol != target, options.symbol == nil, symbolID != nil, !isInjected {
                let names = [target!, command.symbol].map { symbols.string(of: $0) }.joined(separator: ", ")
                throw CastleError(
                    .usage,
                    "\(source.name):\(line): the stream has several symbols (\(names), …); replay analyses one: choose it with --symbol"
                )
            }
            // Time passes for every command: snapshots due at a boundary show the book before it.
            if inWindow, let target {
                try analyticsFor(target).before(timeNs: timeNs) { levels, into in
                    into = snapshot(exchange, target, levels, timeNs)
                }
            }
            exchange.apply(command, into: &events)
            // Cancels and amends carry no symbol: the events say whose order it was. One for an order that
            // is not live belongs to no symbol we can name, unless the stream has only one.
            var commandSymbol: SymbolID? = command.op == .new ? command.symbol : nil
            for event in events {
                switch event {
                case .trade(let trade, let ts):
                    for id in [trade.maker, trade.taker] where SyntheticOrderID.isInjected(id) {
                        if let index = reportIndex[id] { recordFill(&reports[index], trade, ts ?? timeNs) }
                    }
                    if trade.symbol == target, inWindow {
                        try analyticsFor(trade.symbol).trade(
                            TradePrint(timeNs: ts ?? timeNs, price: trade.price, qty: trade.qty, aggressor: trade.side)
                        )
                    }
                case .canceled(let id, let symbol, _, _, _, let reason, _):
                    if id == command.id { commandSymbol = symbol }
                    if let index = reportIndex[id] {
                        reports[index].status = "canceled"
                        reports[index].reason = reason.name.description
                    }
                case .amended(_, let symbol, _, _, _, _, _, _, _):
                    commandSymbol = symbol
                case .rejected(_, let id, let reason, _, _, _):
                    if commandSymbol == nil, options.symbol == nil { commandSymbol = target }
                    if isInjected, let id, let index = reportIndex[id] {
                        reports[index].status = "rejected"
                        reports[index].reason = reason.name.description
                    }
                    if inWindow, commandSymbol == target, let target {
                        // Every rejection counts, the engine's as well as the decoder's: a recorded order
                        // that the replay could not place is part of what the statistics must show.
                        if !isInjected { try analyticsFor(target).stats.count("rejected") }
                        if reason == .unknownOrder { try analyticsFor(target).stats.anomaly(.unknownOrder, line: line) }
                    }
                default:
                    break
                }
            }
            let touchesTarget = commandSymbol != nil && commandSymbol == target
            events.removeAll(keepingCapacity: true)
            if inWindow, touchesTarget, let target {
                let analytics = try analyticsFor(target)
                analytics.stats.count(at: opSlots[Int(command.op.rawValue)])
                try analytics.after(
                    timeNs: timeNs,
                    line: line,
                    bestBid: exchange.best(of: target, side: .buy).map { L2Level(price: $0.price, qty: $0.qty) },
                    bestAsk: exchange.best(of: target, side: .sell).map { L2Level(price: $0.price, qty: $0.qty) }
                ) { levels, into in into = snapshot(exchange, target, levels, timeNs) }
            }
        }

        func applyInjected(_ original: Command) throws(CastleError) {
            var command = original
            command.id = SyntheticOrderID.injected(command.id)
            if command.op == .new {
                reportIndex[command.id] = reports.count
                let instrument = exchange.instrument(of: command.symbol)
                var price: Int64?
                if let decimal = command.price, case .success(let value) = decimal.scaled(to: instrument.priceDecimals)
                {
                    price = value
                }
                var qty: Int64 = 0
                if let decimal = command.qty, case .success(let value) = decimal.scaled(to: instrument.qtyDecimals) {
                    qty = value
                }
                reports.append(
                    InjectedOrder(
                        id: original.id,
                        side: command.side,
                        price: price,
                        qty: qty,
                        submittedNs: command.ts ?? 0
                    )
                )
            }
            try apply(command, line: command.line, isInjected: true)
        }

        reading: while let batch = try reader.next() {
            for name in batch.newSymbols { _ = name.withUnsafeBufferPointer { symbols.intern($0) } }
            for item in batch.items {
                if let limit = options.limit, summary.messages >= limit { break reading }
                summary.messages += 1
                let command: Command
                switch item {
                case .command(let decoded):
                    command = decoded
                case .rejected(_, _, let reason, let detail, let line):
                    if options.strict {
                        throw CastleError(.dataError, "\(source.name):\(line): \(reason.name) (\(detail.text))")
                    }
                    if inWindow, let target = symbolID { try analyticsFor(target).stats.count("rejected") }
                    continue
                }
                if let ts = command.ts {
                    if let to = options.to, to.isReached(by: ts, isEpoch: true) { break reading }
                    if !inWindow, let from = options.from, from.isReached(by: ts, isEpoch: true) { inWindow = true }
                    while nextInjected < injected.count, let its = injected[nextInjected].ts, its < ts {
                        try applyInjected(injected[nextInjected])
                        nextInjected += 1
                    }
                    if inWindow { pacer?.wait(for: ts) }
                }
                try apply(command, line: command.line, isInjected: false)
            }
            progress.update(done: batch.consumedBytes, total: source.sizeBytes, status: "\(summary.messages) messages")
        }
        while nextInjected < injected.count {
            try applyInjected(injected[nextInjected])
            nextInjected += 1
        }
        progress.finish()

        guard let target = symbolID else {
            summary.statsSummary = "no orders"
            return summary
        }
        let result = try analyticsFor(target)
        try result.finish()
        summary.symbol = symbols.string(of: target)
        summary.trades = result.trades
        summary.injected = reports.count
        let p = result.priceDecimals
        let q = result.qtyDecimals
        switch options.stream {
        case .stats:
            try StatsWriter.writeJSON(
                result.stats,
                to: output,
                priceDecimals: p,
                qtyDecimals: q,
                symbol: summary.symbol
            )
        case .fills:
            try FillReportWriter.write(
                reports,
                to: output,
                format: options.format,
                symbol: summary.symbol,
                priceDecimals: p,
                qtyDecimals: q
            )
        default:
            break
        }
        if let sink = side.fills {
            try FillReportWriter.write(
                reports,
                to: sink,
                format: options.format,
                symbol: summary.symbol,
                priceDecimals: p,
                qtyDecimals: q
            )
        }
        if let sink = side.stats {
            try StatsWriter.writeJSON(result.stats, to: sink, priceDecimals: p, qtyDecimals: q, symbol: summary.symbol)
        }
        if let sink = side.chart, let chart = result.chart { try chart.write(to: sink) }
        summary.statsSummary = StatsWriter.summary(result.stats, priceDecimals: p, qtyDecimals: q)
        return summary
    }

    private static func recordFill(_ order: inout InjectedOrder, _ trade: Trade, _ timeNs: Int64) {
        order.filled += trade.qty
        order.notional += Int128(trade.price) * Int128(trade.qty)
        order.fills += 1
        if order.firstFillNs == nil { order.firstFillNs = timeNs }
        order.lastFillNs = timeNs
        order.status = order.filled >= order.qty ? "filled" : "partial"
    }

    /// The user's orders: every line must be valid and carry `ts`; ids below 2^62. Sorted by `ts`, ties
    /// in file order; at equal times, recorded orders go first (they were there first).
    private static func loadInjected(_ path: String, _ decoder: inout CommandDecoder) throws(CastleError) -> [Command] {
        let reader = LineReader(source: try InputSource(path: path))
        var commands: [Command] = []
        while let line = try reader.next() {
            if line.tooLong { throw CastleError(.dataError, "\(path):\(line.number): line too long") }
            if line.isBlank { continue }
            switch decoder.decode(line.bytes, lineNumber: line.number) {
            case .rejected(_, _, let reason, let detail):
                throw CastleError(.dataError, "\(path):\(line.number): \(reason.name) (\(detail.text))")
            case .command(let command):
                guard command.ts != nil else {
                    throw CastleError(.dataError, "\(path):\(line.number): injected orders need ts")
                }
                guard command.id <= SyntheticOrderID.injectedIDMax else {
                    throw CastleError(
                        .dataError,
                        "\(path):\(line.number): injected ids must be below 2^62, found \(command.id)"
                    )
                }
                commands.append(command)
            }
            if commands.count > 1_000_000 {
                throw CastleError(.dataError, "\(path): more than 1,000,000 injected orders")
            }
        }
        return commands.enumerated().sorted { ($0.element.ts!, $0.offset) < ($1.element.ts!, $1.offset) }.map(\.element)
    }

    private static func snapshot(_ exchange: Exchange, _ symbol: SymbolID, _ levels: Int, _ timeNs: Int64) -> L2Snapshot
    {
        func side(_ side: Side) -> [L2Level] {
            exchange.levels(of: symbol, side: side, depth: levels).map { L2Level(price: $0.price, qty: $0.totalQty) }
        }
        return L2Snapshot(timeNs: timeNs, bids: side(.buy), asks: side(.sell))
    }
}
