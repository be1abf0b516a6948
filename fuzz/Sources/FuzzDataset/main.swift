import Foundation
import MTLModel

// The dataset text parser, strict and with --skip-invalid, against a fixed architecture
// (every mapping and combiner, two tasks).
enum Scratch {
    static let architecture = try! Architecture(configJSON: Data("""
    {"embedding_dim": 4, "fields": [{"name": "user_id", "vocab_size": 20}, {"name": "item_id", "vocab_size": 12, "mapping": "keyed"},
     {"name": "tags", "vocab_size": 8, "mapping": "direct", "combiner": "mean"}, {"name": "hour", "vocab_size": 24, "mapping": "direct", "combiner": "sqrtn"}],
     "tasks": [{"name": "ctr"}, {"name": "follow"}]}
    """.utf8))
    static let path = URL(fileURLWithPath: FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()).appendingPathComponent("fuzz-dataset-\(getpid()).txt").path
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    FileManager.default.createFile(atPath: Scratch.path, contents: Data(bytes: data, count: count))
    for skipInvalid in [false, true] {
        guard let reader = try? DatasetReader(path: Scratch.path, architecture: Scratch.architecture, skipInvalid: skipInvalid) else { continue }
        var batch = SampleBatch(taskCount: 2)
        while (try? reader.nextBatch(into: &batch, maxCount: 7)) == true {
            precondition(batch.entryStart.count == batch.count + 1 && batch.labels.count == batch.count * 2)
        }
    }
    return 0
}
