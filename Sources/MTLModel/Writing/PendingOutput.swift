#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An output that a command writes completely and then decides to keep or not (an accuracy
/// gate): written under a temporary name beside its target, moved into place by `commit()`,
/// removed otherwise.
///
/// The target is checked as every output is (`OutputTarget`) before anything is written. A
/// target that is written in place (a device, a FIFO) cannot be held back: the writer writes
/// it directly, and `commit()` has nothing left to do.
public final class PendingOutput {
    /// The path as given.
    public let target: String
    /// Where the writer writes: a temporary file beside the target, or the target itself when
    /// it is written in place.
    public let path: String
    private let finalPath: String?
    private var committed = false

    public init(target: String) throws(MTLModelError) {
        self.target = target
        switch try OutputTarget(resolving: target) {
        case .file(let resolved):
            let slash = resolved.lastIndex(of: "/")
            let directory = slash.map { String(resolved[...$0]) } ?? ""
            let base = slash.map { String(resolved[resolved.index(after: $0)...]) } ?? resolved
            // The temporary-file scheme of `AtomicOutputFile`, so the next write of the same
            // target removes this file if the process dies before deciding; and, as every
            // writer of the target does, this one removes what killed writers left.
            AtomicOutputFile.removeLeftovers(directory: directory, base: base)
            path = "\(directory)\(AtomicOutputFile.temporaryPrefix(base))\(getpid())-pending"
            finalPath = resolved
        case .inPlace, .standardOutput:
            path = target
            finalPath = nil
        }
    }

    deinit {
        if !committed, finalPath != nil { unlink(path) }
    }

    /// Moves the written file into place.
    public func commit() throws(MTLModelError) {
        committed = true
        guard let finalPath else { return }
        guard rename(path, finalPath) == 0 else {
            throw MTLModelError(.io, "cannot move the output into place: \(String(cString: strerror(errno)))", file: target)
        }
    }
}
