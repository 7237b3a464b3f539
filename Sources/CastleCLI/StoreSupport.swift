import ArgumentParser
import CastleSupport
import Logging
import PostgresBackend
import SQLiteBackend
import Storage
import Streams

#if canImport(Glibc)
import Glibc
#endif

/// `--store` and `--queue`, shared by every subcommand that uses a backend.
struct StoreOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Store URL: sqlite://PATH, postgres://USER@HOST:PORT/DB or memory://NAME (default: $CASTLE_STORE, else sqlite://castle.db).",
            valueName: "url"
        )
    )
    var store: String?

    var storeURL: String { store ?? StorageRegistry.defaultURL(environment: environment()) }
}

/// The process environment as a dictionary, without Foundation.
func environment() -> [String: String] {
    var result: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
        let text = String(cString: entry)
        if let equals = text.firstIndex(of: "=") {
            result[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        pointer += 1
    }
    return result
}

enum Backends {
    /// The plugins this binary carries, registered once before any URL is opened.
    static func registerPlugins() {
        SQLitePlugin.register()
        PostgresPlugin.register(logger: driverLogger())
    }

    /// castle's logger for the database driver, on stderr: errors only, or everything the driver says at
    /// debug level when `CASTLE_DB_DEBUG` is set (and not `0`).
    static func driverLogger() -> Logger {
        var logger = Logger(label: "castle.postgres") { label in StreamLogHandler.standardError(label: label) }
        let debug = environment()["CASTLE_DB_DEBUG"].map { !$0.isEmpty && $0 != "0" } ?? false
        logger.logLevel = debug ? .debug : .error
        return logger
    }

    /// Opens `url`, runs `body` with it and closes it on every path; unless `migrating`, refuses a store
    /// whose schema is not this binary's. Only `create` (`castle migrate up`) makes a store that is not
    /// there yet.
    static func with<T>(
        _ url: String,
        migrating: Bool = false,
        create: Bool = false,
        _ body: (any Backend) async throws(CastleError) -> T
    ) async throws(CastleError) -> T {
        try await StorageRegistry.withBackend(url, create: create) { (backend) throws(CastleError) -> T in
            if !migrating { try await requireCurrentSchema(backend) }
            return try await body(backend)
        }
    }

    static func requireCurrentSchema(_ backend: any Backend) async throws(CastleError) {
        guard let schema = backend.schema else { return }
        try await Migrator(database: schema, storeName: backend.displayURL).requireCurrent()
    }
}

/// ``runJob(_:_:)`` for async jobs.
func runAsyncJob<T>(_ name: String, _ job: () async throws(CastleError) -> T) async throws -> T {
    do {
        return try await job()
    } catch {
        if OutputSink.isBrokenPipe(error) { throw ExitCode.success }
        writeStandardError("castle \(name): \(error.message)\n")
        throw ExitCode(error.exitCode)
    }
}
