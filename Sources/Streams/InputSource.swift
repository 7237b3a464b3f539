internal import CArchive
public import CastleSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Bytes from a file or stdin, decompressed on the way when they start with a gzip, zstd, xz or bzip2
/// signature (libarchive's raw format), whatever the file is called. Plain input is read with read(2).
public final class InputSource {
    /// The path as the user gave it, or `<stdin>`: the name used in every message about this input.
    public let name: String
    /// Size in bytes for a regular file (compressed size when compressed), for progress.
    public let sizeBytes: Int?
    /// Bytes consumed from the underlying file so far (compressed bytes when compressed).
    public private(set) var consumedBytes = 0

    private let fd: Int32
    private let ownsFD: Bool
    /// Bytes read while sniffing for a signature, served before anything else.
    private var prefix: [UInt8]
    private var prefixOffset = 0
    private var archive: OpaquePointer?
    private var readBuffer: UnsafeMutableRawPointer?

    /// Opens `path`, or stdin for nil or `-`. Throws ``CastleError`` `.noInput` naming the path.
    public init(path: String?) throws(CastleError) {
        if let path, path != "-" {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd < 0 { throw CastleError(.noInput, "\(path): cannot open: \(errnoText())") }
            var info = stat()
            if fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
                close(fd)
                throw CastleError(.noInput, "\(path): is a directory")
            }
            self.fd = fd
            name = path
            ownsFD = true
            sizeBytes = (info.st_mode & S_IFMT) == S_IFREG ? Int(info.st_size) : nil
        } else {
            fd = 0
            name = "<stdin>"
            ownsFD = false
            var info = stat()
            sizeBytes = fstat(0, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG ? Int(info.st_size) : nil
        }
        prefix = []
        try sniff()
    }

    deinit {
        if let archive { archive_read_free(archive) }
        readBuffer?.deallocate()
        if ownsFD { close(fd) }
    }

    public var isCompressed: Bool { archive != nil }

    private func sniff() throws(CastleError) {
        var head = [UInt8](repeating: 0, count: 6)
        var got = 0
        while got < head.count {
            let n = head.withUnsafeMutableBytes { systemRead(fd, $0.baseAddress! + got, $0.count - got) }
            if n < 0 {
                if errno == EINTR { continue }
                throw CastleError(.noInput, "\(name): cannot read: \(errnoText())")
            }
            if n == 0 { break }
            got += n
        }
        prefix = Array(head[0..<got])
        consumedBytes = got
        let signatures: [[UInt8]] = [
            [0x1f, 0x8b],  // gzip
            [0x28, 0xb5, 0x2f, 0xfd],  // zstd
            [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00],  // xz
            [0x42, 0x5a, 0x68],  // bzip2
        ]
        guard signatures.contains(where: { prefix.starts(with: $0) }) else { return }
        try openArchive()
    }

    private func openArchive() throws(CastleError) {
        guard let archive = archive_read_new() else { throw CastleError(.software, "libarchive: out of memory") }
        self.archive = archive
        archive_read_support_filter_all(archive)
        archive_read_support_format_raw(archive)
        readBuffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 16, alignment: 16)
        let status = archive_read_open(
            archive,
            Unmanaged.passUnretained(self).toOpaque(),
            nil,
            { _, client, buffer -> la_ssize_t in
                let source = Unmanaged<InputSource>.fromOpaque(client!).takeUnretainedValue()
                return source.readRaw(into: buffer!)
            },
            nil
        )
        var entry: OpaquePointer?
        if status != ARCHIVE_OK || archive_read_next_header(archive, &entry) != ARCHIVE_OK {
            throw CastleError(.dataError, "\(name): cannot decompress: \(archiveError())")
        }
    }

    /// libarchive's read callback: the sniffed prefix first, then the file.
    private func readRaw(into buffer: UnsafeMutablePointer<UnsafeRawPointer?>) -> la_ssize_t {
        if prefixOffset < prefix.count {
            let count = prefix.count - prefixOffset
            prefix.withUnsafeBytes {
                UnsafeMutableRawPointer(readBuffer!).copyMemory(from: $0.baseAddress! + prefixOffset, byteCount: count)
            }
            prefixOffset = prefix.count
            buffer.pointee = UnsafeRawPointer(readBuffer!)
            return la_ssize_t(count)
        }
        while true {
            let n = systemRead(fd, readBuffer!, 1 << 16)
            if n < 0 && errno == EINTR { continue }
            if n > 0 { consumedBytes += n }
            buffer.pointee = UnsafeRawPointer(readBuffer!)
            return la_ssize_t(n)
        }
    }

    private func archiveError() -> String {
        guard let archive, let text = archive_error_string(archive) else { return "unknown error" }
        return String(cString: text)
    }

    /// Reads up to `count` bytes; 0 at the end.
    public func readBytes(into destination: UnsafeMutableRawPointer, count: Int) throws(CastleError) -> Int {
        if let archive {
            while true {
                let n = archive_read_data(archive, destination, count)
                if n >= 0 { return n }
                if n == la_ssize_t(ARCHIVE_RETRY) { continue }
                throw CastleError(.dataError, "\(name): corrupt or truncated compressed input: \(archiveError())")
            }
        }
        if prefixOffset < prefix.count {
            let n = min(count, prefix.count - prefixOffset)
            prefix.withUnsafeBytes { destination.copyMemory(from: $0.baseAddress! + prefixOffset, byteCount: n) }
            prefixOffset += n
            return n
        }
        while true {
            let n = systemRead(fd, destination, count)
            if n >= 0 {
                consumedBytes += n
                return n
            }
            if errno == EINTR { continue }
            throw CastleError(.ioError, "\(name): read failed: \(errnoText())")
        }
    }
}

@inline(__always)
private func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
    read(fd, buffer, count)
}
