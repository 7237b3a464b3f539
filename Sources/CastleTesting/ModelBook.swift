public import CastleCore

/// A deliberately naive reference implementation of the matching contract (`spec/match.md`), used as
/// the oracle for the engine's tests. Every side of every symbol is a plain array of orders that is
/// re-sorted by (price, arrival) after each insert; every lookup is a linear scan. Fill-or-kill is
/// decided by running the match on a copy of the whole model and keeping the copy only when the
/// order filled completely. Nothing here is shared with the engine except the domain types.
public struct ModelBook {
    /// A resting order.
    public struct Order: Sendable, Hashable {
        public var id: OrderID
        public var symbol: SymbolID
        public var side: Side
        public var price: Int64
        public var qty: Int64
        public var account: AccountID
        public var stp: STPMode
        public var postOnly: Bool
        /// Arrival number: the later an order (re)entered the book, the larger.
        public var arrival: UInt64
    }

    private struct SideKey: Hashable {
        var symbol: SymbolID
        var side: Side
    }

    public var defaultSTP: STPMode
    public let instruments: [SymbolID: Instrument]
    private var sides: [SideKey: [Order]] = [:]
    private var arrivals: UInt64 = 0

    public init(instruments: [SymbolID: Instrument] = [:], defaultSTP: STPMode = .cancelTaker) {
        self.instruments = instruments
        self.defaultSTP = defaultSTP
    }

    // MARK: - Reading

    /// All resting orders, in no particular order.
    public var restingOrders: [Order] { sides.values.flatMap { $0 } }

    public var liveOrderCount: Int { sides.values.reduce(0) { $0 + $1.count } }

    /// The resting order with `id`, if any.
    public func order(_ id: OrderID) -> Order? {
        for orders in sides.values {
            if let order = orders.first(where: { $0.id == id }) { return order }
        }
        return nil
    }

    /// Symbols with at least one resting order, ascending.
    public var symbolsWithOrders: [SymbolID] {
        Set(sides.filter { !$0.value.isEmpty }.map { $0.key.symbol }).sorted()
    }

    /// The levels of one side, best first, each with its orders in time priority.
    public func levels(of symbol: SymbolID, side: Side) -> [(price: Int64, orders: [(id: UInt64, qty: Int64)])] {
        var result: [(price: Int64, orders: [(id: UInt64, qty: Int64)])] = []
        for order in sides[SideKey(symbol: symbol, side: side)] ?? [] {
            if let last = result.last, last.price == order.price {
                result[result.count - 1].orders.append((order.id, order.qty))
            } else {
                result.append((order.price, [(order.id, order.qty)]))
            }
        }
        return result
    }

    /// Best price and the total quantity resting at it.
    public func best(of symbol: SymbolID, side: Side) -> (price: Int64, qty: Int128)? {
        guard let level = levels(of: symbol, side: side).first else { return nil }
        return (level.price, level.orders.reduce(0) { $0 + Int128($1.qty) })
    }

    // MARK: - Commands

    public mutating func apply(_ command: Command, into events: inout [Event]) {
        switch command.op {
        case .new: newOrder(command, into: &events)
        case .cancel: cancelOrder(command, into: &events)
        case .amend: amendOrder(command, into: &events)
        }
    }

    private func reject(_ command: Command, _ reason: RejectReason, _ detail: RejectDetail, _ events: inout [Event]) {
        events.append(
            .rejected(
                op: command.op,
                id: command.id,
                reason: reason,
                detail: detail,
                line: command.line,
                ts: command.ts
            )
        )
    }

    private static func checkPrice(_ price: FixedDecimal, _ instrument: Instrument) -> Result<Int64, RejectDetail> {
        let value: Int64
        switch price.scaled(to: instrument.priceDecimals) {
        case .failure(let error): return .failure(error == .offScale ? .priceOffScale : .priceTooLarge)
        case .success(let v): value = v
        }
        if value <= 0 { return .failure(.badPrice) }
        if value % instrument.tick != 0 { return .failure(.priceOffTick) }
        return .success(value)
    }

    private static func checkQty(
        _ qty: FixedDecimal,
        _ instrument: Instrument,
        zeroAllowed: Bool
    ) -> Result<
        Int64, RejectDetail
    > {
        let value: Int64
        switch qty.scaled(to: instrument.qtyDecimals) {
        case .failure(let error): return .failure(error == .offScale ? .qtyOffScale : .qtyTooLarge)
        case .success(let v): value = v
        }
        if value < 0 { return .failure(.badQty) }
        if value == 0 && !zeroAllowed { return .failure(.badQty) }
        if value % instrument.lot != 0 { return .failure(.qtyOffLot) }
        return .success(value)
    }

    private func instrumentFor(_ symbol: SymbolID) -> Instrument? {
        if instruments.isEmpty { return .unrestricted }
        return instruments[symbol]
    }

    private mutating func newOrder(_ command: Command, into events: inout [Event]) {
        guard let instrument = instrumentFor(command.symbol) else {
            return reject(command, .invalid, .unknownSymbol, &events)
        }
        let isMarket = command.type == .market
        var limit: Int64? = nil
        if isMarket {
            if command.price != nil { return reject(command, .invalid, .marketWithPrice, &events) }
            if command.tif == .postOnly { return reject(command, .invalid, .marketPostOnly, &events) }
        } else {
            guard let price = command.price else { return reject(command, .invalid, .missingPrice, &events) }
            switch Self.checkPrice(price, instrument) {
            case .failure(let detail): return reject(command, .invalid, detail, &events)
            case .success(let value): limit = value
            }
        }
        guard let qtyText = command.qty else { return reject(command, .invalid, .missingQty, &events) }
        let qty: Int64
        switch Self.checkQty(qtyText, instrument, zeroAllowed: false) {
        case .failure(let detail): return reject(command, .invalid, detail, &events)
        case .success(let value): qty = value
        }
        if order(command.id) != nil { return reject(command, .duplicateID, .idLive, &events) }

        events.append(
            .accepted(
                id: command.id,
                symbol: command.symbol,
                side: command.side,
                type: command.type,
                tif: command.tif,
                price: limit,
                qty: qty,
                account: command.account,
                ts: command.ts
            )
        )
        run(
            Order(
                id: command.id,
                symbol: command.symbol,
                side: command.side,
                price: limit ?? 0,
                qty: qty,
                account: command.account,
                stp: command.stp ?? defaultSTP,
                postOnly: command.tif == .postOnly,
                arrival: 0
            ),
            limit: limit,
            tif: command.tif,
            ts: command.ts,
            into: &events
        )
    }

    /// Takes an accepted taker through post-only, fill-or-kill, matching, and resting or cancelling.
    /// `limit` nil means a market order.
    private mutating func run(
        _ taker: Order,
        limit: Int64?,
        tif: TimeInForce,
        ts: Timestamp?,
        into events: inout [Event]
    ) {
        if tif == .postOnly {
            let crossing = (sides[SideKey(symbol: taker.symbol, side: taker.side.opposite)] ?? []).contains {
                Self.crosses(maker: $0.price, takerSide: taker.side, limit: limit)
            }
            if crossing {
                events.append(Self.canceled(taker, limit: limit, qty: taker.qty, .postOnly, ts))
                return
            }
        }
        if tif == .fok {
            var trial = self
            var trialEvents: [Event] = []
            let (left, killed) = trial.match(taker, limit: limit, ts: ts, into: &trialEvents)
            if left == 0 && !killed {
                self = trial
                events.append(contentsOf: trialEvents)
            } else {
                events.append(Self.canceled(taker, limit: limit, qty: taker.qty, .fok, ts))
            }
            return
        }
        let (left, killed) = match(taker, limit: limit, ts: ts, into: &events)
        if killed || left == 0 { return }
        if limit == nil {
            events.append(Self.canceled(taker, limit: nil, qty: left, .market, ts))
            return
        }
        if tif == .ioc {
            events.append(Self.canceled(taker, limit: limit, qty: left, .ioc, ts))
            return
        }
        var resting = taker
        resting.qty = left
        insert(resting)
    }

    private static func canceled(
        _ order: Order,
        limit: Int64?,
        qty: Int64,
        _ reason: CancelReason,
        _ ts: Timestamp?
    ) -> Event {
        .canceled(id: order.id, symbol: order.symbol, side: order.side, price: limit, qty: qty, reason: reason, ts: ts)
    }

    private static func crosses(maker: Int64, takerSide: Side, limit: Int64?) -> Bool {
        guard let limit else { return true }
        switch takerSide {
        case .buy: return maker <= limit
        case .sell: return maker >= limit
        }
    }

    /// Matches the taker against the opposite side; returns what is left and whether self-trade
    /// prevention cancelled the taker (its event written).
    private mutating func match(
        _ taker: Order,
        limit: Int64?,
        ts: Timestamp?,
        into events: inout [Event]
    ) -> (
        Int64, Bool
    ) {
        let key = SideKey(symbol: taker.symbol, side: taker.side.opposite)
        var remaining = taker.qty
        let selfTradeChecked = taker.account != AccountID.none && taker.stp != .none
        while remaining > 0 {
            guard let maker = sides[key]?.first else { break }
            if !Self.crosses(maker: maker.price, takerSide: taker.side, limit: limit) { break }
            if selfTradeChecked && maker.account == taker.account {
                if taker.stp == .cancelTaker {
                    events.append(Self.canceled(taker, limit: limit, qty: remaining, .stp, ts))
                    return (remaining, true)
                }
                sides[key]!.removeFirst()
                events.append(Self.canceled(maker, limit: maker.price, qty: maker.qty, .stp, ts))
                if taker.stp == .cancelBoth {
                    events.append(Self.canceled(taker, limit: limit, qty: remaining, .stp, ts))
                    return (remaining, true)
                }
                continue
            }
            let qty = min(remaining, maker.qty)
            events.append(
                .trade(
                    Trade(
                        symbol: taker.symbol,
                        price: maker.price,
                        qty: qty,
                        maker: maker.id,
                        taker: taker.id,
                        side: taker.side,
                        makerAccount: maker.account,
                        takerAccount: taker.account
                    ),
                    ts: ts
                )
            )
            remaining -= qty
            if qty == maker.qty {
                sides[key]!.removeFirst()
            } else {
                sides[key]![0].qty -= qty
            }
        }
        return (remaining, false)
    }

    private mutating func insert(_ order: Order) {
        var order = order
        arrivals += 1
        order.arrival = arrivals
        let key = SideKey(symbol: order.symbol, side: order.side)
        var orders = sides[key] ?? []
        orders.append(order)
        orders.sort { a, b in
            if a.price != b.price { return a.side == .buy ? a.price > b.price : a.price < b.price }
            return a.arrival < b.arrival
        }
        sides[key] = orders
    }

    /// Removes a resting order and returns it.
    private mutating func take(_ id: OrderID) -> Order? {
        for (key, orders) in sides {
            if let position = orders.firstIndex(where: { $0.id == id }) {
                return sides[key]!.remove(at: position)
            }
        }
        return nil
    }

    private mutating func cancelOrder(_ command: Command, into events: inout [Event]) {
        guard let order = take(command.id) else { return reject(command, .unknownOrder, .notResting, &events) }
        events.append(Self.canceled(order, limit: order.price, qty: order.qty, .user, command.ts))
    }

    private mutating func amendOrder(_ command: Command, into events: inout [Event]) {
        if command.price == nil && command.qty == nil {
            return reject(command, .invalid, .amendWithoutChange, &events)
        }
        guard let current = order(command.id) else { return reject(command, .unknownOrder, .notResting, &events) }
        let instrument = instrumentFor(current.symbol) ?? .unrestricted
        var price = current.price
        if let text = command.price {
            switch Self.checkPrice(text, instrument) {
            case .failure(let detail): return reject(command, .invalid, detail, &events)
            case .success(let value): price = value
            }
        }
        var qty = current.qty
        if let text = command.qty {
            switch Self.checkQty(text, instrument, zeroAllowed: true) {
            case .failure(let detail): return reject(command, .invalid, detail, &events)
            case .success(let value): qty = value
            }
        }
        if qty == 0 {
            _ = take(current.id)
            events.append(Self.canceled(current, limit: current.price, qty: current.qty, .user, command.ts))
            return
        }
        let keepsPlace = price == current.price && qty <= current.qty
        events.append(
            .amended(
                id: current.id,
                symbol: current.symbol,
                side: current.side,
                price: price,
                qty: qty,
                prevPrice: current.price,
                prevQty: current.qty,
                keptPriority: keepsPlace,
                ts: command.ts
            )
        )
        if keepsPlace {
            // Keeps its arrival, hence its place.
            let key = SideKey(symbol: current.symbol, side: current.side)
            let position = sides[key]!.firstIndex { $0.id == current.id }!
            sides[key]![position].qty = qty
            return
        }
        _ = take(current.id)
        var moved = current
        moved.price = price
        moved.qty = qty
        run(moved, limit: price, tif: current.postOnly ? .postOnly : .gtc, ts: command.ts, into: &events)
    }
}
