/// The 64 bytes at the end of the file (docs/FORMAT.md, "Footer"). Written last, so a writer
/// can stream every payload before it knows the manifest.
struct FileFooter: Hashable {
    var dataOffset: UInt64
    var dataByteCount: UInt64
    var manifestOffset: UInt64
    var manifestByteCount: UInt64
    var fileByteCount: UInt64
    var manifestCRC32: UInt32

    func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.append(dataOffset)                    // 0
        w.append(dataByteCount)                 // 8
        w.append(manifestOffset)                // 16
        w.append(manifestByteCount)             // 24
        w.append(fileByteCount)                 // 32
        w.append(manifestCRC32)                 // 40
        w.append(UInt32(0))                     // 44: reserved
        w.append(FormatConstants.footerMagic)   // 48
        w.append(UInt32(0))                     // 56: reserved
        w.append(CRC32.checksum(w.bytes))       // 60: CRC of bytes 0..<60
        return w.bytes
    }

    /// Decodes the footer found at `footerOffset` of a file of `fileSize` bytes and checks
    /// that its regions tile the file exactly: header, data, manifest, footer.
    static func decode(_ bytes: [UInt8], footerOffset: UInt64, fileSize: UInt64,
                       limits: ReadLimits) throws(MTLModelError) -> FileFooter {
        let r = ByteReader(bytes: bytes)
        guard r.slice(48, 8) == FormatConstants.footerMagic else {
            throw .malformed("bad footer magic (file truncated or not finished)", at: footerOffset + 48)
        }
        let stored: UInt32 = r.integer(at: 60)
        let computed = CRC32.checksum(r.slice(0, 60))
        guard stored == computed else {
            throw .malformed("footer checksum mismatch (stored \(hex32(stored)), computed \(hex32(computed)))", at: footerOffset + 60)
        }
        let footer = FileFooter(dataOffset: r.integer(at: 0), dataByteCount: r.integer(at: 8),
                                manifestOffset: r.integer(at: 16), manifestByteCount: r.integer(at: 24),
                                fileByteCount: r.integer(at: 32), manifestCRC32: r.integer(at: 40))
        guard r.integer(at: 44, as: UInt32.self) == 0, r.integer(at: 56, as: UInt32.self) == 0 else {
            throw .malformed("reserved footer bytes are not zero", at: footerOffset + 44)
        }
        guard footer.fileByteCount == fileSize else {
            throw .malformed("file is \(fileSize) bytes but its footer says \(footer.fileByteCount) (truncated or appended to)", at: footerOffset + 32)
        }
        guard footer.dataOffset == FormatConstants.headerByteCount else {
            throw .malformed("data region starts at \(footer.dataOffset), expected \(FormatConstants.headerByteCount)", at: footerOffset)
        }
        guard footer.dataByteCount % FormatConstants.alignment == 0,
              Checked.add(footer.dataOffset, footer.dataByteCount) == footer.manifestOffset else {
            throw .malformed("data region [\(footer.dataOffset), +\(footer.dataByteCount)) does not end where the manifest starts (\(footer.manifestOffset)) on a 64-byte boundary", at: footerOffset + 8)
        }
        guard footer.manifestByteCount <= limits.maxManifestByteCount else {
            throw .malformed("manifest of \(footer.manifestByteCount) bytes exceeds the limit of \(limits.maxManifestByteCount)", at: footerOffset + 24)
        }
        guard Checked.add(footer.manifestOffset, footer.manifestByteCount) == footerOffset else {
            throw .malformed("manifest [\(footer.manifestOffset), +\(footer.manifestByteCount)) does not end where the footer starts (\(footerOffset))", at: footerOffset + 16)
        }
        return footer
    }
}
