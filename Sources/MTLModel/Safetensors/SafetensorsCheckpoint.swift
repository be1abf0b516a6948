import Foundation

/// What `import` reads: one safetensors file, or a sharded checkpoint through its
/// `NAME.safetensors.index.json` (the Hugging Face layout: `weight_map` names each tensor's
/// file; docs/SHARDING.md "Sharded safetensors"), whose tensors may be whole in one file or,
/// as `mtl-model export` writes a sharded model, split by rows into parts listed in the
/// index's `metadata["mtl_model.parts"]`.
///
/// The index is checked against the files before anything is read: every tensor it names is
/// in the file it names, every tensor of the files is in the index (huggingface_hub #4725: an
/// index naming a tensor its shard lacks goes unnoticed elsewhere), file names stay in the
/// index's directory, and parts are contiguous rows of one dtype and trailing shape that add up
/// to the whole.
final class SafetensorsCheckpoint {
    /// A tensor of the checkpoint: its pieces in row order (one for a whole tensor).
    struct Tensor {
        var name: String
        var dtype: DType
        var shape: [UInt64]
        var pieces: [(file: SafetensorsFile, tensor: SafetensorsFile.Tensor, firstRow: Int)]
        var byteCount: Int { pieces.reduce(0) { $0 + Int($1.tensor.end - $1.tensor.begin) } }
    }

    let path: String
    let tensors: [Tensor]
    /// String metadata: the file's `__metadata__`, or the index's string metadata entries.
    let metadata: [String: String]

    static func isIndex(_ path: String) -> Bool { path.hasSuffix(".index.json") }

    init(path: String) throws(MTLModelError) {
        self.path = path
        guard Self.isIndex(path) else {
            if !FileManager.default.fileExists(atPath: path), FileManager.default.fileExists(atPath: path + SafetensorsExporter.indexSuffix) {
                throw MTLModelError(.invalidArgument, "no such file, but a sharded checkpoint's index is beside it: import \(TerminalText.escaped(path))\(SafetensorsExporter.indexSuffix)", file: path)
            }
            let file = try SafetensorsFile(path: path)
            if let index = file.metadata["mtl_model.index"], file.tensors.contains(where: { $0.name.contains(".part-") }) {
                throw MTLModelError(.invalidArgument, "is one file of a sharded checkpoint: import its index \(TerminalText.escaped(index)) (it holds parts of tables)", file: path)
            }
            tensors = file.tensors.map { Tensor(name: $0.name, dtype: $0.dtype, shape: $0.shape, pieces: [(file, $0, 0)]) }
            metadata = file.metadata
            return
        }
        let index = try Self.parseIndex(path)
        var files: [String: SafetensorsFile] = [:]
        for name in Set(index.weightMap.values).sorted() {
            guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
                throw MTLModelError(.malformed, "weight_map names file \"\(TerminalText.escaped(name))\": a file beside the index is expected", file: path)
            }
            files[name] = try SafetensorsFile(path: ShardNaming.beside(root: path, name))
        }
        for (name, file) in files.sorted(by: { $0.key < $1.key }) {
            for tensor in file.tensors where index.weightMap[tensor.name] != name {
                let listed = index.weightMap[tensor.name].map { "lists it in \(TerminalText.escaped($0))" } ?? "does not list it"
                throw MTLModelError(.malformed, "\(TerminalText.escaped(name)) holds tensor \"\(TerminalText.escaped(tensor.name))\", and the index \(listed)", file: path)
            }
        }
        var whole: [String: Tensor] = [:]
        for (name, fileName) in index.weightMap {
            guard let stored = files[fileName]!.tensor(named: name) else {
                throw MTLModelError(.malformed, "the index puts tensor \"\(TerminalText.escaped(name))\" in \(TerminalText.escaped(fileName)), which does not hold it", file: path)
            }
            whole[name] = Tensor(name: name, dtype: stored.dtype, shape: stored.shape, pieces: [(files[fileName]!, stored, 0)])
        }
        var result: [Tensor] = []
        for (name, parts) in index.parts.sorted(by: { $0.key < $1.key }) {
            result.append(try Self.assemble(name, parts, from: whole, in: path))
            for part in parts.pieces { whole[part.tensor] = nil }
        }
        tensors = result + whole.values.sorted { $0.name < $1.name }
        var metadata = index.metadata
        // A Hugging Face index carries only total_size: the config is then in the files'.
        if metadata[SafetensorsImporter.configKey] == nil,
           let config = files.sorted(by: { $0.key < $1.key }).lazy.compactMap({ $0.value.metadata[SafetensorsImporter.configKey] }).first {
            metadata[SafetensorsImporter.configKey] = config
        }
        self.metadata = metadata
    }

    /// A split tensor from its parts, checked against its declared dtype and shape.
    private static func assemble(_ name: String, _ parts: Index.Parts, from whole: [String: Tensor], in path: String) throws(MTLModelError) -> Tensor {
        func fail(_ message: String) -> MTLModelError {
            MTLModelError(.malformed, "mtl_model.parts of \"\(TerminalText.escaped(name))\": \(message)", file: path)
        }
        var pieces: [(file: SafetensorsFile, tensor: SafetensorsFile.Tensor, firstRow: Int)] = []
        var next: UInt64 = 0
        for part in parts.pieces {
            guard let stored = whole[part.tensor]?.pieces.first else { throw fail("part \"\(TerminalText.escaped(part.tensor))\" is not in weight_map") }
            guard stored.tensor.dtype == parts.dtype, stored.tensor.shape.count == parts.shape.count, !parts.shape.isEmpty,
                  Array(stored.tensor.shape.dropFirst()) == Array(parts.shape.dropFirst()) else {
                throw fail("part \"\(TerminalText.escaped(part.tensor))\" is \(SafetensorsFile.name(of: stored.tensor.dtype)) \(stored.tensor.shape), the tensor \(SafetensorsFile.name(of: parts.dtype)) \(parts.shape)")
            }
            guard part.firstRow == next, stored.tensor.shape[0] == part.rows else {
                throw fail("part \"\(TerminalText.escaped(part.tensor))\" holds rows from \(part.firstRow) (\(stored.tensor.shape[0]) of them, \(part.rows) listed) where row \(next) comes next")
            }
            pieces.append((stored.file, stored.tensor, Int(next)))
            next += part.rows
        }
        guard next == parts.shape.first else { throw fail("the parts hold \(next) rows of \(parts.shape.first ?? 0)") }
        return Tensor(name: name, dtype: parts.dtype, shape: parts.shape, pieces: pieces)
    }

    /// The bytes of `tensor`, piece by piece in row order, in pieces of at most `pieceBytes`,
    /// each piece's pages released once `body` returns.
    func visit<E: Error>(_ tensor: Tensor, pieceBytes: Int, _ body: (UnsafeRawBufferPointer) throws(E) -> Void) throws(E) {
        for piece in tensor.pieces {
            let bytes = piece.file.bytes(of: piece.tensor)
            for start in stride(from: 0, to: bytes.count, by: pieceBytes) {
                let range = start..<min(start + pieceBytes, bytes.count)
                try body(UnsafeRawBufferPointer(rebasing: bytes[range]))
                piece.file.release(piece.tensor, range)
            }
        }
    }

    /// The rows of `tensor` across its pieces (for the keys check).
    func rows(_ tensor: Tensor, rowByteCount: Int) -> TensorRows {
        TensorRows(parts: tensor.pieces.map { ($0.firstRow, $0.file.bytes(of: $0.tensor)) }, rowByteCount: rowByteCount,
                   count: Int(tensor.shape.first ?? 0))
    }

    func release(_ tensor: Tensor) { tensor.pieces.forEach { $0.file.release($0.tensor) } }

    /// The index file: `weight_map`, string metadata, and `mtl_model.parts`.
    private struct Index {
        struct Parts {
            var dtype: DType
            var shape: [UInt64]
            var pieces: [(tensor: String, firstRow: UInt64, rows: UInt64)]
        }
        var weightMap: [String: String] = [:]
        var metadata: [String: String] = [:]
        var parts: [String: Parts] = [:]
    }

    private static func parseIndex(_ path: String) throws(MTLModelError) -> Index {
        let file = try MappedFile(path: path)
        guard file.byteCount <= SafetensorsFile.maxHeaderByteCount else {
            throw MTLModelError(.malformed, "index of \(file.byteCount) bytes exceeds the limit of \(SafetensorsFile.maxHeaderByteCount)", file: path)
        }
        func fail(_ message: String) -> MTLModelError { MTLModelError(.malformed, message, file: path) }
        let json: JSONValue
        do { json = try JSONValue.parse(Data(file.bytes(0, file.byteCount))) } catch { throw fail("not a JSON index: \(error.message)") }
        guard case .object(let top) = json, case .object(let map)? = top["weight_map"] else {
            throw fail("not a safetensors index: no \"weight_map\" object")
        }
        var index = Index()
        for (name, value) in map {
            guard case .string(let file) = value else { throw fail("weight_map[\"\(TerminalText.escaped(name))\"] is not a file name") }
            index.weightMap[name] = file
        }
        guard !index.weightMap.isEmpty else { throw fail("weight_map is empty") }
        guard case .object(let metadata)? = top["metadata"] ?? .object([:]) else { throw fail("\"metadata\" is not an object") }
        for (key, value) in metadata { if case .string(let text) = value, key != "mtl_model.index" { index.metadata[key] = text } }
        guard let parts = metadata["mtl_model.parts"] else { return index }
        guard case .object(let records) = parts else { throw fail("metadata mtl_model.parts is not an object") }
        for (name, record) in records {
            func bad(_ what: String) -> MTLModelError { fail("mtl_model.parts of \"\(TerminalText.escaped(name))\": \(what)") }
            guard case .object(let fields) = record, case .string(let dtypeName)? = fields["dtype"],
                  let dtype = SafetensorsFile.dtypes[dtypeName], case .array(let dims)? = fields["shape"],
                  case .array(let list)? = fields["parts"] else { throw bad("needs dtype, shape and parts") }
            let shape = try dims.map { value throws(MTLModelError) in try count(value, bad) }
            let pieces = try list.map { item throws(MTLModelError) -> (tensor: String, firstRow: UInt64, rows: UInt64) in
                guard case .object(let part) = item, case .string(let tensor)? = part["tensor"],
                      let first = part["first_row"], let rows = part["rows"] else { throw bad("a part needs tensor, first_row and rows") }
                return (tensor, try count(first, bad), try count(rows, bad))
            }
            index.parts[name] = Index.Parts(dtype: dtype, shape: shape, pieces: pieces)
        }
        return index
    }

    private static func count(_ value: JSONValue, _ bad: (String) -> MTLModelError) throws(MTLModelError) -> UInt64 {
        guard case .number(let number) = value, number >= 0, number < 0x1p53, number == number.rounded() else {
            throw bad("\(value.serialized()) is not a count")
        }
        return UInt64(number)
    }
}
