import Accounting
import CastleSupport
import Crypto
import Foundation
import Ledger
import PostgresBackend
import SQLiteBackend
import Snapshot
import Storage
import Testing

/// A fresh temporary directory, removed when the value goes.
final class TestDirectory: Sendable {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("castle-snap-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { "\(path)/\(name)" }

    /// Writes `lines` (each ending in a newline) to a file here; its path.
    func write(_ name: String, _ lines: [String]) throws -> String {
        let path = file(name)
        try Data(lines.map { $0 + "\n" }.joined().utf8).write(to: URL(fileURLWithPath: path))
        return path
    }
}

/// The throwaway PostgreSQL of bin/test (`CASTLE_TEST_POSTGRES_URL`); each use gets a database of its own.
enum PostgresServer {
    static var url: String? {
        ProcessInfo.processInfo.environment["CASTLE_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// By hand without a server the PostgreSQL tests are skipped (visibly); under CI they run and fail.
    static var enabled: Bool { url != nil || ProcessInfo.processInfo.environment["CI"] != nil }

    static let skipReason: Comment =
        "PostgreSQL is not configured: bin/test starts one; by hand, set CASTLE_TEST_POSTGRES_URL"

    /// A URL of a new, empty database.
    static func freshDatabase() async throws -> String {
        let server = try #require(url, "CASTLE_TEST_POSTGRES_URL is not set: CI must run the PostgreSQL tests")
        var parsed = try StorageURL(parsing: server)
        let name = "castle_snap_" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        try await PostgresBackend.administer(parsed, "CREATE DATABASE \(name)")
        parsed.path = name
        let query = server.firstIndex(of: "?").map { String(server[$0...]) } ?? ""
        let base = server.prefix { $0 != "?" }
        let slash = try #require(base.lastIndex(of: "/"))
        _ = parsed
        return "\(base[..<slash])/\(name)\(query)"
    }
}

enum Backends {
    static let registered: Void = {
        SQLitePlugin.register()
        PostgresPlugin.register()
    }()

    /// Opens `url` (creating a SQLite file), migrates it unless told not to, and runs `body` with it.
    static func with<T>(
        _ url: String,
        migrate: Bool = true,
        _ body: (any Store & TableStore) async throws -> T
    ) async throws -> T {
        _ = registered
        let result: Result<T, any Error> = try await StorageRegistry.withBackend(url, create: true) {
            (backend) throws(CastleError) -> Result<T, any Error> in
            if migrate, let schema = backend.schema {
                try await Migrator(database: schema, storeName: backend.displayURL).up()
            }
            guard let store = backend as? any Store & TableStore else {
                throw CastleError(.software, "\(backend.displayURL) is not a TableStore")
            }
            do {
                return .success(try await body(store))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}

/// Fills a store through its ordinary API: a dataset, queue messages (one dead), matcher commits with
/// events, trades and resting orders, and a queue cursor. Text with quotes, newlines and non-ASCII, an
/// empty account, a null `ts`, negative and extreme integers: what the row encoding must carry exactly.
func fill(_ backend: any Store & MessageQueue, orders: Int = 500) async throws {
    let ingest = try await backend.beginIngest(dataset: "day")
    var rows: [OrderRow] = []
    for line in 1...Int64(orders) {
        let account = line % 7 == 0 ? "" : ",\"account\":\"acct-\(line % 13)\""
        rows.append(
            OrderRow(
                line: line,
                symbol: line % 2 == 0 ? "BTC-USD" : "ÉTH-€",
                body: "{\"op\":\"new\",\"id\":\(line),\"symbol\":\"BTC-USD\",\"note\":\"q\\\"\\n\"\(account)}"
            )
        )
    }
    try await ingest.append(rows)
    _ = try await ingest.commit()
    let enqueue = try await backend.beginEnqueue(source: "feed")
    try await enqueue.append(Array(rows.prefix(50)))
    _ = try await enqueue.commit()
    try await backend.markConsumed(partition: .whole, through: 20, inFlight: 22)
    _ = try await backend.recoverInFlight(partition: .whole, after: 20, maxAttempts: 1)
    var previous: Int64 = 0
    for batch in 0..<3 {
        let base = Int64(batch * 10)
        let events = (1...10).map {
            "{\"seq\":\(base + Int64($0)),\"type\":\"trade\",\"maker_account\":\"acct-\($0 % 3)\",\"taker_account\":\"acct-\($0 % 5)\"}\n"
        }.joined()
        var trades: [TradeRow] = []
        for index in Int64(1)...3 {
            trades.append(
                TradeRow(
                    seq: base + index,
                    symbol: "BTC-USD",
                    price: Int64.max - index,
                    qty: -index,
                    maker: UInt64.max - UInt64(index),
                    taker: UInt64(index),
                    side: "buy",
                    ts: index == 2 ? nil : Int64.min + index,
                    makerAccount: index == 2 ? nil : "acct-\(index)",
                    takerAccount: "acct-\(index + 4)"
                )
            )
        }
        var upserts: [RestingOrderRow] = []
        for index in Int64(1)...4 {
            let high: UInt64 = batch == 2 ? UInt64.max / 2 : 0
            upserts.append(
                RestingOrderRow(
                    id: UInt64(base + index) + high,
                    symbol: "BTC-USD",
                    side: UInt8(index % 2),
                    price: 100 + index,
                    qty: 5,
                    account: index == 1 ? "" : "acct-\(index)",
                    postOnly: index == 3,
                    stp: 1,
                    priority: base + index
                )
            )
        }
        let segment = EventSegment(firstSeq: base + 1, lastSeq: base + 10, body: Array(events.utf8))
        let commit = MatchCommit(
            consumer: "match:0/1",
            offset: base + 10,
            lastSeq: base + 10,
            events: segment,
            trades: trades,
            upserts: upserts,
            deletes: batch == 1 ? [1] : []
        )
        try await backend.commitMatch(commit, previousOffset: previous)
        previous = base + 10
    }
}

/// The instruments file of the repository (BTC-USD and the rest; USD at 6 decimals).
let instrumentsPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("datasets/instruments.ndjson").path

/// The run `fillLedger` stores, and the record of it that it resolves.
let storedRunID = "r-5e7a0c1d2b3f4a69"
let resolvedRecord = "txn_2"

/// Fills the ledger and reconcile's tables through the ordinary paths: deposits posted as `castle ledger
/// post` posts them, a matcher consumer's trades settled as `castle ledger settle` settles them (fees
/// too), a withdrawal with a ref and a memo and its reversal, and a reconcile run stored with a
/// watermark and one of its breaks resolved. Deterministic: the same calls give the same rows anywhere.
func fillLedger(_ backend: any Backend, directory: TestDirectory) async throws {
    let instruments = try LedgerInstruments.load(path: instrumentsPath)
    let postedAt: Int64 = 1_796_220_000_000_000_000
    let deposits = try directory.write(
        "deposits.ndjson",
        [
            #"{"key":"fund-1","kind":"deposit","ts":1,"postings":[{"account":"external:world","asset":"USD","amount":"-1000000"},{"account":"available:acct-1","asset":"USD","amount":"1000000"}]}"#,
            #"{"key":"fund-2","kind":"deposit","ts":2,"postings":[{"account":"external:world","asset":"BTC","amount":"-100"},{"account":"available:acct-2","asset":"BTC","amount":"100"}]}"#,
        ]
    )
    let posted = try await LedgerPost.run(
        path: deposits,
        assets: instruments.assets,
        store: backend,
        postedAt: postedAt
    )
    #expect(posted.posted == 2)
    // Three trades of one BTC at 50,000.00 on a consumer of its own: acct-1 buys from acct-2.
    let trades = (Int64(1)...3).map { seq in
        TradeRow(
            seq: seq,
            symbol: "BTC-USD",
            price: 5_000_000 + seq,
            qty: 10_000,
            maker: UInt64(100 + seq),
            taker: UInt64(200 + seq),
            side: "buy",
            ts: 1_000 + seq,
            makerAccount: "acct-2",
            takerAccount: "acct-1"
        )
    }
    try await backend.commitMatch(
        MatchCommit(consumer: "match:1/2", offset: 3, lastSeq: 3, events: nil, trades: trades),
        previousOffset: 0
    )
    let settled = try await LedgerSettle.run(
        store: backend,
        consumer: "match:1/2",
        instruments: instruments,
        fees: FeeTable(defaultSchedule: FeeSchedule(makerRate_ppm: 100, takerRate_ppm: 250)),
        postedAt: postedAt + 1
    )
    #expect(settled.trades == 3 && settled.through == 3)
    let withdrawal = try directory.write(
        "withdrawal.ndjson",
        [
            #"{"key":"out-1","kind":"withdrawal","ts":5,"ref":"txn_2","memo":"wire \"é\" 🚀","postings":[{"account":"available:acct-1","asset":"USD","amount":"-250.5"},{"account":"external:world","asset":"USD","amount":"250.5"}]}"#
        ]
    )
    _ = try await LedgerPost.run(path: withdrawal, assets: instruments.assets, store: backend, postedAt: postedAt + 2)
    let reversal = try directory.write(
        "reversal.ndjson",
        [
            #"{"key":"out-1-back","kind":"reversal","ts":6,"reverses":"out-1","postings":[{"account":"available:acct-1","asset":"USD","amount":"250.5"},{"account":"external:world","asset":"USD","amount":"-250.5"}]}"#
        ]
    )
    _ = try await LedgerPost.run(path: reversal, assets: instruments.assets, store: backend, postedAt: postedAt + 3)

    let reconcile = try #require(backend as? any ReconcileStore)
    let results = [
        ("matched", "txn_1", "fund-1"), ("unmatched_external", resolvedRecord, "out-1"),
        ("unmatched_ledger", "fund-2", ""),
    ].map { resultClass, record, key in
        ReconcileResultRow(
            resultClass: resultClass,
            record: record,
            ndjson: #"{"run":"\#(storedRunID)","class":"\#(resultClass)","record":"\#(record)","ledger":"\#(key)"}"#,
            csv: "\(storedRunID),\(resultClass),\(record),\"\(key), \"\"q\"\"\""
        )
    }
    let run = ReconcileRun(run: storedRunID, windowFrom: 20_424, windowTo: 20_425, breaks: 2, results: results)
    let days: ClosedRange<Int32> = 20_424...20_425
    let claims = [
        ReconcileClaim(side: .external, id: "txn_1", day: 20_424, run: storedRunID, days: days),
        ReconcileClaim(side: .ledger, id: "fund-1", day: 20_424, run: storedRunID, days: days),
    ]
    #expect(
        try await reconcile.saveReconcileRun(
            run,
            days: days,
            claims: claims,
            watermarks: ["bank.csv": 20_425, "psp.csv": 20_424]
        )
    )
    let open = ReconcileRun(run: "r-0000000000000001", windowFrom: nil, windowTo: nil, breaks: 0, results: [])
    #expect(try await reconcile.saveReconcileRun(open, days: nil, claims: [], watermarks: [:]))
    try await reconcile.resolveReconcileRecord(run: storedRunID, record: resolvedRecord, note: "refunded by hand")
}

/// Each table's rows and SHA-256 as the seam reads them: equal stores give equal sums.
func tableSums(_ store: any TableStore) async throws -> [String] {
    try await store.withTableRead { (read) throws(CastleError) -> [String] in
        var sums: [String] = []
        for table in read.tables {
            var hasher = SHA256()
            var rows = 0
            try await read.scan(table) { (batch) throws(CastleError) in
                var bytes: [UInt8] = []
                for row in batch { RowCodec.encode(row, columns: table.columns, into: &bytes) }
                hasher.update(data: bytes)
                rows += batch.count
            }
            sums.append("\(table.name) \(rows) \(hasher.finalize().map { String(format: "%02x", $0) }.joined())")
        }
        return sums
    }
}

func create(
    _ store: any Store & TableStore,
    to path: String,
    residency: ResidencyPolicy? = nil
) async throws
    -> SnapshotCreate.Summary
{
    try await SnapshotCreate(
        output: path,
        region: "eu-west-1",
        regionGiven: false,
        residency: residency,
        castleVersion: "test",
        createdAtSeconds: 1_796_220_000,
        showProgress: false
    ).run(store: store)
}

/// The error a throwing call threw, as a CastleError.
func castleError(_ body: () async throws -> Void) async -> CastleError? {
    do {
        try await body()
        return nil
    } catch let error as CastleError {
        return error
    } catch {
        Issue.record("not a CastleError: \(error)")
        return nil
    }
}

/// A member's text, and after it every string value of its rows that is base64 of UTF-8 text (a blob
/// column: the matcher's event runs) decoded: what a reader of the archive can recover from it.
func decodedText(_ bytes: [UInt8]) -> String {
    var text = String(decoding: bytes, as: UTF8.self)
    for line in text.split(separator: "\n") {
        guard let row = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
        for case let value as String in row.values {
            if let data = Data(base64Encoded: value), let decoded = String(data: data, encoding: .utf8) {
                text += "\n" + decoded
            }
        }
    }
    return text
}
