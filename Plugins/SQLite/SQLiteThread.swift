internal import CSQLite
import CastleSupport
import Synchronization

/// A thread of its own for one SQLite connection. SQLite's calls block (an fsync per commit under
/// `synchronous = FULL`, up to the 10 s busy timeout behind another writer), so they run here, one at
/// a time in the order given, never on Swift's cooperative threads that every async task shares.
/// The thread ends at ``stop()`` (or when the owner goes) once the jobs already given have run.
final class SQLiteThread: @unchecked Sendable {
    private let lock = ConditionLock()
    /// Under `lock`.
    private var jobs: [() -> Void] = []
    private var stopping = false

    /// - Parameters:
    ///   - name: the database, for errors.
    ///   - threadName: what the system shows for the thread.
    init(name: String, threadName: String = "castle-sqlite") throws(CastleError) {
        // The thread holds the queue until it ends; the queue's owner does not wait for that.
        do throws(CastleError) {
            try startThread(name: threadName) { [self] in loop() }.detach()
        } catch {
            throw CastleError(error.kind, "\(name): SQLite: \(error.message)")
        }
    }

    private func loop() {
        while true {
            lock.lock()
            while jobs.isEmpty && !stopping { lock.wait() }
            let batch = jobs
            jobs.removeAll()
            let done = stopping && batch.isEmpty
            lock.unlock()
            if done { return }
            for job in batch { job() }
        }
    }

    /// Gives the thread `job` without waiting for it.
    func submit(_ job: @escaping @Sendable () -> Void) { enqueue(job) }

    private func enqueue(_ job: @escaping () -> Void) {
        lock.lock()
        jobs.append(job)
        lock.broadcast()
        lock.unlock()
    }

    /// Runs `work` on the thread and returns its result; the calling task waits without holding a thread.
    func run<T: Sendable>(_ work: @escaping @Sendable () throws(CastleError) -> T) async throws(CastleError) -> T {
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<T, CastleError>, Never>) in
            enqueue {
                continuation.resume(returning: Result { () throws(CastleError) -> T in try work() })
            }
        }
        return try result.get()
    }

    /// Ends the thread after the jobs already given.
    func stop() {
        lock.lock()
        stopping = true
        lock.broadcast()
        lock.unlock()
    }
}

/// One SQLite connection and the thread that uses it: every call goes through ``run(_:)``, and the
/// connection is closed there too (closing the last one checkpoints the WAL: file I/O).
final class SQLiteSerialConnection: @unchecked Sendable {
    let name: String
    private let thread: SQLiteThread
    /// Touched only on `thread`.
    private let box: Box

    private final class Box: @unchecked Sendable {
        var connection: SQLiteConnection?
        var checkpointer: SQLiteCheckpointer?
    }

    private init(name: String, thread: SQLiteThread, box: Box) {
        self.name = name
        self.thread = thread
        self.box = box
    }

    /// Opens `path` on a new thread (opening reads the file and may wait for a lock too).
    static func open(path: String, name: String) async throws(CastleError) -> SQLiteSerialConnection {
        let thread = try SQLiteThread(name: name)
        let box = Box()
        do throws(CastleError) {
            try await thread.run { () throws(CastleError) in
                let connection = try SQLiteConnection(path: path, name: name)
                let checkpointer = SQLiteCheckpointer(path: path, name: name + " (checkpoints)")
                box.connection = connection
                box.checkpointer = checkpointer
                sqlite3_wal_hook(connection.handle, walHook, Unmanaged.passUnretained(checkpointer).toOpaque())
            }
        } catch {
            thread.stop()
            throw error
        }
        return SQLiteSerialConnection(name: name, thread: thread, box: box)
    }

    deinit {
        let box = box
        thread.submit { box.connection = nil }
        thread.stop()
    }

    /// `work` with the connection, on its thread; every statement is reset after, so none keeps a read
    /// transaction open.
    func run<T: Sendable>(
        _ work: @escaping @Sendable (SQLiteConnection) throws(CastleError) -> T
    ) async throws(CastleError) -> T {
        let box = box
        let name = name
        return try await thread.run { () throws(CastleError) -> T in
            guard let connection = box.connection else { throw CastleError(.software, "\(name) is closed") }
            defer { connection.resetAll() }
            return try work(connection)
        }
    }

    /// Starts `work` on the thread and returns at once; ``SQLitePending/value()`` waits for it.
    func start(_ work: @escaping @Sendable (SQLiteConnection) throws(CastleError) -> Void) -> SQLitePending {
        let pending = SQLitePending()
        let box = box
        let name = name
        thread.submit {
            pending.complete(
                Result { () throws(CastleError) in
                    guard let connection = box.connection else { throw CastleError(.software, "\(name) is closed") }
                    defer { connection.resetAll() }
                    try work(connection)
                }
            )
        }
        return pending
    }

    /// Closes the connection, on its thread, and ends the thread. Later calls fail.
    func close() async {
        let box = box
        await box.checkpointer?.close()
        _ = try? await thread.run { () throws(CastleError) in box.connection = nil }
        thread.stop()
    }
}

/// The writer's WAL hook: hands the checkpoint to ``SQLiteCheckpointer`` instead of SQLite's automatic one.
private let walHook: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, Int32) -> Int32 =
    { context, writer, _, pages in
        guard let context, let writer else { return SQLITE_OK }
        let checkpointer = Unmanaged<SQLiteCheckpointer>.fromOpaque(context).takeUnretainedValue()
        checkpointer.committed(walPages: pages, writer: writer)
        return SQLITE_OK
    }

/// A job started on a connection's thread, to be waited for later.
final class SQLitePending: Sendable {
    private struct State {
        var result: Result<Void, CastleError>?
        var waiter: CheckedContinuation<Result<Void, CastleError>, Never>?
    }

    private let state = Mutex(State())

    func complete(_ result: Result<Void, CastleError>) {
        let waiter = state.withLock { state in
            state.result = result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: result)
    }

    /// Waits for the job; throws its error.
    func value() async throws(CastleError) {
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<Void, CastleError>, Never>) in
            let ready = state.withLock { (state) -> Result<Void, CastleError>? in
                if state.result == nil { state.waiter = continuation }
                return state.result
            }
            if let ready { continuation.resume(returning: ready) }
        }
        try result.get()
    }
}
