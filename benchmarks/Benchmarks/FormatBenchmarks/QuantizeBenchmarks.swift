import Benchmark
import MTLModel

/// A row kernel over `mebibytes` of float32 rows of 16 (values in ±0.05), timed in memory:
/// `encode` takes the rows and an output of `rowBytes` a row, and returns whether it succeeded.
func rowKernelBenchmark(_ name: String, mebibytes: Int, rowBytes: Int, maxIterations: Int,
                        encode: @escaping (UnsafeBufferPointer<Float>, UnsafeMutableRawBufferPointer) -> Bool) {
    Benchmark(name, configuration: .init(metrics: [.wallClock], maxDuration: .seconds(20), maxIterations: maxIterations)) { benchmark in
        let rows = (mebibytes << 20) / 64
        var random = SystemRandomNumberGenerator()
        let values = (0..<rows * 16).map { _ in Float(Int(random.next() % 2001) - 1000) / 20000 }
        var output = [UInt8](repeating: 0, count: rows * rowBytes)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            values.withUnsafeBufferPointer { input in
                output.withUnsafeMutableBytes { out in precondition(encode(input, out)) }
            }
        }
    }
}

let quantizeBenchmarks: @Sendable () -> Void = {
    // The int8 row-wise kernel (#4's target: ≥ 1 GB/s of float32 input per core;
    // benchmarks/quantize-vs-numpy.sh runs numpy's version beside it).
    rowKernelBenchmark("quantize int8 rows, 256 MiB float32, K = 16", mebibytes: 256, rowBytes: 24, maxIterations: 20) {
        ModelQuantizer.quantizeInt8Rows($0, columns: 16, into: $1) == nil
    }
    // The int4 kernel (#17's target: ≥ 250 MB/s of float32 input per core): the clipping
    // search evaluates each row's error about 65 times.
    rowKernelBenchmark("quantize int4 rows, 32 MiB float32, K = 16", mebibytes: 32, rowBytes: 12, maxIterations: 10) {
        ModelQuantizer.quantizeInt4Rows($0, columns: 16, into: $1) == nil
    }
}
