import Ledger
import PropertyBased
import Testing

@Suite struct SettlementTests {
    static func trade(price: Int64 = 6_500_025, qty: Int64 = 400, qtyDecimals: UInt8 = 3) -> TradeSettlement {
        TradeSettlement(
            consumer: "match-1",
            seq: 42,
            ts: 7,
            base: Fixture.btc,
            quote: Fixture.usd,
            price: price,
            priceDecimals: 2,
            qty: qty,
            qtyDecimals: qtyDecimals,
            buyer: "alice",
            seller: "bob",
            buyerIsTaker: true,
            fees: .basisPoints(maker: 10, taker: 20)
        )
    }

    /// 0.4 BTC at 65,000.25 USD: 26,000.10 USD. The taker (buyer) pays 20 bp of 0.4 BTC, the maker
    /// (seller) 10 bp of 26,000.10 USD = 26.0001, rounded down to 26.00.
    @Test func example() throws {
        let entry = try Settlement.entry(for: Self.trade()).get()
        #expect(entry.key == "trade:match-1:42" && entry.kind == .trade && entry.ts == 7)
        #expect(
            entry.postings == [
                Fixture.posting(Fixture.alice, Fixture.usd, -2_600_010),
                Fixture.posting(Fixture.bob, Fixture.usd, 2_597_410),
                Fixture.posting(Fixture.fees, Fixture.usd, 2_600),
                Fixture.posting(Fixture.bob, Fixture.btc, -40_000_000),
                Fixture.posting(Fixture.alice, Fixture.btc, 39_920_000),
                Fixture.posting(Fixture.fees, Fixture.btc, 80_000),
            ]
        )
        var journal = Journal()
        #expect(journal.post(Fixture.deposit("d1", to: Fixture.alice, Fixture.usd, 2_600_010)) == .posted)
        #expect(journal.post(Fixture.deposit("d2", to: Fixture.bob, Fixture.btc, 40_000_000)) == .posted)
        #expect(journal.post(entry) == .posted)
        // Settling twice is impossible: the key is the trade's.
        #expect(journal.post(entry) == .alreadyPosted)
        #expect(journal.balance(of: Fixture.alice, in: Fixture.usd) == 0)
        #expect(journal.isVerified)
    }

    @Test func zeroFeesAreNotPosted() throws {
        var trade = Self.trade()
        trade.fees = .free
        #expect(try Settlement.entry(for: trade).get().postings.count == 4)
        // A fee that rounds down to zero is not posted either: 1 bp of 0.01 USD.
        trade = Self.trade(price: 1, qty: 1, qtyDecimals: 0)
        trade.fees = .basisPoints(maker: 1, taker: 1)
        let entry = try Settlement.entry(for: trade).get()
        #expect(entry.postings.filter { $0.account == Fixture.fees }.map(\.asset) == [Fixture.btc])
    }

    @Test func inexactOrTooLargeIsRefused() {
        let cases: [(TradeSettlement, String)] = [
            (Self.trade(qty: 500), "not a whole number of USD minor units"),  // 0.5 × 65,000.25 = 32,500.125
            (Self.trade(qty: 1, qtyDecimals: 9), "not a whole number of BTC minor units"),
            (Self.trade(qty: Int64.max, qtyDecimals: 0), "qty 9223372036854775807e-0 is too large in BTC"),
            (Self.trade(price: Int64.max, qty: 200_000_000, qtyDecimals: 8), "price × qty is too large in USD"),
            (Self.trade(price: 0), "price is not positive"),
            (Self.trade(qty: -1), "quantity is not positive"),
        ]
        for (trade, reason) in cases {
            guard case .failure(let error) = Settlement.entry(for: trade) else {
                Issue.record("settled: \(trade)")
                continue
            }
            #expect(error.reason.hasPrefix("trade trade:match-1:42: "))
            #expect(error.reason.contains(reason), "\(error.reason)")
        }
        var trade = Self.trade()
        trade.fees = FeeSchedule(makerRate_ppm: 1_000_000, takerRate_ppm: 0)
        #expect((try? Settlement.entry(for: trade).get()) == nil)
        trade = Self.trade()
        trade.fees = .basisPoints(maker: Int64.max, taker: 1)
        #expect(trade.fees.makerRate_ppm == Int64.max && trade.fees.takerRate_ppm == 100)
        #expect((try? Settlement.entry(for: trade).get()) == nil)
        trade = Self.trade()
        trade.buyer = "not an owner"
        #expect((try? Settlement.entry(for: trade).get()) == nil)
    }

    static let randomTrade = Generator<TradeSettlement, Shrink.None<TradeSettlement>> { rng in
        let qtyDecimals = UInt8.random(in: 0...8, using: &rng)
        // Quantities on a lot that keeps price × qty whole in cents most of the time, and now and then not.
        let lot =
            Bool.random(using: &rng) ? Int64(1) : [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000][Int(qtyDecimals) % 7]
        var trade = SettlementTests.trade(
            price: Int64.random(in: 1...100_000_000, using: &rng),
            qty: lot * Int64.random(in: 1...1_000_000, using: &rng),
            qtyDecimals: qtyDecimals
        )
        trade.seq = UInt64.random(in: 0...1_000, using: &rng)
        trade.buyerIsTaker = Bool.random(using: &rng)
        trade.fees = FeeSchedule(
            makerRate_ppm: Int64.random(in: 0...5_000, using: &rng),
            takerRate_ppm: Int64.random(in: 0...5_000, using: &rng)
        )
        if Int.random(in: 0..<10, using: &rng) == 0 { trade.seller = trade.buyer }  // a self-trade
        return trade
    }

    /// Every settled trade conserves every asset, charges no more than the rates (rounded down), and
    /// posts on a journal that holds the funds; a refused one really is inexact.
    @Test func randomTradesConserveEveryAsset() async {
        await propertyCheck(count: 500, input: Self.randomTrade) { trade in
            switch Settlement.entry(for: trade) {
            case .failure:
                let notional = Int128(trade.price) * Int128(trade.qty)
                var divisor: Int128 = 1
                for _ in 0..<Int(trade.qtyDecimals) { divisor *= 10 }
                #expect(notional % divisor != 0, "refused an exact trade: \(trade)")
            case .success(let entry):
                #expect(entry.unbalancedAsset == nil)
                var divisor: Int128 = 1
                for _ in 0..<Int(trade.qtyDecimals) { divisor *= 10 }
                let quote = Int64(Int128(trade.price) * Int128(trade.qty) / divisor)
                var base = trade.qty
                for _ in 0..<(8 - Int(trade.qtyDecimals)) { base *= 10 }
                let fees = entry.postings.filter { $0.account == .exchangeFees }
                #expect(fees.allSatisfy { $0.amount > 0 })
                let fee = { (asset: Asset) in fees.first { $0.asset == asset }?.amount ?? 0 }
                // Each fee is exactly floor(received × rate / 10^6): rounded down, never up.
                let buyerRate = trade.buyerIsTaker ? trade.fees.takerRate_ppm : trade.fees.makerRate_ppm
                let sellerRate = trade.buyerIsTaker ? trade.fees.makerRate_ppm : trade.fees.takerRate_ppm
                #expect(fee(Fixture.btc) == Int64(Int128(base) * Int128(buyerRate) / 1_000_000))
                #expect(fee(Fixture.usd) == Int64(Int128(quote) * Int128(sellerRate) / 1_000_000))
                var journal = Journal()
                let buyer = try! Account(kind: .available, owner: trade.buyer)
                let seller = try! Account(kind: .available, owner: trade.seller)
                #expect(journal.post(Fixture.deposit("d1", to: buyer, Fixture.usd, quote)) == .posted)
                #expect(journal.post(Fixture.deposit("d2", to: seller, Fixture.btc, base)) == .posted)
                #expect(journal.post(entry) == .posted)
                #expect(journal.isVerified)
                #expect(journal.totals.values.allSatisfy { $0 == 0 })
                if trade.buyer != trade.seller {
                    #expect(journal.balance(of: buyer, in: Fixture.btc) == Int128(base - fee(Fixture.btc)))
                    #expect(journal.balance(of: seller, in: Fixture.usd) == Int128(quote - fee(Fixture.usd)))
                    #expect(journal.balance(of: buyer, in: Fixture.usd) == 0)
                }
            }
        }
    }
}
