internal import CSQLite
import CastleSupport
import Synchronization

/// Checkpoints the WAL of a writer connection on a connection and a thread of its own.
///
/// SQLite's automatic checkpoint runs inside the commit that takes the WAL past 1,000 pages: that
/// commit copies about 4 MB into the database file and fsyncs it, and everything queued behind it on
/// the writer's thread waits. Under serve's order load that was the p99 of the order requests
/// (docs/serve-performance.md). Here the writer's commit only hands the checkpoint over. It is PASSIVE:
/// it copies the frames no reader still needs and never waits for the writer, which goes on
/// committing meanwhile. The writer starts the WAL over from its beginning once a checkpoint has copied
/// all of it; under a steady load that is after one of its own, at ``writerPages``, which has little
/// left to copy.
final class SQLiteCheckpointer: @unchecked Sendable {
    /// WAL pages after a commit from which a checkpoint is handed over: SQLite's own threshold.
    static let pages: Int32 = 1000
    /// WAL pages from which the writer checkpoints itself, as SQLite would: should the checkpoints here
    /// never get to the end of the WAL (new frames every time), it would otherwise grow without end.
    static let writerPages: Int32 = 3_000

    private let path: String
    private let name: String
    private struct State {
        /// Started at the first checkpoint: a backend that never fills the WAL never has it.
        var thread: SQLiteThread?
        var running = false
        var closed = false
    }
    private let state = Mutex(State())
    /// The checkpointing connection: opened and used only on `thread`.
    private var connection: SQLiteConnection?

    init(path: String, name: String) {
        self.path = path
        self.name = name
    }

    /// Without ``close()``: no job holds `self` any more, so none runs; the connection closes here.
    deinit {
        state.withLock { $0.thread }?.stop()
    }

    /// The writer's WAL hook, on the writer's thread, after each commit: `walPages` pages in the WAL.
    func committed(walPages: Int32, writer: OpaquePointer) {
        if walPages >= Self.writerPages {
            sqlite3_wal_checkpoint_v2(writer, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
            return
        }
        guard walPages >= Self.pages else { return }
        let thread = state.withLock { state -> SQLiteThread? in
            guard !state.running, !state.closed else { return nil }
            if state.thread == nil { state.thread = try? SQLiteThread(name: name, threadName: "sqlite-ckpt") }
            state.running = state.thread != nil
            return state.thread
        }
        thread?.submit { [self] in
            checkpoint()
            state.withLock { $0.running = false }
        }
    }

    /// On the thread. A failure (the file gone, a checkpoint of the writer's own under way) is left to
    /// the next commit past the threshold to try again.
    private func checkpoint() {
        if connection == nil { connection = try? SQLiteConnection(path: path, name: name) }
        guard let connection else { return }
        sqlite3_wal_checkpoint_v2(connection.handle, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
    }

    /// Closes the connection once the checkpoint under way is done, and ends the thread; before the
    /// writer closes, so that the writer's close, the last connection's, checkpoints the rest and
    /// removes the WAL.
    func close() async {
        let thread = state.withLock { state in
            state.closed = true
            return state.thread
        }
        guard let thread else { return }
        _ = try? await thread.run { [self] () throws(CastleError) in connection = nil }
        thread.stop()
    }
}
