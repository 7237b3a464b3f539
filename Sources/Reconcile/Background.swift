public import CastleSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Work started on a thread of its own while the caller goes on with other work; ``join()`` waits for
/// it and gives its result. For the synchronous job only (it runs on its own thread already: never on
/// Swift's cooperative pool, whose threads must not wait).
final class BackgroundWork<T>: @unchecked Sendable {
    private var result: Result<T, CastleError>?
    private var thread: pthread_t?

    init(_ work: @escaping () throws(CastleError) -> T) {
        let runner = ThreadRunner { [self] in
            do throws(CastleError) {
                result = .success(try work())
            } catch {
                result = .failure(error)
            }
        }
        let context = Unmanaged.passRetained(runner).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(
            &thread,
            nil,
            { context in
                Unmanaged<ThreadRunner>.fromOpaque(context!).takeRetainedValue().body()
                return nil
            },
            context
        )
        if status == 0 {
            self.thread = thread
        } else {
            // No thread: the work runs here and now.
            Unmanaged<ThreadRunner>.fromOpaque(context).takeRetainedValue().body()
        }
    }

    /// Waits for the work (once) and returns its result.
    func join() throws(CastleError) -> T {
        if let thread {
            pthread_join(thread, nil)
            self.thread = nil
        }
        return try result!.get()
    }
}

private final class ThreadRunner {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}
