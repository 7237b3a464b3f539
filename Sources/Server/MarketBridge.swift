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
    /// The symbols of `--instruments`; empty without it (any symbol then).
    let listedSymbols: Set<String>
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
        listedSymbols = Set(instruments.keys.map { symbols.string(of: $0) })
        feed = MarketFeed(instruments: instruments, requireInstruments: !instruments.isEmpty)
        feed.syncNames(symbols: symbols, accounts: NameTable(firstID: 1))
        names = Mutex(Names(symbols: symbols, instruments: instruments, syncedSymbols: symbols.count))
    }

    /// Hands the feed the events of `events` at the indices `applied` (those the view applied). Called
    /// under the view's lock, so batches arrive in order.
    func publish(_ events: [LoggedEvent], applied: [Int]) {
        if applied.isEmpty { return }
        let events = names.withLock { names in
            var decoded: [FeedEvent] = []
            for index in applied {
                if let event = Self.decode(events[index], names: &names) { decoded.append(event) }
            }
            // Only for new names: it waits for a fan-out in progress (the feed's lock), and this is the
            // matcher's thread, with every request waiting for its verdict behind it.
            if names.takeNewNames() { feed.syncNames(symbols: names.symbols, accounts: names.accounts) }
            return decoded
        }
        feed.enqueue(events)
    }

    /// One 1.1 event in integer units; nil for a line that is not one (the view skips it too).
    private static func decode(_ event: LoggedEvent, names: inout Names) -> FeedEvent? {
        guard let seqValue = event.seq.flatMap(UInt64.init(exactly:)), let kind = event.kind else {
            return nil
        }
        let ts = event.ts
        if kind == .rejected {
            // Changes no book, but ends the command before it (an incoming order rests).
            return FeedEvent(seq: seqValue, kind: .rejected(op: nil, id: event.id, reason: .invalid), ts: ts)
        }
        guard let symbolName = event.symbol, let symbol = names.symbols.intern(symbolName) else { return nil }
        let instrument = names.instruments[symbol] ?? .unrestricted
        func units(_ value: FixedDecimal?, _ decimals: UInt8) -> Int64? {
            value.flatMap { try? $0.scaled(to: decimals).get() }
        }
        func account(_ name: String?) -> AccountID {
            name.flatMap { names.accounts.intern($0) } ?? .none
        }
        let side = event.side ?? .buy
        let price = units(event.price, instrument.priceDecimals)
        let qty = units(event.qty, instrument.qtyDecimals)
        switch kind {
        case .accepted:
            guard let id = event.id, let qty else { return nil }
            let accepted = FeedEvent.Kind.accepted(
                id: id,
                symbol: symbol,
                side: side,
                type: event.type ?? .limit,
                tif: event.tif ?? .gtc,
                price: price,
                qty: qty,
                account: account(event.account)
            )
            return FeedEvent(seq: seqValue, kind: accepted, ts: ts)
        case .trade:
            guard let price, let qty, let maker = event.maker, let taker = event.taker else {
                return nil
            }
            let trade = Trade(
                symbol: symbol,
                price: price,
                qty: qty,
                maker: maker,
                taker: taker,
                side: side,
                makerAccount: account(event.makerAccount),
                takerAccount: account(event.takerAccount)
            )
            return FeedEvent(seq: seqValue, kind: .trade(trade), ts: ts)
        case .canceled:
            guard let id = event.id, let qty else { return nil }
            let reason: CancelReason =
                switch event.reason {
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
        case .amended:
            guard let id = event.id, let price, let qty,
                let prevPrice = units(event.prevPrice, instrument.priceDecimals),
                let prevQty = units(event.prevQty, instrument.qtyDecimals)
            else { return nil }
            let amended = FeedEvent.Kind.amended(
                id: id,
                symbol: symbol,
                side: side,
                price: price,
                qty: qty,
                prevPrice: prevPrice,
                prevQty: prevQty,
                priorityKept: event.priority == "kept"
            )
            return FeedEvent(seq: seqValue, kind: amended, ts: ts)
        case .rejected:
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
