import CastleSupport
import CastleTesting
import SQLiteBackend
import Storage
import Testing

@Suite struct SQLiteMigrationTests {
    func backend(_ directory: TestDirectory) async throws -> SQLiteBackend {
        try await SQLiteBackend.open(url: StorageURL(parsing: "sqlite://\(directory.path)/castle.db"), create: true)
    }

    @Test func aMigrationThatFailsMidwayLeavesTheDatabaseAsItWas() async throws {
        let directory = try TestDirectory()
        let backend = try await backend(directory)
        try await Migrator(database: backend, storeName: backend.displayURL).up(to: 1)
        let broken =
            Migration.all(for: .sqlite) + [
                Migration(
                    version: 5,
                    name: "0005_broken.sqlite.sql",
                    up: ["CREATE TABLE extra (id INTEGER)", "CREATE TABLE extra (id INTEGER)"],
                    down: ["DROP TABLE extra"]
                )
            ]
        let migrator = Migrator(database: backend, storeName: backend.displayURL, migrations: broken)
        var failure: CastleError?
        do throws(CastleError) { try await migrator.up() } catch { failure = error }
        if let error = failure {
            #expect(error.message.contains("0005_broken.sqlite.sql"), "names the migration: \(error.message)")
            #expect(error.message.contains("nothing was applied"))
        } else {
            Issue.record("a broken migration was applied")
        }
        let applied = try await backend.appliedMigrations()
        #expect(
            applied.map(\.version) == [1],
            "versions 2 to 4, applied in the same transaction, were rolled back too"
        )
        // The tables of migration 2 were rolled back with it: applying the real list works from here.
        try await Migrator(database: backend, storeName: backend.displayURL).up()
        #expect(try await backend.appliedMigrations().map(\.version) == Migration.all(for: .sqlite).map(\.version))
    }

    @Test func concurrentMigrationsApplyOnce() async throws {
        let directory = try TestDirectory()
        let first = try await backend(directory)
        let second = try await backend(directory)
        let counts = try await withThrowingTaskGroup(of: Int.self) { group in
            for backend in [first, second] {
                group.addTask { try await Migrator(database: backend, storeName: backend.displayURL).up().count }
            }
            return try await group.reduce(0, +)
        }
        #expect(counts == Migration.all(for: .sqlite).count, "each migration applied by exactly one of the two runs")
        #expect(try await first.appliedMigrations().map(\.version) == Migration.all(for: .sqlite).map(\.version))
    }
}
