#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where an output goes, decided before anything is written (docs/RELIABILITY.md, "Outputs").
///
/// - A regular file (new or existing) is written under a temporary name beside it and renamed
///   over it when complete. A symbolic link is followed: the file it names is replaced and the
///   link stays a link.
/// - A character device or a FIFO (`/dev/null`, `/dev/stdout`, a named pipe) is written in
///   place: renaming a file over it would replace the device node itself.
/// - `-` is standard output, written in place.
///
/// Refused, before anything is created: a target that is one of this process's open inputs
/// (same device and inode, through any link), a directory, a block device, a dangling link.
enum OutputTarget: Sendable, Equatable {
    /// Write beside `path` (the link resolved) and rename over it.
    case file(path: String)
    /// Write into the existing non-regular file at `path`, in place.
    case inPlace(path: String)
    case standardOutput

    init(resolving path: String) throws(MTLModelError) {
        if path == "-" {
            self = .standardOutput
            return
        }
        var info = stat()
        guard lstat(path, &info) == 0 else {
            guard errno == ENOENT else { throw Self.error(path, "cannot stat: \(String(cString: strerror(errno)))") }
            self = .file(path: path)
            return
        }
        var resolved = path
        if (info.st_mode & S_IFMT) == S_IFLNK {
            guard stat(path, &info) == 0, let real = realpath(path, nil) else {
                throw Self.error(path, "is a symbolic link to a file that does not exist (or cannot be reached): name the file itself")
            }
            resolved = String(cString: real)
            free(real)
        }
        if let input = OpenInputs.path(of: FileIdentity(info)) {
            let same = input == path ? "" : " \(TerminalText.escaped(input))"
            throw Self.error(path, "is the same file as the input\(same): writing it would destroy that input; choose another output path (nothing was written)")
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: self = .file(path: resolved)
        case S_IFCHR, S_IFIFO, S_IFSOCK: self = .inPlace(path: resolved)
        case S_IFDIR: throw Self.error(path, "is a directory: name a file to write")
        case S_IFBLK: throw Self.error(path, "is a block device: mtl-model does not write to disks; name a file")
        default: throw Self.error(path, "is not a file that can be written")
        }
    }

    private static func error(_ path: String, _ message: String) -> MTLModelError {
        MTLModelError(.invalidArgument, message, file: path)
    }
}
