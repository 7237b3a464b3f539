import CastleTesting
import SQLiteBackend
import Storage
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The conformance suite against the memory and SQLite backends (PostgreSQL: PostgresBackendTests).
@Suite struct ConformanceTests {
    @Test(arguments: StorageConformance.checkNames)
    func memory(_ check: String) async throws {
        let backend = MemoryBackend(displayURL: "memory://conformance")
        try await StorageConformance.run(check, on: backend)
    }

    @Test(arguments: StorageConformance.checkNames)
    func sqlite(_ check: String) async throws {
        let directory = try TestDirectory()
        let backend = try await SQLiteBackend.open(
            url: StorageURL(parsing: "sqlite://\(directory.path)/castle.db"),
            create: true
        )
        try await Migrator(database: backend, storeName: backend.displayURL).up()
        try await StorageConformance.run(check, on: backend)
        await backend.close()
    }

    @Test(arguments: ReconcileConformance.checkNames)
    func memoryReconcile(_ check: String) async throws {
        try await ReconcileConformance.run(check, on: MemoryBackend(displayURL: "memory://reconcile"))
    }

    @Test(arguments: ReconcileConformance.checkNames)
    func sqliteReconcile(_ check: String) async throws {
        let directory = try TestDirectory()
        let backend = try await SQLiteBackend.open(
            url: StorageURL(parsing: "sqlite://\(directory.path)/castle.db"),
            create: true
        )
        try await Migrator(database: backend, storeName: backend.displayURL).up()
        do {
            try await ReconcileConformance.run(check, on: backend)
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

/// The ledger conformance checks against the memory and SQLite backends (PostgreSQL:
/// PostgresBackendTests).
@Suite struct LedgerConformanceTests {
    @Test(arguments: LedgerConformance.checkNames)
    func memory(_ check: String) async throws {
        try await LedgerConformance.run(check, on: MemoryBackend(displayURL: "memory://ledger-conformance"))
    }

    @Test(arguments: LedgerConformance.checkNames)
    func sqlite(_ check: String) async throws {
        let directory = try TestDirectory()
        let backend = try await SQLiteBackend.open(
            url: StorageURL(parsing: "sqlite://\(directory.path)/castle.db"),
            create: true
        )
        try await Migrator(database: backend, storeName: backend.displayURL).up()
        do {
            try await LedgerConformance.run(check, on: backend)
        } catch {
            await backend.close()
            throw error
        }
        await backend.close()
    }
}
