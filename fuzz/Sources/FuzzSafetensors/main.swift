import Foundation
import MTLModel

// The safetensors importer: header parsing, offsets, the config in its metadata, every
// structural check. Writes to a temporary .mtlm only if everything passes.
enum Scratch {
    static let directory = URL(fileURLWithPath: FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()).appendingPathComponent("fuzz-safetensors-\(getpid())").path
    static let input = directory + "/in.safetensors"
    static let output = directory + "/out.mtlm"
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    try? FileManager.default.createDirectory(atPath: Scratch.directory, withIntermediateDirectories: true)
    FileManager.default.createFile(atPath: Scratch.input, contents: Data(bytes: data, count: count))
    if let file = try? SafetensorsFile(path: Scratch.input) {
        for tensor in file.tensors.prefix(64) { _ = file.bytes(of: tensor).count }
    }
    _ = try? SafetensorsImporter().importCheckpoint(Scratch.input, to: Scratch.output)
    return 0
}
