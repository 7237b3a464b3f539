import CastleCore
import CastleTesting
import MatchingEngine
import Testing

/// Amend, cancel, and the life of order ids.
@Suite struct AmendAndCancel {
    /// Three orders resting on `side` at the same price, 1 then 2 then 3.
    func queue(_ side: Side) -> Venue {
        var v = Venue()
        v.send([order(1, side, px(side, 0), "3"), order(2, side, px(side, 0), "3"), order(3, side, px(side, 0), "3")])
        return v
    }

    @Test(arguments: Side.allCases)
    func sizeDownKeepsPlace(side: Side) {
        var v = queue(side)
        #expect(v.send(.amend(id: 1, qty: dec("2"))) == [amended(1, px(side, 0), "2")])
        // Same price given explicitly, same quantity: also keeps its place.
        #expect(v.send(.amend(id: 2, price: dec(px(side, 0)), qty: dec("3"))) == [amended(2, px(side, 0), "3")])
        #expect(v.send(.amend(id: 2, price: dec(px(side, 0)))) == [amended(2, px(side, 0), "3")])
        #expect(v.book(side) == [level(px(side, 0), [(1, "2"), (2, "3"), (3, "3")])])
        #expect(v.best(side) == BookLevelTop(px(side, 0), "8"))
        let events = v.send(market(9, side.opposite, "3"))
        #expect(makers(events) == [1, 2])
    }

    @Test(arguments: Side.allCases)
    func sizeUpLosesPlace(side: Side) {
        var v = queue(side)
        #expect(v.send(.amend(id: 1, qty: dec("4"))) == [amended(1, px(side, 0), "4")])
        #expect(v.book(side) == [level(px(side, 0), [(2, "3"), (3, "3"), (1, "4")])])
        #expect(makers(v.send(market(9, side.opposite, "7"))) == [2, 3, 1])
    }

    @Test(arguments: Side.allCases)
    func repriceLosesPlace(side: Side) {
        var v = queue(side)
        #expect(v.send(.amend(id: 1, price: dec(px(side, 1)))) == [amended(1, px(side, 1), "3")])
        #expect(v.book(side) == [level(px(side, 0), [(2, "3"), (3, "3")]), level(px(side, 1), [(1, "3")])])
        // Back to the first price, and smaller: a reprice, so it goes to the back of the queue.
        #expect(v.send(.amend(id: 1, price: dec(px(side, 0)), qty: dec("1"))) == [amended(1, px(side, 0), "1")])
        #expect(v.book(side) == [level(px(side, 0), [(2, "3"), (3, "3"), (1, "1")])])
        // An improving reprice that does not cross moves it to a new best level alone.
        #expect(v.send(.amend(id: 3, price: dec(px(side, -1)))) == [amended(3, px(side, -1), "3")])
        #expect(v.best(side) == BookLevelTop(px(side, -1), "3"))
    }

    @Test(arguments: Side.allCases)
    func amendIntoCrossTradesAsTakerAndRestsRemainder(side: Side) {
        var v = queue(side)
        let m = side.opposite
        v.send([order(5, m, px(m, 1), "1"), order(6, m, px(m, 2), "1"), order(7, m, px(m, 3), "1")])
        #expect(v.engine.liveOrderCount == 6)
        // Order 2 moves across the spread to the opposite side's second level, with 4.
        let events = v.send(.amend(id: 2, price: dec(px(m, 2)), qty: dec("4")))
        #expect(
            events == [
                amended(2, px(m, 2), "4"),
                trade(px(m, 1), "1", maker: 5, taker: 2, side),
                trade(px(m, 2), "1", maker: 6, taker: 2, side),
            ]
        )
        #expect(v.book(side) == [level(px(m, 2), [(2, "2")]), level(px(side, 0), [(1, "3"), (3, "3")])])
        #expect(v.book(m) == [level(px(m, 3), [(7, "1")])])
    }

    @Test(arguments: Side.allCases)
    func amendedPostOnlyStaysPostOnly(side: Side) {
        var v = Venue()
        let m = side.opposite
        v.send([order(1, m, px(m, 0), "1"), order(2, side, px(m, -1), "2", tif: .postOnly)])
        let events = v.send(.amend(id: 2, price: dec(px(m, 0))))
        #expect(events == [amended(2, px(m, 0), "2"), canceled(2, "2", .postOnly)])
        #expect(v.book(side).isEmpty)
        #expect(v.book(m) == [level(px(m, 0), [(1, "1")])])
        // A gtc order amended into the same cross trades instead.
        v.send(order(3, side, px(m, -1), "2"))
        let trades = v.send(.amend(id: 3, price: dec(px(m, 0))))
        #expect(trades == [amended(3, px(m, 0), "2"), trade(px(m, 0), "1", maker: 1, taker: 3, side)])
        #expect(v.book(side) == [level(px(m, 0), [(3, "1")])])
    }

    @Test(arguments: Side.allCases)
    func amendedOrderKeepsItsAccountAndSTPMode(side: Side) {
        var v = Venue()
        let m = side.opposite
        v.send([
            order(1, m, px(m, 0), "1", account: 1),
            order(2, m, px(m, 0), "1", account: 2),
            order(3, side, px(m, -1), "5", account: 1, stp: .cancelMaker),
        ])
        let events = v.send(.amend(id: 3, price: dec(px(m, 0))))
        #expect(
            events == [
                amended(3, px(m, 0), "5"),
                canceled(1, "1", .stp),
                trade(px(m, 0), "1", maker: 2, taker: 3, side, makerAccount: 2, takerAccount: 1),
            ]
        )
        #expect(v.book(side) == [level(px(m, 0), [(3, "4")])])
    }

    @Test(arguments: Side.allCases)
    func amendToZeroCancels(side: Side) {
        var v = queue(side)
        v.send(.amend(id: 2, qty: dec("2")))
        #expect(v.send(.amend(id: 2, qty: dec("0"))) == [canceled(2, "2", .user)])
        // With a price too: still only a cancel.
        #expect(v.send(.amend(id: 3, price: dec(px(side, 5)), qty: dec("0"))) == [canceled(3, "3", .user)])
        #expect(v.book(side) == [level(px(side, 0), [(1, "3")])])
        #expect(v.send(.cancel(id: 2)) == [rejected(.cancel, 2, .unknownOrder, .notResting)])
    }

    @Test(arguments: Side.allCases)
    func cancelKeepsTheRestOfTheQueue(side: Side) {
        var v = queue(side)
        #expect(v.send(.cancel(id: 2)) == [canceled(2, "3", .user)])
        #expect(v.book(side) == [level(px(side, 0), [(1, "3"), (3, "3")])])
        #expect(v.send(.cancel(id: 1)) == [canceled(1, "3", .user)])
        #expect(v.send(.cancel(id: 3)) == [canceled(3, "3", .user)])
        #expect(v.book(side).isEmpty)
    }

    /// Removing the best level by cancel, amend to zero, reprice away or a fill leaves no phantom best.
    @Test(arguments: Side.allCases)
    func cancelingBestLevelLeavesNoPhantomBest(side: Side) {
        var v = Venue()
        v.send([
            order(1, side, px(side, 0), "1"), order(2, side, px(side, 0), "2"),
            order(3, side, px(side, 1), "3"), order(4, side, px(side, 2), "4"),
        ])
        #expect(v.best(side) == BookLevelTop(px(side, 0), "3"))
        v.send(.cancel(id: 1))
        #expect(v.best(side) == BookLevelTop(px(side, 0), "2"))
        v.send(.cancel(id: 2))
        #expect(v.best(side) == BookLevelTop(px(side, 1), "3"))
        v.send(.amend(id: 3, qty: dec("0")))
        #expect(v.best(side) == BookLevelTop(px(side, 2), "4"))
        v.send(.amend(id: 4, price: dec(px(side, 3))))
        #expect(v.best(side) == BookLevelTop(px(side, 3), "4"))
        v.send(.cancel(id: 4))
        #expect(v.best(side) == nil)
        #expect(v.book(side).isEmpty)
        // A new order on the other side at the old best price must not trade with anything.
        #expect(v.send(order(5, side.opposite, px(side, 0), "1")) == [accepted(5, side.opposite)])
        #expect(v.best(side.opposite) == BookLevelTop(px(side, 0), "1"))
    }

    @Test(arguments: Side.allCases)
    func fillingBestLevelLeavesNoPhantomBest(side: Side) {
        var v = Venue()
        v.send([order(1, side, px(side, 0), "1"), order(2, side, px(side, 3), "1")])
        v.send(order(3, side.opposite, px(side, 0), "1"))
        #expect(v.best(side) == BookLevelTop(px(side, 3), "1"))
        // Taker limit between the old and the new best: must rest, not trade.
        #expect(v.send(order(4, side.opposite, px(side, 1), "1")) == [accepted(4, side.opposite)])
        #expect(v.best(side.opposite) == BookLevelTop(px(side, 1), "1"))
    }

    /// 1,000 orders at one price, every third cancelled, then swept: the survivors trade in arrival order.
    @Test(arguments: Side.allCases)
    func fifoSurvivesScatteredCancelsInDeepQueue(side: Side) {
        var v = Venue()
        for id in 1...1000 as ClosedRange<UInt64> {
            v.send(order(id, side, "50", "1"))
        }
        for id in stride(from: 3, through: 1000, by: 3) as StrideThrough<UInt64> {
            #expect(v.send(.cancel(id: id)) == [canceled(id, "1", .user)])
        }
        // Cancel the head and the tail too.
        v.send([.cancel(id: 1), .cancel(id: 1000)])
        let survivors = (1...1000 as ClosedRange<UInt64>).filter { $0 % 3 != 0 && $0 != 1 && $0 != 1000 }
        #expect(v.book(side).first?.orders.map(\.id) == survivors)
        #expect(v.best(side) == BookLevelTop(price: units("50"), qty: Int128(units("1")) * Int128(survivors.count)))
        let events = v.send(market(5000, side.opposite, "1000"))
        #expect(makers(events) == survivors)
        #expect(events.last == canceled(5000, String(1000 - survivors.count), .market))
        #expect(v.engine.liveOrderCount == 0)
    }

    @Test(arguments: Side.allCases)
    func idReusableAfterFill(side: Side) {
        var v = Venue()
        v.send(order(7, side, px(side, 0), "1"))
        v.send(order(8, side.opposite, px(side, 0), "1"))
        #expect(v.engine.liveOrderCount == 0)
        // Both the filled maker's id and the filled taker's id can be used again, on either side.
        #expect(v.send(order(7, side.opposite, px(side, -5), "2")) == [accepted(7, side.opposite)])
        #expect(v.send(order(8, side, px(side, 0), "2")) == [accepted(8, side)])
        #expect(v.book(side) == [level(px(side, 0), [(8, "2")])])
    }

    @Test(arguments: Side.allCases)
    func idReusableAfterEveryKindOfCancel(side: Side) {
        var v = Venue()
        let m = side.opposite
        v.send(order(1, side, px(side, 0), "1"))
        v.send(.cancel(id: 1))
        #expect(v.send(order(1, side, px(side, 0), "1")) == [accepted(1, side)])
        v.send(.amend(id: 1, qty: dec("0")))
        #expect(v.send(order(1, side, px(side, 0), "1")) == [accepted(1, side)])
        // Finished at once: ioc, fok, post_only, market, stp.
        #expect(v.send(order(2, m, px(side, -1), "1", tif: .ioc)) == [accepted(2, m), canceled(2, "1", .ioc)])
        #expect(v.send(order(3, m, px(side, -1), "1", tif: .fok)) == [accepted(3, m), canceled(3, "1", .fok)])
        #expect(
            v.send(order(4, m, px(side, 0), "1", tif: .postOnly)) == [accepted(4, m), canceled(4, "1", .postOnly)]
        )
        #expect(
            v.send(market(5, m, "5"))
                == [accepted(5, m), trade(px(side, 0), "1", maker: 1, taker: 5, m), canceled(5, "4", .market)]
        )
        v.send(order(10, side, px(side, 0), "1", account: 9))
        #expect(
            v.send(order(6, m, px(side, 0), "1", account: 9)) == [accepted(6, m), canceled(6, "1", .stp)]
        )
        for id in 2...6 as ClosedRange<UInt64> {
            #expect(v.send(order(id, side, px(side, 1), "1")) == [accepted(id, side)])
        }
    }

    enum Gone: CaseIterable { case neverSeen, filled, cancelled, amendedToZero, iocRemainder, partFilledThenFilled }

    @Test(arguments: Gone.allCases)
    func cancelAndAmendOfNonRestingOrderAreRejected(gone: Gone) {
        var v = Venue()
        switch gone {
        case .neverSeen: break
        case .filled: v.send([order(1, .sell, "10", "1"), order(2, .buy, "10", "1")])
        case .cancelled: v.send([order(1, .sell, "10", "1"), .cancel(id: 1)])
        case .amendedToZero: v.send([order(1, .sell, "10", "1"), .amend(id: 1, qty: dec("0"))])
        case .iocRemainder: v.send([order(2, .sell, "10", "1"), order(1, .buy, "10", "2", tif: .ioc)])
        case .partFilledThenFilled:
            v.send([order(1, .sell, "10", "3"), order(2, .buy, "10", "1"), order(3, .buy, "10", "2")])
        }
        #expect(v.engine.liveOrder(1) == nil)
        #expect(v.send(.cancel(id: 1, line: 4)) == [rejected(.cancel, 1, .unknownOrder, .notResting, line: 4)])
        #expect(
            v.send(.amend(id: 1, qty: dec("5"), line: 5)) == [rejected(.amend, 1, .unknownOrder, .notResting, line: 5)]
        )
        #expect(v.send(.amend(id: 1, price: dec("11"))) == [rejected(.amend, 1, .unknownOrder, .notResting)])
        #expect(v.send(.amend(id: 1, qty: dec("0"))) == [rejected(.amend, 1, .unknownOrder, .notResting)])
        #expect(v.engine.liveOrderCount == 0)
    }

    @Test(arguments: Side.allCases)
    func duplicateLiveIdIsRejected(side: Side) {
        var v = Venue()
        v.send(order(5, side, px(side, 0), "1"))
        // Same id on the other side (would cross), on another symbol, as market: all rejected, nothing trades.
        #expect(
            v.send(order(5, side.opposite, px(side, 0), "1", line: 2))
                == [rejected(.new, 5, .duplicateID, .idLive, line: 2)]
        )
        #expect(v.send(order(5, side, "3", "1", symbol: 9)) == [rejected(.new, 5, .duplicateID, .idLive)])
        #expect(v.send(market(5, side.opposite, "1")) == [rejected(.new, 5, .duplicateID, .idLive)])
        #expect(v.book(side) == [level(px(side, 0), [(5, "1")])])
        #expect(v.book(side.opposite).isEmpty)
        #expect(v.engine.liveOrderCount == 1)
    }

    @Test func validationComesBeforeDuplicateCheck() {
        var v = Venue()
        v.send(order(5, .buy, "10", "1"))
        #expect(v.send(order(5, .buy, "10", "0")) == [rejected(.new, 5, .invalid, .badQty)])
        #expect(v.send(order(5, .buy, "0", "1")) == [rejected(.new, 5, .invalid, .badPrice)])
        #expect(v.send(order(5, .buy, "1.000000001", "1")) == [rejected(.new, 5, .invalid, .priceOffScale)])
        #expect(v.send(order(5, .sell, "10", "1", type: .market)) == [rejected(.new, 5, .invalid, .marketWithPrice)])
        #expect(v.send(order(5, .sell, nil, "1")) == [rejected(.new, 5, .invalid, .missingPrice)])
        #expect(v.send(market(5, .sell, "1", tif: .postOnly)) == [rejected(.new, 5, .invalid, .marketPostOnly)])
        #expect(v.send(order(5, .sell, "10", "1")) == [rejected(.new, 5, .duplicateID, .idLive)])
        #expect(v.book(.buy) == [level("10", [(5, "1")])])
    }

    @Test func duplicateCheckAgainstDeclaredInstruments() {
        var v = Venue(instruments: [0: Instrument(priceDecimals: 2, qtyDecimals: 0, tick: 5)])
        v.send(order(5, .buy, "10", "1", symbol: 0))
        // Unknown symbol is a validation failure, so it wins over the duplicate id.
        #expect(v.send(order(5, .buy, "10", "1", symbol: 1)) == [rejected(.new, 5, .invalid, .unknownSymbol)])
        #expect(v.send(order(5, .buy, "10.01", "1", symbol: 0)) == [rejected(.new, 5, .invalid, .priceOffTick)])
        #expect(v.send(order(5, .buy, "10.05", "1", symbol: 0)) == [rejected(.new, 5, .duplicateID, .idLive)])
    }
}
