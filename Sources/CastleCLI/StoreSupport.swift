import ArgumentParser
import CastleSupport
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
        PostgresPlugin.register()
    }

    /// Opens `url`; unless `migrating`, refuses a store whose schema is not this binary's.
    static func open(_ url: String, migrating: Bool = false) async throws(CastleError) -> any Backend {
        let backend = try await StorageRegistry.open(url)
        if !migrating, let schema = backend.schema {
            do throws(CastleError) {
                try await Migrator(database: schema, storeName: backend.displayURL).requireCurrent()
            } catch {
                await backend.close()
                throw error
            }
        }
        return backend
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
