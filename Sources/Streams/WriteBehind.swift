// stat and timespec are attributed to libarchive's clang module in whole-module builds.
internal import CArchive
import CastleSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes full buffers to a file descriptor on a thread of its own, so that the kernel's copy (and, for
/// a file, the disk's writeback) overlaps the work that fills the next buffer. One buffer in flight at
/// most: the producer waits when it is a buffer ahead, so memory stays bounded.
final class WriteBehind: @unchecked Sendable {
    private let fd: Int32
    private let name: String
    /// Start writeback of each written range right away, so that the final fsync has little left to do.
    private let startWriteback: Bool
    private let lock = ConditionLock()
    // All below are guarded by `lock`.
    private var pending: (UnsafeMutablePointer<UInt8>, Int)?
    private var stopping = false
    private var failure: CastleError?
    private var offset = 0
    private var thread: JoinableThread?

    init(fd: Int32, name: String, isRegularFile: Bool) {
        self.fd = fd
        self.name = name
        startWriteback = isRegularFile
        do throws(CastleError) {
            thread = try startThread(name: "castle-write") { [self] in loop() }
        } catch {
            // No writer: the first submit says so.
            failure = CastleError(error.kind, "\(name): \(error.message)")
        }
    }

    /// Hands `count` bytes at `buffer` to the writer. Returns when the writer has taken them; the caller
    /// must not touch `buffer` until the next `submit` or `finish` returns.
    func submit(_ buffer: UnsafeMutablePointer<UInt8>, _ count: Int) throws(CastleError) {
        lock.lock()
        while pending != nil && failure == nil { lock.wait() }
        if let failure {
            lock.unlock()
            throw failure
        }
        pending = (buffer, count)
        lock.broadcast()
        lock.unlock()
    }

    /// Waits until everything submitted is written and stops the thread.
    func finish() throws(CastleError) {
        lock.lock()
        while pending != nil && failure == nil { lock.wait() }
        stopping = true
        lock.broadcast()
        let failure = self.failure
        lock.unlock()
        thread?.join()
        if let failure { throw failure }
    }

    private func loop() {
        while true {
            lock.lock()
            while pending == nil && !stopping { lock.wait() }
            guard let (buffer, count) = pending else {
                lock.unlock()
                return
            }
            lock.unlock()

            let error = writeAll(buffer, count)

            lock.lock()
            pending = nil
            if let error { failure = error }
            lock.broadcast()
            lock.unlock()
        }
    }

    private func writeAll(_ buffer: UnsafeMutablePointer<UInt8>, _ count: Int) -> CastleError? {
        var written = 0
        while written < count {
            let n = write(fd, buffer + written, count - written)
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EPIPE { return CastleError(.ioError, "\(name): broken pipe") }
                return CastleError(.ioError, "\(name): write failed: \(errnoText())")
            }
            written += n
        }
        if startWriteback {
            // On Linux, DONTNEED starts writeback of the range's dirty pages (and keeps a large output
            // from crowding the page cache).
            _ = posix_fadvise(fd, off_t(offset), off_t(count), POSIX_FADV_DONTNEED)
        }
        offset += count
        return nil
    }
}
