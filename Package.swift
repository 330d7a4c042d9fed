// swift-tools-version:6.0
// Headcount: a real-time ticketing statistics engine.
//
// Layout (see docs/ARCHITECTURE.md):
//   CLibUV, CHTTPParser   system libraries from the distribution (libuv1-dev, libhttp-parser-dev)
//   CFeedJSON             a small C++ bridge over Debian's simdjson, with an extern "C" API
//   CCRC32C               CRC-32C with the CPU's instruction (SSE 4.2), for HeadcountStorage
//   CPrefetch             a cache prefetch hint (`__builtin_prefetch`), for HeadcountCore
//   CHeapReservoir        jemalloc (libjemalloc-dev) as the server's allocator, tuned: no decay
//                         purging, fresh extents from one reservoir the prefaulter runs ahead of
//   HeadcountCore         the pure domain: feed events, ticket state, counters, snapshots, queries
//   HeadcountFeed         bytes -> validated feed events (JSON / NDJSON), on simdjson
//   HeadcountStorage      WAL and snapshot files
//   HeadcountServer       the libuv shell: loop, TCP, HTTP, routes, auth, metrics
//   headcount             the executable: argument parsing and start-up only
import PackageDescription

/// Release builds skip Swift's dynamic exclusivity checks on the hot paths: they cost about a
/// quarter of the instructions per request (TOOLCHAIN.md). Debug builds and tests keep them.
let hotPathSettings: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "Headcount",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "headcount", targets: ["headcount"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.2.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.1.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibUV",
            pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]
        ),
        .systemLibrary(
            name: "CHTTPParser",
            providers: [.apt(["libhttp-parser-dev"])]
        ),
        .target(
            name: "CFeedJSON",
            linkerSettings: [.linkedLibrary("simdjson")]
        ),
        .target(
            name: "HeadcountCore",
            dependencies: [
                "CPrefetch",
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "Collections", package: "swift-collections"),
            ],
            swiftSettings: hotPathSettings
        ),
        .target(
            name: "HeadcountFeed",
            dependencies: ["CFeedJSON", "HeadcountCore"],
            swiftSettings: hotPathSettings
        ),
        .target(name: "CCRC32C"),
        .target(name: "CPrefetch"),
        .target(
            name: "CHeapReservoir",
            linkerSettings: [.linkedLibrary("jemalloc")]
        ),
        .target(
            name: "HeadcountStorage",
            dependencies: ["HeadcountCore", "CCRC32C"],
            swiftSettings: hotPathSettings
        ),
        .target(
            name: "HeadcountServer",
            dependencies: [
                "CLibUV", "CHTTPParser", "CHeapReservoir", "HeadcountCore", "HeadcountFeed", "HeadcountStorage",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: hotPathSettings
        ),
        .executableTarget(
            name: "headcount",
            dependencies: [
                "HeadcountServer", "HeadcountCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "HeadcountBenchmarks",
            dependencies: [
                "HeadcountCore", "HeadcountFeed", "HeadcountStorage", "HeadcountTestSupport", "CHeapReservoir",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "Benchmarks/HeadcountBenchmarks"
        ),
        .executableTarget(name: "headcount-loadgen", dependencies: ["HeadcountCore", "CLibUV", .product(name: "Histogram", package: "hdrhistogram-swift"), .product(name: "ArgumentParser", package: "swift-argument-parser")], path: "tools/loadgen",
                          swiftSettings: hotPathSettings),
        .target(name: "HeadcountTestSupport", dependencies: ["HeadcountCore"], path: "Tests/HeadcountTestSupport"),
        .testTarget(name: "HeadcountCoreTests", dependencies: ["HeadcountCore", "HeadcountTestSupport"]),
        .testTarget(name: "HeadcountFeedTests", dependencies: ["HeadcountFeed", "HeadcountCore"]),
        .testTarget(name: "HeadcountStorageTests", dependencies: ["HeadcountStorage", "HeadcountCore", "HeadcountTestSupport"]),
        .testTarget(name: "HeadcountServerTests", dependencies: ["HeadcountServer", "HeadcountCore", "HeadcountTestSupport"]),
        .testTarget(name: "HeadcountEndToEndTests", dependencies: ["HeadcountCore", "HeadcountTestSupport"],
                    exclude: ["python"]),
    ],
    swiftLanguageModes: [.v5],
    cxxLanguageStandard: .cxx17
)
