import CastleCore
import CastleTesting
import MatchingEngine
import Testing

/// The matching rules of spec/match.md, each for a buy taker and a sell taker.
@Suite struct MatchingRules {
    @Test(arguments: Side.allCases)
    func priceThenTimePriority(taker: Side) {
        let m = taker.opposite
        var v = Venue()
        v.send([
            order(1, m, px(m, 1), "1"),
            order(2, m, px(m, 0), "1"),
            order(3, m, px(m, 0), "1"),
            order(4, m, px(m, 1), "1"),
        ])
        let events = v.send(order(10, taker, px(m, 1), "3"))
        #expect(
            events == [
                accepted(10, taker),
                trade(px(m, 0), "1", maker: 2, taker: 10, taker),
                trade(px(m, 0), "1", maker: 3, taker: 10, taker),
                trade(px(m, 1), "1", maker: 1, taker: 10, taker),
            ]
        )
        #expect(v.book(m) == [level(px(m, 1), [(4, "1")])])
        #expect(v.book(taker).isEmpty)
    }

    @Test(arguments: Side.allCases)
    func tradePrintsAtMakerPrice(taker: Side) {
        let m = taker.opposite
        var v = Venue()
        v.send(order(1, m, px(m, 0), "2"))
        // The taker's limit is three ticks better than the maker's price.
        let events = v.send(order(2, taker, px(m, 3), "5"))
        #expect(events == [accepted(2, taker), trade(px(m, 0), "2", maker: 1, taker: 2, taker)])
        // The remainder rests at the taker's own limit.
        #expect(v.book(taker) == [level(px(m, 3), [(2, "3")])])
        #expect(v.book(m).isEmpty)
    }

    @Test(arguments: Side.allCases)
    func amendIntoCrossTradesAtMakerPrice(taker: Side) {
        let m = taker.opposite
        var v = Venue()
        v.send(order(1, m, px(m, 0), "2"))
        v.send(order(2, taker, px(m, -2), "5"))  // two ticks away from crossing
        #expect(v.book(taker) == [level(px(m, -2), [(2, "5")])])
        let events = v.send(.amend(id: 2, price: dec(px(m, 4))))
        #expect(
            events == [
                amended(2, px(m, 4), "5"),
                trade(px(m, 0), "2", maker: 1, taker: 2, taker),
            ]
        )
        #expect(v.book(taker) == [level(px(m, 4), [(2, "3")])])
        #expect(v.book(m).isEmpty)
    }

    @Test(arguments: Side.allCases)
    func partialFillOfMakerKeepsItsPlace(taker: Side) {
        let m = taker.opposite
        var v = Venue()
        v.send([order(1, m, px(m, 0), "5"), order(2, m, px(m, 0), "1")])
        #expect(
            v.send(order(3, taker, px(m, 0), "2")) == [
                accepted(3, taker), trade(px(m, 0), "2", maker: 1, taker: 3, taker),
            ]
        )
        #expect(v.book(m) == [level(px(m, 0), [(1, "3"), (2, "1")])])
        #expect(v.best(m) == BookLevelTop(px(m, 0), "4"))
        // The next taker still meets order 1 first, then 2, and rests the rest.
        let events = v.send(order(4, taker, px(m, 0), "6"))
        #expect(
            events == [
                accepted(4, taker),
                trade(px(m, 0), "3", maker: 1, taker: 4, taker),
                trade(px(m, 0), "1", maker: 2, taker: 4, taker),
            ]
        )
        #expect(v.book(m).isEmpty)
        #expect(v.book(taker) == [level(px(m, 0), [(4, "2")])])
    }

    @Test(arguments: Side.allCases)
    func fractionalQuantities(taker: Side) {
        let m = taker.opposite
        var v = Venue()
        v.send(order(1, m, "101.25", "0.5"))
        let events = v.send(order(2, taker, "101.25", "0.00000001"))
        #expect(events == [accepted(2, taker), trade("101.25", "0.00000001", maker: 1, taker: 2, taker)])
        #expect(v.book(m) == [level("101.25", [(1, "0.49999999")])])
        #expect(units("101.25") == 10_125_000_000)
    }

    @Test(arguments: Side.allCases)
    func marketSweepsAnyPriceAndCancelsRemainder(taker: Side) {
        let m = taker.opposite
        var v = Venue()
        v.send([order(1, m, px(m, 0), "1"), order(2, m, px(m, 50), "2")])
        let events = v.send(market(3, taker, "5"))
        #expect(
            events == [
                accepted(3, taker),
                trade(px(m, 0), "1", maker: 1, taker: 3, taker),
                trade(px(m, 50), "2", maker: 2, taker: 3, taker),
                canceled(3, "2", .market),
            ]
        )
        #expect(v.book(m).isEmpty && v.book(taker).isEmpty)
    }

    @Test(arguments: Side.allCases, [TimeInForce.gtc, .ioc])
    func marketOnEmptyBookIsCanceledWhole(taker: Side, tif: TimeInForce) {
        var v = Venue()
        #expect(v.send(market(1, taker, "3", tif: tif)) == [accepted(1, taker), canceled(1, "3", .market)])
        #expect(v.engine.liveOrderCount == 0)
    }

    @Test(arguments: Side.allCases)
    func marketFilledExactlyHasNoCancel(taker: Side) {
        let m = taker.opposite
        var v = Venue()
        v.send(order(1, m, px(m, 0), "2"))
        #expect(v.send(market(2, taker, "2")) == [accepted(2, taker), trade(px(m, 0), "2", maker: 1, taker: 2, taker)])
        #expect(v.best(m) == nil)
    }

    @Test(arguments: Side.allCases)
    func iocCancelsRemainder(taker: Side) {
        let m = taker.opposite
        var v = Venue()
        v.send([order(1, m, px(m, 0), "2"), order(2, m, px(m, 2), "1")])
        let events = v.send(order(3, taker, px(m, 1), "5", tif: .ioc))
        #expect(
            events == [accepted(3, taker), trade(px(m, 0), "2", maker: 1, taker: 3, taker), canceled(3, "3", .ioc)]
        )
        #expect(v.book(taker).isEmpty)
        #expect(v.book(m) == [level(px(m, 2), [(2, "1")])])
        // Not crossing at all: cancelled whole.
        #expect(v.send(order(4, taker, px(m, 1), "1", tif: .ioc)) == [accepted(4, taker), canceled(4, "1", .ioc)])
        #expect(v.book(taker).isEmpty)
    }

    @Test(arguments: Side.allCases)
    func fokFillsFully(taker: Side) {
        let m = taker.opposite
        var v = Venue()
        v.send([order(1, m, px(m, 0), "2"), order(2, m, px(m, 1), "3"), order(3, m, px(m, 1), "1")])
        let events = v.send(order(4, taker, px(m, 1), "5", tif: .fok))
        #expect(
            events == [
                accepted(4, taker),
                trade(px(m, 0), "2", maker: 1, taker: 4, taker),
                trade(px(m, 1), "3", maker: 2, taker: 4, taker),
            ]
        )
        #expect(v.book(m) == [level(px(m, 1), [(3, "1")])])
        #expect(v.book(taker).isEmpty)
    }

    @Test(arguments: Side.allCases)
    func fokThatCannotFillCancelsWithoutSideEffect(taker: Side) {
        let m = taker.opposite
        var v = Venue()
        v.send([order(1, m, px(m, 0), "2"), order(2, m, px(m, 1), "3"), order(3, m, px(m, 5), "9")])
        let before = v.book(m)
        // Enough in the book, but not within the limit.
        #expect(v.send(order(4, taker, px(m, 1), "6", tif: .fok)) == [accepted(4, taker), canceled(4, "6", .fok)])
        #expect(v.send(order(5, taker, px(m, 0), "3", tif: .fok)) == [accepted(5, taker), canceled(5, "3", .fok)])
        // A market fill-or-kill that is larger than the whole book.
        #expect(v.send(market(6, taker, "15", tif: .fok)) == [accepted(6, taker), canceled(6, "15", .fok)])
        #expect(v.book(m) == before)
        #expect(v.book(taker).isEmpty)
        // A market fill-or-kill that fits takes any price.
        let events = v.send(market(7, taker, "14", tif: .fok))
        #expect(makers(events) == [1, 2, 3])
        #expect(events.last == trade(px(m, 5), "9", maker: 3, taker: 7, taker))
        #expect(v.engine.liveOrderCount == 0)
    }

    /// Fill-or-kill counts self-trade prevention: account 1's own maker sits ahead of account 2's.
    @Test(arguments: Side.allCases, STPMode.allCases)
    func fokCountsSelfTradePrevention(taker: Side, mode: STPMode) {
        let m = taker.opposite
        var v = Venue()
        v.send([order(1, m, px(m, 0), "2", account: 1), order(2, m, px(m, 0), "3", account: 2)])
        let before = v.book(m)
        let events = v.send(order(3, taker, px(m, 0), "3", tif: .fok, account: 1, stp: mode))
        switch mode {
        case .cancelMaker:
            // The own maker is skipped (and cancelled); the other account's 3 fill the order.
            #expect(
                events == [
                    accepted(3, taker), canceled(1, "2", .stp),
                    trade(px(m, 0), "3", maker: 2, taker: 3, taker, makerAccount: 2, takerAccount: 1),
                ]
            )
            #expect(v.book(m).isEmpty)
        case .cancelTaker, .cancelBoth:
            // Matching would stop at the own maker: nothing trades and nothing changes.
            #expect(events == [accepted(3, taker), canceled(3, "3", .fok)])
            #expect(v.book(m) == before)
        case .none:
            #expect(
                events == [
                    accepted(3, taker),
                    trade(px(m, 0), "2", maker: 1, taker: 3, taker, makerAccount: 1, takerAccount: 1),
                    trade(px(m, 0), "1", maker: 2, taker: 3, taker, makerAccount: 2, takerAccount: 1),
                ]
            )
            #expect(v.book(m) == [level(px(m, 0), [(2, "2")])])
        }
        #expect(v.book(taker).isEmpty)
    }

    @Test(arguments: Side.allCases)
    func fokWithCancelMakerThatStillCannotFillLeavesOwnMakers(taker: Side) {
        let m = taker.opposite
        var v = Venue()
        v.send([order(1, m, px(m, 0), "2", account: 1), order(2, m, px(m, 0), "3", account: 2)])
        let before = v.book(m)
        // 5 are resting but only 3 count once the own maker is skipped.
        let events = v.send(order(3, taker, px(m, 0), "4", tif: .fok, account: 1, stp: .cancelMaker))
        #expect(events == [accepted(3, taker), canceled(3, "4", .fok)])
        #expect(v.book(m) == before)
    }

    @Test(arguments: Side.allCases)
    func postOnlyThatWouldCrossIsCanceled(taker: Side) {
        let m = taker.opposite
        var v = Venue()
        v.send(order(1, m, px(m, 0), "2"))
        #expect(
            v.send(order(2, taker, px(m, 0), "1", tif: .postOnly)) == [accepted(2, taker), canceled(2, "1", .postOnly)]
        )
        #expect(
            v.send(order(3, taker, px(m, 7), "4", tif: .postOnly)) == [accepted(3, taker), canceled(3, "4", .postOnly)]
        )
        #expect(v.book(m) == [level(px(m, 0), [(1, "2")])])
        #expect(v.book(taker).isEmpty)
    }

    @Test(arguments: Side.allCases)
    func postOnlyThatDoesNotCrossRests(taker: Side) {
        let m = taker.opposite
        var v = Venue()
        v.send(order(1, m, px(m, 0), "2"))
        #expect(v.send(order(2, taker, px(m, -1), "1", tif: .postOnly)) == [accepted(2, taker)])
        #expect(v.book(taker) == [level(px(m, -1), [(2, "1")])])
        // On an empty opposite side it rests too.
        #expect(v.send(order(3, m, px(m, 3), "1", symbol: 2, tif: .postOnly)) == [accepted(3, m, symbol: 2)])
        #expect(v.book(m, symbol: 2) == [level(px(m, 3), [(3, "1")])])
    }

    /// Spec: "if it would cross on arrival, cancel it": that holds against an own-account maker too.
    @Test(arguments: Side.allCases)
    func postOnlyCrossingOwnOrderIsCanceled(taker: Side) {
        let m = taker.opposite
        var v = Venue()
        v.send(order(1, m, px(m, 0), "2", account: 1))
        let events = v.send(order(2, taker, px(m, 0), "1", tif: .postOnly, account: 1, stp: .cancelMaker))
        #expect(events == [accepted(2, taker), canceled(2, "1", .postOnly)])
        #expect(v.book(m) == [level(px(m, 0), [(1, "2")])])
    }

    @Test(arguments: Side.allCases)
    func symbolsDoNotMatchEachOther(taker: Side) {
        let m = taker.opposite
        var v = Venue()
        v.send(order(1, m, px(m, 0), "1", symbol: 2))
        #expect(v.send(order(2, taker, px(m, 0), "1", symbol: 3)) == [accepted(2, taker, symbol: 3)])
        #expect(v.book(m, symbol: 2) == [level(px(m, 0), [(1, "1")])])
        #expect(v.book(taker, symbol: 3) == [level(px(m, 0), [(2, "1")])])
        #expect(v.engine.symbolsWithOrders == [2, 3])
        #expect(v.model.symbolsWithOrders == [2, 3])
    }

    @Test func eventsCarryTimestampsAndTheOrdersSymbol() {
        var v = Venue()
        v.send(order(1, .sell, "10", "1", symbol: 7, account: 3, ts: 100))
        let events = v.send(order(2, .buy, "10", "3", symbol: 7, tif: .ioc, account: 4, ts: 200))
        #expect(
            events == [
                accepted(2, .buy, symbol: 7, ts: 200),
                trade("10", "1", maker: 1, taker: 2, .buy, makerAccount: 3, takerAccount: 4, symbol: 7, ts: 200),
                canceled(2, "2", .ioc, symbol: 7, ts: 200),
            ]
        )
        v.send(order(3, .sell, "11", "1", symbol: 7, ts: 300))
        #expect(v.send(.cancel(id: 3, ts: 400)) == [canceled(3, "1", .user, symbol: 7, ts: 400)])
        #expect(
            v.send(.cancel(id: 3, ts: 500, line: 9))
                == [rejected(.cancel, 3, .unknownOrder, .notResting, line: 9, ts: 500)]
        )
    }
}
