import CZlib

/// One chunk as an independent zlib stream (compression level 1: weights barely compress,
/// so speed matters more than ratio; zero-heavy tensors still shrink a lot).
enum ZlibChunk {
    static func compress(_ input: UnsafeRawBufferPointer, level: Int32 = 1) throws(MTLModelError) -> [UInt8] {
        let bound = Int(compressBound(UInt(input.count)))
        var output = [UInt8](repeating: 0, count: bound)
        var outputCount = UInt(bound)
        let status = output.withUnsafeMutableBytes { out in
            compress2(out.baseAddress!.assumingMemoryBound(to: Bytef.self), &outputCount,
                      input.baseAddress?.assumingMemoryBound(to: Bytef.self), UInt(input.count), level)
        }
        guard status == Z_OK else {
            throw MTLModelError(.io, "zlib compression failed (status \(status))")
        }
        output.removeSubrange(Int(outputCount)...)
        return output
    }

    /// Inflates `input` into `output`, which must be filled exactly.
    static func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Bool {
        guard let outBase = output.baseAddress, let inBase = input.baseAddress else {
            return output.count == 0 && input.count == 0
        }
        var outputCount = UInt(output.count)
        var inputCount = UInt(input.count)
        let status = uncompress2(outBase.assumingMemoryBound(to: Bytef.self), &outputCount,
                                 inBase.assumingMemoryBound(to: Bytef.self), &inputCount)
        return status == Z_OK && outputCount == UInt(output.count) && inputCount == UInt(input.count)
    }
}
