// swift-tools-version: 6.1
import PackageDescription

/// Settings every Swift target shares: Swift 6 strict concurrency plus the upcoming features
/// the model codebases (Hummingbird, postgres-nio) turn on.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let nioCore: Target.Dependency = .product(name: "NIOCore", package: "swift-nio")
let nioPosix: Target.Dependency = .product(name: "NIOPosix", package: "swift-nio")
let nioExtras: Target.Dependency = .product(name: "NIOExtras", package: "swift-nio-extras")
let nioSSL: Target.Dependency = .product(name: "NIOSSL", package: "swift-nio-ssl")
let nioEmbedded: Target.Dependency = .product(name: "NIOEmbedded", package: "swift-nio")
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")
let serviceLifecycle: Target.Dependency = .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
let unixSignals: Target.Dependency = .product(name: "UnixSignals", package: "swift-service-lifecycle")
let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")
let httpClient: Target.Dependency = .product(name: "AsyncHTTPClient", package: "async-http-client")
let nioHTTP1: Target.Dependency = .product(name: "NIOHTTP1", package: "swift-nio")
let hummingbird: Target.Dependency = .product(name: "Hummingbird", package: "hummingbird")
let hummingbirdCore: Target.Dependency = .product(name: "HummingbirdCore", package: "hummingbird")
let mustache: Target.Dependency = .product(name: "Mustache", package: "swift-mustache")
let crypto: Target.Dependency = .product(name: "Crypto", package: "swift-crypto")
let metrics: Target.Dependency = .product(name: "Metrics", package: "swift-metrics")
let coreMetrics: Target.Dependency = .product(name: "CoreMetrics", package: "swift-metrics")
let prometheus: Target.Dependency = .product(name: "Prometheus", package: "swift-prometheus")

/// A service is a library (its logic, importable by tests) plus a thin executable.
func service(
    _ folder: String,
    library: String,
    executable: String,
    dependencies: [Target.Dependency],
    executableDependencies: [Target.Dependency] = []
) -> [Target] {
    [
        .target(name: library, dependencies: dependencies + ["CairnMetrics"], path: "Services/\(folder)/Sources", swiftSettings: swiftSettings),
        .executableTarget(
            name: executable,
            dependencies: [.target(name: library), "CairnService"] + executableDependencies,
            path: "Services/\(folder)/main",
            swiftSettings: swiftSettings
        ),
    ]
}

let package = Package(
    name: "Cairn",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "cairn", targets: ["cairn"]),
        .executable(name: "cairn-supervisor", targets: ["cairn-supervisor"]),
        .executable(name: "cairn-ingest", targets: ["cairn-ingest"]),
        .executable(name: "cairn-identity", targets: ["cairn-identity"]),
        .executable(name: "cairn-storage", targets: ["cairn-storage"]),
        .executable(name: "cairn-reporting", targets: ["cairn-reporting"]),
        .executable(name: "cairn-export", targets: ["cairn-export"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        // Without its default traits: no swift-configuration, and no Foundation beyond ours.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // System libraries: exactly one Swift module wraps each.
        .systemLibrary(
            name: "CLibPQ",
            path: "Shared/CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"]), .brew(["libpq"])]
        ),
        .systemLibrary(
            name: "CZlib",
            path: "Shared/CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]
        ),
        .systemLibrary(
            name: "CSQLite3",
            path: "Shared/CSQLite3",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"]), .brew(["sqlite3"])]
        ),

        // Shared libraries.
        .target(name: "CairnCore", path: "Shared/CairnCore", swiftSettings: swiftSettings),
        .target(
            name: "CairnWire",
            dependencies: ["CairnCore", nioCore, nioPosix, nioExtras, logging, serviceLifecycle],
            path: "Shared/CairnWire",
            swiftSettings: swiftSettings
        ),
        // The metrics every service exports (swift-metrics, with swift-prometheus as its backend).
        .target(name: "CairnMetrics", dependencies: [metrics, coreMetrics, prometheus], path: "Shared/CairnMetrics", swiftSettings: swiftSettings),
        .target(
            name: "CairnPostgres",
            dependencies: ["CLibPQ", "CairnCore", "CairnMetrics", nioPosix, logging, serviceLifecycle],
            path: "Shared/CairnPostgres",
            swiftSettings: swiftSettings
        ),
        .target(name: "CairnSQLite", dependencies: ["CSQLite3"], path: "Shared/CairnSQLite", swiftSettings: swiftSettings),
        .target(name: "CairnGzip", dependencies: ["CZlib"], path: "Shared/CairnGzip", swiftSettings: swiftSettings),
        .target(
            name: "CairnCondition",
            dependencies: ["CairnCore"],
            path: "Shared/CairnCondition",
            swiftSettings: swiftSettings
        ),
        // What derives from the events log: rollups, follower checkpoints, the log's horizon.
        .target(name: "CairnRollups", dependencies: ["CairnCore", "CairnPostgres"], path: "Shared/CairnRollups", swiftSettings: swiftSettings),
        // The contract between the services: every RPC method as a type.
        .target(name: "CairnMethods", dependencies: ["CairnCore", "CairnWire"], path: "Shared/CairnMethods", swiftSettings: swiftSettings),
        .target(
            name: "CairnService",
            dependencies: ["CairnCore", "CairnWire", "CairnMethods", "CairnMetrics", nioCore, logging, serviceLifecycle, unixSignals],
            path: "Shared/CairnService",
            swiftSettings: swiftSettings
        ),
    ]
        + service(
            "Storage",
            library: "CairnStorage",
            executable: "cairn-storage",
            dependencies: ["CairnCore", "CairnWire", "CairnMethods", "CairnPostgres", "CairnRollups", "CairnService", logging, serviceLifecycle]
        )
        + service(
            "Identity",
            library: "CairnIdentity",
            executable: "cairn-identity",
            dependencies: ["CairnCore", "CairnWire", "CairnMethods", "CairnPostgres", "CairnRollups", "CairnService", logging, serviceLifecycle]
        )
        + service(
            "Ingest",
            library: "CairnIngest",
            executable: "cairn-ingest",
            dependencies: [
                "CairnCore", "CairnWire", "CairnMethods", "CairnSQLite", "CairnService", "CairnGzip", hummingbird, hummingbirdCore, nioCore, nioPosix,
                logging, serviceLifecycle,
            ]
        )
        + service(
            "Reporting",
            library: "CairnReporting",
            executable: "cairn-reporting",
            dependencies: [
                "CairnCore", "CairnCondition", "CairnWire", "CairnMethods", "CairnPostgres", "CairnRollups", "CairnService", logging,
                serviceLifecycle,
            ],
            executableDependencies: ["CairnConsole"]
        )
        + [
            // The reporting service's HTTP side: the report API and the web console.
            .target(
                name: "CairnConsole",
                dependencies: [
                    "CairnCore", "CairnMethods", "CairnMetrics", "CairnWire", "CairnPostgres", "CairnRollups", "CairnReporting", "CairnService",
                    hummingbird,
                    hummingbirdCore, mustache, crypto, nioCore, logging, serviceLifecycle,
                ],
                path: "Services/Console/Sources",
                resources: [.copy("Templates"), .copy("Static")],
                swiftSettings: swiftSettings
            )
        ]
        + service(
            "Export",
            library: "CairnExport",
            executable: "cairn-export",
            dependencies: [
                "CairnCore", "CairnCondition", "CairnWire", "CairnMethods", "CairnPostgres", "CairnRollups", "CairnService", "CairnGzip", httpClient,
                logging, serviceLifecycle, crypto, mustache, nioCore, nioPosix, nioExtras, nioSSL,
            ]
        )
        + service(
            "Supervisor",
            library: "CairnSupervisor",
            executable: "cairn-supervisor",
            dependencies: [
                "CairnCore", "CairnWire", "CairnMethods", "CairnPostgres", "CairnService", nioCore, nioPosix, logging, serviceLifecycle, unixSignals,
                argumentParser, hummingbird,
            ]
        )
        + [
            .target(
                name: "CairnCLI",
                dependencies: ["CairnCore", "CairnWire", "CairnMethods", argumentParser],
                path: "Services/CLI/Sources",
                swiftSettings: swiftSettings
            ),
            .executableTarget(name: "cairn", dependencies: ["CairnCLI"], path: "Services/CLI/main", swiftSettings: swiftSettings),
            // `make rpc-docs`: docs/rpc.md from the method types; `make openapi`: docs/openapi.json from the report API's routes.
            .executableTarget(
                name: "cairn-rpc-docs",
                dependencies: ["CairnCore", "CairnMethods", "CairnMetrics", "CairnConsole"],
                path: "Tools/RPCDocs",
                swiftSettings: swiftSettings
            ),
            // `make bench`: the format layer alone, per format.
            .executableTarget(name: "cairn-format-bench", dependencies: ["CairnCore"], path: "bench/FormatBench", swiftSettings: swiftSettings),
            .executableTarget(
                name: "cairn-identity-bench",
                dependencies: ["CairnCore", "CairnIdentity"],
                path: "bench/IdentityBench",
                swiftSettings: swiftSettings
            ),
            .executableTarget(
                name: "cairn-http-bench",
                dependencies: ["CairnCore", httpClient, nioCore, nioHTTP1],
                path: "bench/HTTPBench",
                swiftSettings: swiftSettings
            ),

            // Tests: one target per library, plus the end-to-end suite against the real stack.
            .target(
                name: "CairnTesting",
                dependencies: [
                    "CairnCore", "CairnPostgres", "CairnWire", "CairnMethods", "CairnStorage", "CairnIdentity", "CairnGzip", httpClient, nioCore,
                    nioPosix, nioHTTP1,
                ],
                path: "Tests/CairnTesting",
                swiftSettings: swiftSettings
            ),
            // `make faults`: the fault suite in full (make test runs a shorter pass of it).
            .executableTarget(name: "cairn-faults", dependencies: ["CairnTesting"], path: "Tests/FaultSuite", swiftSettings: swiftSettings),
            .testTarget(
                name: "CairnCoreTests",
                dependencies: ["CairnCore", "CairnTesting"],
                path: "Tests/CairnCoreTests",
                swiftSettings: swiftSettings
            ),
            .testTarget(
                name: "CairnWireTests",
                dependencies: ["CairnWire", "CairnCore", "CairnTesting", nioCore, nioPosix, nioEmbedded, logging, serviceLifecycle],
                path: "Tests/CairnWireTests",
                swiftSettings: swiftSettings
            ),
            .testTarget(name: "CairnSQLiteTests", dependencies: ["CairnSQLite"], path: "Tests/CairnSQLiteTests", swiftSettings: swiftSettings),
            .testTarget(
                name: "CairnPostgresTests",
                dependencies: ["CairnPostgres", "CairnCore", "CairnTesting"],
                path: "Tests/CairnPostgresTests",
                swiftSettings: swiftSettings
            ),
            .testTarget(
                name: "CairnIngestTests",
                dependencies: ["CairnIngest", "CairnCore", "CairnMethods", "CairnSQLite", "CairnService", "CairnWire", nioCore],
                path: "Tests/CairnIngestTests",
                swiftSettings: swiftSettings
            ),
            .testTarget(
                name: "CairnIdentityTests",
                dependencies: ["CairnIdentity", "CairnCore"],
                path: "Tests/CairnIdentityTests",
                swiftSettings: swiftSettings
            ),
            .testTarget(
                name: "CairnStorageTests",
                dependencies: ["CairnStorage", "CairnIdentity", "CairnCore", "CairnPostgres", "CairnTesting", "CairnWire", logging],
                path: "Tests/CairnStorageTests",
                swiftSettings: swiftSettings
            ),
            .testTarget(
                name: "CairnReportingTests",
                dependencies: [
                    "CairnReporting", "CairnMethods", "CairnCondition", "CairnCore", "CairnWire", "CairnStorage", "CairnIdentity", "CairnRollups",
                    "CairnPostgres", "CairnTesting",
                ],
                path: "Tests/CairnReportingTests",
                swiftSettings: swiftSettings
            ),
            .testTarget(
                name: "CairnExportTests",
                dependencies: [
                    "CairnExport", "CairnMethods", "CairnCore", "CairnStorage", "CairnPostgres", "CairnTesting", "CairnGzip", "CairnWire", logging,
                    nioCore, nioPosix, nioHTTP1,
                ],
                path: "Tests/CairnExportTests",
                swiftSettings: swiftSettings
            ),
            .testTarget(
                name: "CairnMethodsTests",
                dependencies: ["CairnMethods", "CairnCore", "CairnWire"],
                path: "Tests/CairnMethodsTests",
                swiftSettings: swiftSettings
            ),
            .testTarget(
                name: "CairnConsoleTests",
                dependencies: ["CairnConsole", "CairnReporting", "CairnCore", "CairnMethods", crypto],
                path: "Tests/CairnConsoleTests",
                swiftSettings: swiftSettings
            ),
            .testTarget(name: "CairnServiceTests", dependencies: ["CairnService"], path: "Tests/CairnServiceTests", swiftSettings: swiftSettings),
            .testTarget(
                name: "CairnSupervisorTests",
                dependencies: ["CairnSupervisor", "CairnCore"],
                path: "Tests/CairnSupervisorTests",
                swiftSettings: swiftSettings
            ),
            .testTarget(
                name: "EndToEndTests",
                dependencies: [
                    "CairnCore", "CairnWire", "CairnPostgres", "CairnMetrics", "CairnTesting", "CairnGzip", httpClient, nioCore, nioHTTP1,
                ],
                path: "Tests/EndToEndTests",
                swiftSettings: swiftSettings
            ),
        ],
    swiftLanguageModes: [.v6]
)
