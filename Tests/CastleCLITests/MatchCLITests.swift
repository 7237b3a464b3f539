import Foundation
import Testing

/// `castle match` as users run it: the real binary on files and pipes.
@Suite struct MatchCLITests {
    static let stream = """
        {"op":"new","id":1,"symbol":"BTC-USD","side":"sell","price":"101.5","qty":"2","account":"m1","ts":10}
        {"op":"new","id":2,"symbol":"BTC-USD","side":"sell","price":"101.25","qty":"1","account":"m2"}
        {"op":"new","id":3,"symbol":"BTC-USD","side":"buy","price":"102","qty":"1.5","account":"t1","ts":30}
        {"op":"amend","id":1,"qty":"1"}
        {"op":"cancel","id":2}
        not json
        {"op":"new","id":4,"symbol":"BTC-USD","side":"buy","type":"market","qty":"5","tif":"ioc"}
        {"op":"new","id":5,"symbol":"BTC-USD","side":"buy","price":"100","qty":"1"}

        """

    /// Every event kind, with the exact bytes the contract prescribes.
    static let expectedEvents = """
        {"seq":1,"event":"accepted","id":1,"symbol":"BTC-USD","side":"sell","type":"limit","tif":"gtc","price":"101.5","qty":"2","account":"m1","ts":10}
        {"seq":2,"event":"accepted","id":2,"symbol":"BTC-USD","side":"sell","type":"limit","tif":"gtc","price":"101.25","qty":"1","account":"m2"}
        {"seq":3,"event":"accepted","id":3,"symbol":"BTC-USD","side":"buy","type":"limit","tif":"gtc","price":"102","qty":"1.5","account":"t1","ts":30}
        {"seq":4,"event":"trade","symbol":"BTC-USD","price":"101.25","qty":"1","maker":2,"taker":3,"side":"buy","maker_account":"m2","taker_account":"t1","ts":30}
        {"seq":5,"event":"trade","symbol":"BTC-USD","price":"101.5","qty":"0.5","maker":1,"taker":3,"side":"buy","maker_account":"m1","taker_account":"t1","ts":30}
        {"seq":6,"event":"amended","id":1,"price":"101.5","qty":"1","symbol":"BTC-USD","side":"sell","prev_price":"101.5","prev_qty":"1.5","priority":"kept"}
        {"seq":7,"event":"rejected","op":"cancel","id":2,"reason":"unknown_order","line":5}
        {"seq":8,"event":"rejected","reason":"malformed","line":6}
        {"seq":9,"event":"accepted","id":4,"symbol":"BTC-USD","side":"buy","type":"market","tif":"ioc","qty":"5"}
        {"seq":10,"event":"trade","symbol":"BTC-USD","price":"101.5","qty":"1","maker":1,"taker":4,"side":"buy","maker_account":"m1"}
        {"seq":11,"event":"canceled","id":4,"qty":"4","reason":"market","symbol":"BTC-USD","side":"buy"}
        {"seq":12,"event":"accepted","id":5,"symbol":"BTC-USD","side":"buy","type":"limit","tif":"gtc","price":"100","qty":"1"}

        """

    @Test func fileToFileGivesTheContractsEventsAndBook() async throws {
        let dir = try TemporaryDirectory()
        let input = try dir.write("in.ndjson", Self.stream)
        let result = try await CastleProcess.run([
            "match", "-i", input, "-o", dir.path("out.ndjson"), "--book-out", dir.path("book.json"),
        ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try dir.read("out.ndjson") == Self.expectedEvents)
        #expect(try dir.read("book.json") == "{\"BTC-USD\": {\"bids\": [[\"100\", [[5, \"1\"]]]], \"asks\": []}}\n")
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains("8 commands"), "summary on stderr: \(result.stderr)")
        #expect(result.stderr.contains("line 6") || result.stderr.contains(":6: malformed"), "\(result.stderr)")
    }

    @Test func stdinToStdoutIsTheSameAsFiles() async throws {
        let result = try await CastleProcess.run(["match", "--quiet"], stdin: Data(Self.stream.utf8))
        #expect(result.status == 0)
        #expect(result.stdoutText == Self.expectedEvents)
        #expect(result.stderr.isEmpty, "--quiet writes nothing to stderr: \(result.stderr)")
    }

    @Test func gzipAndZstdInputAreReadByContent() async throws {
        let dir = try TemporaryDirectory()
        let plain = try dir.write("in.ndjson", Self.stream)
        _ = try await CastleProcess.shell(["/bin/sh", "-c", "gzip -c '\(plain)' > '\(dir.path("in.gz"))'"])
        let gz = try await CastleProcess.run(["match", "-q", "-i", dir.path("in.gz")])
        #expect(gz.status == 0, "\(gz.stderr)")
        #expect(gz.stdoutText == Self.expectedEvents)
        let piped = try await CastleProcess.run(
            ["match", "-q"],
            stdin: try Data(contentsOf: URL(fileURLWithPath: dir.path("in.gz")))
        )
        #expect(piped.stdoutText == Self.expectedEvents, "compressed stdin is recognised too")
        if (try? await CastleProcess.shell(["/bin/sh", "-c", "command -v zstd"]))?.status == 0 {
            _ = try await CastleProcess.shell(["/bin/sh", "-c", "zstd -q -c '\(plain)' > '\(dir.path("in.zst"))'"])
            let zst = try await CastleProcess.run(["match", "-q", "-i", dir.path("in.zst")])
            #expect(zst.stdoutText == Self.expectedEvents)
        }
    }

    @Test func truncatedGzipIsADataErrorAndLeavesNoOutput() async throws {
        let dir = try TemporaryDirectory()
        let generated = try await CastleProcess.run([
            "generate", "orders", "--count", "20000", "-o", dir.path("day.ndjson"),
        ])
        #expect(generated.status == 0)
        _ = try await CastleProcess.shell([
            "/bin/sh", "-c", "gzip -c '\(dir.path("day.ndjson"))' | head -c 20000 > '\(dir.path("cut.gz"))'",
        ])
        let result = try await CastleProcess.run(["match", "-i", dir.path("cut.gz"), "-o", dir.path("out.ndjson")])
        #expect(result.status == 65)
        #expect(result.stderr.contains(dir.path("cut.gz")), "names the file: \(result.stderr)")
        #expect(try dir.contents() == ["cut.gz", "day.ndjson"], "no output, no temporary file")
    }

    @Test func strictStopsAtTheFirstBadLineWithFileAndLine() async throws {
        let dir = try TemporaryDirectory()
        let input = try dir.write("in.ndjson", Self.stream)
        let result = try await CastleProcess.run(["match", "--strict", "-i", input, "-o", dir.path("out.ndjson")])
        #expect(result.status == 65)
        #expect(result.stderr.contains("\(input):6: malformed"), "\(result.stderr)")
        #expect(try dir.contents() == ["in.ndjson"], "nothing half-written")
    }

    /// JSON text is UTF-8: a line with other bytes in a string is `malformed`, and never echoed into
    /// the events (it used to be, byte for byte, into a symbol).
    @Test func aLineThatIsNotUTF8IsMalformed() async throws {
        var input = Data(#"{"op":"new","id":1,"symbol":"B"#.utf8)
        input.append(0xFF)
        input.append(contentsOf: Array(#"X","side":"buy","price":"1","qty":"1"}"#.utf8) + [0x0A])
        let result = try await CastleProcess.run(["match"], stdin: input)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.lines == [#"{"seq":1,"event":"rejected","reason":"malformed","line":1}"#])
        #expect(result.stderr.contains(":1: malformed"), "\(result.stderr)")
    }

    @Test func strictStopsOnInvalidFieldsToo() async throws {
        let result = try await CastleProcess.run(
            ["match", "--strict"],
            stdin: Data(
                "{\"op\":\"new\",\"id\":1,\"symbol\":\"X\",\"side\":\"up\",\"price\":\"1\",\"qty\":\"1\"}\n".utf8
            )
        )
        #expect(result.status == 65)
        #expect(result.stderr.contains("<stdin>:1: invalid (side is not buy or sell)"), "\(result.stderr)")
    }

    @Test func unknownOrdersAreNotInputErrorsEvenWhenStrict() async throws {
        let result = try await CastleProcess.run(
            ["match", "--strict", "-q"],
            stdin: Data("{\"op\":\"cancel\",\"id\":9}\n".utf8)
        )
        #expect(result.status == 0)
        #expect(
            result.stdoutText
                == "{\"seq\":1,\"event\":\"rejected\",\"op\":\"cancel\",\"id\":9,\"reason\":\"unknown_order\",\"line\":1}\n"
        )
    }

    @Test func unreadableInputExits66WithThePath() async throws {
        let result = try await CastleProcess.run(["match", "-i", "/nonexistent/day.ndjson"])
        #expect(result.status == 66)
        #expect(result.stderr.contains("/nonexistent/day.ndjson"))
    }

    @Test func uncreatableOutputExits73() async throws {
        let result = try await CastleProcess.run(
            ["match", "-o", "/nonexistent/dir/out.ndjson"],
            stdin: Data(Self.stream.utf8)
        )
        #expect(result.status == 73)
        #expect(result.stderr.contains("/nonexistent/dir/out.ndjson"))
    }

    @Test func hugeAndHostileValuesAreRejectedNeverTrapped() async throws {
        let lines = [
            #"{"op":"new","id":1,"symbol":"X","side":"buy","price":"92233720368.54775808","qty":"1"}"#,
            #"{"op":"new","id":18446744073709551616,"symbol":"X","side":"buy","price":"1","qty":"1"}"#,
            #"{"op":"new","id":3,"symbol":"X","side":"buy","price":1e3,"qty":"1"}"#,
            #"{"op":"new","id":4,"symbol":"X","side":"buy","price":"1","qty":"99999999999999999999999"}"#,
            #"{"op":"new","id":5,"symbol":"X","side":"buy","price":"0.000000001","qty":"1"}"#,
            #"{"op":"new","id":6,"symbol":"X","side":"buy","price":"-1","qty":"1"}"#,
            #"{"op":"new","id":7,"symbol":"X","side":"buy","price":"1","qty":"0"}"#,
            #"{"op":"new","id":8,"symbol":"X","side":"buy","price":"1","qty":"1","extra":[[[[[]]]]]}"#,
            String(repeating: "[", count: 100_000),
            "\u{0}\u{1}\u{2}",
            #"{"op":"new","id":9,"symbol":"X","side":"buy","price":"92233720368.54775807","qty":"0.00000001"}"#,
        ]
        let result = try await CastleProcess.run(
            ["match", "-q"],
            stdin: Data((lines.joined(separator: "\n") + "\n").utf8)
        )
        #expect(result.status == 0, "\(result.stderr)")
        let out = result.lines
        #expect(out.count == 11)
        let reasons = out.prefix(10).map { line in
            line.components(separatedBy: "\"reason\":\"")[1].prefix(while: { $0 != "\"" })
        }
        #expect(
            reasons == [
                "invalid", "invalid", "invalid", "invalid", "invalid", "invalid", "invalid", "invalid", "malformed",
                "malformed",
            ]
        )
        #expect(
            out[1] == #"{"seq":2,"event":"rejected","op":"new","reason":"invalid","line":2}"#,
            "an id that cannot be read is not echoed"
        )
        #expect(
            out[10]
                == #"{"seq":11,"event":"accepted","id":9,"symbol":"X","side":"buy","type":"limit","tif":"gtc","price":"92233720368.54775807","qty":"0.00000001"}"#,
            "Int64.max at 8 decimals is accepted"
        )
    }

    @Test func sameInputGivesByteIdenticalOutput() async throws {
        let dir = try TemporaryDirectory()
        #expect(
            try await CastleProcess.run([
                "generate", "orders", "--seed", "11", "--count", "30000", "-o", dir.path("day.ndjson"),
            ]).status == 0
        )
        let first = try await CastleProcess.run([
            "match", "-q", "-i", dir.path("day.ndjson"), "--book-out", dir.path("b1.json"),
        ])
        let second = try await CastleProcess.run([
            "match", "-q", "-i", dir.path("day.ndjson"), "--book-out", dir.path("b2.json"),
        ])
        #expect(first.status == 0 && second.status == 0)
        #expect(first.stdout.count > 1_000_000)
        #expect(first.stdout == second.stdout)
        #expect(try dir.read("b1.json") == dir.read("b2.json"))
    }

    @Test func instrumentsRejectOffTickOffLotAndUnknownSymbols() async throws {
        let dir = try TemporaryDirectory()
        let instruments = try dir.write("i.ndjson", #"{"symbol":"BTC-USD","tick":"0.5","lot":"0.01"}"# + "\n")
        let stream = [
            #"{"op":"new","id":1,"symbol":"BTC-USD","side":"buy","price":"100.5","qty":"0.01"}"#,
            #"{"op":"new","id":2,"symbol":"BTC-USD","side":"buy","price":"100.2","qty":"0.01"}"#,
            #"{"op":"new","id":3,"symbol":"BTC-USD","side":"buy","price":"100","qty":"0.015"}"#,
            #"{"op":"new","id":4,"symbol":"ETH-USD","side":"buy","price":"100","qty":"1"}"#,
            #"{"op":"amend","id":1,"price":"100.25"}"#,
        ].joined(separator: "\n")
        let result = try await CastleProcess.run(["match", "--instruments", instruments], stdin: Data(stream.utf8))
        #expect(result.status == 0)
        #expect(result.lines.map { $0.contains("\"reason\":\"invalid\"") } == [false, true, true, true, true])
        #expect(
            result.stderr.contains("<stdin>:2: invalid (price is not a multiple of the tick size)"),
            "\(result.stderr)"
        )
        let strict = try await CastleProcess.run(
            ["match", "--strict", "--instruments", instruments],
            stdin: Data(stream.utf8)
        )
        #expect(strict.status == 65)
        #expect(strict.stderr.contains("<stdin>:2: invalid (price is not a multiple of the tick size)"))
    }

    @Test func aBadInstrumentsFileNamesItsLine() async throws {
        let dir = try TemporaryDirectory()
        let instruments = try dir.write(
            "i.ndjson",
            #"{"symbol":"A","tick":"0.5","lot":"1"}"# + "\n" + #"{"symbol":"B","tick":"0","lot":"1"}"# + "\n"
        )
        let result = try await CastleProcess.run(["match", "--instruments", instruments], stdin: Data())
        #expect(result.status == 65)
        #expect(result.stderr.contains("\(instruments):2: tick must be a positive decimal"), "\(result.stderr)")
    }

    @Test func aClosedPipeEndsQuietly() async throws {
        let command =
            "set -o pipefail; '\(CastleProcess.binary)' generate orders --count 2000000 | '\(CastleProcess.binary)' match -q | head -n 1"
        let result = try await CastleProcess.shell(["/bin/bash", "-c", command])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.lines.count == 1)
        #expect(result.stderr.isEmpty, "\(result.stderr)")
    }

    @Test func usageErrorsExit64AndHelpHasExamples() async throws {
        let bad = try await CastleProcess.run(["match", "--stp", "sometimes"])
        #expect(bad.status == 64)
        #expect(bad.stderr.contains("cancel_taker"))
        let help = try await CastleProcess.run(["match", "--help"])
        #expect(help.status == 0)
        #expect(help.stdoutText.contains("Examples:"))
    }
}

@Suite struct OutputTargetTests {
    /// A device or FIFO named with -o is written in place, never replaced by a renamed file.
    @Test func aFIFOStaysAFIFO() async throws {
        let dir = try TemporaryDirectory()
        let fifo = dir.path("events.fifo")
        #expect(try await CastleProcess.shell(["/usr/bin/mkfifo", fifo]).status == 0)
        let command =
            "cat '\(fifo)' > '\(dir.path("copy.ndjson"))' & '\(CastleProcess.binary)' match -q -o '\(fifo)'; wait"
        let result = try await CastleProcess.shell(
            ["/bin/bash", "-c", command],
            stdin: Data(MatchCLITests.stream.utf8)
        )
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try dir.read("copy.ndjson") == MatchCLITests.expectedEvents)
        let type = try FileManager.default.attributesOfItem(atPath: fifo)[.type] as? FileAttributeType
        #expect(type != nil && type != .typeRegular, "still a FIFO: \(String(describing: type))")
        #expect(try dir.contents() == ["copy.ndjson", "events.fifo"])
    }

    /// Interrupted mid-stream (its input is a FIFO that stays open), castle leaves no temporary file.
    @Test func anInterruptLeavesNothingBehind() async throws {
        let dir = try TemporaryDirectory()
        let script = """
            cd '\(dir.url.path)' && mkfifo in.fifo
            '\(CastleProcess.binary)' match -q -i in.fifo -o out.ndjson & pid=$!
            exec 3>in.fifo
            echo '{"op":"new","id":1,"symbol":"X","side":"buy","price":"1","qty":"1"}' >&3
            for _ in $(seq 100); do ls -a | grep -q '^\\.out\\.ndjson\\.tmp' && break; sleep 0.05; done
            kill -TERM $pid
            # Bounded: a castle that ignored the signal is killed after 10 s and the test fails.
            ( sleep 10; kill -KILL $pid ) >/dev/null 2>&1 & guard=$!
            wait $pid
            echo "status=$?"
            kill $guard 2>/dev/null
            """
        let result = try await CastleProcess.shell(["/bin/bash", "-c", script])
        #expect(result.stdoutText.contains("status=143"), "\(result.stdoutText) \(result.stderr)")
        #expect(try dir.contents() == ["in.fifo"], "no output and no temporary file")
    }
}
