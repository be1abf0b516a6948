import Foundation
import MTLModel

// The .mtlm reader end to end: header, footer, manifest, tensor directory, then lazy tensor
// access (checksums, inflating), statistics and verify. Any input must give a value or an
// MTLModelError — never a crash, a hang or an out-of-bounds read (AddressSanitizer).
enum Scratch {
    static let path = URL(fileURLWithPath: FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()).appendingPathComponent("fuzz-model-\(getpid()).mtlm").path
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    FileManager.default.createFile(atPath: Scratch.path, contents: Data(bytes: data, count: count))
    var options = ModelFile.Options()
    options.limits.maxManifestAllocationByteCount = 64 << 20  // keep the fuzzer's memory small
    guard let model = try? ModelFile(path: Scratch.path, options: options) else { return 0 }
    for entry in model.tensors.prefix(64) {
        _ = try? model.withTensorBytes(entry.name) { $0.count }
        _ = try? model.statistics(of: entry.name)
    }
    _ = ModelVerifier().verify(model)
    _ = try? ModelSummary(model, includeTensors: true, statistics: false)
    _ = model.architecture.config.serialized()
    return 0
}
