import CastleCore
import MarketData
import Reports
import Streams
import Testing

/// What `body` writes to a sink, as text.
private func captured(_ body: (OutputSink) throws -> Void) throws -> String {
    let dir = TempDir()
    let path = dir.file("out")
    let sink = try OutputSink(path: path)
    try body(sink)
    try sink.commit()
    return try #require(readText(path))
}

private func level(_ price: Int64, _ qty: Int128) -> L2Level { L2Level(price: price, qty: qty) }

@Suite struct Decimal128Formatting {
    @Test(
        arguments: [
            (0, 0, "0"), (0, 4, "0"), (-5, 2, "-0.05"), (1_500, 3, "1.5"), (1_000, 3, "1"),
            (Int128(Int64.max) + 1, 0, "9223372036854775808"),
            (Int128.max, 0, "170141183460469231731687303715884105727"),
            (Int128.min, 0, "-170141183460469231731687303715884105728"),
            (Int128.max, 38, "1.70141183460469231731687303715884105727"),
            (Int128.min, 20, "-1701411834604692317.31687303715884105728"),
            (100_000_000_000_000_000_000, 20, "1"), (123, 25, "0.0000000000000000000000123"),
            (10_000_000_000_000_000_000, 0, "10000000000000000000"),
            (-10_000_000_000_000_000_001, 19, "-1.0000000000000000001"),
            (5_859_433_333, 6, "5859.433333"),
        ] as [(Int128, UInt8, String)]
    )
    func formats(value: Int128, decimals: UInt8, text: String) throws {
        #expect(formatDecimal128(value, decimals: decimals) == text)
        let written = try captured { sink in
            try sink.reserve(48)
            sink.appendDecimal128(value, decimals: decimals)
        }
        #expect(written == text)
    }

    @Test func agreesWithTheInt64Formatter() {
        var state: UInt64 = 12345
        for _ in 0..<2000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let value = Int64(bitPattern: state) >> Int64(state % 50)
            let decimals = UInt8(state % 19)
            #expect(formatDecimal128(Int128(value), decimals: decimals) == formatDecimal(value, decimals: decimals))
        }
    }
}

@Suite struct ExchangeClockTests {
    @Test func timesSinceMidnightAndEpoch() {
        #expect(ExchangeClock.format(34_200_000_000_000) == "09:30:00")
        #expect(ExchangeClock.format(34_200_123_456_789, fractionDigits: 3) == "09:30:00.123")
        #expect(ExchangeClock.format(57_600_000_000_000, seconds: false) == "16:00")
        // 2024-01-02 14:35:07.5 UTC.
        #expect(ExchangeClock.format(1_704_206_107_500_000_000, fractionDigits: 1) == "14:35:07.5")
        #expect(ExchangeClock.timeOfDayNs(-1) == ExchangeClock.dayNs - 1)
    }
}

@Suite struct ReplayWritersTests {
    static let trades = [
        TradePrint(timeNs: 34_200_017_000_000, price: 5_859_400, qty: 100, aggressor: .buy),
        TradePrint(timeNs: 34_200_018_500_000, price: 5_859_350, qty: 18, aggressor: .sell),
    ]

    @Test func tradesNDJSON() throws {
        let text = try captured { sink in
            let writer = try TradeWriter(sink: sink, format: .ndjson, priceDecimals: 4, qtyDecimals: 0)
            for trade in Self.trades { try writer.write(trade) }
        }
        #expect(
            text == """
                {"time_ns":34200017000000,"price":"585.94","qty":"100","side":"buy"}
                {"time_ns":34200018500000,"price":"585.935","qty":"18","side":"sell"}

                """
        )
    }

    @Test func tradesCSV() throws {
        let text = try captured { sink in
            let writer = try TradeWriter(sink: sink, format: .csv, priceDecimals: 2, qtyDecimals: 3)
            try writer.write(TradePrint(timeNs: -5, price: -150, qty: 2_500, aggressor: .sell))
            for trade in Self.trades { try writer.write(trade) }
        }
        #expect(
            text == """
                time_ns,price,qty,side
                -5,-1.5,2.5,sell
                34200017000000,58594,0.1,buy
                34200018500000,58593.5,0.018,sell

                """
        )
    }

    @Test func emptyCSVStillHasItsHeader() throws {
        let text = try captured { sink in
            _ = try TradeWriter(sink: sink, format: .csv, priceDecimals: 4, qtyDecimals: 0)
            _ = try BarWriter(sink: sink, format: .csv, priceDecimals: 4, qtyDecimals: 0)
            _ = try TradeWriter(sink: sink, format: .ndjson, priceDecimals: 4, qtyDecimals: 0)
        }
        #expect(text == "time_ns,price,qty,side\nstart_ns,open,high,low,close,volume,vwap,trades\n")
    }

    static let bars = [
        // VWAP 1003 / 8 = 125.375 units → 12537.5 hundredths → 12538 (half to even) → 1.2538 at 4 decimals.
        Bar(startNs: 60_000_000_000, open: 125, high: 126, low: 124, close: 125, volume: 8, notional: 1003, trades: 3),
        // A volume past Int64 and a VWAP that is whole.
        Bar(
            startNs: 120_000_000_000,
            open: 200,
            high: 200,
            low: 200,
            close: 200,
            volume: Int128(Int64.max) * 4,
            notional: Int128(Int64.max) * 800,
            trades: 4
        ),
        Bar(startNs: 180_000_000_000, open: 1, high: 1, low: 1, close: 1, volume: 0, notional: 0, trades: 1),
    ]

    @Test func barsNDJSON() throws {
        let text = try captured { sink in
            let writer = try BarWriter(sink: sink, format: .ndjson, priceDecimals: 2, qtyDecimals: 1)
            for bar in Self.bars { try writer.write(bar) }
        }
        #expect(
            text == """
                {"start_ns":60000000000,"open":"1.25","high":"1.26","low":"1.24","close":"1.25","volume":"0.8","vwap":"1.2538","trades":3}
                {"start_ns":120000000000,"open":"2","high":"2","low":"2","close":"2","volume":"3689348814741910322.8","vwap":"2","trades":4}
                {"start_ns":180000000000,"open":"0.01","high":"0.01","low":"0.01","close":"0.01","volume":"0","vwap":null,"trades":1}

                """
        )
    }

    @Test func barsCSV() throws {
        let text = try captured { sink in
            let writer = try BarWriter(sink: sink, format: .csv, priceDecimals: 2, qtyDecimals: 0)
            for bar in Self.bars { try writer.write(bar) }
        }
        #expect(
            text == """
                start_ns,open,high,low,close,volume,vwap,trades
                60000000000,1.25,1.26,1.24,1.25,8,1.2538,3
                120000000000,2,2,2,2,36893488147419103228,2,4
                180000000000,0.01,0.01,0.01,0.01,0,,1

                """
        )
    }

    static let snapshots = [
        L2Snapshot(
            timeNs: 34_200_000_000_000,
            bids: [level(5_859_400, 100), level(5_859_300, 20), level(5_859_000, 7)],
            asks: [level(5_859_500, 200)]
        ),
        L2Snapshot(timeNs: 34_200_000_000_001, bids: [], asks: []),
    ]

    @Test func snapshotsCSVLobsterStyle() throws {
        let text = try captured { sink in
            let writer = try SnapshotWriter(sink: sink, format: .csv, priceDecimals: 4, qtyDecimals: 0, levels: 2)
            #expect(writer.emptyLevels == .lobster)
            for snapshot in Self.snapshots { try writer.write(snapshot) }
        }
        #expect(
            text == """
                time_ns,ask_price_1,ask_size_1,bid_price_1,bid_size_1,ask_price_2,ask_size_2,bid_price_2,bid_size_2
                34200000000000,585.95,200,585.94,100,9999999999,0,585.93,20
                34200000000001,9999999999,0,-9999999999,0,9999999999,0,-9999999999,0

                """
        )
    }

    @Test func snapshotsCSVBlankLevels() throws {
        let text = try captured { sink in
            let writer = try SnapshotWriter(sink: sink, format: .csv, priceDecimals: 2, qtyDecimals: 1, levels: 2)
            #expect(writer.emptyLevels == .blank)
            for snapshot in Self.snapshots { try writer.write(snapshot) }
        }
        #expect(
            text == """
                time_ns,ask_price_1,ask_size_1,bid_price_1,bid_size_1,ask_price_2,ask_size_2,bid_price_2,bid_size_2
                34200000000000,58595,20,58594,10,,,58593,2
                34200000000001,,,,,,,,

                """
        )
    }

    @Test func snapshotsNDJSON() throws {
        let text = try captured { sink in
            let writer = try SnapshotWriter(sink: sink, format: .ndjson, priceDecimals: 4, qtyDecimals: 0)
            for snapshot in Self.snapshots { try writer.write(snapshot) }
            try writer.write(
                L2Snapshot(timeNs: 7, bids: [level(1, Int128(Int64.max) * 2)], asks: [])
            )
        }
        #expect(
            text == """
                {"time_ns":34200000000000,"bids":[["585.94","100"],["585.93","20"],["585.9","7"]],"asks":[["585.95","200"]]}
                {"time_ns":34200000000001,"bids":[],"asks":[]}
                {"time_ns":7,"bids":[["0.0001","18446744073709551614"]],"asks":[]}

                """
        )
    }

    /// A small day with a bit of everything.
    static func sampleStats() -> DayStats {
        var stats = DayStats(messageNames: DayStats.l3MessageNames)
        let t0: Int64 = 34_200_000_000_000
        stats.count(.add)
        stats.observe(timeNs: t0, line: 1, bestBid: level(5_859_400, 100), bestAsk: nil)
        stats.count(.add)
        stats.observe(timeNs: t0 + 1_000, line: 2, bestBid: level(5_859_400, 100), bestAsk: level(5_859_500, 30))
        stats.count(.execute)
        stats.trade(TradePrint(timeNs: t0 + 2_500_000_000, price: 5_859_500, qty: 10, aggressor: .buy))
        stats.observe(
            timeNs: t0 + 2_500_000_000,
            line: 3,
            bestBid: level(5_859_400, 100),
            bestAsk: level(5_859_500, 20)
        )
        stats.count(.add)
        stats.observe(timeNs: t0 + 2_400_000_000, line: 4, bestBid: level(5_859_400, 100), bestAsk: level(5_859_700, 5))
        stats.count(.delete)
        stats.anomaly(.unknownOrder, line: 5)
        stats.observe(timeNs: t0 + 2_600_000_000, line: 5, bestBid: level(5_859_400, 100), bestAsk: level(5_859_700, 5))
        stats.count(.execute)
        stats.trade(TradePrint(timeNs: t0 + 2_700_000_000, price: 5_859_400, qty: 5, aggressor: .sell))
        stats.observe(timeNs: t0 + 2_700_000_000, line: 6, bestBid: level(5_859_400, 95), bestAsk: level(5_859_700, 5))
        stats.count(.halt)
        stats.halt(.halted, timeNs: t0 + 3_000_000_000, line: 7)
        stats.observe(timeNs: t0 + 3_000_000_000, line: 7, bestBid: level(5_859_400, 95), bestAsk: level(5_859_700, 5))
        return stats
    }

    @Test func statsJSON() throws {
        let text = try captured { sink in
            try StatsWriter.writeJSON(Self.sampleStats(), to: sink, priceDecimals: 4, qtyDecimals: 0, symbol: "AAPL")
        }
        // Spreads 100, 100, 300, 300, 300, 300: mean 233.33… units → "0.023333" (6 decimals); median the
        // 3rd smallest (300); VWAP (58595000 + 29297000) / 15 = 5859466.66… → "585.946667".
        #expect(
            text == """
                {
                  "symbol": "AAPL",
                  "events": 7,
                  "first_time_ns": 34200000000000,
                  "last_time_ns": 34203000000000,
                  "messages": {
                    "add": 3,
                    "cancel": 0,
                    "delete": 1,
                    "execute": 2,
                    "execute_hidden": 0,
                    "cross": 0,
                    "halt": 1
                  },
                  "trades": {
                    "count": 2,
                    "volume": "15",
                    "buy_volume": "10",
                    "sell_volume": "5",
                    "notional": "8789.2",
                    "vwap": "585.946667",
                    "open": "585.95",
                    "high": "585.95",
                    "low": "585.94",
                    "close": "585.94"
                  },
                  "spread": {
                    "observations": 6,
                    "mean": "0.023333",
                    "median": "0.03",
                    "p99": "0.03",
                    "min": "0.01",
                    "max": "0.03"
                  },
                  "touch_depth": {
                    "bid_observations": 7,
                    "mean_bid_qty": "98.57",
                    "ask_observations": 6,
                    "mean_ask_qty": "11.67"
                  },
                  "longest_gap": {"ns": 2499999000, "end_time_ns": 34202500000000, "line": 3},
                  "anomalies": {
                    "crossed_book": {"count": 0, "first_line": null},
                    "unknown_order": {"count": 1, "first_line": 5},
                    "out_of_order": {"count": 1, "first_line": 4},
                    "over_execution": {"count": 0, "first_line": null}
                  },
                  "halts": [
                    {"state": "halted", "time_ns": 34203000000000, "line": 7}
                  ]
                }

                """
        )
    }

    @Test func statsJSONOfAnEmptyDay() throws {
        let text = StatsWriter.json(DayStats(), priceDecimals: 2, qtyDecimals: 0)
        #expect(
            text == """
                {
                  "events": 0,
                  "first_time_ns": null,
                  "last_time_ns": null,
                  "messages": {},
                  "trades": {
                    "count": 0,
                    "volume": "0",
                    "buy_volume": "0",
                    "sell_volume": "0",
                    "notional": "0",
                    "vwap": null,
                    "open": null,
                    "high": null,
                    "low": null,
                    "close": null
                  },
                  "spread": {
                    "observations": 0,
                    "mean": null,
                    "median": null,
                    "p99": null,
                    "min": null,
                    "max": null
                  },
                  "touch_depth": {
                    "bid_observations": 0,
                    "mean_bid_qty": null,
                    "ask_observations": 0,
                    "mean_ask_qty": null
                  },
                  "longest_gap": null,
                  "anomalies": {
                    "crossed_book": {"count": 0, "first_line": null},
                    "unknown_order": {"count": 0, "first_line": null},
                    "out_of_order": {"count": 0, "first_line": null},
                    "over_execution": {"count": 0, "first_line": null}
                  },
                  "halts": []
                }

                """
        )
    }

    @Test func statsSummary() {
        let text = StatsWriter.summary(Self.sampleStats(), priceDecimals: 4, qtyDecimals: 0)
        #expect(
            text == """
                events: 7, 09:30:00.000 to 09:30:03.000
                messages: add 3, cancel 0, delete 1, execute 2, execute_hidden 0, cross 0, halt 1
                trades: 2, volume 15, VWAP 585.946667 (open 585.95, high 585.95, low 585.94, close 585.94)
                spread: mean 0.023333, median 0.03, p99 0.03 over 6 events
                touch depth: mean bid 98.57, mean ask 11.67
                longest gap: 2.499999 s, ending at line 3 (09:30:02.500)
                anomalies: unknown order 1 (first at line 5), out of order 1 (first at line 4)
                status: halted at 09:30:03 (line 7)

                """
        )
        #expect(
            StatsWriter.summary(DayStats(), priceDecimals: 4, qtyDecimals: 0)
                == "events: 0\ntrades: none\nanomalies: none\n"
        )
    }
}

// MARK: - SVG

/// Checks that every element is closed in order: a tag-balance check, enough to catch broken markup.
private func tagsBalance(_ svg: String) -> Bool {
    var stack: [Substring] = []
    var rest = Substring(svg)
    while let open = rest.firstIndex(of: "<") {
        guard let close = rest[open...].firstIndex(of: ">") else { return false }
        let tag = rest[rest.index(after: open)..<close]
        rest = rest[rest.index(after: close)...]
        if tag.hasPrefix("?") || tag.hasPrefix("!") { continue }
        if tag.hasSuffix("/") { continue }
        if tag.hasPrefix("/") {
            guard let top = stack.popLast(), top == tag.dropFirst() else { return false }
            continue
        }
        stack.append(tag.prefix { $0 != " " && $0 != "\n" })
    }
    return stack.isEmpty
}

/// A synthetic LOBSTER-style day, 09:30 to 16:00 in ns since midnight, prices at 4 decimals: a random walk
/// of the mid around 585.94 with spreads of 1-3 cents (10-30 in the first five minutes), trades on a fifth
/// of the events, and a one-sided book from 12:00 to 12:05.
private func syntheticDay(maxBuckets: Int = 500) -> DayChart {
    var chart = DayChart(symbol: "AAPL", date: "2012-06-21", priceDecimals: 4, qtyDecimals: 0, maxBuckets: maxBuckets)
    var state: UInt64 = 42
    func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state >> 33
    }
    var time: Int64 = 34_200_000_000_000
    var mid: Int64 = 5_859_400
    while time < 57_600_000_000_000 {
        time += Int64(next() % 1_000_000_000) + 1
        let move = Int64(next() % 5) - 2
        mid += move * 100
        // The first five minutes quote wide, as openings do: the band must show it.
        let wide = time < 34_500_000_000_000
        let spread = Int64(next() % 3 + 1) * (wide ? 1_000 : 100)
        let bid = mid - spread / 2 / 100 * 100
        let ask = bid + spread
        let halted = time >= 43_200_000_000_000 && time < 43_500_000_000_000
        chart.quote(timeNs: time, bestBid: bid, bestAsk: halted ? nil : ask)
        if !halted, next() % 5 == 0 {
            chart.trade(timeNs: time, qty: Int64(next() % 5 + 1) * 100)
        }
    }
    return chart
}

@Suite struct DayChartTests {
    @Test func wellFormedAndComplete() throws {
        let chart = syntheticDay()
        let svg = chart.render()
        #expect(svg.hasPrefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg "))
        #expect(svg.hasSuffix("</svg>\n"))
        #expect(tagsBalance(svg))
        #expect(svg.contains("<path d=\"M"))
        #expect(svg.contains("<rect x="))
        #expect(svg.contains("AAPL 2012-06-21"))
        #expect(svg.contains(">09:30</text>"))
        #expect(svg.contains(">16:00</text>"))
        #expect(svg.contains("exchange time (since midnight)"))
        #expect(chart.bucketCount <= 500)
        #expect(chart.bucketNs == 60_000_000_000)
        #expect(svg.contains("traded volume per 1 min"))
        // Determinism: the same samples give the same bytes.
        #expect(syntheticDay().render() == svg)
        let path = "/tmp/castle-chart-test.svg"
        let sink = try OutputSink(path: path)
        try chart.write(to: sink)
        try sink.commit()
        #expect(readText(path) == svg)
    }

    @Test func boundedBucketsAndPoints() {
        let chart = syntheticDay(maxBuckets: 50)
        #expect(chart.bucketCount <= 50)
        let svg = chart.render()
        #expect(tagsBalance(svg))
        // Each bucket draws at most 4 mid points and 4 band corners.
        let points = svg.split(separator: " L").count
        #expect(points <= 50 * 8 + 10)
    }

    @Test func emptyAndOneSidedCharts() {
        let empty = DayChart(symbol: "X&Y <Z>", priceDecimals: 2, qtyDecimals: 0).render()
        #expect(tagsBalance(empty))
        #expect(empty.contains("X&amp;Y &lt;Z&gt;"))
        #expect(empty.contains("no data"))

        var oneSided = DayChart(symbol: "X", priceDecimals: 2, qtyDecimals: 0)
        oneSided.quote(timeNs: 1_000, bestBid: 100, bestAsk: nil)
        oneSided.trade(timeNs: 1_000, qty: 5)
        let svg = oneSided.render()
        #expect(tagsBalance(svg))
        #expect(svg.contains("no two-sided quotes"))
    }

    @Test func epochTimesUseUTCTimeOfDay() {
        var chart = DayChart(symbol: "BTC-USD", priceDecimals: 2, qtyDecimals: 4)
        // 2024-01-02 14:00 UTC onward, one quote a second for an hour.
        let start: Int64 = 1_704_204_000_000_000_000
        for n in Int64(0)..<3600 {
            chart.quote(timeNs: start + n * 1_000_000_000, bestBid: 4_500_000 + n % 7, bestAsk: 4_500_010 + n % 5)
        }
        let svg = chart.render()
        #expect(tagsBalance(svg))
        #expect(svg.contains(">14:00</text>"))
        #expect(svg.contains(">15:00</text>"))
        #expect(svg.contains("time of day (UTC)"))
    }

    @Test func outOfOrderSamplesLandInTheirBucket() {
        var chart = DayChart(symbol: "X", priceDecimals: 2, qtyDecimals: 0, maxBuckets: 10)
        chart.quote(timeNs: 5_000_000, bestBid: 100, bestAsk: 101)
        chart.quote(timeNs: 1_000_000, bestBid: 99, bestAsk: 100)
        chart.trade(timeNs: 3_000_000, qty: 1)
        #expect(chart.bucketCount == 3)
        #expect(tagsBalance(chart.render()))
    }
}
