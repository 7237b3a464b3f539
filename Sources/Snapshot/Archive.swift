internal import CArchive
import CastleSupport
import Streams

#if canImport(Glibc)
import Glibc
#endif

/// How a snapshot is compressed. zstd is written by default; all three are read, whatever the file is called.
public enum SnapshotCompression: String, Sendable, CaseIterable {
    case zstd
    case gzip
    case xz
    case none
}

/// Writes a tar stream through libarchive into an ``OutputSink`` (a file written atomically, or stdout).
/// Members are regular files with fixed owner, mode and time, so the same content gives the same bytes.
final class ArchiveWriter {
    private let archive: OpaquePointer
    private let sink: OutputSink
    /// The sink's error from inside libarchive's write callback, reported by the call that triggered it.
    private var sinkError: CastleError?
    private let mtime: Int64

    init(sink: OutputSink, compression: SnapshotCompression, mtime: Int64) throws(CastleError) {
        guard let archive = archive_write_new() else { throw CastleError(.software, "libarchive: out of memory") }
        self.archive = archive
        self.sink = sink
        self.mtime = mtime
        archive_write_set_format_pax_restricted(archive)
        let status: Int32 =
            switch compression {
            case .zstd: archive_write_add_filter_zstd(archive)
            case .gzip: archive_write_add_filter_gzip(archive)
            case .xz: archive_write_add_filter_xz(archive)
            case .none: archive_write_add_filter_none(archive)
            }
        guard status == ARCHIVE_OK else {
            let reason = Self.message(archive)
            archive_write_free(archive)
            throw CastleError(.software, "libarchive cannot write \(compression.rawValue): \(reason)")
        }
        // zstd at level 1, not libarchive's 3: compression is a third of a create's CPU, and on castle's
        // tables level 1 was both faster and smaller (a 1M-order store: 20.4 MB against 21.5 MB).
        if compression == .zstd { archive_write_set_filter_option(archive, "zstd", "compression-level", "1") }
        // gzip records no name or time: the same snapshot gives the same bytes.
        if compression == .gzip { archive_write_set_filter_option(archive, "gzip", "timestamp", nil) }
        // No padding of the last block past what tar needs: a pipe gets the stream and nothing more.
        archive_write_set_bytes_in_last_block(archive, 1)
        let opened = archive_write_open(
            archive,
            Unmanaged.passUnretained(self).toOpaque(),
            nil,
            { _, client, buffer, length -> la_ssize_t in
                let writer = Unmanaged<ArchiveWriter>.fromOpaque(client!).takeUnretainedValue()
                return writer.writeOut(buffer!, length)
            },
            nil
        )
        guard opened == ARCHIVE_OK else {
            let reason = Self.message(archive)
            archive_write_free(archive)
            throw CastleError(.ioError, "\(sink.name): cannot start the archive: \(reason)")
        }
    }

    deinit { archive_write_free(archive) }

    private func writeOut(_ buffer: UnsafeRawPointer, _ length: Int) -> la_ssize_t {
        do throws(CastleError) {
            // In pieces that fit the sink's buffer (its append does not grow it).
            var offset = 0
            while offset < length {
                let piece = min(length - offset, 1 << 16)
                try sink.reserve(piece)
                sink.append(
                    UnsafeBufferPointer(start: (buffer + offset).assumingMemoryBound(to: UInt8.self), count: piece)
                )
                offset += piece
            }
            return la_ssize_t(length)
        } catch {
            sinkError = error
            return -1
        }
    }

    static func message(_ archive: OpaquePointer) -> String {
        archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
    }

    private func check(_ status: Int, _ what: String) throws(CastleError) {
        if let sinkError { throw sinkError }
        if status < Int(ARCHIVE_WARN) { throw CastleError(.ioError, "\(sink.name): \(what): \(Self.message(archive))") }
    }

    /// Starts a regular-file member of `size` bytes; its bytes follow with ``write(_:)``.
    func beginMember(_ path: String, size: Int64) throws(CastleError) {
        guard let entry = archive_entry_new() else { throw CastleError(.software, "libarchive: out of memory") }
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname(entry, path)
        archive_entry_set_size(entry, size)
        archive_entry_set_filetype(entry, FileType.regular)
        archive_entry_set_perm(entry, 0o644)
        archive_entry_set_mtime(entry, time_t(mtime), 0)
        archive_entry_set_uid(entry, 0)
        archive_entry_set_gid(entry, 0)
        try check(Int(archive_write_header(archive, entry)), "writing the header of \(path)")
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(CastleError) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        let written = archive_write_data(archive, base, bytes.count)
        try check(written < 0 ? Int(written) : ARCHIVE_OK_INT, "writing data")
    }

    func write(_ bytes: [UInt8]) throws(CastleError) {
        try bytes.withUnsafeBytes { raw in Result { () throws(CastleError) in try write(raw) } }.get()
    }

    /// Ends the stream (tar's end blocks, the compressor's frame); the caller commits the sink.
    func finish() throws(CastleError) {
        try check(Int(archive_write_close(archive)), "finishing the archive")
    }
}

private let ARCHIVE_OK_INT = Int(ARCHIVE_OK)

/// tar's file types (archive_entry.h's AE_IF* macros, whose casts Swift does not import).
enum FileType {
    static let regular: UInt32 = 0o100000
    static let symlink: UInt32 = 0o120000
    static let socket: UInt32 = 0o140000
    static let characterDevice: UInt32 = 0o020000
    static let blockDevice: UInt32 = 0o060000
    static let directory: UInt32 = 0o040000
    static let fifo: UInt32 = 0o010000
}

/// The limits that make a hostile archive cheap to refuse.
public struct SnapshotLimits: Sendable {
    /// `manifest.json` at most.
    public var manifestBytes_max = 1 << 20
    /// Any one table member at most (uncompressed).
    public var memberBytes_max: Int64 = 1 << 40
    /// Uncompressed bytes per compressed byte, past the first `ratioGrace_bytes`: zstd reaches about 20 on
    /// castle's tables; a bomb reaches thousands.
    public var compressionRatio_max: Int64 = 1_000
    public var ratioGrace_bytes: Int64 = 16 << 20
    /// One row's line at most.
    public var lineBytes_max = 256 << 20

    public init() {}
}

/// Reads a tar stream (zstd, gzip, xz or none) from a file or stdin through libarchive, member by member,
/// refusing anything but regular files with safe relative paths.
final class ArchiveReader {
    let name: String
    private let archive: OpaquePointer
    private let fd: Int32
    private let ownsFD: Bool
    private let limits: SnapshotLimits
    private let buffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 16, alignment: 16)
    private var readError: CastleError?
    /// Uncompressed bytes handed out so far, for the ratio check.
    private var unpackedBytes: Int64 = 0
    /// Compressed bytes read from the file so far.
    private(set) var packedBytes: Int64 = 0
    /// The size of the file when it is a regular file, for progress.
    let sizeBytes: Int64?

    struct Member {
        var path: String
        var size: Int64
    }

    init(path: String?, limits: SnapshotLimits) throws(CastleError) {
        self.limits = limits
        if let path, path != "-" {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd < 0 {
                buffer.deallocate()
                throw CastleError(.noInput, "\(path): cannot open: \(errnoText())")
            }
            var info = stat()
            if fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
                close(fd)
                buffer.deallocate()
                throw CastleError(.noInput, "\(path): is a directory")
            }
            sizeBytes = (info.st_mode & S_IFMT) == S_IFREG ? Int64(info.st_size) : nil
            self.fd = fd
            name = path
            ownsFD = true
        } else {
            fd = 0
            name = "<stdin>"
            ownsFD = false
            sizeBytes = nil
        }
        guard let archive = archive_read_new() else {
            if ownsFD { close(fd) }
            buffer.deallocate()
            throw CastleError(.software, "libarchive: out of memory")
        }
        self.archive = archive
        // Tar only, in the three compressions castle writes or reads: nothing else is a snapshot.
        archive_read_support_format_tar(archive)
        archive_read_support_filter_zstd(archive)
        archive_read_support_filter_gzip(archive)
        archive_read_support_filter_xz(archive)
        let opened = archive_read_open(
            archive,
            Unmanaged.passUnretained(self).toOpaque(),
            nil,
            { _, client, buffer -> la_ssize_t in
                let reader = Unmanaged<ArchiveReader>.fromOpaque(client!).takeUnretainedValue()
                return reader.readIn(buffer!)
            },
            nil
        )
        if opened != ARCHIVE_OK {
            let reason = ArchiveWriter.message(archive)
            let error =
                readError
                ?? (reason.lowercased().contains("truncated")
                    ? hostile("archive", "truncated stream (\(reason))")
                    : hostile("archive", "not a tar archive castle reads: \(reason)"))
            // Fully initialised: deinit frees the archive, the file and the buffer.
            throw error
        }
    }

    deinit {
        archive_read_free(archive)
        if ownsFD { close(fd) }
        buffer.deallocate()
    }

    private func readIn(_ out: UnsafeMutablePointer<UnsafeRawPointer?>) -> la_ssize_t {
        while true {
            let n = Glibc.read(fd, buffer, 1 << 16)
            if n < 0 && errno == EINTR { continue }
            if n < 0 {
                readError = CastleError(.ioError, "\(name): read failed: \(errnoText())")
                return -1
            }
            packedBytes += Int64(n)
            out.pointee = UnsafeRawPointer(buffer)
            return la_ssize_t(n)
        }
    }

    /// Reads whatever follows the archive's end (a compressor's trailer, padding) to the end of the input,
    /// so that a writer into a pipe (`aws s3 cp … - | castle snapshot restore -`) sees it all taken.
    func drainInput() {
        while true {
            let n = Glibc.read(fd, buffer, 1 << 16)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            packedBytes += Int64(n)
        }
    }

    /// The error for a bad archive: exit 65, naming the file, the member and the reason.
    func hostile(_ member: String, _ reason: String) -> CastleError {
        CastleError(.dataError, "\(name): \(member): \(reason)")
    }

    /// A libarchive failure while reading `member`: a truncated or corrupt stream, or the file's own read error.
    private func failure(_ member: String) -> CastleError {
        if let readError { return readError }
        let reason = ArchiveWriter.message(archive)
        let lowered = reason.lowercased()
        if lowered.contains("truncated") || lowered.contains("premature") || lowered.contains("unexpected end") {
            return hostile(member, "truncated stream (\(reason))")
        }
        return hostile(member, "corrupt stream (\(reason))")
    }

    /// The next member's header, checked: a regular file, no link, a relative path without `..`; nil at
    /// the end of the archive.
    func next(after previous: String) throws(CastleError) -> Member? {
        var entry: OpaquePointer?
        let status = archive_read_next_header(archive, &entry)
        if status == ARCHIVE_EOF { return nil }
        guard status >= ARCHIVE_WARN, let entry else { throw failure("after \(previous)") }
        let path = archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
        let shown = path.isEmpty ? "(a member without a name)" : path
        if path.hasPrefix("/") { throw hostile(shown, "an absolute path") }
        if path.split(separator: "/", omittingEmptySubsequences: false).contains(where: { $0 == ".." }) {
            throw hostile(shown, "a path that climbs out with ..")
        }
        if archive_entry_hardlink(entry) != nil { throw hostile(shown, "a hard link") }
        if archive_entry_symlink(entry) != nil { throw hostile(shown, "a symbolic link") }
        let type = archive_entry_filetype(entry)
        guard type == FileType.regular else {
            let kind =
                switch type {
                case FileType.symlink: "a symbolic link"
                case FileType.directory: "a directory"
                case FileType.characterDevice, FileType.blockDevice: "a device file"
                case FileType.fifo: "a FIFO"
                default: "not a regular file"
                }
            throw hostile(shown, kind)
        }
        guard archive_entry_size_is_set(entry) != 0 else { throw hostile(shown, "a member without a size") }
        return Member(path: path, size: archive_entry_size(entry))
    }

    /// Reads up to `count` bytes of the current member; 0 at its end. Refuses a stream that expands past
    /// the compression-ratio cap.
    func read(into destination: UnsafeMutableRawPointer, count: Int, member: String) throws(CastleError) -> Int {
        while true {
            let n = archive_read_data(archive, destination, count)
            if n == la_ssize_t(ARCHIVE_RETRY) { continue }
            if n < 0 { throw failure(member) }
            unpackedBytes += Int64(n)
            if unpackedBytes > limits.ratioGrace_bytes
                && unpackedBytes > limits.compressionRatio_max * max(packedBytes, 1)
            {
                throw hostile(
                    member,
                    "expands more than \(limits.compressionRatio_max) times (\(unpackedBytes) bytes from \(packedBytes)): a compression bomb"
                )
            }
            return n
        }
    }
}
