import Foundation

/// The shards of a sharded model's root, opened beside it and checked against the root's shard
/// table: what `Model` needs before it hands out a tensor that spans files, and what `verify`
/// reports (every problem, each naming the shard). A sharded delta's root (format 1.4) opens
/// its shards the same way: there each shard is a delta shard, and the tensors it must
/// describe are those of its recipe (the new model's shard), not those it stores.
///
/// Everything here reads manifests only (O(shards + tensors)): a shard's size and manifest
/// hash must be the root's record of them, and its manifest lists the CRC-32 of every chunk,
/// so a shard that passes these checks and whose chunks match their CRCs is the shard the root
/// was written with. What costs O(data) — the CRCs, and that each key of a keyed part hashes
/// into the part's buckets — is `verify`'s (and each first access's).
struct ShardSet: Sendable {
    let table: ShardTable
    /// Shard k at index k − 1; nil where it could not be opened.
    let files: [ModelFile?]
    let problems: [VerificationProblem]

    /// Opens the shards of `root` (which has a shard table) from the root's directory.
    static func open(root: ModelFile, options: ModelFile.Options) -> ShardSet {
        let table = root.manifest.shards!
        var problems = tableProblems(table, root.architecture, suffix: ShardNaming.suffix(delta: root.manifest.delta != nil))
        guard problems.isEmpty else { return ShardSet(table: table, files: table.files.map { _ in nil }, problems: problems) }
        var files: [ModelFile?] = []
        for (position, record) in table.files.enumerated() {
            let path = ShardNaming.beside(root: root.path, record.fileName)
            let name = "shard \(position + 1) of \(table.files.count)"
            func problem(_ message: String, tensor: String? = nil) -> VerificationProblem {
                .init(kind: .shards, tensor: tensor, byteOffset: nil, message: "\(name): \(message)", file: path)
            }
            do {
                let file = try ModelFile(path: path, options: options)
                let found = shardProblems(file, record, index: position + 1, table: table, root: root).map { problem($0.message, tensor: $0.tensor) }
                problems += found
                files.append(found.isEmpty ? file : nil)
            } catch {
                problems.append(problem(error.message))
                files.append(nil)
            }
        }
        return ShardSet(table: table, files: files, problems: problems)
    }

    /// The table alone: names plain and distinct, one part per field in field order, the
    /// parts of each field covering its rows (and keyed fields' buckets) exactly once, in order.
    static func tableProblems(_ table: ShardTable, _ architecture: Architecture, suffix: String) -> [VerificationProblem] {
        var messages: [String] = []
        if table.files.isEmpty { messages.append("the shard table lists no shards") }
        var names = Set<String>()
        for file in table.files {
            let name = file.fileName
            if name.isEmpty || name.contains("/") || name == "." || name == ".." || !name.hasSuffix(suffix) {
                messages.append("shard file name \"\(name)\" is not a plain \(suffix) file name beside the root")
            } else if !names.insert(name).inserted {
                messages.append("shard file \"\(name)\" is listed twice")
            }
            if file.parts.map(\.field) != architecture.fields.map(\.name) {
                messages.append("shard \(name) lists parts of fields \(file.parts.map(\.field)), not one per field of the architecture in order (\(architecture.fields.map(\.name)))")
            }
        }
        if messages.isEmpty {
            for (index, field) in architecture.fields.enumerated() {
                messages += coverageProblems(field, table.files.map { $0.parts[index] }, fileNames: table.files.map(\.fileName))
            }
        }
        return messages.map { .init(kind: .shards, tensor: nil, byteOffset: nil, message: $0) }
    }

    /// Rows of `field` covered by `parts` in order, exactly once; keyed fields' buckets too.
    private static func coverageProblems(_ field: Architecture.Field, _ parts: [TablePart], fileNames: [String]) -> [String] {
        var messages: [String] = []
        var nextRow: UInt64 = 0
        var nextBucket: UInt64 = 0
        let keyed = field.mapping == .keyed
        let bits = parts.first?.bucketBits ?? 0
        for (part, name) in zip(parts, fileNames) {
            let place = "field \"\(field.name)\" in shard \(name)"
            guard let rows = part.rows, rows.lowerBound == nextRow else {
                messages.append("\(place): rows start at \(part.firstRow), not at the previous shard's end (\(nextRow)): rows would be \(part.firstRow < nextRow ? "held twice" : "missing")")
                return messages
            }
            nextRow = rows.upperBound
            if keyed {
                guard (1...UInt32(ShardLayout.maxBucketBits)).contains(part.bucketBits), part.bucketBits == bits,
                      part.hashSeed == parts[0].hashSeed else {
                    messages.append("\(place): a keyed field needs the same bucket bits (1...\(ShardLayout.maxBucketBits)) and hash seed in every shard")
                    return messages
                }
                guard part.buckets.lowerBound == nextBucket else {
                    messages.append("\(place): buckets start at \(part.firstBucket), not at the previous shard's end (\(nextBucket)): buckets would be \(part.buckets.lowerBound < nextBucket ? "held twice" : "missing")")
                    return messages
                }
                nextBucket = part.buckets.upperBound
            } else if part.bucketBits != 0 || part.bucketCount != 0 || part.firstBucket != 0 {
                messages.append("\(place): a \(field.mapping.configName) field is split by rows, not buckets")
                return messages
            }
        }
        if nextRow != UInt64(field.vocabSize) {
            messages.append("field \"\(field.name)\": the shards hold \(nextRow) rows, the architecture has \(field.vocabSize)")
        }
        if keyed && nextBucket != UInt64(1) << UInt64(bits) {
            messages.append("field \"\(field.name)\": the shards hold buckets 0..<\(nextBucket) of \(UInt64(1) << UInt64(bits))")
        }
        return messages
    }

    /// One opened shard against the root's record of it.
    private static func shardProblems(_ file: ModelFile, _ record: ShardFile, index: Int, table: ShardTable, root: ModelFile) -> [VerificationProblem] {
        func problem(_ message: String, tensor: String? = nil) -> VerificationProblem {
            .init(kind: .shards, tensor: tensor, byteOffset: nil, message: message)
        }
        let delta = root.manifest.delta != nil
        guard let identity = file.manifest.shard, (file.manifest.delta != nil) == delta else {
            return [problem("is not a \(delta ? "delta's shard" : "shard") (\(describe(file.manifest))), the root expects shard \(index) of \(table.files.count)")]
        }
        guard identity.modelID == table.modelID else {
            return [problem("belongs to another model (id \(ShardNaming.hex(identity.modelID)); the root's is \(ShardNaming.hex(table.modelID))): a stale shard of an earlier write, or of another model")]
        }
        guard identity.index == index, identity.count == table.files.count else {
            return [problem("is shard \(identity.index) of \(identity.count), the root expects shard \(index) of \(table.files.count) here (swapped or renamed?)")]
        }
        guard file.fileByteCount == record.byteCount, file.manifestHash == record.manifestHash else {
            return [problem("was changed since the root was written: \(file.fileByteCount) bytes with manifest hash \(hex64(file.manifestHash)), the root records \(record.byteCount) bytes and \(hex64(record.manifestHash))")]
        }
        var problems: [VerificationProblem] = []
        if identity.parts != record.parts { problems.append(problem("holds other rows than the root records for it")) }
        if file.architecture != root.architecture { problems.append(problem("has another architecture than the root")) }
        let rows = Dictionary(uniqueKeysWithValues: zip(record.parts.map(\.field), record.parts.map(\.rowCount)))
        // A delta shard describes the new shard's tensors in its recipe (what it stores is
        // checked against the recipe by the delta's own structure check).
        let described = file.manifest.delta.map { $0.tensors.map { ShardedTensor(name: $0.name, dtype: $0.dtype, shape: $0.shape, role: $0.role) } }
            ?? file.tensors.map { ShardedTensor(name: $0.name, dtype: $0.dtype, shape: $0.shape, role: $0.role) }
        var stored = Dictionary(described.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for tensor in table.tensors {
            guard let entry = stored.removeValue(forKey: tensor.name) else {
                problems.append(problem("lacks its part of the tensor", tensor: tensor.name))
                continue
            }
            let expected = [TensorName(tensor.name)?.tableField.flatMap { rows[$0] } ?? 0] + tensor.shape.dropFirst()
            if entry.dtype != tensor.dtype || entry.role != tensor.role || entry.shape != expected {
                problems.append(problem("part is \(entry.dtype) \(entry.shape) (\(entry.role)), the root records \(tensor.dtype) \(expected) (\(tensor.role))", tensor: tensor.name))
            }
        }
        for name in stored.keys.sorted() { problems.append(problem("holds a tensor the root's shard table does not list", tensor: name)) }
        return problems
    }

    /// What a file that is not the expected kind of shard is, for the message.
    private static func describe(_ manifest: Manifest) -> String {
        switch (manifest.delta != nil, manifest.shard != nil, manifest.shards != nil) {
        case (true, true, _): "a delta's shard"
        case (true, _, true): "a sharded delta's root"
        case (true, _, _): "a delta"
        case (_, true, _): "a model's shard"
        case (_, _, true): "a root"
        default: "a complete model"
        }
    }
}
