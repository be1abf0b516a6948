// swift-tools-version:6.1
import Foundation
import PackageDescription

// SwiftPM names a path dependency after its directory, which is whatever the clone is called.
let mainPackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .lastPathComponent.lowercased()

// Benchmarks of the library's hot paths with ordo-one/benchmark, depending on mtl-model by
// path. Run: `cd benchmarks && swift package benchmark` (see docs/PERFORMANCE.md).
let package = Package(
    name: "mtl-model-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        // In-process timings of mtl-model for the peer comparison (benchmarks/peers.py).
        .executableTarget(
            name: "PeerTimings",
            dependencies: [.product(name: "MTLModel", package: mainPackage)],
            path: "Benchmarks/PeerTimings"
        ),
        .executableTarget(
            name: "FormatBenchmarks",
            dependencies: [
                .product(name: "MTLModel", package: mainPackage),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/FormatBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
