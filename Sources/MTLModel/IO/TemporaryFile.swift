import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Scratch space that outgrows memory (a diff's key matches, a shard's spilled rows): a file in
/// `TMPDIR` unlinked as soon as it is made, so nothing is left behind even by a crash.
enum TemporaryFile {
    /// An open descriptor of a new unlinked file named after `name`; `purpose` says in the
    /// error what it was for.
    static func unlinked(_ name: String, for purpose: String) throws(MTLModelError) -> Int32 {
        let directory = FileManager.default.temporaryDirectory.path
        var template = Array("\(directory)/mtl-model-\(name)-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else {
            throw MTLModelError(.io, "cannot create a temporary file in \(directory) for \(purpose): \(String(cString: strerror(errno)))")
        }
        unlink(template)
        return fd
    }
}
