internal import CSQLite
import CastleSupport
import Storage

#if canImport(Glibc)
import Glibc
#endif

/// SQLITE_TRANSIENT: SQLite copies bound text and blobs before the call returns.
private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// One SQLite connection with its prepared statements. Not thread-safe: it is used only on the thread of
/// its ``SQLiteSerialConnection``.
final class SQLiteConnection {
    let handle: OpaquePointer
    /// How errors name the database: the store URL.
    let name: String
    private var statements: [String: Statement] = [:]
    /// When the current wait for the write lock began (the busy handler's context).
    private let busyWaitStart = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)

    init(path: String, name: String) throws(CastleError) {
        Self.configureOnce
        self.name = name
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let status = sqlite3_open_v2(path, &handle, flags, nil)
        guard status == SQLITE_OK, let handle else {
            let reason = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(handle)
            busyWaitStart.deallocate()
            throw CastleError(.cantCreate, "\(name): cannot open: \(reason)")
        }
        self.handle = handle
        busyWaitStart.initialize(to: 0)
        waitWhenBusy()
        do {
            // WAL: readers never block the writer; FULL: a committed batch survives a power cut too.
            try execute("PRAGMA journal_mode = WAL")
            try execute("PRAGMA synchronous = FULL")
        } catch {
            sqlite3_close(handle)
            throw error
        }
    }

    /// Process-wide settings, before the first connection: no memory statistics, whose global mutex every
    /// allocation of every connection took (about 3% of an ingest).
    private static let configureOnce: Void = {
        _ = sqlite3_config_memstatus_off()
    }()

    deinit {
        for statement in statements.values { sqlite3_finalize(statement.handle) }
        sqlite3_close(handle)
        busyWaitStart.deallocate()
    }

    /// The error for a failed call, classified by meaning as every backend does (``StoreErrors``).
    func error(_ status: Int32, _ context: String) -> CastleError {
        let reason = String(cString: sqlite3_errmsg(handle))
        // SQLite has no code of its own for a missing table: SQLITE_ERROR with this message.
        if status & 0xff == SQLITE_ERROR && reason.hasPrefix("no such table") {
            return StoreErrors.notMigrated("\(name): \(context)", reason: reason)
        }
        let kind: CastleError.Kind =
            switch status & 0xff {
            case SQLITE_BUSY, SQLITE_LOCKED: .temporaryFailure
            case SQLITE_NOTADB, SQLITE_CORRUPT: .dataError
            case SQLITE_CANTOPEN, SQLITE_READONLY, SQLITE_PERM: .cantCreate
            default: .ioError
            }
        return CastleError(kind, "\(name): \(context): \(reason)")
    }

    /// Runs SQL without results (may hold several statements).
    func execute(_ sql: String) throws(CastleError) {
        let status = sqlite3_exec(handle, sql, nil, nil, nil)
        if status != SQLITE_OK { throw error(status, sql.split(separator: "\n").first.map(String.init) ?? sql) }
    }

    /// A cached prepared statement, reset and with its bindings cleared.
    func prepare(_ sql: String) throws(CastleError) -> Statement {
        if let statement = statements[sql] {
            sqlite3_reset(statement.handle)
            sqlite3_clear_bindings(statement.handle)
            return statement
        }
        var handle: OpaquePointer?
        let status = sqlite3_prepare_v3(self.handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &handle, nil)
        guard status == SQLITE_OK, let handle else { throw error(status, "prepare") }
        let statement = Statement(handle: handle, connection: self)
        statements[sql] = statement
        return statement
    }

    var changes: Int { Int(sqlite3_changes(handle)) }

    /// Resets every cached statement. A statement left on a row keeps its read transaction (and WAL
    /// snapshot) open, and a later write on this connection would then fail with SQLITE_BUSY at once.
    func resetAll() {
        for statement in statements.values { sqlite3_reset(statement.handle) }
    }

    /// Whether commits fsync the WAL (`synchronous = FULL`) or leave it to the next one that does
    /// (`NORMAL`: survives a crash of the process, may lose the last commits on power loss).
    private var syncsCommits = true

    /// Runs `work` in a write transaction (BEGIN IMMEDIATE: takes the write lock first), committing when it
    /// returns and rolling back when it throws. A non-durable transaction skips the fsync: for queue
    /// leases and acks, whose loss only means a redelivery that the consumer's offset makes harmless.
    func writeTransaction<T>(durable: Bool = true, _ work: () throws(CastleError) -> T) throws(CastleError) -> T {
        if durable != syncsCommits {
            try execute(durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL")
            syncsCommits = durable
        }
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try work()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// Asks for journal mode `mode` (`PRAGMA journal_mode`, lower case), without waiting: leaving WAL
    /// needs the database to itself, and another connection that has it open makes this fail at once
    /// rather than after the 10 s busy wait. Returns whether the mode is now `mode`.
    func trySetJournalMode(_ mode: String) -> Bool {
        sqlite3_busy_handler(handle, nil, nil)
        defer { waitWhenBusy() }
        guard let statement = try? prepare("PRAGMA journal_mode = \(mode)") else { return false }
        defer { sqlite3_reset(statement.handle) }
        guard (try? statement.step()) == true else { return false }
        return statement.string(0) == mode
    }

    /// Behind another writer, wait up to 10 s (by the clock) in steps of 1 ms: sqlite3_busy_timeout's
    /// steps grow to 100 ms, so a worker committing between a producer's transactions woke up long
    /// after the lock was free. This thread is the connection's own; the cooperative pool never waits.
    private func waitWhenBusy() {
        sqlite3_busy_handler(
            handle,
            { context, attempts in
                let start = context!.assumingMemoryBound(to: UInt64.self)
                let now = monotonicNanoseconds()
                if attempts == 0 { start.pointee = now }
                guard now - start.pointee < 10_000_000_000 else { return 0 }
                usleep(1_000)
                return 1
            },
            UnsafeMutableRawPointer(busyWaitStart)
        )
    }

    func tableExists(_ name: String) throws(CastleError) -> Bool {
        let statement = try prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?")
        statement.bind(1, name)
        defer { sqlite3_reset(statement.handle) }
        return try statement.step()
    }
}

/// A prepared statement: bind by 1-based index, `step()` until it returns false, read columns by 0-based index.
struct Statement {
    let handle: OpaquePointer
    unowned let connection: SQLiteConnection

    func bind(_ index: Int32, _ value: Int64) { sqlite3_bind_int64(handle, index, value) }
    func bind(_ index: Int32, _ value: Int) { sqlite3_bind_int64(handle, index, Int64(value)) }
    func bind(_ index: Int32, _ value: Int64?) {
        if let value { sqlite3_bind_int64(handle, index, value) } else { sqlite3_bind_null(handle, index) }
    }
    func bind(_ index: Int32, _ value: String) {
        // The UTF-8 in place, with its length: no C string made, SQLite copies the bytes.
        var value = value
        value.withUTF8 { bytes in
            let raw = UnsafeRawPointer(bytes.baseAddress) ?? UnsafeRawPointer(bitPattern: 1)!
            _ = sqlite3_bind_text64(
                handle,
                index,
                raw.assumingMemoryBound(to: CChar.self),
                sqlite3_uint64(bytes.count),
                transient,
                UInt8(SQLITE_UTF8)
            )
        }
    }
    /// Binds UTF-8 bytes as text.
    func bind(_ index: Int32, utf8 bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            let text = (raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!).assumingMemoryBound(to: CChar.self)
            _ = sqlite3_bind_text64(handle, index, text, sqlite3_uint64(raw.count), transient, UInt8(SQLITE_UTF8))
        }
    }
    func bind(_ index: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            _ = sqlite3_bind_blob64(handle, index, raw.baseAddress, sqlite3_uint64(raw.count), transient)
        }
    }

    /// Binds the three parameters of `SQLiteBackend.partitionFilter`, `(? = 1 OR shard % ? = ?)`, from `index`.
    func bind(_ index: Int32, partition: Partition) {
        bind(index, partition.count)
        bind(index + 1, partition.count)
        bind(index + 2, partition.index)
    }

    /// True when a row is ready; false when done.
    @discardableResult
    func step() throws(CastleError) -> Bool {
        let status = sqlite3_step(handle)
        if status == SQLITE_ROW { return true }
        if status == SQLITE_DONE { return false }
        sqlite3_reset(handle)
        throw connection.error(status, "statement")
    }

    /// Steps a statement that returns no rows, and resets it for the next use.
    func run() throws(CastleError) {
        try step()
        sqlite3_reset(handle)
    }

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }
    func int(_ column: Int32) -> Int { Int(sqlite3_column_int64(handle, column)) }
    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }
    func string(_ column: Int32) -> String {
        guard let text = sqlite3_column_text(handle, column) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)
    }
    func bytes(_ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let blob = sqlite3_column_blob(handle, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: blob, count: count))
    }
}
