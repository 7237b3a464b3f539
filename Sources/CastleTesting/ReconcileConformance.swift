import CastleSupport
public import Storage

/// What every backend's ``ReconcileStore`` must do, checked the same way on memory, SQLite and
/// PostgreSQL. Each check gets a fresh, migrated backend.
public enum ReconcileConformance {
    public typealias Check = @Sendable (any ReconcileStore) async throws -> Void

    public static let checks: [(name: String, run: Check)] = [
        ("a run reads back in report order", runReadsBack),
        ("the same run is stored once", sameRunStoredOnce),
        ("watermarks only move forward", watermarksMoveForward),
        ("a resolution sticks and names a real record", resolutionSticks),
        ("one run holds the lock at a time", lockIsExclusive),
        ("claims are kept per run's days, a rerun of them replaces them", claimsPerDays),
    ]

    public static var checkNames: [String] { checks.map(\.name) }

    public static func run(_ name: String, on backend: any Backend) async throws {
        guard let check = checks.first(where: { $0.name == name }) else {
            throw ConformanceFailure("no reconcile conformance check named '\(name)'")
        }
        guard let store = backend as? any ReconcileStore else {
            throw ConformanceFailure("\(backend.displayURL) is no ReconcileStore")
        }
        try await check.run(store)
    }

    static func sampleRun(_ id: String, results: Int) -> ReconcileRun {
        ReconcileRun(
            run: id,
            windowFrom: 20788,
            windowTo: 20790,
            breaks: results / 2,
            results: (0..<results).map { index in
                ReconcileResultRow(
                    resultClass: index % 2 == 0 ? "matched" : "unmatched_ledger",
                    record: "rec-\(results - index)",
                    ndjson: #"{"run":"\#(id)","n":\#(index),"detail":"a \"quoted\" ümlaut"}"#,
                    csv: "\(id),\(index),\"a, b\""
                )
            }
        )
    }

    static func runReadsBack(_ store: any ReconcileStore) async throws {
        let run = sampleRun("r-1", results: 12_345)
        try expect(
            try await store.saveReconcileRun(run, days: nil, claims: [], watermarks: ["stripe.csv": 20790]),
            "a new run is stored"
        )
        let back = try await store.loadReconcileRun("r-1")
        try expect(back == run, "the run reads back equal, results in order")
        try expect(try await store.loadReconcileRun("r-2") == nil, "an unknown run is nil")
        let open = ReconcileRun(run: "r-open", windowFrom: nil, windowTo: nil, breaks: 0, results: [])
        try expect(
            try await store.saveReconcileRun(open, days: nil, claims: [], watermarks: [:]),
            "a run without a window is stored"
        )
        try expect(try await store.loadReconcileRun("r-open") == open, "no window reads back as none")
    }

    static func sameRunStoredOnce(_ store: any ReconcileStore) async throws {
        let run = sampleRun("r-same", results: 10)
        try expect(try await store.saveReconcileRun(run, days: nil, claims: [], watermarks: [:]), "first save stores")
        var changed = run
        changed.results.removeLast()
        try expect(
            !(try await store.saveReconcileRun(changed, days: nil, claims: [], watermarks: [:])),
            "second save stores nothing"
        )
        try expect(try await store.loadReconcileRun("r-same") == run, "the first run stays as stored")
    }

    static func watermarksMoveForward(_ store: any ReconcileStore) async throws {
        _ = try await store.saveReconcileRun(
            sampleRun("w1", results: 1),
            days: nil,
            claims: [],
            watermarks: ["a": 10, "b": 20]
        )
        _ = try await store.saveReconcileRun(
            sampleRun("w2", results: 1),
            days: nil,
            claims: [],
            watermarks: ["a": 15, "b": 5]
        )
        let marks = try await store.reconcileWatermarks()
        try expect(marks == ["a": 15, "b": 20], "watermarks are the latest days: \(marks)")
    }

    static func resolutionSticks(_ store: any ReconcileStore) async throws {
        _ = try await store.saveReconcileRun(sampleRun("r-res", results: 4), days: nil, claims: [], watermarks: [:])
        try await store.resolveReconcileRecord(run: "r-res", record: "rec-3", note: "refund booked by hand")
        try await store.resolveReconcileRecord(run: "r-res", record: "rec-1", note: "first")
        try await store.resolveReconcileRecord(run: "r-res", record: "rec-1", note: "second")
        let notes = try await store.reconcileResolutions()
        try expect(notes == ["rec-3": "refund booked by hand", "rec-1": "second"], "notes: \(notes)")
        do {
            try await store.resolveReconcileRecord(run: "r-res", record: "nope", note: "x")
            throw ConformanceFailure("resolving a record the run does not have succeeded")
        } catch let error as CastleError {
            try expect(error.kind == .noInput, "an unknown record is noInput: \(error)")
        }
        do {
            try await store.resolveReconcileRecord(run: "no-run", record: "rec-3", note: "x")
            throw ConformanceFailure("resolving in an unknown run succeeded")
        } catch let error as CastleError {
            try expect(error.kind == .noInput, "an unknown run is noInput: \(error)")
        }
    }

    static func claimsPerDays(_ store: any ReconcileStore) async throws {
        let days = Int32(20788)...20789
        func claim(_ side: ReconcileClaim.Side, _ id: String, _ day: Int32, _ run: String) -> ReconcileClaim {
            ReconcileClaim(side: side, id: id, day: day, run: run, days: days)
        }
        let first = [
            claim(.external, "txn_1", 20788, "r-a"), claim(.ledger, "dep-1", 20788, "r-a"),
            claim(.external, "txn_2", 20789, "r-a"), claim(.ledger, "dep-2", 20790, "r-a"),
        ]
        try expect(
            try await store.saveReconcileRun(sampleRun("r-a", results: 2), days: days, claims: first, watermarks: [:]),
            "a run with claims is stored"
        )
        func sorted(_ claims: [ReconcileClaim]) -> [ReconcileClaim] {
            claims.sorted { ($0.side.rawValue, $0.id) < ($1.side.rawValue, $1.id) }
        }
        let other = Int32(20789)...20790
        var seen = sorted(try await store.reconcileClaims(days: 20789...20790, excluding: other))
        try expect(seen == sorted([first[2], first[3]]), "claims dated in the days asked, of other days: \(seen)")
        try expect(
            try await store.reconcileClaims(days: 20700...20800, excluding: days).isEmpty,
            "a run's own days are left out"
        )
        // A rerun of the same days replaces what they claim, even when it is a run already stored.
        let second = [claim(.external, "txn_1", 20788, "r-b")]
        _ = try await store.saveReconcileRun(sampleRun("r-b", results: 1), days: days, claims: second, watermarks: [:])
        seen = try await store.reconcileClaims(days: 20700...20800, excluding: other)
        try expect(seen == second, "the latest run of the days says what they claim: \(seen)")
        try expect(
            !(try await store.saveReconcileRun(sampleRun("r-a", results: 2), days: days, claims: first, watermarks: [:])),
            "a run already stored is not stored again"
        )
        seen = sorted(try await store.reconcileClaims(days: 20700...20800, excluding: other))
        try expect(seen == sorted(first), "but its claims are the days' again: \(seen)")
        // Claims of other days stay.
        let later = [ReconcileClaim(side: .external, id: "txn_9", day: 20795, run: "r-c", days: 20795...20795)]
        _ = try await store.saveReconcileRun(
            sampleRun("r-c", results: 1),
            days: 20795...20795,
            claims: later,
            watermarks: [:]
        )
        seen = sorted(try await store.reconcileClaims(days: 20700...20800, excluding: other))
        try expect(seen == sorted(first + later), "claims of other days stay: \(seen)")
    }

    static func lockIsExclusive(_ store: any ReconcileStore) async throws {
        guard let first = try await store.acquireReconcileLock() else {
            throw ConformanceFailure("the free lock was not given")
        }
        try expect(try await store.acquireReconcileLock() == nil, "a second holder is refused")
        await first.release()
        guard let again = try await store.acquireReconcileLock() else {
            throw ConformanceFailure("the released lock was not given again")
        }
        await again.release()
    }

    static func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw ConformanceFailure(message()) }
    }
}
