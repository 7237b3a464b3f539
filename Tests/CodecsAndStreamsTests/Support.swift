import CastleCore
import CastleSupport
import Foundation
import Streams
import Testing

/// A fresh directory under the system temp directory, removed when the value goes away.
final class TempDir {
    let path: String

    init() {
        path = FileManager.default.temporaryDirectory.path + "/castle-formats-tests-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { path + "/" + name }

    @discardableResult
    func write(_ name: String, _ text: String) -> String { write(name, bytes: Array(text.utf8)) }

    @discardableResult
    func write(_ name: String, bytes: [UInt8]) -> String {
        let target = file(name)
        let created = FileManager.default.createFile(atPath: target, contents: Data(bytes))
        precondition(created, "cannot create \(target)")
        return target
    }

    /// Names in the directory, sorted (hidden temporary files included).
    func listing() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() }
}

func fileExists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

func readBytes(_ path: String) -> [UInt8]? { FileManager.default.contents(atPath: path).map { Array($0) } }

func readText(_ path: String) -> String? { readBytes(path).map { String(decoding: $0, as: UTF8.self) } }

/// Compresses `source` with the system gzip into `source.gz` and returns that path.
func gzipFile(_ source: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/gzip")
    process.arguments = ["-n", "-k", "-f", source]
    try process.run()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0)
    return source + ".gz"
}

/// A line as read by ``LineReader``, copied out of its buffer.
struct ReadLine: Equatable, CustomStringConvertible {
    var text: String
    var number: Int
    var tooLong: Bool

    init(_ text: String, _ number: Int, tooLong: Bool = false) {
        self.text = text
        self.number = number
        self.tooLong = tooLong
    }

    var description: String { "\(number):\(tooLong ? "<too long>" : text.debugDescription)" }
}

func readAllLines(_ path: String, lineBytesMax: Int = 1 << 20) throws(CastleError) -> [ReadLine] {
    let reader = LineReader(source: try InputSource(path: path), lineBytesMax: lineBytesMax)
    var lines: [ReadLine] = []
    while let line = try reader.next() {
        lines.append(ReadLine(String(decoding: line.bytes, as: UTF8.self), line.number, tooLong: line.tooLong))
    }
    return lines
}

/// Runs `body`, expecting a ``CastleError``; returns it (nil, with an issue recorded, when none is thrown).
func expectCastleError<T>(
    _ body: () throws(CastleError) -> T,
    sourceLocation: SourceLocation = #_sourceLocation
) -> CastleError? {
    do {
        _ = try body()
        Issue.record("expected a CastleError", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}
