import CastleCore
import Codecs
import Synchronization

/// What serve knows of the exchange, kept from the 1.1 event log alone (spec/match.md): every order's
/// state for the trading API, fills per account, the books, trades and tickers for market data. The
/// same with the in-process matcher and with external ones, which is why it reads events, not commands.
/// Events apply in `seq` order, each once: a line at or below `lastSeq` is skipped.
final class ExchangeView: Sendable {
    struct Order: Sendable {
        var id: UInt64
        var account: String
        var symbol: String
        var side: String
        var type: String
        var tif: String
        var price: Amount?
        var qty: Amount
        var remaining: Amount
        var status: String
        /// Resting in the book (a limit GTC or post-only order not yet finished).
        var rests: Bool
        var arrival: Int64
        /// The `seq` of its `accepted` event: where its command's events start in the log.
        var verdictSeq: Int64
    }

    struct Fill: Sendable {
        var seq: Int64
        var orderID: UInt64
        var symbol: String
        var side: String
        var price: Amount
        var qty: Amount
        var liquidity: String
        var ts: Int64?
    }

    struct TapeEntry: Sendable {
        var seq: Int64
        var price: Amount
        var qty: Amount
        var side: String
        var ts: Int64?
    }

    struct Ticker: Sendable {
        var last: Amount?
        var volume = Amount.zero
        var seq: Int64 = 0
    }

    /// One symbol's resting quantity per price.
    struct Levels {
        var bids: [Amount: Amount] = [:]
        var asks: [Amount: Amount] = [:]
    }

    struct State {
        var lastSeq: Int64 = 0
        /// Written only through ``put(_:)``, which keeps ``levels`` and ``openIDs`` in step with it.
        /// Sized at once for the finished orders kept and half as many open ones: a dictionary grows by
        /// copying itself whole, here under the view's lock in the matcher's hook with every verdict
        /// waiting (measured: 60 ms at 98k orders, 86 ms at 197k). Untouched, the room costs no memory.
        private(set) var orders = [UInt64: Order](minimumCapacity: finishedKept + finishedKept / 2)
        /// The books, by symbol: the resting orders' remaining quantity summed per price.
        private(set) var levels: [String: Levels] = [:]
        /// Open orders' ids, by account.
        private(set) var openIDs: [String: Set<UInt64>] = [:]
        /// Finished orders are kept for lookups (idempotent replies, status), the oldest forgotten.
        var finished = RecentIDs(kept: finishedKept)
        /// New orders the matcher rejected: the `seq` of the `rejected` event, as many kept as finished
        /// orders, oldest out (``rejectedOrder``).
        var rejected: [UInt64: Int64] = [:]
        var rejectedOrder = RecentIDs(kept: finishedKept)
        var fills: [String: [Fill]] = [:]
        var trades: [String: [TapeEntry]] = [:]
        var tickers: [String: Ticker] = [:]
        var symbolSeq: [String: Int64] = [:]
        var arrivals: Int64 = 0

        /// Stores `order` in place of the one with its id, moving its quantity between levels.
        mutating func put(_ order: Order) {
            if let old = orders[order.id] { account(old, sign: -1) }
            orders[order.id] = order
            account(order, sign: 1)
        }

        /// Forgets a finished order (it rests nowhere and is open for no one).
        mutating func forget(_ id: UInt64) {
            guard let order = orders[id], order.status != "open" else { return }
            orders[id] = nil
        }

        /// Adds (`sign` 1) or takes away (-1) what `order` contributes to the levels and the open ids.
        private mutating func account(_ order: Order, sign: Int) {
            if order.status == "open" {
                if sign > 0 {
                    openIDs[order.account, default: []].insert(order.id)
                } else {
                    openIDs[order.account]?.remove(order.id)
                    if openIDs[order.account]?.isEmpty == true { openIDs[order.account] = nil }
                }
            }
            guard order.rests, let price = order.price else { return }
            let delta = sign > 0 ? order.remaining : .zero - order.remaining
            func add(_ side: inout [Amount: Amount]) {
                let total = side[price, default: .zero] + delta
                side[price] = total == .zero ? nil : total
            }
            if order.side == "buy" {
                add(&levels[order.symbol, default: Levels()].bids)
            } else {
                add(&levels[order.symbol, default: Levels()].asks)
            }
        }
    }

    static let finishedKept = 100_000
    static let fillsKeptPerAccount = 10_000
    static let tradesKeptPerSymbol = 10_000

    let state = Mutex(State())
    /// Told every line applied, in order, under the same lock.
    let market: MarketBridge?

    init(market: MarketBridge? = nil) { self.market = market }

    var lastSeq: Int64 { state.withLock { $0.lastSeq } }

    /// Applies events of the log, in order, and hands the market those applied; returns the `seq` of
    /// the last one applied. The events are read where they lie, by index: an event is eleven optional
    /// strings, and copying each one on its way (through a lazy map, into an array of those applied)
    /// cost serve about a quarter of its CPU while it followed a matcher at full speed
    /// (docs/serve-performance.md).
    @discardableResult
    func apply(_ events: [LoggedEvent]) -> Int64 {
        state.withLock { state in
            var applied: [Int] = []
            for index in events.indices {
                let before = state.lastSeq
                Self.apply(events[index], to: &state)
                if state.lastSeq != before { applied.append(index) }
            }
            market?.publish(events, applied: applied)
            return state.lastSeq
        }
    }

    func order(_ id: UInt64) -> Order? { state.withLock { $0.orders[id] } }

    /// Where the events of new order `id`'s command start in the log, once matched (while kept).
    func verdictSeq(of id: UInt64) -> Int64? {
        state.withLock { state in state.orders[id]?.verdictSeq ?? state.rejected[id] }
    }

    func openOrders(account: String) -> [Order] {
        state.withLock { state in
            (state.openIDs[account] ?? []).sorted().compactMap { state.orders[$0] }
        }
    }

    func fills(account: String, afterSeq: Int64, limit: Int) -> [Fill] {
        state.withLock { state in Array((state.fills[account] ?? []).lazy.filter { $0.seq > afterSeq }.prefix(limit)) }
    }

    func trades(symbol: String, limit: Int) -> [TapeEntry] {
        state.withLock { state in Array((state.trades[symbol] ?? []).reversed().prefix(limit)) }
    }

    func knows(symbol: String) -> Bool { state.withLock { $0.symbolSeq[symbol] != nil } }

    /// Levels aggregated, best first: (bids, asks, seq of the last event of the symbol).
    func book(symbol: String, depth: Int) -> (bids: [(Amount, Amount)], asks: [(Amount, Amount)], seq: Int64) {
        state.withLock { state in
            let levels = state.levels[symbol] ?? Levels()
            let bids = levels.bids.sorted { $0.key > $1.key }.prefix(depth).map { ($0.key, $0.value) }
            let asks = levels.asks.sorted { $0.key < $1.key }.prefix(depth).map { ($0.key, $0.value) }
            return (bids, asks, state.symbolSeq[symbol] ?? 0)
        }
    }

    func tickers() -> [(symbol: String, bid: Amount?, ask: Amount?, ticker: Ticker)] {
        let symbols = state.withLock { $0.symbolSeq.keys.sorted() }
        return symbols.map { symbol in
            let top = book(symbol: symbol, depth: 1)
            let ticker = state.withLock { $0.tickers[symbol] ?? Ticker() }
            return (symbol, top.bids.first?.0, top.asks.first?.0, ticker)
        }
    }

    // MARK: - Applying events

    private static func apply(_ event: LoggedEvent, to state: inout State) {
        guard let seq = event.seq, seq > state.lastSeq else { return }
        state.lastSeq = seq
        if let symbol = event.symbol { state.symbolSeq[symbol] = seq }
        switch event.kind {
        case .accepted:
            guard let id = event.id, let symbol = event.symbol, let qty = event.qty.map(Amount.init) else { return }
            let type = event.type ?? "limit"
            let tif = event.tif ?? "gtc"
            state.arrivals += 1
            state.put(
                Order(
                    id: id,
                    account: event.account ?? "",
                    symbol: symbol,
                    side: event.side ?? "",
                    type: type,
                    tif: tif,
                    price: event.price.map(Amount.init),
                    qty: qty,
                    remaining: qty,
                    status: "open",
                    rests: type == "limit" && (tif == "gtc" || tif == "post_only"),
                    arrival: state.arrivals,
                    verdictSeq: seq
                )
            )
        case .trade:
            guard let symbol = event.symbol, let price = event.price.map(Amount.init),
                let qty = event.qty.map(Amount.init), let maker = event.maker, let taker = event.taker
            else { return }
            let side = event.side ?? ""
            let ts = event.ts
            for (id, liquidity) in [(maker, "maker"), (taker, "taker")] {
                guard var order = state.orders[id] else { continue }
                order.remaining = order.remaining - qty
                if order.remaining <= .zero { finish(&order, status: "filled", state: &state) }
                state.put(order)
                let fill = Fill(
                    seq: seq,
                    orderID: id,
                    symbol: symbol,
                    side: order.side,
                    price: price,
                    qty: qty,
                    liquidity: liquidity,
                    ts: ts
                )
                append(fill, to: &state.fills[order.account, default: []], keep: fillsKeptPerAccount)
            }
            append(
                TapeEntry(seq: seq, price: price, qty: qty, side: side, ts: ts),
                to: &state.trades[symbol, default: []],
                keep: tradesKeptPerSymbol
            )
            var ticker = state.tickers[symbol] ?? Ticker()
            ticker.last = price
            ticker.volume = ticker.volume + qty
            ticker.seq = seq
            state.tickers[symbol] = ticker
        case .canceled:
            guard let id = event.id, var order = state.orders[id] else { return }
            if let qty = event.qty { order.remaining = Amount(qty) }
            finish(&order, status: "canceled", state: &state)
            state.put(order)
        case .amended:
            guard let id = event.id, var order = state.orders[id] else { return }
            if let price = event.price { order.price = Amount(price) }
            if let qty = event.qty.map(Amount.init) {
                order.qty = order.qty - order.remaining + qty
                order.remaining = qty
            }
            if event.priority == "lost" {
                state.arrivals += 1
                order.arrival = state.arrivals
            }
            state.put(order)
        case .rejected:
            // The order never existed; its retries read its event.
            guard event.op == "new", let id = event.id, state.rejected[id] == nil else { return }
            state.rejected[id] = seq
            if let old = state.rejectedOrder.append(id) { state.rejected[old] = nil }
        case nil:
            break
        }
    }

    private static func finish(_ order: inout Order, status: String, state: inout State) {
        guard order.status == "open" else { return }
        order.status = status
        order.rests = false
        if let old = state.finished.append(order.id) { state.forget(old) }
    }

    private static func append<T>(_ value: T, to list: inout [T], keep: Int) {
        list.append(value)
        if list.count > keep * 2 { list.removeFirst(list.count - keep) }
    }
}

/// The newest `kept` ids, in a ring: once full, each append drops the oldest and returns it. One id
/// forgotten per id kept, rather than many at once (a burst of forgetting is a stall of the view).
struct RecentIDs {
    let kept: Int
    private var ids: [UInt64] = []
    /// Where the next id goes once the ring is full: the oldest.
    private var oldest = 0

    init(kept: Int) {
        precondition(kept > 0)
        self.kept = kept
    }

    /// Appends `id`; returns the id it dropped to make room, if the ring was full.
    mutating func append(_ id: UInt64) -> UInt64? {
        guard ids.count == kept else {
            ids.append(id)
            return nil
        }
        let dropped = ids[oldest]
        ids[oldest] = id
        oldest = (oldest + 1) % kept
        return dropped
    }
}
