import CastleCore
import MarketData
import Testing

private func makeTrade(_ timeNs: Int64, _ price: Int64, _ qty: Int64, _ side: Side = .buy) -> TradePrint {
    TradePrint(timeNs: timeNs, price: price, qty: qty, aggressor: side)
}

private func level(_ price: Int64, _ qty: Int128) -> L2Level { L2Level(price: price, qty: qty) }

@Suite struct BarIntervalParsing {
    @Test(
        arguments: [
            ("1s", 1_000_000_000), ("500ms", 500_000_000), ("1m", 60_000_000_000), ("5m", 300_000_000_000),
            ("1h", 3_600_000_000_000), ("250us", 250_000), ("7ns", 7), ("1d", 86_400_000_000_000),
            ("015s", 15_000_000_000),
        ] as [(String, Int64)]
    )
    func valid(text: String, ns: Int64) {
        #expect(BarBuilder.parseInterval(text) == ns)
    }

    @Test(arguments: [
        "", "s", "1", "0s", "0ms", "-1s", "+1s", "1.5s", " 1s", "1s ", "1 s", "1S", "1sec", "1mm", "ms", "1x",
        "99999999999999999999s", "9223372036854775807h",
    ])
    func invalid(text: String) {
        #expect(BarBuilder.parseInterval(text) == nil)
    }
}

@Suite struct BarBuilderTests {
    @Test func barsAlignToTheIntervalAndSkipEmptyIntervals() {
        var builder = BarBuilder(intervalNs: 10)
        var bars: [Bar] = []
        for trade in [
            makeTrade(13, 100, 2), makeTrade(15, 103, 1), makeTrade(19, 99, 3),  // bar [10, 20)
            makeTrade(20, 101, 5),  // bar [20, 30)
            makeTrade(57, 98, 1, .sell), makeTrade(59, 97, 4),  // bar [50, 60); 30-50 had no trades: no bars
        ] {
            if let bar = builder.add(trade) { bars.append(bar) }
        }
        if let bar = builder.finish() { bars.append(bar) }
        #expect(builder.finish() == nil)
        #expect(
            bars == [
                Bar(
                    startNs: 10,
                    open: 100,
                    high: 103,
                    low: 99,
                    close: 99,
                    volume: 6,
                    notional: 200 + 103 + 297,
                    trades: 3
                ),
                Bar(startNs: 20, open: 101, high: 101, low: 101, close: 101, volume: 5, notional: 505, trades: 1),
                Bar(startNs: 50, open: 98, high: 98, low: 97, close: 97, volume: 5, notional: 98 + 388, trades: 2),
            ]
        )
    }

    @Test func addReturnsTheBarThatTheTradeCloses() {
        var builder = BarBuilder(intervalNs: 1_000_000_000)
        #expect(builder.add(makeTrade(34_200_000_000_001, 5_859_400, 100)) == nil)
        #expect(builder.add(makeTrade(34_200_999_999_999, 5_859_500, 100)) == nil)
        let closed = builder.add(makeTrade(34_201_000_000_000, 5_859_600, 100))
        #expect(closed?.startNs == 34_200_000_000_000)
        #expect(closed?.trades == 2)
        #expect(builder.finish()?.startNs == 34_201_000_000_000)
    }

    @Test func outOfOrderTradeJoinsTheOpenBar() {
        var builder = BarBuilder(intervalNs: 10)
        #expect(builder.add(makeTrade(25, 100, 1)) == nil)
        #expect(builder.add(makeTrade(12, 90, 1)) == nil)
        let bar = builder.finish()
        #expect(bar?.startNs == 20)
        #expect(bar?.low == 90)
        #expect(bar?.close == 90)
        #expect(bar?.trades == 2)
    }

    @Test func negativeTimesFloor() {
        var builder = BarBuilder(intervalNs: 10)
        _ = builder.add(makeTrade(-3, 100, 1))
        #expect(builder.finish()?.startNs == -10)
    }

    @Test func vwapIsExactAndRoundsHalfToEven() {
        // 100 × 1 + 101 × 1 = 201 over 2 = 100.5 units; with 0 extra decimals half to even gives 100.
        let even = Bar(startNs: 0, open: 100, high: 101, low: 100, close: 101, volume: 2, notional: 201, trades: 2)
        #expect(even.vwap(extraDecimals: 0) == 100)
        #expect(even.vwap(extraDecimals: 1) == 1005)
        #expect(even.vwap() == 10050)
        // 1003 / 8 = 125.375: two extra decimals 12537.5, half to even 12538.
        let odd = Bar(startNs: 0, open: 1, high: 1, low: 1, close: 1, volume: 8, notional: 1003, trades: 1)
        #expect(odd.vwap() == 12538)
        // 1001 / 8 = 125.125 → 12512.5 → 12512.
        let down = Bar(startNs: 0, open: 1, high: 1, low: 1, close: 1, volume: 8, notional: 1001, trades: 1)
        #expect(down.vwap() == 12512)
        let empty = Bar(startNs: 0, open: 1, high: 1, low: 1, close: 1, volume: 0, notional: 0, trades: 1)
        #expect(empty.vwap() == nil)
    }

    @Test func roundedQuotientCases() {
        #expect(roundedQuotient(5, 2, extraDecimals: 0) == 2)
        #expect(roundedQuotient(7, 2, extraDecimals: 0) == 4)
        #expect(roundedQuotient(-5, 2, extraDecimals: 0) == -2)
        #expect(roundedQuotient(-7, 2, extraDecimals: 0) == -4)
        #expect(roundedQuotient(5, -2, extraDecimals: 0) == -2)
        #expect(roundedQuotient(1, 3, extraDecimals: 2) == 33)
        #expect(roundedQuotient(2, 3, extraDecimals: 2) == 67)
        #expect(roundedQuotient(-2, 3, extraDecimals: 2) == -67)
        #expect(roundedQuotient(1, 0, extraDecimals: 2) == nil)
        // Prices near Int64.max with huge volumes stay exact.
        let price = Int128(Int64.max)
        let volume = Int128(Int64.max)
        #expect(roundedQuotient(price * volume, volume, extraDecimals: 2) == price * 100)
        #expect(roundedQuotient(Int128.max, 1, extraDecimals: 1) == nil)
    }
}

@Suite struct DayStatsTests {
    /// Observes a two-sided book with the given spread at consecutive times, from line 1.
    private func statsWithSpreads(_ spreads: [Int64]) -> DayStats {
        var stats = DayStats()
        for (n, spread) in spreads.enumerated() {
            stats.observe(
                timeNs: Int64(n),
                line: n + 1,
                bestBid: level(1000, 5),
                bestAsk: level(1000 + spread, 7)
            )
        }
        return stats
    }

    @Test func spreadPercentilesAreExactObservedValues() {
        let stats = statsWithSpreads([3, 1, 100, 1, 2, 5, 1, 2])
        #expect(stats.spreadObservations == 8)
        #expect(stats.spreadHistogram == [1: 3, 2: 2, 3: 1, 5: 1, 100: 1])
        // Nearest rank: the median of eight is the 4th smallest (2); p99 is rank ceil(7.92) = 8.
        #expect(stats.medianSpread == 2)
        #expect(stats.p99Spread == 100)
        #expect(stats.spreadQuantile(0, 1) == 1)
        #expect(stats.spreadQuantile(3, 8) == 1)
        #expect(stats.spreadQuantile(1, 1) == 100)
        #expect(stats.minSpread == 1)
        #expect(stats.maxSpread == 100)
        // 115 / 8 = 14.375 → 1437.5 hundredths → half to even → 1438.
        #expect(stats.meanSpread() == 1438)
    }

    @Test func p99OfAHundredAndOneValues() {
        // Spreads 1…101: p99 is rank ceil(99.99) = 100, the value 100; median rank 51.
        let stats = statsWithSpreads((1...101).map { Int64($0) }.reversed())
        #expect(stats.p99Spread == 100)
        #expect(stats.medianSpread == 51)
        #expect(stats.meanSpread(extraDecimals: 0) == 51)
    }

    @Test func noObservationsGiveNil() {
        let stats = DayStats()
        #expect(stats.medianSpread == nil)
        #expect(stats.p99Spread == nil)
        #expect(stats.meanSpread() == nil)
        #expect(stats.vwap() == nil)
        #expect(stats.longestGap == nil)
        #expect(stats.meanBidDepth() == nil)
    }

    @Test func touchDepthMeansAndOneSidedBooks() {
        var stats = DayStats()
        stats.observe(timeNs: 1, line: 1, bestBid: level(99, 10), bestAsk: nil)
        stats.observe(timeNs: 2, line: 2, bestBid: level(99, 11), bestAsk: level(101, 4))
        stats.observe(timeNs: 3, line: 3, bestBid: nil, bestAsk: level(101, 5))
        stats.observe(timeNs: 4, line: 4, bestBid: nil, bestAsk: nil)
        #expect(stats.events == 4)
        #expect(stats.bidDepthObservations == 2)
        #expect(stats.meanBidDepth() == 1050)
        #expect(stats.askDepthObservations == 2)
        #expect(stats.meanAskDepth() == 450)
        // Only the one two-sided event has a spread.
        #expect(stats.spreadObservations == 1)
        #expect(stats.medianSpread == 2)
    }

    @Test func longestGapAndOutOfOrderTimestamps() {
        var stats = DayStats()
        for (n, time) in [Int64(10), 15, 40, 41, 30, 31, 60, 60].enumerated() {
            stats.observe(timeNs: time, line: n + 1, bestBid: nil, bestAsk: nil)
        }
        // 40 → 41 → 30 (out of order at line 5) → 31 → 60: 29 ns ending at line 7 beats 25 at line 3.
        #expect(stats.longestGap == DayStats.Gap(ns: 29, endTimeNs: 60, line: 7))
        #expect(stats.occurrences(.outOfOrder) == DayStats.Occurrences(count: 1, firstLine: 5))
        #expect(stats.firstTimeNs == 10)
        #expect(stats.lastTimeNs == 60)
    }

    @Test func firstLongestGapWinsTies() {
        var stats = DayStats()
        for (n, time) in [Int64(0), 5, 10].enumerated() {
            stats.observe(timeNs: time, line: n + 1, bestBid: nil, bestAsk: nil)
        }
        #expect(stats.longestGap?.line == 2)
    }

    @Test func crossedAndLockedBooksAreAnomaliesNotSpreads() {
        var stats = DayStats()
        stats.observe(timeNs: 1, line: 4, bestBid: level(100, 1), bestAsk: level(101, 1))
        stats.observe(timeNs: 2, line: 9, bestBid: level(102, 1), bestAsk: level(101, 1))
        stats.observe(timeNs: 3, line: 12, bestBid: level(101, 1), bestAsk: level(101, 1))
        #expect(stats.occurrences(.crossedBook) == DayStats.Occurrences(count: 2, firstLine: 9))
        #expect(stats.spreadObservations == 1)
        #expect(stats.bidDepthObservations == 3)
    }

    @Test func reportedAnomaliesKeepTheFirstLine() {
        var stats = DayStats()
        stats.anomaly(.unknownOrder, line: 7)
        stats.anomaly(.unknownOrder, line: 3)
        stats.anomaly(.overExecution, line: 11)
        #expect(stats.occurrences(.unknownOrder) == DayStats.Occurrences(count: 2, firstLine: 7))
        #expect(stats.occurrences(.overExecution) == DayStats.Occurrences(count: 1, firstLine: 11))
        #expect(stats.occurrences(.crossedBook) == DayStats.Occurrences(count: 0, firstLine: nil))
    }

    @Test func messageCountersKeepRegistrationOrder() {
        var stats = DayStats(messageNames: DayStats.l3MessageNames)
        stats.count(.execute)
        stats.count(.add)
        stats.count(.add)
        stats.count(.halt)
        stats.count("reset", by: 3)
        #expect(stats.messages.map(\.name) == DayStats.l3MessageNames + ["reset"])
        #expect(stats.messages.map(\.count) == [2, 0, 0, 1, 0, 0, 1, 3])
        #expect(stats.messageCount("add") == 2)
        #expect(stats.messageCount("nope") == 0)

        var orders = DayStats()
        orders.count("new")
        orders.count("cancel")
        orders.count("new")
        orders.count(.execute)
        #expect(orders.messages.map(\.name) == ["new", "cancel", "execute"])
        #expect(orders.messages.map(\.count) == [2, 1, 1])
        #expect(DayStats.messageName(.executeHidden) == "execute_hidden")
    }

    @Test func tradesVolumeNotionalAndVWAP() {
        var stats = DayStats()
        stats.trade(makeTrade(1, 5_859_400, 100))
        stats.trade(makeTrade(2, 5_859_500, 300, .sell))
        stats.trade(makeTrade(3, 5_859_300, 50))
        #expect(stats.trades == 3)
        #expect(stats.volume == 450)
        #expect(stats.buyVolume == 150)
        #expect(stats.notional == 5_859_400 * 100 + 5_859_500 * 300 + 5_859_300 * 50)
        // 2_636_755_000 / 450 = 5_859_455.555… → 585_945_556 hundredths of a unit.
        #expect(stats.vwap() == 585_945_556)
        #expect(stats.open == 5_859_400)
        #expect(stats.high == 5_859_500)
        #expect(stats.low == 5_859_300)
        #expect(stats.close == 5_859_300)
    }

    @Test func halts() {
        var stats = DayStats()
        stats.halt(.halted, timeNs: 100, line: 5)
        stats.halt(.tradingResumed, timeNs: 200, line: 9)
        #expect(stats.halts.map(\.state) == [.halted, .tradingResumed])
        #expect(stats.halts.map(\.line) == [5, 9])
    }
}
