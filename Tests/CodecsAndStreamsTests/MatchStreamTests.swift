import CastleCore
import CastleSupport
import Foundation
import Pipeline
import Testing

func matchOptions(
    input: String,
    output: String,
    bookOut: String? = nil,
    instruments: String? = nil,
    strict: Bool = false
)
    -> MatchStream.Options
{
    var options = MatchStream.Options()
    options.inputPath = input
    options.outputPath = output
    options.bookOutPath = bookOut
    options.instrumentsPath = instruments
    options.strict = strict
    options.showProgress = false
    return options
}

@Suite struct MatchStreamTests {
    static let smallStream = """
        {"op":"new","id":1,"symbol":"BTC-USD","side":"sell","price":"101.5","qty":"2","account":"alice","ts":1000}
        {"op":"new","id":2,"symbol":"BTC-USD","side":"buy","price":102,"qty":"0.5","account":"bob","ts":1001}
        {"op":"cancel","id":99}
        not json

        {"op":"amend","id":1,"qty":"1"}
        {"op":"new","id":3,"symbol":"BTC-USD","side":"buy","price":"100","qty":"1","tif":"ioc","bogus":1}
        {"op":"cancel","id":1,"ts":1005}

        """

    @Test func smallStreamEndToEnd() throws {
        let dir = TempDir()
        let input = dir.write("orders.ndjson", Self.smallStream)
        let output = dir.file("events.ndjson")
        let summary = try MatchStream.run(matchOptions(input: input, output: output))
        #expect(
            readText(output) == """
                {"seq":1,"event":"accepted","id":1,"symbol":"BTC-USD","side":"sell","type":"limit","tif":"gtc","price":"101.5","qty":"2","account":"alice","ts":1000}
                {"seq":2,"event":"accepted","id":2,"symbol":"BTC-USD","side":"buy","type":"limit","tif":"gtc","price":"102","qty":"0.5","account":"bob","ts":1001}
                {"seq":3,"event":"trade","symbol":"BTC-USD","price":"101.5","qty":"0.5","maker":1,"taker":2,"side":"buy","maker_account":"alice","taker_account":"bob","ts":1001}
                {"seq":4,"event":"rejected","op":"cancel","id":99,"reason":"unknown_order","line":3}
                {"seq":5,"event":"rejected","reason":"malformed","line":4}
                {"seq":6,"event":"amended","id":1,"price":"101.5","qty":"1","symbol":"BTC-USD","side":"sell","prev_price":"101.5","prev_qty":"1.5","priority":"kept"}
                {"seq":7,"event":"rejected","op":"new","id":3,"reason":"invalid","line":7}
                {"seq":8,"event":"canceled","id":1,"qty":"1","reason":"user","symbol":"BTC-USD","side":"sell","price":"101.5","ts":1005}

                """
        )
        #expect(summary.commands == 7)
        #expect(summary.events == 8)
        #expect(summary.trades == 1)
        #expect(summary.rejected == 3)
        #expect(summary.firstInputError == "\(input):4: malformed (not a JSON object)")
        #expect(summary.restingOrders == 0)
        #expect(dir.listing() == ["events.ndjson", "orders.ndjson"])
    }

    @Test func sameInputSameBytesAndGzipAlike() throws {
        let dir = TempDir()
        let input = dir.write("orders.ndjson", Self.smallStream)
        let compressed = try gzipFile(input)
        _ = try MatchStream.run(matchOptions(input: input, output: dir.file("a.ndjson")))
        _ = try MatchStream.run(matchOptions(input: input, output: dir.file("b.ndjson")))
        var options = matchOptions(input: compressed, output: dir.file("c.ndjson"))
        options.strict = false
        let summary = try MatchStream.run(options)
        let a = try #require(readBytes(dir.file("a.ndjson")))
        #expect(!a.isEmpty)
        #expect(readBytes(dir.file("b.ndjson")) == a)
        #expect(readBytes(dir.file("c.ndjson")) == a)
        #expect(summary.firstInputError == "\(compressed):4: malformed (not a JSON object)")
    }

    @Test func strictStopsAtMalformedLineAndLeavesNoOutput() throws {
        let dir = TempDir()
        let input = dir.write(
            "orders.ndjson",
            """
            {"op":"new","id":1,"symbol":"BTC-USD","side":"sell","price":"101.5","qty":"2"}
            {"op":"cancel","id":99}
            {"op":"new","id":2,
            {"op":"new","id":3,"symbol":"BTC-USD","side":"buy","price":"102","qty":"1"}

            """
        )
        let output = dir.file("events.ndjson")
        let book = dir.file("book.json")
        let error = expectCastleError { () throws(CastleError) in
            try MatchStream.run(matchOptions(input: input, output: output, bookOut: book, strict: true))
        }
        #expect(error?.kind == .dataError)
        #expect(error?.message.hasPrefix("\(input):3: ") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("malformed") == true)
        #expect(!fileExists(output))
        #expect(!fileExists(book))
        #expect(dir.listing() == ["orders.ndjson"])
    }

    @Test func strictStopsAtInvalidCommand() throws {
        let dir = TempDir()
        let input = dir.write(
            "orders.ndjson",
            """
            {"op":"cancel","id":5}
            {"op":"new","id":1,"symbol":"BTC-USD","side":"sell","price":"1","qty":"2","colour":"red"}
            """
        )
        let output = dir.file("events.ndjson")
        let error = expectCastleError { () throws(CastleError) in
            try MatchStream.run(matchOptions(input: input, output: output, strict: true))
        }
        #expect(error?.kind == .dataError)
        #expect(error?.message == "\(input):2: invalid (unknown field)")
        #expect(!fileExists(output))
    }

    @Test func strictAcceptsAValidStream() throws {
        // unknown_order is not an input error: strict goes on.
        let dir = TempDir()
        let input = dir.write("orders.ndjson", #"{"op":"cancel","id":5}"# + "\n")
        let output = dir.file("events.ndjson")
        let summary = try MatchStream.run(matchOptions(input: input, output: output, strict: true))
        #expect(summary.rejected == 1)
        #expect(summary.firstInputError == nil)
        #expect(
            readText(output) == #"{"seq":1,"event":"rejected","op":"cancel","id":5,"reason":"unknown_order","line":1}"#
                + "\n"
        )
    }

    @Test func bookOutMatchesTheSpecExample() throws {
        let dir = TempDir()
        let input = dir.write(
            "orders.ndjson",
            """
            {"op":"new","id":17,"symbol":"BTC-USD","side":"buy","price":"101.25","qty":"0.5"}
            {"op":"new","id":21,"symbol":"BTC-USD","side":"buy","price":"101.250","qty":"1.0"}
            {"op":"new","id":9,"symbol":"BTC-USD","side":"sell","price":"101.5","qty":"2"}

            """
        )
        let output = dir.file("events.ndjson")
        let book = dir.file("book.json")
        let summary = try MatchStream.run(matchOptions(input: input, output: output, bookOut: book))
        #expect(summary.restingOrders == 3)
        #expect(
            readText(book)
                == #"{"BTC-USD": {"bids": [["101.25", [[17, "0.5"], [21, "1"]]]], "asks": [["101.5", [[9, "2"]]]]}}"#
                + "\n"
        )
    }

    @Test func bookOutSortsSymbolsOrdersLevelsAndDropsEmptyBooks() throws {
        let dir = TempDir()
        let input = dir.write(
            "orders.ndjson",
            """
            {"op":"new","id":1,"symbol":"ZEC-USD","side":"buy","price":"10","qty":"1"}
            {"op":"new","id":2,"symbol":"ETH-USD","side":"sell","price":"2001","qty":"3"}
            {"op":"new","id":3,"symbol":"ETH-USD","side":"sell","price":"2000.5","qty":"1"}
            {"op":"new","id":4,"symbol":"BTC-USD","side":"buy","price":"99","qty":"0.1"}
            {"op":"new","id":5,"symbol":"BTC-USD","side":"buy","price":"100","qty":"0.2"}
            {"op":"new","id":6,"symbol":"ETH-USD","side":"sell","price":"2000.5","qty":"4"}
            {"op":"cancel","id":1}
            {"op":"new","id":7,"symbol":"BTC-USD","side":"sell","price":"100","qty":"0.05"}

            """
        )
        let book = dir.file("book.json")
        _ = try MatchStream.run(matchOptions(input: input, output: dir.file("events.ndjson"), bookOut: book))
        #expect(
            readText(book)
                == #"{"BTC-USD": {"bids": [["100", [[5, "0.15"]]], ["99", [[4, "0.1"]]]], "asks": []}, "ETH-USD": {"bids": [], "asks": [["2000.5", [[3, "1"], [6, "4"]]], ["2001", [[2, "3"]]]]}}"#
                + "\n"
        )
    }

    @Test func bookOutOfAnEmptyBook() throws {
        let dir = TempDir()
        let input = dir.write(
            "orders.ndjson",
            """
            {"op":"new","id":1,"symbol":"BTC-USD","side":"buy","price":"10","qty":"1"}
            {"op":"cancel","id":1}
            """
        )
        let book = dir.file("book.json")
        _ = try MatchStream.run(matchOptions(input: input, output: dir.file("events.ndjson"), bookOut: book))
        #expect(readText(book) == "{}\n")
    }

    @Test func instrumentsDecideDecimalsAndSymbols() throws {
        let dir = TempDir()
        let instruments = dir.write(
            "instruments.ndjson",
            #"{"symbol":"BTC-USD","tick":"0.05","lot":"0.001","price_decimals":3}"# + "\n"
        )
        let input = dir.write(
            "orders.ndjson",
            """
            {"op":"new","id":1,"symbol":"BTC-USD","side":"sell","price":"100.1","qty":"2"}
            {"op":"new","id":2,"symbol":"BTC-USD","side":"buy","price":"100.12","qty":"1"}
            {"op":"new","id":3,"symbol":"BTC-USD","side":"buy","price":"100.2","qty":"0.0001"}
            {"op":"new","id":4,"symbol":"ETH-USD","side":"buy","price":"1","qty":"1"}
            {"op":"new","id":5,"symbol":"BTC-USD","side":"buy","price":"100.15","qty":"0.5"}

            """
        )
        let output = dir.file("events.ndjson")
        let book = dir.file("book.json")
        let summary = try MatchStream.run(
            matchOptions(input: input, output: output, bookOut: book, instruments: instruments)
        )
        #expect(
            readText(output) == """
                {"seq":1,"event":"accepted","id":1,"symbol":"BTC-USD","side":"sell","type":"limit","tif":"gtc","price":"100.1","qty":"2"}
                {"seq":2,"event":"rejected","op":"new","id":2,"reason":"invalid","line":2}
                {"seq":3,"event":"rejected","op":"new","id":3,"reason":"invalid","line":3}
                {"seq":4,"event":"rejected","op":"new","id":4,"reason":"invalid","line":4}
                {"seq":5,"event":"accepted","id":5,"symbol":"BTC-USD","side":"buy","type":"limit","tif":"gtc","price":"100.15","qty":"0.5"}
                {"seq":6,"event":"trade","symbol":"BTC-USD","price":"100.1","qty":"0.5","maker":1,"taker":5,"side":"buy"}

                """
        )
        #expect(summary.firstInputError?.hasPrefix("\(input):2: invalid") == true)
        #expect(readText(book) == #"{"BTC-USD": {"bids": [], "asks": [["100.1", [[1, "1.5"]]]]}}"# + "\n")
    }

    @Test func tooLongLineIsRejectedAsMalformed() throws {
        let dir = TempDir()
        let input = dir.write(
            "orders.ndjson",
            "{\"op\":\"cancel\",\"id\":1}\n" + String(repeating: " ", count: 1_100_000)
                + "{}\n{\"op\":\"cancel\",\"id\":2}\n"
        )
        let output = dir.file("events.ndjson")
        _ = try MatchStream.run(matchOptions(input: input, output: output))
        #expect(
            readText(output) == """
                {"seq":1,"event":"rejected","op":"cancel","id":1,"reason":"unknown_order","line":1}
                {"seq":2,"event":"rejected","reason":"malformed","line":2}
                {"seq":3,"event":"rejected","op":"cancel","id":2,"reason":"unknown_order","line":3}

                """
        )
    }

    @Test func missingInputCreatesNoOutput() {
        let dir = TempDir()
        let output = dir.file("events.ndjson")
        let error = expectCastleError { () throws(CastleError) in
            try MatchStream.run(matchOptions(input: dir.file("missing.ndjson"), output: output))
        }
        #expect(error?.kind == .noInput)
        #expect(dir.listing().isEmpty)
    }

    @Test func badInstrumentsFileStopsBeforeReading() {
        let dir = TempDir()
        let instruments = dir.write("instruments.ndjson", #"{"symbol":"A","tick":"0","lot":"1"}"#)
        let input = dir.write("orders.ndjson", "")
        let output = dir.file("events.ndjson")
        let error = expectCastleError { () throws(CastleError) in
            try MatchStream.run(matchOptions(input: input, output: output, instruments: instruments))
        }
        #expect(error?.kind == .dataError)
        #expect(error?.message.hasPrefix("\(instruments):1: ") == true)
        #expect(!fileExists(output))
    }

    @Test func outputInMissingDirectoryIsCantCreate() {
        let dir = TempDir()
        let input = dir.write("orders.ndjson", "")
        let error = expectCastleError { () throws(CastleError) in
            try MatchStream.run(matchOptions(input: input, output: dir.file("nope/events.ndjson")))
        }
        #expect(error?.kind == .cantCreate)
    }

    @Test func bookOutOntoADirectoryFailsWithoutLeavingTemporaryFiles() throws {
        let dir = TempDir()
        let input = dir.write("orders.ndjson", #"{"op":"new","id":1,"symbol":"A","side":"buy","price":"1","qty":"1"}"#)
        let bookDir = dir.file("book")
        try FileManager.default.createDirectory(atPath: bookDir, withIntermediateDirectories: false)
        let error = expectCastleError { () throws(CastleError) in
            try MatchStream.run(matchOptions(input: input, output: dir.file("events.ndjson"), bookOut: bookDir))
        }
        #expect(error?.kind == .cantCreate)
        #expect(error?.message.hasPrefix(bookDir + ":") == true, "\(error?.message ?? "")")
        #expect(!dir.listing().contains { $0.contains(".tmp-") }, "\(dir.listing())")
    }

    @Test func emptyInputGivesEmptyOutput() throws {
        let dir = TempDir()
        let input = dir.write("orders.ndjson", "\n\n")
        let output = dir.file("events.ndjson")
        let summary = try MatchStream.run(matchOptions(input: input, output: output))
        #expect(readText(output) == "")
        #expect(summary.commands == 0)
        #expect(summary.events == 0)
    }
}
