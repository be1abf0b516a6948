import Foundation

/// One thing wrong with a model file.
public struct VerificationProblem: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable {
        case checksum, padding, structure, values, keys
        /// A sharded model's files do not fit together: a shard missing, stale, of another
        /// model, or holding other rows than the root records.
        case shards
    }

    public var kind: Kind
    public var tensor: String?
    public var byteOffset: UInt64?
    public var message: String
    /// The file the problem is in when it is not the file verified: a shard of a root.
    public var file: String?

    public init(kind: Kind, tensor: String?, byteOffset: UInt64?, message: String, file: String? = nil) {
        self.kind = kind
        self.tensor = tensor
        self.byteOffset = byteOffset
        self.message = message
        self.file = file
    }
}

/// The result of checking a whole file.
public struct VerificationReport: Sendable, Hashable, Codable {
    public var file: String
    public var formatVersion: String
    public var tensorCount: Int
    public var checkedByteCount: UInt64
    public var problems: [VerificationProblem]
    public var isValid: Bool { problems.isEmpty }
}

/// Checks everything a reader does not check on open: every chunk checksum, zero padding,
/// the structure the architecture calls for, NaN / Inf in weights, distinct keys.
/// Together with the checks of `ModelFile.init` this covers every byte of the file.
public struct ModelVerifier: Sendable {
    /// Threads reading chunks at once (each holds at most a 16 MiB stretch of mapped pages).
    public var threadCount: Int

    /// How a sharded model's shards are opened (the limits of the root's reader).
    public var options = ModelFile.Options()

    public init(threadCount: Int = ProcessInfo.processInfo.activeProcessorCount, options: ModelFile.Options = .init()) {
        self.threadCount = max(1, threadCount)
        self.options = options
    }

    /// Checks `model` and, when it is a sharded model's root, every shard (each as a file of its
    /// own, then against the root: `ShardSet`). Problems in a shard name it in `file`.
    public func verify(_ model: ModelFile) -> VerificationReport {
        verify(model) { _, shard in verifyFile(shard) }
    }

    /// `verify(_:)` with each shard's own report from `shardReport` (index 0-based, and the
    /// shard as the root's table opened it): computed here, or by the tasks of a plan.
    func verify(_ model: ModelFile, shardReport: (Int, ModelFile) -> VerificationReport) -> VerificationReport {
        var report = verifyFile(model)
        guard model.manifest.shards != nil, report.problems.allSatisfy({ $0.kind != .structure }) else { return report }
        let set = ShardSet.open(root: model, options: options)
        report.problems += set.problems
        for (index, shard) in set.files.enumerated() {
            guard let shard else { continue }
            let part = shardReport(index, shard)
            report.problems += part.problems.map { problem in
                var problem = problem
                problem.file = problem.file ?? shard.path
                return problem
            }
            report.checkedByteCount += part.checkedByteCount
        }
        return report
    }

    /// `shard`'s own checks, as `verify` of its root makes them (a task of a plan).
    func verifyShard(_ shard: ModelFile) -> VerificationReport { verifyFile(shard) }

    /// A stretch of one tensor's chunks, checked by one thread: uncompressed tensors are split
    /// into stretches of about 16 MiB; a compressed one is a single stretch, read in order.
    private struct Stretch: Sendable {
        var entry: TensorEntry
        var chunks: Range<Int>
    }

    private struct StretchResult {
        var checksumProblems: [VerificationProblem] = []
        var counts = ValueCounts()
        /// Keys work: a key stored twice.
        var duplicateKey: UInt64?
        /// Keys work in a shard: keys whose bucket is not the shard's, and the first of them.
        var misplaced: (count: Int, row: Int, key: UInt64)?
    }

    static let stretchByteCount: UInt64 = 16 << 20

    /// - Complexity: reads every byte once, `threadCount` stretches at a time, releasing mapped
    ///   pages behind; memory stays bounded whatever the model's size (keys are checked for
    ///   duplicates by a partitioned hash, `KeyJoin.duplicateKey`), except that a compressed
    ///   keys tensor is inflated whole for that check.
    private func verifyFile(_ model: ModelFile) -> VerificationReport {
        let ordered = model.tensors.sorted { ($0.offset, $0.storedByteCount) < ($1.offset, $1.storedByteCount) }
        let (stretches, stretchesOf) = Self.stretches(of: ordered)
        let (keys, done) = checkAll(stretches, keysTensors: ordered.filter { $0.role == .keys }, in: model)
        var problems: [VerificationProblem] = []
        var checked: UInt64 = 0
        var cursor = model.footer.dataOffset
        for (position, entry) in ordered.enumerated() {
            problems += paddingProblems(model, from: cursor, to: entry.offset)
            problems += tensorProblems(entry, stretches: stretchesOf[position].map { done[$0] }, keys: keys[entry.name], in: model)
            checked += entry.storedByteCount
            cursor = entry.offset + entry.storedByteCount
        }
        problems += paddingProblems(model, from: cursor, to: model.footer.manifestOffset)
        problems += ModelStructure.problems(model.manifest)
        return VerificationReport(file: model.path, formatVersion: model.version.description,
                                  tensorCount: model.tensors.count, checkedByteCount: checked, problems: problems)
    }

    /// The stretches of the tensors' chunks (`ordered` by offset), and each tensor's range of them.
    private static func stretches(of ordered: [TensorEntry]) -> (stretches: [Stretch], of: [Range<Int>]) {
        var stretches: [Stretch] = []
        var stretchesOf: [Range<Int>] = []
        for entry in ordered {
            let first = stretches.count
            if entry.compression == .zlib || entry.chunkCount == 0 {
                stretches.append(Stretch(entry: entry, chunks: 0..<entry.chunkCount))
            } else {
                let perStretch = max(1, Int(Self.stretchByteCount / max(entry.chunkByteCount, 1)))
                for start in stride(from: 0, to: entry.chunkCount, by: perStretch) {
                    stretches.append(Stretch(entry: entry, chunks: start..<min(start + perStretch, entry.chunkCount)))
                }
            }
            stretchesOf.append(first..<stretches.count)
        }
        return (stretches, stretchesOf)
    }

    /// The keys tensors' checks (by name) and the stretches' results, on `threadCount` threads.
    /// The keys checks come first: each is one long item, which the other threads overlap with
    /// checksum stretches.
    private func checkAll(_ stretches: [Stretch], keysTensors: [TensorEntry], in model: ModelFile)
        -> (keys: [String: StretchResult], stretches: [StretchResult]) {
        let results = WorkResults<StretchResult>(count: keysTensors.count + stretches.count)
        DispatchQueue.concurrentPerform(iterations: min(threadCount, max(keysTensors.count + stretches.count, 1))) { _ in
            while let index = results.claim() {
                if index < keysTensors.count {
                    results.set(index, StretchResult(duplicateKey: duplicateKey(keysTensors[index], in: model),
                                                     misplaced: misplacedKeys(keysTensors[index], in: model)))
                } else {
                    results.set(index, check(stretches[index - keysTensors.count], in: model))
                }
            }
        }
        let all = results.all.map { $0! }  // every index was claimed and set
        return (Dictionary(uniqueKeysWithValues: zip(keysTensors.map(\.name), all[..<keysTensors.count])), Array(all[keysTensors.count...]))
    }

    /// One tensor's problems from its stretches' results and its keys check. Its values and keys
    /// are judged only when its checksums hold (then marked verified for later readers).
    private func tensorProblems(_ entry: TensorEntry, stretches: [StretchResult], keys: StretchResult?, in model: ModelFile) -> [VerificationProblem] {
        var problems = stretches.flatMap(\.checksumProblems)
        guard problems.isEmpty else { return problems }
        var counts = ValueCounts()
        for stretch in stretches { counts.merge(stretch.counts) }
        model.markChecksumsVerified(entry.name)
        problems += counts.problems(entry)
        if let duplicate = keys?.duplicateKey {
            problems.append(.init(kind: .keys, tensor: entry.name, byteOffset: nil, message: "duplicate key \(duplicate)"))
        }
        if let (count, row, key) = keys?.misplaced {
            problems.append(.init(kind: .shards, tensor: entry.name, byteOffset: nil,
                                  message: "\(count) key\(count == 1 ? "" : "s") outside this shard's buckets (the first: key \(Int64(bitPattern: key)) in row \(row)): a lookup would not find \(count == 1 ? "it" : "them") here"))
        }
        return problems
    }

    /// Checksums and values of one stretch.
    private func check(_ stretch: Stretch, in model: ModelFile) -> StretchResult {
        var result = StretchResult()
        let entry = stretch.entry
        func checksumProblem(_ visit: ChunkVisit) -> VerificationProblem {
            .init(kind: .checksum, tensor: entry.name, byteOffset: visit.storedOffset, message: model.chunkError(visit, of: entry).message)
        }
        if entry.compression == .zlib {
            var scanner = ValueScanner(entry)
            model.visitChunks(of: entry, checkingChecksums: true) { visit in
                if let chunk = visit.logical {
                    if result.checksumProblems.isEmpty { scanner.add(chunk) }
                } else {
                    result.checksumProblems.append(checksumProblem(visit))
                }
            }
            result.counts = scanner.counts
            Progress.advance(Int(entry.storedByteCount))
            return result
        }
        let ranges = entry.storedRanges()
        let tensor = model.file.bytes(entry.offset, entry.storedByteCount)
        let rowBytes = Int(entry.dtype.rowByteCount(columns: UInt64(entry.columnCount)))
        let rows = rowBytes == 0 ? 0 : Int(entry.byteCount) / rowBytes
        for index in stretch.chunks {
            let range = ranges[index]
            let stored = UnsafeRawBufferPointer(rebasing: tensor[Int(range.lowerBound)..<Int(range.upperBound)])
            Progress.advance(stored.count)
            let (crc, clean) = ValueCounts.checksum(stored, of: entry)
            guard crc == entry.chunkCRC32[index] else {
                result.checksumProblems.append(checksumProblem(ChunkVisit(index: index, storedOffset: entry.offset + range.lowerBound,
                                                                          checksumMismatch: (entry.chunkCRC32[index], crc))))
                continue
            }
            if clean { continue }  // finite float32 values below 2^64: nothing to count
            if let size = entry.dtype.elementByteCount {
                result.counts.scanElements(stored, of: entry, first: Int(range.lowerBound) / size)
            } else if rowBytes > 0 {
                // Rows that start in this chunk (one may end in the next: the tensor is mapped whole).
                let first = (Int(range.lowerBound) + rowBytes - 1) / rowBytes
                let end = min(rows, (Int(range.upperBound) + rowBytes - 1) / rowBytes)
                for row in first..<max(first, end) { result.counts.scanRow(tensor.baseAddress! + row * rowBytes, index: row, of: entry) }
            }
        }
        if let first = stretch.chunks.first, let last = stretch.chunks.last {
            model.file.release(entry.offset + ranges[first].lowerBound, ranges[last].upperBound - ranges[first].lowerBound)
        }
        return result
    }

    /// A key of a keys tensor stored twice, found in bounded memory (its pages released behind);
    /// nil also when the tensor fails its checksums (reported by the stretches).
    private func duplicateKey(_ entry: TensorEntry, in model: ModelFile) -> UInt64? {
        withStoredKeys(entry, in: model) { keys in
            KeyJoin.duplicateKey(in: KeyColumn(keys), keptMapped: 64 << 20) { rows in
                if entry.compression == .none { model.file.release(entry.offset + UInt64(rows.lowerBound * 8), UInt64(rows.count * 8)) }
            }
        } ?? nil
    }

    /// The keys of `entry` for the checks that run beside the stretches, read as stored: not
    /// checksummed on access, since the stretches checksum the same chunks and a finding in a
    /// tensor that fails them is not reported (so the keys are read once, not twice). A
    /// compressed tensor is inflated (its chunks checked then). Nil when the keys cannot be read.
    private func withStoredKeys<R>(_ entry: TensorEntry, in model: ModelFile, _ body: (UnsafeBufferPointer<UInt64>) -> R) -> R? {
        guard entry.compression == .none, UInt64.matches(entry.dtype), entry.storedByteCount == entry.byteCount else {
            return try? model.withElements(of: entry.name, as: UInt64.self, body)
        }
        return body(model.file.bytes(entry.offset, entry.storedByteCount).assumingMemoryBound(to: UInt64.self))
    }

    /// In a shard, the keys of a keyed part whose bucket is not in the part's bucket range.
    private func misplacedKeys(_ entry: TensorEntry, in model: ModelFile) -> (count: Int, row: Int, key: UInt64)? {
        guard case .keys(let field)? = TensorName(entry.name),
              let part = model.manifest.shard?.parts.first(where: { $0.field == field }), part.isBucketed,
              part.bucketBits <= ShardLayout.maxBucketBits else { return nil }
        let found: (count: Int, row: Int, key: UInt64)?? = withStoredKeys(entry, in: model) { keys in
            var count = 0
            var first: (row: Int, key: UInt64)?
            for (row, key) in keys.enumerated() where !part.buckets.contains(ShardLayout.bucket(key, seed: part.hashSeed, bucketBits: Int(part.bucketBits))) {
                count += 1
                if first == nil { first = (row, key) }
            }
            if entry.compression == .none { model.file.release(entry.offset, entry.storedByteCount) }
            return first.map { (count, $0.row, $0.key) }
        }
        return found ?? nil
    }

    private func paddingProblems(_ model: ModelFile, from start: UInt64, to end: UInt64) -> [VerificationProblem] {
        guard end > start else { return [] }
        let bytes = model.file.bytes(start, end - start)
        guard let bad = bytes.firstIndex(where: { $0 != 0 }) else { return [] }
        return [.init(kind: .padding, tensor: nil, byteOffset: start + UInt64(bad), message: "padding byte is not zero")]
    }
}
