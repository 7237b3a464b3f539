#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A mutex with a condition variable, for the threads that castle runs beside the cooperative pool (the
/// decoding reader, the write-behind writer, each SQLite connection's thread). Both live on the heap,
/// allocated once, as swift-nio's `ConditionLock` keeps them: a pthread mutex must not move, and a
/// class's stored `var` gives no such promise when it is passed `inout`.
public final class ConditionLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    public init() {
        mutex.initialize(to: pthread_mutex_t())
        condition.initialize(to: pthread_cond_t())
        precondition(pthread_mutex_init(mutex, nil) == 0 && pthread_cond_init(condition, nil) == 0)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    public func lock() { pthread_mutex_lock(mutex) }

    public func unlock() { pthread_mutex_unlock(mutex) }

    /// Waits for a ``broadcast()``, the mutex held before and after.
    public func wait() { pthread_cond_wait(condition, mutex) }

    public func broadcast() { pthread_cond_broadcast(condition) }
}

/// Starts `body` on a new, joinable thread: the one place castle makes threads (the decoding reader,
/// the write-behind writer, each SQLite connection's thread, ``onOwnThread(_:)``, ``BackgroundWork``).
/// Throws when the system gives no thread. The caller joins it or detaches it, once.
///
/// `name` (at most 15 bytes are kept) is what `top -H`, `ps -L` and `perf` show for the thread;
/// without it a thread shows its creator's name, e.g. a thread of Swift's cooperative pool.
public func startThread(name: String, _ body: @escaping () -> Void) throws(CastleError) -> JoinableThread {
    let context = Unmanaged.passRetained(ThreadBody(name: name, body)).toOpaque()
    var thread = pthread_t()
    let status = pthread_create(
        &thread,
        nil,
        { context in
            let thread = Unmanaged<ThreadBody>.fromOpaque(context!).takeRetainedValue()
            nameThisThread(thread.name)
            thread.body()
            return nil
        },
        context
    )
    guard status == 0 else {
        Unmanaged<ThreadBody>.fromOpaque(context).release()
        throw CastleError(.temporaryFailure, "cannot start a thread (error \(status))")
    }
    return JoinableThread(handle: thread)
}

/// What `pthread_setname_np` does for the calling thread (which Swift does not import on Linux):
/// proc(5) lets a thread write its own name to its `comm` file. Best effort: a name is for people.
private func nameThisThread(_ name: String) {
    let descriptor = open("/proc/thread-self/comm", O_WRONLY)
    guard descriptor >= 0 else { return }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    close(descriptor)
}

/// A thread from ``startThread(name:_:)``.
public struct JoinableThread: @unchecked Sendable {
    fileprivate let handle: pthread_t

    /// Waits for the thread to end.
    public func join() { pthread_join(handle, nil) }

    /// Lets the thread end on its own: nobody joins it.
    public func detach() { pthread_detach(handle) }
}

private final class ThreadBody {
    let name: String
    let body: () -> Void
    init(name: String, _ body: @escaping () -> Void) {
        self.name = name
        self.body = body
    }
}

/// Runs blocking `work` (file I/O, pthread waits, a paced replay's sleeps) on a thread of its own and
/// awaits its result. Nothing blocks a thread of Swift's cooperative pool, which has one thread per core:
/// blocked there, it would stall every task waiting for a thread, a server's requests and a database
/// driver's I/O among them.
public func onOwnThread<T: Sendable>(
    _ work: @escaping @Sendable () throws(CastleError) -> T
) async throws(CastleError) -> T {
    let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, CastleError>, Never>) in
        do throws(CastleError) {
            try startThread(name: "castle-job") {
                do throws(CastleError) {
                    continuation.resume(returning: .success(try work()))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }.detach()
        } catch {
            continuation.resume(returning: .failure(error))
        }
    }
    return try result.get()
}

/// Work started on a thread of its own while the caller goes on with other work; ``join()`` waits for
/// it and gives its result. For synchronous jobs only (they run on their own thread already: never on
/// Swift's cooperative pool, whose threads must not wait).
public final class BackgroundWork<T>: @unchecked Sendable {
    private var result: Result<T, CastleError>?
    private var thread: JoinableThread?

    public init(_ work: @escaping () throws(CastleError) -> T) {
        let run = { [self] in
            do throws(CastleError) {
                result = .success(try work())
            } catch {
                result = .failure(error)
            }
        }
        do throws(CastleError) {
            thread = try startThread(name: "castle-work", run)
        } catch {
            // No thread: the work runs here and now.
            run()
        }
    }

    /// Waits for the work (once) and returns its result.
    public func join() throws(CastleError) -> T {
        thread?.join()
        thread = nil
        return try result!.get()
    }
}
