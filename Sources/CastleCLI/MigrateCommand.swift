import ArgumentParser
import CastleSupport
import Storage

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Versioned schema migrations for the store: status, up, down, verify.",
        discussion: """
            The migrations are SQL per dialect (SQLite, PostgreSQL), embedded in castle. Each applied migration is recorded with the SHA-256 of its SQL, in the same transaction as its DDL; up and down run all their steps in one transaction under a lock (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL), so a failure leaves the database as it was and two concurrent runs never interleave. Every other subcommand refuses a store that needs migrating (exit 78).

            Exit codes of `status` and `verify`, for deploy scripts:
              0   the schema is this castle's
              10  migrations are pending (castle migrate up)
              11  the database is newer than this castle (deploy a newer castle)
              12  an applied migration was edited (its SHA-256 differs)
              69  the database is unreachable

            Examples:
              castle migrate status
              castle migrate up --store sqlite://day.db
              castle migrate up --dry-run --store postgres://castle@db/castle
              castle migrate down --to 1
              castle migrate verify || echo "schema drift"
            """,
        subcommands: [Status.self, Up.self, Down.self, Verify.self]
    )

    /// Runs `work` with the migrator of the store at `url`, closing the store after; `otherwise` for a
    /// backend without a schema (memory).
    static func withMigrator<T>(
        _ url: String,
        otherwise: T,
        create: Bool = false,
        readingOnly: Bool = false,
        _ work: (Migrator, any Backend) async throws(CastleError) -> T
    ) async throws(CastleError) -> T {
        let name = (try? StorageURL(parsing: url))?.description ?? url
        let run = { (backend: any Backend) async throws(CastleError) -> T in
            guard let schema = backend.schema else {
                writeStandardError("castle migrate: \(name) has no schema; nothing to migrate\n")
                return otherwise
            }
            return try await work(Migrator(database: schema, storeName: name), backend)
        }
        do {
            return try await Backends.with(url, migrating: true, create: create, run)
        } catch  where readingOnly && error.kind == .noInput && (try? StorageURL(parsing: url))?.scheme == "sqlite" {
            // A SQLite file that is not there has no migration applied: status, verify and dry runs answer
            // as for an empty database (an in-memory one) and leave no file behind.
            return try await Backends.with("sqlite://:memory:", migrating: true, create: true, run)
        }
    }

    static func exitCode(_ status: Migrator.Status) -> Int32 {
        if !status.changed.isEmpty { return 12 }
        if !status.unknown.isEmpty { return 11 }
        if !status.pending.isEmpty { return 10 }
        return 0
    }

    static func printSQL(_ migrations: [Migration], down: Bool) {
        var text = "BEGIN;\n"
        for migration in migrations {
            text += "-- \(migration.name)\(down ? " (down)" : "")\n"
            for statement in down ? migration.down : migration.up { text += statement + ";\n" }
            if down {
                text += "DELETE FROM castle_migrations WHERE version = \(migration.version);\n"
            } else {
                text += "INSERT INTO castle_migrations (version, name, checksum) VALUES "
                text += "(\(migration.version), '\(migration.name)', '\(migration.checksum)');\n"
            }
        }
        print(text + "COMMIT;")
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show applied and pending migrations.")
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var regionOption: RegionOption
        @OptionGroup var quietOption: QuietOption

        func run() async throws {
            let code = try await runAsyncJob("migrate status") { () async throws(CastleError) -> Int32 in
                try await withMigrator(storeOptions.storeURL, otherwise: 0, readingOnly: true) {
                    (migrator, backend) throws(CastleError) in
                    let status = try await migrator.status()
                    let changed = Set(status.changed.map(\.version))
                    let applied = Set(status.applied.map(\.version))
                    for migration in migrator.migrations {
                        let state =
                            changed.contains(migration.version)
                            ? "changed" : applied.contains(migration.version) ? "applied" : "pending"
                        print("\(migration.version)\t\(state)\t\(migration.name)")
                    }
                    for unknown in status.unknown { print("\(unknown.version)\tunknown\t\(unknown.name)") }
                    let code = MigrateCommand.exitCode(status)
                    let summary =
                        switch code {
                        case 0: "up to date at version \(migrator.latestVersion)"
                        case 10: "\(status.pending.count) pending; run: castle migrate up"
                        case 11: "the database is newer than this castle"
                        default: "an applied migration was changed"
                        }
                    if !quietOption.quiet { writeStandardError("castle migrate: \(migrator.storeName): \(summary)\n") }
                    return code
                }
            }
            if code != 0 { throw ExitCode(code) }
        }
    }

    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply pending migrations (all, or up to --to).",
            usage: "castle migrate up [--store <url>] [--to <version>] [<options>]"
        )
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var regionOption: RegionOption
        @OptionGroup var quietOption: QuietOption
        @Option(help: ArgumentHelp("Stop at this version.", valueName: "version")) var to: Int?
        @Flag(help: "Print the SQL that would run; change nothing.") var dryRun = false

        func run() async throws {
            try await runAsyncJob("migrate up") { () async throws(CastleError) in
                try await withMigrator(storeOptions.storeURL, otherwise: (), create: !dryRun, readingOnly: dryRun) {
                    (migrator, backend) throws(CastleError) in
                    if dryRun {
                        printSQL(try await migrator.planUp(to: to), down: false)
                        return
                    }
                    let applied = try await migrator.up(to: to)
                    // The region's table exists from migration 0007 on.
                    if (to ?? Int.max) >= Migration.regionVersion { try await regionOption.record(in: backend) }
                    let names =
                        applied.isEmpty ? "nothing to apply" : "applied " + applied.map(\.name).joined(separator: ", ")
                    if !quietOption.quiet { writeStandardError("castle migrate: \(migrator.storeName): \(names)\n") }
                }
            }
        }
    }

    struct Down: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revert migrations newer than --to.",
            usage: "castle migrate down --to <version> [--store <url>] [<options>]"
        )
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var regionOption: RegionOption
        @OptionGroup var quietOption: QuietOption
        @Option(help: ArgumentHelp("The version to go back to (0: none).", valueName: "version")) var to: Int
        @Flag(help: "Print the SQL that would run; change nothing.") var dryRun = false

        func run() async throws {
            try await runAsyncJob("migrate down") { () async throws(CastleError) in
                try await withMigrator(storeOptions.storeURL, otherwise: ()) {
                    (migrator, backend) throws(CastleError) in
                    if dryRun {
                        printSQL(try await migrator.planDown(to: to), down: true)
                        return
                    }
                    let reverted = try await migrator.down(to: to)
                    let names =
                        reverted.isEmpty
                        ? "nothing to revert" : "reverted " + reverted.map(\.name).joined(separator: ", ")
                    if !quietOption.quiet { writeStandardError("castle migrate: \(migrator.storeName): \(names)\n") }
                }
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check that applied migrations are this castle's, by SHA-256 (exit 0, 10, 11 or 12)."
        )
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var regionOption: RegionOption
        @OptionGroup var quietOption: QuietOption

        func run() async throws {
            let code = try await runAsyncJob("migrate verify") { () async throws(CastleError) -> Int32 in
                try await withMigrator(storeOptions.storeURL, otherwise: 0, readingOnly: true) {
                    (migrator, backend) throws(CastleError) in
                    let status = try await migrator.status()
                    for migration in status.changed {
                        writeStandardError("castle migrate: \(migration.name): SHA-256 differs from the applied one\n")
                    }
                    for unknown in status.unknown {
                        writeStandardError(
                            "castle migrate: version \(unknown.version) (\(unknown.name)) is unknown to this castle\n"
                        )
                    }
                    let code = MigrateCommand.exitCode(status)
                    if !quietOption.quiet && (code == 0 || code == 10) {
                        writeStandardError(
                            "castle migrate: \(status.applied.count) applied migrations verified"
                                + (code == 10 ? "; \(status.pending.count) pending\n" : "\n")
                        )
                    }
                    return code
                }
            }
            if code != 0 { throw ExitCode(code) }
        }
    }
}
