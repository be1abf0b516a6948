import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Calls `step(done)` (the bytes moved so far: a `write`, `pwrite` or `pread` of the rest)
/// until `count` bytes are moved: a short transfer goes on, an interrupted one is retried.
/// An error, or nothing moved (the end of a file read, reported as EIO), throws `failure()`,
/// which reads `errno`.
func transferFully(_ count: Int, failure: () -> MTLModelError, _ step: (Int) -> Int) throws(MTLModelError) {
    var done = 0
    while done < count {
        let result = step(done)
        if result < 0 && errno == EINTR { continue }
        if result == 0 { errno = EIO }
        guard result > 0 else { throw failure() }
        done += result
    }
}
