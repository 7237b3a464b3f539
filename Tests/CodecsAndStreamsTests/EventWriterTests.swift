import CastleCore
import Codecs
import Streams
import Testing

/// Writes `events` with symbols `BTC-USD` (0, 2 price / 4 qty decimals), `we"ird\sym` (1, unrestricted),
/// and accounts `alice` (1), `bob` (2); returns the file's text and the writer's final seq.
func writeEvents(_ events: [Event]) throws -> (text: String, seq: UInt64) {
    let dir = TempDir()
    let path = dir.file("events.ndjson")
    var symbols = NameTable()
    var accounts = NameTable(firstID: 1)
    #expect(symbols.intern("BTC-USD") == 0)
    #expect(symbols.intern(#"we"ird\sym"#) == 1)
    #expect(accounts.intern("alice") == 1)
    #expect(accounts.intern("bob") == 2)
    let sink = try OutputSink(path: path)
    let writer = EventWriter(sink: sink, instruments: [0: Instrument(priceDecimals: 2, qtyDecimals: 4)])
    writer.syncNames(symbols: symbols, accounts: accounts)
    for event in events { try writer.write(event) }
    try sink.commit()
    return (try #require(readText(path)), writer.seq)
}

/// An accepted limit GTC buy of one unit at one unit, with no account.
func limitBuy(id: OrderID, symbol: SymbolID) -> Event {
    .accepted(
        id: id,
        symbol: symbol,
        side: .buy,
        type: .limit,
        tif: .gtc,
        price: 1,
        qty: 1,
        account: .none,
        ts: nil
    )
}

@Suite struct EventWriterTests {
    @Test func accepted() throws {
        let (text, seq) = try writeEvents([
            .accepted(
                id: 17,
                symbol: 0,
                side: .buy,
                type: .limit,
                tif: .postOnly,
                price: 10125,
                qty: 5000,
                account: 2,
                ts: nil
            ),
            .accepted(
                id: 9,
                symbol: 1,
                side: .sell,
                type: .market,
                tif: .ioc,
                price: nil,
                qty: 1,
                account: .none,
                ts: 1_700_000_000_000_000_001
            ),
        ])
        #expect(
            text == """
                {"seq":1,"event":"accepted","id":17,"symbol":"BTC-USD","side":"buy","type":"limit","tif":"post_only","price":"101.25","qty":"0.5","account":"bob"}
                {"seq":2,"event":"accepted","id":9,"symbol":"we\\"ird\\\\sym","side":"sell","type":"market","tif":"ioc","qty":"0.00000001","ts":1700000000000000001}

                """
        )
        #expect(seq == 2)
    }

    @Test func tradeWithInstrumentDecimalsAndAccounts() throws {
        let trade = Trade(
            symbol: 0,
            price: 10125,
            qty: 5000,
            maker: 9,
            taker: 17,
            side: .buy,
            makerAccount: 1,
            takerAccount: 2
        )
        let (text, _) = try writeEvents([.trade(trade, ts: 5)])
        #expect(
            text
                == #"{"seq":1,"event":"trade","symbol":"BTC-USD","price":"101.25","qty":"0.5","maker":9,"taker":17,"side":"buy","maker_account":"alice","taker_account":"bob","ts":5}"#
                + "\n"
        )
    }

    @Test func tradeUnrestrictedWithoutAccounts() throws {
        let trade = Trade(
            symbol: 1,
            price: 150_000_000,
            qty: 200_000_000,
            maker: 1,
            taker: 2,
            side: .sell,
            makerAccount: .none,
            takerAccount: .none
        )
        let (text, _) = try writeEvents([.trade(trade, ts: nil)])
        #expect(
            text
                == #"{"seq":1,"event":"trade","symbol":"we\"ird\\sym","price":"1.5","qty":"2","maker":1,"taker":2,"side":"sell"}"#
                + "\n"
        )
    }

    @Test func tradeWithOneAccount() throws {
        let onlyTaker = Trade(
            symbol: 0,
            price: 100,
            qty: 1,
            maker: 3,
            taker: 4,
            side: .sell,
            makerAccount: .none,
            takerAccount: 2
        )
        let onlyMaker = Trade(
            symbol: 0,
            price: 100,
            qty: 1,
            maker: 3,
            taker: 4,
            side: .sell,
            makerAccount: 1,
            takerAccount: .none
        )
        let (text, _) = try writeEvents([.trade(onlyTaker, ts: nil), .trade(onlyMaker, ts: 0)])
        #expect(
            text == """
                {"seq":1,"event":"trade","symbol":"BTC-USD","price":"1","qty":"0.0001","maker":3,"taker":4,"side":"sell","taker_account":"bob"}
                {"seq":2,"event":"trade","symbol":"BTC-USD","price":"1","qty":"0.0001","maker":3,"taker":4,"side":"sell","maker_account":"alice","ts":0}

                """
        )
    }

    @Test func canceledWithEveryReason() throws {
        let reasons: [CancelReason] = [.user, .ioc, .fok, .postOnly, .market, .stp]
        let events: [Event] = reasons.enumerated().map { n, reason in
            .canceled(
                id: UInt64(n),
                symbol: 0,
                side: .buy,
                price: reason == .market ? nil : 10050,
                qty: 12500,
                reason: reason,
                ts: n == 2 ? 77 : nil
            )
        }
        let last = Event.canceled(id: 9, symbol: 1, side: .sell, price: 5, qty: 1, reason: .user, ts: nil)
        let (text, seq) = try writeEvents(events + [last])
        #expect(
            text == """
                {"seq":1,"event":"canceled","id":0,"qty":"1.25","reason":"user","symbol":"BTC-USD","side":"buy","price":"100.5"}
                {"seq":2,"event":"canceled","id":1,"qty":"1.25","reason":"ioc","symbol":"BTC-USD","side":"buy","price":"100.5"}
                {"seq":3,"event":"canceled","id":2,"qty":"1.25","reason":"fok","symbol":"BTC-USD","side":"buy","price":"100.5","ts":77}
                {"seq":4,"event":"canceled","id":3,"qty":"1.25","reason":"post_only","symbol":"BTC-USD","side":"buy","price":"100.5"}
                {"seq":5,"event":"canceled","id":4,"qty":"1.25","reason":"market","symbol":"BTC-USD","side":"buy"}
                {"seq":6,"event":"canceled","id":5,"qty":"1.25","reason":"stp","symbol":"BTC-USD","side":"buy","price":"100.5"}
                {"seq":7,"event":"canceled","id":9,"qty":"0.00000001","reason":"user","symbol":"we\\"ird\\\\sym","side":"sell","price":"0.00000005"}

                """
        )
        #expect(seq == 7)
    }

    @Test func amended() throws {
        let (text, _) = try writeEvents([
            .amended(
                id: 9,
                symbol: 0,
                side: .sell,
                price: 10100,
                qty: 10000,
                prevPrice: 10100,
                prevQty: 20000,
                keptPriority: true,
                ts: 7
            ),
            .amended(
                id: UInt64.max,
                symbol: 1,
                side: .buy,
                price: 12_345_678_900,
                qty: 1,
                prevPrice: 100,
                prevQty: 3,
                keptPriority: false,
                ts: nil
            ),
        ])
        #expect(
            text == """
                {"seq":1,"event":"amended","id":9,"price":"101","qty":"1","symbol":"BTC-USD","side":"sell","prev_price":"101","prev_qty":"2","priority":"kept","ts":7}
                {"seq":2,"event":"amended","id":18446744073709551615,"price":"123.456789","qty":"0.00000001","symbol":"we\\"ird\\\\sym","side":"buy","prev_price":"0.000001","prev_qty":"0.00000003","priority":"lost"}

                """
        )
    }

    @Test func rejected() throws {
        let (text, _) = try writeEvents([
            .rejected(op: .cancel, id: 99, reason: .unknownOrder, detail: .notResting, line: 3, ts: 8),
            .rejected(op: nil, id: nil, reason: .malformed, detail: .notJSONObject, line: 4, ts: nil),
            .rejected(op: .new, id: nil, reason: .invalid, detail: .badID, line: 5, ts: nil),
            .rejected(op: nil, id: 12, reason: .invalid, detail: .unknownOp, line: 6, ts: nil),
            .rejected(op: .new, id: 1, reason: .duplicateID, detail: .idLive, line: 7, ts: 0),
            .rejected(op: .amend, id: 2, reason: .invalid, detail: .amendWithoutChange, line: 8, ts: nil),
        ])
        #expect(
            text == """
                {"seq":1,"event":"rejected","op":"cancel","id":99,"reason":"unknown_order","line":3,"ts":8}
                {"seq":2,"event":"rejected","reason":"malformed","line":4}
                {"seq":3,"event":"rejected","op":"new","reason":"invalid","line":5}
                {"seq":4,"event":"rejected","id":12,"reason":"invalid","line":6}
                {"seq":5,"event":"rejected","op":"new","id":1,"reason":"duplicate_id","line":7,"ts":0}
                {"seq":6,"event":"rejected","op":"amend","id":2,"reason":"invalid","line":8}

                """
        )
    }

    @Test func seqIsDenseFromOneAcrossManyEvents() throws {
        let n = 5000  // more than one sink buffer of lines
        let events: [Event] = (0..<n).map { limitBuy(id: UInt64($0), symbol: 0) }
        let (text, seq) = try writeEvents(events)
        #expect(seq == UInt64(n))
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == n + 1)
        #expect(lines.last == "")
        var mismatches = 0
        for (k, line) in lines.dropLast().enumerated()
        where line
            != #"{"seq":\#(k + 1),"event":"accepted","id":\#(k),"symbol":"BTC-USD","side":"buy","type":"limit","tif":"gtc","price":"0.01","qty":"0.0001"}"#
        {
            mismatches += 1
        }
        #expect(mismatches == 0)
    }

    @Test func namesAddedLaterAreSynced() throws {
        let dir = TempDir()
        let path = dir.file("events.ndjson")
        var symbols = NameTable()
        let accounts = NameTable(firstID: 1)
        _ = symbols.intern("A")
        let sink = try OutputSink(path: path)
        let writer = EventWriter(sink: sink, instruments: [:])
        writer.syncNames(symbols: symbols, accounts: accounts)
        try writer.write(limitBuy(id: 1, symbol: 0))
        _ = symbols.intern("B")
        writer.syncNames(symbols: symbols, accounts: accounts)
        writer.syncNames(symbols: symbols, accounts: accounts)  // idempotent
        try writer.write(limitBuy(id: 2, symbol: 1))
        try writer.write(limitBuy(id: 3, symbol: 0))
        try sink.commit()
        #expect(
            readText(path) == """
                {"seq":1,"event":"accepted","id":1,"symbol":"A","side":"buy","type":"limit","tif":"gtc","price":"0.00000001","qty":"0.00000001"}
                {"seq":2,"event":"accepted","id":2,"symbol":"B","side":"buy","type":"limit","tif":"gtc","price":"0.00000001","qty":"0.00000001"}
                {"seq":3,"event":"accepted","id":3,"symbol":"A","side":"buy","type":"limit","tif":"gtc","price":"0.00000001","qty":"0.00000001"}

                """
        )
    }

    @Test func controlCharactersInNamesAreEscaped() throws {
        let dir = TempDir()
        let path = dir.file("events.ndjson")
        var symbols = NameTable()
        _ = symbols.intern("a\u{1}b\tc")
        let sink = try OutputSink(path: path)
        let writer = EventWriter(sink: sink, instruments: [:])
        writer.syncNames(symbols: symbols, accounts: NameTable(firstID: 1))
        try writer.write(limitBuy(id: 1, symbol: 0))
        try sink.commit()
        #expect(
            readText(path)
                == #"{"seq":1,"event":"accepted","id":1,"symbol":"a\u0001b\u0009c","side":"buy","type":"limit","tif":"gtc","price":"0.00000001","qty":"0.00000001"}"#
                + "\n"
        )
    }
}
