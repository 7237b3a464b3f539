public import CastleSupport
import Crypto
public import Storage
import Streams

#if canImport(Glibc)
import Glibc
#endif

/// `castle snapshot create`: every table of the store, read in one consistent read, into a verified
/// archive (spec/snapshot.md). Each table is first spooled to a temporary file while it is hashed (the
/// manifest, which comes first in the archive, holds every table's size and SHA-256), then the archive is
/// written through libarchive into the output: memory stays bounded by a batch, whatever the store's size.
public struct SnapshotCreate: Sendable {
    /// `-o`: a file (written atomically), or nil / `-` for stdout.
    public var output: String?
    /// The region to record when the store has none; a store that recorded another is refused when
    /// `regionGiven`.
    public var region: String
    public var regionGiven: Bool
    public var residency: ResidencyPolicy?
    public var compression: SnapshotCompression
    public var castleVersion: String
    /// Seconds since the epoch, for `created_at` and the members' time.
    public var createdAtSeconds: Int64
    public var showProgress: Bool

    public init(
        output: String?,
        region: String,
        regionGiven: Bool,
        residency: ResidencyPolicy?,
        compression: SnapshotCompression = .zstd,
        castleVersion: String,
        createdAtSeconds: Int64,
        showProgress: Bool
    ) {
        self.output = output
        self.region = region
        self.regionGiven = regionGiven
        self.residency = residency
        self.compression = compression
        self.castleVersion = castleVersion
        self.createdAtSeconds = createdAtSeconds
        self.showProgress = showProgress
    }

    public struct Summary: Sendable {
        public var manifest: SnapshotManifest
        public var tableBytes: Int64
        public var archiveBytes: Int64
        public var rows: Int64 { manifest.tables.reduce(0) { $0 + $1.rows } }
    }

    public func run(store: any Store & TableStore) async throws(CastleError) -> Summary {
        let spool = try SpoolDirectory()
        defer { spool.remove() }
        let progress = ProgressBar(label: "snapshot", forceDisabled: !showProgress)
        var bytesSoFar: Int64 = 0
        var rowsSoFar: Int64 = 0
        let (schemaVersion, storedRegion, tables, matcher) = try await store.withTableRead {
            (read) throws(CastleError) -> (Int, String?, [SnapshotManifest.Table], [SnapshotManifest.Matcher]) in
            if let stored = read.region, regionGiven, stored != region {
                throw CastleError(
                    .usage,
                    "\(store.displayURL) is region \(stored), not \(region); give --region \(stored) or leave it out"
                )
            }
            var entries: [SnapshotManifest.Table] = []
            let books = BookHashes()
            for table in read.tables {
                let path = spool.path(for: table.name)
                let sink = try SpoolFile(path: path)
                var hasher = SHA256()
                var rows: Int64 = 0
                var bytes: Int64 = 0
                var line: [UInt8] = []
                line.reserveCapacity(1 << 20)
                let rewrite = residency?.rewriter(for: table)
                let watcher = books.watcher(for: table)
                let encoder = RowEncoder(columns: table.columns)
                do throws(CastleError) {
                    try await read.scan(table) { (batch) throws(CastleError) in
                        line.removeAll(keepingCapacity: true)
                        if let rewrite {
                            for var row in batch {
                                try rewrite(&row)
                                watcher?(row)
                                encoder.encode(row, into: &line)
                            }
                        } else {
                            for row in batch {
                                watcher?(row)
                                encoder.encode(row, into: &line)
                            }
                        }
                        line.withUnsafeBytes { hasher.update(bufferPointer: $0) }
                        try sink.write(line)
                        rows += Int64(batch.count)
                        bytes += Int64(line.count)
                        rowsSoFar += Int64(batch.count)
                        bytesSoFar += Int64(line.count)
                        progress.update(
                            done: 0,
                            total: nil,
                            status: "\(table.name): \(rowsSoFar) rows, \(bytesSoFar / 1_000_000) MB"
                        )
                    }
                    try sink.close()
                } catch {
                    try? sink.close(quietly: true)
                    throw error
                }
                entries.append(
                    SnapshotManifest.Table(
                        name: table.name,
                        file: SnapshotManifest.Table.file(for: table.name),
                        encoding: "ndjson",
                        columns: table.columns,
                        rows: rows,
                        bytes: bytes,
                        sha256: hexString(Array(hasher.finalize()))
                    )
                )
            }
            return (read.schemaVersion, read.region, entries, books.entries)
        }
        let manifest = SnapshotManifest(
            castleVersion: castleVersion,
            schemaVersion: schemaVersion,
            region: storedRegion ?? region,
            createdAt: rfc3339(createdAtSeconds),
            sourceBackend: backendName(store.displayURL),
            residency: residency?.record,
            tables: tables,
            matcher: matcher
        )
        // Write-behind: the kernel's copy and the disk's writeback overlap the compression.
        let sink = try OutputSink(path: output, writeBehind: true)
        do throws(CastleError) {
            let archive = try ArchiveWriter(sink: sink, compression: compression, mtime: createdAtSeconds)
            let manifestBytes = manifest.bytes
            try archive.beginMember("manifest.json", size: Int64(manifestBytes.count))
            try archive.write(manifestBytes)
            let digest = Array((hexString(Array(SHA256.hash(data: manifestBytes))) + "\n").utf8)
            try archive.beginMember("manifest.sha256", size: Int64(digest.count))
            try archive.write(digest)
            var written: Int64 = 0
            for table in tables {
                try archive.beginMember(table.file, size: table.bytes)
                try spool.copy(table.name, bytes: table.bytes) { (chunk) throws(CastleError) in
                    try archive.write(chunk)
                    written += Int64(chunk.count)
                    progress.update(done: Int(written), total: Int(bytesSoFar), status: "writing \(table.file)")
                }
            }
            try archive.finish()
            try sink.commit()
        } catch {
            sink.abort()
            progress.finish()
            throw error
        }
        progress.finish()
        return Summary(manifest: manifest, tableBytes: bytesSoFar, archiveBytes: Int64(sink.writtenBytes))
    }
}

/// `castle snapshot verify` and `inspect`: no database.
public enum SnapshotCheck {
    public struct Summary: Sendable {
        public var manifest: SnapshotManifest
        public var tableBytes: Int64
        public var compressedBytes: Int64
    }

    /// Every member and checksum; throws the first problem (65).
    public static func verify(
        path: String?,
        limits: SnapshotLimits = SnapshotLimits(),
        showProgress: Bool
    ) async throws(CastleError) -> Summary {
        let reader = try SnapshotReader(path: path, limits: limits)
        let manifest = try reader.readManifest()
        let progress = ProgressBar(label: "verify", forceDisabled: !showProgress)
        let total = manifest.tables.reduce(0) { $0 + $1.bytes }
        let matcher = MatcherCheck(manifest)
        try await reader.readTables { (table, batch) throws(CastleError) in
            matcher.take(table, batch)
            progress.update(done: Int(reader.tableBytesRead), total: Int(total), status: table.file)
        }
        progress.finish()
        try matcher.finish(reader.name)
        return Summary(
            manifest: manifest,
            tableBytes: reader.tableBytesRead,
            compressedBytes: reader.compressedBytesRead
        )
    }

    /// The manifest only, after checking it against `manifest.sha256`.
    public static func manifest(path: String?) throws(CastleError) -> SnapshotManifest {
        try SnapshotReader(path: path).readManifest()
    }

    /// `inspect`'s table for people.
    public static func describe(_ manifest: SnapshotManifest) -> String {
        var text = ""
        text += "format          \(SnapshotManifest.format)\n"
        text += "castle          \(manifest.castleVersion)\n"
        text += "schema          \(manifest.schemaVersion)\n"
        text += "region          \(manifest.region)\n"
        text += "created         \(manifest.createdAt)\n"
        text += "source          \(manifest.sourceBackend)\n"
        if let residency = manifest.residency {
            text += "residency       \(residency.policy)"
            if !residency.pseudonymised.isEmpty {
                text += "; pseudonymised \(residency.pseudonymised.joined(separator: ", "))"
            }
            if !residency.dropped.isEmpty { text += "; dropped \(residency.dropped.joined(separator: ", "))" }
            text += "\n"
        } else {
            text += "residency       none\n"
        }
        text += "\n" + pad("table", 22) + pad("rows", 12, right: true) + pad("bytes", 14, right: true) + "  sha256\n"
        for table in manifest.tables {
            text += pad(table.name, 22) + pad(String(table.rows), 12, right: true)
            text += pad(String(table.bytes), 14, right: true) + "  " + table.sha256 + "\n"
        }
        let rows = manifest.tables.reduce(0) { $0 + $1.rows }
        let bytes = manifest.tables.reduce(0) { $0 + $1.bytes }
        text += pad("total", 22) + pad(String(rows), 12, right: true) + pad(String(bytes), 14, right: true) + "\n"
        if !manifest.matcher.isEmpty {
            text += "\n" + pad("consumer", 16) + pad("partition", 10) + pad("offset", 12, right: true)
            text += pad("last_seq", 12, right: true) + "  book_sha256\n"
            for entry in manifest.matcher {
                text += pad(entry.consumer, 16) + pad(entry.partition, 10) + pad(String(entry.offset), 12, right: true)
                text += pad(String(entry.lastSeq), 12, right: true) + "  " + entry.bookSha256 + "\n"
            }
        }
        return text
    }

    private static func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - text.count))
        return right ? fill + text : text + fill
    }
}

/// `castle snapshot restore`: the archive into a store, in one transaction of the store's (see
/// ``TableStore/restoreTables(schemaVersion:replace:region:_:)``), then a check that every matcher
/// consumer stands where the source's stood.
public struct SnapshotRestore: Sendable {
    public var input: String?
    public var replace: Bool
    /// The target's region, recorded in the same transaction.
    public var region: String
    public var limits: SnapshotLimits
    public var showProgress: Bool
    /// Fault injection for the kill -9 tests, set only by a debug build's hidden flag: once this many rows
    /// are handed to the store, say so on stderr and wait, inside the open transaction, to be killed.
    public var debugPauseAfterRows: Int64?

    public init(
        input: String?,
        replace: Bool,
        region: String,
        limits: SnapshotLimits = SnapshotLimits(),
        showProgress: Bool,
        debugPauseAfterRows: Int64? = nil
    ) {
        self.input = input
        self.replace = replace
        self.region = region
        self.limits = limits
        self.showProgress = showProgress
        self.debugPauseAfterRows = debugPauseAfterRows
    }

    public struct Summary: Sendable {
        public var manifest: SnapshotManifest
        public var rows: Int64
        public var tableBytes: Int64
    }

    public func run(store: any Store & TableStore) async throws(CastleError) -> Summary {
        let reader = try SnapshotReader(path: input, limits: limits)
        let manifest = try reader.readManifest()
        let progress = ProgressBar(label: "restore", forceDisabled: !showProgress)
        let total = manifest.tables.reduce(0) { $0 + $1.bytes }
        var rows: Int64 = 0
        do throws(CastleError) {
            try await store.restoreTables(schemaVersion: manifest.schemaVersion, replace: replace, region: region) {
                (transaction) throws(CastleError) in
                var targets: [String: TableInfo] = [:]
                for table in manifest.tables {
                    guard let target = transaction.tables.first(where: { $0.name == table.name }) else {
                        if table.rows == 0 { continue }
                        throw CastleError(
                            .dataError,
                            "\(reader.name): \(table.file): \(store.displayURL) has no table \(table.name) at schema version \(manifest.schemaVersion)"
                        )
                    }
                    for column in table.columns where !target.columns.contains(where: { $0.name == column.name }) {
                        throw CastleError(
                            .dataError,
                            "\(reader.name): \(table.file): \(store.displayURL) has no column \(table.name).\(column.name)"
                        )
                    }
                    targets[table.name] = target
                }
                // Checked before the commit: an archive whose rows disagree with its manifest's matcher
                // section leaves the target as it was.
                let matcher = MatcherCheck(manifest)
                try await reader.readTables { (table, batch) throws(CastleError) in
                    guard let target = targets[table.name] else { return }
                    matcher.take(table, batch)
                    try await transaction.insert(batch, into: target, columns: table.columns.map(\.name))
                    rows += Int64(batch.count)
                    progress.update(
                        done: Int(reader.tableBytesRead),
                        total: Int(total),
                        status: "\(table.name): \(rows) rows"
                    )
                    if let pause = debugPauseAfterRows, rows >= pause {
                        writeStandardError("castle snapshot restore: paused after \(rows) rows (debug fault)\n")
                        while true { try? await Task.sleep(for: .seconds(3600)) }
                    }
                }
                try matcher.finish(reader.name)
            }
        } catch {
            progress.finish()
            throw error
        }
        progress.finish()
        // What the manifest promises of the matcher, read back from the committed store.
        for entry in manifest.matcher {
            let state = try await store.loadMatcherState(consumer: entry.consumer)
            let book = BookHashes.hash(state.orders)
            guard state.offset == entry.offset, state.lastSeq == entry.lastSeq, book == entry.bookSha256 else {
                throw CastleError(
                    .software,
                    "\(store.displayURL): after the restore, consumer \(entry.consumer) stands at offset \(state.offset), seq \(state.lastSeq), book \(book.prefix(12)); the snapshot says offset \(entry.offset), seq \(entry.lastSeq), book \(entry.bookSha256.prefix(12))"
                )
            }
        }
        return Summary(manifest: manifest, rows: rows, tableBytes: reader.tableBytesRead)
    }
}

/// The manifest's matcher section against the rows of an archive being read (verify, restore): each
/// consumer's offset, last seq and book hash recomputed from `consumer_offsets` and `resting_orders`.
final class MatcherCheck {
    private let promised: [SnapshotManifest.Matcher]
    private let books = BookHashes()
    private var watchers: [String: ([RowValue]) -> Void] = [:]

    init(_ manifest: SnapshotManifest) {
        promised = manifest.matcher
        for table in manifest.tables {
            let info = TableInfo(name: table.name, columns: table.columns, primaryKey: [])
            watchers[table.name] = books.watcher(for: info)
        }
    }

    func take(_ table: SnapshotManifest.Table, _ batch: [[RowValue]]) {
        guard let watcher = watchers[table.name] else { return }
        for row in batch { watcher(row) }
    }

    /// Throws 65, naming the archive, when the rows stand elsewhere than the manifest says.
    func finish(_ archive: String) throws(CastleError) {
        let found = books.entries
        guard found != promised else { return }
        throw CastleError(
            .dataError,
            "\(archive): manifest.json: its matcher section says [\(promised.map(\.summary).joined(separator: "; "))], the rows give [\(found.map(\.summary).joined(separator: "; "))]"
        )
    }
}

/// The matcher section of the manifest, gathered while the tables stream by: offsets from
/// `consumer_offsets`, and a SHA-256 per consumer over its resting orders (`resting_orders`, in id order).
final class BookHashes {
    private var offsets: [String: (offset: Int64, lastSeq: Int64)] = [:]
    private var hashers: [String: SHA256] = [:]

    /// The canonical text of one resting order, the same from the rows of a snapshot and from
    /// ``Store/loadMatcherState(consumer:)`` after a restore.
    static func line(_ order: RestingOrderRow) -> [UInt8] {
        let fields: [String] = [
            String(Int64(bitPattern: order.id)), order.symbol, String(order.side), String(order.price),
            String(order.qty), order.account, order.postOnly ? "1" : "0", String(order.stp), String(order.priority),
        ]
        return Array((fields.joined(separator: "\t") + "\n").utf8)
    }

    static func hash(_ orders: [RestingOrderRow]) -> String {
        var hasher = SHA256()
        for order in orders.sorted(by: { Int64(bitPattern: $0.id) < Int64(bitPattern: $1.id) }) {
            hasher.update(data: line(order))
        }
        return hexString(Array(hasher.finalize()))
    }

    /// A function that takes each row of `table` when it feeds the matcher section, nil otherwise. Rows
    /// come in primary-key order, (consumer, id) for resting orders: the order ``hash(_:)`` sorts into.
    func watcher(for table: TableInfo) -> (([RowValue]) -> Void)? {
        func index(_ name: String) -> Int? { table.columns.firstIndex { $0.name == name } }
        switch table.name {
        case "consumer_offsets":
            guard let consumer = index("consumer"), let offset = index("applied_offset"), let seq = index("last_seq")
            else { return nil }
            return { row in self.offsets[text(row[consumer])] = (integer(row[offset]), integer(row[seq])) }
        case "resting_orders":
            guard let consumer = index("consumer"), let id = index("id"), let symbol = index("symbol"),
                let side = index("side"), let price = index("price"), let qty = index("qty"),
                let account = index("account"), let postOnly = index("post_only"), let stp = index("stp"),
                let priority = index("priority")
            else { return nil }
            return { row in
                let order = RestingOrderRow(
                    id: UInt64(bitPattern: integer(row[id])),
                    symbol: text(row[symbol]),
                    side: UInt8(truncatingIfNeeded: integer(row[side])),
                    price: integer(row[price]),
                    qty: integer(row[qty]),
                    account: text(row[account]),
                    postOnly: integer(row[postOnly]) != 0,
                    stp: UInt8(truncatingIfNeeded: integer(row[stp])),
                    priority: integer(row[priority])
                )
                self.hashers[text(row[consumer]), default: SHA256()].update(data: Self.line(order))
            }
        default:
            return nil
        }
    }

    /// One entry per consumer, sorted by name.
    var entries: [SnapshotManifest.Matcher] {
        Set(offsets.keys).union(hashers.keys).sorted().map { consumer in
            let position = offsets[consumer] ?? (0, 0)
            let book = hashers[consumer].map { hexString(Array($0.finalize())) } ?? BookHashes.hash([])
            let partition = consumer.hasPrefix("match:") ? String(consumer.dropFirst("match:".count)) : ""
            return SnapshotManifest.Matcher(
                consumer: consumer,
                partition: partition,
                offset: position.offset,
                lastSeq: position.lastSeq,
                bookSha256: book
            )
        }
    }
}

func integer(_ value: RowValue) -> Int64 {
    if case .integer(let number) = value { return number }
    return 0
}

func text(_ value: RowValue) -> String {
    if case .text(let string) = value { return string }
    return ""
}

/// `sqlite`, `postgres` or `memory`, from a store's display URL.
func backendName(_ url: String) -> String {
    let scheme = url.split(separator: ":").first.map(String.init) ?? url
    return scheme == "postgresql" ? "postgres" : scheme
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (proleptic Gregorian, UTC).
func rfc3339(_ seconds: Int64) -> String {
    let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
    let secondOfDay = seconds - days * 86_400
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let mp = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
    return
        "\(year)-\(two(month))-\(two(day))T\(two(secondOfDay / 3_600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60))Z"
}

/// A spooled table being written: a plain file, neither synced nor renamed (it lives only until the
/// archive is written), each batch handed to the kernel in one call.
final class SpoolFile {
    let path: String
    private var fd: Int32

    init(path: String) throws(CastleError) {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CastleError(.cantCreate, "\(path): cannot create: \(errnoText())") }
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    func write(_ bytes: [UInt8]) throws(CastleError) {
        try bytes.withUnsafeBytes { raw in
            Result { () throws(CastleError) in
                var offset = 0
                while offset < raw.count {
                    let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                    if n < 0 && errno == EINTR { continue }
                    if n < 0 { throw CastleError(.ioError, "\(path): write failed: \(errnoText())") }
                    offset += n
                }
            }
        }.get()
    }

    func close(quietly: Bool = false) throws(CastleError) {
        guard fd >= 0 else { return }
        let status = Glibc.close(fd)
        fd = -1
        if status != 0 && !quietly { throw CastleError(.ioError, "\(path): write failed: \(errnoText())") }
    }
}

/// A private temporary directory for the spooled tables, removed on every path (and by an interrupt,
/// through ``TemporaryFiles``).
final class SpoolDirectory {
    let path: String
    private var files: [(path: String, slot: Int?)] = []

    init() throws(CastleError) {
        let base = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(base)/castle-snapshot.XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer in
            mkdtemp(buffer.baseAddress!).map { String(cString: $0) }
        }
        guard let made else {
            throw CastleError(.cantCreate, "\(base): cannot make a temporary directory: \(errnoText())")
        }
        path = made
    }

    func path(for table: String) -> String {
        let file = "\(path)/\(table).ndjson"
        files.append((file, TemporaryFiles.register(file)))
        return file
    }

    /// Streams the spooled table to `write` in chunks, checking that it holds `bytes` bytes.
    func copy(
        _ table: String,
        bytes: Int64,
        _ write: (UnsafeRawBufferPointer) throws(CastleError) -> Void
    ) throws(CastleError) {
        let file = "\(path)/\(table).ndjson"
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CastleError(.ioError, "\(file): cannot open: \(errnoText())") }
        defer { close(fd) }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var total: Int64 = 0
        while true {
            let n = read(fd, buffer, 1 << 20)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw CastleError(.ioError, "\(file): read failed: \(errnoText())") }
            if n == 0 { break }
            try write(UnsafeRawBufferPointer(start: buffer, count: n))
            total += Int64(n)
        }
        guard total == bytes else {
            throw CastleError(.ioError, "\(file): the spooled table has \(total) bytes, \(bytes) were written")
        }
    }

    func remove() {
        for file in files {
            unlink(file.path)
            TemporaryFiles.unregister(file.slot)
        }
        rmdir(path)
    }
}
