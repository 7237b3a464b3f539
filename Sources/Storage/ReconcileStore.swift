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

/// A source record or a ledger entry that a stored run claimed: paired it with the other side (matched,
/// late, or a mismatch or status break between the two). Claims are kept per run's days: the run's
/// window, or without one the days of the records it read. A later run over other days does not claim
/// them again (docs/reconcile.md, "Runs"); a run over the same days replaces them.
public struct ReconcileClaim: Sendable, Hashable {
    public enum Side: Int, Sendable, Hashable {
        /// A source record, by its own id (balance transaction id, AcctSvcrRef…).
        case external = 0
        /// A ledger entry, by its key.
        case ledger = 1
    }

    public var side: Side
    public var id: String
    /// The record's or the entry's day, days since 1970-01-01: what claims are looked up by.
    public var day: Int32
    /// The run that claimed it, and that run's days.
    public var run: String
    public var days: ClosedRange<Int32>

    public init(side: Side, id: String, day: Int32, run: String, days: ClosedRange<Int32>) {
        self.side = side
        self.id = id
        self.day = day
        self.run = run
        self.days = days
    }
}

/// The storage of `castle reconcile` (migrations 0006 and 0009): runs and their results, the watermark of each
/// source for `--since-last`, the breaks people resolved, and the lock that keeps two runs apart.
/// Memory, SQLite and PostgreSQL implement it; `ReconcileConformance` checks all three the same way.
public protocol ReconcileStore: AnyObject, Sendable {
    /// Stores the run and its results, sets the claims of the run's `days` to `claims` (each with that
    /// run and those days; the claims an earlier run of the same days made are dropped, even when this
    /// run is already stored: the latest run of some days says what they claim) and advances the
    /// watermarks, in one transaction. A run id already stored is left as it is and the call returns
    /// false: re-running a window stores nothing twice. A watermark only moves forward. `days` is nil
    /// for a run that read no record; it claims nothing.
    func saveReconcileRun(
        _ run: ReconcileRun,
        days: ClosedRange<Int32>?,
        claims: [ReconcileClaim],
        watermarks: [String: Int32]
    ) async throws(CastleError) -> Bool

    /// The claims of records and entries dated in `days`, made by runs of other days than `excluding`
    /// (a run's own days are its reruns'), in no particular order.
    func reconcileClaims(
        days: ClosedRange<Int32>,
        excluding: ClosedRange<Int32>
    ) async throws(CastleError) -> [ReconcileClaim]

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
        /// Per run's days, what it claimed.
        var claims: [ClosedRange<Int32>: [ReconcileClaim]] = [:]
        var watermarks: [String: Int32] = [:]
        /// Record → the run it was resolved in and the note.
        var resolutions: [String: (run: String, note: String)] = [:]
        var locked = false
    }

    let state = Mutex(State())
}

extension MemoryBackend: ReconcileStore {
    public func saveReconcileRun(
        _ run: ReconcileRun,
        days: ClosedRange<Int32>?,
        claims: [ReconcileClaim],
        watermarks: [String: Int32]
    ) async throws(CastleError) -> Bool {
        reconcile.state.withLock { state in
            if let days { state.claims[days] = claims.isEmpty ? nil : claims }
            guard state.runs[run.run] == nil else { return false }
            state.runs[run.run] = run
            for (source, day) in watermarks { state.watermarks[source] = max(day, state.watermarks[source] ?? day) }
            return true
        }
    }

    public func loadReconcileRun(_ run: String) async throws(CastleError) -> ReconcileRun? {
        reconcile.state.withLock { $0.runs[run] }
    }

    public func reconcileClaims(
        days: ClosedRange<Int32>,
        excluding: ClosedRange<Int32>
    ) async throws(CastleError) -> [ReconcileClaim] {
        reconcile.state.withLock { state in
            state.claims.filter { $0.key != excluding }.values.flatMap { $0.filter { days.contains($0.day) } }
        }
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
