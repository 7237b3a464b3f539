import CArchive
import CastleSupport
import Crypto
import Foundation
import Snapshot
import Storage
import Testing

/// A member of a hand-made archive.
struct TestMember {
    var path: String
    var bytes: [UInt8] = []
    var type: UInt32 = 0o100000
    var symlink: String?
    var hardlink: String?
}

/// Writes `members` as a tar archive through libarchive, compressed with `filter`.
func writeArchive(_ members: [TestMember], to path: String, filter: String = "zstd") throws {
    let archive = try #require(archive_write_new())
    defer { archive_write_free(archive) }
    archive_write_set_format_pax_restricted(archive)
    switch filter {
    case "gzip": archive_write_add_filter_gzip(archive)
    case "xz": archive_write_add_filter_xz(archive)
    case "none": archive_write_add_filter_none(archive)
    default: archive_write_add_filter_zstd(archive)
    }
    try #require(archive_write_open_filename(archive, path) == ARCHIVE_OK)
    for member in members {
        let entry = try #require(archive_entry_new())
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname(entry, member.path)
        archive_entry_set_filetype(entry, member.type)
        archive_entry_set_perm(entry, 0o644)
        if let symlink = member.symlink { archive_entry_set_symlink(entry, symlink) }
        if let hardlink = member.hardlink { archive_entry_set_hardlink(entry, hardlink) }
        let regular = member.type == 0o100000 && member.hardlink == nil
        archive_entry_set_size(entry, regular ? Int64(member.bytes.count) : 0)
        try #require(archive_write_header(archive, entry) == ARCHIVE_OK)
        if regular && !member.bytes.isEmpty {
            let written = member.bytes.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, $0.count) }
            try #require(written == member.bytes.count)
        }
    }
    try #require(archive_write_close(archive) == ARCHIVE_OK)
}

/// The members of an archive, in order.
func readArchive(_ path: String) throws -> [TestMember] {
    let archive = try #require(archive_read_new())
    defer { archive_read_free(archive) }
    archive_read_support_format_tar(archive)
    archive_read_support_filter_all(archive)
    try #require(archive_read_open_filename(archive, path, 1 << 16) == ARCHIVE_OK)
    var members: [TestMember] = []
    var entry: OpaquePointer?
    while archive_read_next_header(archive, &entry) == ARCHIVE_OK {
        let size = Int(archive_entry_size(entry))
        var bytes = [UInt8](repeating: 0, count: size)
        if size > 0 {
            let got = bytes.withUnsafeMutableBytes { archive_read_data(archive, $0.baseAddress, size) }
            try #require(got == size)
        }
        members.append(TestMember(path: String(cString: archive_entry_pathname(entry)), bytes: bytes))
    }
    return members
}

func sha256Hex(_ bytes: [UInt8]) -> String { SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined() }

/// The hostile corpus (spec/snapshot.md): every archive is made here with libarchive from a good snapshot
/// of a real SQLite store, then refused by `verify` and by `restore` with 65, the member and the reason
/// named, and the target store left exactly as it was.
@Suite("hostile archives") struct HostileArchiveTests {
    /// A good snapshot's members, its manifest, and a filled target store with its sums.
    struct Fixture {
        let directory: TestDirectory
        let members: [TestMember]
        let manifest: SnapshotManifest
        let target: String
    }

    static func fixture() async throws -> Fixture {
        let directory = try TestDirectory()
        let source = "sqlite://\(directory.file("source.db"))"
        try await Backends.with(source) { store in
            try await fill(store as! any Backend, orders: 300)
            _ = try await create(store, to: directory.file("good.tar.zst"))
        }
        let target = "sqlite://\(directory.file("target.db"))"
        try await Backends.with(target) { store in try await fill(store as! any Backend, orders: 40) }
        let members = try readArchive(directory.file("good.tar.zst"))
        let manifest = try SnapshotManifest(parsing: members[0].bytes)
        return Fixture(directory: directory, members: members, manifest: manifest, target: target)
    }

    /// The members with the manifest replaced (and its digest made to match).
    static func withManifest(_ manifest: SnapshotManifest, _ members: [TestMember]) -> [TestMember] {
        var members = members
        members[0].bytes = manifest.bytes
        members[1].bytes = Array((sha256Hex(manifest.bytes) + "\n").utf8)
        return members
    }

    enum Case: String, CaseIterable, CustomTestStringConvertible {
        case traversal, absolutePath, symlink, hardlink, deviceFile, duplicateMember, unlistedMember, missingMember
        case oversizedMember, compressionBomb, checksumMismatch, truncatedStream, manifestNotJSON, futureFormat
        case manifestDigestMismatch, rowCountMismatch, badRow, manifestNotFirst, matcherMismatch
        var testDescription: String { rawValue }
    }

    /// Builds the archive of `kind`; returns its path, the member the error must name, the words of its
    /// reason, and the limits to read it with.
    static func build(_ kind: Case, _ fixture: Fixture) throws -> (String, String, String, SnapshotLimits) {
        let path = fixture.directory.file("\(kind.rawValue).tar.zst")
        var members = fixture.members
        var limits = SnapshotLimits()
        let table = fixture.manifest.tables.first { $0.rows > 0 }!
        let tableIndex = members.firstIndex { $0.path == table.file }!
        var expected: (member: String, reason: String)
        switch kind {
        case .traversal:
            members.insert(TestMember(path: "tables/../../etc/passwd", bytes: Array("x\n".utf8)), at: 2)
            expected = ("tables/../../etc/passwd", "climbs out")
        case .absolutePath:
            members.insert(TestMember(path: "/etc/cron.d/evil", bytes: Array("x\n".utf8)), at: 2)
            expected = ("/etc/cron.d/evil", "absolute path")
        case .symlink:
            members.insert(TestMember(path: "tables/link.ndjson", type: 0o120000, symlink: "/etc/passwd"), at: 2)
            expected = ("tables/link.ndjson", "symbolic link")
        case .hardlink:
            members.insert(TestMember(path: "tables/hard.ndjson", hardlink: "manifest.json"), at: 2)
            expected = ("tables/hard.ndjson", "hard link")
        case .deviceFile:
            members.insert(TestMember(path: "tables/null.ndjson", type: 0o020000), at: 2)
            expected = ("tables/null.ndjson", "device file")
        case .duplicateMember:
            members.insert(members[tableIndex], at: tableIndex + 1)
            expected = (table.file, "duplicate")
        case .unlistedMember:
            members.append(TestMember(path: "tables/extra.ndjson", bytes: Array("{}\n".utf8)))
            expected = ("tables/extra.ndjson", "not listed in the manifest")
        case .missingMember:
            let last = fixture.manifest.tables.last!
            members.removeAll { $0.path == last.file }
            expected = (last.file, "missing")
        case .oversizedMember:
            limits.memberBytes_max = table.bytes - 1
            expected = (table.file, "oversized")
        case .compressionBomb:
            // 64 MiB of zeros, listed with its true size: only the expansion gives it away.
            let zeros = [UInt8](repeating: 0, count: 64 << 20)
            var manifest = fixture.manifest
            let index = manifest.tables.firstIndex { $0.name == table.name }!
            manifest.tables[index].bytes = Int64(zeros.count)
            manifest.tables[index].sha256 = sha256Hex(zeros)
            members = withManifest(manifest, members)
            members[tableIndex].bytes = zeros
            expected = (table.file, "compression bomb")
        case .checksumMismatch:
            var bytes = members[tableIndex].bytes
            let digit = bytes.firstIndex { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "8") }!
            bytes[digit] += 1
            members[tableIndex].bytes = bytes
            expected = (table.file, "checksum mismatch")
        case .truncatedStream:
            try writeArchive(members, to: path)
            let whole = try Data(contentsOf: URL(fileURLWithPath: path))
            try whole.prefix(whole.count * 2 / 3).write(to: URL(fileURLWithPath: path))
            // Wherever the cut falls (the opening read may already meet it), the reason is the truncation.
            return (path, "", "truncated stream", limits)
        case .manifestNotJSON:
            members[0].bytes = Array("{\"format\": \"castle-snapshot/1\", ".utf8)
            members[1].bytes = Array((sha256Hex(members[0].bytes) + "\n").utf8)
            expected = ("manifest.json", "not JSON")
        case .futureFormat:
            var text = String(decoding: fixture.manifest.bytes, as: UTF8.self)
            text = text.replacingOccurrences(of: "castle-snapshot/1", with: "castle-snapshot/2")
            members[0].bytes = Array(text.utf8)
            members[1].bytes = Array((sha256Hex(members[0].bytes) + "\n").utf8)
            expected = ("manifest.json", "newer than this castle reads")
        case .manifestDigestMismatch:
            members[1].bytes = Array((String(repeating: "0", count: 64) + "\n").utf8)
            expected = ("manifest.json", "checksum mismatch")
        case .rowCountMismatch:
            var manifest = fixture.manifest
            let index = manifest.tables.firstIndex { $0.name == table.name }!
            manifest.tables[index].rows += 1
            members = withManifest(manifest, members)
            expected = (table.file, "rows where the manifest says")
        case .badRow:
            // A row that is not the table's, with size and checksum made to match: the row itself is refused.
            var bytes = members[tableIndex].bytes
            bytes.append(contentsOf: Array("{\"nope\":1}\n".utf8))
            var manifest = fixture.manifest
            let index = manifest.tables.firstIndex { $0.name == table.name }!
            manifest.tables[index].bytes = Int64(bytes.count)
            manifest.tables[index].rows += 1
            manifest.tables[index].sha256 = sha256Hex(bytes)
            members = withManifest(manifest, members)
            members[tableIndex].bytes = bytes
            expected = (table.file, "line \(table.rows + 1)")
        case .manifestNotFirst:
            members.swapAt(0, tableIndex)
            expected = (table.file, "where manifest.json belongs")
        case .matcherMismatch:
            // Every member and checksum in order, but the book the manifest promises is not the rows'.
            var manifest = fixture.manifest
            manifest.matcher[0].bookSha256 = String(repeating: "0", count: 64)
            members = withManifest(manifest, members)
            expected = ("manifest.json", "the rows give")
        }
        try writeArchive(members, to: path)
        return (path, expected.member, expected.reason, limits)
    }

    @Test(arguments: Case.allCases)
    func refused(_ kind: Case) async throws {
        let fixture = try await Self.fixture()
        let (path, member, reason, limits) = try Self.build(kind, fixture)
        let verifyError = await castleError {
            _ = try await SnapshotCheck.verify(path: path, limits: limits, showProgress: false)
        }
        let verified = try #require(verifyError, "verify accepted the \(kind) archive")
        #expect(verified.exitCode == 65, "\(verified.message)")
        #expect(verified.message.contains(path), "names the file: \(verified.message)")
        if !member.isEmpty {
            #expect(verified.message.contains(member), "names the member \(member): \(verified.message)")
        }
        #expect(verified.message.contains(reason), "says \(reason): \(verified.message)")

        let before = try await Backends.with(fixture.target) { try await tableSums($0) }
        let restoreError = await castleError {
            try await Backends.with(fixture.target, migrate: false) { store in
                _ = try await SnapshotRestore(
                    input: path,
                    replace: true,
                    region: "us-east-1",
                    limits: limits,
                    showProgress: false
                )
                .run(store: store)
            }
        }
        let restored = try #require(restoreError, "restore accepted the \(kind) archive")
        #expect(restored.exitCode == 65, "\(restored.message)")
        #expect(restored.message.contains(reason), "says \(reason): \(restored.message)")
        let after = try await Backends.with(fixture.target) { try await tableSums($0) }
        #expect(after == before, "the target is as it was")
        let region = try await Backends.with(fixture.target) { try await $0.storedRegion() }
        #expect(region == nil, "not even the region was recorded")
    }

    /// The good archive itself passes, in each compression castle reads.
    @Test(arguments: ["zstd", "gzip", "xz", "none"])
    func theGoodArchivePasses(_ filter: String) async throws {
        let fixture = try await Self.fixture()
        let path = fixture.directory.file("good-\(filter).tar")
        try writeArchive(fixture.members, to: path, filter: filter)
        let summary = try await SnapshotCheck.verify(path: path, showProgress: false)
        #expect(summary.manifest == fixture.manifest)
    }

    /// A snapshot whose schema is newer than this castle: 78, target untouched.
    @Test func aNewerSchemaIsRefused() async throws {
        let fixture = try await Self.fixture()
        var manifest = fixture.manifest
        manifest.schemaVersion = 999
        let path = fixture.directory.file("newer.tar.zst")
        try writeArchive(Self.withManifest(manifest, fixture.members), to: path)
        let before = try await Backends.with(fixture.target) { try await tableSums($0) }
        let error = await castleError {
            try await Backends.with(fixture.target, migrate: false) { store in
                _ = try await SnapshotRestore(input: path, replace: true, region: "x", showProgress: false).run(
                    store: store
                )
            }
        }
        #expect(error?.exitCode == 78, "\(error?.message ?? "accepted")")
        #expect(try await Backends.with(fixture.target) { try await tableSums($0) } == before)
    }
}
