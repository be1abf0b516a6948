#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// The device and inode of a file: what "the same file" means, whatever path or link led to it.
struct FileIdentity: Hashable, Sendable {
    var device: UInt64
    var inode: UInt64

    init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
    }
}

/// The files this process reads as inputs (models, checkpoints, datasets), while they are open.
///
/// Every writer checks its target against this set before it creates anything, so no command
/// can replace one of its own inputs (`quantize m.mtlm m.mtlm`, `predict M D -o M`), whichever
/// path or link names it: the check lives where every output is created (`OutputTarget`), not
/// in each command. Inputs register when they are opened, which every command does before it
/// creates its output.
enum OpenInputs {
    private static let open = Mutex<[FileIdentity: (path: String, count: Int)]>([:])

    static func register(_ identity: FileIdentity, path: String) {
        open.withLock { $0[identity, default: (path, 0)].count += 1 }
    }

    static func unregister(_ identity: FileIdentity) {
        open.withLock { table in
            guard let entry = table[identity] else { return }
            table[identity] = entry.count > 1 ? (entry.path, entry.count - 1) : nil
        }
    }

    /// The path under which an open input with this identity was opened, or nil.
    static func path(of identity: FileIdentity) -> String? {
        open.withLock { $0[identity]?.path }
    }
}

/// A registration in `OpenInputs` that lasts as long as the value (an input file's reader).
final class InputRegistration: Sendable {
    private let identity: FileIdentity?

    /// Registers the file open at `fd` when it is a regular file (pipes and terminals cannot be
    /// replaced by a rename).
    init(fd: Int32, path: String) {
        var info = stat()
        if fstat(fd, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG {
            let identity = FileIdentity(info)
            OpenInputs.register(identity, path: path)
            self.identity = identity
        } else {
            identity = nil
        }
    }

    deinit {
        if let identity { OpenInputs.unregister(identity) }
    }
}
