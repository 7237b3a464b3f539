import CastleCore
import CastleSupport
import Codecs
import Testing

@Suite struct InstrumentsFileTests {
    @Test func loadsDecimalsInferredAndExplicit() throws {
        let dir = TempDir()
        let path = dir.write(
            "instruments.ndjson",
            """
            {"symbol":"BTC-USD","tick":"0.01","lot":"0.0001"}

            {"symbol":"ETH-USD","tick":"0.05","lot":"0.001","price_decimals":4,"qty_decimals":3}
              \t
            {"symbol":"DOGE-USD","tick":0.00001,"lot":1}\r
            {"symbol":"IDX","tick":"25","lot":"10","price_decimals":0,"qty_decimals":2}
            """
        )
        var symbols = NameTable()
        _ = symbols.intern("ALREADY")
        let instruments = try InstrumentsFile.load(path: path, symbols: &symbols)
        #expect(symbols.count == 5)
        #expect(symbols.lookup("BTC-USD") == 1)
        #expect(symbols.lookup("ETH-USD") == 2)
        #expect(symbols.lookup("DOGE-USD") == 3)
        #expect(symbols.lookup("IDX") == 4)
        #expect(
            instruments == [
                1: Instrument(priceDecimals: 2, qtyDecimals: 4, tick: 1, lot: 1),
                2: Instrument(priceDecimals: 4, qtyDecimals: 3, tick: 500, lot: 1),
                3: Instrument(priceDecimals: 5, qtyDecimals: 0, tick: 1, lot: 1),
                4: Instrument(priceDecimals: 0, qtyDecimals: 2, tick: 25, lot: 1000),
            ]
        )
    }

    @Test func trailingZerosInTickDoNotAddDecimals() throws {
        let dir = TempDir()
        let path = dir.write("i", #"{"symbol":"X","tick":"0.50","lot":"1.000"}"#)
        var symbols = NameTable()
        let instruments = try InstrumentsFile.load(path: path, symbols: &symbols)
        #expect(instruments == [0: Instrument(priceDecimals: 1, qtyDecimals: 0, tick: 5, lot: 1)])
    }

    struct Bad: Sendable, CustomTestStringConvertible {
        var content: String
        var line: Int
        /// A phrase the message must contain after `path:line: `.
        var phrase: String
        var testDescription: String { content.debugDescription }
    }

    static let bad: [Bad] = [
        Bad(content: #"{"tick":"0.01","lot":"1"}"#, line: 1, phrase: "missing symbol"),
        Bad(
            content: "{\"symbol\":\"A\",\"tick\":\"1\",\"lot\":\"1\"}\n{\"tick\":\"1\",\"lot\":\"1\"}",
            line: 2,
            phrase: "missing symbol"
        ),
        Bad(content: #"{"symbol":"A","tick":"0","lot":"1"}"#, line: 1, phrase: "tick"),
        Bad(content: #"{"symbol":"A","tick":"0.00","lot":"1"}"#, line: 1, phrase: "tick"),
        Bad(content: #"{"symbol":"A","tick":"-0.01","lot":"1"}"#, line: 1, phrase: "tick"),
        Bad(content: #"{"symbol":"A","lot":"1"}"#, line: 1, phrase: "tick"),
        Bad(content: #"{"symbol":"A","tick":"abc","lot":"1"}"#, line: 1, phrase: "tick"),
        Bad(content: #"{"symbol":"A","tick":"1e-2","lot":"1"}"#, line: 1, phrase: "tick"),
        Bad(content: #"{"symbol":"A","tick":"1","lot":"0"}"#, line: 1, phrase: "lot"),
        Bad(content: #"{"symbol":"A","tick":"1"}"#, line: 1, phrase: "lot"),
        Bad(content: #"{"symbol":"A","tick":"1","lot":"1","foo":2}"#, line: 1, phrase: #"unknown field "foo""#),
        Bad(
            content:
                "{\"symbol\":\"A\",\"tick\":\"1\",\"lot\":\"1\"}\n\n{\"symbol\":\"A\",\"tick\":\"2\",\"lot\":\"1\"}",
            line: 3,
            phrase: "symbol declared twice"
        ),
        Bad(
            content: #"{"symbol":"A","tick":"0.001","lot":"1","price_decimals":2}"#,
            line: 1,
            phrase: "tick has more decimals than price_decimals"
        ),
        Bad(
            content: #"{"symbol":"A","tick":"1","lot":"0.5","qty_decimals":0}"#,
            line: 1,
            phrase: "lot has more decimals than qty_decimals"
        ),
        Bad(content: #"{"symbol":"A","tick":"1","lot":"1","price_decimals":19}"#, line: 1, phrase: "decimals"),
        Bad(content: #"{"symbol":"A","tick":"1","lot":"1","qty_decimals":-1}"#, line: 1, phrase: "decimals"),
        Bad(content: #"{"symbol":"A","tick":"1","lot":"1","price_decimals":"2"}"#, line: 1, phrase: "price_decimals"),
        Bad(content: #"{"symbol":"A","tick":"1","lot":"1","price_decimals":2.5}"#, line: 1, phrase: "price_decimals"),
        Bad(content: #"{"symbol":"","tick":"1","lot":"1"}"#, line: 1, phrase: "symbol"),
        Bad(content: #"{"symbol":5,"tick":"1","lot":"1"}"#, line: 1, phrase: "symbol"),
        Bad(content: "symbol=A tick=1", line: 1, phrase: "not a JSON object"),
        Bad(content: "{\"symbol\":\"A\",\"tick\":\"1\",\"lot\":\"1\"}\n[1,2]\n", line: 2, phrase: "not a JSON object"),
        Bad(content: #"{"symbol":"A","tick":"1","lot":"1""#, line: 1, phrase: "not a JSON object"),
    ]

    @Test(arguments: bad)
    func errorsNameFileAndLine(_ c: Bad) {
        let dir = TempDir()
        let path = dir.write("instruments.ndjson", c.content)
        var symbols = NameTable()
        let error = expectCastleError { () throws(CastleError) in
            try InstrumentsFile.load(path: path, symbols: &symbols)
        }
        #expect(error?.kind == .dataError)
        let message = error?.message ?? ""
        #expect(message.hasPrefix("\(path):\(c.line): "), "\(message)")
        #expect(message.contains(c.phrase), "\(message)")
    }

    @Test(arguments: ["", "\n\n", "  \n\t\n"])
    func emptyFileIsAnError(_ content: String) {
        let dir = TempDir()
        let path = dir.write("instruments.ndjson", content)
        var symbols = NameTable()
        let error = expectCastleError { () throws(CastleError) in
            try InstrumentsFile.load(path: path, symbols: &symbols)
        }
        #expect(error?.kind == .dataError)
        #expect(error?.message.hasPrefix(path + ":") == true, "\(error?.message ?? "")")
    }

    @Test func missingFileIsNoInput() {
        let dir = TempDir()
        var symbols = NameTable()
        let path = dir.file("nope.ndjson")
        let error = expectCastleError { () throws(CastleError) in
            try InstrumentsFile.load(path: path, symbols: &symbols)
        }
        #expect(error?.kind == .noInput)
        #expect(error?.message.hasPrefix(path) == true)
    }

    @Test func lineTooLong() {
        let dir = TempDir()
        let path = dir.write(
            "instruments.ndjson",
            "{\"symbol\":\"A\",\"tick\":\"1\",\"lot\":\"1\"}\n" + String(repeating: " ", count: 5000) + "{}\n"
        )
        var symbols = NameTable()
        let error = expectCastleError { () throws(CastleError) in
            try InstrumentsFile.load(path: path, symbols: &symbols)
        }
        #expect(error?.kind == .dataError)
        #expect(error?.message.hasPrefix("\(path):2: ") == true, "\(error?.message ?? "")")
    }
}
