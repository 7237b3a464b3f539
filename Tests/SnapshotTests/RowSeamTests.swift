import Accounting
import CastleSupport
import Crypto
import Foundation
import Snapshot
import Storage
import Testing

/// The row seam on every backend, and snapshots through it: the same content gives the same rows and the
/// same bytes from memory, SQLite and PostgreSQL, and an archive restores into any of them exactly.
@Suite("row seam and round trips") struct RowSeamTests {
    /// A target for each backend kind: a SQLite file, a fresh PostgreSQL database, a memory store.
    static func url(_ kind: String, _ directory: TestDirectory, _ name: String) async throws -> String {
        switch kind {
        case "sqlite": "sqlite://\(directory.file("\(name).db"))"
        case "postgres": try await PostgresServer.freshDatabase()
        default: "memory://snap-\(name)-\(UUID().uuidString)"
        }
    }

    /// Fills a store with rows in every table: the matcher's, the queue's, serve's client order ids, the
    /// ledger's and reconcile's.
    static func fillAll(_ store: any Store & TableStore, _ directory: TestDirectory) async throws {
        let backend = store as! any Backend
        try await fill(backend)
        _ = try await backend.claimClientOrderIDs([
            ClientOrderClaim(account: "acct-1", clientOrderID: "c-1", orderID: 7, content: #"{"qty":1,"side":"buy"}"#),
            ClientOrderClaim(
                account: "acct-2",
                clientOrderID: "c-1",
                orderID: 9,
                content: #"{"qty":"2","side":"sell"}"#
            ),
        ])
        try await fillLedger(backend, directory: directory)
    }

    /// The tables as a store's seam describes them, and each one's rows and checksum.
    static func tablesAndSums(_ store: any TableStore) async throws -> ([TableInfo], [String]) {
        (try await store.withTableRead { (read) throws(CastleError) in read.tables }, try await tableSums(store))
    }

    @Test func everyBackendShowsTheSameTables() async throws {
        let directory = try TestDirectory()
        var seen: [String: ([TableInfo], [String])] = [:]
        for kind in ["memory", "sqlite"] {
            let url = try await Self.url(kind, directory, "fill")
            seen[kind] = try await Backends.with(url) { store in
                try await Self.fillAll(store, directory)
                return try await Self.tablesAndSums(store)
            }
        }
        let (tables, sums) = try #require(seen["sqlite"])
        #expect(tables.contains { $0.name == "ledger_entries" } && tables.contains { $0.name == "reconcile_results" })
        for sum in sums {
            #expect(!sum.contains(" 0 "), "every table of the schema has rows here: \(sum)")
        }
        #expect(seen["memory"]?.0 == tables, "memory has SQLite's tables: columns, types, order and keys")
        #expect(seen["memory"]?.1 == sums, "memory shows the rows SQLite shows, byte for byte")
    }

    @Test(.enabled(if: PostgresServer.enabled, PostgresServer.skipReason))
    func postgresShowsTheSameTablesAsSQLite() async throws {
        let directory = try TestDirectory()
        let sqlite = try await Backends.with(try await Self.url("sqlite", directory, "a")) { store in
            try await Self.fillAll(store, directory)
            return try await tableSums(store)
        }
        let postgres = try await Backends.with(try await Self.url("postgres", directory, "b")) { store in
            try await Self.fillAll(store, directory)
            return try await tableSums(store)
        }
        #expect(postgres == sqlite)
    }

    /// Source → archive → each backend → archive → SQLite: the manifests' tables equal at every step, and
    /// every matcher consumer stands where it stood.
    @Test(arguments: ["memory", "sqlite"])
    func roundTrip(_ kind: String) async throws {
        try await Self.roundTrip(through: kind)
    }

    @Test(.enabled(if: PostgresServer.enabled, PostgresServer.skipReason))
    func roundTripThroughPostgres() async throws {
        try await Self.roundTrip(through: "postgres")
    }

    static func roundTrip(through kind: String) async throws {
        let directory = try TestDirectory()
        let source = "sqlite://\(directory.file("source.db"))"
        let (first, ledger) = try await Backends.with(source) { store in
            try await Self.fillAll(store, directory)
            return (try await create(store, to: directory.file("a.tar.zst")), try await LedgerView(store))
        }
        #expect(first.manifest.sourceBackend == "sqlite")
        #expect(first.manifest.matcher.map(\.consumer) == ["match:0/1", "match:1/2"])
        #expect(first.manifest.matcher.first?.lastSeq == 30)
        let middle = try await Self.url(kind, directory, "middle")
        let second = try await Backends.with(middle, migrate: false) { store in
            let restored = try await SnapshotRestore(
                input: directory.file("a.tar.zst"),
                replace: false,
                region: "us-east-1",
                showProgress: false
            ).run(store: store)
            #expect(restored.rows == first.rows)
            #expect(try await store.storedRegion() == "us-east-1")
            #expect(try await store.loadMatcherState(consumer: "match:0/1").lastSeq == 30)
            try await ledger.expectRestored(in: store)
            return try await create(store, to: directory.file("b.tar.zst"))
        }
        #expect(second.manifest.tables == first.manifest.tables, "the same tables, rows and checksums")
        #expect(second.manifest.matcher == first.manifest.matcher)
        #expect(second.manifest.region == "us-east-1")
        let last = "sqlite://\(directory.file("last.db"))"
        let third = try await Backends.with(last, migrate: false) { store in
            _ = try await SnapshotRestore(
                input: directory.file("b.tar.zst"),
                replace: false,
                region: "x",
                showProgress: false
            )
            .run(store: store)
            return try await create(store, to: directory.file("c.tar.zst"))
        }
        #expect(third.manifest.tables == first.manifest.tables)
        let sums = try await Backends.with(source) { try await tableSums($0) }
        #expect(try await Backends.with(last) { try await tableSums($0) } == sums)
    }

    /// Restoring into a store that holds rows: refused (73) without replace, replaced wholly with it.
    @Test(arguments: ["sqlite", "memory"])
    func aNonEmptyTargetIsRefusedUnlessReplaced(_ kind: String) async throws {
        let directory = try TestDirectory()
        let source = "sqlite://\(directory.file("source.db"))"
        let archive = directory.file("a.tar.zst")
        try await Backends.with(source) { store in
            try await fill(store as! any Backend, orders: 100)
            _ = try await create(store, to: archive)
        }
        let target = try await Self.url(kind, directory, "target")
        let before = try await Backends.with(target) { store in
            let ingest = try await (store as! any Backend).beginIngest(dataset: "other")
            try await ingest.append([OrderRow(line: 1, symbol: "X", body: "{}")])
            _ = try await ingest.commit()
            return try await tableSums(store)
        }
        let error = await castleError {
            try await Backends.with(target) { store in
                _ = try await SnapshotRestore(input: archive, replace: false, region: "x", showProgress: false).run(
                    store: store
                )
            }
        }
        #expect(error?.exitCode == 73, "\(error?.message ?? "accepted")")
        #expect(error?.message.contains("dataset_orders") == true, "names a table that has rows")
        #expect(try await Backends.with(target) { try await tableSums($0) } == before)
        try await Backends.with(target) { store in
            _ = try await SnapshotRestore(input: archive, replace: true, region: "x", showProgress: false).run(
                store: store
            )
        }
        let expected = try await Backends.with(source) { try await tableSums($0) }
        #expect(try await Backends.with(target) { try await tableSums($0) } == expected)
    }

    /// A memory store is a source like any other: its snapshot is byte for byte the snapshot of a SQLite
    /// store with the same content, and restores into SQLite, whose ledger then verifies.
    @Test func memoryToSQLite() async throws {
        let directory = try TestDirectory()
        let (fromMemory, ledger) = try await Backends.with(try await Self.url("memory", directory, "source")) { store in
            try await Self.fillAll(store, directory)
            return (try await create(store, to: directory.file("m.tar.zst")), try await LedgerView(store))
        }
        let fromSQLite = try await Backends.with("sqlite://\(directory.file("twin.db"))") { store in
            try await Self.fillAll(store, directory)
            return try await create(store, to: directory.file("s.tar.zst"))
        }
        #expect(fromMemory.manifest.sourceBackend == "memory")
        #expect(fromMemory.manifest.tables == fromSQLite.manifest.tables, "the same members, rows and SHA-256")
        #expect(fromMemory.manifest.matcher == fromSQLite.manifest.matcher)
        let target = "sqlite://\(directory.file("target.db"))"
        let again = try await Backends.with(target, migrate: false) { store in
            _ = try await SnapshotRestore(
                input: directory.file("m.tar.zst"),
                replace: false,
                region: "x",
                showProgress: false
            ).run(store: store)
            try await ledger.expectRestored(in: store)
            return try await create(store, to: directory.file("t.tar.zst"))
        }
        #expect(again.manifest.tables == fromMemory.manifest.tables)
    }

    /// A snapshot whose ledger has a gap in its posting sequence (the SQL stores never leave one; memory
    /// keeps entries by position) is refused by a restore into memory with 65, and the store is left as
    /// it was, ledger and all.
    @Test func memoryRefusesALedgerGapAndKeepsWhatItHad() async throws {
        let directory = try TestDirectory()
        try await Backends.with("sqlite://\(directory.file("source.db"))") { store in
            try await Self.fillAll(store, directory)
            _ = try await create(store, to: directory.file("good.tar.zst"))
        }
        var members = try readArchive(directory.file("good.tar.zst"))
        var manifest = try SnapshotManifest(parsing: members[0].bytes)
        let index = try #require(manifest.tables.firstIndex { $0.name == "ledger_entries" })
        let member = try #require(members.firstIndex { $0.path == manifest.tables[index].file })
        var lines = members[member].bytes.split(separator: UInt8(ascii: "\n")).map(Array.init)
        try #require(lines.count > 2)
        lines.remove(at: 1)
        members[member].bytes = lines.flatMap { $0 + [UInt8(ascii: "\n")] }
        manifest.tables[index].rows -= 1
        manifest.tables[index].bytes = Int64(members[member].bytes.count)
        manifest.tables[index].sha256 = sha256Hex(members[member].bytes)
        members = HostileArchiveTests.withManifest(manifest, members)
        try writeArchive(members, to: directory.file("gap.tar.zst"))

        let target = try await Self.url("memory", directory, "target")
        let before = try await Backends.with(target) { store in
            try await fill(store as! any Backend, orders: 30)
            return try await tableSums(store)
        }
        let error = await castleError {
            try await Backends.with(target) { store in
                _ = try await SnapshotRestore(
                    input: directory.file("gap.tar.zst"),
                    replace: true,
                    region: "x",
                    showProgress: false
                ).run(store: store)
            }
        }
        #expect(error?.exitCode == 65, "\(error?.message ?? "accepted")")
        #expect(error?.message.contains("ledger_entries") == true, "\(error?.message ?? "")")
        #expect(try await Backends.with(target) { try await tableSums($0) } == before)
    }

    /// Pseudonymised accounts are the HMAC-SHA-256 of the account under the key, the same in every table:
    /// the orders', the trades' and the owners of the users' ledger accounts, so that the restored ledger
    /// verifies, holds the source's amounts under the pseudonyms, takes the source's entries again as
    /// already posted, and settles new trades of the pseudonymised accounts. The exchange's own owner
    /// (`exchange_owners`) and the exchange's accounts stay in clear.
    @Test(arguments: ["sqlite", "memory"])
    func residencyPseudonymisesEveryPersonalField(_ kind: String) async throws {
        try await Self.residencyPseudonymisesEveryPersonalField(into: kind)
    }

    @Test(.enabled(if: PostgresServer.enabled, PostgresServer.skipReason))
    func residencyPseudonymisesEveryPersonalFieldIntoPostgres() async throws {
        try await Self.residencyPseudonymisesEveryPersonalField(into: "postgres")
    }

    static func residencyPseudonymisesEveryPersonalField(into kind: String) async throws {
        let directory = try TestDirectory()
        let key = Array("sixteen byte key and more".utf8)
        let policy = ResidencyPolicy(name: "test", accounts: .pseudonymise, key: key, exchangeOwners: ["house"])
        let instruments = try LedgerInstruments.load(path: instrumentsPath)
        let house = try directory.write(
            "house.ndjson",
            [
                #"{"key":"fund-house","kind":"deposit","ts":3,"postings":[{"account":"external:world","asset":"BTC","amount":"-10"},{"account":"available:house","asset":"BTC","amount":"10"}]}"#
            ]
        )
        let source = "sqlite://\(directory.file("source.db"))"
        let (summary, sourceBalances) = try await Backends.with(source) { store in
            try await Self.fillAll(store, directory)
            let backend = store as! any Backend
            _ = try await LedgerPost.run(path: house, assets: instruments.assets, store: backend, postedAt: 7)
            return (
                try await create(store, to: directory.file("p.tar.zst"), residency: policy),
                try await backend.ledgerBalances(account: nil, asset: nil)
            )
        }
        let pseudonymised = try #require(summary.manifest.residency?.pseudonymised)
        #expect(summary.manifest.residency?.policy == "test")
        for name in [
            "match_events.body.maker_account", "trades.taker_account", "ledger_entries.postings.account",
            "ledger_balances.account",
        ] {
            #expect(pseudonymised.contains(name), "the manifest names \(name)")
        }
        let members = try readArchive(directory.file("p.tar.zst"))
        let text = members.map { decodedText($0.bytes) }.joined()
        #expect(!text.contains("acct-"), "no clear account is left in any member, blobs decoded")
        #expect(text.contains("available:house"), "the exchange's own owner stays in clear")
        #expect(text.contains("fees:exchange") && text.contains("external:world"), "the exchange's accounts too")
        func pseudonym(_ account: String) -> String {
            HMAC<SHA256>.authenticationCode(for: Array(account.utf8), using: SymmetricKey(data: key))
                .map { String(format: "%02x", $0) }.joined()
        }
        let resting = String(
            decoding: members.first { $0.path == "tables/resting_orders.ndjson" }!.bytes,
            as: UTF8.self
        )
        #expect(resting.contains("\"account\":\"\(pseudonym("acct-2"))\""), "a column holding an account")
        #expect(resting.contains("\"account\":\"\""), "no account stays no account")
        let datasets = String(
            decoding: members.first { $0.path == "tables/dataset_orders.ndjson" }!.bytes,
            as: UTF8.self
        )
        #expect(datasets.contains(pseudonym("acct-2")), "an account inside an order's NDJSON")

        let target = try await Self.url(kind, directory, "target")
        try await Backends.with(target, migrate: false) { store in
            _ = try await SnapshotRestore(
                input: directory.file("p.tar.zst"),
                replace: false,
                region: "x",
                showProgress: false
            )
            .run(store: store)
            let backend = try #require(store as? any Backend)
            let orders = try await store.loadMatcherState(consumer: "match:0/1").orders
            #expect(orders.contains { $0.account == pseudonym("acct-3") })
            guard case .success = try await LedgerVerify.run(store: backend) else {
                Issue.record("ledger verify failed on the restored \(kind) store")
                return
            }
            // The source's balances, each user's under its pseudonym: the same amounts.
            var expected = sourceBalances
            for index in expected.indices where expected[index].account.hasPrefix("available:acct-") {
                let owner = String(expected[index].account.dropFirst("available:".count))
                expected[index].account = "available:" + pseudonym(owner)
            }
            expected.sort { ($0.account, $0.asset) < ($1.account, $1.asset) }
            #expect(try await backend.ledgerBalances(account: nil, asset: nil) == expected)
            // A source entry posted again, its owner pseudonymised: already posted (the content hash was
            // computed again over the rewritten postings).
            let again = try directory.write(
                "again-\(kind).ndjson",
                [
                    #"{"key":"fund-1","kind":"deposit","ts":1,"postings":[{"account":"external:world","asset":"USD","amount":"-1000000"},{"account":"available:\#(pseudonym("acct-1"))","asset":"USD","amount":"1000000"}]}"#
                ]
            )
            let reposted = try await LedgerPost.run(
                path: again,
                assets: instruments.assets,
                store: backend,
                postedAt: 8
            )
            #expect(reposted.alreadyPosted == 1 && reposted.posted == 0)
            // New trades of the pseudonymised accounts, and one of an order without an account booked to
            // the house, settle on the restored funds.
            let trades = [
                (Int64(4), Optional(pseudonym("acct-2")), pseudonym("acct-1")), (5, nil, pseudonym("acct-1")),
            ].map { seq, maker, taker in
                TradeRow(
                    seq: seq,
                    symbol: "BTC-USD",
                    price: 5_000_000,
                    qty: 10_000,
                    maker: UInt64(100 + seq),
                    taker: UInt64(200 + seq),
                    side: "buy",
                    ts: 1_000 + seq,
                    makerAccount: maker,
                    takerAccount: taker
                )
            }
            try await backend.commitMatch(
                MatchCommit(consumer: "match:1/2", offset: 5, lastSeq: 5, events: nil, trades: trades),
                previousOffset: 3
            )
            let settled = try await LedgerSettle.run(
                store: backend,
                consumer: "match:1/2",
                instruments: instruments,
                fees: FeeTable(),
                unownedAccount: "house",
                postedAt: 9
            )
            #expect(settled.trades == 2 && settled.through == 5)
            let houseBTC = try await backend.ledgerBalances(account: "available:house", asset: "BTC")
            #expect(houseBTC.map(\.balance) == [1_000_000_000 - 100_000_000], "the house sold one BTC of its ten")
            guard case .success = try await LedgerVerify.run(store: backend) else {
                Issue.record("ledger verify failed after settling on the restored \(kind) store")
                return
            }
        }
    }

    /// A policy file's `exchange_owners` is a list of account ids; anything else is refused (65), naming
    /// the file.
    @Test func residencyPolicyFileReadsExchangeOwners() throws {
        let directory = try TestDirectory()
        let good = try directory.write(
            "good.json",
            [#"{"policy": "p", "accounts": "drop", "exchange_owners": ["house", "mm-1"]}"#]
        )
        #expect(try ResidencyPolicy(file: good, environment: [:]).exchangeOwners == ["house", "mm-1"])
        for (name, owners) in [("string.json", #""house""#), ("empty.json", #"[""]"#), ("number.json", "[1]")] {
            let path = try directory.write(
                name,
                [#"{"policy": "p", "accounts": "drop", "exchange_owners": \#(owners)}"#]
            )
            do {
                _ = try ResidencyPolicy(file: path, environment: [:])
                Issue.record("\(name) was accepted")
            } catch {
                #expect(
                    error.exitCode == 65 && error.message.contains(path) && error.message.contains("exchange_owners")
                )
            }
        }
    }

    /// `drop` cannot apply to a ledger (its users' accounts would lose their owners): refused with 65,
    /// saying to pseudonymise, and no archive is written. A store without a ledger drops its accounts,
    /// all but the exchange's own.
    @Test func residencyDropIsRefusedForALedger() async throws {
        let directory = try TestDirectory()
        let policy = ResidencyPolicy(name: "gone", accounts: .drop, key: nil, exchangeOwners: ["acct-4"])
        let error = await castleError {
            try await Backends.with("sqlite://\(directory.file("ledger.db"))") { store in
                try await Self.fillAll(store, directory)
                _ = try await create(store, to: directory.file("d.tar.zst"), residency: policy)
            }
        }
        #expect(error?.exitCode == 65, "\(error?.message ?? "accepted")")
        #expect(error?.message.contains("ledger_balances") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("pseudonymise") == true, "\(error?.message ?? "")")
        #expect(!FileManager.default.fileExists(atPath: directory.file("d.tar.zst")))

        let summary = try await Backends.with("sqlite://\(directory.file("orders.db"))") { store in
            try await fill(store as! any Backend, orders: 60)
            return try await create(store, to: directory.file("o.tar.zst"), residency: policy)
        }
        #expect(summary.manifest.residency?.dropped.contains("ledger_entries.postings.account") == true)
        let text = try readArchive(directory.file("o.tar.zst")).map { decodedText($0.bytes) }.joined()
        #expect(text.contains("acct-4"), "the exchange's own owner is kept")
        let accounts = text.components(separatedBy: "acct-").count - 1
        #expect(accounts > 0 && accounts == text.components(separatedBy: "acct-4").count - 1, "the others are dropped")
    }
}

/// What the ledger and reconcile read back from a store: equal before a snapshot and after its restore,
/// and working there (verify, settle, show).
struct LedgerView: Equatable {
    var entries: [StoredLedgerEntry]
    var balances: [LedgerBalanceRecord]
    var settled: Int64
    var run: ReconcileRun?
    var resolutions: [String: String]
    var watermarks: [String: Int32]

    init(_ store: any Store & TableStore) async throws {
        let ledger = try #require(store as? any Backend)
        let reconcile = try #require(store as? any ReconcileStore)
        entries = try await ledger.readLedgerEntries(LedgerEntryQuery(limit: 1_000))
        balances = try await ledger.ledgerBalances(account: nil, asset: nil)
        settled = try await ledger.settlementWatermark(consumer: "match:1/2")
        run = try await reconcile.loadReconcileRun(storedRunID)
        resolutions = try await reconcile.reconcileResolutions()
        watermarks = try await reconcile.reconcileWatermarks()
    }

    /// The restored store reads back as the source did, its ledger verifies, a settle finds nothing left to
    /// settle, and the stored run shows with its resolution.
    func expectRestored(in store: any Store & TableStore) async throws {
        #expect(entries.count == 7 && settled == 3 && run?.results.count == 3, "the source was filled")
        let restored = try await LedgerView(store)
        #expect(restored == self)
        let backend = try #require(store as? any Backend)
        guard case .success(let summary) = try await LedgerVerify.run(store: backend) else {
            Issue.record("ledger verify failed on \(backend.displayURL)")
            return
        }
        #expect(summary.entries == entries.count && summary.balances == balances.count)
        let settle = try await LedgerSettle.run(
            store: backend,
            consumer: "match:1/2",
            instruments: try LedgerInstruments.load(path: instrumentsPath),
            fees: FeeTable(),
            postedAt: 1
        )
        #expect(settle.trades == 0 && settle.through == 3, "every trade was settled already")
        #expect(restored.resolutions[resolvedRecord] == "refunded by hand")
    }
}

@Suite("snapshot format") struct SnapshotFormatTests {
    @Test func rowsRoundTripExactly() throws {
        let columns = [
            TableColumn(name: "a", type: .integer), TableColumn(name: "b", type: .text),
            TableColumn(name: "c", type: .blob), TableColumn(name: "d", type: .integer),
        ]
        let rows: [[RowValue]] = [
            [.integer(Int64.min), .text("quote \" back \\ nl \n tab \t nul \u{0} é 🚀"), .blob([0, 255, 1]), .null],
            [.integer(Int64.max), .text(""), .blob([]), .integer(0)],
            [.null, .null, .null, .integer(-1)],
        ]
        var bytes: [UInt8] = []
        for row in rows { RowCodec.encode(row, columns: columns, into: &bytes) }
        let lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast()
        #expect(lines.count == rows.count, "one line a row: newlines inside text are escaped")
        for (line, row) in zip(lines, rows) {
            #expect(try RowCodec.decode(line, columns: columns).get() == row)
        }
    }

    @Test func badRowsAreRefusedWithAReason() {
        let columns = [TableColumn(name: "a", type: .integer), TableColumn(name: "b", type: .blob)]
        let cases: [(String, String)] = [
            (#"{"a":1}"#, "expected , before column b"),
            (#"{"b":"AA==","a":1}"#, "column \"b\" where a belongs"),
            (#"{"a":"1","b":null}"#, "not a value of type integer"),
            (#"{"a":1.5,"b":null}"#, "not a 64-bit integer"),
            (#"{"a":9223372036854775808,"b":null}"#, "not a 64-bit integer"),
            (#"{"a":1,"b":"A==="}"#, "not base64"),
            (#"{"a":1,"b":null,"c":2}"#, "expected }"),
        ]
        for (line, reason) in cases {
            switch RowCodec.decode(ArraySlice(Array(line.utf8)), columns: columns) {
            case .success(let row): Issue.record("accepted \(line) as \(row)")
            case .failure(let error): #expect(error.reason.contains(reason), "\(line): \(error.reason)")
            }
        }
    }
}
