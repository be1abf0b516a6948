#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CKernels

/// A dense layer prepared for batched evaluation: the weight transposed to [in][out] with
/// rows padded to a multiple of 16, batch norm reduced to a scale and a shift.
struct PreparedDenseLayer {
    static let lanes = 16

    let inputCount: Int
    let outputCount: Int
    /// `outputCount` rounded up to a multiple of 16: the stride of outputs in workspaces.
    let paddedOutputCount: Int
    /// [inputCount][paddedOutputCount], zeros in the padding.
    let transposedWeight: UnsafeMutableBufferPointer<Float>
    let bias: UnsafeMutableBufferPointer<Float>
    /// BN(x) = x · scale + shift, or nil without batch norm.
    let bnScale: [Float]?
    let bnShift: [Float]?
    let activation: Architecture.Activation
    let order: Architecture.LayerOrder

    init(weight: UnsafeBufferPointer<Float>, bias biasValues: UnsafeBufferPointer<Float>, inputCount: Int, outputCount: Int,
         batchNorm: (weight: [Float], bias: [Float], mean: [Float], variance: [Float], eps: Double)?,
         activation: Architecture.Activation, order: Architecture.LayerOrder) {
        self.inputCount = inputCount
        self.outputCount = outputCount
        paddedOutputCount = (outputCount + Self.lanes - 1) / Self.lanes * Self.lanes
        transposedWeight = .allocate(capacity: inputCount * paddedOutputCount)
        transposedWeight.initialize(repeating: 0)
        for o in 0..<outputCount {
            for i in 0..<inputCount { transposedWeight[i * paddedOutputCount + o] = weight[o * inputCount + i] }
        }
        bias = .allocate(capacity: paddedOutputCount)
        bias.initialize(repeating: 0)
        for o in 0..<outputCount { bias[o] = biasValues[o] }
        if let bn = batchNorm {
            // Computed in double, then rounded once: as exact as PyTorch's float32 evaluation.
            let scale = (0..<outputCount).map { Double(bn.weight[$0]) / (Double(bn.variance[$0]) + bn.eps).squareRoot() }
            bnScale = scale.map { Float($0) }
            bnShift = (0..<outputCount).map { Float(Double(bn.bias[$0]) - Double(bn.mean[$0]) * scale[$0]) }
        } else {
            bnScale = nil
            bnShift = nil
        }
        self.activation = activation
        self.order = order
    }

    func deallocate() {
        transposedWeight.deallocate()
        bias.deallocate()
    }

    /// y[r] = layer(x[r]) for `rows` rows; x rows have stride `inputStride`, y rows stride
    /// `paddedOutputCount`. Padding outputs are left at zero-ish values never read.
    func apply(_ x: UnsafePointer<Float>, inputStride: Int, rows: Int, into y: UnsafeMutablePointer<Float>) {
        multiply(x, inputStride: inputStride, rows: rows, into: y)
        for r in 0..<rows {
            let row = y + r * paddedOutputCount
            switch order {
            case .linearBnAct:
                normalize(row)
                activate(row)
            case .linearActBn:
                activate(row)
                normalize(row)
            }
        }
    }

    @inline(__always)
    private func normalize(_ row: UnsafeMutablePointer<Float>) {
        guard let bnScale, let bnShift else { return }
        for o in 0..<outputCount { row[o] = row[o] * bnScale[o] + bnShift[o] }
    }

    @inline(__always)
    private func activate(_ row: UnsafeMutablePointer<Float>) {
        switch activation {
        case .identity: return
        case .relu: for o in 0..<outputCount { row[o] = max(row[o], 0) }
        case .sigmoid: for o in 0..<outputCount { row[o] = Activations.sigmoid(row[o]) }
        case .tanh: for o in 0..<outputCount { row[o] = tanhf(row[o]) }
        }
    }

    /// The matrix product with bias (the C kernel picks AVX2 + FMA when the CPU has it).
    private func multiply(_ x: UnsafePointer<Float>, inputStride: Int, rows: Int, into y: UnsafeMutablePointer<Float>) {
        mtlm_dense_forward(x, inputStride, rows, transposedWeight.baseAddress!, inputCount, paddedOutputCount, bias.baseAddress!, y)
    }
}

enum Activations {
    @inline(__always)
    static func sigmoid(_ x: Float) -> Float {
        // Two branches keep exp from overflowing for large |x|.
        if x >= 0 { return 1 / (1 + expf(-x)) }
        let e = expf(x)
        return e / (1 + e)
    }
}
