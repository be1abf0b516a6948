import Foundation
import FuzzSupport
import MTLModel

// Structural mutations of a valid model, past the container: each input is a list of edits
// (vocab sizes, mappings, groups, tasks, layer widths; a tensor's shape, dtype or role, or its
// removal; payload bytes: keys, NaN, Inf) applied to the golden training model, written as a
// checksum-valid file and fed to verify, the checked `Model`, the predictor and diff. Any input
// must give a value or an MTLModelError: never a crash, a trap or an out-of-bounds read.
enum Base {
    static let root = repositoryRoot
    static let golden = root.appendingPathComponent("fixtures/v1.0/small-training.mtlm").path
    static let data = root.appendingPathComponent("fixtures/predict/small.txt").path
    static let file = try! ModelFile(path: golden)
    static let model = try! Model(file)
    static let tensors: [(TensorEntry, [UInt8])] = file.tensors.map { entry in
        (entry, try! file.withTensorBytes(entry.name) { Array($0) })
    }
    static let path = URL(fileURLWithPath: FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory())
        .appendingPathComponent("fuzz-structure-\(getpid()).mtlm").path
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ pointer: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    var input = Bytes(pointer, count)
    var architecture = Base.model.architecture
    var tensors = Base.tensors.map { (entry: $0.0, bytes: $0.1) }
    let sizes = [0, 1, 2, 3, 7, 11, 12, 13, 20, 24, 25, 1 << 20, 1 << 40]
    while let op = input.next() {
        let target = input.value()
        switch op % 11 {
        case 0:
            architecture.fields[target % architecture.fields.count].vocabSize = sizes[input.value() % sizes.count]
        case 1:
            architecture.fields[target % architecture.fields.count].mapping = Architecture.Mapping.allCases[input.value() % 3]
        case 2:
            architecture.fields[target % architecture.fields.count].group = input.value() % (architecture.groups.count + 1)
        case 3:
            if !tensors.isEmpty { tensors.remove(at: target % tensors.count) }
        case 4:
            guard !tensors.isEmpty else { continue }
            let i = target % tensors.count
            var shape = tensors[i].entry.shape
            if shape.isEmpty || input.value() % 4 == 0 { shape.append(UInt64(sizes[input.value() % 8])) } else { shape[input.value() % shape.count] = UInt64(sizes[input.value() % 10]) }
            tensors[i].entry.shape = shape
        case 5:
            guard !tensors.isEmpty else { continue }
            tensors[target % tensors.count].entry.dtype = DType.allCases[input.value() % DType.allCases.count]
        case 6:
            guard !tensors.isEmpty else { continue }
            tensors[target % tensors.count].entry.role = TensorRole.allCases[input.value() % TensorRole.allCases.count]
        case 7:
            // Eight payload bytes: a key copied over another, NaN, Inf, a huge or negative value.
            guard !tensors.isEmpty else { continue }
            let i = target % tensors.count
            let patterns: [UInt64] = [0x7FC0_0000_7FC0_0000, 0x7F80_0000_7F80_0000, 0x7F7F_FFFF_7F7F_FFFF, 0xFFFF_FFFF_FFFF_FFFF, 0]
            let at = (input.value() * 8) % max(tensors[i].bytes.count, 1)
            var pattern = patterns[input.value() % patterns.count]
            if input.value() % 2 == 0, tensors[i].bytes.count >= 16 { pattern = tensors[i].bytes[0..<8].reversed().reduce(0) { $0 << 8 | UInt64($1) } }
            for b in 0..<min(8, tensors[i].bytes.count - at) { tensors[i].bytes[at + b] = UInt8(truncatingIfNeeded: pattern >> (8 * b)) }
        case 8:
            if target % 2 == 0, architecture.tasks.count > 1 {
                architecture.tasks.removeLast()
            } else {
                var task = architecture.tasks[target % architecture.tasks.count]
                task.name += "x"
                architecture.tasks.append(task)
            }
        case 9:
            if !architecture.shared.isEmpty { architecture.shared[target % architecture.shared.count].units = max(1, input.value() % 16) }
        default:
            architecture.embeddingDim = max(1, input.value() % 9)
        }
    }
    // Keep the loss and fusion lists as long as the task list (otherwise the config is refused
    // before any structure is checked), and the payloads as large as the shapes say.
    if let loss = architecture.loss, !loss.values.isEmpty { architecture.loss!.values = Array((loss.values + Array(repeating: 0, count: 8)).prefix(architecture.tasks.count)) }
    var options = ModelWriter.Options()
    options.synchronize = false  // a scratch file: atomic is enough, durable costs an fsync a run
    guard let writer = try? ModelWriter(path: Base.path, options: options) else { return 0 }
    for tensor in tensors {
        guard let byteCount = tensor.entry.dtype.storedByteCount(shape: tensor.entry.shape), byteCount <= 1 << 16 else { return 0 }
        var bytes = tensor.bytes
        if bytes.isEmpty { bytes = [0] }
        let payload = (0..<Int(byteCount)).map { bytes[$0 % bytes.count] }
        guard (try? payload.withUnsafeBytes { try writer.writeTensor(tensor.entry.name, dtype: tensor.entry.dtype, shape: tensor.entry.shape, role: tensor.entry.role, bytes: $0) }) != nil else { return 0 }
    }
    do {
        try writer.finish(architecture: architecture, provenance: Base.file.manifest.provenance)
    } catch {
        trace("finish: \(error)")
        return 0
    }
    guard let file = try? ModelFile(path: Base.path) else { trace("open"); return 0 }
    _ = ModelVerifier(threadCount: 1).verify(file)
    let model: Model
    do { model = try Model(file) } catch { trace("model: \(error)"); return 0 }
    trace("model ok")
    exercise(model, base: Base.model, data: Base.data)
    return 0
}
