/// Writes a ZIP archive of stored (uncompressed) members, streaming each member's bytes: the
/// container of numpy's `.npz`. Sizes are declared up front; each CRC-32 is patched into its
/// local header when the member is complete. ZIP64 records are written when a size, an offset
/// or the member count needs them (PKWARE APPNOTE 6.3, sections 4.3 and 4.5.3), which Python's
/// `zipfile` (and so `numpy.load`) reads.
final class ZipArchiveWriter {
    private struct Member {
        var name: [UInt8]
        var offset: UInt64
        var size: UInt64
        var crc: UInt32
    }

    private let output: AtomicOutputFile
    private var members: [Member] = []
    private var open: (member: Member, written: UInt64)?

    /// Sizes and offsets from which ZIP64 records are used (lowered by tests to exercise them).
    private let zip64Threshold: UInt64

    init(path: String, zip64Threshold: UInt64 = 0xFFFF_FFFF) throws(MTLModelError) {
        output = try AtomicOutputFile(targetPath: path)
        self.zip64Threshold = zip64Threshold
    }

    /// Starts a member of exactly `size` bytes.
    func begin(_ name: String, size: UInt64) throws(MTLModelError) {
        precondition(open == nil, "a member is still open")
        let member = Member(name: Array(name.utf8), offset: output.position, size: size, crc: 0)
        let zip64 = size >= zip64Threshold
        var header = Bytes()
        header.u32(0x0403_4B50)
        header.u16(zip64 ? 45 : 20)               // version needed to extract
        header.u16(0x0800)                        // flags: names are UTF-8
        header.u16(0)                             // method: stored
        header.u16(0); header.u16(0x21)           // time and date: 1980-01-01 00:00
        header.u32(0)                             // CRC-32, patched by end()
        header.u32(zip64 ? 0xFFFF_FFFF : UInt32(size))
        header.u32(zip64 ? 0xFFFF_FFFF : UInt32(size))
        header.u16(UInt16(member.name.count))
        header.u16(zip64 ? 20 : 0)
        header.bytes += member.name
        if zip64 {
            header.u16(1); header.u16(16)         // ZIP64 extra: sizes
            header.u64(size); header.u64(size)
        }
        try output.append(header.bytes)
        output.reserve(size, at: output.position)
        open = (member, 0)
    }

    /// Appends the next bytes of the open member; `crc`, when the caller has it (a chunk checked
    /// against the CRC-32 its model file stores), is combined into the member's instead of
    /// computed again.
    func write(_ bytes: UnsafeRawBufferPointer, crc: UInt32? = nil) throws(MTLModelError) {
        guard var current = open else { preconditionFailure("no member is open") }
        precondition(current.written + UInt64(bytes.count) <= current.member.size, "more bytes than declared")
        current.member.crc = crc.map { CRC32.combine(current.member.crc, $0, secondCount: UInt64(bytes.count)) }
            ?? CRC32.checksum(bytes, continuing: current.member.crc)
        current.written += UInt64(bytes.count)
        try output.append(bytes)
        open = current
    }

    func write(_ bytes: [UInt8]) throws(MTLModelError) {
        try withBytes(of: bytes) { raw throws(MTLModelError) in try write(raw) }
    }

    func end() throws(MTLModelError) {
        guard let current = open else { preconditionFailure("no member is open") }
        precondition(current.written == current.member.size, "fewer bytes than declared")
        var crc = Bytes()
        crc.u32(current.member.crc)
        try output.overwrite(crc.bytes, at: current.member.offset + 14)
        members.append(current.member)
        open = nil
    }

    /// Writes the central directory and moves the archive into place.
    func finish() throws(MTLModelError) {
        precondition(open == nil, "a member is still open")
        let directoryOffset = output.position
        for member in members {
            let bigSize = member.size >= zip64Threshold, bigOffset = member.offset >= zip64Threshold
            var extra = Bytes()
            if bigSize || bigOffset {
                extra.u16(1)
                extra.u16(UInt16((bigSize ? 16 : 0) + (bigOffset ? 8 : 0)))
                if bigSize { extra.u64(member.size); extra.u64(member.size) }
                if bigOffset { extra.u64(member.offset) }
            }
            var entry = Bytes()
            entry.u32(0x0201_4B50)
            entry.u16(45)                          // made by: version 4.5
            entry.u16(bigSize || bigOffset ? 45 : 20)
            entry.u16(0x0800)
            entry.u16(0)
            entry.u16(0); entry.u16(0x21)
            entry.u32(member.crc)
            entry.u32(bigSize ? 0xFFFF_FFFF : UInt32(member.size))
            entry.u32(bigSize ? 0xFFFF_FFFF : UInt32(member.size))
            entry.u16(UInt16(member.name.count))
            entry.u16(UInt16(extra.bytes.count))
            entry.u16(0); entry.u16(0)             // comment length, disk number
            entry.u16(0); entry.u32(0)             // internal and external attributes
            entry.u32(bigOffset ? 0xFFFF_FFFF : UInt32(member.offset))
            entry.bytes += member.name + extra.bytes
            try output.append(entry.bytes)
        }
        let directorySize = output.position - directoryOffset
        let count = UInt64(members.count)
        var end = Bytes()
        if count >= 0xFFFF || directoryOffset >= zip64Threshold || directorySize >= zip64Threshold {
            let zip64End = output.position
            end.u32(0x0606_4B50); end.u64(44)
            end.u16(45); end.u16(45); end.u32(0); end.u32(0)
            end.u64(count); end.u64(count); end.u64(directorySize); end.u64(directoryOffset)
            end.u32(0x0706_4B50); end.u32(0); end.u64(zip64End); end.u32(1)
        }
        end.u32(0x0605_4B50)
        end.u16(0); end.u16(0)
        end.u16(UInt16(min(count, 0xFFFF))); end.u16(UInt16(min(count, 0xFFFF)))
        end.u32(directorySize >= zip64Threshold ? 0xFFFF_FFFF : UInt32(directorySize))
        end.u32(directoryOffset >= zip64Threshold ? 0xFFFF_FFFF : UInt32(directoryOffset))
        end.u16(0)
        try output.append(end.bytes)
        try output.commit()
    }

    /// Little-endian field encoding.
    private struct Bytes {
        var bytes: [UInt8] = []
        mutating func u16(_ value: UInt16) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
        mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
        mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
    }
}
