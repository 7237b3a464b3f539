import CastleCore
import Testing

@testable import Server

/// serve's reading of one event line: the members it uses, typed, strings unescaped.
@Suite struct LoggedEventTests {
    @Test func membersAreReadTyped() throws {
        let line =
            #"{"seq":12,"event":"trade","symbol":"BTC\/EUR","price":"30001.50","qty":"0.50","maker":7,"#
            + #""taker":18446744073709551615,"side":"sell","maker_account":"\u00e9","taker_account":"bob","#
            + #""ts":1767364200000258931,"nested":{"price":1},"list":[1]}"#
        let event = try #require(LoggedEvent(line))
        #expect(event.kind == .trade)
        #expect(event.seq == 12)
        #expect(event.symbol == "BTC/EUR", "an escaped value is decoded")
        #expect(event.price == FixedDecimal(mantissa: 300_015, scale: 1))
        #expect(event.qty.map(Amount.init) == Amount("0.5"))
        #expect(event.maker == 7)
        #expect(event.taker == UInt64.max)
        #expect(event.side == .sell)
        #expect(event.makerAccount == "é")
        #expect(event.takerAccount == "bob")
        #expect(event.ts == 1_767_364_200_000_258_931)
        #expect(event.id == nil && event.account == nil && event.prevPrice == nil)
    }

    @Test func everyMemberOfTheContractIsRead() throws {
        let line =
            #"{"seq":3,"event":"amended","id":9,"symbol":"S","side":"buy","type":"limit","tif":"post_only","#
            + #""account":"a","reason":"user","op":"amend","priority":"kept","price":"2","qty":"1","#
            + #""prev_price":"2.5","prev_qty":"4"}"#
        let event = try #require(LoggedEvent(line))
        #expect(event.kind == .amended && event.id == 9 && event.type == .limit && event.tif == .postOnly)
        #expect(event.account == "a" && event.reason == "user" && event.op == "amend" && event.priority == "kept")
        #expect(event.prevPrice == FixedDecimal(mantissa: 25, scale: 1))
        #expect(event.prevQty == FixedDecimal(mantissa: 4, scale: 0))
    }

    @Test func keysAreMatchedWholeAndAsWritten() throws {
        let event = try #require(LoggedEvent(#"{"acc\u006funt":"x","i":1,"ids":2,"seqs":3,"even":"trade"}"#))
        #expect(event.account == nil, "an escaped key is not unescaped")
        #expect(event.id == nil && event.seq == nil && event.kind == nil)
    }

    @Test func theLastOfARepeatedKeyCounts() throws {
        let event = try #require(LoggedEvent(#"{"event":"accepted","event":"rejected"}"#))
        #expect(event.kind == .rejected)
    }

    @Test func valuesOutOfRangeOrOfTheWrongShapeAreLeftOut() throws {
        let event = try #require(
            LoggedEvent(
                #"{"seq":-4,"id":18446744073709551616,"maker":-1,"taker":"7x","ts":9223372036854775808,"#
                    + #""qty":"1e3","price":true,"event":"halted","symbol":null}"#
            )
        )
        #expect(event.seq == -4)
        #expect(event.id == nil, "above UInt64.max")
        #expect(event.maker == nil && event.taker == nil)
        #expect(event.ts == nil, "above Int64.max")
        #expect(event.qty == nil && event.price == nil && event.symbol == nil)
        #expect(event.kind == nil, "a kind serve does not know")
        #expect(try #require(LoggedEvent(#"{"ts":-9223372036854775808}"#)).ts == Int64.min)
    }

    @Test func sideTypeAndTimeInForceAreReadOnlyAsMatchSpellsThem() throws {
        let spelled = try #require(LoggedEvent(#"{"side":"sell","type":"market","tif":"fok"}"#))
        #expect(spelled.side == .sell && spelled.type == .market && spelled.tif == .fok)
        let other = try #require(LoggedEvent(#"{"side":"SELL","type":"stop","tif":"postOnly"}"#))
        #expect(other.side == nil && other.type == nil && other.tif == nil)
    }

    @Test func aLineThatIsNotOneObjectIsRefused() {
        #expect(LoggedEvent(#"{"event":"accepted""#) == nil)
        #expect(LoggedEvent("") == nil)
        #expect(LoggedEvent("[1,2]") == nil)
    }

    @Test func aSegmentsLinesAreReadInOrderEachWithItsText() {
        let body =
            #"{"seq":1,"event":"accepted"}"# + "\n\n" + "not json\n" + #"{"seq":2,"event":"trade"}"# + "\n"
            + #"{"seq":3,"event":"canceled"}"#
        let lines = LoggedLines(ndjson: Array(body.utf8))
        #expect(lines.events.map(\.seq) == [1, 2, 3], "the blank line and the one that is not JSON left out")
        #expect(lines.events.map(\.kind) == [.accepted, .trade, .canceled])
        #expect(
            lines.texts == [
                #"{"seq":1,"event":"accepted"}"#, #"{"seq":2,"event":"trade"}"#, #"{"seq":3,"event":"canceled"}"#,
            ],
            "each text as written, the last one without a newline after it"
        )
        #expect(LoggedLines(ndjson: []).events.isEmpty)
        #expect(LoggedLines(ndjson: Array("\n\n".utf8)).texts.isEmpty)
    }
}
