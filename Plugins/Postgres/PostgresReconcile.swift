public import CastleSupport
import PostgresNIO
public import Storage

/// `castle reconcile`'s storage in the database (migration 0006); the lock is a session advisory lock on
/// a connection of its own, which the server releases when the session ends, however it ends.
extension PostgresBackend: ReconcileStore {
    public func saveReconcileRun(
        _ run: ReconcileRun,
        days: ClosedRange<Int32>?,
        claims: [ReconcileClaim],
        watermarks: [String: Int32]
    ) async throws(CastleError) -> Bool {
        try await transaction("storing reconcile run \(run.run)") { connection in
            if let days {
                let from = days.lowerBound
                let to = days.upperBound
                try await connection.rows(
                    "DELETE FROM reconcile_claims WHERE window_from = \(from) AND window_to = \(to)"
                )
                // In slices, as the results below.
                let slice_max = 5000
                var start = 0
                while start < claims.count {
                    let slice = claims[start..<min(start + slice_max, claims.count)]
                    let sides = slice.map { Int16($0.side.rawValue) }
                    let ids = slice.map(\.id)
                    let claimDays = slice.map(\.day)
                    let runs = slice.map(\.run)
                    try await connection.rows(
                        """
                        INSERT INTO reconcile_claims (window_from, window_to, side, id, day, run)
                        SELECT \(from), \(to), * FROM unnest(\(sides)::smallint[], \(ids)::text[],
                                                             \(claimDays)::integer[], \(runs)::text[])
                        """
                    )
                    start += slice.count
                }
            }
            let windowFrom = run.windowFrom.map { Int32($0) }
            let windowTo = run.windowTo.map { Int32($0) }
            let inserted = try await connection.rows(
                """
                INSERT INTO reconcile_runs (run, window_from, window_to, breaks)
                VALUES (\(run.run), \(windowFrom), \(windowTo), \(Int64(run.breaks)))
                ON CONFLICT (run) DO NOTHING RETURNING 1
                """
            )
            guard !inserted.isEmpty else { return false }
            // In slices, each one statement with arrays: a run of a million results is a few hundred round trips.
            let slice_max = 5000
            var start = 0
            while start < run.results.count {
                let slice = run.results[start..<min(start + slice_max, run.results.count)]
                let seqs = Array(Int64(start)..<Int64(start + slice.count))
                let classes = slice.map(\.resultClass)
                let records = slice.map(\.record)
                let lines = slice.map(\.ndjson)
                let rows = slice.map(\.csv)
                try await connection.rows(
                    """
                    INSERT INTO reconcile_results (run, seq, class, record, ndjson, csv)
                    SELECT \(run.run), * FROM unnest(\(seqs)::bigint[], \(classes)::text[], \(records)::text[],
                                                     \(lines)::text[], \(rows)::text[])
                    """
                )
                start += slice.count
            }
            for (source, day) in watermarks.sorted(by: { $0.key < $1.key }) {
                try await connection.rows(
                    """
                    INSERT INTO reconcile_watermarks (source, through_day) VALUES (\(source), \(day))
                    ON CONFLICT (source) DO UPDATE
                    SET through_day = GREATEST(reconcile_watermarks.through_day, excluded.through_day)
                    """
                )
            }
            return true
        }
    }

    public func loadReconcileRun(_ run: String) async throws(CastleError) -> ReconcileRun? {
        try await transaction("loading reconcile run \(run)") { connection -> ReconcileRun? in
            guard
                let header = try await connection.rows(
                    "SELECT window_from, window_to, breaks FROM reconcile_runs WHERE run = \(run)"
                ).first
            else { return nil }
            let (windowFrom, windowTo, breaks) = try header.decode((Int32?, Int32?, Int64).self)
            var stored = ReconcileRun(
                run: run,
                windowFrom: windowFrom,
                windowTo: windowTo,
                breaks: Int(breaks),
                results: []
            )
            stored.results = try await connection.rows(
                "SELECT class, record, ndjson, csv FROM reconcile_results WHERE run = \(run) ORDER BY seq"
            ).map { row in
                let (resultClass, record, ndjson, csv) = try row.decode((String, String, String, String).self)
                return ReconcileResultRow(resultClass: resultClass, record: record, ndjson: ndjson, csv: csv)
            }
            return stored
        }
    }

    public func reconcileClaims(
        days: ClosedRange<Int32>,
        excluding: ClosedRange<Int32>
    ) async throws(CastleError) -> [ReconcileClaim] {
        let (low, high) = (days.lowerBound, days.upperBound)
        let (from, to) = (excluding.lowerBound, excluding.upperBound)
        let rows = try await select(
            "reading reconcile claims",
            """
            SELECT side, id, day, run, window_from, window_to FROM reconcile_claims
            WHERE day BETWEEN \(low) AND \(high) AND NOT (window_from = \(from) AND window_to = \(to))
            """
        ) {
            try $0.decode((Int16, String, Int32, String, Int32, Int32).self)
        }
        return rows.map { side, id, day, run, from, to in
            ReconcileClaim(
                side: ReconcileClaim.Side(rawValue: Int(side)) ?? .external,
                id: id,
                day: day,
                run: run,
                days: min(from, to)...max(from, to)
            )
        }
    }

    public func reconcileWatermarks() async throws(CastleError) -> [String: Int32] {
        let rows = try await select(
            "reading reconcile watermarks",
            "SELECT source, through_day FROM reconcile_watermarks"
        ) {
            try $0.decode((String, Int32).self)
        }
        return Dictionary(rows, uniquingKeysWith: { first, _ in first })
    }

    public func resolveReconcileRecord(run: String, record: String, note: String) async throws(CastleError) {
        let found = try await transaction("resolving \(record) of run \(run)") { connection -> Bool in
            let exists = try await connection.rows(
                "SELECT 1 FROM reconcile_results WHERE run = \(run) AND record = \(record) LIMIT 1"
            )
            guard !exists.isEmpty else { return false }
            try await connection.rows(
                """
                INSERT INTO reconcile_resolutions (record, run, note) VALUES (\(record), \(run), \(note))
                ON CONFLICT (record) DO UPDATE SET run = excluded.run, note = excluded.note
                """
            )
            return true
        }
        if !found { throw ReconcileStoreErrors.noRecord(run: run, record: record) }
    }

    public func reconcileResolutions() async throws(CastleError) -> [String: String] {
        let rows = try await select("reading reconcile resolutions", "SELECT record, note FROM reconcile_resolutions") {
            try $0.decode((String, String).self)
        }
        return Dictionary(rows, uniquingKeysWith: { first, _ in first })
    }

    public func acquireReconcileLock() async throws(CastleError) -> (any PartitionLock)? {
        let key = LockKey.key("castle:reconcile")
        let connection = try await dedicatedConnection()
        do {
            let taken = try await connection.rows("SELECT pg_try_advisory_lock(\(key))").first?.decode(Bool.self)
            guard taken == true else {
                try? await connection.close()
                return nil
            }
        } catch {
            try? await connection.close()
            throw storageError(error, "\(displayURL): taking the reconcile lock")
        }
        return PostgresPartitionLock(connection: connection, key: key)
    }
}
