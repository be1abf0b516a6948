extension ModelFile {
    /// Largest chunk accepted: a compressed chunk is inflated into a buffer of this size.
    static let maxChunkByteCount: UInt64 = 1 << 30

    /// Checks the tensor directory against the file: names, shapes and sizes without overflow,
    /// chunk tables consistent, and payloads tiling the data region exactly (each at the next
    /// 64-byte boundary after the previous one: in bounds, aligned, no overlap, no hole).
    ///
    /// - Returns: the index of each tensor by name.
    static func validateDirectory(_ tensors: [TensorEntry], footer: FileFooter, features: FormatFeatures,
                                  limits: ReadLimits) throws(MTLModelError) -> [String: Int] {
        let dataStart = footer.dataOffset
        let dataEnd = footer.manifestOffset
        var indexByName: [String: Int] = [:]
        indexByName.reserveCapacity(tensors.count)
        for (index, tensor) in tensors.enumerated() {
            func fail(_ message: String, at offset: UInt64? = nil) -> MTLModelError {
                .malformed(message, at: offset ?? footer.manifestOffset, tensor: tensor.name)
            }
            guard isValidTensorName(tensor.name, limit: limits.maxNameByteCount) else {
                throw fail("invalid tensor name (1 to \(limits.maxNameByteCount) bytes of letters, digits, '_', '-', '.')")
            }
            guard indexByName.updateValue(index, forKey: tensor.name) == nil else { throw fail("duplicate tensor name") }
            guard let byteCount = tensor.dtype.storedByteCount(shape: tensor.shape) else {
                throw fail(Checked.product(tensor.shape) == nil ? "shape \(tensor.shape) overflows 64 bits"
                           : "shape \(tensor.shape) does not suit \(tensor.dtype) (its byte size overflows, or it needs rank ≥ 2 and rows of 1 to 2^32 − 1 values)")
            }
            if byteCount == 0 {
                guard tensor.chunkCRC32.isEmpty, tensor.storedByteCount == 0, tensor.chunkStoredByteCounts.isEmpty else {
                    throw fail("empty tensor with stored bytes or chunks")
                }
            } else {
                guard isValidChunkByteCount(tensor.chunkByteCount) else {
                    throw fail("chunk size \(tensor.chunkByteCount) is not a multiple of 64 in 64...\(maxChunkByteCount)")
                }
                let chunkCount = (byteCount - 1) / tensor.chunkByteCount + 1
                guard UInt64(tensor.chunkCRC32.count) == chunkCount else {
                    throw fail("\(tensor.chunkCRC32.count) chunk checksums for \(chunkCount) chunks")
                }
                switch tensor.compression {
                case .none:
                    guard tensor.storedByteCount == byteCount, tensor.chunkStoredByteCounts.isEmpty else {
                        throw fail("stores \(tensor.storedByteCount) bytes, its shape needs \(byteCount)")
                    }
                case .zlib:
                    guard features.contains(.zlibChunks) else { throw fail("compressed, but the header does not require zlib-chunks") }
                    guard UInt64(tensor.chunkStoredByteCounts.count) == chunkCount else {
                        throw fail("\(tensor.chunkStoredByteCounts.count) stored chunk sizes for \(chunkCount) chunks")
                    }
                    var total: UInt64 = 0
                    for (chunk, size) in tensor.chunkStoredByteCounts.enumerated() {
                        guard size > 0, let next = Checked.add(total, size) else { throw fail("invalid stored chunk size \(size)") }
                        // Bounds what inflating may allocate: deflate never beats 1032:1.
                        let logical = min(tensor.chunkByteCount, byteCount - UInt64(chunk) * tensor.chunkByteCount)
                        guard logical / 1032 <= size else {
                            throw fail("chunk \(chunk) claims \(logical) bytes from \(size), beyond zlib's maximum ratio of 1032:1")
                        }
                        total = next
                    }
                    guard total == tensor.storedByteCount else {
                        throw fail("stored chunk sizes add up to \(total), not \(tensor.storedByteCount)")
                    }
                }
            }
            guard tensor.offset % FormatConstants.alignment == 0 else {
                throw fail("offset \(tensor.offset) is not 64-byte aligned", at: tensor.offset)
            }
            guard tensor.offset >= dataStart, let end = Checked.add(tensor.offset, tensor.storedByteCount), end <= dataEnd else {
                throw fail("bytes [\(tensor.offset), +\(tensor.storedByteCount)) are outside the data region [\(dataStart), \(dataEnd))")
            }
        }
        // Tiling: visit payloads by offset; each must start exactly at the aligned end of the last.
        let order = tensors.indices.sorted {
            (tensors[$0].offset, tensors[$0].storedByteCount) < (tensors[$1].offset, tensors[$1].storedByteCount)
        }
        var cursor = dataStart
        var previous: String?
        for index in order {
            let tensor = tensors[index]
            let expected = Checked.alignUp(cursor, to: FormatConstants.alignment)!
            if tensor.offset < expected {
                throw .malformed("bytes [\(tensor.offset), +\(tensor.storedByteCount)) overlap tensor \"\(previous ?? "")\"", at: tensor.offset, tensor: tensor.name)
            }
            if tensor.offset > expected {
                throw .malformed("gap of \(tensor.offset - expected) bytes before offset \(tensor.offset) (payloads must tile the data region)", at: expected, tensor: tensor.name)
            }
            cursor = tensor.offset + tensor.storedByteCount
            previous = tensor.name
        }
        guard Checked.alignUp(cursor, to: FormatConstants.alignment)! == dataEnd else {
            throw .malformed("data region ends at \(dataEnd) but its payloads end at \(cursor) (payloads must tile the data region)", at: cursor)
        }
        return indexByName
    }

    /// Chunks are whole multiples of 64 bytes, so no element of any dtype straddles two chunks.
    static func isValidChunkByteCount(_ count: UInt64) -> Bool {
        count >= FormatConstants.alignment && count <= maxChunkByteCount && count % FormatConstants.alignment == 0
    }

    static func isValidTensorName(_ name: String, limit: Int) -> Bool {
        NameRule.isValid(name, limit: limit, allowingDots: true)
    }
}
