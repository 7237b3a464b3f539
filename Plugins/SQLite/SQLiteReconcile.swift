internal import CSQLite
public import CastleSupport
public import Storage

#if canImport(Glibc)
import Glibc
#endif

/// `castle reconcile`'s storage in the database file (migration 0006); the lock is an `flock` on a file
/// beside it, which the kernel releases however the process ends.
extension SQLiteBackend: ReconcileStore {
    public func saveReconcileRun(
        _ run: ReconcileRun,
        days: ClosedRange<Int32>?,
        claims: [ReconcileClaim],
        watermarks: [String: Int32]
    ) async throws(CastleError) -> Bool {
        try await withConnection { (connection) throws(CastleError) -> Bool in
            defer { connection.resetAll() }
            return try connection.writeTransaction { () throws(CastleError) -> Bool in
                if let days {
                    let drop = try connection.prepare(
                        "DELETE FROM reconcile_claims WHERE window_from = ? AND window_to = ?"
                    )
                    drop.bind(1, Int64(days.lowerBound))
                    drop.bind(2, Int64(days.upperBound))
                    try drop.run()
                    let insertClaim = try connection.prepare(
                        "INSERT INTO reconcile_claims (window_from, window_to, side, id, day, run) VALUES (?, ?, ?, ?, ?, ?)"
                    )
                    for claim in claims {
                        insertClaim.bind(1, Int64(days.lowerBound))
                        insertClaim.bind(2, Int64(days.upperBound))
                        insertClaim.bind(3, claim.side.rawValue)
                        insertClaim.bind(4, claim.id)
                        insertClaim.bind(5, Int64(claim.day))
                        insertClaim.bind(6, claim.run)
                        try insertClaim.run()
                    }
                }
                let insertRun = try connection.prepare(
                    "INSERT OR IGNORE INTO reconcile_runs (run, window_from, window_to, breaks) VALUES (?, ?, ?, ?)"
                )
                insertRun.bind(1, run.run)
                insertRun.bind(2, run.windowFrom.map { Int64($0) })
                insertRun.bind(3, run.windowTo.map { Int64($0) })
                insertRun.bind(4, run.breaks)
                try insertRun.run()
                guard connection.changes == 1 else { return false }
                let insertResult = try connection.prepare(
                    "INSERT INTO reconcile_results (run, seq, class, record, ndjson, csv) VALUES (?, ?, ?, ?, ?, ?)"
                )
                for (seq, row) in run.results.enumerated() {
                    insertResult.bind(1, run.run)
                    insertResult.bind(2, seq)
                    insertResult.bind(3, row.resultClass)
                    insertResult.bind(4, row.record)
                    insertResult.bind(5, row.ndjson)
                    insertResult.bind(6, row.csv)
                    try insertResult.run()
                }
                let watermark = try connection.prepare(
                    """
                    INSERT INTO reconcile_watermarks (source, through_day) VALUES (?, ?)
                    ON CONFLICT (source) DO UPDATE SET through_day = max(through_day, excluded.through_day)
                    """
                )
                for (source, day) in watermarks.sorted(by: { $0.key < $1.key }) {
                    watermark.bind(1, source)
                    watermark.bind(2, Int64(day))
                    try watermark.run()
                }
                return true
            }
        }
    }

    public func loadReconcileRun(_ run: String) async throws(CastleError) -> ReconcileRun? {
        try await withConnection { (connection) throws(CastleError) -> ReconcileRun? in
            defer { connection.resetAll() }
            let header = try connection.prepare(
                "SELECT window_from, window_to, breaks FROM reconcile_runs WHERE run = ?"
            )
            header.bind(1, run)
            guard try header.step() else { return nil }
            var stored = ReconcileRun(
                run: run,
                windowFrom: header.isNull(0) ? nil : Int32(truncatingIfNeeded: header.int64(0)),
                windowTo: header.isNull(1) ? nil : Int32(truncatingIfNeeded: header.int64(1)),
                breaks: header.int(2),
                results: []
            )
            let rows = try connection.prepare(
                "SELECT class, record, ndjson, csv FROM reconcile_results WHERE run = ? ORDER BY seq"
            )
            rows.bind(1, run)
            while try rows.step() {
                stored.results.append(
                    ReconcileResultRow(
                        resultClass: rows.string(0),
                        record: rows.string(1),
                        ndjson: rows.string(2),
                        csv: rows.string(3)
                    )
                )
            }
            return stored
        }
    }

    public func reconcileClaims(
        days: ClosedRange<Int32>,
        excluding: ClosedRange<Int32>
    ) async throws(CastleError) -> [ReconcileClaim] {
        try await withConnection { (connection) throws(CastleError) -> [ReconcileClaim] in
            defer { connection.resetAll() }
            let rows = try connection.prepare(
                """
                SELECT side, id, day, run, window_from, window_to FROM reconcile_claims
                WHERE day BETWEEN ? AND ? AND NOT (window_from = ? AND window_to = ?)
                """
            )
            rows.bind(1, Int64(days.lowerBound))
            rows.bind(2, Int64(days.upperBound))
            rows.bind(3, Int64(excluding.lowerBound))
            rows.bind(4, Int64(excluding.upperBound))
            var claims: [ReconcileClaim] = []
            while try rows.step() {
                let from = Int32(truncatingIfNeeded: rows.int64(4))
                let to = Int32(truncatingIfNeeded: rows.int64(5))
                claims.append(
                    ReconcileClaim(
                        side: ReconcileClaim.Side(rawValue: rows.int(0)) ?? .external,
                        id: rows.string(1),
                        day: Int32(truncatingIfNeeded: rows.int64(2)),
                        run: rows.string(3),
                        days: min(from, to)...max(from, to)
                    )
                )
            }
            return claims
        }
    }

    public func reconcileWatermarks() async throws(CastleError) -> [String: Int32] {
        try await withConnection { (connection) throws(CastleError) -> [String: Int32] in
            defer { connection.resetAll() }
            let rows = try connection.prepare("SELECT source, through_day FROM reconcile_watermarks")
            var marks: [String: Int32] = [:]
            while try rows.step() { marks[rows.string(0)] = Int32(truncatingIfNeeded: rows.int64(1)) }
            return marks
        }
    }

    public func resolveReconcileRecord(run: String, record: String, note: String) async throws(CastleError) {
        try await withConnection { (connection) throws(CastleError) in
            defer { connection.resetAll() }
            try connection.writeTransaction { () throws(CastleError) in
                let exists = try connection.prepare("SELECT 1 FROM reconcile_results WHERE run = ? AND record = ?")
                exists.bind(1, run)
                exists.bind(2, record)
                guard try exists.step() else { throw ReconcileStoreErrors.noRecord(run: run, record: record) }
                sqlite3_reset(exists.handle)
                let upsert = try connection.prepare(
                    """
                    INSERT INTO reconcile_resolutions (record, run, note) VALUES (?, ?, ?)
                    ON CONFLICT (record) DO UPDATE SET run = excluded.run, note = excluded.note
                    """
                )
                upsert.bind(1, record)
                upsert.bind(2, run)
                upsert.bind(3, note)
                try upsert.run()
            }
        }
    }

    public func reconcileResolutions() async throws(CastleError) -> [String: String] {
        try await withConnection { (connection) throws(CastleError) -> [String: String] in
            defer { connection.resetAll() }
            let rows = try connection.prepare("SELECT record, note FROM reconcile_resolutions")
            var notes: [String: String] = [:]
            while try rows.step() { notes[rows.string(0)] = rows.string(1) }
            return notes
        }
    }

    public func acquireReconcileLock() async throws(CastleError) -> (any PartitionLock)? {
        let lockPath = "\(path).reconcile.lock"
        let fd = Glibc.open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { throw CastleError(.cantCreate, "\(lockPath): cannot open the reconcile lock") }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { return FileLock(fd: fd) }
        let failure = errno
        Glibc.close(fd)
        if failure == EWOULDBLOCK { return nil }
        throw CastleError(.ioError, "\(lockPath): cannot lock")
    }
}
