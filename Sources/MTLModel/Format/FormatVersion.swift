/// A format version `major.minor`. A reader reads every version with its own major and any
/// minor (refusing unknown dtypes or enum values by name), and refuses a newer major.
public struct FormatVersion: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var major: UInt16
    public var minor: UInt16

    public init(major: UInt16, minor: UInt16) {
        self.major = major
        self.minor = minor
    }

    /// The newest version this build writes (writers stamp the lowest one their content needs).
    public static let current = FormatVersion(major: 1, minor: 4)
    /// The versions this build reads: major 1, minor 0 through `current.minor`.
    public static let readable = "1.0"

    public static func < (lhs: FormatVersion, rhs: FormatVersion) -> Bool {
        (lhs.major, lhs.minor) < (rhs.major, rhs.minor)
    }

    public var description: String { "\(major).\(minor)" }
}

/// Features a file may use. A *required* feature is one a reader must understand to read the
/// file correctly; a reader refuses a file with a required bit it does not know.
public struct FormatFeatures: OptionSet, Sendable, Hashable, Codable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// At least one tensor is stored as zlib-compressed chunks.
    public static let zlibChunks = FormatFeatures(rawValue: 1 << 0)
    /// The file is a delta against a base model (format 1.2), not a model by itself.
    public static let delta = FormatFeatures(rawValue: 1 << 1)

    /// The file is the root or a shard of a sharded model (format 1.3): its table tensors are
    /// (root) or are only part of (shard) the model's.
    public static let sharding = FormatFeatures(rawValue: 1 << 2)

    /// Every required feature this build understands.
    public static let known: FormatFeatures = [.zlibChunks, .delta, .sharding]

    public var names: [String] {
        var names: [String] = []
        if contains(.zlibChunks) { names.append("zlib-chunks") }
        if contains(.delta) { names.append("delta") }
        if contains(.sharding) { names.append("sharding") }
        let unknown = rawValue & ~FormatFeatures.known.rawValue
        if unknown != 0 { names.append("unknown(0x" + String(unknown, radix: 16) + ")") }
        return names
    }
}

/// Fixed numbers of the container (docs/FORMAT.md).
enum FormatConstants {
    /// `\x89MTL\r\n\x1a\n`: a non-ASCII first byte and line-ending bytes catch text-mode transfers.
    static let headerMagic: [UInt8] = [0x89, 0x4D, 0x54, 0x4C, 0x0D, 0x0A, 0x1A, 0x0A]
    /// `MTLMEND\0`: the footer's magic.
    static let footerMagic: [UInt8] = [0x4D, 0x54, 0x4C, 0x4D, 0x45, 0x4E, 0x44, 0x00]
    static let headerByteCount: UInt64 = 64
    static let footerByteCount: UInt64 = 64
    /// Every tensor payload starts at a multiple of this, and so does the manifest.
    static let alignment: UInt64 = 64
    static let defaultChunkByteCount: UInt64 = 1 << 20
}
