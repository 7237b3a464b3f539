public import CastleSupport
import Synchronization

/// One stored result of a reconcile run: its class, the record a person resolves it by (the first
/// external id, else the first ledger key, else the statement), and the report line in both formats.
public struct ReconcileResultRow: Sendable, Hashable {
    public var resultClass: String
    public var record: String
    public var ndjson: String
    public var csv: String

    public init(resultClass: String, record: String, ndjson: String, csv: String) {
        self.resultClass = resultClass
        self.record = record
        self.ndjson = ndjson
        self.csv = csv
    }
}

/// A reconcile run as stored: its id (a hash of its report, so the same window reconciled again is the
/// same run), its window in days since 1970-01-01 when one was given, and its results in report order.
public struct ReconcileRun: Sendable, Hashable {
    public var run: String
    public var windowFrom: Int32?
    public var windowTo: Int32?
    public var breaks: Int
    public var results: [ReconcileResultRow]

    public init(run: String, windowFrom: Int32?, windowTo: Int32?, breaks: Int, results: [ReconcileResultRow]) {
        self.run = run
        self.windowFrom = windowFrom
        self.windowTo = windowTo
        self.breaks = breaks
        self.results = results
    }
}

/// The storage of `castle reconcile` (migration 0006): runs and their results, the watermark of each
/// source for `--since-last`, the breaks people resolved, and the lock that keeps two runs apart.
/// Memory, SQLite and PostgreSQL implement it; `ReconcileConformance` checks all three the same way.
public protocol ReconcileStore: AnyObject, Sendable {
    /// Stores the run and its results and advances the watermarks, in one transaction. A run id already
    /// stored is left as it is and the call returns false: re-running a window stores nothing twice.
    /// A watermark only moves forward.
    func saveReconcileRun(_ run: ReconcileRun, watermarks: [String: Int32]) async throws(CastleError) -> Bool

    /// The run, its results in report order; nil when there is no such run.
    func loadReconcileRun(_ run: String) async throws(CastleError) -> ReconcileRun?

    /// The last day reconciled, per source.
    func reconcileWatermarks() async throws(CastleError) -> [String: Int32]

    /// Clears a break of a stored run for good, with a person's note. Throws ``CastleError/Kind/noInput``
    /// when the run has no such record. Resolving again replaces the note.
    func resolveReconcileRecord(run: String, record: String, note: String) async throws(CastleError)

    /// Resolved records and their notes.
    func reconcileResolutions() async throws(CastleError) -> [String: String]

    /// The reconcile lock, held until released or the process ends however it ends; nil when another
    /// run holds it.
    func acquireReconcileLock() async throws(CastleError) -> (any PartitionLock)?
}

/// Memory's part: state under a mutex, the lock a flag.
final class MemoryReconcileState: Sendable {
    struct State {
        var runs: [String: ReconcileRun] = [:]
        var watermarks: [String: Int32] = [:]
        /// Record → the run it was resolved in and the note.
        var resolutions: [String: (run: String, note: String)] = [:]
        var locked = false
    }

    let state = Mutex(State())
}

extension MemoryBackend: ReconcileStore {
    public func saveReconcileRun(_ run: ReconcileRun, watermarks: [String: Int32]) async throws(CastleError) -> Bool {
        reconcile.state.withLock { state in
            guard state.runs[run.run] == nil else { return false }
            state.runs[run.run] = run
            for (source, day) in watermarks { state.watermarks[source] = max(day, state.watermarks[source] ?? day) }
            return true
        }
    }

    public func loadReconcileRun(_ run: String) async throws(CastleError) -> ReconcileRun? {
        reconcile.state.withLock { $0.runs[run] }
    }

    public func reconcileWatermarks() async throws(CastleError) -> [String: Int32] {
        reconcile.state.withLock { $0.watermarks }
    }

    public func resolveReconcileRecord(run: String, record: String, note: String) async throws(CastleError) {
        let found = reconcile.state.withLock { state in
            guard state.runs[run]?.results.contains(where: { $0.record == record }) == true else { return false }
            state.resolutions[record] = (run, note)
            return true
        }
        if !found { throw ReconcileStoreErrors.noRecord(run: run, record: record) }
    }

    public func reconcileResolutions() async throws(CastleError) -> [String: String] {
        reconcile.state.withLock { $0.resolutions.mapValues(\.note) }
    }

    public func acquireReconcileLock() async throws(CastleError) -> (any PartitionLock)? {
        let taken = reconcile.state.withLock { state in
            if state.locked { return false }
            state.locked = true
            return true
        }
        return taken ? MemoryReconcileLock(state: reconcile) : nil
    }
}

final class MemoryReconcileLock: PartitionLock {
    let state: MemoryReconcileState

    init(state: MemoryReconcileState) {
        self.state = state
    }

    func release() async { state.state.withLock { $0.locked = false } }
}

public enum ReconcileStoreErrors {
    public static func noRecord(run: String, record: String) -> CastleError {
        CastleError(.noInput, "run \(run) has no record \(record) (castle reconcile show \(run) lists them)")
    }
}
