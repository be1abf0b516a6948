import CKernels
import CZlib

/// CRC-32 (the zlib / PNG polynomial), as stored for the header, manifest, footer and chunks.
/// Computed with carry-less multiplication where the CPU has it (`mtlm_crc32`: VPCLMULQDQ or PCLMUL, several times
/// zlib's speed, the same values; a test checks them against zlib).
enum CRC32 {
    static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        return mtlm_crc32(crc, base.assumingMemoryBound(to: UInt8.self), bytes.count)
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    /// The CRC of bytes A then B from the CRCs of A and of B (`count`: B's length), as zlib
    /// combines them.
    static func combine(_ first: UInt32, _ second: UInt32, secondCount: UInt64) -> UInt32 {
        UInt32(crc32_combine(uLong(first), uLong(second), .init(secondCount)))
    }

    /// "vpclmulqdq-avx512", "vpclmulqdq-avx2", "pclmul" or "zlib": the implementation used on
    /// this CPU.
    static var implementation: String { String(cString: mtlm_crc32_name()) }
}
