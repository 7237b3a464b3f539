import CastleCore
import CastleTesting
import MatchingEngine
import Testing

@Suite struct SelfTradePrevention {
    /// Opposite side at one price: X (account 2) 1, A (account 1) 2, Y (account 2) 3. Taker: account 1, 10.
    @Test(arguments: Side.allCases, STPMode.allCases)
    func eachMode(taker: Side, mode: STPMode) {
        let m = taker.opposite
        var v = Venue()
        v.send([
            order(1, m, px(m, 0), "1", account: 2),
            order(2, m, px(m, 0), "2", account: 1, stp: STPMode.none),  // the maker's own mode does not matter
            order(3, m, px(m, 0), "3", account: 2),
        ])
        let events = v.send(order(4, taker, px(m, 0), "10", account: 1, stp: mode))
        let first = trade(px(m, 0), "1", maker: 1, taker: 4, taker, makerAccount: 2, takerAccount: 1)
        switch mode {
        case .cancelTaker:
            #expect(events == [accepted(4, taker), first, canceled(4, "9", .stp)])
            #expect(v.book(m) == [level(px(m, 0), [(2, "2"), (3, "3")])])
            #expect(v.book(taker).isEmpty)
        case .cancelMaker:
            #expect(
                events == [
                    accepted(4, taker), first, canceled(2, "2", .stp),
                    trade(px(m, 0), "3", maker: 3, taker: 4, taker, makerAccount: 2, takerAccount: 1),
                ]
            )
            #expect(v.book(m).isEmpty)
            #expect(v.book(taker) == [level(px(m, 0), [(4, "6")])])
        case .cancelBoth:
            #expect(events == [accepted(4, taker), first, canceled(2, "2", .stp), canceled(4, "9", .stp)])
            #expect(v.book(m) == [level(px(m, 0), [(3, "3")])])
            #expect(v.book(taker).isEmpty)
        case .none:
            #expect(
                events == [
                    accepted(4, taker), first,
                    trade(px(m, 0), "2", maker: 2, taker: 4, taker, makerAccount: 1, takerAccount: 1),
                    trade(px(m, 0), "3", maker: 3, taker: 4, taker, makerAccount: 2, takerAccount: 1),
                ]
            )
            #expect(v.book(m).isEmpty)
            #expect(v.book(taker) == [level(px(m, 0), [(4, "4")])])
        }
    }

    /// cancel_both when the own maker is the last of its level: the level goes, a worse level is untouched.
    @Test(arguments: Side.allCases)
    func cancelBothEmptiesLevel(taker: Side) {
        let m = taker.opposite
        var v = Venue()
        v.send([order(1, m, px(m, 0), "2", account: 1), order(2, m, px(m, 1), "2", account: 2)])
        let events = v.send(order(3, taker, px(m, 1), "5", account: 1, stp: .cancelBoth))
        #expect(events == [accepted(3, taker), canceled(1, "2", .stp), canceled(3, "5", .stp)])
        #expect(v.best(m) == BookLevelTop(px(m, 1), "2"))
    }

    /// cancel_maker across levels: own makers on several levels are all removed as matching walks.
    @Test(arguments: Side.allCases)
    func cancelMakerAcrossLevels(taker: Side) {
        let m = taker.opposite
        var v = Venue()
        v.send([
            order(1, m, px(m, 0), "1", account: 1), order(2, m, px(m, 1), "1", account: 1),
            order(3, m, px(m, 2), "1", account: 2), order(4, m, px(m, 3), "1", account: 1),
        ])
        let events = v.send(order(5, taker, px(m, 3), "1", tif: .ioc, account: 1, stp: .cancelMaker))
        #expect(
            events == [
                accepted(5, taker), canceled(1, "1", .stp), canceled(2, "1", .stp),
                trade(px(m, 2), "1", maker: 3, taker: 5, taker, makerAccount: 2, takerAccount: 1),
            ]
        )
        #expect(v.book(m) == [level(px(m, 3), [(4, "1")])])
    }

    /// STP on an ioc or market taker replaces the ioc/market cancel: exactly one cancel of the taker.
    @Test(arguments: Side.allCases, [STPMode.cancelTaker, .cancelBoth])
    func stpOnIocAndMarketCancelsTakerOnce(taker: Side, mode: STPMode) {
        let m = taker.opposite
        var v = Venue()
        v.send([order(1, m, px(m, 0), "1", account: 1), order(2, m, px(m, 0), "1", account: 1)])
        let ioc = v.send(order(3, taker, px(m, 0), "5", tif: .ioc, account: 1, stp: mode))
        let mkt = v.send(
            Command.new(
                id: 4,
                symbol: sym,
                side: taker,
                price: nil,
                qty: dec("5"),
                type: .market,
                account: 1,
                stp: mode
            )
        )
        if mode == .cancelTaker {
            #expect(ioc == [accepted(3, taker), canceled(3, "5", .stp)])
            #expect(mkt == [accepted(4, taker), canceled(4, "5", .stp)])
        } else {
            #expect(ioc == [accepted(3, taker), canceled(1, "1", .stp), canceled(3, "5", .stp)])
            #expect(mkt == [accepted(4, taker), canceled(2, "1", .stp), canceled(4, "5", .stp)])
        }
    }

    @Test(arguments: Side.allCases)
    func noPreventionWithoutAccountOrBetweenAccounts(taker: Side) {
        let m = taker.opposite
        var v = Venue()
        v.send([order(1, m, px(m, 0), "1"), order(2, m, px(m, 0), "1", account: 2)])
        // Both without account: they trade even under cancel_both.
        let a = v.send(order(3, taker, px(m, 0), "1", stp: .cancelBoth))
        #expect(a == [accepted(3, taker), trade(px(m, 0), "1", maker: 1, taker: 3, taker)])
        // Different accounts trade.
        let b = v.send(order(4, taker, px(m, 0), "1", account: 1, stp: .cancelBoth))
        #expect(
            b == [
                accepted(4, taker), trade(px(m, 0), "1", maker: 2, taker: 4, taker, makerAccount: 2, takerAccount: 1),
            ]
        )
    }

    /// Orders that name no mode use the exchange's default.
    @Test(arguments: STPMode.allCases)
    func defaultModeApplies(mode: STPMode) {
        var v = Venue(defaultSTP: mode)
        v.send(order(1, .sell, "10", "1", account: 1))
        let events = v.send(order(2, .buy, "10", "1", account: 1))
        switch mode {
        case .cancelTaker: #expect(events == [accepted(2, .buy), canceled(2, "1", .stp)])
        case .cancelMaker: #expect(events == [accepted(2, .buy), canceled(1, "1", .stp)])
        case .cancelBoth: #expect(events == [accepted(2, .buy), canceled(1, "1", .stp), canceled(2, "1", .stp)])
        case .none:
            #expect(
                events == [
                    accepted(2, .buy), trade("10", "1", maker: 1, taker: 2, .buy, makerAccount: 1, takerAccount: 1),
                ]
            )
        }
    }
}

@Suite struct Validation {
    @Test func rejectsInvalidNewOrders() {
        var v = Venue()
        let cases: [(Command, RejectDetail)] = [
            (order(1, .buy, "10", "1", type: .market), .marketWithPrice),
            (market(1, .buy, "1", tif: .postOnly), .marketPostOnly),
            (order(1, .buy, "10", "0"), .badQty),
            (order(1, .buy, "10", "-1"), .badQty),
            (order(1, .buy, "0", "1"), .badPrice),
            (order(1, .buy, "-10", "1"), .badPrice),
            (order(1, .buy, nil, "1"), .missingPrice),
            (Command(op: .new, id: 1, symbol: sym, side: .buy, price: dec("10")), .missingQty),
            (order(1, .buy, "10.000000001", "1"), .priceOffScale),
            (order(1, .buy, "10", "0.000000001"), .qtyOffScale),
            (order(1, .buy, "99999999999999", "1"), .priceTooLarge),
            (order(1, .buy, "10", "99999999999999"), .qtyTooLarge),
        ]
        for (index, (command, detail)) in cases.enumerated() {
            var command = command
            command.line = index + 1
            command.ts = 77
            #expect(
                v.send(command) == [rejected(.new, 1, .invalid, detail, line: index + 1, ts: 77)],
                "case \(index)"
            )
        }
        #expect(v.engine.liveOrderCount == 0)
        #expect(v.engine.symbolsWithOrders.isEmpty)
    }

    @Test func rejectsInvalidAmends() {
        var v = Venue()
        v.send(order(1, .buy, "10", "2"))
        let cases: [(Command, RejectDetail)] = [
            (.amend(id: 1), .amendWithoutChange),
            (.amend(id: 99), .amendWithoutChange),
            (.amend(id: 1, qty: dec("-1")), .badQty),
            (.amend(id: 1, price: dec("0")), .badPrice),
            (.amend(id: 1, price: dec("-3"), qty: dec("0")), .badPrice),
            (.amend(id: 1, price: dec("10.000000001")), .priceOffScale),
            (.amend(id: 1, qty: dec("99999999999999")), .qtyTooLarge),
        ]
        for (index, (command, detail)) in cases.enumerated() {
            #expect(v.send(command) == [rejected(.amend, command.id, .invalid, detail)], "case \(index)")
        }
        #expect(v.book(.buy) == [level("10", [(1, "2")])])
    }

    @Test func tooLargeNeverTraps() {
        var v = Venue()
        let huge = FixedDecimal(mantissa: .max, scale: 0)
        let hugeNegative = FixedDecimal(mantissa: .min, scale: 0)
        let tiny = FixedDecimal(mantissa: .min, scale: 8)
        let cases: [(Command, RejectDetail)] = [
            (Command.new(id: 1, symbol: sym, side: .buy, price: huge, qty: dec("1")), .priceTooLarge),
            (Command.new(id: 1, symbol: sym, side: .buy, price: hugeNegative, qty: dec("1")), .priceTooLarge),
            (Command.new(id: 1, symbol: sym, side: .buy, price: tiny, qty: dec("1")), .badPrice),
            (Command.new(id: 1, symbol: sym, side: .buy, price: dec("1"), qty: huge), .qtyTooLarge),
            (Command.new(id: 1, symbol: sym, side: .buy, price: dec("1"), qty: hugeNegative), .qtyTooLarge),
            (Command.new(id: 1, symbol: sym, side: .buy, price: dec("1"), qty: tiny), .badQty),
            (
                Command.new(id: 1, symbol: sym, side: .buy, price: dec("92233720368.5477581"), qty: dec("1")),
                .priceTooLarge
            ),
        ]
        for (index, (command, detail)) in cases.enumerated() {
            #expect(v.send(command) == [rejected(.new, 1, .invalid, detail)], "case \(index)")
        }
    }
}

@Suite struct Instruments {
    /// Symbol 0: price 2 decimals, tick 0.05; qty 3 decimals, lot 0.01. Symbol 1: whole numbers.
    static let declared: [SymbolID: Instrument] = [
        0: Instrument(priceDecimals: 2, qtyDecimals: 3, tick: 5, lot: 10),
        1: Instrument(priceDecimals: 0, qtyDecimals: 0),
    ]

    @Test func onTickOnLotIsAcceptedInInstrumentUnits() {
        var v = Venue(instruments: Self.declared)
        #expect(v.send(order(1, .sell, "100.05", "0.02", symbol: 0)) == [accepted(1, .sell, symbol: 0)])
        let events = v.send(order(2, .buy, "100.1", "0.05", symbol: 0))
        #expect(
            events == [
                accepted(2, .buy, symbol: 0),
                .trade(
                    Trade(
                        symbol: 0,
                        price: 10005,
                        qty: 20,
                        maker: 1,
                        taker: 2,
                        side: .buy,
                        makerAccount: .none,
                        takerAccount: .none
                    ),
                    ts: nil
                ),
            ]
        )
        #expect(v.book(.buy, symbol: 0) == [BookLevel(price: 10010, orders: [BookOrder(id: 2, qty: 30)])])
        #expect(v.engine.instrument(of: 0) == Self.declared[0])
    }

    @Test func offTickOffLotUnknownAndOffScaleAreInvalid() {
        var v = Venue(instruments: Self.declared)
        let cases: [(Command, RejectDetail)] = [
            (order(1, .buy, "100.01", "0.01", symbol: 0), .priceOffTick),
            (order(1, .buy, "100.05", "0.015", symbol: 0), .qtyOffLot),
            (order(1, .buy, "100.001", "0.01", symbol: 0), .priceOffScale),
            (order(1, .buy, "100.05", "0.0001", symbol: 0), .qtyOffScale),
            (order(1, .buy, "100.5", "1", symbol: 1), .priceOffScale),
            (order(1, .buy, "100", "1.5", symbol: 1), .qtyOffScale),
            (order(1, .buy, "100", "1", symbol: 2), .unknownSymbol),
            (market(1, .buy, "1.5"), .qtyOffScale),  // a market order has no price to check, only its qty
        ]
        for (index, (command, detail)) in cases.enumerated() {
            #expect(v.send(command) == [rejected(.new, 1, .invalid, detail)], "case \(index)")
        }
        #expect(
            v.send(market(1, .buy, "1"))
                == [accepted(1, .buy), canceled(1, "0.00000001", .market)]
        )
        #expect(v.engine.liveOrderCount == 0)
    }

    @Test func amendIsCheckedAgainstTheOrdersInstrument() {
        var v = Venue(instruments: Self.declared)
        v.send(order(1, .buy, "100", "0.05", symbol: 0))
        #expect(v.send(.amend(id: 1, price: dec("100.01"))) == [rejected(.amend, 1, .invalid, .priceOffTick)])
        #expect(v.send(.amend(id: 1, qty: dec("0.015"))) == [rejected(.amend, 1, .invalid, .qtyOffLot)])
        #expect(v.send(.amend(id: 1, qty: dec("0.0001"))) == [rejected(.amend, 1, .invalid, .qtyOffScale)])
        #expect(
            v.send(.amend(id: 1, qty: dec("0.03"))) == [
                Event.amended(
                    id: 1,
                    symbol: 0,
                    side: .buy,
                    price: 10000,
                    qty: 30,
                    prevPrice: 0,
                    prevQty: 0,
                    keptPriority: false,
                    ts: nil
                )
            ]
        )
        // An amend of an order that is not resting is unknown_order even with values off the tick.
        #expect(v.send(.amend(id: 2, price: dec("100.01"))) == [rejected(.amend, 2, .unknownOrder, .notResting)])
        #expect(v.book(.buy, symbol: 0) == [BookLevel(price: 10000, orders: [BookOrder(id: 1, qty: 30)])])
    }

    @Test func int64EdgeValues() {
        var v = Venue()
        let maxText = "92233720368.54775807"  // Int64.max units of 10^-8
        #expect(units(maxText) == .max)
        // The largest price and quantity, the extreme ids.
        #expect(v.send(order(.max, .sell, maxText, maxText)) == [accepted(.max, .sell)])
        #expect(
            v.send(order(0, .buy, maxText, "0.00000001")) == [
                accepted(0, .buy), trade(maxText, "0.00000001", maker: .max, taker: 0, .buy),
            ]
        )
        #expect(v.book(.sell) == [BookLevel(price: .max, orders: [BookOrder(id: .max, qty: .max - 1)])])
        // A market buy reaches a maker at the largest price.
        let events = v.send(market(1, .buy, maxText))
        #expect(
            events == [
                accepted(1, .buy),
                .trade(
                    Trade(
                        symbol: sym,
                        price: .max,
                        qty: .max - 1,
                        maker: .max,
                        taker: 1,
                        side: .buy,
                        makerAccount: .none,
                        takerAccount: .none
                    ),
                    ts: nil
                ), canceled(1, "0.00000001", .market),
            ]
        )
        // The smallest price, met by a market sell.
        v.send(order(2, .buy, "0.00000001", maxText))
        #expect(
            v.send(market(3, .sell, "1"))
                == [
                    accepted(3, .sell),
                    .trade(
                        Trade(
                            symbol: sym,
                            price: 1,
                            qty: units("1"),
                            maker: 2,
                            taker: 3,
                            side: .sell,
                            makerAccount: .none,
                            takerAccount: .none
                        ),
                        ts: nil
                    ),
                ]
        )
        #expect(v.engine.liveOrderCount == 1)
    }

    /// A level can hold more than Int64.max in total; its total stays exact as it grows and shrinks.
    @Test(arguments: Side.allCases)
    func levelTotalPastInt64MaxIsExact(side: Side) {
        var v = Venue()
        let big = "60000000000"
        v.send([order(1, side, "10", big), order(2, side, "10", big), order(3, side, "10", big)])
        #expect(v.best(side) == BookLevelTop(price: units("10"), qty: 3 * Int128(units(big))))
        v.send(.cancel(id: 2))
        #expect(v.best(side) == BookLevelTop(price: units("10"), qty: 2 * Int128(units(big))))
        v.send(.amend(id: 3, qty: dec("1")))
        #expect(v.best(side) == BookLevelTop("10", "60000000001"))
        v.send(order(4, side.opposite, "10", "60000000000"))
        #expect(v.best(side) == BookLevelTop("10", "1"))
        #expect(v.book(side) == [level("10", [(3, "1")])])
    }

    /// Two orders whose quantities together exceed Int64.max, on one level and on two levels.
    @Test(arguments: Side.allCases)
    func quantitiesSummingPastInt64Max(side: Side) {
        var v = Venue()
        let big = "60000000000"  // 6e18 units: two of them overflow Int64
        v.send([
            order(1, side, "10", big), order(2, side, "10", big), order(3, side, "9", big), order(4, side, "11", big),
        ])
        #expect(v.book(side).map(\.orders.count) == [1, 2, 1])
        #expect(v.best(side) == BookLevelTop(side == .buy ? "11" : "9", big))
        // A fill-or-kill that needs more than one huge order: the check must not trap.
        let limit = side == .buy ? "9" : "11"
        let fok = v.send(order(5, side.opposite, limit, "90000000000", tif: .fok))
        #expect(makers(fok) == (side == .buy ? [4, 1] : [3, 1]))
        #expect(fok.count == 3)
        // The best level is now the one that held 12e18; its total is exact again.
        #expect(v.best(side) == BookLevelTop("10", "90000000000"))
        let tooMuch = v.send(order(6, side.opposite, limit, "92233720368", tif: .fok))
        #expect(makers(tooMuch) == (side == .buy ? [1, 2, 3] : [1, 2, 4]))
        #expect(v.engine.liveOrderCount == 1)
        #expect(v.book(side).first?.orders.map(\.id) == (side == .buy ? [3] : [4]))
    }
}

@Suite struct LargeBooks {
    /// 5,000 resting orders on 50 levels swept by one taker: 5,000 trades in price-time order, book empty.
    @Test(arguments: Side.allCases)
    func sweep5000(taker: Side) {
        let m = taker.opposite
        var engine = Exchange()
        var events: [Event] = []
        var expected: [OrderID] = []
        for id in 1...5000 as ClosedRange<UInt64> {
            // Levels interleaved in arrival: id 1 on level 0, id 2 on level 1, ...
            engine.apply(order(id, m, px(m, Int(id % 50)), "1"), into: &events)
        }
        for k in 0..<50 {
            expected += (1...5000 as ClosedRange<UInt64>).filter { Int($0 % 50) == k }
        }
        #expect(events.count == 5000)
        #expect(engine.levels(of: sym, side: m).count == 50)
        events.removeAll()
        engine.apply(order(9999, taker, px(m, 49), "5000"), into: &events)
        #expect(events.count == 5001)
        #expect(events.first?.contract10 == accepted(9999, taker))
        #expect(makers(events) == expected)
        let prices = events.compactMap { if case .trade(let t, _) = $0 { t.price } else { nil } }
        #expect(prices == expected.map { units(px(m, Int($0 % 50))) })
        #expect(engine.liveOrderCount == 0)
        #expect(engine.best(of: sym, side: m) == nil)
        #expect(engine.best(of: sym, side: taker) == nil)
        #expect(engine.levels(of: sym, side: m).isEmpty)
    }
}
