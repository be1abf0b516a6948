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

        /// The row of `id`, or -1 when out of vocabulary; `batch`: the rows of the batch's ids
        /// in tables indexed per batch (`SampleBatch.keyedRows`).
        @inline(__always)
        func row(of id: UInt64, _ batch: BatchKeys?) -> Int {
            switch mapping {
            case .direct: return id < UInt64(rowCount) ? Int(id) : -1
            case .modulo: return Int(id % UInt64(rowCount))
            case .keyed: return keys!.row(of: id, batch)
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
        let loader = WeightLoader(model)
        var complete = false
        defer { if !complete { loader.discard() } }
        fields = try arch.fields.enumerated().map { try loader.field($1, at: $0, linear: arch.linear) }
        linearBias = arch.linear ? try loader.array(.linearBias)[0] : 0
        pairs = Self.pairs(try loader.array(.pairWeight), groupCount: arch.groupCount)
        intraWeights = arch.interaction.intra ? try loader.array(.intraWeight) : nil
        fieldBias = arch.interaction.fieldBias ? try loader.array(.fieldBias) : nil
        bottomWidth = arch.bottomInputWidth
        var width = bottomWidth
        shared = try loader.dense(arch.shared, block: .shared, input: &width)
        towerInputWidth = width
        tasks = try arch.tasks.map { [width] task in
            var taskWidth = width
            return TaskWeights(tower: try loader.dense(task.tower, block: .tower(task.name), input: &taskWidth),
                               head: try loader.array(.headWeight(task.name)), headBias: try loader.array(.headBias(task.name))[0],
                               useLinear: task.useLinear, logitOffset: Float(task.logitOffset))
        }
        owned = loader.owned
        ownedRaw = loader.ownedRaw
        checkers = loader.checkers
        complete = true
    }

    /// Pairs (a, b, weight) of groups a < b, in the order of the pair weights.
    private static func pairs(_ weights: [Float], groupCount: Int) -> [(Int, Int, Float)] {
        var pairs: [(Int, Int, Float)] = []
        for a in 0..<groupCount {
            for b in (a + 1)..<max(a + 1, groupCount) { pairs.append((a, b, weights[pairs.count])) }
        }
        return pairs
    }

    /// Why sample `sample` of `batch` predicts a non-finite value: the first table row it
    /// reads that holds a NaN or Inf, else finite weights whose products overflow float32.
    func nonFiniteError(_ batch: SampleBatch, sample: Int) -> MTLModelError {
        var decoded = [Float](repeating: 0, count: k)
        for e in Int(batch.entryStart[sample])..<Int(batch.entryStart[sample + 1]) {
            let f = Int(batch.entryField[e])
            let row = fields[f].row(of: batch.entryID[e], batch.keyedRows)
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
