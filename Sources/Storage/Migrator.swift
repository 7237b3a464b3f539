public import CastleSupport
internal import Crypto

/// Versioned schema changes over a ``SchemaDatabase``: status, up, down, verify, dry runs.
public struct Migrator: Sendable {
    public let database: any SchemaDatabase
    public let migrations: [Migration]
    /// How the store is named in messages (no password).
    public let storeName: String

    public init(database: any SchemaDatabase, storeName: String, migrations: [Migration]? = nil) {
        self.database = database
        self.migrations = migrations ?? Migration.all(for: database.dialect)
        self.storeName = storeName
    }

    public var latestVersion: Int { migrations.last?.version ?? 0 }

    public struct Status: Sendable, Hashable {
        public var applied: [AppliedMigration]
        public var pending: [Migration]
        /// Applied migrations whose SHA-256 differs from the binary's: the file was edited after it ran.
        public var changed: [Migration]
        /// Applied versions this binary does not know: the database is newer than the binary.
        public var unknown: [AppliedMigration]

        public var isCurrent: Bool { pending.isEmpty && changed.isEmpty && unknown.isEmpty }
    }

    public func status() async throws(CastleError) -> Status {
        Self.compare(applied: try await database.appliedMigrations(), known: migrations)
    }

    static func compare(applied: [AppliedMigration], known: [Migration]) -> Status {
        let appliedByVersion = Dictionary(applied.map { ($0.version, $0) }, uniquingKeysWith: { first, _ in first })
        let knownVersions = Set(known.map(\.version))
        var status = Status(applied: applied, pending: [], changed: [], unknown: [])
        for migration in known {
            guard let record = appliedByVersion[migration.version] else {
                status.pending.append(migration)
                continue
            }
            if record.checksum != migration.checksum { status.changed.append(migration) }
        }
        status.unknown = applied.filter { !knownVersions.contains($0.version) }
        return status
    }

    /// The error for a status that forbids running: changed checksums or a newer database.
    func refusal(_ status: Status) -> CastleError? {
        if let changed = status.changed.first {
            return CastleError(
                .config,
                "\(storeName): migration \(changed.name) was changed after it was applied "
                    + "(its SHA-256 differs from the recorded one); restore the original file and add a new migration"
            )
        }
        if let unknown = status.unknown.first {
            return CastleError(
                .config,
                "\(storeName): the database has migration \(unknown.version) (\(unknown.name)), newer than this "
                    + "castle knows (latest \(latestVersion)); use a newer castle"
            )
        }
        return nil
    }

    /// Throws unless the schema is exactly the binary's: what every subcommand but `migrate` checks.
    public func requireCurrent() async throws(CastleError) {
        let status = try await status()
        if let refusal = refusal(status) { throw refusal }
        if !status.pending.isEmpty {
            let names = status.pending.map(\.name).joined(separator: ", ")
            throw CastleError(
                .config,
                "\(storeName) needs migrating (\(status.pending.count) pending: \(names)); "
                    + "run: castle migrate up --store '\(storeName)'"
            )
        }
    }

    /// The SQL that `up(to:)` would run, without running it.
    public func planUp(to target: Int?) async throws(CastleError) -> [Migration] {
        let status = try await status()
        if let refusal = refusal(status) { throw refusal }
        return status.pending.filter { $0.version <= (target ?? latestVersion) }
    }

    /// Applies pending migrations up to `target` (default: all) in one transaction under the lock:
    /// a failure leaves the database as it was. Returns what was applied.
    @discardableResult
    public func up(to target: Int? = nil) async throws(CastleError) -> [Migration] {
        var applied: [Migration] = []
        try await database.withMigrationTransaction { session throws(CastleError) in
            // Read again under the lock: a concurrent run may have applied some meanwhile.
            let status = Self.compare(applied: try await session.appliedMigrations(), known: migrations)
            if let refusal = refusal(status) { throw refusal }
            for migration in status.pending where migration.version <= (target ?? latestVersion) {
                for statement in migration.up {
                    do throws(CastleError) { try await session.execute(statement) } catch {
                        throw CastleError(error.kind, "\(migration.name): \(error.message); nothing was applied")
                    }
                }
                try await session.recordMigration(
                    AppliedMigration(version: migration.version, name: migration.name, checksum: migration.checksum)
                )
                applied.append(migration)
            }
        }
        return applied
    }

    /// The migrations `down(to:)` would revert, newest first.
    public func planDown(to target: Int) async throws(CastleError) -> [Migration] {
        let status = try await status()
        if let refusal = refusal(status) { throw refusal }
        let appliedVersions = Set(status.applied.map(\.version))
        return migrations.filter { $0.version > target && appliedVersions.contains($0.version) }.reversed()
    }

    /// Reverts applied migrations newer than `target`, newest first, in one transaction under the lock.
    @discardableResult
    public func down(to target: Int) async throws(CastleError) -> [Migration] {
        var reverted: [Migration] = []
        try await database.withMigrationTransaction { session throws(CastleError) in
            let status = Self.compare(applied: try await session.appliedMigrations(), known: migrations)
            if let refusal = refusal(status) { throw refusal }
            let appliedVersions = Set(status.applied.map(\.version))
            for migration in migrations.reversed() where migration.version > target {
                guard appliedVersions.contains(migration.version) else { continue }
                for statement in migration.down {
                    do throws(CastleError) { try await session.execute(statement) } catch {
                        throw CastleError(
                            error.kind,
                            "\(migration.name) (down): \(error.message); nothing was reverted"
                        )
                    }
                }
                try await session.forgetMigration(version: migration.version)
                reverted.append(migration)
            }
        }
        return reverted
    }
}

func sha256Hex(_ text: String) -> String {
    hexString(SHA256.hash(data: Array(text.utf8)))
}
