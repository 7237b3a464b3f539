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

/// Runs blocking `work` (file I/O, pthread waits, a paced replay's sleeps) on a thread of its own and
/// awaits its result. Nothing blocks a thread of Swift's cooperative pool, which has one thread per core:
/// blocked there, it would stall every task waiting for a thread, a server's requests and a database
/// driver's I/O among them.
public func onOwnThread<T: Sendable>(
    _ work: @escaping @Sendable () throws(CastleError) -> T
) async throws(CastleError) -> T {
    let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, CastleError>, Never>) in
        // The thread's context: a closure that runs the work and resumes the caller.
        let job = ThreadJob {
            do throws(CastleError) {
                continuation.resume(returning: .success(try work()))
            } catch {
                continuation.resume(returning: .failure(error))
            }
        }
        let context = Unmanaged.passRetained(job).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(
            &thread,
            nil,
            { context in
                Unmanaged<ThreadJob>.fromOpaque(context!).takeRetainedValue().body()
                return nil
            },
            context
        )
        if status == 0 {
            pthread_detach(thread)
        } else {
            Unmanaged<ThreadJob>.fromOpaque(context).release()
            continuation.resume(returning: .failure(CastleError(.software, "cannot start a thread (error \(status))")))
        }
    }
    return try result.get()
}

private final class ThreadJob {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}
