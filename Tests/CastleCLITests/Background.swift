import Foundation
import Synchronization
import Testing

/// A castle process started in the background, to be stopped, killed or awaited. Its stderr is read as it
/// comes, so a test waits for a line the process prints instead of for a length of time; it is kept in a
/// file too, for the messages of a failing test.
final class Background: @unchecked Sendable {
    let process = Process()
    let stderrPath: String
    private let exit: Exit
    private let output = WatchedText()

    init(_ arguments: [String], stderrPath: String, environment: [String: String] = [:]) throws {
        self.stderrPath = stderrPath
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        // A file that cannot be made fails just below, when it is opened.
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        let pipe = Pipe()
        process.executableURL = URL(fileURLWithPath: CastleProcess.binary)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = pipe
        exit = Exit(process)
        try process.run()
        let reading = pipe.fileHandleForReading
        Thread.detachNewThread { [output] in
            while case let chunk = reading.availableData, !chunk.isEmpty {
                log.write(chunk)
                output.append(chunk)
            }
            try? log.close()
            output.end()
        }
    }

    /// A test that throws before it stops its process leaves none behind: it would run on after the
    /// suite, holding its port and its files.
    deinit {
        if !exit.hasExited { kill(process.processIdentifier, SIGKILL) }
    }

    var pid: Int32 { process.processIdentifier }

    /// What the process has written to stderr so far.
    var stderr: String { output.text }

    /// Returns true once stderr contains `text`, false if the process closes stderr (exits) first.
    func waitFor(_ text: String) async -> Bool { await output.wait(for: text) }

    /// Sends SIGKILL, as a crash would, and waits for the exit; true if the process was still running, so
    /// that the signal is what ended it.
    @discardableResult
    func killHard() async -> Bool {
        kill(process.processIdentifier, SIGKILL)
        let status = await exit.status()
        return process.terminationReason == .uncaughtSignal && status == SIGKILL
    }

    /// Sends `signal` without waiting.
    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// The exit status, once the process has exited and what it wrote to stderr has all been read: the
    /// reading thread can be behind the exit on a loaded machine, and `stderr` read then missed the
    /// last line.
    func wait() async -> Int32 {
        let status = await exit.status()
        await output.waitForEnd()
        return status
    }

    var hasExited: Bool { exit.hasExited }
}

/// Text that grows, and tasks waiting for some part of it to appear.
final class WatchedText: Sendable {
    private struct State {
        var bytes = Data()
        var ended = false
        var waiters: [(text: String, continuation: CheckedContinuation<Bool, Never>)] = []
        var endWaiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    var text: String { state.withLock { String(decoding: $0.bytes, as: UTF8.self) } }

    func append(_ chunk: Data) {
        let ready = state.withLock { state in
            state.bytes.append(chunk)
            let text = String(decoding: state.bytes, as: UTF8.self)
            let (found, waiting) = state.waiters.partitioned { text.contains($0.text) }
            state.waiters = waiting
            return found
        }
        for waiter in ready { waiter.continuation.resume(returning: true) }
    }

    func end() {
        let (waiters, endWaiters) = state.withLock { state in
            state.ended = true
            defer {
                state.waiters = []
                state.endWaiters = []
            }
            return (state.waiters, state.endWaiters)
        }
        for waiter in waiters { waiter.continuation.resume(returning: false) }
        for waiter in endWaiters { waiter.resume() }
    }

    /// Returns once the text has ended (the writer closed it).
    func waitForEnd() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ended = state.withLock { state in
                if !state.ended { state.endWaiters.append(continuation) }
                return state.ended
            }
            if ended { continuation.resume() }
        }
    }

    func wait(for text: String) async -> Bool {
        await withCheckedContinuation { continuation in
            let answer = state.withLock { state -> Bool? in
                if String(decoding: state.bytes, as: UTF8.self).contains(text) { return true }
                if state.ended { return false }
                state.waiters.append((text, continuation))
                return nil
            }
            if let answer { continuation.resume(returning: answer) }
        }
    }
}

extension Array {
    /// The elements that satisfy `belongs`, and the rest, each in order.
    fileprivate func partitioned(by belongs: (Element) -> Bool) -> ([Element], [Element]) {
        var yes: [Element] = []
        var no: [Element] = []
        for element in self {
            if belongs(element) { yes.append(element) } else { no.append(element) }
        }
        return (yes, no)
    }
}

/// Waits until `condition` holds, checking it again after each short pause: for a state that another
/// process reaches and announces nowhere we can listen (a row in a store). The deadline is generous, since
/// a loaded machine is slow; reaching it fails the test rather than hanging it.
func eventually(
    _ what: String,
    deadlineSeconds: Int = 120,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async throws -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + .seconds(deadlineSeconds)
    while clock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("not within \(deadlineSeconds) s: \(what)", sourceLocation: sourceLocation)
    return false
}
