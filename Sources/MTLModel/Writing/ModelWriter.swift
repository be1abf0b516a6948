import Dispatch
import Foundation
/// Writes an `.mtlm` file tensor by tensor, in bounded memory: payloads stream to disk as they
/// come (checksummed chunk by chunk), the manifest and footer follow, the header is written
/// last with the lowest format version the content needs, and the file appears at its path
/// only when complete (atomic rename).
///
/// ```swift
/// let writer = try ModelWriter(path: "model.mtlm")
/// try writer.beginTensor("linear.bias", dtype: .float32, shape: [1], role: .parameter)
/// try writer.write(bytes)            // any number of pieces
/// try writer.endTensor()
/// try writer.finish(architecture: arch, provenance: provenance)
/// ```
public final class ModelWriter {
    public struct Options: Sendable {
        /// Logical bytes per checksummed chunk.
        public var chunkByteCount: UInt64 = FormatConstants.defaultChunkByteCount
        /// Compression of every tensor written (off by default: serving files should mmap).
        public var compression: Compression = .none
        /// fsync the file (and its directory) before it appears at its path, so that a power
        /// loss cannot leave a renamed but empty file. Off, the write is still atomic (never a
        /// partial file at the path) but not durable: for scratch files and benchmarks.
        public var synchronize = true
        /// Large writes go to the file from several threads at their offsets (`PlacedWrites`)
        /// where the output allows it. Off only to test that both ways write the same bytes.
        var placesWrites = true
        /// Threads that checksum and write a piece of several chunks at once; 1: the calling
        /// thread alone. A command given `--threads` writes within them: where a worker has
        /// a core, a writer thread on top would only spin on the file's lock.
        public var threadCount = ProcessInfo.processInfo.activeProcessorCount
        public init() {}

        /// These options with at most `threads` writer threads.
        public func limited(to threads: Int) -> Options {
            var options = self
            options.threadCount = max(1, min(threadCount, threads))
            return options
        }
    }

    private struct OpenTensor {
        var entry: TensorEntry
        var byteCount: UInt64
        var written: UInt64 = 0
        var chunkCRC: UInt32 = 0
        var chunkFill: UInt64 = 0
        var pending: [UInt8] = []  // compressed tensors: the chunk being filled
        var placed: PlacedTensor?  // written by several threads at their offsets
    }

    private let output: AtomicOutputFile
    private let options: Options
    private var entries: [TensorEntry] = []
    private var names = Set<String>()
    private var current: OpenTensor?
    private var finished = false

    public var path: String { output.targetPath }

    public init(path: String, options: Options = Options()) throws(MTLModelError) {
        guard ModelFile.isValidChunkByteCount(options.chunkByteCount) else {
            throw MTLModelError(.invalidArgument, "chunk size must be a multiple of 64 in 64...\(ModelFile.maxChunkByteCount)")
        }
        self.options = options
        output = try AtomicOutputFile(targetPath: path, synchronize: options.synchronize)
        guard output.isSeekable else {
            throw MTLModelError(.invalidArgument, "a model's header is written last, so it needs a file (or /dev/null), not a pipe or a terminal", file: path)
        }
        // Placeholder header: the real one is written by finish() once the content is known.
        try output.appendZeros(Int(FormatConstants.headerByteCount))
    }

    public func beginTensor(_ name: String, dtype: DType, shape: [UInt64], role: TensorRole) throws(MTLModelError) {
        guard current == nil else { throw invalid("tensor \"\(current!.entry.name)\" is still open") }
        guard ModelFile.isValidTensorName(name, limit: ReadLimits().maxNameByteCount) else {
            throw invalid("invalid tensor name \"\(name)\"")
        }
        guard !names.contains(name) else { throw invalid("tensor \"\(name)\" written twice") }
        guard shape.count <= ReadLimits().maxRank, let byteCount = dtype.storedByteCount(shape: shape) else {
            throw invalid("shape \(shape) of tensor \"\(name)\" is too large")
        }
        names.insert(name)
        if options.compression == .none { output.reserve(byteCount, at: output.position) }
        let entry = TensorEntry(name: name, dtype: dtype, shape: shape, role: role, offset: output.position,
                                storedByteCount: 0, compression: byteCount == 0 ? .none : options.compression,
                                chunkByteCount: byteCount == 0 ? 0 : options.chunkByteCount,
                                chunkCRC32: [], chunkStoredByteCounts: [])
        current = OpenTensor(entry: entry, byteCount: byteCount)
    }

    /// Appends the next bytes of the open tensor (little-endian elements).
    public func write(_ bytes: UnsafeRawBufferPointer) throws(MTLModelError) {
        guard var tensor = current else { throw invalid("no tensor is open") }
        guard tensor.placed == nil else { throw invalid("tensor \"\(tensor.entry.name)\" is written at offsets (placedTensor())") }
        guard UInt64(bytes.count) <= tensor.byteCount - tensor.written else {
            throw invalid("more bytes than the shape of tensor \"\(tensor.entry.name)\" holds (\(tensor.byteCount))")
        }
        var rest = bytes
        while !rest.isEmpty {
            let size = Int(options.chunkByteCount)
            if tensor.entry.compression == .none && tensor.chunkFill == 0 && rest.count >= Self.concurrentChunkCount * size {
                let whole = rest.count / size * size
                try writeChunksConcurrently(UnsafeRawBufferPointer(rebasing: rest[..<whole]), &tensor)
                rest = UnsafeRawBufferPointer(rebasing: rest[whole...])
                continue
            }
            let take = Int(min(UInt64(rest.count), options.chunkByteCount - tensor.chunkFill))
            let piece = UnsafeRawBufferPointer(rebasing: rest[..<take])
            if tensor.entry.compression == .none {
                tensor.chunkCRC = CRC32.checksum(piece, continuing: tensor.chunkCRC)
                try output.append(piece)
            } else {
                tensor.pending.append(contentsOf: piece)
            }
            tensor.chunkFill += UInt64(take)
            tensor.written += UInt64(take)
            rest = UnsafeRawBufferPointer(rebasing: rest[take...])
            if tensor.chunkFill == options.chunkByteCount || tensor.written == tensor.byteCount {
                try closeChunk(&tensor)
            }
        }
        current = tensor
    }

    /// Pieces of at least this many whole chunks are checksummed and written by several threads.
    static let concurrentChunkCount = 4

    /// Whole chunks of the open tensor, from a chunk boundary, checksummed and written by
    /// `options.threadCount` threads. The page-cache copy and the checksum each keep a core
    /// busy: one after the other, saving a 2 GiB model took 1.44× the time of `np.save` (which
    /// checksums nothing). Into a temporary file each thread checksums and writes its own run
    /// of chunks at their offsets; elsewhere the CRCs are computed on another thread while
    /// this one writes. With one thread, each chunk is checksummed, then written.
    private func writeChunksConcurrently(_ bytes: UnsafeRawBufferPointer, _ tensor: inout OpenTensor) throws(MTLModelError) {
        let size = Int(options.chunkByteCount), count = bytes.count / size
        let crcs = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: count)
        defer { crcs.deallocate() }
        let shared = ChunkChecksums(bytes: bytes, size: size, crcs: crcs)
        if options.placesWrites, let writes = try output.placedWrites() {
            try shared.computeAndWrite(writes, at: output.position, threads: options.threadCount)
            try output.advance(by: UInt64(count * size))
        } else if options.threadCount > 1 {
            try checksumWhileWriting(shared)
        } else {
            for i in 0..<count {
                crcs[i] = CRC32.checksum(shared.chunk(i))
                try output.append(shared.chunk(i))
            }
        }
        for crc in crcs {
            tensor.chunkCRC = crc
            tensor.chunkFill = UInt64(size)
            tensor.written += UInt64(size)
            try closeChunk(&tensor)
        }
    }

    private func checksumWhileWriting(_ shared: ChunkChecksums) throws(MTLModelError) {
        let checksumming = DispatchGroup()
        DispatchQueue.global().async(group: checksumming) { shared.compute() }
        defer { checksumming.wait() }  // it reads the caller's bytes: it never outlives this call
        try output.append(UnsafeRawBufferPointer(rebasing: shared.bytes[..<(shared.crcs.count * shared.size)]))
        checksumming.wait()
    }

    /// The bytes and the CRC array handed to the checksumming threads: `@unchecked Sendable`
    /// and safe, as each thread sets its own CRCs and the caller reads them only once every
    /// thread is done (the group's wait, or `concurrentPerform`'s return, orders the writes
    /// before the reads).
    private struct ChunkChecksums: @unchecked Sendable {
        let bytes: UnsafeRawBufferPointer
        let size: Int
        let crcs: UnsafeMutableBufferPointer<UInt32>
        func chunk(_ i: Int) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[(i * size)..<((i + 1) * size)]) }

        func compute() {
            for i in crcs.indices { crcs[i] = CRC32.checksum(chunk(i)) }
        }

        /// Each core takes a run of chunks and, chunk by chunk, checksums it and writes it while
        /// it is still in the cache.
        func computeAndWrite(_ writes: PlacedWrites, at offset: UInt64, threads: Int) throws(MTLModelError) {
            let parts = max(1, min(crcs.count, threads))
            let failures = WorkResults<MTLModelError>(count: parts)
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                do throws(MTLModelError) {
                    for i in (crcs.count * part / parts)..<(crcs.count * (part + 1) / parts) {
                        crcs[i] = CRC32.checksum(chunk(i))
                        try writes.write(chunk(i), at: offset + UInt64(i * size))
                    }
                } catch {
                    failures.set(part, error)
                }
            }
            if let failure = failures.all.lazy.compactMap({ $0 }).first { throw failure }
        }
    }

    /// Lets several threads write the open tensor, each piece at its offset (`PlacedTensor`),
    /// until `endTensor()`. Nil when the output cannot take writes at offsets (written in
    /// place: a device, standard output) or the tensor is compressed, empty or begun: the
    /// caller then writes it in order with `write`.
    func placedTensor() throws(MTLModelError) -> PlacedTensor? {
        guard var tensor = current, tensor.placed == nil, tensor.written == 0, tensor.byteCount > 0,
              tensor.entry.compression == .none, options.placesWrites, let writes = try output.placedWrites() else { return nil }
        let placed = PlacedTensor(name: tensor.entry.name, fileOffset: output.position, byteCount: tensor.byteCount,
                                  chunkByteCount: options.chunkByteCount, writes: writes)
        tensor.placed = placed
        current = tensor
        return placed
    }

    /// The placed tensor's bytes below `offset` are all written: their writeback may start
    /// (as appended bytes' does) while the rest are written.
    func placedBytesWritten(below offset: UInt64) {
        guard let placed = current?.placed else { return }
        output.placedBytesWritten(below: placed.fileOffset + offset)
    }

    /// Appends the next whole chunk of the open tensor, whose CRC-32 the caller has: a chunk
    /// copied from a file that checked it against that CRC, with the same chunk size, is
    /// written without computing it again. Anything else (a compressed output, a chunk that
    /// does not line up) is written as `write` writes it.
    func write(_ bytes: UnsafeRawBufferPointer, checkedCRC: UInt32) throws(MTLModelError) {
        guard var tensor = current, tensor.placed == nil, tensor.entry.compression == .none, tensor.chunkFill == 0,
              UInt64(bytes.count) == min(options.chunkByteCount, tensor.byteCount - tensor.written), !bytes.isEmpty else {
            return try write(bytes)
        }
        try output.append(bytes)
        tensor.chunkCRC = checkedCRC
        tensor.chunkFill = UInt64(bytes.count)
        tensor.written += UInt64(bytes.count)
        try closeChunk(&tensor)
        current = tensor
    }

    /// Logical bytes per chunk of the tensors written.
    var chunkByteCount: UInt64 { options.chunkByteCount }

    public func write<T: BitwiseCopyable>(_ elements: ArraySlice<T>) throws(MTLModelError) {
        try elements.withUnsafeBytes { raw in Result { () throws(MTLModelError) in try write(raw) } }.get()
    }

    private func closeChunk(_ tensor: inout OpenTensor) throws(MTLModelError) {
        if tensor.entry.compression == .zlib {
            let compressed = try withBytes(of: tensor.pending) { raw throws(MTLModelError) in try ZlibChunk.compress(raw) }
            tensor.chunkCRC = CRC32.checksum(compressed)
            try output.append(compressed)
            tensor.entry.chunkStoredByteCounts.append(UInt64(compressed.count))
            tensor.entry.storedByteCount += UInt64(compressed.count)
            tensor.pending.removeAll(keepingCapacity: true)
        } else {
            tensor.entry.storedByteCount += tensor.chunkFill
        }
        tensor.entry.chunkCRC32.append(tensor.chunkCRC)
        tensor.chunkCRC = 0
        tensor.chunkFill = 0
    }

    public func endTensor() throws(MTLModelError) {
        guard var tensor = current else { throw invalid("no tensor is open") }
        if let placed = tensor.placed {
            tensor.entry.chunkCRC32 = try placed.chunkCRCs()
            tensor.entry.storedByteCount = tensor.byteCount
            tensor.written = tensor.byteCount
            try output.advance(by: tensor.byteCount)
        }
        guard tensor.written == tensor.byteCount else {
            throw invalid("tensor \"\(tensor.entry.name)\" got \(tensor.written) of its \(tensor.byteCount) bytes")
        }
        try padToAlignment()
        entries.append(tensor.entry)
        current = nil
    }

    /// Writes a whole tensor at once.
    public func writeTensor(_ name: String, dtype: DType, shape: [UInt64], role: TensorRole,
                            bytes: UnsafeRawBufferPointer) throws(MTLModelError) {
        try beginTensor(name, dtype: dtype, shape: shape, role: role)
        try write(bytes)
        try endTensor()
    }

    /// Writes the manifest, footer and header, and moves the file into place.
    /// What `finish()` wrote: read from the writer, not from the file, which may be a device
    /// written in place.
    public struct Written: Sendable {
        public var tensors: [TensorEntry]
        public var fileByteCount: UInt64
        /// FNV-1a 64 of the manifest bytes (`ModelFile.manifestHash` of the file written).
        public var manifestHash: UInt64
    }

    @discardableResult
    public func finish(architecture: Architecture, provenance: Provenance, metadata: [MetadataEntry] = [],
                       delta: DeltaManifest? = nil, shards: ShardTable? = nil, shard: ShardIdentity? = nil) throws(MTLModelError) -> Written {
        guard !finished else { throw invalid("finish() called twice") }
        guard current == nil else { throw invalid("tensor \"\(current!.entry.name)\" is still open") }
        try architecture.validate()
        var keys = Set<String>()
        for entry in metadata {
            guard !entry.key.isEmpty, entry.key.utf8.count <= ReadLimits().maxNameByteCount, !entry.key.utf8.contains(0) else {
                throw invalid("invalid metadata key \"\(entry.key)\"")
            }
            guard keys.insert(entry.key).inserted else { throw invalid("metadata key \"\(entry.key)\" given twice") }
            guard !entry.value.utf8.contains(0), entry.value.utf8.count <= ReadLimits().maxMetadataValueByteCount else {
                throw invalid("metadata value of \"\(entry.key)\" contains a NUL byte or is too long")
            }
        }
        guard !provenance.source.utf8.contains(0), !provenance.producer.utf8.contains(0),
              !provenance.producerVersion.utf8.contains(0) else {
            throw invalid("provenance strings must not contain NUL bytes")
        }
        let manifest = Manifest(provenance: provenance, architecture: architecture, tensors: entries, metadata: metadata, delta: delta,
                                shards: shards, shard: shard)
        let manifestBytes = manifest.serialized()
        let manifestOffset = output.position
        try output.append(manifestBytes)
        let footer = FileFooter(dataOffset: FormatConstants.headerByteCount,
                                dataByteCount: manifestOffset - FormatConstants.headerByteCount,
                                manifestOffset: manifestOffset, manifestByteCount: UInt64(manifestBytes.count),
                                fileByteCount: output.position + FormatConstants.footerByteCount,
                                manifestCRC32: CRC32.checksum(manifestBytes))
        try output.append(footer.encoded())
        var features: FormatFeatures = entries.contains { $0.compression == .zlib } ? [.zlibChunks] : []
        var version = Self.minimumVersion(for: entries)
        if delta != nil {
            features.insert(.delta)
            version = max(version, FormatVersion(major: 1, minor: 2))
        }
        if shards != nil || shard != nil {
            features.insert(.sharding)
            // A sharded delta is 1.4: a 1.3 reader would refuse its two sections.
            version = max(version, FormatVersion(major: 1, minor: delta != nil ? 4 : 3))
        }
        let header = FileHeader(version: version, requiredFeatures: features)
        try output.overwrite(header.encoded(), at: 0)
        let fileByteCount = output.position
        try output.commit()
        finished = true
        if shards == nil, shard == nil, let path = output.finalPath {
            // This one file replaced whatever the target was: shards of an earlier sharded
            // model (or delta) there are garbage now (ShardCleanup keeps those another root uses).
            ShardCleanup.removeLeftovers(root: path, keeping: [], modelID: nil, suffix: ShardNaming.suffix(delta: delta != nil))
        }
        return Written(tensors: entries, fileByteCount: fileByteCount, manifestHash: FNV1a.hash(manifestBytes))
    }

    /// The lowest format version that can hold `entries` (writers never stamp a newer one
    /// than their content needs, so older readers keep working).
    static func minimumVersion(for entries: [TensorEntry]) -> FormatVersion {
        entries.map(\.dtype.minimumVersion).max() ?? FormatVersion(major: 1, minor: 0)
    }

    private func padToAlignment() throws(MTLModelError) {
        let remainder = output.position % FormatConstants.alignment
        if remainder != 0 { try output.appendZeros(Int(FormatConstants.alignment - remainder)) }
    }

    private func invalid(_ message: String) -> MTLModelError {
        MTLModelError(.invalidArgument, message, file: output.messagePath)
    }
}
