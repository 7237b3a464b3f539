import Testing

@testable import Server

/// serve's reading of one event line: every member by its key, strings unescaped, numbers as written.
@Suite struct EventFieldsTests {
    @Test func membersReadByKey() throws {
        let line =
            #"{"seq":12,"event":"trade","symbol":"BTC\/EUR","acc\u0065":"x","qty":"0.50","maker":7,"#
            + #""nested":{"a":1},"e":"\u00e9"}"#
        let event = try #require(EventFields(line))
        #expect(event["event"] == "trade")
        #expect(event.int("seq") == 12)
        #expect(event.uint("maker") == 7)
        #expect(event["symbol"] == "BTC/EUR", "an escaped value is decoded")
        #expect(event["e"] == "é")
        #expect(event.amount("qty") == Amount("0.5"))
        #expect(event["acce"] == nil, "keys are matched as written")
        #expect(event["acc\\u0065"] == "x")
        #expect(event["nested"] == nil, "a value that is neither a string nor a number is left out")
        #expect(event["missing"] == nil)
        #expect(event["even"] == nil && event["events"] == nil, "a key is matched whole")
    }

    @Test func theLastOfARepeatedKeyCounts() throws {
        let event = try #require(EventFields(#"{"event":"accepted","event":"rejected"}"#))
        #expect(event["event"] == "rejected")
    }

    @Test func aLineThatIsNotOneObjectIsRefused() {
        #expect(EventFields(#"{"event":"accepted""#) == nil)
        #expect(EventFields("") == nil)
        #expect(EventFields("[1,2]") == nil)
    }
}
