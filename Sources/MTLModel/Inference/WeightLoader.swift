/// What `ModelWeights.init` reads the weights with: it owns every copy, inflated table and
/// prepared dense layer it makes until the weights take them over, and frees them all when a
/// later tensor fails (`discard`): `deinit` does not run for an initializer that throws before
/// every property is set.
final class WeightLoader {
    let model: Model
    private(set) var owned: [UnsafeMutableBufferPointer<Float>] = []
    private(set) var ownedRaw: [UnsafeMutableRawBufferPointer] = []
    /// The chunk checkers the tables' `TableChecks` point to (unretained there).
    private(set) var checkers: [AnyObject] = []
    private var prepared: [PreparedDenseLayer] = []

    init(_ model: Model) { self.model = model }

    /// Frees everything made so far (the weights did not take it).
    func discard() {
        owned.forEach { $0.deallocate() }
        ownedRaw.forEach { $0.deallocate() }
        prepared.forEach { $0.deallocate() }
    }

    /// A dense or interaction tensor as float32: mapped when stored so (the mapping outlives the
    /// weights), else an owned copy. These are few and used by every prediction, so a NaN or
    /// Inf among them is refused here, at once; table rows are checked only when a prediction
    /// they feed comes out non-finite (`ModelWeights.nonFiniteError`).
    func floats(_ name: TensorName) throws -> UnsafeBufferPointer<Float> {
        let tensor = model.tensor(name)
        if tensor.dtype == .float32, tensor.entry.compression == .none {
            let mapped = try tensor.withElements(as: Float.self) { $0 }  // the mapping outlives the weights
            try Self.requireFinite(mapped, tensor)
            return mapped
        }
        let values = try tensor.floats()
        try values.withUnsafeBufferPointer { try Self.requireFinite($0, tensor) }
        let copy = UnsafeMutableBufferPointer<Float>.allocate(capacity: values.count)
        _ = copy.initialize(from: values)
        owned.append(copy)
        return UnsafeBufferPointer(copy)
    }

    func array(_ name: TensorName) throws -> [Float] { Array(try floats(name)) }

    /// A table in its stored dtype, part by part (one part unless the model is sharded): mapped
    /// when uncompressed (its chunks checked as lookups first touch them, so a few lookups into
    /// a large table read a few chunks), else an owned copy checked whole.
    func table(_ name: TensorName) throws -> ModelWeights.TableView {
        let tensor = model.tensor(name)
        var parts: [(firstRow: Int, bytes: UnsafeRawBufferPointer)] = []
        var checks: [(firstRow: Int, checks: ChunkChecks?)] = []
        for part in tensor.parts {
            if let (bytes, partChecks) = part.tensor.file.mappedBytesCheckedOnTouch(of: part.tensor.name) {
                parts.append((part.firstRow, bytes))
                checks.append((part.firstRow, partChecks))
            } else {
                parts.append((part.firstRow, try part.tensor.storedOrInflated(into: &ownedRaw)))
                checks.append((part.firstRow, nil))
            }
        }
        return ModelWeights.TableView(rows: TensorRows(parts: parts, rowByteCount: tensor.rowByteCount, count: tensor.rowCount),
                                      dtype: tensor.dtype, columns: tensor.columnCount, checks: tableChecks(checks, rowByteCount: tensor.rowByteCount))
    }

    /// The checks of a table's parts, their checkers kept alive here.
    private func tableChecks(_ checks: [(firstRow: Int, checks: ChunkChecks?)], rowByteCount: Int) -> ModelWeights.TableChecks? {
        if checks.count == 1, let only = checks[0].checks {
            checkers.append(only)
            return ModelWeights.TableChecks(single: Unmanaged.passUnretained(only), split: nil, rowByteCount: rowByteCount)
        }
        guard checks.contains(where: { $0.checks != nil }), rowByteCount > 0 else { return nil }
        let split = ModelWeights.TableChecks.Parts(checks)
        checkers.append(split)
        return ModelWeights.TableChecks(single: nil, split: Unmanaged.passUnretained(split), rowByteCount: rowByteCount)
    }

    /// A field's tables and, for a keyed field, its index of keys (whole, or per batch for a
    /// large table or a model mapped sparsely: `KeyedIndex`).
    func field(_ field: Architecture.Field, at position: Int, linear: Bool) throws -> ModelWeights.FieldWeights {
        var keys: KeyedIndex?
        if field.mapping == .keyed {
            let tensor = model.tensor(.keys(field.name))
            let whole = KeyedIndex.indexesWhole(keyCount: tensor.rowCount, sparse: model.file.file.isSparse)
            do {
                keys = try KeyedIndex(tensor, field: position, whole: whole)
            } catch let error as MTLModelError {
                throw error.file == nil ? error.inFile(model.path) : error
            }
        }
        return ModelWeights.FieldWeights(rowCount: field.vocabSize, mapping: field.mapping, combiner: field.combiner, group: field.group,
                                         embedding: try table(.embedding(field.name)),
                                         linear: linear ? try table(.linear(field.name)) : nil, keys: keys)
    }

    /// The layers of one dense block prepared for the kernel, from `input` values wide (then
    /// the block's output width).
    func dense(_ layers: [Architecture.DenseLayer], block: DenseBlock, input: inout Int) throws -> [PreparedDenseLayer] {
        let arch = model.architecture
        let first = prepared.count
        for (index, layer) in layers.enumerated() {
            var bn: (weight: [Float], bias: [Float], mean: [Float], variance: [Float], eps: Double)?
            if layer.batchNorm {
                bn = (try array(.dense(block, index, .bnWeight)), try array(.dense(block, index, .bnBias)),
                      try array(.dense(block, index, .bnRunningMean)), try array(.dense(block, index, .bnRunningVar)), arch.bnEps)
            }
            prepared.append(PreparedDenseLayer(weight: try floats(.dense(block, index, .weight)), bias: try floats(.dense(block, index, .bias)),
                                               inputCount: input, outputCount: layer.units, batchNorm: bn,
                                               activation: layer.activation, order: arch.layerOrder))
            input = layer.units
        }
        return Array(prepared[first...])
    }

    private static func requireFinite(_ values: UnsafeBufferPointer<Float>, _ tensor: ModelTensor) throws(MTLModelError) {
        guard let bad = values.firstIndex(where: { !$0.isFinite }) else { return }
        throw MTLModelError(.malformed, "element \(bad) is \(values[bad]): predictions would not be finite (run mtl-model verify)",
                            file: tensor.file.path, location: .init(tensor: tensor.name))
    }
}
