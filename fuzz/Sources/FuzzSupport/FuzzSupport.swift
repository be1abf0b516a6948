import Foundation
import MTLModel

// What the model targets share: reading the fuzzer's bytes, tracing how far an input got, and
// running a checked model through the readers that use it.

/// The repository's root (fixtures are read from it).
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

private let tracing = ProcessInfo.processInfo.environment["FUZZ_TRACE"] != nil

/// With FUZZ_TRACE set, says how far an input got (to check that mutations reach the model).
public func trace(_ text: @autoclosure () -> String) {
    if tracing { print(text()) }
}

/// Reads the fuzzer's bytes as small integers.
public struct Bytes {
    var data: UnsafeBufferPointer<UInt8>
    var index = 0
    public init(_ pointer: UnsafePointer<UInt8>, _ count: Int) { data = UnsafeBufferPointer(start: pointer, count: count) }
    public mutating func next() -> Int? {
        guard index < data.count else { return nil }
        defer { index += 1 }
        return Int(data[index])
    }
    public mutating func value() -> Int { next() ?? 0 }
}

/// The predictor over `data` in batches of 64 — the model as a large request maps it (keyed
/// tables indexed whole) and as a small one does (mapped sparsely, keyed tables looked up
/// batch by batch) —, and diff against `base` both ways.
public func exercise(_ model: Model, base: Model, data: String) {
    var sparse = ModelFile.Options()
    sparse.access = .sparse
    let small = try? Model(path: model.path, options: sparse)
    for model in [model] + (small.map { [$0] } ?? []) {
        guard let predictor = try? Predictor(model: model),
              let reader = try? DatasetReader(path: data, architecture: model.architecture, skipInvalid: true) else { continue }
        var batch = SampleBatch(taskCount: model.architecture.tasks.count)
        while (try? reader.nextBatch(into: &batch, maxCount: 64)) == true { _ = try? predictor.predict(batch) }
    }
    _ = try? ModelDiff(topRowCount: 3, threadCount: 1).compare(model, base)
    _ = try? ModelDiff(threadCount: 1).compare(base, model)
}
