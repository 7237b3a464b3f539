import Foundation
import Synchronization
import Testing

/// Runs the built `castle` binary (the debug build that `swift build --build-tests` makes, or
/// `$CASTLE_BIN`) as a real process.
///
/// Nothing here blocks a thread of Swift's cooperative pool, which has only as many threads as the machine
/// has cores: a child's exit and its output are waited for on threads of their own, and the test awaits
/// them. A test that blocked the pool instead would starve every other test's async work (a PostgreSQL
/// connection, a timeout) for as long as its child runs.
struct CastleProcess {
    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["CASTLE_BIN"] { return path }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/castle").path
    }

    struct Result: Sendable {
        var status: Int32
        var stdout: Data
        var stderr: String
        var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
        var lines: [String] { stdoutText.split(separator: "\n").map(String.init) }
    }

    /// Runs castle with `arguments`, feeding `stdin` if given, and returns when it has exited.
    static func run(
        _ arguments: [String],
        stdin: Data? = nil,
        directory: URL? = nil,
        environment: [String: String] = [:]
    ) async throws -> Result {
        #expect(
            FileManager.default.isExecutableFile(atPath: binary),
            "castle binary missing at \(binary): run bin/test"
        )
        return try await shell([binary] + arguments, stdin: stdin, directory: directory, environment: environment)
    }

    /// A write to a child that is gone fails with `EPIPE` instead of killing the test process with
    /// `SIGPIPE` (whether something else in the process ignores it already depends on which tests ran).
    private static let brokenPipesAreErrors: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

    /// Runs any command line; stdout and stderr are drained while it runs.
    static func shell(
        _ command: [String],
        stdin: Data? = nil,
        directory: URL? = nil,
        environment: [String: String] = [:]
    ) async throws -> Result {
        brokenPipesAreErrors
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        if let directory { process.currentDirectoryURL = directory }
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let out = Pipe()
        let err = Pipe()
        let input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        let exit = Exit(process)
        try process.run()
        // The pipes are drained on threads of their own while stdin is written on a third, so no side blocks.
        async let stdout = onThread { out.fileHandleForReading.readDataToEndOfFile() }
        async let stderr = onThread { err.fileHandleForReading.readDataToEndOfFile() }
        if let stdin {
            let writer = input.fileHandleForWriting
            try await onThread {
                do {
                    try writer.write(contentsOf: stdin)
                } catch {
                    // The child exited before reading all of it (castle stops at the first bad line, say):
                    // its exit status and output say so, and the test checks those.
                    guard isBrokenPipe(error) else { throw error }
                }
                try writer.close()
            }
        }
        let status = await exit.status()
        return Result(
            status: status,
            stdout: try await stdout,
            stderr: String(decoding: try await stderr, as: UTF8.self)
        )
    }

    /// Resolves `command` (a bare name) on PATH, as a shell would; nil when it is not installed.
    static func which(_ command: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(command)" }.first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }
}

/// Whether a write failed because the reading end is gone (`EPIPE`), as Foundation reports it: a Cocoa
/// write error with the POSIX error beneath it, or the POSIX error itself.
func isBrokenPipe(_ error: any Error) -> Bool {
    let error = error as NSError
    let posix = (error.userInfo[NSUnderlyingErrorKey] as? NSError) ?? error
    return posix.domain == NSPOSIXErrorDomain && posix.code == Int(EPIPE)
}

/// Runs blocking `work` on a new thread and awaits its result, leaving the cooperative pool free.
func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Swift.Result { try work() }) }
    }
}

/// A child's exit status, awaited without blocking a thread: `Process` calls the termination handler on a
/// thread of its own, which resumes whoever waits.
final class Exit: Sendable {
    private struct State {
        var status: Int32?
        var waiters: [CheckedContinuation<Int32, Never>] = []
    }
    private let state = Mutex(State())

    /// Installs the termination handler; call before `process.run()`.
    init(_ process: Process) {
        process.terminationHandler = { [self] finished in
            let status = finished.terminationStatus
            let waiters = state.withLock { state in
                state.status = status
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume(returning: status) }
        }
    }

    var hasExited: Bool { state.withLock { $0.status != nil } }

    /// The exit status (the signal number for a child killed by one), once it has exited.
    func status() async -> Int32 {
        await withCheckedContinuation { continuation in
            let known = state.withLock { state -> Int32? in
                if state.status == nil { state.waiters.append(continuation) }
                return state.status
            }
            if let known { continuation.resume(returning: known) }
        }
    }
}

/// A fresh temporary directory, removed when the value is dropped at the end of a test.
final class TemporaryDirectory: Sendable {
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
