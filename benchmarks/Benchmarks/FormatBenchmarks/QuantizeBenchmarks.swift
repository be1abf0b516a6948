import Benchmark
import MTLModel

/// The int8 row-wise kernel over 256 MiB of float32 rows of 16 (#4's target: ≥ 1 GB/s of
/// float32 input per core; benchmarks/quantize-vs-numpy.sh runs numpy's version beside it).
let quantizeBenchmarks: @Sendable () -> Void = {
    Benchmark("quantize int8 rows, 256 MiB float32, K = 16",
              configuration: .init(metrics: [.wallClock], maxDuration: .seconds(20), maxIterations: 20)) { benchmark in
        let rows = (256 << 20) / 64
        var random = SystemRandomNumberGenerator()
        let values = (0..<rows * 16).map { _ in Float(Int(random.next() % 2001) - 1000) / 20000 }
        var output = [UInt8](repeating: 0, count: rows * 24)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            values.withUnsafeBufferPointer { input in
                output.withUnsafeMutableBytes { out in
                    precondition(ModelQuantizer.quantizeInt8Rows(input, columns: 16, into: out) == nil)
                }
            }
        }
    }

    /// The int4 kernel (#17's target: ≥ 250 MB/s of float32 input per core): the clipping
    /// search evaluates each row's error about 65 times.
    Benchmark("quantize int4 rows, 32 MiB float32, K = 16",
              configuration: .init(metrics: [.wallClock], maxDuration: .seconds(20), maxIterations: 10)) { benchmark in
        let rows = (32 << 20) / 64
        var random = SystemRandomNumberGenerator()
        let values = (0..<rows * 16).map { _ in Float(Int(random.next() % 2001) - 1000) / 20000 }
        var output = [UInt8](repeating: 0, count: rows * 12)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            values.withUnsafeBufferPointer { input in
                output.withUnsafeMutableBytes { out in
                    precondition(ModelQuantizer.quantizeInt4Rows(input, columns: 16, into: out) == nil)
                }
            }
        }
    }
}
