import CastleTesting
import SQLiteBackend
import Storage
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The conformance suites (storage, ledger, reconcile) against the memory and SQLite backends, each check
/// on a fresh store (PostgreSQL: PostgresBackendTests).
@Suite struct ConformanceTests {
    @Test(arguments: StorageConformance.checkNames)
    func memory(_ check: String) async throws {
        try await StorageConformance.run(check, on: MemoryBackend(displayURL: "memory://conformance"))
    }

    @Test(arguments: StorageConformance.checkNames)
    func sqlite(_ check: String) async throws {
        try await withMigratedSQLite { backend in try await StorageConformance.run(check, on: backend) }
    }

    @Test(arguments: ReconcileConformance.checkNames)
    func memoryReconcile(_ check: String) async throws {
        try await ReconcileConformance.run(check, on: MemoryBackend(displayURL: "memory://reconcile"))
    }

    @Test(arguments: ReconcileConformance.checkNames)
    func sqliteReconcile(_ check: String) async throws {
        try await withMigratedSQLite { backend in try await ReconcileConformance.run(check, on: backend) }
    }

    @Test(arguments: LedgerConformance.checkNames)
    func memoryLedger(_ check: String) async throws {
        try await LedgerConformance.run(check, on: MemoryBackend(displayURL: "memory://ledger-conformance"))
    }

    @Test(arguments: LedgerConformance.checkNames)
    func sqliteLedger(_ check: String) async throws {
        try await withMigratedSQLite { backend in try await LedgerConformance.run(check, on: backend) }
    }

    /// A migrated SQLite store in a fresh directory for `body`, closed on every path.
    private func withMigratedSQLite(_ body: (SQLiteBackend) async throws -> Void) async throws {
        let directory = try TestDirectory()
        let backend = try await SQLiteBackend.open(
            url: StorageURL(parsing: "sqlite://\(directory.path)/castle.db"),
            create: true
        )
        do {
            try await Migrator(database: backend, storeName: backend.displayURL).up()
            try await body(backend)
        } catch {
            await backend.close()
            throw error
        }
        await backend.close()
    }
}

/// A fresh temporary directory, removed with everything in it when the value goes away.
final class TestDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/castle-storage-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw ConformanceFailure("mkdtemp failed") }
        path = String(cString: made)
    }

    deinit {
        let command = "rm -rf '\(path)'"
        _ = system(command)
    }
}
