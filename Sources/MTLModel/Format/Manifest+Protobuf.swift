import CMTLManifest
import CProtobufC
import Foundation

// The only file that touches the protobuf-c structs of schema/mtl_model.proto: it turns a
// Manifest into bytes and untrusted bytes back into a Manifest.

extension Manifest {
    /// The manifest serialized with protobuf-c.
    func serialized() -> [UInt8] {
        let arena = CArena()
        let message = arena.message(mtlm__v1__manifest__init)
        message.pointee.provenance = Self.cProvenance(provenance, arena)
        message.pointee.architecture = architecture.cMessage(arena)
        (message.pointee.n_tensors, message.pointee.tensors) = Self.cTensors(tensors, arena)
        (message.pointee.n_metadata, message.pointee.metadata) = arena.messages(metadata) { entry in
            arena.message(mtlm__v1__metadata_entry__init) { m in
                m.key = arena.string(entry.key)
                m.value = arena.string(entry.value)
            }
        }
        message.pointee.delta = delta.map { Self.cDelta($0, arena) }
        message.pointee.shards = shards.map { Self.cShardTable($0, arena) }
        message.pointee.shard = shard.map { Self.cShardIdentity($0, arena) }
        let size = mtlm__v1__manifest__get_packed_size(message)
        var bytes = [UInt8](repeating: 0, count: size)
        let written = bytes.withUnsafeMutableBufferPointer { mtlm__v1__manifest__pack(message, $0.baseAddress!) }
        precondition(written == size, "protobuf-c packed \(written) of \(size) bytes")
        return bytes
    }

    fileprivate static func cTensors(_ tensors: [TensorEntry], _ arena: CArena) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<Mtlm__V1__Tensor>?>?) {
        arena.messages(tensors) { tensor in
            arena.message(mtlm__v1__tensor__init) { t in
                t.name = arena.string(tensor.name)
                t.dtype = Mtlm__V1__DType(rawValue: tensor.dtype.rawValue)
                (t.n_shape, t.shape) = arena.array(tensor.shape)
                t.role = Mtlm__V1__TensorRole(rawValue: tensor.role.rawValue)
                t.offset = tensor.offset
                t.stored_byte_count = tensor.storedByteCount
                t.compression = Mtlm__V1__Compression(rawValue: tensor.compression.rawValue)
                t.chunk_byte_count = tensor.chunkByteCount
                (t.n_chunk_crc32, t.chunk_crc32) = arena.array(tensor.chunkCRC32)
                (t.n_chunk_stored_byte_count, t.chunk_stored_byte_count) = arena.array(tensor.chunkStoredByteCounts)
            }
        }
    }

    fileprivate static func cDelta(_ delta: DeltaManifest, _ arena: CArena) -> UnsafeMutablePointer<Mtlm__V1__Delta> {
        arena.message(mtlm__v1__delta__init) { d in
            d.base_content_hash = delta.baseContentHash
            d.new_provenance = Self.cProvenance(delta.newProvenance, arena)
            (d.n_tensors, d.tensors) = arena.messages(delta.tensors) { tensor in
                arena.message(mtlm__v1__delta_tensor__init) { t in
                    t.name = arena.string(tensor.name)
                    t.dtype = Mtlm__V1__DType(rawValue: tensor.dtype.rawValue)
                    (t.n_shape, t.shape) = arena.array(tensor.shape)
                    t.role = Mtlm__V1__TensorRole(rawValue: tensor.role.rawValue)
                    t.source = Mtlm__V1__DeltaSource(rawValue: tensor.source.rawValue)
                }
            }
        }
    }

    fileprivate static func cShardTable(_ shards: ShardTable, _ arena: CArena) -> UnsafeMutablePointer<Mtlm__V1__ShardTable> {
        arena.message(mtlm__v1__shard_table__init) { t in
            t.model_id = arena.binary(shards.modelID)
            (t.n_tensors, t.tensors) = arena.messages(shards.tensors) { tensor in
                arena.message(mtlm__v1__sharded_tensor__init) { s in
                    s.name = arena.string(tensor.name)
                    s.dtype = Mtlm__V1__DType(rawValue: tensor.dtype.rawValue)
                    (s.n_shape, s.shape) = arena.array(tensor.shape)
                    s.role = Mtlm__V1__TensorRole(rawValue: tensor.role.rawValue)
                }
            }
            (t.n_files, t.files) = arena.messages(shards.files) { file in
                arena.message(mtlm__v1__shard_file__init) { f in
                    f.file_name = arena.string(file.fileName)
                    f.byte_count = file.byteCount
                    f.manifest_hash = file.manifestHash
                    (f.n_parts, f.parts) = Self.cParts(file.parts, arena)
                }
            }
        }
    }

    fileprivate static func cShardIdentity(_ shard: ShardIdentity, _ arena: CArena) -> UnsafeMutablePointer<Mtlm__V1__ShardIdentity> {
        arena.message(mtlm__v1__shard_identity__init) { s in
            s.model_id = arena.binary(shard.modelID)
            s.index = shard.index
            s.count = shard.count
            s.root_file_name = arena.string(shard.rootFileName)
            (s.n_parts, s.parts) = Self.cParts(shard.parts, arena)
        }
    }

    fileprivate static func cParts(_ parts: [TablePart], _ arena: CArena) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<Mtlm__V1__TablePart>?>?) {
        arena.messages(parts) { part in
            arena.message(mtlm__v1__table_part__init) { p in
                p.field = arena.string(part.field)
                p.first_row = part.firstRow
                p.row_count = part.rowCount
                p.bucket_bits = part.bucketBits
                p.hash_seed = part.hashSeed
                p.first_bucket = part.firstBucket
                p.bucket_count = part.bucketCount
            }
        }
    }

    fileprivate static func cProvenance(_ provenance: Provenance, _ arena: CArena) -> UnsafeMutablePointer<Mtlm__V1__Provenance> {
        arena.message(mtlm__v1__provenance__init) { p in
            p.producer = arena.string(provenance.producer)
            p.producer_version = arena.string(provenance.producerVersion)
            p.created_unix_seconds = provenance.createdUnixSeconds
            p.source = arena.string(provenance.source)
            (p.n_lineage, p.lineage) = arena.messages(provenance.lineage) { step in
                arena.message(mtlm__v1__lineage_step__init) { l in
                    l.content_hash = arena.string(step.contentHash)
                    l.source = arena.string(step.source)
                    l.created_unix_seconds = step.createdUnixSeconds
                }
            }
        }
    }

    /// Decodes untrusted manifest bytes. Checks every string (UTF-8), enum value and count;
    /// offsets and sizes are checked by the caller against the file.
    ///
    /// - Parameter baseOffset: the manifest's offset in the file, for error messages.
    static func decode(_ bytes: UnsafeRawBufferPointer, baseOffset: UInt64, limits: ReadLimits) throws(MTLModelError) -> Manifest {
        var capExceeded: Int32 = 0
        guard let message = mtlm_manifest_unpack_capped(bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                                        limits.maxManifestAllocationByteCount, &capExceeded) else {
            if capExceeded != 0 {
                throw .malformed("manifest needs more than \(limits.maxManifestAllocationByteCount) bytes of memory to unpack", at: baseOffset)
            }
            throw .malformed("manifest is not a valid protobuf message", at: baseOffset)
        }
        defer { mtlm__v1__manifest__free_unpacked(message, nil) }
        let m = message.pointee
        let decoder = CDecoder(limits: limits, baseOffset: baseOffset)

        guard let provenancePointer = m.provenance else { throw .malformed("manifest has no provenance", at: baseOffset) }
        let provenance = try decoder.provenance(provenancePointer.pointee, "provenance")

        guard let architecturePointer = m.architecture else { throw .malformed("manifest has no architecture", at: baseOffset) }
        let architecture = try Architecture(cMessage: architecturePointer.pointee, decoder: decoder)

        return Manifest(provenance: provenance, architecture: architecture, tensors: try decoder.tensors(m), metadata: try decoder.metadata(m),
                        delta: try m.delta.map { d throws(MTLModelError) in try decoder.delta(d.pointee) },
                        shards: try m.shards.map { t throws(MTLModelError) in try decoder.shardTable(t.pointee) },
                        shard: try m.shard.map { s throws(MTLModelError) in try decoder.shardIdentity(s.pointee) })
    }
}

extension Architecture {
    fileprivate func cMessage(_ arena: CArena) -> UnsafeMutablePointer<Mtlm__V1__Architecture> {
        arena.message(mtlm__v1__architecture__init) { a in
            a.embedding_dim = UInt64(embeddingDim)
            (a.n_groups, a.groups) = arena.strings(groups)
            a.groups_listed = groupsListed ? 1 : 0
            (a.n_fields, a.fields) = arena.messages(fields) { $0.cMessage(arena) }
            a.interaction = interaction.cMessage(arena)
            a.linear = linear ? 1 : 0
            a.bottom_input = Mtlm__V1__BottomInput(rawValue: bottomInput.rawValue)
            a.layer_order = Mtlm__V1__LayerOrder(rawValue: layerOrder.rawValue)
            a.bn_eps = bnEps
            (a.n_shared, a.shared) = arena.messages(shared) { $0.cMessage(arena) }
            (a.n_tasks, a.tasks) = arena.messages(tasks) { $0.cMessage(arena) }
            a.fusion = fusion.cMessage(arena)
            a.loss = loss?.cMessage(arena)
            a.reweight = reweight?.cMessage(arena)
            a.optimizer = optimizer?.cMessage(arena)
        }
    }

    fileprivate init(cMessage a: Mtlm__V1__Architecture, decoder: CDecoder) throws(MTLModelError) {
        let groups = try (0..<a.n_groups).map { index throws(MTLModelError) in try decoder.string(a.groups[index], "groups[\(index)]") }
        let fields = try decoder.fields(a)
        guard let i = a.interaction?.pointee else { throw decoder.missing("interaction") }
        let tasks = try decoder.tasks(a)
        guard let f = a.fusion?.pointee else { throw decoder.missing("fusion") }
        let fusion = try decoder.fusion(f)
        let loss = try a.loss.map { l throws(MTLModelError) in try decoder.loss(l.pointee) }
        let reweight = try a.reweight.map { r throws(MTLModelError) in
            Reweight(scheme: try decoder.string(r.pointee.scheme, "reweight.scheme"),
                     parameters: try decoder.namedValues(r.pointee.n_parameters, r.pointee.parameters, "reweight"))
        }
        let optimizer = try a.optimizer.map { o throws(MTLModelError) in
            Optimizer(type: try decoder.enumValue(o.pointee.type.rawValue, "optimizer.type"),
                      parameters: try decoder.namedValues(o.pointee.n_parameters, o.pointee.parameters, "optimizer"))
        }
        self.init(embeddingDim: try decoder.int(a.embedding_dim, "embedding_dim"), groups: groups,
                  groupsListed: a.groups_listed != 0, fields: fields,
                  interaction: Interaction(intra: i.intra != 0, halfFactor: i.half_factor != 0,
                                           fieldBias: i.field_bias != 0, diceScale: i.dice_scale),
                  linear: a.linear != 0,
                  bottomInput: try decoder.enumValue(a.bottom_input.rawValue, "bottom_input"),
                  layerOrder: try decoder.enumValue(a.layer_order.rawValue, "layer_order"),
                  bnEps: a.bn_eps, shared: try decoder.denseLayers(a.n_shared, a.shared, "shared"), tasks: tasks,
                  fusion: fusion, loss: loss, reweight: reweight, optimizer: optimizer)
        do {
            try validate()
        } catch {
            throw MTLModelError(.malformed, "architecture in the manifest is invalid: \(error.message)",
                                location: .init(byteOffset: decoder.baseOffset, key: error.location.key))
        }
    }
}

/// The architecture's messages, one function each (`Architecture.cMessage`).
extension Architecture.Field {
    fileprivate func cMessage(_ arena: CArena) -> UnsafeMutablePointer<Mtlm__V1__Field> {
        arena.message(mtlm__v1__field__init) { f in
            f.name = arena.string(name)
            f.vocab_size = UInt64(vocabSize)
            f.mapping = Mtlm__V1__Mapping(rawValue: mapping.rawValue)
            f.combiner = Mtlm__V1__Combiner(rawValue: combiner.rawValue)
            f.group = UInt32(group)
        }
    }
}

extension Architecture.Interaction {
    fileprivate func cMessage(_ arena: CArena) -> UnsafeMutablePointer<Mtlm__V1__Interaction> {
        arena.message(mtlm__v1__interaction__init) { i in
            i.intra = intra ? 1 : 0
            i.half_factor = halfFactor ? 1 : 0
            i.field_bias = fieldBias ? 1 : 0
            i.dice_scale = diceScale
        }
    }
}

extension Architecture.DenseLayer {
    fileprivate func cMessage(_ arena: CArena) -> UnsafeMutablePointer<Mtlm__V1__DenseLayer> {
        arena.message(mtlm__v1__dense_layer__init) { d in
            d.units = UInt64(units)
            d.activation = Mtlm__V1__Activation(rawValue: activation.rawValue)
            d.batch_norm = batchNorm ? 1 : 0
        }
    }
}

extension Architecture.Task {
    fileprivate func cMessage(_ arena: CArena) -> UnsafeMutablePointer<Mtlm__V1__Task> {
        arena.message(mtlm__v1__task__init) { t in
            t.name = arena.string(name)
            (t.n_tower, t.tower) = arena.messages(tower) { $0.cMessage(arena) }
            t.use_linear = useLinear ? 1 : 0
            t.logit_offset = logitOffset
        }
    }
}

extension Architecture.Fusion {
    fileprivate func cMessage(_ arena: CArena) -> UnsafeMutablePointer<Mtlm__V1__Fusion> {
        arena.message(mtlm__v1__fusion__init) { f in
            f.type = Mtlm__V1__FusionType(rawValue: type.rawValue)
            f.bucket = bucket
            (f.n_weights, f.weights) = arena.array(weights)
            (f.n_biases, f.biases) = arena.array(biases)
            (f.n_exponents, f.exponents) = arena.array(exponents)
        }
    }
}

extension Architecture.LossWeighting {
    fileprivate func cMessage(_ arena: CArena) -> UnsafeMutablePointer<Mtlm__V1__LossWeighting> {
        arena.message(mtlm__v1__loss_weighting__init) { l in
            l.weighting = arena.string(weighting)
            l.parameterization = arena.string(parameterization)
            l.convention = arena.string(convention)
            l.frozen = frozen ? 1 : 0
            (l.n_values, l.values) = arena.array(values)
            (l.n_weights, l.weights) = arena.array(weights)
        }
    }
}

extension Architecture.Reweight {
    fileprivate func cMessage(_ arena: CArena) -> UnsafeMutablePointer<Mtlm__V1__Reweight> {
        arena.message(mtlm__v1__reweight__init) { r in
            r.scheme = arena.string(scheme)
            (r.n_parameters, r.parameters) = arena.messages(parameters) { $0.cMessage(arena) }
        }
    }
}

extension Architecture.Optimizer {
    fileprivate func cMessage(_ arena: CArena) -> UnsafeMutablePointer<Mtlm__V1__Optimizer> {
        arena.message(mtlm__v1__optimizer__init) { o in
            o.type = Mtlm__V1__OptimizerType(rawValue: type.rawValue)
            (o.n_parameters, o.parameters) = arena.messages(parameters) { $0.cMessage(arena) }
        }
    }
}

extension Architecture.NamedValue {
    fileprivate func cMessage(_ arena: CArena) -> UnsafeMutablePointer<Mtlm__V1__NamedValue> {
        arena.message(mtlm__v1__named_value__init) { n in
            n.name = arena.string(name)
            n.value = value
        }
    }
}

/// Checked reads out of an unpacked protobuf-c message.
private struct CDecoder {
    let limits: ReadLimits
    let baseOffset: UInt64

    func missing(_ key: String) -> MTLModelError {
        MTLModelError(.malformed, "manifest has no \(key)", location: .init(byteOffset: baseOffset, key: key))
    }

    /// protobuf-c strings are C strings: no UTF-8 check is done by it, so it is done here.
    func string(_ pointer: UnsafeMutablePointer<CChar>?, _ key: String, maxBytes: Int? = nil) throws(MTLModelError) -> String {
        guard let pointer else { return "" }
        let length = strlen(pointer)
        guard length <= (maxBytes ?? limits.maxNameByteCount) else {
            throw MTLModelError(.malformed, "string of \(length) bytes exceeds the limit of \(maxBytes ?? limits.maxNameByteCount)",
                                location: .init(byteOffset: baseOffset, key: key))
        }
        guard let text = String(validatingCString: pointer) else {
            throw MTLModelError(.malformed, "string is not valid UTF-8", location: .init(byteOffset: baseOffset, key: key))
        }
        return text
    }

    func modelID(_ data: ProtobufCBinaryData, _ key: String) throws(MTLModelError) -> [UInt8] {
        guard data.len == ShardNaming.modelIDByteCount, let bytes = data.data else {
            throw MTLModelError(.malformed, "model id is \(data.len) bytes, not \(ShardNaming.modelIDByteCount)", location: .init(byteOffset: baseOffset, key: key))
        }
        return Array(UnsafeBufferPointer(start: bytes, count: data.len))
    }

    func parts(_ items: UnsafeMutablePointer<UnsafeMutablePointer<Mtlm__V1__TablePart>?>?, _ count: Int, _ key: String) throws(MTLModelError) -> [TablePart] {
        guard count <= limits.maxTensorCount else {
            throw MTLModelError(.malformed, "\(count) table parts, more than the limit of \(limits.maxTensorCount)", location: .init(byteOffset: baseOffset, key: key))
        }
        var parts: [TablePart] = []
        for index in 0..<count {
            let p = items![index]!.pointee
            var part = TablePart(field: try string(p.field, "\(key)[\(index)].field"), rows: 0..<0)
            (part.firstRow, part.rowCount) = (p.first_row, p.row_count)
            (part.bucketBits, part.hashSeed, part.firstBucket, part.bucketCount) = (p.bucket_bits, p.hash_seed, p.first_bucket, p.bucket_count)
            parts.append(part)
        }
        return parts
    }

    func provenance(_ p: Mtlm__V1__Provenance, _ key: String) throws(MTLModelError) -> Provenance {
        var provenance = Provenance(producer: try string(p.producer, "\(key).producer"),
                                    producerVersion: try string(p.producer_version, "\(key).producer_version"),
                                    createdUnixSeconds: p.created_unix_seconds,
                                    source: try string(p.source, "\(key).source", maxBytes: limits.maxMetadataValueByteCount))
        guard p.n_lineage <= Provenance.maxLineageCount else {
            throw MTLModelError(.malformed, "\(p.n_lineage) lineage steps, more than \(Provenance.maxLineageCount)", location: .init(byteOffset: baseOffset, key: "\(key).lineage"))
        }
        for index in 0..<p.n_lineage {
            let step = p.lineage[index]!.pointee, stepKey = "\(key).lineage[\(index)]"
            provenance.lineage.append(.init(contentHash: try string(step.content_hash, "\(stepKey).content_hash"),
                                            source: try string(step.source, "\(stepKey).source", maxBytes: limits.maxMetadataValueByteCount),
                                            createdUnixSeconds: step.created_unix_seconds))
        }
        return provenance
    }

    func int(_ value: UInt64, _ key: String) throws(MTLModelError) -> Int {
        guard let result = Int(exactly: value) else {
            throw MTLModelError(.malformed, "value \(value) is out of range", location: .init(byteOffset: baseOffset, key: key))
        }
        return result
    }

    /// Unknown enum values arrive from protobuf-c as plain integers: they are refused by name.
    func enumValue<T: RawRepresentable<UInt32> & ConfigNamed>(_ raw: UInt32, _ key: String) throws(MTLModelError) -> T {
        guard let value = T(rawValue: raw) else {
            throw MTLModelError(.malformed, "unknown value \(raw) (this reader knows \(T.allCases.map { "\($0.rawValue) = \($0.configName)" }.joined(separator: ", ")))",
                                location: .init(byteOffset: baseOffset, key: key))
        }
        return value
    }

    static func array<T>(_ pointer: UnsafeMutablePointer<T>?, _ count: Int) -> [T] {
        guard let pointer, count > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: pointer, count: count))
    }
}

/// The manifest's sections, each checked as it is decoded (`Manifest.decode`).
extension CDecoder {
    func tensors(_ m: Mtlm__V1__Manifest) throws(MTLModelError) -> [TensorEntry] {
        guard m.n_tensors <= limits.maxTensorCount else {
            throw .malformed("manifest lists \(m.n_tensors) tensors, more than the limit of \(limits.maxTensorCount)", at: baseOffset)
        }
        var tensors: [TensorEntry] = []
        tensors.reserveCapacity(m.n_tensors)
        for index in 0..<m.n_tensors {
            let t = m.tensors[index]!.pointee
            let name = try string(t.name, "tensors[\(index)].name")
            func fail(_ message: String) -> MTLModelError { .malformed(message, at: baseOffset, tensor: name) }
            guard let dtype = DType(rawValue: t.dtype.rawValue) else {
                throw fail("unknown dtype \(t.dtype.rawValue) (this reader knows \(DType.allCases.map(\.description).joined(separator: ", ")); the file may need a newer mtl-model)")
            }
            guard let role = TensorRole(rawValue: t.role.rawValue) else { throw fail("unknown tensor role \(t.role.rawValue)") }
            guard let compression = Compression(rawValue: t.compression.rawValue) else {
                throw fail("unknown compression \(t.compression.rawValue)")
            }
            guard t.n_shape <= limits.maxRank else { throw fail("rank \(t.n_shape) exceeds the limit of \(limits.maxRank)") }
            tensors.append(TensorEntry(
                name: name, dtype: dtype, shape: CDecoder.array(t.shape, t.n_shape), role: role,
                offset: t.offset, storedByteCount: t.stored_byte_count, compression: compression,
                chunkByteCount: t.chunk_byte_count,
                chunkCRC32: CDecoder.array(t.chunk_crc32, t.n_chunk_crc32),
                chunkStoredByteCounts: CDecoder.array(t.chunk_stored_byte_count, t.n_chunk_stored_byte_count)))
        }
        return tensors
    }

    func metadata(_ m: Mtlm__V1__Manifest) throws(MTLModelError) -> [MetadataEntry] {
        var metadata: [MetadataEntry] = []
        var keys = Set<String>()
        for index in 0..<m.n_metadata {
            let entry = m.metadata[index]!.pointee
            let key = try string(entry.key, "metadata[\(index)].key")
            guard keys.insert(key).inserted else { throw .malformed("metadata key \"\(key)\" appears twice", at: baseOffset) }
            metadata.append(MetadataEntry(key: key, value: try string(entry.value, "metadata[\(index)].value", maxBytes: limits.maxMetadataValueByteCount)))
        }
        return metadata
    }

    func delta(_ d: Mtlm__V1__Delta) throws(MTLModelError) -> DeltaManifest {
        guard let newProvenance = d.new_provenance?.pointee else { throw missing("delta.new_provenance") }
        guard d.n_tensors <= limits.maxTensorCount else {
            throw .malformed("delta lists \(d.n_tensors) tensors, more than the limit of \(limits.maxTensorCount)", at: baseOffset)
        }
        var entries: [DeltaManifest.Tensor] = []
        for index in 0..<d.n_tensors {
            let t = d.tensors[index]!.pointee
            let name = try string(t.name, "delta.tensors[\(index)].name")
            guard let dtype = DType(rawValue: t.dtype.rawValue), let role = TensorRole(rawValue: t.role.rawValue),
                  let source = DeltaManifest.Source(rawValue: t.source.rawValue) else {
                throw .malformed("delta entry has an unknown dtype, role or source", at: baseOffset, tensor: name)
            }
            guard t.n_shape <= limits.maxRank else { throw .malformed("delta entry of rank \(t.n_shape)", at: baseOffset, tensor: name) }
            entries.append(.init(name: name, dtype: dtype, shape: CDecoder.array(t.shape, t.n_shape), role: role, source: source))
        }
        return DeltaManifest(baseContentHash: d.base_content_hash, tensors: entries,
                              newProvenance: try provenance(newProvenance, "delta.new_provenance"))
    }

    func shardTable(_ t: Mtlm__V1__ShardTable) throws(MTLModelError) -> ShardTable {
        guard t.n_tensors <= limits.maxTensorCount, t.n_files <= limits.maxShardCount else {
            throw .malformed("shard table lists \(t.n_tensors) tensors and \(t.n_files) shards, more than the limits of \(limits.maxTensorCount) and \(limits.maxShardCount)", at: baseOffset)
        }
        var tensors: [ShardedTensor] = []
        for index in 0..<t.n_tensors {
            let s = t.tensors[index]!.pointee
            let name = try string(s.name, "shards.tensors[\(index)].name")
            guard let dtype = DType(rawValue: s.dtype.rawValue), let role = TensorRole(rawValue: s.role.rawValue) else {
                throw .malformed("sharded tensor has an unknown dtype or role", at: baseOffset, tensor: name)
            }
            guard s.n_shape <= limits.maxRank else { throw .malformed("sharded tensor of rank \(s.n_shape)", at: baseOffset, tensor: name) }
            tensors.append(ShardedTensor(name: name, dtype: dtype, shape: CDecoder.array(s.shape, s.n_shape), role: role))
        }
        var files: [ShardFile] = []
        for index in 0..<t.n_files {
            let f = t.files[index]!.pointee
            files.append(ShardFile(fileName: try string(f.file_name, "shards.files[\(index)].file_name"),
                                   byteCount: f.byte_count, manifestHash: f.manifest_hash,
                                   parts: try parts(f.parts, f.n_parts, "shards.files[\(index)].parts")))
        }
        return ShardTable(modelID: try modelID(t.model_id, "shards.model_id"), tensors: tensors, files: files)
    }

    func shardIdentity(_ s: Mtlm__V1__ShardIdentity) throws(MTLModelError) -> ShardIdentity {
        return ShardIdentity(modelID: try modelID(s.model_id, "shard.model_id"), index: s.index, count: s.count,
                              rootFileName: try string(s.root_file_name, "shard.root_file_name"),
                              parts: try parts(s.parts, s.n_parts, "shard.parts"))
    }
}

/// The architecture's repeated and nested messages (`Architecture.init(cMessage:decoder:)`).
extension CDecoder {
    func fields(_ a: Mtlm__V1__Architecture) throws(MTLModelError) -> [Architecture.Field] {
        try (0..<a.n_fields).map { index throws(MTLModelError) in
            let f = a.fields[index]!.pointee
            return Architecture.Field(name: try string(f.name, "fields[\(index)].name"),
                                      vocabSize: try int(f.vocab_size, "fields[\(index)].vocab_size"),
                                      mapping: try enumValue(f.mapping.rawValue, "fields[\(index)].mapping"),
                                      combiner: try enumValue(f.combiner.rawValue, "fields[\(index)].combiner"),
                                      group: Int(f.group))
        }
    }

    func tasks(_ a: Mtlm__V1__Architecture) throws(MTLModelError) -> [Architecture.Task] {
        try (0..<a.n_tasks).map { index throws(MTLModelError) in
            let t = a.tasks[index]!.pointee
            return Architecture.Task(name: try string(t.name, "tasks[\(index)].name"),
                                     tower: try denseLayers(t.n_tower, t.tower, "tasks[\(index)].tower"),
                                     useLinear: t.use_linear != 0, logitOffset: t.logit_offset)
        }
    }

    func denseLayers(_ count: Int, _ items: UnsafeMutablePointer<UnsafeMutablePointer<Mtlm__V1__DenseLayer>?>?,
                     _ key: String) throws(MTLModelError) -> [Architecture.DenseLayer] {
        try (0..<count).map { index throws(MTLModelError) in
            let d = items![index]!.pointee
            return Architecture.DenseLayer(units: try int(d.units, "\(key)[\(index)].units"),
                                           activation: try enumValue(d.activation.rawValue, "\(key)[\(index)].activation"),
                                           batchNorm: d.batch_norm != 0)
        }
    }

    func namedValues(_ count: Int, _ items: UnsafeMutablePointer<UnsafeMutablePointer<Mtlm__V1__NamedValue>?>?,
                     _ key: String) throws(MTLModelError) -> [Architecture.NamedValue] {
        try (0..<count).map { index throws(MTLModelError) in
            let n = items![index]!.pointee
            return Architecture.NamedValue(name: try string(n.name, "\(key).parameters[\(index)].name"), value: n.value)
        }
    }

    func fusion(_ f: Mtlm__V1__Fusion) throws(MTLModelError) -> Architecture.Fusion {
        Architecture.Fusion(type: try enumValue(f.type.rawValue, "fusion.type"), bucket: f.bucket,
                            weights: Self.array(f.weights, f.n_weights), biases: Self.array(f.biases, f.n_biases),
                            exponents: Self.array(f.exponents, f.n_exponents))
    }

    func loss(_ l: Mtlm__V1__LossWeighting) throws(MTLModelError) -> Architecture.LossWeighting {
        Architecture.LossWeighting(weighting: try string(l.weighting, "loss.weighting"),
                                   parameterization: try string(l.parameterization, "loss.parameterization"),
                                   convention: try string(l.convention, "loss.convention"),
                                   frozen: l.frozen != 0, values: Self.array(l.values, l.n_values),
                                   weights: Self.array(l.weights, l.n_weights))
    }
}
