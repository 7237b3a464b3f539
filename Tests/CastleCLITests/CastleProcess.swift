import Foundation
import Testing

/// Runs the built `castle` binary (the debug build that `swift build --build-tests` makes, or
/// `$CASTLE_BIN`) as a real process.
struct CastleProcess {
    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["CASTLE_BIN"] { return path }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/castle").path
    }

    struct Result {
        var status: Int32
        var stdout: Data
        var stderr: String
        var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
        var lines: [String] { stdoutText.split(separator: "\n").map(String.init) }
    }

    /// Runs castle with `arguments`, feeding `stdin` if given.
    static func run(_ arguments: [String], stdin: Data? = nil, directory: URL? = nil) throws -> Result {
        #expect(
            FileManager.default.isExecutableFile(atPath: binary),
            "castle binary missing at \(binary): run bin/test"
        )
        return try shell([binary] + arguments, stdin: stdin, directory: directory)
    }

    /// Runs any command line; stdout and stderr are drained while it runs.
    static func shell(_ command: [String], stdin: Data? = nil, directory: URL? = nil) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        if let directory { process.currentDirectoryURL = directory }
        let out = Pipe()
        let err = Pipe()
        let input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        // Both pipes are drained on their own threads while stdin is written, so no side can block.
        let outData = Drained(out.fileHandleForReading)
        let errData = Drained(err.fileHandleForReading)
        try process.run()
        if let stdin {
            input.fileHandleForWriting.write(stdin)
            try input.fileHandleForWriting.close()
        }
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus,
            stdout: outData.wait(),
            stderr: String(decoding: errData.wait(), as: UTF8.self)
        )
    }
}

/// Reads a pipe to its end on a thread of its own.
final class Drained: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            data = handle.readDataToEndOfFile()
            done.signal()
        }
    }

    /// The whole output; `data` is written once, before the signal, and read only after it.
    func wait() -> Data {
        done.wait()
        return data
    }
}

/// A fresh temporary directory, removed when the value is dropped at the end of a test.
final class TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("castle-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        try text.write(toFile: path(name), atomically: true, encoding: .utf8)
        return path(name)
    }

    func read(_ name: String) throws -> String { try String(contentsOfFile: path(name), encoding: .utf8) }

    func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: path(name)) }

    /// Names of everything in the directory (to check that nothing half-written was left).
    func contents() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: url.path).sorted() }
}
