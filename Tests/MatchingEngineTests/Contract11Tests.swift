import CastleCore
import MatchingEngine
import Testing

/// The fields contract 1.1 adds (spec/match.md), written out in full: what a consumer of the event
/// stream alone needs to keep the book. The rule tests compare only 1.0 fields; the model checks every
/// field on every command they send.
@Suite struct Contract11Tests {
    /// Sends through the venue (engine and model must agree on every field) and returns the engine's
    /// events with all their fields.
    private func send(_ v: inout Venue, _ command: Command) -> [Event] {
        v.sendFull(command)
    }

    @Test func acceptedCarriesTypeTifPriceQtyAndAccount() {
        var v = Venue()
        #expect(
            send(&v, order(1, .sell, "100.5", "2", tif: .postOnly, account: 3)) == [
                .accepted(
                    id: 1,
                    symbol: sym,
                    side: .sell,
                    type: .limit,
                    tif: .postOnly,
                    price: units("100.5"),
                    qty: units("2"),
                    account: 3,
                    ts: nil
                )
            ]
        )
        // A market order has no price; what it cannot fill is cancelled, with no price either.
        #expect(
            send(&v, market(2, .buy, "3")) == [
                .accepted(
                    id: 2,
                    symbol: sym,
                    side: .buy,
                    type: .market,
                    tif: .gtc,
                    price: nil,
                    qty: units("3"),
                    account: .none,
                    ts: nil
                ),
                trade("100.5", "2", maker: 1, taker: 2, .buy, makerAccount: 3),
                .canceled(id: 2, symbol: sym, side: .buy, price: nil, qty: units("1"), reason: .market, ts: nil),
            ]
        )
    }

    @Test func canceledCarriesSymbolSidePrice() {
        var v = Venue()
        v.send(order(1, .buy, "99", "1"))
        #expect(
            send(&v, .cancel(id: 1)) == [
                .canceled(id: 1, symbol: sym, side: .buy, price: units("99"), qty: units("1"), reason: .user, ts: nil)
            ]
        )
        // An IOC remainder keeps the order's limit.
        let ioc = send(&v, order(2, .sell, "101", "4", tif: .ioc))
        #expect(
            ioc.last
                == .canceled(
                    id: 2,
                    symbol: sym,
                    side: .sell,
                    price: units("101"),
                    qty: units("4"),
                    reason: .ioc,
                    ts: nil
                )
        )
        // Self-trade prevention cancelling the maker names the maker's side and price.
        v.send(order(3, .sell, "102", "1", account: 7))
        let stp = send(&v, order(4, .buy, "103", "1", account: 7, stp: .cancelMaker))
        #expect(
            stp.contains(
                .canceled(id: 3, symbol: sym, side: .sell, price: units("102"), qty: units("1"), reason: .stp, ts: nil)
            )
        )
    }

    @Test func amendedCarriesPreviousValuesAndPriority() {
        var v = Venue()
        v.send(order(1, .buy, "99", "5"))
        #expect(
            send(&v, .amend(id: 1, qty: dec("3"))) == [
                .amended(
                    id: 1,
                    symbol: sym,
                    side: .buy,
                    price: units("99"),
                    qty: units("3"),
                    prevPrice: units("99"),
                    prevQty: units("5"),
                    keptPriority: true,
                    ts: nil
                )
            ]
        )
        #expect(
            send(&v, .amend(id: 1, price: dec("98"))) == [
                .amended(
                    id: 1,
                    symbol: sym,
                    side: .buy,
                    price: units("98"),
                    qty: units("3"),
                    prevPrice: units("99"),
                    prevQty: units("3"),
                    keptPriority: false,
                    ts: nil
                )
            ]
        )
    }
}
