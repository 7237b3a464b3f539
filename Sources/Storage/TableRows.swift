public import CastleSupport

// The backend-neutral row seam: every table of a store as typed rows, read in one consistent snapshot and
// written back in one transaction. `castle snapshot` is built on it; it knows no table by name, so the
// tables later migrations add travel without a change here. The tables are listed from the schema itself
// (sqlite_master, information_schema); castle's own bookkeeping (`castle_*`: applied migrations, the
// region) stays with each store.

/// How a column's values cross the seam. Integers of every width and booleans (as 0 and 1) are
/// ``integer``; decimals, timestamps and everything else a database can print are ``text``; binary is
/// ``blob``. Never a floating-point type: money is integers or decimal text.
public enum ColumnType: String, Sendable, Hashable {
    case integer
    case text
    case blob
}

public struct TableColumn: Sendable, Hashable {
    public var name: String
    public var type: ColumnType

    public init(name: String, type: ColumnType) {
        self.name = name
        self.type = type
    }
}

/// A table as its schema describes it: columns in their declared order, and the primary key's columns
/// in key order (rows are read in that order, so the same rows always come out in the same order).
public struct TableInfo: Sendable, Hashable {
    public var name: String
    public var columns: [TableColumn]
    public var primaryKey: [String]

    public init(name: String, columns: [TableColumn], primaryKey: [String]) {
        self.name = name
        self.columns = columns
        self.primaryKey = primaryKey
    }

    /// Whether a table is castle's bookkeeping rather than data: never snapshotted, never restored.
    public static func isBookkeeping(_ name: String) -> Bool {
        name.hasPrefix("castle_") || name.hasPrefix("sqlite_")
    }
}

/// One value of a row. Equal values read from SQLite and from PostgreSQL are equal here, which is what
/// makes a snapshot of one restore into the other byte for byte.
public enum RowValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case text(String)
    case blob([UInt8])
}

/// Rows are handed over in batches of at most this many: memory stays bounded whatever a table's size.
public let tableRowsBatch_max = 4_096

/// One consistent read of every table: a single read transaction on SQLite, REPEATABLE READ READ ONLY on
/// PostgreSQL, a copy taken under the lock in memory. Writers may keep writing; they are not seen.
public protocol TableReadTransaction: AnyObject {
    /// The store's schema version (the highest applied migration).
    var schemaVersion: Int { get }
    /// The region the store recorded (migration 0007), nil when none was.
    var region: String? { get }
    /// Every data table, sorted by name.
    var tables: [TableInfo] { get }
    /// Every row of `table` in primary-key order, in batches of at most ``tableRowsBatch_max``; each row
    /// has `table.columns.count` values in column order.
    func scan(
        _ table: TableInfo,
        _ visit: ([[RowValue]]) async throws(CastleError) -> Void
    ) async throws(CastleError)
}

/// The transaction a restore writes in: the target has been migrated to the snapshot's schema version
/// and emptied (or found empty) inside it; nothing is visible until the whole restore commits.
public protocol TableRestoreTransaction: AnyObject {
    /// The target's data tables after migrating, sorted by name.
    var tables: [TableInfo] { get }
    /// Inserts rows whose values are in the order of `columns` (a subset of the table's columns, the
    /// others take their defaults).
    func insert(_ rows: [[RowValue]], into table: TableInfo, columns: [String]) async throws(CastleError)
}

/// A store whose tables can be read and restored as rows. SQLite, PostgreSQL and memory all are.
public protocol TableStore: AnyObject, Sendable {
    /// Runs `body` inside one consistent read of every table.
    func withTableRead<T>(
        _ body: (any TableReadTransaction) async throws(CastleError) -> T
    ) async throws(CastleError) -> T

    /// Runs `body` inside one write transaction that first migrates the store to `schemaVersion` (refused
    /// with `config`, 78, when that is newer than this castle knows), then requires every data table to
    /// be empty (refused with `cantCreate`, 73, naming a table that is not) or, with `replace`, empties
    /// them, and records `region` as the store's. After `body`, identity counters are moved past the restored rows, and the transaction commits.
    /// Any error, and any end of the process before the commit, leaves the store as it was.
    func restoreTables(
        schemaVersion: Int,
        replace: Bool,
        region: String?,
        _ body: (any TableRestoreTransaction) async throws(CastleError) -> Void
    ) async throws(CastleError)

    /// The region the store recorded, nil when none was.
    func storedRegion() async throws(CastleError) -> String?

    /// Records the store's region (migration 0007 made its table).
    func recordRegion(_ name: String) async throws(CastleError)
}

extension TableStore {
    /// The migrations a restore applies to reach `version`, after those already `applied`; refuses a version
    /// newer than `known` holds.
    public static func migrationsToApply(
        upTo version: Int,
        applied: [AppliedMigration],
        known: [Migration],
        store: String
    ) throws(CastleError) -> [Migration] {
        let latest = known.last?.version ?? 0
        guard version <= latest else {
            throw CastleError(
                .config,
                "the snapshot has schema version \(version), newer than this castle knows (latest \(latest)); "
                    + "restore it with a newer castle"
            )
        }
        let appliedVersions = Set(applied.map(\.version))
        for record in applied {
            if let migration = known.first(where: { $0.version == record.version }),
                migration.checksum != record.checksum
            {
                throw CastleError(.config, "\(store): migration \(migration.name) was changed after it was applied")
            }
        }
        if let newest = applied.map(\.version).max(), newest > latest {
            throw CastleError(.config, "\(store): the database has migration \(newest), newer than this castle knows")
        }
        return known.filter { $0.version <= version && !appliedVersions.contains($0.version) }
    }

    /// The error for a restore into a store that holds rows.
    public static func notEmpty(_ store: String, table: String, rows: Int64) -> CastleError {
        CastleError(
            .cantCreate,
            "\(store) is not empty (\(table) has \(rows) rows); restore into an empty store, or give --force to replace its contents"
        )
    }

    /// The error for rows naming a column or table the target does not have.
    public static func unknownTarget(_ store: String, table: String, column: String? = nil) -> CastleError {
        if let column {
            return CastleError(.dataError, "\(store): table \(table) has no column \(column)")
        }
        return CastleError(.dataError, "\(store): no table \(table) at this schema version")
    }
}

/// Whether a region name is acceptable: 1 to 64 letters, digits, `-`, `_` or `.`.
public func isValidRegionName(_ name: String) -> Bool {
    !name.isEmpty && name.utf8.count <= 64
        && name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
        }
}

/// A field of the schema that holds personal data: an account id today (users' profiles join when
/// `serve` has users). A residency policy drops or pseudonymises these, and only these.
public struct PersonalField: Sendable, Hashable {
    /// How the column holds account ids.
    public enum Shape: Sendable, Hashable {
        /// The value is the account id.
        case account
        /// NDJSON lines (an order-stream command, a run of events); these members of each line are
        /// account ids.
        case ndjson(members: [String])
        /// A ledger account name, `KIND:OWNER`: the owner is an account id when the kind is a user's
        /// (``userLedgerKinds``).
        case ledgerAccount
        /// The ledger's postings (``LedgerPostingsText``): each line's account, as ``ledgerAccount``.
        case ledgerPostings
        /// A settlement block's body (``SettlementBlock``): its accounts, as ``ledgerAccount``.
        case settlementBlock
    }

    public var table: String
    public var column: String
    public var shape: Shape

    public init(table: String, column: String, shape: Shape = .account) {
        self.table = table
        self.column = column
        self.shape = shape
    }

    /// How the manifest names it: `table.column`, `table.column.member` for each member of NDJSON, and
    /// `ledger_entries.postings.account` for the postings' accounts.
    public var names: [String] {
        switch shape {
        case .account, .ledgerAccount: ["\(table).\(column)"]
        case .ndjson(let members): members.map { "\(table).\(column).\($0)" }
        case .ledgerPostings, .settlementBlock: ["\(table).\(column).account"]
        }
    }

    /// Account ids in orders (as ingested, queued, dead, resting, with a client order id), in trades (the
    /// matcher's events), and as the owners of the users' ledger accounts, in the postings and in the
    /// balances.
    public static let accounts: [PersonalField] = [
        PersonalField(table: "client_order_ids", column: "account"),
        PersonalField(table: "dataset_orders", column: "body", shape: .ndjson(members: ["account"])),
        PersonalField(table: "dead_letters", column: "body", shape: .ndjson(members: ["account"])),
        PersonalField(
            table: "match_events",
            column: "body",
            shape: .ndjson(members: ["account", "maker_account", "taker_account"])
        ),
        PersonalField(table: "ledger_balances", column: "account", shape: .ledgerAccount),
        PersonalField(table: "ledger_entries", column: "postings", shape: .ledgerPostings),
        PersonalField(table: "ledger_trade_blocks", column: "body", shape: .settlementBlock),
        PersonalField(table: "queue_messages", column: "body", shape: .ndjson(members: ["account"])),
        PersonalField(table: "resting_orders", column: "account"),
        PersonalField(table: "trades", column: "maker_account"),
        PersonalField(table: "trades", column: "taker_account"),
    ]

    /// The kinds of ledger account a user owns (the Ledger module's `AccountKind`s `available` and
    /// `held`): their owner is the user's account id, the one orders and trades name, which settlement
    /// books trades to. The other kinds (`fees`, `clearing`, `bank`, `external`) are the exchange's own
    /// accounts and its processors' and banks': their owners are no one's personal data.
    public static let userLedgerKinds = ["available", "held"]

    /// The owner of a user's ledger account `KIND:OWNER` (its kind in ``userLedgerKinds``), else nil.
    public static func userOwner(ofLedgerAccount name: Substring) -> Substring? {
        guard let colon = name.firstIndex(of: ":"), userLedgerKinds.contains(where: { name[..<colon] == $0 })
        else { return nil }
        let owner = name[name.index(after: colon)...]
        return owner.isEmpty ? nil : owner
    }
}
