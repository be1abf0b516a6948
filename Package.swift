// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "mtl-model",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "MTLModel", targets: ["MTLModel"]),
        .executable(name: "mtl-model", targets: ["mtl-model"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C stays in these small targets: two system libraries and the generated manifest code.
        .systemLibrary(
            name: "CProtobufC",
            pkgConfig: "libprotobuf-c",
            providers: [.apt(["libprotobuf-c-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(
            name: "CMTLManifest",
            dependencies: ["CProtobufC"]
        ),
        // protoc-c output of the ONNX schema (schema/onnx/onnx-ml.proto), for `export` to .onnx.
        .target(
            name: "CONNXProto",
            dependencies: ["CProtobufC"]
        ),
        // Hot loops in C: the dense-layer kernel, int8 row quantization, row comparison, CRC-32
        // and value scans, with AVX2 / PCLMUL versions chosen at run time.
        // Always optimized: at -O0 every intrinsic goes through the stack, and the debug build
        // that `swift test` runs spent a fifth of its CLI time there (a debug `convert --eval`
        // of the demo model: 19.4 → 15.1 s of CPU at -O2). They are tested against their
        // portable twins, not stepped through.
        .target(
            name: "CKernels",
            dependencies: ["CZlib"],
            cSettings: [.unsafeFlags(["-O2"], .when(configuration: .debug))]
        ),
        .target(
            name: "MTLModel",
            dependencies: ["CMTLManifest", "CONNXProto", "CProtobufC", "CZlib", "CKernels"]
        ),
        .target(
            name: "MTLModelCLI",
            dependencies: [
                "MTLModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "mtl-model",
            dependencies: ["MTLModelCLI"]
        ),
        .testTarget(
            name: "MTLModelTests",
            dependencies: ["MTLModel", "MTLModelCLI", "CKernels"],
            resources: []
        ),
    ]
)
