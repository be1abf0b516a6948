/// The weights of a model in the form the forward pass uses: float pointers into the mapped
/// file where the tensor is stored as uncompressed float32 (zero copy), owned copies
/// otherwise, keyed indexes, and prepared dense layers.
///
/// `@unchecked Sendable`: immutable after `init` (pointers into a read-only mapping, or into
/// owned copies freed only by `deinit`).
final class ModelWeights: @unchecked Sendable {
    /// A table used where it is stored: rows of any dtype, decoded as they are read.
    struct TableView {
        var rows: TensorRows
        var dtype: DType
        var rowByteCount: Int { rows.rowByteCount }
        var columns: Int
        /// What checks the checksums of the chunks a lookup touches, the first time it does;
        /// nil when every part was checked whole (compressed parts, inflated with their checks).
        var checks: TableChecks?

        @inline(__always)
        func row(_ index: Int) -> UnsafeRawPointer { rows.row(index) }
    }

    /// The chunk checks of each part of a table, by row: a trivial value (the checkers are
    /// kept alive by `ModelWeights`), so that copying a field's weights in the lookup loop
    /// costs no reference counting.
    struct TableChecks {
        /// Each part's first row and checker (nil: checked whole).
        final class Parts {
            let parts: [(firstRow: Int, checks: ChunkChecks?)]
            init(_ parts: [(firstRow: Int, checks: ChunkChecks?)]) { self.parts = parts }
        }
        /// The checker of a table in one part (the usual case).
        let single: Unmanaged<ChunkChecks>?
        let split: Unmanaged<Parts>?
        let rowByteCount: Int

        /// Checks the chunks holding row `row` not checked yet: nil when they match.
        @inline(__always)
        func check(row: Int) -> MTLModelError? {
            if let single { return single._withUnsafeGuaranteedRef { $0.check(row * rowByteCount, rowByteCount) } }
            return split?._withUnsafeGuaranteedRef { split in
                var part = split.parts.count - 1
                while split.parts[part].firstRow > row { part -= 1 }  // parts are shards: a few
                return split.parts[part].checks?.check((row - split.parts[part].firstRow) * rowByteCount, rowByteCount)
            }
        }
    }

    struct FieldWeights {
        var rowCount: Int
        var mapping: Architecture.Mapping
        var combiner: Architecture.Combiner
        var group: Int
        var embedding: TableView
        var linear: TableView?
        var keys: KeyedIndex?

        /// The row of `id`, or -1 when out of vocabulary.
        @inline(__always)
        func row(of id: UInt64) -> Int {
            switch mapping {
            case .direct: return id < UInt64(rowCount) ? Int(id) : -1
            case .modulo: return Int(id % UInt64(rowCount))
            case .keyed: return keys!.row(of: id)
            }
        }
    }

    struct TaskWeights {
        var tower: [PreparedDenseLayer]
        var head: [Float]
        var headBias: Float
        var useLinear: Bool
        var logitOffset: Float
    }

    let model: Model  // keeps the mapping alive
    let architecture: Architecture
    let k: Int
    let fields: [FieldWeights]
    let linearBias: Float
    /// Pairs (a, b, weight) of the field-wise bi-interaction.
    let pairs: [(Int, Int, Float)]
    let intraWeights: [Float]?
    let fieldBias: [Float]?
    let shared: [PreparedDenseLayer]
    let tasks: [TaskWeights]
    /// Constants of the interaction and the fusion, read once here rather than through the
    /// architecture (a struct of arrays) in the per-sample loop.
    let groupCount: Int
    let intraScale: Float
    let bottomInput: Architecture.BottomInput
    let fusion: Architecture.Fusion
    /// Width of the bottom input z, and of the shared output the towers take.
    let bottomWidth: Int
    let towerInputWidth: Int
    /// The chunk checkers the tables' `TableChecks` point to (unretained there).
    private let checkers: [AnyObject]
    private var owned: [UnsafeMutableBufferPointer<Float>] = []
    private var ownedRaw: [UnsafeMutableRawBufferPointer] = []

    /// - Throws: when a dense or interaction tensor or a compressed table fails its checksum,
    ///   or a keyed table repeats a key (the structure was checked when `model` was built).
    ///   The chunks of an uncompressed table are checked as lookups first touch them.
    init(_ model: Model) throws {
        self.model = model
        let arch = model.architecture
        architecture = arch
        k = arch.embeddingDim
        groupCount = arch.groupCount
        intraScale = Float(arch.interaction.diceScale) * (arch.interaction.halfFactor ? 0.5 : 1)
        bottomInput = arch.bottomInput
        fusion = arch.fusion
        var owned: [UnsafeMutableBufferPointer<Float>] = []
        var ownedRaw: [UnsafeMutableRawBufferPointer] = []
        var checkers: [AnyObject] = []
        // Frees what was allocated so far when a later tensor fails: `deinit` does not run for
        // an initializer that throws before every property is set.
        var complete = false
        defer {
            if !complete {
                owned.forEach { $0.deallocate() }
                ownedRaw.forEach { $0.deallocate() }
            }
        }
        // Dense and interaction weights are few and all used by every prediction: a NaN or Inf
        // among them is refused here, at once. Table rows are checked only when a prediction
        // they feed comes out non-finite (`nonFiniteError`).
        func floats(_ name: TensorName) throws -> UnsafeBufferPointer<Float> {
            let tensor = model.tensor(name)
            if tensor.dtype == .float32, tensor.entry.compression == .none {
                let mapped = try tensor.withElements(as: Float.self) { $0 }  // the mapping outlives self
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
        /// A table in its stored dtype, part by part (one part unless the model is sharded):
        /// mapped when uncompressed (the mapping outlives self; its chunks checked as lookups
        /// first touch them, so a few lookups into a large table read a few chunks), else an
        /// owned copy checked whole.
        func table(_ name: TensorName) throws -> TableView {
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
            var tableChecks: TableChecks?
            if checks.count == 1, let only = checks[0].checks {
                checkers.append(only)
                tableChecks = TableChecks(single: Unmanaged.passUnretained(only), split: nil, rowByteCount: tensor.rowByteCount)
            } else if checks.contains(where: { $0.checks != nil }), tensor.rowByteCount > 0 {
                let split = TableChecks.Parts(checks)
                checkers.append(split)
                tableChecks = TableChecks(single: nil, split: Unmanaged.passUnretained(split), rowByteCount: tensor.rowByteCount)
            }
            return TableView(rows: TensorRows(parts: parts, rowByteCount: tensor.rowByteCount, count: tensor.rowCount),
                             dtype: tensor.dtype, columns: tensor.columnCount, checks: tableChecks)
        }

        var fields: [FieldWeights] = []
        for field in arch.fields {
            var keys: KeyedIndex?
            if field.mapping == .keyed {
                do {
                    keys = try KeyedIndex(model.tensor(.keys(field.name)))
                } catch let error as MTLModelError {
                    throw error.file == nil ? error.inFile(model.path) : error
                }
            }
            fields.append(FieldWeights(rowCount: field.vocabSize, mapping: field.mapping, combiner: field.combiner, group: field.group,
                                       embedding: try table(.embedding(field.name)),
                                       linear: arch.linear ? try table(.linear(field.name)) : nil,
                                       keys: keys))
        }
        self.fields = fields
        linearBias = arch.linear ? try array(.linearBias)[0] : 0
        let pairWeights = try array(.pairWeight)
        var pairs: [(Int, Int, Float)] = []
        for a in 0..<arch.groupCount {
            for b in (a + 1)..<max(a + 1, arch.groupCount) { pairs.append((a, b, pairWeights[pairs.count])) }
        }
        self.pairs = pairs
        intraWeights = arch.interaction.intra ? try array(.intraWeight) : nil
        fieldBias = arch.interaction.fieldBias ? try array(.fieldBias) : nil

        var prepared: [PreparedDenseLayer] = []
        defer { if !complete { prepared.forEach { $0.deallocate() } } }
        func dense(_ layers: [Architecture.DenseLayer], block: DenseBlock, input: inout Int) throws -> [PreparedDenseLayer] {
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
        bottomWidth = arch.bottomInputWidth
        var width = bottomWidth
        shared = try dense(arch.shared, block: .shared, input: &width)
        towerInputWidth = width
        var tasks: [TaskWeights] = []
        for task in arch.tasks {
            var taskWidth = width
            let tower = try dense(task.tower, block: .tower(task.name), input: &taskWidth)
            tasks.append(TaskWeights(tower: tower, head: try array(.headWeight(task.name)), headBias: try array(.headBias(task.name))[0],
                                     useLinear: task.useLinear, logitOffset: Float(task.logitOffset)))
        }
        self.tasks = tasks
        self.owned = owned
        self.ownedRaw = ownedRaw
        self.checkers = checkers
        complete = true
    }

    private static func requireFinite(_ values: UnsafeBufferPointer<Float>, _ tensor: ModelTensor) throws(MTLModelError) {
        guard let bad = values.firstIndex(where: { !$0.isFinite }) else { return }
        throw MTLModelError(.malformed, "element \(bad) is \(values[bad]): predictions would not be finite (run mtl-model verify)",
                            file: tensor.file.path, location: .init(tensor: tensor.name))
    }

    /// Why sample `sample` of `batch` predicts a non-finite value: the first table row it
    /// reads that holds a NaN or Inf, else finite weights whose products overflow float32.
    func nonFiniteError(_ batch: SampleBatch, sample: Int) -> MTLModelError {
        var decoded = [Float](repeating: 0, count: k)
        for e in Int(batch.entryStart[sample])..<Int(batch.entryStart[sample + 1]) {
            let f = Int(batch.entryField[e])
            let row = fields[f].row(of: batch.entryID[e])
            guard row >= 0 else { continue }
            let field = architecture.fields[f].name
            let tables = [(TensorName.embedding(field), fields[f].embedding)] + (fields[f].linear.map { [(TensorName.linear(field), $0)] } ?? [])
            for (name, table) in tables {
                decoded.withUnsafeMutableBufferPointer { RowCodec.decodeRow(table.row(row), dtype: table.dtype, columns: table.columns, into: $0.baseAddress!) }
                if let bad = decoded.prefix(table.columns).firstIndex(where: { !$0.isFinite }) {
                    return MTLModelError(.malformed, "row \(row) (id \(batch.entryID[e])) holds \(decoded[bad]) at column \(bad): the prediction of line \(batch.lineNumbers[sample]) is not finite (run mtl-model verify)",
                                         file: model.path, location: .init(tensor: name.description))
                }
            }
        }
        return MTLModelError(.malformed, "the prediction of line \(batch.lineNumbers[sample]) is not finite although every weight it uses is: values this large overflow float32 (run mtl-model verify)",
                             file: model.path)
    }

    deinit {
        owned.forEach { $0.deallocate() }
        ownedRaw.forEach { $0.deallocate() }
        shared.forEach { $0.deallocate() }
        tasks.forEach { $0.tower.forEach { $0.deallocate() } }
    }
}
