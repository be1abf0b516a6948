#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Streams the dataset text format of MODEL.md from a file or standard input, batch by batch,
/// in constant memory:
///
///     1,0 user_id:123 item_id:98765 tags:5:0.5 tags:9:0.5 hour:14
///
/// A malformed line is an error naming the file, the line number and the token, unless
/// `skipInvalid` is set: then the line is skipped and counted.
/// Not thread-safe, and not `Sendable`: one thread reads it (a `BatchPrefetcher` hands it to
/// its own).
public final class DatasetReader {
    public let path: String
    public let skipInvalid: Bool
    /// Lines skipped because they were invalid (with `skipInvalid`).
    public private(set) var skippedLineCount = 0
    /// The first error met on a skipped line, for the report.
    public private(set) var firstSkippedError: MTLModelError?

    private let fieldIndex: FieldNameIndex
    private let fieldNames: [String]
    private let taskCount: Int
    private let fd: Int32
    private let ownsDescriptor: Bool
    private var buffer: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private var start = 0      // first unconsumed byte
    private var end = 0        // one past the last byte read
    private var atEOF = false
    private var lineNumber = 0
    /// Whether the first bytes were checked for another kind of file (a model given as data).
    private var kindChecked = false
    private var registration: InputRegistration?
    /// Set when the data is gzip-compressed (recognised by its magic bytes, whatever its name).
    private var gzip: GzipStream?
    static let maxLineByteCount = 64 << 20

    /// - Parameter path: a file, or `-` for standard input.
    public init(path: String, architecture: Architecture, skipInvalid: Bool = false) throws(MTLModelError) {
        self.path = path
        self.skipInvalid = skipInvalid
        fieldIndex = FieldNameIndex(architecture.fields.map(\.name))
        fieldNames = architecture.fields.map(\.name)
        taskCount = architecture.tasks.count
        if path == "-" {
            fd = 0
            ownsDescriptor = false
        } else {
            fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw MTLModelError(.io, "cannot open: \(String(cString: strerror(errno)))", file: path) }
            ownsDescriptor = true
            registration = InputRegistration(fd: fd, path: path)
        }
        capacity = 1 << 20
        buffer = .allocate(capacity: capacity + 1)
    }

    deinit {
        if ownsDescriptor { close(fd) }
        buffer.deallocate()
    }

    private var displayPath: String { path == "-" ? "<stdin>" : path }

    /// The compressed bytes counted for the progress bar so far.
    private var progressOffset: UInt64 = 0

    /// Replaces `batch`'s contents with up to `maxCount` samples.
    ///
    /// - Returns: false when the input is exhausted and no sample was read.
    public func nextBatch(into batch: inout SampleBatch, maxCount: Int) throws(MTLModelError) -> Bool {
        batch.removeAll()
        while batch.count < maxCount {
            guard let (lineStart, lineEnd) = try nextLine() else { break }
            lineNumber += 1
            do {
                try parse(lineStart, lineEnd, into: &batch)
            } catch {
                batch.rollBackSample()
                let located = MTLModelError(.malformed, error.message, file: displayPath, location: .init(line: lineNumber))
                guard skipInvalid else { throw located }
                skippedLineCount += 1
                if firstSkippedError == nil { firstSkippedError = located }
            }
        }
        return batch.count > 0
    }

    /// The next line as a byte range of the buffer (without its line end), or nil at the end.
    private func nextLine() throws(MTLModelError) -> (Int, Int)? {
        var scanned = start  // bytes before this hold no newline
        while true {
            if let newline = memchr(buffer + scanned, 0x0A, end - scanned) {
                let position = buffer.distance(to: newline.assumingMemoryBound(to: UInt8.self))
                let line = (start, position)
                start = position + 1
                return line
            }
            if atEOF {
                guard start < end else { return nil }
                let line = (start, end)  // a last line without a newline
                start = end
                return line
            }
            let pending = end - start
            try refill()
            scanned = pending
        }
    }

    /// Moves the unconsumed bytes to the front and reads more, growing the buffer for a long line.
    private func refill() throws(MTLModelError) {
        try compactAndGrow()
        while true {
            let count = try readMore()
            if count == 0 { atEOF = true }
            end += count
            if !kindChecked && end > 0 {
                kindChecked = true
                if try startInflating() { continue }
            }
            return
        }
    }

    /// Moves the unread bytes to the buffer's start, and doubles the buffer when a line fills it.
    private func compactAndGrow() throws(MTLModelError) {
        let pending = end - start
        if start > 0 && pending > 0 { memmove(buffer, buffer + start, pending) }
        start = 0
        end = pending
        guard end == capacity else { return }
        guard capacity < Self.maxLineByteCount else {
            throw MTLModelError(.malformed, "line longer than \(Self.maxLineByteCount) bytes", file: displayPath, location: .init(line: lineNumber + 1))
        }
        let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity * 2 + 1)
        bigger.update(from: buffer, count: end)
        buffer.deallocate()
        buffer = bigger
        capacity *= 2
    }

    /// Reads (or inflates) into the buffer's free space; 0 at the end. Advances the progress
    /// by the bytes of the file as stored (compressed, for a gzip file).
    private func readMore() throws(MTLModelError) -> Int {
        while true {
            let count: Int
            if let gzip {
                do {
                    count = try gzip.read(into: buffer + end, count: capacity - end)
                } catch {
                    throw error.inFile(displayPath)
                }
                Progress.advance(Int(gzip.compressedOffset - progressOffset))
                progressOffset = gzip.compressedOffset
                return count
            }
            count = read(fd, buffer + end, capacity - end)
            if count < 0 {
                if errno == EINTR { continue }
                throw MTLModelError(.io, "read failed: \(String(cString: strerror(errno)))", file: displayPath)
            }
            Progress.advance(count)
            return count
        }
    }

    /// The first bytes read: a gzip stream is inflated from them on (true: read again), and a
    /// file of another kind (a model, a checkpoint) is named as such.
    private func startInflating() throws(MTLModelError) -> Bool {
        let kind = FileKind.sniff(UnsafeRawBufferPointer(start: buffer, count: min(end, 4096)))
        if kind == .gzip {
            // What was read is the start of the compressed stream: inflate from it on.
            gzip = try GzipStream(fd: fd, prefix: UnsafeRawBufferPointer(start: buffer, count: end))
            end = 0
            atEOF = false
            return true
        }
        if let advice = kind.adviceForDataset(path: path) {
            throw MTLModelError(.malformed, advice, file: displayPath)
        }
        return false
    }

    private struct LineError: Error {
        var message: String
    }

    private func parse(_ lineStart: Int, _ lineEnd: Int, into batch: inout SampleBatch) throws(LineError) {
        var stop = lineEnd
        if stop > lineStart && buffer[stop - 1] == 0x0D { stop -= 1 }  // CRLF
        var i = lineStart
        func skipBlanks() { while i < stop && (buffer[i] == 0x20 || buffer[i] == 0x09) { i += 1 } }
        func tokenEnd() -> Int {
            var j = i
            while j < stop && buffer[j] != 0x20 && buffer[j] != 0x09 { j += 1 }
            return j
        }
        // A byte-order mark that editors and spreadsheet exports put before the first line.
        if lineNumber == 1, stop - i >= 3, buffer[i] == 0xEF, buffer[i + 1] == 0xBB, buffer[i + 2] == 0xBF { i += 3 }
        skipBlanks()
        if i == stop || buffer[i] == 0x23 { return }  // blank or comment
        batch.beginSample(line: lineNumber)
        var first = true
        while i < stop {
            let tokenStop = tokenEnd()
            if first {
                first = false
                if memchr(buffer + i, 0x3A, tokenStop - i) == nil {
                    try parseLabels(i, tokenStop, into: &batch)
                    i = tokenStop
                    skipBlanks()
                    continue
                }
                for _ in 0..<taskCount { batch.appendLabel(-1) }
            }
            try parseFeature(i, tokenStop, into: &batch)
            i = tokenStop
            skipBlanks()
        }
        if first { for _ in 0..<taskCount { batch.appendLabel(-1) } }
        batch.commitSample()
    }

    /// A token for a message: escaped, cut at 200 bytes, and in hex when it is not UTF-8 (a
    /// binary file never dumps its bytes on the terminal).
    private func text(_ from: Int, _ to: Int) -> String {
        let bytes = UnsafeBufferPointer(start: buffer + from, count: min(to - from, 200))
        guard let raw = String(validating: bytes, as: UTF8.self) ?? (to - from > 200 ? String(validating: bytes.dropLast(3), as: UTF8.self) : nil) else {
            return "<not UTF-8: " + bytes.prefix(16).map { String(format: "%02x", $0) }.joined(separator: " ") + (bytes.count > 16 ? " …" : "") + ">"
        }
        return TerminalText.escaped(raw) + (to - from > 200 ? "…" : "")
    }

    /// 0 or 1 for a label token `0`, `1`, `0.0`, `1.00`, …; -1 for `-`; nil otherwise.
    private func label(_ from: Int, _ to: Int) -> Int8? {
        guard to > from else { return nil }
        if to - from == 1 && buffer[from] == 0x2D { return -1 }
        guard buffer[from] == 0x30 || buffer[from] == 0x31 else { return nil }
        if to - from > 1 {
            guard buffer[from + 1] == 0x2E, (from + 2..<to).allSatisfy({ buffer[$0] == 0x30 }) else { return nil }
        }
        return buffer[from] == 0x31 ? 1 : 0
    }

    private func parseLabels(_ from: Int, _ to: Int, into batch: inout SampleBatch) throws(LineError) {
        var count = 0
        var i = from
        while true {
            let fieldEnd = (i..<to).first { buffer[$0] == 0x2C } ?? to
            guard let label = label(i, fieldEnd) else {
                throw LineError(message: "token \"\(text(from, to))\": labels must be 0, 1 (or 0.0, 1.0) or -, comma-separated")
            }
            count += 1
            if count <= taskCount { batch.appendLabel(label) }
            if fieldEnd == to { break }
            i = fieldEnd + 1
        }
        guard count == taskCount else {
            throw LineError(message: "token \"\(text(from, to))\": \(count) labels, the model has \(taskCount) tasks")
        }
    }

    private func parseFeature(_ from: Int, _ to: Int, into batch: inout SampleBatch) throws(LineError) {
        guard let found = memchr(buffer + from, 0x3A, to - from) else {
            throw LineError(message: "token \"\(text(from, to))\": expected field:id or field:id:value")
        }
        let colon = from + (UnsafeMutableRawPointer(found) - UnsafeMutableRawPointer(buffer + from))
        guard let field = fieldIndex.lookup(UnsafeBufferPointer(start: buffer + from, count: colon - from)) else {
            let known = fieldNames.prefix(12).joined(separator: ", ") + (fieldNames.count > 12 ? ", …" : "")
            throw LineError(message: "token \"\(text(from, to))\": unknown field \"\(text(from, colon))\" (the model's fields: \(known))")
        }
        let idStart = colon + 1
        let idEnd = (idStart..<to).first { buffer[$0] == 0x3A } ?? to
        guard idEnd > idStart else { throw LineError(message: "token \"\(text(from, to))\": missing id") }
        var id: UInt64 = 0
        var digits = true
        // Up to 19 digits cannot overflow 64 bits: no check per digit (the common case).
        let unchecked = min(idEnd, idStart + 19)
        for j in idStart..<unchecked {
            let digit = buffer[j] &- 0x30
            digits = digits && digit < 10
            id = id &* 10 &+ UInt64(digit)
        }
        guard digits else { throw LineError(message: "token \"\(text(from, to))\": id is not a decimal unsigned integer") }
        for j in unchecked..<idEnd {
            let digit = buffer[j] &- 0x30
            guard digit < 10 else { throw LineError(message: "token \"\(text(from, to))\": id is not a decimal unsigned integer") }
            let (times10, o1) = id.multipliedReportingOverflow(by: 10)
            let (next, o2) = times10.addingReportingOverflow(UInt64(digit))
            guard !o1 && !o2 else { throw LineError(message: "token \"\(text(from, to))\": id does not fit in 64 bits") }
            id = next
        }
        var value: Float = 1
        if idEnd < to {
            let valueStart = idEnd + 1
            guard valueStart < to, (valueStart..<to).allSatisfy({ Self.isDecimalByte(buffer[$0]) }) else {
                throw LineError(message: "token \"\(text(from, to))\": value is not a decimal number")
            }
            // strtod needs a terminator: borrow the separator byte after the token.
            let saved = buffer[to]
            buffer[to] = 0
            var parsedEnd: UnsafeMutablePointer<CChar>?
            let parsed = (buffer + valueStart).withMemoryRebound(to: CChar.self, capacity: to - valueStart + 1) { strtod($0, &parsedEnd) }
            let consumed = parsedEnd.map { UnsafeMutableRawPointer($0) - UnsafeMutableRawPointer(buffer + valueStart) } ?? 0
            buffer[to] = saved
            value = Float(parsed)
            guard consumed == to - valueStart, value.isFinite else {
                throw LineError(message: "token \"\(text(from, to))\": value is not a finite decimal number")
            }
        }
        batch.appendEntry(field: field, id: id, value: value)
    }

    private static func isDecimalByte(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || byte == 0x2E || byte == 0x2D || byte == 0x2B || byte == 0x65 || byte == 0x45
    }
}

/// Field names → index without allocating: the bytes' FNV-1a hash in a small open-addressing
/// table (linear probing), confirmed by comparing the bytes. A Swift dictionary keyed by that
/// hash hashed it again (SipHash) on every token: 5% of `predict`'s reader thread.
struct FieldNameIndex {
    private let names: [[UInt8]]
    private let hashes: [UInt64]
    /// Name index + 1 per slot, 0 for empty; a power of two at least twice the names.
    private let slots: [Int32]

    init(_ fieldNames: [String]) {
        names = fieldNames.map { Array($0.utf8) }
        hashes = names.map { name in name.withUnsafeBufferPointer { FNV1a.hash($0) } }
        var count = 16
        while count < 2 * names.count { count *= 2 }
        var slots = [Int32](repeating: 0, count: count)
        for (index, hash) in hashes.enumerated() {
            var slot = Int(truncatingIfNeeded: hash) & (count - 1)
            while slots[slot] != 0 { slot = (slot + 1) & (count - 1) }
            slots[slot] = Int32(index + 1)
        }
        self.slots = slots
    }

    func lookup(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        let hash = FNV1a.hash(bytes), mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while slots[slot] != 0 {
            let index = Int(slots[slot]) - 1
            if hashes[index] == hash, names[index].withUnsafeBufferPointer({ name in
                name.count == bytes.count && (name.isEmpty || memcmp(name.baseAddress!, bytes.baseAddress!, name.count) == 0)
            }) {
                return index
            }
            slot = (slot + 1) & mask
        }
        return nil
    }
}
