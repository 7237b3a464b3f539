public import CastleCore

/// The matching engine for many symbols: price-time priority, trades at the maker's price, the rules of
/// `spec/match.md`. A value with one synchronous entry point, ``apply(_:into:)``: no I/O, no clock, no
/// allocation per message once its pools have grown to the live book. The same commands always give
/// the same events.
public struct Exchange {
    /// The self-trade prevention mode of orders that name none.
    public var defaultSTP: STPMode
    /// When true, a symbol without a declared instrument is rejected.
    public let requireInstruments: Bool

    private var instruments: ContiguousArray<Instrument?> = []
    /// Two ladders per symbol: `2 * symbol` bids, `2 * symbol + 1` asks.
    private var ladders: ContiguousArray<Ladder> = []
    private var pool: ContiguousArray<RestingOrder> = []
    private var freeSlot: Int32 = -1
    private var index = OrderIndex()

    /// - Parameters:
    ///   - instruments: declared symbols; when non-empty, every other symbol is rejected.
    ///   - defaultSTP: the mode for orders that carry no `stp`.
    public init(instruments: [SymbolID: Instrument] = [:], defaultSTP: STPMode = .cancelTaker) {
        self.defaultSTP = defaultSTP
        requireInstruments = !instruments.isEmpty
        for (symbol, instrument) in instruments.sorted(by: { $0.key < $1.key }) {
            ensureSymbol(symbol)
            self.instruments[Int(symbol)] = instrument
        }
    }

    /// Number of resting orders across all symbols.
    public var liveOrderCount: Int { index.count }

    public func instrument(of symbol: SymbolID) -> Instrument {
        Int(symbol) < instruments.count ? instruments[Int(symbol)] ?? .unrestricted : .unrestricted
    }

    // MARK: - Commands

    /// Applies one command, appending what happened to `events`. The caller owns and clears `events`;
    /// reusing one array keeps the engine allocation-free in steady state.
    public mutating func apply(_ command: Command, into events: inout [Event]) {
        switch command.op {
        case .new: submit(command, into: &events)
        case .cancel: cancel(command, into: &events)
        case .amend: amend(command, into: &events)
        }
    }

    private func reject(
        _ command: Command,
        _ reason: RejectReason,
        _ detail: RejectDetail,
        into events: inout [Event]
    ) {
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

    private mutating func submit(_ command: Command, into events: inout [Event]) {
        // Validation first, then the duplicate-id check.
        let symbol = command.symbol
        let known = Int(symbol) < instruments.count && instruments[Int(symbol)] != nil
        if requireInstruments && !known {
            return reject(command, .invalid, .unknownSymbol, into: &events)
        }
        let instrument = known ? instruments[Int(symbol)]! : Instrument.unrestricted
        var limit: Int64
        if command.type == .market {
            if command.price != nil { return reject(command, .invalid, .marketWithPrice, into: &events) }
            if command.tif == .postOnly { return reject(command, .invalid, .marketPostOnly, into: &events) }
            limit = command.side == .buy ? Int64.max : Int64.min
        } else {
            guard let price = command.price else { return reject(command, .invalid, .missingPrice, into: &events) }
            switch Self.scaledPrice(price, instrument) {
            case .success(let value): limit = value
            case .failure(let detail): return reject(command, .invalid, detail, into: &events)
            }
        }
        guard let qtyDecimal = command.qty else { return reject(command, .invalid, .missingQty, into: &events) }
        let qty: Int64
        switch Self.scaledQty(qtyDecimal, instrument, allowZero: false) {
        case .success(let value): qty = value
        case .failure(let detail): return reject(command, .invalid, detail, into: &events)
        }
        if index.find(command.id) != nil {
            return reject(command, .duplicateID, .idLive, into: &events)
        }
        if !known { ensureSymbol(symbol) }

        events.append(
            .accepted(
                id: command.id,
                symbol: symbol,
                side: command.side,
                type: command.type,
                tif: command.tif,
                price: command.type == .market ? nil : limit,
                qty: qty,
                account: command.account,
                ts: command.ts
            )
        )
        let stp = command.stp ?? defaultSTP
        execute(
            id: command.id,
            symbol: symbol,
            side: command.side,
            limit: limit,
            qty: qty,
            tif: command.tif,
            isMarket: command.type == .market,
            account: command.account,
            stp: stp,
            ts: command.ts,
            into: &events
        )
    }

    /// Runs an accepted order (new, or an amend's reinsert) against the book and rests what is left.
    private mutating func execute(
        id: OrderID,
        symbol: SymbolID,
        side: Side,
        limit: Int64,
        qty: Int64,
        tif: TimeInForce,
        isMarket: Bool,
        account: AccountID,
        stp: STPMode,
        ts: Timestamp?,
        into events: inout [Event]
    ) {
        let opposite = ladderIndex(symbol, side.opposite)
        // What a cancel of this order reports as its price: its limit, none for a market order.
        let orderPrice: Int64? = isMarket ? nil : limit
        if tif == .postOnly, crossesBest(opposite, side: side, limit: limit) {
            events.append(
                .canceled(id: id, symbol: symbol, side: side, price: orderPrice, qty: qty, reason: .postOnly, ts: ts)
            )
            return
        }
        if tif == .fok, !canFill(opposite, side: side, limit: limit, qty: qty, account: account, stp: stp) {
            events.append(
                .canceled(id: id, symbol: symbol, side: side, price: orderPrice, qty: qty, reason: .fok, ts: ts)
            )
            return
        }
        var remaining = qty
        let stoppedBySTP = match(
            opposite,
            taker: id,
            symbol: symbol,
            side: side,
            limit: limit,
            takerPrice: orderPrice,
            remaining: &remaining,
            account: account,
            stp: stp,
            ts: ts,
            into: &events
        )
        if stoppedBySTP || remaining == 0 { return }
        if isMarket {
            events.append(
                .canceled(
                    id: id,
                    symbol: symbol,
                    side: side,
                    price: nil,
                    qty: remaining,
                    reason: tif == .fok ? .fok : .market,
                    ts: ts
                )
            )
        } else {
            switch tif {
            case .gtc, .postOnly:
                rest(
                    id: id,
                    symbol: symbol,
                    side: side,
                    price: limit,
                    qty: remaining,
                    account: account,
                    stp: stp,
                    postOnly: tif == .postOnly
                )
            case .ioc:
                events.append(
                    .canceled(id: id, symbol: symbol, side: side, price: limit, qty: remaining, reason: .ioc, ts: ts)
                )
            case .fok:
                preconditionFailure("a fill-or-kill order that passed canFill was not filled")
            }
        }
    }

    private mutating func cancel(_ command: Command, into events: inout [Event]) {
        guard let slot = index.find(command.id) else {
            return reject(command, .unknownOrder, .notResting, into: &events)
        }
        let order = pool[Int(slot)]
        remove(slot)
        events.append(canceledByUser(order, ts: command.ts))
    }

    private func canceledByUser(_ order: RestingOrder, ts: Timestamp?) -> Event {
        .canceled(
            id: order.id,
            symbol: order.symbol,
            side: order.side,
            price: order.price,
            qty: order.qty,
            reason: .user,
            ts: ts
        )
    }

    private mutating func amend(_ command: Command, into events: inout [Event]) {
        if command.price == nil && command.qty == nil {
            return reject(command, .invalid, .amendWithoutChange, into: &events)
        }
        guard let slot = index.find(command.id) else {
            return reject(command, .unknownOrder, .notResting, into: &events)
        }
        let order = pool[Int(slot)]
        let instrument = instrument(of: order.symbol)
        var newPrice = order.price
        if let price = command.price {
            switch Self.scaledPrice(price, instrument) {
            case .success(let value): newPrice = value
            case .failure(let detail): return reject(command, .invalid, detail, into: &events)
            }
        }
        var newQty = order.qty
        if let qty = command.qty {
            switch Self.scaledQty(qty, instrument, allowZero: true) {
            case .success(let value): newQty = value
            case .failure(let detail): return reject(command, .invalid, detail, into: &events)
            }
        }
        if newQty == 0 {
            remove(slot)
            events.append(canceledByUser(order, ts: command.ts))
            return
        }
        if newPrice == order.price && newQty <= order.qty {
            // Same price, same or smaller size: keeps its place in the queue.
            let ladder = ladderIndex(order.symbol, order.side)
            let (level, found) = ladders[ladder].search(key(order.price, order.side))
            precondition(found, "resting order without its level")
            pool[Int(slot)].qty = newQty
            ladders[ladder].levels[level].total -= Int128(order.qty - newQty)
            events.append(amended(order, price: newPrice, qty: newQty, keptPriority: true, ts: command.ts))
            return
        }
        // Anything else is cancel + reinsert: the order loses its place and may trade as a taker.
        remove(slot)
        events.append(amended(order, price: newPrice, qty: newQty, keptPriority: false, ts: command.ts))
        execute(
            id: order.id,
            symbol: order.symbol,
            side: order.side,
            limit: newPrice,
            qty: newQty,
            tif: order.postOnly ? .postOnly : .gtc,
            isMarket: false,
            account: order.account,
            stp: order.stp,
            ts: command.ts,
            into: &events
        )
    }

    private func amended(
        _ order: RestingOrder,
        price: Int64,
        qty: Int64,
        keptPriority: Bool,
        ts: Timestamp?
    ) -> Event {
        .amended(
            id: order.id,
            symbol: order.symbol,
            side: order.side,
            price: price,
            qty: qty,
            prevPrice: order.price,
            prevQty: order.qty,
            keptPriority: keptPriority,
            ts: ts
        )
    }

    // MARK: - Validation

    private static func scaledPrice(_ price: FixedDecimal, _ instrument: Instrument) -> Result<Int64, RejectDetail> {
        switch price.scaled(to: instrument.priceDecimals) {
        case .failure(.offScale): return .failure(.priceOffScale)
        case .failure(.tooLarge): return .failure(.priceTooLarge)
        case .success(let value):
            if value <= 0 { return .failure(.badPrice) }
            if value % instrument.tick != 0 { return .failure(.priceOffTick) }
            return .success(value)
        }
    }

    private static func scaledQty(
        _ qty: FixedDecimal,
        _ instrument: Instrument,
        allowZero: Bool
    ) -> Result<Int64, RejectDetail> {
        switch qty.scaled(to: instrument.qtyDecimals) {
        case .failure(.offScale): return .failure(.qtyOffScale)
        case .failure(.tooLarge): return .failure(.qtyTooLarge)
        case .success(let value):
            if value < 0 || (value == 0 && !allowZero) { return .failure(.badQty) }
            if value % instrument.lot != 0 { return .failure(.qtyOffLot) }
            return .success(value)
        }
    }

    // MARK: - The book

    @inline(__always)
    private func ladderIndex(_ symbol: SymbolID, _ side: Side) -> Int {
        Int(symbol) &* 2 &+ (side == .buy ? 0 : 1)
    }

    @inline(__always)
    private func key(_ price: Int64, _ side: Side) -> Int64 { side == .buy ? price : -price }

    @inline(__always)
    private func price(ofKey key: Int64, ladder: Int) -> Int64 { ladder & 1 == 0 ? key : -key }

    /// Does a taker on `side` with `limit` cross the best level of the `opposite` ladder?
    @inline(__always)
    private func crosses(_ makerPrice: Int64, side: Side, limit: Int64) -> Bool {
        side == .buy ? makerPrice <= limit : makerPrice >= limit
    }

    private func crossesBest(_ opposite: Int, side: Side, limit: Int64) -> Bool {
        guard let best = ladders[opposite].levels.last else { return false }
        return crosses(price(ofKey: best.key, ladder: opposite), side: side, limit: limit)
    }

    /// Could a fill-or-kill taker fill `qty` now? Counts self-trade prevention the way ``match`` applies it.
    private func canFill(
        _ opposite: Int,
        side: Side,
        limit: Int64,
        qty: Int64,
        account: AccountID,
        stp: STPMode
    ) -> Bool {
        let levels = ladders[opposite].levels
        let stpApplies = account != .none && stp != .none
        var available: Int128 = 0
        var level = levels.count - 1
        while level >= 0 {
            if !crosses(price(ofKey: levels[level].key, ladder: opposite), side: side, limit: limit) { return false }
            if !stpApplies {
                available += levels[level].total
                if available >= Int128(qty) { return true }
            } else {
                var slot = levels[level].head
                while slot >= 0 {
                    let maker = pool[Int(slot)]
                    if maker.account == account {
                        // cancel_taker and cancel_both end the taker here; cancel_maker skips the maker.
                        if stp != .cancelMaker { return false }
                    } else {
                        available += Int128(maker.qty)
                        if available >= Int128(qty) { return true }
                    }
                    slot = maker.next
                }
            }
            level -= 1
        }
        return false
    }

    /// Matches a taker against the opposite ladder. Returns true when self-trade prevention cancelled the
    /// taker's remainder (its event is already written).
    private mutating func match(
        _ opposite: Int,
        taker: OrderID,
        symbol: SymbolID,
        side: Side,
        limit: Int64,
        takerPrice: Int64?,
        remaining: inout Int64,
        account: AccountID,
        stp: STPMode,
        ts: Timestamp?,
        into events: inout [Event]
    ) -> Bool {
        let stpApplies = account != .none && stp != .none
        while remaining > 0, let levelIndex = ladders[opposite].levels.indices.last {
            let level = ladders[opposite].levels[levelIndex]
            let makerPrice = price(ofKey: level.key, ladder: opposite)
            if !crosses(makerPrice, side: side, limit: limit) { break }
            var slot = level.head
            while slot >= 0 && remaining > 0 {
                let maker = pool[Int(slot)]
                let next = maker.next
                if stpApplies && maker.account == account {
                    let takerCanceled = Event.canceled(
                        id: taker,
                        symbol: symbol,
                        side: side,
                        price: takerPrice,
                        qty: remaining,
                        reason: .stp,
                        ts: ts
                    )
                    if stp == .cancelTaker {
                        events.append(takerCanceled)
                        remaining = 0
                        return true
                    }
                    unlink(slot, ladder: opposite, level: levelIndex)
                    events.append(
                        .canceled(
                            id: maker.id,
                            symbol: symbol,
                            side: maker.side,
                            price: maker.price,
                            qty: maker.qty,
                            reason: .stp,
                            ts: ts
                        )
                    )
                    if stp == .cancelBoth {
                        if ladders[opposite].levels[levelIndex].head < 0 {
                            ladders[opposite].levels.remove(at: levelIndex)
                        }
                        events.append(takerCanceled)
                        remaining = 0
                        return true
                    }
                    slot = next
                    continue
                }
                let fill = min(remaining, maker.qty)
                remaining -= fill
                events.append(
                    .trade(
                        Trade(
                            symbol: symbol,
                            price: makerPrice,
                            qty: fill,
                            maker: maker.id,
                            taker: taker,
                            side: side,
                            makerAccount: maker.account,
                            takerAccount: account
                        ),
                        ts: ts
                    )
                )
                if fill == maker.qty {
                    unlink(slot, ladder: opposite, level: levelIndex)
                } else {
                    pool[Int(slot)].qty -= fill
                    ladders[opposite].levels[levelIndex].total -= Int128(fill)
                }
                slot = next
            }
            if ladders[opposite].levels[levelIndex].head < 0 {
                ladders[opposite].levels.removeLast()
            }
        }
        return false
    }

    private mutating func rest(
        id: OrderID,
        symbol: SymbolID,
        side: Side,
        price: Int64,
        qty: Int64,
        account: AccountID,
        stp: STPMode,
        postOnly: Bool
    ) {
        let ladder = ladderIndex(symbol, side)
        let levelKey = key(price, side)
        let (level, found) = ladders[ladder].search(levelKey)
        let order = RestingOrder(
            id: id,
            qty: qty,
            price: price,
            symbol: symbol,
            account: account,
            prev: -1,
            next: -1,
            side: side,
            postOnly: postOnly,
            stp: stp
        )
        let slot = allocate(order)
        index.insert(id, slot)
        if found {
            let tail = ladders[ladder].levels[level].tail
            pool[Int(slot)].prev = tail
            pool[Int(tail)].next = slot
            ladders[ladder].levels[level].tail = slot
            ladders[ladder].levels[level].total += Int128(qty)
        } else {
            ladders[ladder].levels.insert(Level(key: levelKey, head: slot, tail: slot, total: Int128(qty)), at: level)
        }
    }

    /// Removes a resting order from its level and the index, and drops the level when it empties.
    private mutating func remove(_ slot: Int32) {
        let order = pool[Int(slot)]
        let ladder = ladderIndex(order.symbol, order.side)
        let (level, found) = ladders[ladder].search(key(order.price, order.side))
        precondition(found, "resting order without its level")
        unlink(slot, ladder: ladder, level: level)
        if ladders[ladder].levels[level].head < 0 {
            ladders[ladder].levels.remove(at: level)
        }
    }

    /// Unlinks an order from its level's FIFO, frees its slot and forgets its id. Leaves an emptied
    /// level in place for the caller, who may still be walking it.
    private mutating func unlink(_ slot: Int32, ladder: Int, level: Int) {
        let order = pool[Int(slot)]
        if order.prev >= 0 {
            pool[Int(order.prev)].next = order.next
        } else {
            ladders[ladder].levels[level].head = order.next
        }
        if order.next >= 0 {
            pool[Int(order.next)].prev = order.prev
        } else {
            ladders[ladder].levels[level].tail = order.prev
        }
        ladders[ladder].levels[level].total -= Int128(order.qty)
        index.remove(order.id)
        pool[Int(slot)].next = freeSlot
        freeSlot = slot
    }

    private mutating func allocate(_ order: RestingOrder) -> Int32 {
        if freeSlot >= 0 {
            let slot = freeSlot
            freeSlot = pool[Int(slot)].next
            pool[Int(slot)] = order
            return slot
        }
        precondition(pool.count < Int(Int32.max), "order pool full")
        pool.append(order)
        return Int32(pool.count - 1)
    }

    private mutating func ensureSymbol(_ symbol: SymbolID) {
        while instruments.count <= Int(symbol) {
            instruments.append(nil)
            ladders.append(Ladder())
            ladders.append(Ladder())
        }
    }

    // MARK: - Reading the book

    /// Symbols that have at least one resting order, ascending by id.
    public var symbolsWithOrders: [SymbolID] {
        (0..<instruments.count).compactMap { symbol in
            let bids = ladders[2 * symbol].levels
            let asks = ladders[2 * symbol + 1].levels
            return bids.isEmpty && asks.isEmpty ? nil : SymbolID(symbol)
        }
    }

    /// The levels of one side, best first, each with its orders in time priority.
    public func levels(of symbol: SymbolID, side: Side, depth: Int = .max) -> [BookLevel] {
        guard Int(symbol) < instruments.count else { return [] }
        let ladder = ladderIndex(symbol, side)
        var result: [BookLevel] = []
        for level in ladders[ladder].levels.reversed().prefix(depth) {
            var orders: [BookOrder] = []
            var slot = level.head
            while slot >= 0 {
                let order = pool[Int(slot)]
                orders.append(BookOrder(id: order.id, qty: order.qty))
                slot = order.next
            }
            result.append(BookLevel(price: price(ofKey: level.key, ladder: ladder), orders: orders))
        }
        return result
    }

    /// Best price and total quantity at the touch of one side.
    public func best(of symbol: SymbolID, side: Side) -> (price: Int64, qty: Int128)? {
        guard Int(symbol) < instruments.count else { return nil }
        let ladder = ladderIndex(symbol, side)
        guard let level = ladders[ladder].levels.last else { return nil }
        return (price(ofKey: level.key, ladder: ladder), level.total)
    }

    /// A resting order by id.
    public func liveOrder(_ id: OrderID) -> LiveOrder? {
        guard let slot = index.find(id) else { return nil }
        let order = pool[Int(slot)]
        return LiveOrder(
            id: order.id,
            symbol: order.symbol,
            side: order.side,
            price: order.price,
            qty: order.qty,
            account: order.account,
            postOnly: order.postOnly,
            stp: order.stp
        )
    }

    /// Puts a resting order back at the end of its price level, without matching and without events:
    /// for rebuilding books from stored state, order by order in time priority. Returns false, changing
    /// nothing, when the id is already live, the price or quantity is not positive, or the order would
    /// cross the other side (a stored book is never crossed).
    public mutating func restore(_ order: LiveOrder) -> Bool {
        guard index.find(order.id) == nil, order.price > 0, order.qty > 0 else { return false }
        ensureSymbol(order.symbol)
        if crossesBest(ladderIndex(order.symbol, order.side.opposite), side: order.side, limit: order.price) {
            return false
        }
        rest(
            id: order.id,
            symbol: order.symbol,
            side: order.side,
            price: order.price,
            qty: order.qty,
            account: order.account,
            stp: order.stp,
            postOnly: order.postOnly
        )
        return true
    }
}
