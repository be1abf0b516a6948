import Benchmark
import Foundation
import MTLModel

// Library-level benchmarks of the format: opening a model (what `inspect` costs) at two
// sizes, verifying every byte, and synthesizing. Models are written once per run into a
// temporary directory (MTLM_BENCH_DIR to reuse one).

let benchmarkDirectory: String = {
    let path = ProcessInfo.processInfo.environment["MTLM_BENCH_DIR"] ?? (NSTemporaryDirectory() + "mtlm-benchmarks")
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}()

/// K = 16 and three large fields, scaled so the embeddings take about `rowCount` × 64 bytes.
func benchmarkArchitecture(rowCount: Int) throws -> Architecture {
    let config = """
    {"embedding_dim": 16, "groups": ["user", "item", "context"],
     "fields": [{"name": "user_id", "vocab_size": \(rowCount / 2), "group": "user"},
                {"name": "item_id", "vocab_size": \(rowCount / 4), "mapping": "keyed", "group": "item"},
                {"name": "tags", "vocab_size": \(rowCount / 4), "mapping": "direct", "combiner": "mean", "group": "item"},
                {"name": "hour", "vocab_size": 24, "mapping": "direct", "group": "context"}],
     "interaction": {"intra": true}, "bottom_input": "interaction+groups",
     "shared": [{"units": 512}, {"units": 256}, {"units": 128}, {"units": 64}],
     "tasks": [{"name": "ctr", "tower": [{"units": 64}]}, {"name": "follow", "tower": [{"units": 64}]}],
     "fusion": {"type": "lexicographic", "bucket": 0.01}}
    """
    return try Architecture(configJSON: Data(config.utf8))
}

/// Writes the model once (reused by later runs when it is already there).
func model(named name: String, rowCount: Int) throws -> String {
    let path = benchmarkDirectory + "/" + name + ".mtlm"
    if (try? ModelFile(path: path)) == nil {
        try Synthesizer(seed: 1).write(try benchmarkArchitecture(rowCount: rowCount), to: path, source: "benchmark")
    }
    return path
}

let small = 1 << 15   // 32 Ki rows ≈ 2 MiB
let large = 1 << 25   // 32 Mi rows ≈ 2 GiB

let benchmarks: @Sendable () -> Void = {
    predictBenchmarks()
    quantizeBenchmarks()
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .peakMemoryResident], maxDuration: .seconds(10), maxIterations: 1000)

    for (label, rows) in [("2 MiB", small), ("2 GiB", large)] {
        Benchmark("open + inspect summary, \(label) model",
                  configuration: .init(metrics: [.wallClock, .throughput, .peakMemoryResident])) { benchmark in
            let path = try model(named: "model-\(rows)", rowCount: rows)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                let file = try ModelFile(path: path)
                blackHole(try ModelSummary(file, includeTensors: true, statistics: false))
            }
        }
    }

    Benchmark("verify every byte, 2 GiB model",
              configuration: .init(metrics: [.wallClock, .peakMemoryResident], maxDuration: .seconds(60), maxIterations: 5)) { benchmark in
        let path = try model(named: "model-\(large)", rowCount: large)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let report = ModelVerifier().verify(try ModelFile(path: path))
            precondition(report.isValid)
        }
    }

    Benchmark("synth 256 MiB model",
              configuration: .init(metrics: [.wallClock, .peakMemoryResident], maxDuration: .seconds(60), maxIterations: 5)) { benchmark in
        let architecture = try benchmarkArchitecture(rowCount: 1 << 22)
        let path = benchmarkDirectory + "/synth-out.mtlm"
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            try Synthesizer(seed: 2).write(architecture, to: path, source: "benchmark")
        }
    }
}
