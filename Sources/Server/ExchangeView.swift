import CastleCore
import Codecs
import Synchronization

/// What serve knows of the exchange, kept from the 1.1 event log alone (spec/match.md): every order's
/// state for the trading API, fills per account, the books, trades and tickers for market data. The
/// same with the in-process matcher and with external ones, which is why it reads events, not commands.
/// Events apply in `seq` order, each once: a line at or below `lastSeq` is skipped.
final class ExchangeView: Sendable {
    /// Stored by value in a dictionary and copied in and out on every event that touches it, so its
    /// fixed choices are one-byte enums rather than strings (docs/serve-performance.md).
    struct Order: Sendable {
        enum Status: UInt8, Sendable {
            case open, filled, canceled

            var name: StaticString {
                switch self {
                case .open: "open"
                case .filled: "filled"
                case .canceled: "canceled"
                }
            }
        }

        var id: UInt64
        var account: String
        var symbol: String
        var side: Side
        var type: OrderType
        var tif: TimeInForce
        var price: Amount?
        var qty: Amount
        var remaining: Amount
        var status: Status
        /// Resting in the book (a limit GTC or post-only order not yet finished).
        var rests: Bool
        var arrival: Int64
        /// The `seq` of its `accepted` event: where its command's events start in the log.
        var verdictSeq: Int64
    }

    struct Fill: Sendable {
        enum Liquidity: UInt8, Sendable {
            case maker, taker

            var name: StaticString { self == .maker ? "maker" : "taker" }
        }

        var seq: Int64
        var orderID: UInt64
        var symbol: String
        var side: Side
        var price: Amount
        var qty: Amount
        var liquidity: Liquidity
        var ts: Int64?
    }

    struct TapeEntry: Sendable {
        var seq: Int64
        var price: Amount
        var qty: Amount
        var side: Side
        var ts: Int64?
    }

    struct Ticker: Sendable {
        var last: Amount?
        var volume = Amount.zero
        var seq: Int64 = 0
    }

    /// One symbol's market: its book (the resting orders' remaining quantity summed per price), its
    /// trades, its ticker.
    struct Market {
        var bids: [Amount: Amount] = [:]
        var asks: [Amount: Amount] = [:]
        var trades: [TapeEntry] = []
        var ticker = Ticker()
        /// The `seq` of the symbol's last event.
        var seq: Int64 = 0

        /// Adds a trade to the tape and the ticker.
        mutating func trade(_ entry: TapeEntry, keep: Int) {
            ExchangeView.append(entry, to: &trades, keep: keep)
            ticker.last = entry.price
            ticker.volume = ticker.volume + entry.qty
            ticker.seq = entry.seq
        }
    }

    /// One account's open orders' ids and its fills.
    struct Holdings {
        var openIDs: Set<UInt64> = []
        var fills: [Fill] = []
    }

    /// Kept by symbol and by account, so that an event looks each up once: the view hashed the same
    /// `String` keys a dozen times an order when each thing had a dictionary of its own
    /// (docs/serve-performance.md).
    struct State {
        var lastSeq: Int64 = 0
        /// Written only through ``put(_:)``, which keeps the books and the open ids in step with it.
        /// Sized at once for the finished orders kept and half as many open ones: a dictionary grows by
        /// copying itself whole, here under the view's lock in the matcher's hook with every verdict
        /// waiting (measured: 60 ms at 98k orders, 86 ms at 197k). Untouched, the room costs no memory.
        private(set) var orders = [UInt64: Order](minimumCapacity: finishedKept + finishedKept / 2)
        /// Every symbol an event named.
        var markets: [String: Market] = [:]
        var holdings: [String: Holdings] = [:]
        /// Finished orders are kept for lookups (idempotent replies, status), the oldest forgotten.
        var finished = RecentIDs(kept: finishedKept)
        /// New orders the matcher rejected: the `seq` of the `rejected` event, as many kept as finished
        /// orders, oldest out (``rejectedOrder``).
        var rejected: [UInt64: Int64] = [:]
        var rejectedOrder = RecentIDs(kept: finishedKept)
        var arrivals: Int64 = 0

        /// Stores `order` in place of the one with its id, moving its quantity between levels and its id
        /// in or out of its account's open ids.
        mutating func put(_ order: Order) {
            let old = orders.updateValue(order, forKey: order.id)
            let wasOpen = old?.status == .open
            let isOpen = order.status == .open
            if let old, wasOpen, !(isOpen && old.account == order.account) {
                holdings[old.account]?.openIDs.remove(order.id)
            }
            if isOpen, !(wasOpen && old?.account == order.account) {
                holdings[order.account, default: Holdings()].openIDs.insert(order.id)
            }
            let before = old.flatMap(Self.resting)
            let after = Self.resting(order)
            if let before, let after, before.symbol == after.symbol, before.side == after.side,
                before.price == after.price
            {
                if before.qty != after.qty { add(after.qty - before.qty, at: after) }
                return
            }
            if let before { add(.zero - before.qty, at: before) }
            if let after { add(after.qty, at: after) }
        }

        /// Forgets a finished order (it rests nowhere and is open for no one).
        mutating func forget(_ id: UInt64) {
            guard let order = orders[id], order.status != .open else { return }
            orders[id] = nil
        }

        /// Where an order rests in the books, and how much: nil when it does not rest.
        private static func resting(_ order: Order) -> (symbol: String, side: Side, price: Amount, qty: Amount)? {
            guard order.rests, let price = order.price else { return nil }
            return (order.symbol, order.side, price, order.remaining)
        }

        private mutating func add(
            _ delta: Amount,
            at level: (symbol: String, side: Side, price: Amount, qty: Amount)
        ) {
            func add(_ side: inout [Amount: Amount]) {
                let total = side[level.price, default: .zero] + delta
                side[level.price] = total == .zero ? nil : total
            }
            if level.side == .buy {
                add(&markets[level.symbol, default: Market()].bids)
            } else {
                add(&markets[level.symbol, default: Market()].asks)
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
            (state.holdings[account]?.openIDs ?? []).sorted().compactMap { state.orders[$0] }
        }
    }

    func fills(account: String, afterSeq: Int64, limit: Int) -> [Fill] {
        state.withLock { state in
            Array((state.holdings[account]?.fills ?? []).lazy.filter { $0.seq > afterSeq }.prefix(limit))
        }
    }

    func trades(symbol: String, limit: Int) -> [TapeEntry] {
        state.withLock { state in Array((state.markets[symbol]?.trades ?? []).reversed().prefix(limit)) }
    }

    func knows(symbol: String) -> Bool { state.withLock { $0.markets[symbol] != nil } }

    /// Levels aggregated, best first: (bids, asks, seq of the last event of the symbol).
    func book(symbol: String, depth: Int) -> (bids: [(Amount, Amount)], asks: [(Amount, Amount)], seq: Int64) {
        state.withLock { state in
            let market = state.markets[symbol] ?? Market()
            let bids = market.bids.sorted { $0.key > $1.key }.prefix(depth).map { ($0.key, $0.value) }
            let asks = market.asks.sorted { $0.key < $1.key }.prefix(depth).map { ($0.key, $0.value) }
            return (bids, asks, market.seq)
        }
    }

    /// Every symbol with events, and every one of `listed` (with no events yet: no prices, volume 0).
    func tickers(listed: Set<String>) -> [(symbol: String, bid: Amount?, ask: Amount?, ticker: Ticker)] {
        state.withLock { state in
            listed.union(state.markets.keys).sorted().map { symbol in
                let market = state.markets[symbol] ?? Market()
                return (symbol, market.bids.keys.max(), market.asks.keys.min(), market.ticker)
            }
        }
    }

    // MARK: - Applying events

    private static func apply(_ event: LoggedEvent, to state: inout State) {
        guard let seq = event.seq, seq > state.lastSeq else { return }
        state.lastSeq = seq
        if let symbol = event.symbol { state.markets[symbol, default: Market()].seq = seq }
        switch event.kind {
        case .accepted:
            guard let id = event.id, let symbol = event.symbol, let qty = event.qty.map(Amount.init) else { return }
            let type = event.type ?? .limit
            let tif = event.tif ?? .gtc
            state.arrivals += 1
            state.put(
                Order(
                    id: id,
                    account: event.account ?? "",
                    symbol: symbol,
                    side: event.side ?? .buy,
                    type: type,
                    tif: tif,
                    price: event.price.map(Amount.init),
                    qty: qty,
                    remaining: qty,
                    status: .open,
                    rests: type == .limit && (tif == .gtc || tif == .postOnly),
                    arrival: state.arrivals,
                    verdictSeq: seq
                )
            )
        case .trade:
            guard let symbol = event.symbol, let price = event.price.map(Amount.init),
                let qty = event.qty.map(Amount.init), let maker = event.maker, let taker = event.taker
            else { return }
            let side = event.side ?? .buy
            let ts = event.ts
            func fill(_ id: UInt64, _ liquidity: Fill.Liquidity) {
                guard var order = state.orders[id] else { return }
                order.remaining = order.remaining - qty
                if order.remaining <= .zero { finish(&order, status: .filled, state: &state) }
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
                append(fill, to: &state.holdings[order.account, default: Holdings()].fills, keep: fillsKeptPerAccount)
            }
            fill(maker, .maker)
            fill(taker, .taker)
            state.markets[symbol, default: Market()].trade(
                TapeEntry(seq: seq, price: price, qty: qty, side: side, ts: ts),
                keep: tradesKeptPerSymbol
            )
        case .canceled:
            guard let id = event.id, var order = state.orders[id] else { return }
            if let qty = event.qty { order.remaining = Amount(qty) }
            finish(&order, status: .canceled, state: &state)
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

    private static func finish(_ order: inout Order, status: Order.Status, state: inout State) {
        guard order.status == .open else { return }
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
