import CastleCore
import CastleTesting
import MatchingEngine
import Testing

/// The symbol most tests trade.
let sym: SymbolID = 1

/// A decimal from its text; the tests only write valid ones.
func dec(_ text: String) -> FixedDecimal {
    guard let value = FixedDecimal.parse(text) else { fatalError("bad decimal literal \(text)") }
    return value
}

/// A decimal in units of 10^-8, the scale of a symbol without a declared instrument.
func units(_ text: String) -> Int64 {
    switch dec(text).scaled(to: 8) {
    case .success(let value): return value
    case .failure: fatalError("\(text) does not fit 8 decimals")
    }
}

/// The price `k` ticks (whole units) away from the touch at 100, on the maker side `side`: k = 0 is the
/// best maker price, larger k is worse for that side (higher asks, lower bids). Negative k is inside.
func px(_ makerSide: Side, _ k: Int) -> String {
    String(makerSide == .sell ? 100 + k : 100 - k)
}

func order(
    _ id: OrderID,
    _ side: Side,
    _ price: String?,
    _ qty: String,
    symbol: SymbolID = sym,
    type: OrderType = .limit,
    tif: TimeInForce = .gtc,
    account: AccountID = .none,
    stp: STPMode? = nil,
    ts: Timestamp? = nil,
    line: Int = 0
) -> Command {
    Command.new(
        id: id,
        symbol: symbol,
        side: side,
        price: price.map(dec),
        qty: dec(qty),
        type: type,
        tif: tif,
        account: account,
        stp: stp,
        ts: ts,
        line: line
    )
}

func market(_ id: OrderID, _ side: Side, _ qty: String, tif: TimeInForce = .gtc, account: AccountID = .none) -> Command
{
    order(id, side, nil, qty, type: .market, tif: tif, account: account)
}

// Expected events on `sym`, prices and quantities written as decimals. The rule tests write the 1.0
// fields of each event: ``Venue/send(_:sourceLocation:)`` compares every field, 1.1's included, with
// the model, then hands back the events as ``Event/contract10`` sees them. The 1.1 fields have tests
// of their own (Contract11Tests) and the model as oracle.

extension Event {
    /// The event with its contract-1.1 fields set to fixed placeholders, so that expectations written
    /// in 1.0 terms compare equal.
    var contract10: Event {
        switch self {
        case .accepted(let id, let symbol, let side, _, _, _, _, _, let ts):
            .accepted(
                id: id,
                symbol: symbol,
                side: side,
                type: .limit,
                tif: .gtc,
                price: nil,
                qty: 0,
                account: .none,
                ts: ts
            )
        case .canceled(let id, let symbol, _, _, let qty, let reason, let ts):
            .canceled(id: id, symbol: symbol, side: .buy, price: nil, qty: qty, reason: reason, ts: ts)
        case .amended(let id, let symbol, _, let price, let qty, _, _, _, let ts):
            .amended(
                id: id,
                symbol: symbol,
                side: .buy,
                price: price,
                qty: qty,
                prevPrice: 0,
                prevQty: 0,
                keptPriority: false,
                ts: ts
            )
        case .trade, .rejected: self
        }
    }
}

func accepted(_ id: OrderID, _ side: Side, symbol: SymbolID = sym, ts: Timestamp? = nil) -> Event {
    Event.accepted(
        id: id,
        symbol: symbol,
        side: side,
        type: .limit,
        tif: .gtc,
        price: nil,
        qty: 0,
        account: .none,
        ts: ts
    ).contract10
}

func trade(
    _ price: String,
    _ qty: String,
    maker: OrderID,
    taker: OrderID,
    _ side: Side,
    makerAccount: AccountID = .none,
    takerAccount: AccountID = .none,
    symbol: SymbolID = sym,
    ts: Timestamp? = nil
) -> Event {
    .trade(
        Trade(
            symbol: symbol,
            price: units(price),
            qty: units(qty),
            maker: maker,
            taker: taker,
            side: side,
            makerAccount: makerAccount,
            takerAccount: takerAccount
        ),
        ts: ts
    )
}

func canceled(
    _ id: OrderID,
    _ qty: String,
    _ reason: CancelReason,
    symbol: SymbolID = sym,
    ts: Timestamp? = nil
) -> Event {
    Event.canceled(id: id, symbol: symbol, side: .buy, price: nil, qty: units(qty), reason: reason, ts: ts).contract10
}

func amended(_ id: OrderID, _ price: String, _ qty: String, symbol: SymbolID = sym, ts: Timestamp? = nil) -> Event {
    Event.amended(
        id: id,
        symbol: symbol,
        side: .buy,
        price: units(price),
        qty: units(qty),
        prevPrice: 0,
        prevQty: 0,
        keptPriority: false,
        ts: ts
    ).contract10
}

func rejected(
    _ op: Op,
    _ id: OrderID,
    _ reason: RejectReason,
    _ detail: RejectDetail,
    line: Int = 0,
    ts: Timestamp? = nil
) -> Event {
    .rejected(op: op, id: id, reason: reason, detail: detail, line: line, ts: ts)
}

/// One expected level: a decimal price and its orders, in time priority, with decimal quantities.
func level(_ price: String, _ orders: [(OrderID, String)]) -> BookLevel {
    BookLevel(price: units(price), orders: orders.map { BookOrder(id: $0.0, qty: units($0.1)) })
}

extension ModelBook {
    /// The model's side of a book in the engine's read-only types, for comparison.
    func bookLevels(of symbol: SymbolID, side: Side) -> [BookLevel] {
        levels(of: symbol, side: side).map { level in
            BookLevel(price: level.price, orders: level.orders.map { BookOrder(id: $0.id, qty: $0.qty) })
        }
    }
}

/// The engine and the model side by side: every command goes to both, and their events must agree.
struct Venue {
    var engine: Exchange
    var model: ModelBook

    init(instruments: [SymbolID: Instrument] = [:], defaultSTP: STPMode = .cancelTaker) {
        engine = Exchange(instruments: instruments, defaultSTP: defaultSTP)
        model = ModelBook(instruments: instruments, defaultSTP: defaultSTP)
    }

    /// Applies `command` to both, checks they agree on every field, and returns the engine's events with
    /// their 1.0 fields only (``Event/contract10``), as the rule tests write them.
    @discardableResult
    mutating func send(_ command: Command, sourceLocation: SourceLocation = #_sourceLocation) -> [Event] {
        sendFull(command, sourceLocation: sourceLocation).map(\.contract10)
    }

    /// Applies `command` to both, checks they agree on every field, and returns the engine's events whole.
    mutating func sendFull(_ command: Command, sourceLocation: SourceLocation = #_sourceLocation) -> [Event] {
        var events: [Event] = []
        engine.apply(command, into: &events)
        var modelEvents: [Event] = []
        model.apply(command, into: &modelEvents)
        #expect(events == modelEvents, "engine and model disagree on \(command)", sourceLocation: sourceLocation)
        return events
    }

    /// Sends several commands, returning all the events.
    @discardableResult
    mutating func send(_ commands: [Command], sourceLocation: SourceLocation = #_sourceLocation) -> [Event] {
        commands.flatMap { send($0, sourceLocation: sourceLocation) }
    }

    /// The engine's side of the book; also checks the model holds the same.
    func book(_ side: Side, symbol: SymbolID = sym, sourceLocation: SourceLocation = #_sourceLocation) -> [BookLevel] {
        let levels = engine.levels(of: symbol, side: side)
        #expect(
            levels == model.bookLevels(of: symbol, side: side),
            "engine and model books differ",
            sourceLocation: sourceLocation
        )
        return levels
    }

    /// Best price and quantity of the engine; also checks the model agrees.
    func best(_ side: Side, symbol: SymbolID = sym, sourceLocation: SourceLocation = #_sourceLocation) -> BookLevelTop?
    {
        let engineBest = engine.best(of: symbol, side: side).map { BookLevelTop(price: $0.price, qty: $0.qty) }
        let modelBest = model.best(of: symbol, side: side).map { BookLevelTop(price: $0.price, qty: $0.qty) }
        #expect(engineBest == modelBest, "engine and model tops differ", sourceLocation: sourceLocation)
        return engineBest
    }
}

struct BookLevelTop: Equatable, CustomStringConvertible {
    var price: Int64
    var qty: Int128
    init(price: Int64, qty: Int128) {
        self.price = price
        self.qty = qty
    }
    init(_ price: String, _ qty: String) {
        self.init(price: units(price), qty: Int128(units(qty)))
    }
    var description: String { "\(price)x\(qty)" }
}

/// The maker ids of the trades among `events`, in order.
func makers(_ events: [Event]) -> [OrderID] {
    events.compactMap { if case .trade(let t, _) = $0 { t.maker } else { nil } }
}

func tradeCount(_ events: [Event]) -> Int { makers(events).count }
