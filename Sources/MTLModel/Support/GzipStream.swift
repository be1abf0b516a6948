#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CZlib

/// A gzip stream read from a file descriptor and inflated as it is read, in constant memory:
/// what lets `predict` and `eval` take `test.txt.gz` as it is. Concatenated members (what
/// `cat a.gz b.gz` or pigz write) are read one after another; each member's CRC and length
/// are checked by zlib.
final class GzipStream {
    private var stream = z_stream()
    private let fd: Int32
    private let input: UnsafeMutablePointer<UInt8>
    private let inputCapacity = 1 << 18
    private var atInputEnd = false
    private var finished = false
    /// Compressed bytes consumed so far, for messages.
    private(set) var compressedOffset: UInt64 = 0

    /// - Parameter prefix: bytes already read from `fd` (the ones that showed it is gzip).
    init(fd: Int32, prefix: UnsafeRawBufferPointer) throws(MTLModelError) {
        self.fd = fd
        input = .allocate(capacity: max(inputCapacity, prefix.count))
        if let base = prefix.baseAddress { input.update(from: base.assumingMemoryBound(to: UInt8.self), count: prefix.count) }
        guard mtlm_inflate_init_gzip(&stream) == Z_OK else {
            input.deallocate()
            throw MTLModelError(.io, "cannot start inflating gzip data")
        }
        stream.next_in = input
        stream.avail_in = UInt32(prefix.count)
    }

    deinit {
        inflateEnd(&stream)
        input.deallocate()
    }

    /// Inflates up to `count` bytes into `output`; 0 at the end of the data.
    ///
    /// - Throws: on corrupt or truncated gzip data, naming the compressed byte offset.
    func read(into output: UnsafeMutablePointer<UInt8>, count: Int) throws(MTLModelError) -> Int {
        guard !finished, count > 0 else { return 0 }
        stream.next_out = output
        stream.avail_out = UInt32(min(count, Int(UInt32.max)))
        while stream.avail_out == UInt32(min(count, Int(UInt32.max))) {
            if stream.avail_in == 0 && !atInputEnd { try fill() }
            let before = stream.avail_in
            let status = inflate(&stream, Z_NO_FLUSH)
            compressedOffset += UInt64(before - stream.avail_in)
            switch status {
            case Z_OK:
                continue
            case Z_BUF_ERROR where stream.avail_in > 0 || !atInputEnd:
                // No progress possible with what is buffered: more input is coming.
                continue
            case Z_STREAM_END:
                // Another member may follow.
                if stream.avail_in == 0 && !atInputEnd { try fill() }
                if stream.avail_in == 0 { finished = true; return produced(count) }
                inflateReset(&stream)
            case Z_BUF_ERROR:
                throw MTLModelError(.malformed, "gzip data ends early, at compressed byte \(compressedOffset) (truncated file?)")
            default:
                let reason = stream.msg.map { String(cString: $0) } ?? "error \(status)"
                throw MTLModelError(.malformed, "gzip data is corrupt at compressed byte \(compressedOffset): \(reason)")
            }
        }
        return produced(count)
    }

    private func produced(_ count: Int) -> Int { min(count, Int(UInt32.max)) - Int(stream.avail_out) }

    private func fill() throws(MTLModelError) {
        while true {
            let n = Glibc.read(fd, input, inputCapacity)
            if n < 0 {
                if errno == EINTR { continue }
                throw MTLModelError(.io, "read failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { atInputEnd = true }
            stream.next_in = input
            stream.avail_in = UInt32(n)
            return
        }
    }
}
