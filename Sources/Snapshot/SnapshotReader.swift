public import CastleSupport
import Crypto
public import Storage

#if canImport(Glibc)
import Glibc
#endif

/// Reads a snapshot archive in one pass and checks everything the format promises (spec/snapshot.md):
/// `manifest.json` first, `manifest.sha256` second and matching it, then exactly the listed table members,
/// in the manifest's order, each of the listed size, row count and SHA-256, every row decodable; no other
/// member, no link, no device, no unsafe path, no truncation, no compression bomb. Every refusal is a
/// ``CastleError`` of kind `dataError` (65) naming the file, the member and the reason.
public final class SnapshotReader {
    private let reader: ArchiveReader
    private let limits: SnapshotLimits
    public private(set) var manifest: SnapshotManifest?
    /// Bytes of table data read so far (uncompressed), for progress.
    public private(set) var tableBytesRead: Int64 = 0
    public var name: String { reader.name }
    public var compressedBytesRead: Int64 { reader.packedBytes }
    public var sizeBytes: Int64? { reader.sizeBytes }

    public init(path: String?, limits: SnapshotLimits = SnapshotLimits()) throws(CastleError) {
        reader = try ArchiveReader(path: path, limits: limits)
        self.limits = limits
    }

    /// Reads and checks `manifest.json` and `manifest.sha256`.
    public func readManifest() throws(CastleError) -> SnapshotManifest {
        guard let first = try reader.next(after: "the start") else {
            throw reader.hostile("manifest.json", "missing: the archive is empty")
        }
        guard first.path == "manifest.json" else {
            throw reader.hostile(first.path, "where manifest.json belongs (it must be the first member)")
        }
        guard first.size <= Int64(limits.manifestBytes_max) else {
            throw reader.hostile(
                "manifest.json",
                "\(first.size) bytes, more than the \(limits.manifestBytes_max) allowed"
            )
        }
        let bytes = try readWhole(first)
        let parsed: SnapshotManifest
        do throws(ManifestError) {
            parsed = try SnapshotManifest(parsing: bytes)
        } catch {
            throw reader.hostile("manifest.json", error.reason)
        }
        guard let second = try reader.next(after: "manifest.json") else {
            throw reader.hostile("manifest.sha256", "missing")
        }
        guard second.path == "manifest.sha256" else {
            throw reader.hostile(second.path, "where manifest.sha256 belongs (it must be the second member)")
        }
        guard second.size <= 80 else { throw reader.hostile("manifest.sha256", "\(second.size) bytes, not a digest") }
        var digest = try readWhole(second)
        if digest.last == UInt8(ascii: "\n") { digest.removeLast() }
        let expected = hexString(Array(SHA256.hash(data: bytes)))
        guard String(decoding: digest, as: UTF8.self) == expected else {
            throw reader.hostile("manifest.json", "checksum mismatch: manifest.sha256 does not match its bytes")
        }
        manifest = parsed
        return parsed
    }

    private func readWhole(_ member: ArchiveReader.Member) throws(CastleError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(member.size))
        var got = 0
        while got < bytes.count {
            let n = try bytes.withUnsafeMutableBytes { raw in
                Result { () throws(CastleError) -> Int in
                    try reader.read(into: raw.baseAddress! + got, count: raw.count - got, member: member.path)
                }
            }.get()
            if n == 0 { throw reader.hostile(member.path, "truncated stream: \(got) of \(member.size) bytes") }
            got += n
        }
        return bytes
    }

    /// Reads every table member after the manifest, in order, handing each table's rows to `visit` in
    /// batches (after ``readManifest()``). Each table's checks complete before the next table starts;
    /// the end of the archive is checked last, so a caller that commits after this returns commits only
    /// a wholly good archive.
    public func readTables(
        _ visit: (SnapshotManifest.Table, [[RowValue]]) async throws(CastleError) -> Void
    ) async throws(CastleError) {
        guard let manifest else { throw CastleError(.software, "readTables before readManifest") }
        var seen: Set<String> = ["manifest.json", "manifest.sha256"]
        var previous = "manifest.sha256"
        let chunk = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { chunk.deallocate() }
        for table in manifest.tables {
            guard let member = try reader.next(after: previous) else {
                throw reader.hostile(table.file, "listed in the manifest but missing from the archive")
            }
            try checkPlace(member.path, expected: table.file, seen: seen, manifest: manifest)
            seen.insert(member.path)
            previous = member.path
            guard member.size <= limits.memberBytes_max else {
                throw reader.hostile(
                    member.path,
                    "oversized: \(member.size) bytes, more than \(limits.memberBytes_max)"
                )
            }
            guard member.size == table.bytes else {
                throw reader.hostile(member.path, "\(member.size) bytes where the manifest says \(table.bytes)")
            }
            var hasher = SHA256()
            // The start of a line that the last chunk cut, completed by the next.
            var pending: [UInt8] = []
            var rows: [[RowValue]] = []
            rows.reserveCapacity(tableRowsBatch_max)
            var rowCount: Int64 = 0
            var lineNumber: Int64 = 0
            var memberBytes: Int64 = 0
            let decoder = RowDecoder(columns: table.columns)
            func flush() async throws(CastleError) {
                guard !rows.isEmpty else { return }
                try await visit(table, rows)
                rows.removeAll(keepingCapacity: true)
            }
            func take(_ line: UnsafeBufferPointer<UInt8>) throws(CastleError) {
                lineNumber += 1
                if let row = decoder.decodeCanonical(line) {
                    rows.append(row)
                } else {
                    switch RowCodec.decodeStrict(ArraySlice(line), columns: table.columns) {
                    case .success(let row): rows.append(row)
                    case .failure(let error):
                        throw reader.hostile(member.path, "line \(lineNumber): \(error.reason)")
                    }
                }
                rowCount += 1
                guard rowCount <= table.rows else {
                    throw reader.hostile(member.path, "more rows than the \(table.rows) the manifest lists")
                }
            }
            while true {
                let n = try reader.read(into: chunk, count: 1 << 20, member: member.path)
                if n == 0 { break }
                let bytes = UnsafeRawBufferPointer(start: chunk, count: n)
                hasher.update(bufferPointer: bytes)
                memberBytes += Int64(n)
                tableBytesRead += Int64(n)
                // Lines are decoded where they lie in the chunk; only a line cut by the chunk's end is copied.
                let base = chunk.assumingMemoryBound(to: UInt8.self)
                var start = 0
                while start < n, let found = memchr(base + start, Int32(UInt8(ascii: "\n")), n - start) {
                    let newline = base.distance(to: found.assumingMemoryBound(to: UInt8.self))
                    if pending.isEmpty {
                        try take(UnsafeBufferPointer(start: base + start, count: newline - start))
                    } else {
                        pending.append(contentsOf: UnsafeBufferPointer(start: base + start, count: newline - start))
                        try pending.withUnsafeBufferPointer { line in
                            Result { () throws(CastleError) in try take(line) }
                        }.get()
                        pending.removeAll(keepingCapacity: true)
                    }
                    start = newline + 1
                    if rows.count >= tableRowsBatch_max { try await flush() }
                }
                if start < n { pending.append(contentsOf: UnsafeBufferPointer(start: base + start, count: n - start)) }
                guard pending.count <= limits.lineBytes_max else {
                    throw reader.hostile(
                        member.path,
                        "line \(lineNumber + 1) is longer than \(limits.lineBytes_max) bytes"
                    )
                }
            }
            guard memberBytes == member.size else {
                throw reader.hostile(member.path, "truncated stream: \(memberBytes) of \(member.size) bytes")
            }
            guard pending.isEmpty else { throw reader.hostile(member.path, "the last line has no newline") }
            let digest = hexString(Array(hasher.finalize()))
            guard digest == table.sha256 else {
                throw reader.hostile(
                    member.path,
                    "checksum mismatch: SHA-256 \(digest), the manifest says \(table.sha256)"
                )
            }
            guard rowCount == table.rows else {
                throw reader.hostile(member.path, "\(rowCount) rows where the manifest says \(table.rows)")
            }
            try await flush()
        }
        if let extra = try reader.next(after: previous) {
            try checkPlace(extra.path, expected: nil, seen: seen, manifest: manifest)
        }
        reader.drainInput()
    }

    /// Throws unless `path` is the member expected here: a duplicate, a member out of order and a member
    /// the manifest does not list each get their own reason.
    private func checkPlace(
        _ path: String,
        expected: String?,
        seen: Set<String>,
        manifest: SnapshotManifest
    ) throws(CastleError) {
        if path == expected { return }
        if seen.contains(path) { throw reader.hostile(path, "a duplicate member") }
        if manifest.tables.contains(where: { $0.file == path }) {
            throw reader.hostile(path, "out of the manifest's order (expected \(expected ?? "the end of the archive"))")
        }
        throw reader.hostile(path, "not listed in the manifest")
    }
}
