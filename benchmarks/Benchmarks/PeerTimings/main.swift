// In-process timings of mtl-model for benchmarks/peers.py, measured the way the Python peers
// are (around the operation only, no process start-up), medians of RUNS:
//
//   PeerTimings read MODEL THREADS RUNS          open + verify (every chunk's CRC, NaN/Inf, keys)
//   PeerTimings save CHECKPOINT OUT RUNS SYNC    the checkpoint's tensors, copied into memory
//                                                first, written with ModelWriter to OUT, removed
//                                                before each run; SYNC 1 or 0 (fsync before the
//                                                rename, or not)
//
// Prints one JSON object: {"seconds": median}.
import Foundation
import MTLModel

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func time(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

let arguments = CommandLine.arguments
guard arguments.count >= 5 else {
    FileHandle.standardError.write(Data("usage: PeerTimings read MODEL THREADS RUNS | save CHECKPOINT OUT RUNS SYNC\n".utf8))
    exit(2)
}
var times: [Double] = []
switch arguments[1] {
case "read":
    let threads = Int(arguments[3])!, runs = Int(arguments[4])!
    for _ in 0..<runs {
        times.append(try time {
            let model = try ModelFile(path: arguments[2])
            let report = ModelVerifier(threadCount: threads).verify(model)
            precondition(report.isValid, "\(report.problems)")
        })
    }
case "save":
    let runs = Int(arguments[4])!
    let checkpoint = try SafetensorsFile(path: arguments[2])
    let architecture = try Architecture(configJSON: Data(checkpoint.metadata[SafetensorsImporter.configKey]!.utf8))
    // Held in memory as the peers hold their arrays: numpy asks for transparent huge pages for
    // arrays of 4 MiB and more (madvise MADV_HUGEPAGE), which makes the kernel's copy out of
    // them cheaper; the same here, so that both writers copy from the same kind of memory.
    let tensors = checkpoint.tensors.map { tensor in
        let source = checkpoint.bytes(of: tensor)
        let memory = mmap(nil, max(source.count, 1), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
        if source.count >= 4 << 20 { madvise(memory, source.count, 14 /* MADV_HUGEPAGE */) }
        memory.copyMemory(from: source.baseAddress ?? UnsafeRawPointer(memory), byteCount: source.count)
        return (tensor, UnsafeRawBufferPointer(start: memory, count: source.count))
    }
    var options = ModelWriter.Options()
    options.synchronize = arguments[5] == "1"
    for _ in 0..<runs {
        // A new file each run, as the peers write (benchmarks/peers.py says why).
        unlink(arguments[3])
        times.append(try time {
            let writer = try ModelWriter(path: arguments[3], options: options)
            for (tensor, bytes) in tensors {
                let role: TensorRole = tensor.name.hasSuffix(".keys") ? .keys : .parameter
                try writer.writeTensor(tensor.name, dtype: tensor.dtype, shape: tensor.shape, role: role, bytes: bytes)
            }
            try writer.finish(architecture: architecture, provenance: Provenance(createdUnixSeconds: 0, source: "peers"))
        })
    }
default:
    exit(2)
}
print("{\"seconds\": \(median(times))}")
