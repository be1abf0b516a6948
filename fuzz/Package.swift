// swift-tools-version:6.1
import Foundation
import PackageDescription

// libFuzzer targets for the parsers of untrusted input, depending on mtl-model by path.
// Build and run: see docs/RELIABILITY.md (fuzz/run.sh).

// SwiftPM names a path dependency after its directory, which is whatever the clone is called.
let mainPackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .lastPathComponent.lowercased()

// Build with `swift build --sanitize=fuzzer --sanitize=address`: libFuzzer then supplies main()
// and each target's main.swift only defines LLVMFuzzerTestOneInput (no top-level code runs).

let package = Package(
    name: "mtl-model-fuzz",
    dependencies: [.package(path: "..")],
    targets: [
        .executableTarget(name: "FuzzModelReader", dependencies: [.product(name: "MTLModel", package: mainPackage)]),
        .executableTarget(name: "FuzzSafetensors", dependencies: [.product(name: "MTLModel", package: mainPackage)]),
        .executableTarget(name: "FuzzDataset", dependencies: [.product(name: "MTLModel", package: mainPackage)]),
        .target(name: "FuzzSupport", dependencies: [.product(name: "MTLModel", package: mainPackage)]),
        .executableTarget(name: "FuzzModelStructure", dependencies: ["FuzzSupport", .product(name: "MTLModel", package: mainPackage)]),
        .executableTarget(name: "FuzzShardedModel", dependencies: ["FuzzSupport", .product(name: "MTLModel", package: mainPackage)]),
    ]
)
