import Foundation

/// An open `.mtlm` file: validated header, footer, manifest and tensor directory, with the
/// payloads mapped (zero copy) and read on demand.
///
/// Opening reads only the header, footer and manifest, so its cost does not grow with the size
/// of the weights. Every offset, size and count was checked before use (docs/FORMAT.md,
/// "Reading untrusted files").
///
/// `@unchecked Sendable`: everything is immutable after `init` except the per-tensor "checked"
/// flags, which are read and written only under `lock`.
public final class ModelFile: @unchecked Sendable {
    public struct Options: Sendable {
        /// Check a tensor's chunk checksums the first time it is accessed.
        public var verifyChecksumsOnAccess = true
        public var limits = ReadLimits()
        /// How the weights will be read: it decides how the file is mapped.
        public var access = Access.bulk
        public init() {}
    }

    /// How a reader touches the weights of a file.
    public enum Access: Sendable {
        /// Whole tensors, or most rows of them: what every command does but a small `predict`.
        /// The file is mapped on 2 MiB boundaries, so that its 2 MiB page-cache folios map
        /// whole with one page-table entry each: the cheapest way to map a lot, and one TLB
        /// entry for 2 MiB of a table read at random rows.
        case bulk
        /// A few scattered rows of large tables (a small request). Resident memory follows the
        /// rows read (64 KiB around each) rather than the page-cache folios they sit in (up to
        /// 2 MiB each on Linux 6.18), and a chunk checked on access is dropped from this
        /// process once checked; mapping a whole table this way costs ~50 ms more per GiB.
        case sparse
    }

    public let path: String
    public let version: FormatVersion
    public let requiredFeatures: FormatFeatures
    public let manifest: Manifest
    public let fileByteCount: UInt64
    /// FNV-1a 64 of the manifest bytes as stored: what a sharded model's root records of each
    /// shard (the manifest lists every chunk's CRC-32, so this binds the whole content).
    public let manifestHash: UInt64
    let footer: FileFooter
    let file: MappedFile
    /// How the file was opened (a sharded delta opens its shards with the same limits).
    let options: Options
    private let indexByName: [String: Int]
    private var verified: [Bool]
    /// Tensors whose values and keys were checked (`requireValid`).
    private var valuesChecked: [Bool]
    private let lock = NSLock()

    public var architecture: Architecture { manifest.architecture }
    public var tensors: [TensorEntry] { manifest.tensors }

    public convenience init(path: String) throws(MTLModelError) {
        try self.init(path: path, options: Options())
    }

    public init(path: String, options: Options) throws(MTLModelError) {
        do throws(MTLModelError) {
            self.path = path
            self.options = options
            file = try MappedFile(path: path, sparse: options.access == .sparse)
            fileByteCount = file.byteCount
            let kind = FileKind.sniff(file.bytes(0, min(fileByteCount, 4096)), byteCount: fileByteCount)
            if ![.mtlmModel, .mtlmDelta, .empty, .unknown].contains(kind) {
                throw MTLModelError(.malformed, kind.adviceForModel(path: path))
            }
            let minimum = FormatConstants.headerByteCount + FormatConstants.footerByteCount
            guard fileByteCount >= minimum else {
                if fileByteCount >= 8, file.copy(0, 8) != FormatConstants.headerMagic {
                    throw MTLModelError.malformed("not an .mtlm file (bad magic bytes \(hex(file.copy(0, 8))))", at: 0)
                }
                throw MTLModelError.malformed("file is \(fileByteCount) bytes, shorter than the \(minimum) of header and footer (truncated?)", at: 0)
            }
            let header = try FileHeader.decode(file.copy(0, FormatConstants.headerByteCount))
            version = header.version
            requiredFeatures = header.requiredFeatures
            let footerOffset = fileByteCount - FormatConstants.footerByteCount
            footer = try FileFooter.decode(file.copy(footerOffset, FormatConstants.footerByteCount),
                                           footerOffset: footerOffset, fileSize: fileByteCount, limits: options.limits)
            let manifestBytes = file.bytes(footer.manifestOffset, footer.manifestByteCount)
            let crc = CRC32.checksum(manifestBytes)
            guard crc == footer.manifestCRC32 else {
                throw MTLModelError.malformed("manifest checksum mismatch (stored \(hex32(footer.manifestCRC32)), computed \(hex32(crc)))", at: footer.manifestOffset)
            }
            manifestHash = FNV1a.hash(manifestBytes)
            manifest = try Manifest.decode(manifestBytes, baseOffset: footer.manifestOffset, limits: options.limits)
            guard requiredFeatures.contains(.delta) == (manifest.delta != nil) else {
                throw MTLModelError.malformed("the header's delta feature bit and the manifest's delta section disagree", at: 16)
            }
            // A sharded delta (1.4) has a delta section and a shard table (its root) or a shard
            // identity (its shards); a file is never both a root and a shard.
            guard requiredFeatures.contains(.sharding) == (manifest.shards != nil || manifest.shard != nil),
                  manifest.shards == nil || manifest.shard == nil else {
                throw MTLModelError.malformed("the header's sharding feature bit and the manifest's shard table and shard sections disagree (at most one of them, and the bit set exactly with one)", at: 16)
            }
            indexByName = try Self.validateDirectory(manifest.tensors, footer: footer, features: requiredFeatures, limits: options.limits)
            verified = Array(repeating: false, count: manifest.tensors.count)
            valuesChecked = verified
        } catch {
            throw error.inFile(path)
        }
    }

    /// The directory entry of tensor `name`, or nil.
    public func entry(named name: String) -> TensorEntry? {
        indexByName[name].map { manifest.tensors[$0] }
    }

    /// Calls `body` with the logical bytes of tensor `name`: the mapped bytes themselves when
    /// the tensor is stored uncompressed (zero copy, 64-byte aligned), or an inflated copy.
    /// Checksums are verified on first access unless `Options.verifyChecksumsOnAccess` is off.
    public func withTensorBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let index = indexByName[name] else {
            throw MTLModelError(.invalidArgument, "no tensor named \"\(name)\"", file: path, location: .init(tensor: name))
        }
        let entry = manifest.tensors[index]
        if options.verifyChecksumsOnAccess && !isVerified(index) {
            if let problem = checksumProblems(of: entry).first { throw problem }
            lock.withLock { verified[index] = true }
        }
        let stored = file.bytes(entry.offset, entry.storedByteCount)
        if entry.compression == .none { return try body(stored) }
        var logical = [UInt8](repeating: 0, count: Int(entry.byteCount))
        try logical.withUnsafeMutableBytes { output in
            try visitChunks(of: entry, checkingChecksums: false) { visit in
                guard let chunk = visit.logical else { throw chunkError(visit, of: entry) }
                let target = entry.logicalRange(ofChunk: visit.index)
                UnsafeMutableRawBufferPointer(rebasing: output[Int(target.lowerBound)..<Int(target.upperBound)]).copyMemory(from: chunk)
            }
        }
        return try logical.withUnsafeBytes(body)
    }

    /// The stored bytes of tensor `name`, valid while this file is open: the mapped bytes of an
    /// uncompressed tensor (checksums verified first, as on any access), or nil when the tensor
    /// is compressed and has no stored form to point at.
    func mappedBytes(of name: String) throws -> UnsafeRawBufferPointer? {
        guard let entry = entry(named: name), entry.compression == .none else { return nil }
        try withTensorBytes(name) { _ in }
        return file.bytes(entry.offset, entry.storedByteCount)
    }

    /// The elements of float tensor `name` as Float (float16, bfloat16 and quantized types
    /// decoded).
    public func floats(_ name: String) throws -> [Float] {
        guard let entry = entry(named: name) else {
            throw MTLModelError(.invalidArgument, "no tensor named \"\(name)\"", file: path, location: .init(tensor: name))
        }
        guard entry.dtype.isFloatingPoint else {
            throw MTLModelError(.invalidArgument, "tensor is \(entry.dtype), not a float type", file: path, location: .init(tensor: name))
        }
        return try withTensorBytes(name) { bytes in ElementDecoding.floats(bytes, dtype: entry.dtype, columns: entry.columnCount) }
    }

    var checksChecksumsOnAccess: Bool { options.verifyChecksumsOnAccess }

    private func isVerified(_ index: Int) -> Bool { lock.withLock { verified[index] } }

    /// Whether every chunk of `name` was checked already.
    func checksumsVerified(_ name: String) -> Bool { indexByName[name].map(isVerified) ?? false }

    /// Records that the chunks of `name` were checked (by a full pass), so access skips it.
    func markChecksumsVerified(_ name: String) {
        if let index = indexByName[name] { lock.withLock { verified[index] = true } }
    }

    /// Checks `entry` once before a command writes anything derived from it: its checksums,
    /// its values (NaN, Inf, magnitudes ≥ 2^64, negative row counts and variances: what
    /// `verify` reports) and, for keys, that they are distinct. One pass over the tensor (the
    /// checksums and values of each chunk together), in bounded memory; later accesses skip it.
    ///
    /// - Parameter threadCount: threads the check may use (nil: every core); a command given
    ///   `--threads` passes it, so that its work stays on as many cores as it was allotted.
    /// - Throws: `.malformed` naming the tensor and the first problem.
    func requireValid(_ entry: TensorEntry, threadCount: Int? = nil) throws {
        guard let index = indexByName[entry.name], !lock.withLock({ valuesChecked[index] }) else { return }
        var scanner = ValueScanner(entry)
        var checksum: MTLModelError?
        let checkCRC = options.verifyChecksumsOnAccess && !isVerified(index)
        if entry.compression == .none, let elementSize = entry.dtype.elementByteCount, entry.chunkCount > Self.stretchChunkCount {
            // A large tensor of whole elements (none straddles a chunk): stretches of chunks on
            // every core, as verify does, so the check costs a fraction of the pass it precedes.
            let (error, counts) = checkStretches(entry, checkCRC: checkCRC, elementSize: elementSize, threadCount: threadCount)
            if let error { throw error }
            scanner = ValueScanner(entry, counts: counts)
        } else if entry.compression == .none {
            visitStoredChunks(of: entry) { chunk, offset, stored in
                guard checksum == nil else { return }
                if checkCRC, case let crc = CRC32.checksum(stored), crc != entry.chunkCRC32[chunk] {
                    checksum = chunkError(ChunkVisit(index: chunk, storedOffset: offset, checksumMismatch: (entry.chunkCRC32[chunk], crc)), of: entry)
                    return
                }
                scanner.add(stored)
            }
        } else {
            visitChunks(of: entry, checkingChecksums: checkCRC) { visit in
                guard checksum == nil else { return }
                guard let logical = visit.logical else { checksum = chunkError(visit, of: entry); return }
                scanner.add(logical)
            }
        }
        if let checksum { throw checksum }
        lock.withLock { verified[index] = true }
        if let problem = scanner.counts.problems(entry).first {
            throw MTLModelError(.malformed, problem.message + " (run mtl-model verify)", file: path, location: .init(tensor: entry.name))
        }
        if entry.role == .keys, let duplicate = try withElements(of: entry.name, as: UInt64.self, { keys in
            // Given threads (a rewrite's), the keys stay mapped and the check takes them all.
            let threads = threadCount ?? 1
            return KeyJoin.duplicateKey(in: KeyColumn(keys), keptMapped: threads > 1 ? 64 << 20 : 0, threadCount: threads) { rows in
                if entry.compression == .none { file.release(entry.offset + UInt64(rows.lowerBound * 8), UInt64(rows.count * 8)) }
            }
        }) {
            throw MTLModelError(.malformed, "duplicate key \(duplicate): a keyed table maps each id to one row (run mtl-model verify)",
                                file: path, location: .init(tensor: entry.name))
        }
        lock.withLock { valuesChecked[index] = true }
    }

    /// Chunks a thread checks at once in `requireValid` (16 MiB of default chunks).
    static let stretchChunkCount = 16

    /// Calls `body` on every chunk of uncompressed `entry` (its index, file offset and stored
    /// bytes), in stretches of `stretchChunkCount` chunks on every core, each stretch's pages
    /// mapped in one call before and released after; a stretch stops at the first chunk for
    /// which `body` returns an error. Returns each stretch's state, in chunk order.
    func forEachStretch<State: Sendable>(of entry: TensorEntry, _ initial: State, threadCount: Int? = nil,
                                         _ body: @Sendable (inout State, _ chunk: Int, _ offset: UInt64, UnsafeRawBufferPointer) -> MTLModelError?)
        -> [(error: MTLModelError?, state: State)] {
        let ranges = entry.storedRanges()
        let stretches = stride(from: 0, to: ranges.count, by: Self.stretchChunkCount).map { $0..<min($0 + Self.stretchChunkCount, ranges.count) }
        let threads = max(1, threadCount ?? ProcessInfo.processInfo.activeProcessorCount)
        return Concurrently.map(stretches.count, threadCount: threads) { next -> (error: MTLModelError?, state: State) in
            var state = initial
            var error: MTLModelError?
            let chunks = stretches[next]
            let start = entry.offset + ranges[chunks.lowerBound].lowerBound, end = entry.offset + ranges[chunks.upperBound - 1].upperBound
            for chunk in chunks where error == nil {
                let offset = entry.offset + ranges[chunk].lowerBound
                error = body(&state, chunk, offset, file.bytes(offset, UInt64(ranges[chunk].count)))
            }
            file.release(start, end - start)
            return (error, state)
        }
    }

    /// The checksums and value counts of an uncompressed tensor of whole elements, stretches
    /// of chunks on all cores, pages released behind each stretch.
    private func checkStretches(_ entry: TensorEntry, checkCRC: Bool, elementSize: Int, threadCount: Int?) -> (MTLModelError?, ValueCounts) {
        let stretches = forEachStretch(of: entry, ValueCounts(), threadCount: threadCount) { counts, chunk, offset, stored in
            let first = Int(offset - entry.offset) / elementSize
            guard checkCRC else {
                counts.scanElements(stored, of: entry, first: first)
                return nil
            }
            let (crc, clean) = ValueCounts.checksum(stored, of: entry)
            if crc != entry.chunkCRC32[chunk] {
                return chunkError(ChunkVisit(index: chunk, storedOffset: offset, checksumMismatch: (entry.chunkCRC32[chunk], crc)), of: entry)
            }
            if !clean { counts.scanElements(stored, of: entry, first: first) }
            return nil
        }
        var counts = ValueCounts()
        for stretch in stretches {
            if let error = stretch.error { return (error, counts) }
            counts.merge(stretch.state)
        }
        return (nil, counts)
    }

    /// Visits the logical bytes of `entry` chunk by chunk after `requireValid`: the streaming
    /// read of every command that writes a file derived from a model. With each chunk, its
    /// CRC-32 when the manifest has it (an uncompressed chunk: stored as it is), so a writer
    /// of the same bytes need not compute it again.
    func visitValidChunks(of entry: TensorEntry, _ body: (_ chunk: UnsafeRawBufferPointer, _ crc: UInt32?) throws -> Void) throws {
        try requireValid(entry)
        let stored = entry.storedRanges()
        try visitChunks(of: entry, checkingChecksums: false) { visit in
            guard let chunk = visit.logical else { throw chunkError(visit, of: entry) }
            try body(chunk, entry.compression == .none ? entry.chunkCRC32[visit.index] : nil)
            Progress.advance(stored[visit.index].count)
        }
    }

    /// Problems with the stored chunks of `entry`: each chunk whose CRC does not match.
    ///
    /// Pages are released as the pass goes (`visitChunks`), so checking a tensor larger than
    /// memory keeps a bounded resident set; using it afterwards maps them back from the cache.
    func checksumProblems(of entry: TensorEntry) -> [MTLModelError] {
        var problems: [MTLModelError] = []
        visitStoredChunks(of: entry) { index, offset, stored in
            let crc = CRC32.checksum(stored)
            if crc != entry.chunkCRC32[index] {
                problems.append(chunkError(ChunkVisit(index: index, storedOffset: offset, checksumMismatch: (entry.chunkCRC32[index], crc)), of: entry))
            }
        }
        return problems
    }
}
