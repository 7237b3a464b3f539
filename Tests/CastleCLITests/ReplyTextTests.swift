import CastleSupport
import Testing

@testable import Server

/// The pieces serve's replies are written with: amounts in the contract's canonical decimals, and JSON
/// text with its commas, nesting and escapes.
@Suite struct ReplyTextTests {
    @Test func amountsAreCanonicalDecimals() throws {
        let cases: [(String, String)] = [
            ("0", "0"), ("0.5", "0.5"), ("0.50", "0.5"), ("30005", "30005"), ("100.000", "100"),
            ("0.000000000000000001", "0.000000000000000001"), ("12.3400", "12.34"),
            ("9223372036854775807", "9223372036854775807"), ("1.000000000000000010", "1.00000000000000001"),
        ]
        for (given, canonical) in cases {
            let amount = try #require(Amount(given), "\(given)")
            #expect(amount.text == canonical, "\(given)")
            #expect((Amount.zero - amount).text == (canonical == "0" ? "0" : "-" + canonical))
        }
        // Sums beyond one Int64 of whole units, and the extremes of the representation.
        let big = Amount(units: Int128(UInt64.max) * 1_000_000_000_000_000_000 * 4 + 25)
        #expect(big.text == "73786976294838206460.000000000000000025")
        #expect(Amount(units: .max).text == "170141183460469231731.687303715884105727")
        #expect(Amount(units: .min).text == "-170141183460469231731.687303715884105728")
    }

    @Test func amountsSurviveTheirTextAtRandom() throws {
        var generator = SystemRandomNumberGenerator()
        // What the events carry: a non-negative Int64 mantissa at a scale of 0 to 18 decimals.
        for _ in 0..<2_000 {
            let mantissa = Int128(Int64.random(in: 0 ... .max, using: &generator))
            var units = mantissa
            for _ in 0..<Int.random(in: 0...18, using: &generator) { units *= 10 }
            let text = Amount(units: units).text
            #expect(Amount(text)?.units == units, "\(units) → \(text)")
            #expect(!text.contains(".") || !text.hasSuffix("0"), "\(text) has a trailing zero")
        }
    }

    @Test func jsonTextNestsAndSeparates() {
        var json = JSONText()
        json.object { o in
            o.member("id", 7)
            o.member("status", "open")
            o.member("client_order_id", nil as String?)
            o.key("levels")
            o.array { a in
                a.array { pair in
                    pair.string("1.5")
                    pair.string("2")
                }
                a.object { _ in }
                a.raw("3")
            }
            o.member("quote", "a \"b\"\n\\")
            o.rawArray("events", [#"{"seq":1}"#, #"{"seq":2}"#])
            o.rawArray("none", [])
            o.member("done", true)
        }
        #expect(
            json.text
                == #"{"id":7,"status":"open","client_order_id":null,"levels":[["1.5","2"],{},3],"quote":"a \"b\"\u000a\\","#
                + #""events":[{"seq":1},{"seq":2}],"none":[],"done":true}"#
        )
    }

    @Test func plainStringsAreQuotedAsTheyAre() {
        #expect(jsonStringLiteral("BTC-USD") == #""BTC-USD""#)
        #expect(jsonStringLiteral("") == #""""#)
        #expect(jsonStringLiteral("é\t") == #""é\u0009""#)
        #expect(jsonStringLiteral("a/b") == #""a/b""#)
    }
}

/// The view's memory of finished orders: the newest `kept`, the oldest dropped one at a time.
@Suite struct RecentIDsTests {
    @Test func aFullRingDropsTheOldestOneAtATime() {
        var recent = RecentIDs(kept: 3)
        #expect([1, 2, 3].map { recent.append($0) } == [nil, nil, nil])
        #expect(recent.append(4) == 1)
        #expect(recent.append(5) == 2)
        #expect(recent.append(6) == 3)
        #expect(recent.append(7) == 4, "round the ring again")
    }

    @Test func everyIDIsDroppedOnceInTheOrderItCame() {
        var recent = RecentIDs(kept: 1000)
        var dropped: [UInt64] = []
        for id in UInt64(1)...5_500 {
            if let old = recent.append(id) { dropped.append(old) }
        }
        #expect(dropped == Array(1...4_500))
    }
}
