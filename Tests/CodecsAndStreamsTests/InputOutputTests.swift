import CastleCore
import CastleSupport
import Foundation
import Streams
import Testing

@Suite struct LineReaderTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var content: String
        var lines: [String]
        var testDescription: String { content.debugDescription }
    }

    static let cases: [Case] = [
        Case(content: "", lines: []),
        Case(content: "a", lines: ["a"]),
        Case(content: "a\n", lines: ["a"]),
        Case(content: "a\nb", lines: ["a", "b"]),
        Case(content: "a\nb\n", lines: ["a", "b"]),
        Case(content: "a\r\nb\r\n", lines: ["a", "b"]),
        Case(content: "a\r\nb", lines: ["a", "b"]),
        Case(content: "a\r\nb\r", lines: ["a", "b"]),
        Case(content: "\n", lines: [""]),
        Case(content: "\r\n", lines: [""]),
        Case(content: "\n\n", lines: ["", ""]),
        Case(content: "a\n\nb\n", lines: ["a", "", "b"]),
        Case(content: "a\n   \nb", lines: ["a", "   ", "b"]),
        // Only a trailing CR is dropped.
        Case(content: "a\rb\n", lines: ["a\rb"]),
        Case(content: "a\r\r\n", lines: ["a\r"]),
        Case(content: "{\"op\":\"new\"}\n{\"op\":\"cancel\"}\n", lines: ["{\"op\":\"new\"}", "{\"op\":\"cancel\"}"]),
    ]

    @Test(arguments: cases)
    func splitsLines(_ c: Case) throws {
        let dir = TempDir()
        let path = dir.write("in.ndjson", c.content)
        let lines = try readAllLines(path)
        #expect(lines == c.lines.enumerated().map { ReadLine($0.element, $0.offset + 1) })
    }

    @Test func endOfInputIsSticky() throws {
        let dir = TempDir()
        let reader = LineReader(source: try InputSource(path: dir.write("in", "x\n")))
        #expect(try reader.next()?.number == 1)
        #expect(try reader.next() == nil)
        #expect(try reader.next() == nil)
        #expect(reader.lineNumber == 1)
    }

    @Test func tooLongLineIsReportedAndSkipped() throws {
        let dir = TempDir()
        let path = dir.write("in", "short\n0123456789abc\nok\n12345678\n123456789\nlast")
        let lines = try readAllLines(path, lineBytesMax: 8)
        #expect(
            lines == [
                ReadLine("short", 1),
                ReadLine("", 2, tooLong: true),
                ReadLine("ok", 3),
                ReadLine("12345678", 4),  // exactly the limit
                ReadLine("", 5, tooLong: true),  // one over
                ReadLine("last", 6),
            ]
        )
    }

    @Test func tooLongLastLineWithoutNewline() throws {
        let dir = TempDir()
        let lines = try readAllLines(dir.write("in", "a\n0123456789"), lineBytesMax: 8)
        #expect(lines == [ReadLine("a", 1), ReadLine("", 2, tooLong: true)])
    }

    @Test
    func limitIgnoresLineEnding() throws {
        let dir = TempDir()
        let lines = try readAllLines(dir.write("in", "12345678\r\nx\r\n"), lineBytesMax: 8)
        #expect(lines == [ReadLine("12345678", 1), ReadLine("x", 2)])
    }

    /// Lines longer than the reader's 1 MiB buffer, in the middle and at the end.
    @Test func linesLongerThanTheBuffer() throws {
        let dir = TempDir()
        var content = "first\n"
        content += String(repeating: "x", count: 1_500_000) + "\n"
        content += "after\n"
        content += String(repeating: "y", count: 2_500_000) + "\r\n"
        content += "{\"op\":\"cancel\",\"id\":1}\r\n"
        content += String(repeating: "z", count: 3_000_000)
        let lines = try readAllLines(dir.write("in", content))
        #expect(
            lines == [
                ReadLine("first", 1),
                ReadLine("", 2, tooLong: true),
                ReadLine("after", 3),
                ReadLine("", 4, tooLong: true),
                ReadLine("{\"op\":\"cancel\",\"id\":1}", 5),
                ReadLine("", 6, tooLong: true),
            ]
        )
    }

    /// Many lines of varying length across several buffer refills come back unchanged and numbered.
    @Test func manyLinesAcrossRefills() throws {
        let dir = TempDir()
        var expected: [String] = []
        var content = ""
        var state: UInt64 = 12345
        var total = 0
        while total < 3_500_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let length = Int(state >> 33) % 3000
            let char = Character(UnicodeScalar(UInt8(97 + Int(state >> 20) % 26)))
            let line = String(repeating: char, count: length) + "#\(expected.count)"
            expected.append(line)
            content += line + (expected.count % 3 == 0 ? "\r\n" : "\n")
            total += line.utf8.count + 1
        }
        let lines = try readAllLines(dir.write("in", content))
        #expect(lines.count == expected.count)
        #expect(lines == expected.enumerated().map { ReadLine($0.element, $0.offset + 1) })
    }
}

@Suite struct InputSourceTests {
    @Test func gzipReadsLikePlain() throws {
        let dir = TempDir()
        var content = "{\"op\":\"new\"}\r\nline two\n\nno newline at end"
        let plain = dir.write("orders.ndjson", content)
        let compressed = try gzipFile(plain)
        let plainLines = try readAllLines(plain)
        let gzipLines = try readAllLines(compressed)
        #expect(plainLines.count == 4)
        #expect(gzipLines == plainLines)
        #expect(try !InputSource(path: plain).isCompressed)
        #expect(try InputSource(path: compressed).isCompressed)

        // Larger than one read buffer, and named without .gz: the signature decides.
        content = (0..<200_000).map { "{\"op\":\"cancel\",\"id\":\($0)}" }.joined(separator: "\n") + "\n"
        let big = dir.write("big.ndjson", content)
        let bigCompressed = try gzipFile(big)
        let renamed = dir.file("big-compressed.ndjson")
        try FileManager.default.moveItem(atPath: bigCompressed, toPath: renamed)
        let bigPlain = try readAllLines(big)
        let bigGzip = try readAllLines(renamed)
        #expect(bigPlain.count == 200_000)
        #expect(bigGzip == bigPlain)
    }

    @Test func readBytesReturnsEverythingThenZero() throws {
        let dir = TempDir()
        let bytes: [UInt8] = Array(0...255) + Array(repeating: 7, count: 10)
        let path = dir.write("bin", bytes: bytes)
        let source = try InputSource(path: path)
        #expect(source.name == path)
        #expect(source.sizeBytes == bytes.count)
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 100)
        while true {
            let n = try chunk.withUnsafeMutableBytes { raw throws(CastleError) in
                try source.readBytes(into: raw.baseAddress!, count: 3)
            }
            if n == 0 { break }
            out += chunk[0..<n]
        }
        #expect(out == bytes)
        #expect(source.consumedBytes == bytes.count)
    }

    @Test func truncatedGzipIsADataErrorNamingTheFile() throws {
        let dir = TempDir()
        let content = (0..<50_000).map { "{\"op\":\"cancel\",\"id\":\($0)}" }.joined(separator: "\n") + "\n"
        let compressed = try gzipFile(dir.write("orders.ndjson", content))
        let full = try #require(readBytes(compressed))
        let truncatedPath = dir.write("truncated.ndjson.gz", bytes: Array(full.prefix(full.count / 2)))
        let error = expectCastleError { () throws(CastleError) in try readAllLines(truncatedPath) }
        #expect(error?.kind == .dataError)
        #expect(error?.message.hasPrefix(truncatedPath + ":") == true, "\(error?.message ?? "")")
        #expect(error?.exitCode == 65)
    }

    @Test func gzipWithoutTrailerIsADataError() throws {
        let dir = TempDir()
        let compressed = try gzipFile(dir.write("small", "{\"op\":\"cancel\",\"id\":1}\n"))
        let full = try #require(readBytes(compressed))
        // Drop the CRC and length trailer only.
        let truncatedPath = dir.write("small-truncated.gz", bytes: Array(full.dropLast(8)))
        let error = expectCastleError { () throws(CastleError) in try readAllLines(truncatedPath) }
        #expect(error?.kind == .dataError)
        #expect(error?.message.contains(truncatedPath) == true)
    }

    @Test func nonexistentPathIsNoInput() {
        let dir = TempDir()
        let missing = dir.file("does-not-exist.ndjson")
        let error = expectCastleError { () throws(CastleError) in try InputSource(path: missing) }
        #expect(error?.kind == .noInput)
        #expect(error?.exitCode == 66)
        #expect(error?.message.hasPrefix(missing + ":") == true, "\(error?.message ?? "")")
    }

    @Test func directoryIsNoInput() {
        let dir = TempDir()
        let error = expectCastleError { () throws(CastleError) in try InputSource(path: dir.path) }
        #expect(error?.kind == .noInput)
        #expect(error?.message.hasPrefix(dir.path + ":") == true, "\(error?.message ?? "")")
    }

    @Test func emptyFile() throws {
        let dir = TempDir()
        let path = dir.write("empty", "")
        let source = try InputSource(path: path)
        #expect(!source.isCompressed)
        #expect(source.sizeBytes == 0)
        #expect(try readAllLines(path).isEmpty)
    }

    @Test func tinyFilesShorterThanTheSniffedPrefix() throws {
        let dir = TempDir()
        #expect(try readAllLines(dir.write("one", "x")) == [ReadLine("x", 1)])
        #expect(try readAllLines(dir.write("two", "{}\n")) == [ReadLine("{}", 1)])
    }
}

@Suite struct OutputSinkTests {
    @Test func fileAppearsOnlyOnCommit() throws {
        let dir = TempDir()
        let path = dir.file("out.ndjson")
        let sink = try OutputSink(path: path)
        #expect(sink.name == path)
        try sink.write("hello\n")
        try sink.flush()
        #expect(!fileExists(path))
        #expect(sink.writtenBytes == 6)
        try sink.write("world\n")
        #expect(!fileExists(path))
        try sink.commit()
        #expect(readText(path) == "hello\nworld\n")
        // Nothing else is left in the directory: the temporary file was renamed.
        #expect(dir.listing() == ["out.ndjson"])
    }

    @Test func abortLeavesNothing() throws {
        let dir = TempDir()
        let path = dir.file("out.ndjson")
        let sink = try OutputSink(path: path)
        try sink.write(String(repeating: "x", count: 3000))
        try sink.flush()
        #expect(dir.listing().count == 1)  // the temporary file
        sink.abort()
        #expect(!fileExists(path))
        #expect(dir.listing().isEmpty)
    }

    @Test func droppingAnUncommittedSinkLeavesNothing() throws {
        let dir = TempDir()
        let path = dir.file("out.ndjson")
        do {
            let sink = try OutputSink(path: path)
            try sink.write("partial")
            try sink.flush()
        }
        #expect(!fileExists(path))
        #expect(dir.listing().isEmpty)
    }

    @Test func commitReplacesAnExistingFile() throws {
        let dir = TempDir()
        let path = dir.write("out.ndjson", "old content that is longer\n")
        let sink = try OutputSink(path: path)
        try sink.write("new\n")
        try sink.flush()
        #expect(readText(path) == "old content that is longer\n")
        try sink.commit()
        #expect(readText(path) == "new\n")
        #expect(dir.listing() == ["out.ndjson"])
    }

    @Test func abortKeepsAnExistingFile() throws {
        let dir = TempDir()
        let path = dir.write("out.ndjson", "keep me\n")
        let sink = try OutputSink(path: path)
        try sink.write("replacement\n")
        sink.abort()
        #expect(readText(path) == "keep me\n")
        #expect(dir.listing() == ["out.ndjson"])
    }

    @Test func cannotCreateInMissingDirectory() {
        let dir = TempDir()
        let path = dir.file("no-such-dir/out.ndjson")
        let error = expectCastleError { () throws(CastleError) in try OutputSink(path: path) }
        #expect(error?.kind == .cantCreate)
        #expect(error?.exitCode == 73)
        #expect(error?.message.hasPrefix(path + ":") == true, "\(error?.message ?? "")")
        #expect(!fileExists(dir.file("no-such-dir")))
    }

    @Test func smallCapacityWritesEverything() throws {
        let dir = TempDir()
        let path = dir.file("out")
        let sink = try OutputSink(path: path, capacity: 16)
        let text = (0..<500).map { "line \($0)" }.joined(separator: "\n")
        try sink.write(text)
        try sink.commit()
        #expect(readText(path) == text)
        #expect(sink.writtenBytes == text.utf8.count)
    }

    @Test func appendHelpers() throws {
        let dir = TempDir()
        let path = dir.file("out")
        let sink = try OutputSink(path: path)
        try sink.reserve(256)
        sink.append("n=")
        sink.appendUnsigned(0)
        sink.append(UInt8(ascii: ","))
        sink.appendUnsigned(UInt64.max)
        sink.append(UInt8(ascii: ","))
        sink.appendDecimal(-12345, decimals: 3)
        sink.append(UInt8(ascii: ","))
        sink.appendJSONString(Array("q\"b\\s\n\u{1}é".utf8))
        try sink.commit()
        #expect(readText(path) == #"n=0,18446744073709551615,-12.345,"q\"b\\s\u000a\u0001é""#)
    }

    @Test func brokenPipeDetection() {
        #expect(OutputSink.isBrokenPipe(CastleError(.ioError, "<stdout>: broken pipe")))
        #expect(!OutputSink.isBrokenPipe(CastleError(.ioError, "<stdout>: write failed: No space left on device")))
        #expect(!OutputSink.isBrokenPipe(CastleError(.dataError, "x: broken pipe")))
    }
}
