import Foundation
import FuzzSupport
import MTLModel

// Cross-file mutations of a valid sharded model (format 1.3): each input is a list of edits of
// the golden root and its three shards — a part's row or bucket range, bucket bits and seed, a
// shard's file name, size, manifest hash, model id, index, count or root name, a table
// tensor's dtype or shape, a part or a shard removed, a payload byte of a shard — written as
// checksum-valid files (the root's sizes and hashes recomputed unless an edit set them) and fed
// to verify, the checked `Model`, the predictor, diff both ways, a reshard, and delta / apply
// (format 1.4) against the golden model and delta. Any input must
// give a value or an MTLModelError: never a crash, a trap, an out-of-bounds read or a write
// outside the scratch directory.
enum Base {
    static let root = repositoryRoot
    static let golden = root.appendingPathComponent("fixtures/v1.3/small-training.mtlm").path
    static let data = root.appendingPathComponent("fixtures/predict/small.txt").path
    static let delta = try? ModelFile(path: root.appendingPathComponent("fixtures/v1.4/small-training-edited.mtlmd").path)
    static let file = try! ModelFile(path: golden)
    static let model = try! Model(file)
    static let table = file.manifest.shards!
    /// Each shard's manifest and tensors, in the root's order.
    static let shards: [(file: ModelFile, tensors: [(TensorEntry, [UInt8])])] = table.files.map { shard in
        let file = try! ModelFile(path: (golden as NSString).deletingLastPathComponent + "/" + shard.fileName)
        return (file, file.tensors.map { ($0, try! file.withTensorBytes($0.name) { Array($0) }) })
    }
    static let scratch: String = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let path = "\(base)/fuzz-sharded-\(getpid())"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()
}

/// One shard as it will be written.
struct ShardEdit {
    var identity: ShardIdentity
    var tensors: [(entry: TensorEntry, bytes: [UInt8])]
}

let sizes: [UInt64] = [0, 1, 2, 3, 7, 11, 12, 13, 20, 24, 25, 1 << 16, 1 << 32, 1 << 40, UInt64.max]
let names = ["small-training-00001-of-00003.mtlm", "small-training-00002-of-00003.mtlm", "small-training-00003-of-00003.mtlm",
             "small-training.mtlm", "../small-training-00001-of-00003.mtlm", "x/y.mtlm", "", "missing-00001-of-00003.mtlm", "."]

/// Applies one edit of a part (rows, buckets, bits, seed, field).
func edit(_ part: inout TablePart, _ input: inout Bytes) {
    let size = sizes[input.value() % sizes.count]
    switch input.value() % 7 {
    case 0: part.firstRow = size
    case 1: part.rowCount = size
    case 2: part.firstBucket = UInt32(truncatingIfNeeded: size)
    case 3: part.bucketCount = UInt32(truncatingIfNeeded: size)
    case 4: part.bucketBits = UInt32(input.value() % 34)
    case 5: part.hashSeed = size
    default: part.field += "x"
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ pointer: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    var input = Bytes(pointer, count)
    var table = Base.table
    var shards = Base.shards.map { ShardEdit(identity: $0.file.manifest.shard!, tensors: $0.tensors.map { (entry: $0.0, bytes: $0.1) }) }
    var fixedSize = Set<Int>(), fixedHash = Set<Int>()
    while let op = input.next() {
        let target = input.value()
        let f = target % max(table.files.count, 1)
        switch op % 12 {
        case 0 where !table.files.isEmpty && !table.files[f].parts.isEmpty:
            edit(&table.files[f].parts[input.value() % table.files[f].parts.count], &input)
        case 1 where f < shards.count && !shards[f].identity.parts.isEmpty:
            edit(&shards[f].identity.parts[input.value() % shards[f].identity.parts.count], &input)
        case 2 where !table.files.isEmpty:
            table.files[f].fileName = names[input.value() % names.count]
        case 3 where !table.files.isEmpty:
            table.files[f].byteCount = sizes[input.value() % sizes.count]
            fixedSize.insert(f)
        case 4 where !table.files.isEmpty:
            table.files[f].manifestHash ^= UInt64(1) << UInt64(input.value() % 64)
            fixedHash.insert(f)
        case 5:
            let byte = input.value() % 16
            if target % 2 == 0 { table.modelID[byte] ^= 1 } else if f < shards.count { shards[f].identity.modelID[byte] ^= 1 }
        case 6 where f < shards.count:
            switch input.value() % 3 {
            case 0: shards[f].identity.index = UInt32(sizes[input.value() % sizes.count] & 0xFFFF_FFFF)
            case 1: shards[f].identity.count = UInt32(sizes[input.value() % sizes.count] & 0xFFFF_FFFF)
            default: shards[f].identity.rootFileName = names[input.value() % names.count]
            }
        case 7 where !table.tensors.isEmpty:
            let t = input.value() % table.tensors.count
            if input.value() % 2 == 0 {
                table.tensors[t].dtype = DType.allCases[input.value() % DType.allCases.count]
            } else if !table.tensors[t].shape.isEmpty {
                table.tensors[t].shape[input.value() % table.tensors[t].shape.count] = sizes[input.value() % 11]
            }
        case 8 where !table.files.isEmpty:
            if input.value() % 2 == 0 { table.files.remove(at: f) } else if !table.files[f].parts.isEmpty { table.files[f].parts.removeLast() }
        case 9 where f < shards.count && !shards[f].tensors.isEmpty:
            shards[f].tensors.remove(at: input.value() % shards[f].tensors.count)
        case 10 where f < shards.count && !shards[f].tensors.isEmpty:
            // Eight payload bytes of a shard's tensor: another key, NaN, Inf, zero.
            let t = input.value() % shards[f].tensors.count
            let patterns: [UInt64] = [0x7FC0_0000_7FC0_0000, 0x7F80_0000_7F80_0000, 0, 1, UInt64(input.value())]
            let bytes = shards[f].tensors[t].bytes.count
            let at = (input.value() * 8) % max(bytes, 1)
            let pattern = patterns[input.value() % patterns.count]
            for b in 0..<min(8, bytes - at) { shards[f].tensors[t].bytes[at + b] = UInt8(truncatingIfNeeded: pattern >> (8 * b)) }
        default:
            if table.files.count >= 2 { table.files.swapAt(f, (f + 1) % table.files.count) }
        }
    }
    guard write(&table, shards, fixedSize: fixedSize, fixedHash: fixedHash) else { return 0 }
    run()
    return 0
}

/// Writes the shards under the names the (edited) root lists, then the root.
func write(_ table: inout ShardTable, _ shards: [ShardEdit], fixedSize: Set<Int>, fixedHash: Set<Int>) -> Bool {
    for name in (try? FileManager.default.contentsOfDirectory(atPath: Base.scratch)) ?? [] { unlink(Base.scratch + "/" + name) }
    var options = ModelWriter.Options()
    options.synchronize = false  // scratch files: atomic is enough
    for (index, shard) in shards.enumerated() where index < table.files.count {
        let name = table.files[index].fileName
        // A name that is not a file in the scratch directory is never written (the readers
        // must refuse it, and nothing may be written outside).
        guard !name.isEmpty, !name.contains("/"), name != ".", name != "small-training.mtlm" else { continue }
        do {
            let writer = try ModelWriter(path: Base.scratch + "/" + name, options: options)
            for tensor in shard.tensors {
                try tensor.bytes.withUnsafeBytes { try writer.writeTensor(tensor.entry.name, dtype: tensor.entry.dtype, shape: tensor.entry.shape, role: tensor.entry.role, bytes: $0) }
            }
            let written = try writer.finish(architecture: Base.file.architecture, provenance: Base.shards[index].file.manifest.provenance, shard: shard.identity)
            if !fixedSize.contains(index) { table.files[index].byteCount = written.fileByteCount }
            if !fixedHash.contains(index) { table.files[index].manifestHash = written.manifestHash }
        } catch {
            trace("shard \(index): \(error)")
        }
    }
    do {
        let writer = try ModelWriter(path: Base.scratch + "/small-training.mtlm", options: options)
        for entry in Base.file.tensors {
            try Base.file.withTensorBytes(entry.name) { try writer.writeTensor(entry.name, dtype: entry.dtype, shape: entry.shape, role: entry.role, bytes: $0) }
        }
        try writer.finish(architecture: Base.file.architecture, provenance: Base.file.manifest.provenance, metadata: Base.file.manifest.metadata, shards: table)
        return true
    } catch {
        trace("root: \(error)")
        return false
    }
}

/// Every reader of a sharded model over the written files.
func run() {
    let root = Base.scratch + "/small-training.mtlm"
    guard let file = try? ModelFile(path: root) else { trace("open"); return }
    _ = ModelVerifier(threadCount: 1).verify(file)
    let model: Model
    do { model = try Model(file) } catch { trace("model: \(error)"); return }
    trace("model ok")
    exercise(model, base: Base.model, data: Base.data)
    _ = try? ModelSummary(file, includeTensors: true, statistics: true, checked: model)
    var options = ModelSharder.Options(shardCount: 2)
    options.synchronize = false
    _ = try? ModelSharder().shard(model, to: Base.scratch + "/out.mtlm", options: options)
    // Sharded deltas (1.4): the golden delta applied to the mutated model, and deltas both ways.
    if let delta = Base.delta { _ = try? ModelDelta.apply(base: model, delta: delta, to: Base.scratch + "/applied.mtlm") }
    _ = try? ModelDelta.make(base: Base.model, new: model, to: Base.scratch + "/d.mtlmd")
    _ = try? ModelDelta.make(base: model, new: Base.model, to: Base.scratch + "/e.mtlmd")
}
