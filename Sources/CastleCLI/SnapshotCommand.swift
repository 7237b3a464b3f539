import ArgumentParser
import CastleSupport
import Snapshot
import Storage
import Streams

#if canImport(Glibc)
import Glibc
#endif

struct SnapshotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Package a region's store as a verified archive, check it, and restore it into any backend.",
        discussion: """
            A snapshot is a tar archive (zstd by default; gzip and xz are read too) holding manifest.json, manifest.sha256 and one NDJSON member per table, every member checked by size, row count and SHA-256 (docs/snapshots.md).

            Exit codes: 0 ok; 64 usage; 65 a bad or hostile archive (naming the member and the reason); 66 unreadable; 69 store unreachable; 73 the target is not empty (without --force); 78 the snapshot's schema is newer than this castle.

            Examples:
              castle snapshot create --store sqlite://castle.db -o eu.tar.zst
              castle snapshot verify eu.tar.zst
              castle snapshot inspect eu.tar.zst --json
              castle snapshot restore eu.tar.zst --into postgres://castle@db/castle
              castle snapshot create -o - | aws s3 cp - s3://bucket/eu.tar.zst
            """,
        subcommands: [Create.self, Verify.self, Inspect.self, Restore.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Snapshot every table of the store in one consistent read.",
            usage: "castle snapshot create [--store URL] [--region NAME] [--residency FILE] -o FILE|-",
            discussion: """
                One read transaction (REPEATABLE READ on PostgreSQL): workers and ingest may keep writing meanwhile. With -o - the archive goes to stdout, for a pipe to `aws s3 cp - s3://…`; a file is written under a temporary name and renamed into place when complete. --residency applies a policy file to the personal fields (account ids, in orders, trades and the owners of the users' ledger accounts): pseudonymise them with a keyed HMAC-SHA-256, or drop them (refused for a store with a ledger: 65).

                Examples:
                  castle snapshot create -o castle.tar.zst
                  castle snapshot create --store postgres://castle@db/castle --region eu-west-1 -o - > eu.tar.zst
                  CASTLE_RESIDENCY_KEY=… castle snapshot create --residency policy.json -o eu-pseudo.tar.zst
                """
        )

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var regionOption: RegionOption
        @Option(name: [.short, .long], help: ArgumentHelp("The archive to write; - for stdout.", valueName: "file"))
        var output: String
        @Option(help: ArgumentHelp("A residency policy file (docs/snapshots.md).", valueName: "file"))
        var residency: String?
        @Option(help: "Compression of the archive.") var compression: SnapshotCompression = .zstd
        @OptionGroup var quietOption: QuietOption

        func run() async throws {
            let summary = try await runAsyncJob("snapshot create") { () async throws(CastleError) in
                let policy = try residency.map { (path) throws(CastleError) in
                    try ResidencyPolicy(file: path, environment: environment())
                }
                let job = SnapshotCreate(
                    output: output == "-" ? nil : output,
                    region: regionOption.name,
                    regionGiven: regionOption.isGiven,
                    residency: policy,
                    compression: compression,
                    castleVersion: BuildInfo.versionLine,
                    createdAtSeconds: wallClockMilliseconds() / 1000,
                    showProgress: !quietOption.quiet
                )
                return try await Backends.with(storeOptions.storeURL) {
                    (backend) throws(CastleError) -> SnapshotCreate.Summary in
                    try await job.run(store: try tableStore(backend))
                }
            }
            if !quietOption.quiet {
                let manifest = summary.manifest
                writeStandardError(
                    "castle snapshot: \(output == "-" ? "<stdout>" : output): region \(manifest.region), schema \(manifest.schemaVersion), \(manifest.tables.count) tables, \(summary.rows) rows, \(megabytes(summary.tableBytes)) of table data in \(megabytes(summary.archiveBytes))\(manifest.residency.map { ", residency policy \($0.policy)" } ?? "")\n"
                )
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every member and checksum of a snapshot, with no database.",
            usage: "castle snapshot verify [FILE|-]",
            discussion: """
                Exit 0 when the archive is good; 65 naming the first bad member and the reason.

                Examples:
                  castle snapshot verify eu.tar.zst
                  aws s3 cp s3://bucket/eu.tar.zst - | castle snapshot verify -
                """
        )

        @OptionGroup var inputOptions: InputOptions
        @OptionGroup var regionOption: RegionOption
        @OptionGroup var quietOption: QuietOption

        func run() async throws {
            let summary = try await runAsyncJob("snapshot verify") { () async throws(CastleError) in
                try await SnapshotCheck.verify(path: inputOptions.path, showProgress: !quietOption.quiet)
            }
            if !quietOption.quiet {
                let rows = summary.manifest.tables.reduce(0) { $0 + $1.rows }
                writeStandardError(
                    "castle snapshot verify: \(inputOptions.path ?? "<stdin>"): good: \(summary.manifest.tables.count) tables, \(rows) rows, \(megabytes(summary.tableBytes)) checked\n"
                )
            }
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a snapshot's manifest: region, schema, tables with counts and sizes, matcher state.",
            usage: "castle snapshot inspect [FILE|-] [--json]",
            discussion: """
                Reads the manifest (checked against manifest.sha256) and nothing else; `verify` checks the tables.

                Examples:
                  castle snapshot inspect eu.tar.zst
                  castle snapshot inspect eu.tar.zst --json
                """
        )

        @OptionGroup var inputOptions: InputOptions
        @OptionGroup var regionOption: RegionOption
        @Flag(help: "Print the manifest as one JSON object.") var json = false
        @Option(name: [.short, .long], help: ArgumentHelp("Write here instead of stdout.", valueName: "file"))
        var output: String?

        func run() async throws {
            try await runJob("snapshot inspect") { [inputOptions, json, output] () throws(CastleError) in
                let manifest = try SnapshotCheck.manifest(path: inputOptions.path)
                let sink = try OutputSink(path: output)
                try sink.write(json ? manifest.compactText + "\n" : SnapshotCheck.describe(manifest))
                try sink.commit()
            }
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore a snapshot into a store, all or nothing.",
            usage: "castle snapshot restore [FILE|-] --into URL [--force]",
            discussion: """
                The target may be another backend than the source. It is migrated to the snapshot's schema version and filled in one transaction: any failure (a bad member, a kill -9) leaves it as it was. A target that holds rows is refused (73) unless --force, which replaces its contents. The target records --region as its region. Afterwards every matcher partition stands where the source's stood, so `castle match --queue … --drain` continues with the same next seq and the same books.

                Examples:
                  castle snapshot restore eu.tar.zst --into postgres://castle@db/castle
                  aws s3 cp s3://bucket/eu.tar.zst - | castle snapshot restore - --into sqlite://us.db --region us-east-1
                """
        )

        @OptionGroup var inputOptions: InputOptions
        @Option(help: ArgumentHelp("The store to restore into.", valueName: "url")) var into: String
        @Flag(help: "Replace the contents of a target that is not empty.") var force = false
        @OptionGroup var regionOption: RegionOption
        @OptionGroup var quietOption: QuietOption

        /// Fault injection for the kill -9 tests, in debug builds only (a release build refuses it): pause
        /// inside the transaction once this many rows are written, until killed.
        @Option(name: .customLong("debug-fault-pause-after-rows"), help: .hidden)
        var debugFaultPauseAfterRows: Int64?

        func validate() throws {
            #if !DEBUG
            if debugFaultPauseAfterRows != nil {
                throw ValidationError("--debug-fault-pause-after-rows is fault injection for tests: debug builds only")
            }
            #endif
        }

        func run() async throws {
            let job = SnapshotRestore(
                input: inputOptions.path,
                replace: force,
                region: regionOption.name,
                showProgress: !quietOption.quiet,
                debugPauseAfterRows: debugFaultPauseAfterRows
            )
            let into = into
            let summary = try await runAsyncJob("snapshot restore") { () async throws(CastleError) in
                // Like `migrate up`, a restore may make the target's store (it migrates it itself); a SQLite
                // file it made is removed again when the restore fails, so the target is as it was: absent.
                let madeFile = newSQLiteFile(into)
                do throws(CastleError) {
                    return try await Backends.with(into, migrating: true, create: true) {
                        (backend) throws(CastleError) -> SnapshotRestore.Summary in
                        try await job.run(store: try tableStore(backend))
                    }
                } catch {
                    if let madeFile { for suffix in ["", "-wal", "-shm"] { unlink(madeFile + suffix) } }
                    throw error
                }
            }
            if !quietOption.quiet {
                let manifest = summary.manifest
                writeStandardError(
                    "castle snapshot restore: \(inputOptions.path ?? "<stdin>") (region \(manifest.region)) into \(displayName(into)) (region \(regionOption.name)): \(manifest.tables.count) tables, \(summary.rows) rows, \(megabytes(summary.tableBytes)); \(manifest.matcher.count) matcher partitions verified\n"
                )
            }
        }
    }
}

func tableStore(_ backend: any Backend) throws(CastleError) -> any Store & TableStore {
    guard let store = backend as? any Store & TableStore else {
        throw CastleError(.usage, "\(backend.displayURL): this backend cannot be snapshotted")
    }
    return store
}

/// The path of a `sqlite://` URL whose file does not exist yet; nil otherwise.
func newSQLiteFile(_ url: String) -> String? {
    guard let parsed = try? StorageURL(parsing: url), parsed.scheme == "sqlite", access(parsed.path, F_OK) != 0
    else { return nil }
    return parsed.path
}

func displayName(_ url: String) -> String { (try? StorageURL(parsing: url))?.description ?? url }

func megabytes(_ bytes: Int64) -> String { format2(Double(bytes) / 1e6) + " MB" }
