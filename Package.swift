// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "castle",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "castle", targets: ["CastleCLI"]),
        .library(name: "MatchingEngine", targets: ["MatchingEngine"]),
        .library(name: "Formats", targets: ["Formats"]),
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
    ],
    targets: [
        // Domain types only: no dependencies, no Foundation.
        .target(name: "CastleCore"),
        // The order book and the exchange: pure, deterministic, single-owner.
        .target(name: "MatchingEngine", dependencies: ["CastleCore"]),
        // Book reconstruction from recorded level-3 feeds, level-2 views, bars, statistics.
        .target(name: "MarketData", dependencies: ["CastleCore"]),
        .systemLibrary(
            name: "CArchive",
            pkgConfig: "libarchive",
            providers: [.apt(["libarchive-dev"])]
        ),
        // Streaming readers and writers: the NDJSON contract, instruments files, compressed input.
        .target(name: "Formats", dependencies: ["CastleCore", "MatchingEngine", "MarketData", "CArchive"]),
        // The storage seam: Store and MessageQueue protocols, the URL registry, migrations as data, and
        // the in-memory backend. Nothing here imports a database driver.
        .target(
            name: "Storage",
            dependencies: ["CastleCore", "Formats", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // sqlite://PATH, the embedded default.
        .target(name: "SQLiteBackend", dependencies: ["Storage", "Formats", "CSQLite"], path: "Plugins/SQLite"),
        // postgres://USER@HOST:PORT/DB, the scale-out backend.
        .target(
            name: "PostgresBackend",
            dependencies: [
                "Storage", "Formats",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Plugins/Postgres"
        ),
        // Jobs over a store: `castle ingest` and the durable matcher of `castle match --queue`.
        .target(
            name: "Pipeline",
            dependencies: [
                "CastleCore", "MatchingEngine", "MarketData", "Formats", "Storage",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
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
                "CastleCore", "MatchingEngine", "MarketData", "Formats",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // In-process measurement (`castle bench`).
        .target(
            name: "CastleBench",
            dependencies: [
                "CastleCore", "MatchingEngine", "Formats", "SyntheticData",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .executableTarget(
            name: "CastleCLI",
            dependencies: [
                "CastleCore", "MatchingEngine", "Formats", "SyntheticData", "CastleBench", "Replay",
                "Storage", "SQLiteBackend", "PostgresBackend", "Pipeline",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Test support shipped as a target: the naive model book that is the engine's oracle.
        .target(name: "CastleTesting", dependencies: ["CastleCore", "Storage", "Formats"]),

        .testTarget(name: "CastleCoreTests", dependencies: ["CastleCore"]),
        .testTarget(
            name: "MatchingEngineTests",
            dependencies: [
                "CastleCore", "MatchingEngine", "CastleTesting", "Formats",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(name: "FormatsTests", dependencies: ["CastleCore", "MatchingEngine", "Formats", "SyntheticData"]),
        .testTarget(name: "MarketDataTests", dependencies: ["CastleCore", "MarketData", "Formats"]),
        .testTarget(name: "ReplayTests", dependencies: ["CastleCore", "MarketData", "Formats", "Replay"]),
        .testTarget(name: "CastleCLITests", dependencies: ["CastleCore"]),
        .testTarget(
            name: "StorageTests",
            dependencies: [
                "CastleCore", "Formats", "Storage", "SQLiteBackend", "PostgresBackend", "Pipeline", "CastleTesting",
                "MatchingEngine",
            ]
        ),
    ]
)

// The same upcoming features for every target, as swift-log and swift-metrics do.
// The hot paths (engine, decoder, writers) skip the runtime exclusivity checks in release builds, where
// they cost about 6% of `castle match`; debug builds and the tests keep them.
let hotTargets: Set<String> = ["CastleCore", "MatchingEngine", "MarketData", "Formats", "Replay"]

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
