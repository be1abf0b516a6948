/// The 64 bytes at offset 0 (docs/FORMAT.md, "Header").
struct FileHeader: Hashable {
    var version: FormatVersion
    var requiredFeatures: FormatFeatures
    var optionalFeatures: UInt64 = 0

    func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.append(FormatConstants.headerMagic)                 // 0
        w.append(version.major)                               // 8
        w.append(version.minor)                               // 10
        w.append(UInt32(FormatConstants.headerByteCount))     // 12
        w.append(requiredFeatures.rawValue)                   // 16
        w.append(optionalFeatures)                            // 24
        w.appendZeros(28)                                     // 32: reserved
        w.append(CRC32.checksum(w.bytes))                     // 60: CRC of bytes 0..<60
        return w.bytes
    }

    /// Decodes and checks a header: magic, version, size, checksum, then features, so that a
    /// newer file is reported as newer rather than as corrupt.
    static func decode(_ bytes: [UInt8]) throws(MTLModelError) -> FileHeader {
        precondition(bytes.count == Int(FormatConstants.headerByteCount))
        let r = ByteReader(bytes: bytes)
        guard r.slice(0, 8) == FormatConstants.headerMagic else {
            throw .malformed("not an .mtlm file (bad magic bytes \(hex(r.slice(0, 8))))", at: 0)
        }
        let version = FormatVersion(major: r.integer(at: 8), minor: r.integer(at: 10))
        guard version.major <= FormatVersion.current.major else {
            throw MTLModelError(.unsupported,
                "format version \(version) is newer than this reader (it reads \(FormatVersion.readable) through \(FormatVersion.current)); upgrade mtl-model",
                location: .init(byteOffset: 8))
        }
        guard version.major >= 1 else {
            throw .malformed("format version \(version) does not exist", at: 8)
        }
        let headerSize: UInt32 = r.integer(at: 12)
        guard UInt64(headerSize) == FormatConstants.headerByteCount else {
            throw .malformed("header size \(headerSize) is not \(FormatConstants.headerByteCount)", at: 12)
        }
        let stored: UInt32 = r.integer(at: 60)
        let computed = CRC32.checksum(r.slice(0, 60))
        guard stored == computed else {
            throw .malformed("header checksum mismatch (stored \(hex32(stored)), computed \(hex32(computed)))", at: 60)
        }
        let required = FormatFeatures(rawValue: r.integer(at: 16))
        let unknown = FormatFeatures(rawValue: required.rawValue & ~FormatFeatures.known.rawValue)
        guard unknown.isEmpty else {
            throw MTLModelError(.unsupported,
                "file requires features this reader does not know (bits 0x\(String(unknown.rawValue, radix: 16)); it knows \(FormatFeatures.known.names.joined(separator: ", "))); upgrade mtl-model",
                location: .init(byteOffset: 16))
        }
        guard r.slice(32, 28).allSatisfy({ $0 == 0 }) else {
            throw .malformed("reserved header bytes are not zero", at: 32)
        }
        return FileHeader(version: version, requiredFeatures: required, optionalFeatures: r.integer(at: 24))
    }
}

func hex(_ bytes: [UInt8]) -> String {
    bytes.map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined()
}

func hex32(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
}

func hex64(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: 16 - digits.count) + digits
}
