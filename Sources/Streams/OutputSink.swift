// stat and timespec are attributed to libarchive's clang module in whole-module builds.
internal import CArchive
public import CastleCore
public import CastleSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A buffered byte writer to stdout or to a file. A file is written under a temporary name in the same
/// directory and renamed into place by ``commit()``, so a failed run never leaves a half-written file;
/// ``abort()`` (or dropping an uncommitted sink) removes the temporary file.
public final class OutputSink {
    /// The path as the user gave it, or `<stdout>`.
    public let name: String
    private let fd: Int32
    private let finalPath: String?
    private let temporaryPath: String?
    /// True for a file castle opened (closed on commit or abort); false for stdout.
    private let ownsFD: Bool
    /// The temporary file's slot in ``TemporaryFiles``, so an interrupt removes it.
    private var temporarySlot: Int?
    private var finished = false
    @usableFromInline package var buffer: UnsafeMutablePointer<UInt8>
    @usableFromInline package let capacity: Int
    /// With write-behind: the buffer the writer thread may still be writing, swapped with `buffer`.
    private var spare: UnsafeMutablePointer<UInt8>?
    private var writeBehind: WriteBehind?
    @usableFromInline package var count = 0
    public private(set) var writtenBytes = 0
    /// Sees every byte of the output, in order, just before it is written (e.g. to hash the stream).
    public var observer: ((UnsafeBufferPointer<UInt8>) -> Void)?

    /// Stdout for nil or `-`, otherwise a new file at `path` (replaced atomically on commit).
    /// - Parameter writeBehind: write full buffers on a thread of their own, overlapping the kernel's
    ///   copy and the disk's writeback with the caller's work; for large outputs.
    public convenience init(path: String?, capacity: Int = 1 << 20, writeBehind: Bool = false) throws(CastleError) {
        try self.init(path: path, capacity: capacity)
        if writeBehind {
            spare = .allocate(capacity: capacity)
            self.writeBehind = WriteBehind(fd: fd, name: name, isRegularFile: temporaryPath != nil)
        }
    }

    /// A sink that keeps what is written in memory, for ``takeBytes()``: how a worker collects the lines
    /// of one batch before it stores them.
    public static func inMemory(capacity: Int = 1 << 16) -> OutputSink { OutputSink(memoryCapacity: capacity) }

    private init(memoryCapacity: Int) {
        capacity = memoryCapacity
        buffer = .allocate(capacity: memoryCapacity)
        fd = -1
        name = "<memory>"
        finalPath = nil
        temporaryPath = nil
        ownsFD = false
        memory = []
    }

    /// In-memory mode: what was flushed and not yet taken.
    private var memory: [UInt8]?

    /// In-memory mode: everything written since the last call.
    public func takeBytes() -> [UInt8] {
        var bytes = memory ?? []
        bytes.append(contentsOf: UnsafeBufferPointer(start: buffer, count: count))
        writtenBytes += count
        count = 0
        memory = []
        return bytes
    }

    private init(path: String?, capacity: Int) throws(CastleError) {
        self.capacity = capacity
        buffer = .allocate(capacity: capacity)
        guard let path, path != "-" else {
            fd = 1
            name = "<stdout>"
            finalPath = nil
            temporaryPath = nil
            ownsFD = false
            return
        }
        name = path
        // Only a regular file (or a new path) is replaced atomically; a device or a FIFO the user names
        // (/dev/null, /dev/stdout, a named pipe) is written in place, as a shell redirection would.
        var info = stat()
        if stat(path, &info) == 0, (info.st_mode & S_IFMT) != S_IFREG {
            if (info.st_mode & S_IFMT) == S_IFDIR {
                buffer.deallocate()
                throw CastleError(.cantCreate, "\(path): is a directory")
            }
            let fd = open(path, O_WRONLY | O_CLOEXEC)
            if fd < 0 {
                let reason = errnoText()
                buffer.deallocate()
                throw CastleError(.cantCreate, "\(path): cannot open: \(reason)")
            }
            self.fd = fd
            finalPath = nil
            temporaryPath = nil
            ownsFD = true
            return
        }
        finalPath = path
        ownsFD = true
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[...$0]) } ?? ""
        let file = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let temporary = "\(directory).\(file).tmp-\(getpid())"
        temporaryPath = temporary
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
        if fd < 0 {
            let reason = errnoText()
            buffer.deallocate()
            throw CastleError(.cantCreate, "\(path): cannot create: \(reason)")
        }
        self.fd = fd
        temporarySlot = TemporaryFiles.register(temporary)
    }

    deinit {
        if !finished { abort() }
        buffer.deallocate()
        spare?.deallocate()
    }

    @inlinable @inline(__always)
    public func reserve(_ bytes: Int) throws(CastleError) {
        if count + bytes > capacity { try flush() }
    }

    @inlinable @inline(__always)
    public func append(_ byte: UInt8) {
        buffer[count] = byte
        count += 1
    }

    @inlinable @inline(__always)
    public func append(_ text: StaticString) {
        let n = text.utf8CodeUnitCount
        (buffer + count).update(from: text.utf8Start, count: n)
        count += n
    }

    @inlinable @inline(__always)
    public func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let base = bytes.baseAddress else { return }
        (buffer + count).update(from: base, count: bytes.count)
        count += bytes.count
    }

    /// Appends bytes of any length, flushing as needed.
    public func write(_ bytes: some Collection<UInt8>) throws(CastleError) {
        for byte in bytes {
            if count == capacity { try flush() }
            buffer[count] = byte
            count += 1
        }
    }

    public func write(_ text: String) throws(CastleError) { try write(text.utf8) }

    /// Appends bytes of any length, as much of the buffer at a time as is free.
    public func write(_ bytes: UnsafeBufferPointer<UInt8>) throws(CastleError) {
        var rest = bytes
        while let base = rest.baseAddress, !rest.isEmpty {
            if count == capacity { try flush() }
            let n = min(capacity - count, rest.count)
            (buffer + count).update(from: base, count: n)
            count += n
            rest = UnsafeBufferPointer(rebasing: rest[n...])
        }
    }

    @inlinable @inline(__always)
    public func appendUnsigned(_ value: UInt64) {
        count += writeUnsigned(value, to: buffer + count)
    }

    @inlinable @inline(__always)
    public func appendDecimal(_ value: Int64, decimals: UInt8) {
        count += writeDecimal(value, decimals: decimals, to: buffer + count)
    }

    @inlinable @inline(__always)
    public func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { append($0) }
    }

    /// Appends a JSON string literal, quotes included. Needs `6 * bytes.count + 2` bytes reserved.
    public func appendJSONString(_ bytes: [UInt8]) { append(jsonStringLiteral(bytes)) }

    public func flush() throws(CastleError) {
        observer?(UnsafeBufferPointer(start: buffer, count: count))
        if memory != nil {
            memory!.append(contentsOf: UnsafeBufferPointer(start: buffer, count: count))
            writtenBytes += count
            count = 0
            return
        }
        if let writeBehind, let spare {
            if count == 0 { return }
            try writeBehind.submit(buffer, count)
            self.spare = buffer
            buffer = spare
            writtenBytes += count
            count = 0
            return
        }
        var offset = 0
        while offset < count {
            let n = Glibc.write(fd, buffer + offset, count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EPIPE { throw CastleError(.ioError, "\(name): broken pipe") }
                throw CastleError(.ioError, "\(name): write failed: \(errnoText())")
            }
            offset += n
        }
        writtenBytes += count
        count = 0
    }

    /// True when the reader of stdout went away (`| head`): callers end quietly then.
    public static func isBrokenPipe(_ error: CastleError) -> Bool {
        error.kind == .ioError && error.message.hasSuffix("broken pipe")
    }

    /// Flushes, and for a file syncs, closes and renames it into place.
    public func commit() throws(CastleError) {
        try flush()
        try writeBehind?.finish()
        writeBehind = nil
        finished = true
        guard let finalPath, let temporaryPath else {
            if ownsFD { close(fd) }
            return
        }
        defer { TemporaryFiles.unregister(temporarySlot) }
        if fsync(fd) != 0 || close(fd) != 0 {
            let reason = errnoText()
            unlink(temporaryPath)
            throw CastleError(.ioError, "\(finalPath): write failed: \(reason)")
        }
        if rename(temporaryPath, finalPath) != 0 {
            let reason = errnoText()
            unlink(temporaryPath)
            throw CastleError(.cantCreate, "\(finalPath): cannot rename into place: \(reason)")
        }
    }

    /// Drops what was written: a file sink leaves nothing behind.
    public func abort() {
        guard !finished else { return }
        finished = true
        count = 0
        try? writeBehind?.finish()
        writeBehind = nil
        if ownsFD { close(fd) }
        if let temporaryPath { unlink(temporaryPath) }
        TemporaryFiles.unregister(temporarySlot)
    }
}

/// Writes the decimal digits of `value` to `out` (at least 20 bytes) and returns their count.
@inlinable @inline(__always)
public func writeUnsigned(_ value: UInt64, to out: UnsafeMutablePointer<UInt8>) -> Int {
    writeDigitsBackward(value, endingAt: out + countDigits(value))
}
