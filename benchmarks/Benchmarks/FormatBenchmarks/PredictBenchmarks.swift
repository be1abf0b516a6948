import Benchmark
import Foundation
import MTLModel

/// The architecture of the predict throughput target (#3): 40 fields, K = 16, 3 groups,
/// bottom input interaction+groups, shared [512, 256, 128, 64], towers [64].
func predictArchitecture() throws -> Architecture {
    let fields = (0..<40).map { i in
        #"{"name": "f\#(i)", "vocab_size": \#(i < 4 ? 1_000_000 : 10_000), "mapping": "\#(i == 1 ? "keyed" : "modulo")", "group": "\#(["user", "item", "context"][i % 3])"}"#
    }.joined(separator: ",")
    let config = """
    {"embedding_dim": 16, "groups": ["user", "item", "context"], "fields": [\(fields)],
     "interaction": {"intra": true}, "linear": true, "bottom_input": "interaction+groups",
     "shared": [{"units": 512, "batch_norm": true}, {"units": 256}, {"units": 128}, {"units": 64}],
     "tasks": [{"name": "ctr", "tower": [{"units": 64}], "use_linear": true}, {"name": "follow", "tower": [{"units": 64}]}],
     "fusion": {"type": "lexicographic", "bucket": 0.01}}
    """
    return try Architecture(configJSON: Data(config.utf8))
}

/// `count` samples with one id in each field (two in every fourth field).
func predictBatch(_ architecture: Architecture, count: Int) -> SampleBatch {
    var random = SystemRandomNumberGenerator()
    var batch = SampleBatch(taskCount: 2, capacity: count)
    for _ in 0..<count {
        var entries: [(field: Int, id: UInt64, value: Float)] = []
        for field in 0..<architecture.fields.count {
            for _ in 0..<(field % 4 == 0 ? 2 : 1) { entries.append((field, random.next() % 2_000_000, 1)) }
        }
        batch.append(labels: [0, 0], entries: entries)
    }
    return batch
}

let predictBenchmarks: @Sendable () -> Void = {
    for threads in [1, 2] {
        Benchmark("predict 4096 samples, 40 fields, \(threads) thread\(threads == 1 ? "" : "s")",
                  configuration: .init(metrics: [.wallClock], maxDuration: .seconds(10), maxIterations: 200)) { benchmark in
            let architecture = try predictArchitecture()
            let path = benchmarkDirectory + "/predict-40-fields.mtlm"
            if (try? ModelFile(path: path)) == nil {
                try Synthesizer(seed: 3).write(architecture, to: path, source: "benchmark")
            }
            let predictor = try Predictor(model: try Model(path: path), threadCount: threads)
            let batch = predictBatch(architecture, count: 4096)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(try predictor.predict(batch))
            }
        }
    }
}
