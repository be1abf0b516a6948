import CKernels
import Foundation

/// Scratch buffers of one thread, allocated once per `predict` call and slice.
final class Workspace {
    let pooled: UnsafeMutablePointer<Float>       // F × K: u_f of one sample
    let groupSum: UnsafeMutablePointer<Float>     // M × K: Σ u_f (then e_m with bias)
    let groupSquares: UnsafeMutablePointer<Float> // M × K: Σ u_f²
    let zWeight: UnsafeMutablePointer<Float>      // F: Σ value, then 1/Z_f
    let zSquares: UnsafeMutablePointer<Float>     // F: Σ value²
    let linear: UnsafeMutablePointer<Float>       // F: Σ value · w_f[row]
    let decodedRow: UnsafeMutablePointer<Float>   // K: a quantized row, decoded
    let linearTerm: UnsafeMutablePointer<Float>   // rows: y_lin per sample
    let bufferA: UnsafeMutablePointer<Float>      // rows × widest layer
    let bufferB: UnsafeMutablePointer<Float>
    let towerInput: UnsafeMutablePointer<Float>   // rows × shared output (kept for every task)
    /// Row of each entry of the block (-1: out of vocabulary), grown as needed.
    var entryRows: [Int] = []
    let width: Int
    private let allocations: [UnsafeMutablePointer<Float>]

    init(_ weights: ModelWeights, rows: Int) {
        let arch = weights.architecture
        let k = weights.k
        var widest = max(weights.bottomWidth, weights.towerInputWidth)
        for layer in weights.shared { widest = max(widest, layer.paddedOutputCount) }
        for task in weights.tasks { for layer in task.tower { widest = max(widest, layer.paddedOutputCount) } }
        width = widest
        func make(_ count: Int) -> UnsafeMutablePointer<Float> {
            let pointer = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
            pointer.initialize(repeating: 0, count: max(count, 1))
            return pointer
        }
        pooled = make(arch.fields.count * k)
        groupSum = make(arch.groupCount * k)
        groupSquares = make(arch.groupCount * k)
        zWeight = make(arch.fields.count)
        zSquares = make(arch.fields.count)
        linear = make(arch.fields.count)
        decodedRow = make(k)
        linearTerm = make(rows)
        bufferA = make(rows * widest)
        bufferB = make(rows * widest)
        towerInput = make(rows * widest)
        allocations = [pooled, groupSum, groupSquares, zWeight, zSquares, linear, decodedRow, linearTerm, bufferA, bufferB, towerInput]
    }

    deinit { allocations.forEach { $0.deallocate() } }
}

/// MODEL.md's forward pass over a block of samples.
enum ForwardPass {
    /// Samples evaluated together through the dense layers.
    static let blockRows = 64

    static func run(_ w: ModelWeights, _ batch: SampleBatch, _ samples: Range<Int>, _ ws: Workspace, _ out: OutputPointers) {
        let arch = w.architecture
        let k = w.k
        let fieldCount = arch.fields.count
        let groupCount = arch.groupCount
        let rows = samples.count
        let zStride = ws.width
        let c: Float = arch.interaction.halfFactor ? 0.5 : 1
        let dice = Float(arch.interaction.diceScale)

        batch.entryStart.withUnsafeBufferPointer { starts in
        batch.entryField.withUnsafeBufferPointer { entryFields in
        batch.entryID.withUnsafeBufferPointer { ids in
        batch.entryValue.withUnsafeBufferPointer { values in
            // First map every id of the block to its row and start loading the rows: the
            // lookups are random accesses into large tables, and issuing them all before
            // using any overlaps their memory latency.
            let firstEntry = Int(starts[samples.lowerBound])
            let entryCount = Int(starts[samples.upperBound]) - firstEntry
            if ws.entryRows.count < entryCount { ws.entryRows = Array(repeating: 0, count: entryCount) }
            ws.entryRows.withUnsafeMutableBufferPointer { rows in
                for e in 0..<entryCount {
                    let field = w.fields[Int(entryFields[firstEntry + e])]
                    let row = field.row(of: ids[firstEntry + e])
                    rows[e] = row
                    if row >= 0 {
                        mtlm_prefetch(field.embedding.row(row))
                        if let linear = field.linear { mtlm_prefetch(linear.row(row)) }
                    }
                }
            }
            for (r, sample) in samples.enumerated() {
                // Pool each field's bag: u_f = (1/Z_f) Σ value · V_f[row], OOV dropped.
                ws.pooled.update(repeating: 0, count: fieldCount * k)
                ws.zWeight.update(repeating: 0, count: fieldCount)
                ws.zSquares.update(repeating: 0, count: fieldCount)
                ws.linear.update(repeating: 0, count: fieldCount)
                for e in Int(starts[sample])..<Int(starts[sample + 1]) {
                    let f = Int(entryFields[e])
                    let field = w.fields[f]
                    let row = ws.entryRows[e - firstEntry]
                    if row < 0 { continue }
                    let value = values[e]
                    let target = ws.pooled + f * k
                    let stored = field.embedding.row(row)
                    if field.embedding.dtype == .float32 {
                        let vector = stored.assumingMemoryBound(to: Float.self)
                        for j in 0..<k { target[j] += value * vector[j] }
                    } else {
                        // Quantized or half-precision rows are decoded as they are read.
                        RowCodec.decodeRow(stored, dtype: field.embedding.dtype, columns: k, into: ws.decodedRow)
                        for j in 0..<k { target[j] += value * ws.decodedRow[j] }
                    }
                    ws.zWeight[f] += value
                    ws.zSquares[f] += value * value
                    if let linear = field.linear {
                        var weight: Float = 0
                        RowCodec.decodeRow(linear.row(row), dtype: linear.dtype, columns: 1, into: &weight)
                        ws.linear[f] += value * weight
                    }
                }
                var linearTerm = w.linearBias
                for f in 0..<fieldCount {
                    let scale: Float
                    switch w.fields[f].combiner {
                    case .sum: scale = 1
                    case .mean: scale = ws.zWeight[f] == 0 ? 0 : 1 / ws.zWeight[f]
                    case .sqrtn: scale = ws.zSquares[f] == 0 ? 0 : 1 / ws.zSquares[f].squareRoot()
                    }
                    if scale != 1 {
                        let target = ws.pooled + f * k
                        for j in 0..<k { target[j] *= scale }
                    }
                    linearTerm += scale * ws.linear[f]
                }
                ws.linearTerm[r] = linearTerm

                // Groups: e_m = Σ u_f (+ bias), BI_m = c · ((Σ u_f)² − Σ u_f²).
                ws.groupSum.update(repeating: 0, count: groupCount * k)
                ws.groupSquares.update(repeating: 0, count: groupCount * k)
                for f in 0..<fieldCount {
                    let u = ws.pooled + f * k
                    let sum = ws.groupSum + w.fields[f].group * k
                    let squares = ws.groupSquares + w.fields[f].group * k
                    for j in 0..<k {
                        sum[j] += u[j]
                        squares[j] += u[j] * u[j]
                    }
                }
                let z = ws.bufferA + r * zStride
                for j in 0..<k { z[j] = 0 }
                if let intra = w.intraWeights {
                    for m in 0..<groupCount {
                        let weight = dice * intra[m] * c
                        let sum = ws.groupSum + m * k, squares = ws.groupSquares + m * k
                        for j in 0..<k { z[j] += weight * (sum[j] * sum[j] - squares[j]) }
                    }
                }
                if let bias = w.fieldBias {
                    for m in 0..<groupCount {
                        let sum = ws.groupSum + m * k
                        for j in 0..<k { sum[j] += bias[m * k + j] }
                    }
                }
                for (a, b, weight) in w.pairs {
                    let ea = ws.groupSum + a * k, eb = ws.groupSum + b * k
                    for j in 0..<k { z[j] += weight * ea[j] * eb[j] }
                }
                switch arch.bottomInput {
                case .interaction: break
                case .interactionGroups: (z + k).update(from: ws.groupSum, count: groupCount * k)
                case .interactionFields: (z + k).update(from: ws.pooled, count: fieldCount * k)
                }
            }
        }}}}

        // Dense layers, the whole block at once.
        var input = UnsafeMutablePointer(ws.bufferA)
        var spare = ws.bufferB
        var inputStride = zStride
        for layer in w.shared {
            layer.apply(input, inputStride: inputStride, rows: rows, into: spare)
            swap(&input, &spare)
            inputStride = layer.paddedOutputCount
        }
        let towerInputStride = inputStride
        ws.towerInput.update(from: input, count: rows * towerInputStride)
        let taskCount = arch.tasks.count
        for (t, task) in w.tasks.enumerated() {
            var x = UnsafeMutablePointer(ws.towerInput)
            var stride = towerInputStride
            var target = ws.bufferA
            var other = ws.bufferB
            for layer in task.tower {
                layer.apply(x, inputStride: stride, rows: rows, into: target)
                x = target
                stride = layer.paddedOutputCount
                swap(&target, &other)
            }
            let width = task.head.count
            task.head.withUnsafeBufferPointer { head in
                for r in 0..<rows {
                    let row = x + r * stride
                    var logit = task.headBias
                    for i in 0..<width { logit += head[i] * row[i] }
                    if task.useLinear { logit += ws.linearTerm[r] }
                    logit += task.logitOffset
                    let index = (samples.lowerBound + r) * taskCount + t
                    out.logits[index] = logit
                    out.probabilities[index] = Activations.sigmoid(logit)
                }
            }
        }
        for r in 0..<rows {
            let sample = samples.lowerBound + r
            out.fused[sample] = Fusion.score(arch.fusion, probabilities: out.probabilities + sample * taskCount, taskCount: taskCount)
        }
    }
}

/// The fused ranking score of MODEL.md.
enum Fusion {
    static func score(_ fusion: Architecture.Fusion, probabilities p: UnsafePointer<Float>, taskCount: Int) -> Double {
        switch fusion.type {
        case .lexicographic:
            return (Double(p[0]) / fusion.bucket).rounded(.down) + Double(p[1])
        case .weightedSum:
            var total = 0.0
            for t in 0..<taskCount { total += fusion.weights[t] * Double(p[t]) }
            return total
        case .weightedProduct:
            var total = 1.0
            for t in 0..<taskCount { total *= pow(fusion.biases[t] + fusion.weights[t] * Double(p[t]), fusion.exponents[t]) }
            return total
        }
    }
}
