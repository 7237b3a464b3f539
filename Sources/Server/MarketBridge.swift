import CastleCore
import CastleSupport
import Codecs
import MarketFeed
import ServiceLifecycle
import Synchronization

/// Where serve's event lines meet the market-data fan-out: every line the view applies (in `seq` order,
/// each once, from the in-process matcher or from external matchers' log), as the view read it, becomes
/// a ``FeedEvent`` in integer units and goes to ``MarketFeed/enqueue(_:)``, which returns at once.
final class MarketBridge: Sendable {
    let feed: MarketFeed
    private let names: Mutex<Names>

    private struct Names {
        var symbols: NameTable
        var accounts = NameTable(firstID: 1)
        let instruments: [SymbolID: Instrument]
        /// How many of each the feed has been given (``MarketFeed/syncNames(symbols:accounts:)``).
        var syncedSymbols = 0
        var syncedAccounts = 0

        /// Whether names were added since the feed was last given them (and counts them given).
        mutating func takeNewNames() -> Bool {
            guard symbols.count > syncedSymbols || accounts.count > syncedAccounts else { return false }
            (syncedSymbols, syncedAccounts) = (symbols.count, accounts.count)
            return true
        }
    }

    init(instrumentsPath: String?) throws(CastleError) {
        var symbols = NameTable()
        var instruments: [SymbolID: Instrument] = [:]
        if let instrumentsPath { instruments = try InstrumentsFile.load(path: instrumentsPath, symbols: &symbols) }
        feed = MarketFeed(instruments: instruments, requireInstruments: !instruments.isEmpty)
        feed.syncNames(symbols: symbols, accounts: NameTable(firstID: 1))
        names = Mutex(Names(symbols: symbols, instruments: instruments, syncedSymbols: symbols.count))
    }

    /// Called under the view's lock, so batches arrive in order.
    func publish(_ applied: [EventFields]) {
        if applied.isEmpty { return }
        let events = names.withLock { names in
            let events = applied.compactMap { Self.decode($0, names: &names) }
            // Only for new names: it waits for a fan-out in progress (the feed's lock), and this is the
            // matcher's thread, with every request waiting for its verdict behind it.
            if names.takeNewNames() { feed.syncNames(symbols: names.symbols, accounts: names.accounts) }
            return events
        }
        feed.enqueue(events)
    }

    /// One 1.1 event in integer units; nil for a line that is not one (the view skips it too).
    private static func decode(_ fields: EventFields, names: inout Names) -> FeedEvent? {
        guard let seqValue = fields.uint("seq"), let kind = fields["event"] else {
            return nil
        }
        let ts = fields.int("ts")
        if kind == "rejected" {
            // Changes no book, but ends the command before it (an incoming order rests).
            return FeedEvent(seq: seqValue, kind: .rejected(op: nil, id: fields.uint("id"), reason: .invalid), ts: ts)
        }
        guard let symbolName = fields["symbol"], let symbol = names.symbols.intern(symbolName) else { return nil }
        let instrument = names.instruments[symbol] ?? .unrestricted
        func units(_ key: String, _ decimals: UInt8) -> Int64? {
            guard let text = fields[key], let value = FixedDecimal.parse(text) else { return nil }
            return try? value.scaled(to: decimals).get()
        }
        func account(_ key: String) -> AccountID {
            fields[key].flatMap { names.accounts.intern($0) } ?? .none
        }
        let side: Side = fields["side"] == "sell" ? .sell : .buy
        let price = units("price", instrument.priceDecimals)
        let qty = units("qty", instrument.qtyDecimals)
        switch kind {
        case "accepted":
            guard let id = fields.uint("id"), let qty else { return nil }
            let tif: TimeInForce =
                switch fields["tif"] {
                case "ioc": .ioc
                case "fok": .fok
                case "post_only": .postOnly
                default: .gtc
                }
            let accepted = FeedEvent.Kind.accepted(
                id: id,
                symbol: symbol,
                side: side,
                type: fields["type"] == "market" ? .market : .limit,
                tif: tif,
                price: price,
                qty: qty,
                account: account("account")
            )
            return FeedEvent(seq: seqValue, kind: accepted, ts: ts)
        case "trade":
            guard let price, let qty, let maker = fields.uint("maker"), let taker = fields.uint("taker") else {
                return nil
            }
            let trade = Trade(
                symbol: symbol,
                price: price,
                qty: qty,
                maker: maker,
                taker: taker,
                side: side,
                makerAccount: account("maker_account"),
                takerAccount: account("taker_account")
            )
            return FeedEvent(seq: seqValue, kind: .trade(trade), ts: ts)
        case "canceled":
            guard let id = fields.uint("id"), let qty else { return nil }
            let reason: CancelReason =
                switch fields["reason"] {
                case "ioc": .ioc
                case "fok": .fok
                case "post_only": .postOnly
                case "market": .market
                case "stp": .stp
                default: .user
                }
            let canceled = FeedEvent.Kind.canceled(
                id: id,
                symbol: symbol,
                side: side,
                price: price,
                qty: qty,
                reason: reason
            )
            return FeedEvent(seq: seqValue, kind: canceled, ts: ts)
        case "amended":
            guard let id = fields.uint("id"), let price, let qty,
                let prevPrice = units("prev_price", instrument.priceDecimals),
                let prevQty = units("prev_qty", instrument.qtyDecimals)
            else { return nil }
            let amended = FeedEvent.Kind.amended(
                id: id,
                symbol: symbol,
                side: side,
                price: price,
                qty: qty,
                prevPrice: prevPrice,
                prevQty: prevQty,
                priorityKept: fields["priority"] == "kept"
            )
            return FeedEvent(seq: seqValue, kind: amended, ts: ts)
        default:
            return nil
        }
    }
}

/// The fan-out's own thread of work in serve's group: ends on graceful stop, closing every stream.
struct MarketFeedService: Service {
    let feed: MarketFeed
    /// `--stream-interval`: the least time between two fan-outs (``MarketFeed/run(pace:)``).
    let pace: Duration

    func run() async throws {
        await cancelWhenGracefulShutdown { await feed.run(pace: pace) }
    }
}
