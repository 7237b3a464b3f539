// swift-tools-version: 6.1
import PackageDescription

// The git commit `castle --version` shows, baked in at build time: bin/castle and bin/test set
// CASTLE_GIT_COMMIT from git; a plain `swift build` or a build from a tarball shows "unknown".
let gitCommit = String(
    (Context.environment["CASTLE_GIT_COMMIT"] ?? "").filter { $0.isLetter || $0.isNumber || $0 == "-" }.prefix(64)
)

let package = Package(
    name: "castle",
    // Linux only: castle calls Glibc directly (threads, signals, clocks, mkstemp) and links the system's
    // libarchive and libsqlite3; it is built and tested on Linux and declares no Apple platform.
    products: [
        .executable(name: "castle", targets: ["CastleCLI"]),
        .library(name: "MatchingEngine", targets: ["MatchingEngine"]),
        .library(name: "Codecs", targets: ["Codecs"]),
        .library(name: "Streams", targets: ["Streams"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        // HTTPRequestPart and HTTPResponsePart, the HTTP parts of Hummingbird's channel pipeline.
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.34.1"),
        // Rules and mapping files in TOML: toml++ (C++17, compiled from source) behind a Swift API.
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
        // Traces of `serve --otlp-endpoint` over OTLP/HTTP only: the OTLPGRPC trait (on by default) would build
        // grpc-swift and its HTTP/2 transport for nothing.
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    // Dependencies point one way, never back:
    //   CastleCore ← MatchingEngine, MarketData, MarketFeed
    //   CastleCore, CastleSupport ← Ledger (the pure double-entry core: entries, journal, settlement)
    //   CastleCore, CastleSupport ← Streams ← Codecs (+ MarketData), Reports (+ MarketData)
    //   CastleSupport ← Storage ← SQLiteBackend, PostgresBackend (no engine, no codecs, no libarchive)
    //   all of the above ← jobs: Pipeline (match, ingest), Replay, Accounting (ledger), Reconcile, CastleBench
    //   ← Server ← CastleCLI (parsing, wiring)
    // Where the next commands go: `reconcile` and `snapshot` each get a job module beside Replay (their
    // report writers in Reports, archives through Streams), `serve` a Server module between the jobs and
    // the CLI; the CLI's file for each only parses arguments and calls them.
    targets: [
        // Domain types only: no dependencies, no Foundation.
        .target(name: "CastleCore"),
        // The order book and the exchange: pure, deterministic, single-owner.
        .target(name: "MatchingEngine", dependencies: ["CastleCore"]),
        // The market-data fan-out of `serve`: every book kept from 1.1 events alone, and the `trades`,
        // `book` and `orders` channels sent to bounded per-connection buffers. Pure: no server, no I/O.
        .target(name: "MarketFeed", dependencies: ["CastleCore", "CastleSupport"]),
        // The market data of `serve` on the wire: the WebSocket `/v1/stream` over MarketFeed, and the web
        // page at `/` (embedded static files with ETag and Cache-Control). Routes only: the Server module
        // mounts them beside its own.
        .target(
            name: "MarketStream",
            dependencies: [
                "MarketFeed",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // Book reconstruction from recorded level-3 feeds, level-2 views, bars, statistics.
        .target(name: "MarketData", dependencies: ["CastleCore"]),
        .systemLibrary(
            name: "CArchive",
            pkgConfig: "libarchive",
            providers: [.apt(["libarchive-dev"])]
        ),
        // CastleError (sysexits codes, messages without credentials), stderr, errno text and the clocks:
        // the one module everything may import, with no dependencies, so the storage seam and its plugins
        // need nothing else of castle's but CastleCore.
        .target(name: "CastleSupport"),
        // I/O plumbing, no wire format: input sources (files, stdin, decompression through libarchive),
        // line readers, output sinks written atomically, write-behind, temporary files, progress on stderr.
        .target(name: "Streams", dependencies: ["CastleCore", "CastleSupport", "CArchive"]),
        // Wire formats only: NDJSON commands (decoder, and the decoding reader that runs it on a thread of
        // its own) and events, flat JSON, instruments files, LOBSTER message and orderbook files.
        .target(
            name: "Codecs",
            dependencies: ["CastleCore", "CastleSupport", "MarketData", "Streams", "CArchive"]
        ),
        // What people look at: replay writers (trades, bars, snapshots, statistics) and SVG charts.
        // `reconcile` adds its report writers here, `serve` its web charts.
        .target(name: "Reports", dependencies: ["CastleCore", "CastleSupport", "MarketData", "Streams"]),
        // The storage seam: Store and MessageQueue protocols, the URL registry, migrations as data, and
        // the in-memory backend. Nothing here imports a database driver, the matching engine or libarchive.
        .target(
            name: "Storage",
            dependencies: ["CastleCore", "CastleSupport", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // sqlite://PATH, the embedded default.
        .target(name: "SQLiteBackend", dependencies: ["Storage", "CastleSupport", "CSQLite"], path: "Plugins/SQLite"),
        // postgres://USER@HOST:PORT/DB, the scale-out backend.
        .target(
            name: "PostgresBackend",
            dependencies: [
                "Storage", "CastleSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Plugins/Postgres"
        ),
        // The jobs of `castle match` and `castle ingest`: the match stream (file or stdin to events) and the
        // book writer both modes share, the durable matcher of `castle match --queue`, the loader, and what
        // reads the store back for people (the event log of `castle events`, dead letters, dataset export
        // for `castle replay --dataset`). Jobs sit above Storage and the codecs; the CLI only wires them.
        .target(
            name: "Pipeline",
            dependencies: [
                "CastleCore", "CastleSupport", "MatchingEngine", "MarketData", "Streams", "Codecs", "Storage",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // `castle serve`: the HTTP server (Hummingbird 2) with the order path (group-committed queue, the
        // in-process durable matcher or external ones), the trading and market-data REST API, health,
        // readiness and metrics. One Service in a ServiceGroup beside the backends and the matcher.
        .target(
            name: "Server",
            dependencies: [
                "CastleCore", "CastleSupport", "MatchingEngine", "MarketData", "Codecs", "Storage", "Pipeline",
                "MarketFeed", "MarketStream", "Streams",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "OTel", package: "swift-otel"),
            ]
        ),
        // The double-entry ledger's pure core: assets, accounts, entries and their NDJSON codec, the journal
        // with its balances and verify, trade settlement. No storage, no Foundation.
        .target(name: "Ledger", dependencies: ["CastleCore", "CastleSupport"]),
        // The jobs of `castle ledger`: posting entry files, settling the durable matcher's trades, balances and
        // verify, on the Ledger core and the storage seam's LedgerStore.
        .target(
            name: "Accounting",
            dependencies: ["CastleCore", "CastleSupport", "Ledger", "Storage", "Streams", "Codecs"]
        ),
        // Realistic synthetic order flow (`castle generate`).
        .target(
            name: "SyntheticData",
            dependencies: ["CastleCore", .product(name: "HeapModule", package: "swift-collections")]
        ),
        // `castle replay`: market days through book reconstruction or re-matching, and their analytics.
        .target(
            name: "Replay",
            dependencies: [
                "CastleCore", "CastleSupport", "MatchingEngine", "MarketData", "Streams", "Codecs", "Reports",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // `castle reconcile`: processor CSVs (through column mappings) and camt.053 statements against the
        // ledger's entries, by rules in priority order; the report and the statements' balance proofs.
        // Its rules and mapping files are JSON or TOML (TOMLKit).
        .target(
            name: "Reconcile",
            dependencies: [
                "CastleCore", "CastleSupport", "Streams", "Ledger", "Storage",
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // `castle snapshot`: a store's tables, through the storage seam's rows, into a verified tar archive
        // (libarchive, through the same CArchive as Streams) and back into any backend; residency policies.
        .target(
            name: "Snapshot",
            dependencies: [
                "CastleCore", "CastleSupport", "Streams", "Storage", "CArchive",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // In-process measurement (`castle bench`).
        .target(
            name: "CastleBench",
            dependencies: [
                "CastleCore", "CastleSupport", "MatchingEngine", "Streams", "Codecs", "SyntheticData",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        // The build's git commit, as a C string defined on the compiler's command line.
        .target(name: "CBuildInfo", cSettings: [.define("CASTLE_GIT_COMMIT", to: "\"\(gitCommit)\"")]),
        .executableTarget(
            name: "CastleCLI",
            dependencies: [
                "CastleCore", "CastleSupport", "MatchingEngine", "Streams", "Reports", "SyntheticData",
                "CastleBench", "Replay", "Reconcile", "Snapshot", "Storage", "SQLiteBackend", "PostgresBackend",
                "Pipeline", "CBuildInfo", "Accounting", "Ledger", "Server",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Test support shipped as a target: the naive model book that is the engine's oracle.
        .target(name: "CastleTesting", dependencies: ["CastleCore", "CastleSupport", "Storage", "SyntheticData"]),

        .testTarget(name: "CastleCoreTests", dependencies: ["CastleCore"]),
        .testTarget(
            name: "MatchingEngineTests",
            dependencies: [
                "CastleCore", "MatchingEngine", "CastleTesting",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        // The tests of Streams, Codecs, Reports and the match stream: they share their fixtures (Support.swift).
        .testTarget(
            name: "CodecsAndStreamsTests",
            dependencies: [
                "CastleCore", "CastleSupport", "MatchingEngine", "MarketData", "Streams", "Codecs", "Reports",
                "Pipeline", "SyntheticData",
            ]
        ),
        .testTarget(name: "MarketDataTests", dependencies: ["CastleCore", "CastleSupport", "MarketData", "Codecs"]),
        // The fan-out alone, then on the wire: a real server on a loopback port with real WebSocket clients
        // (hummingbird-websocket's). One target, so both share their fixtures (Support.swift).
        .testTarget(
            name: "MarketFeedTests",
            dependencies: [
                "CastleCore", "MarketFeed", "MarketStream", "MatchingEngine",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "ReplayTests", dependencies: ["CastleCore", "MarketData", "Replay"]),
        // The real binary as users run it; `castle serve` through a real HTTP client (Serve*.swift), its
        // traces into a real OTLP/HTTP receiver (swift-nio), and serve's parts that time alone drives
        // (RateLimiterTests.swift).
        .testTarget(
            name: "CastleCLITests",
            dependencies: [
                "CastleCore",
                "Server",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "LedgerTests",
            dependencies: [
                "CastleCore", "CastleSupport", "CastleTesting", "Ledger", "SyntheticData",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        // The snapshot format, its hostile-archive corpus (made with libarchive) and the row seam of every
        // backend, against a real SQLite file and the throwaway PostgreSQL; the ledger (Accounting) fills
        // and verifies the stores it round-trips.
        .testTarget(
            name: "SnapshotTests",
            dependencies: [
                "CastleCore", "CastleSupport", "Storage", "SQLiteBackend", "PostgresBackend", "Snapshot", "CArchive",
                "CastleTesting", "Pipeline", "Codecs", "SyntheticData", "Ledger", "Accounting",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "ReconcileTests",
            dependencies: [
                "CastleCore", "CastleSupport", "Streams", "Ledger", "Reconcile", "SyntheticData",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "StorageTests",
            dependencies: [
                "CastleCore", "CastleSupport", "Storage", "SQLiteBackend", "PostgresBackend", "Pipeline",
                "CastleTesting", "Codecs", "SyntheticData",
                "MatchingEngine",
            ]
        ),
    ]
)

// The same upcoming features for every target, as swift-log and swift-metrics do.
// The hot paths (engine, decoder, writers) skip the runtime exclusivity checks in release builds, where
// they cost about 6% of `castle match`; debug builds and the tests keep them.
// Pipeline is hot for the match stream's loop (`castle match` file to file).
let hotTargets: Set<String> = [
    "CastleCore", "MatchingEngine", "MarketData", "Streams", "Codecs", "Reports", "Pipeline", "Replay",
]

for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    if hotTargets.contains(target.name) {
        settings.append(.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)))
    }
    settings.append(contentsOf: [
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("MemberImportVisibility"),
        .enableUpcomingFeature("InternalImportsByDefault"),
        .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
    ])
    target.swiftSettings = settings
}
