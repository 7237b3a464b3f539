public import CastleSupport

extension StorageRegistry {
    /// Opens `url`, runs `body` with the backend, and closes it on every path, errors included. The
    /// backend's background work (``Store/run()``) runs beside `body` in a task group and ends with it.
    public static func withBackend<T>(
        _ url: String,
        create: Bool = false,
        _ body: (any Backend) async throws(CastleError) -> T
    ) async throws(CastleError) -> T {
        try await running(try await open(url, create: create), body)
    }

    /// ``withBackend(_:_:)`` for a backend already opened (and not yet running): runs it, runs `body`,
    /// closes it, whatever `body` does.
    public static func running<T>(
        _ backend: any Backend,
        _ body: (any Backend) async throws(CastleError) -> T
    ) async throws(CastleError) -> T {
        let result: Result<T, CastleError> = await withTaskGroup(of: Void.self) { group in
            group.addTask { await backend.run() }
            let result: Result<T, CastleError>
            do throws(CastleError) {
                result = .success(try await body(backend))
            } catch {
                result = .failure(error)
            }
            await backend.close()
            group.cancelAll()
            return result
        }
        return try result.get()
    }
}

extension Store {
    /// No background work: returns at once.
    @concurrent public func run() async {}
}
