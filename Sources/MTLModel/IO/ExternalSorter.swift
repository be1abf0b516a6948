import CKernels
import Foundation
import Synchronization

/// Values sorted in bounded memory, for metrics that need a whole dataset in order (the exact
/// AUC of a test set larger than memory): appended into a buffer of at most `memoryBudget`
/// bytes; a full buffer is sorted and written to a `TemporaryFile` as a run; reading merges the
/// runs, each through its share of the budget. Nothing is written while everything fits.
/// Readable any number of times (`forEachSorted`), not appendable once read.
final class ExternalSorter<Element: BitwiseCopyable & Comparable> {
    private let name: String, purpose: String
    /// Values a run holds: the budget (half of it for a radix sort) over the element's size.
    private let runCapacity: Int
    // Unchecked: an exclusivity check per value appended or read was a fifth of a merge's time.
    @exclusivity(unchecked) private var buffer: RunBuffer<Element>?
    private var file: TemporaryFile?
    /// Each run's values, as element positions in `file`.
    private var runs: [Range<Int>] = []
    private var readOnce = false
    @exclusivity(unchecked) private(set) var count = 0

    /// `name` and `purpose` name the temporary file and say in errors what it holds.
    init(name: String, for purpose: String, memoryBudget: Int) {
        (self.name, self.purpose) = (name, purpose)
        // A radix sort takes a scratch copy of the run: half the budget each.
        let share = Element.self is any RadixSortable.Type ? memoryBudget / 2 : memoryBudget
        runCapacity = max(4096, share / MemoryLayout<Element>.stride)
    }

    /// How many runs were written to the temporary file (0: everything fits in memory).
    var runCount: Int { runs.count }

    func append(_ value: Element) throws(MTLModelError) {
        precondition(!readOnce, "an ExternalSorter is not appended to once read")
        if buffer == nil { buffer = try RunBuffer(capacity: runCapacity, for: purpose) }
        if buffer!.count == runCapacity { try spill() }
        buffer!.append(value)
        count += 1
    }

    /// Calls `body` with every value in ascending order.
    func forEachSorted(_ body: (Element) -> Void) throws(MTLModelError) {
        let reader = try sorted()
        while let value = try reader.next() { body(value) }
    }

    /// A reader of every value in ascending order (pulled, so that several sorted streams can
    /// be read in step).
    func sorted() throws(MTLModelError) -> SortedReader {
        if runs.isEmpty {
            if !readOnce { sortBuffer() }
            readOnce = true
            return SortedReader(buffer)
        }
        if let buffer, buffer.count > 0 { try spill() }
        buffer = nil
        readOnce = true
        return try SortedReader(merging: runs, of: file!, share: max(512, runCapacity / runs.count))
    }

    /// Writes the values still in memory to the temporary file and frees their buffer: a sorter
    /// kept for later reads (`ReferenceScores`) holds no memory meanwhile.
    func moveToDisk() throws(MTLModelError) {
        guard let buffer, buffer.count > 0 else { return }
        // Read in memory, it is sorted already; else it is a run like any other.
        if !readOnce { sortBuffer() }
        try writeRun(buffer)
        self.buffer = nil
    }

    /// By the key's bytes where the element says which they are (`RadixSortable`: several
    /// times faster than comparing), else by comparisons.
    private func sortBuffer() {
        guard let buffer else { return }
        if let radix = Element.self as? any RadixSortable.Type {
            let keyBytes = radix.radixKeyBytes, count = buffer.count
            let sorted = RunScratch.with(byteCount: count * MemoryLayout<Element>.stride) {
                mtlm_radix_sort(buffer.values.baseAddress, count, MemoryLayout<Element>.stride, keyBytes, keyBytes.count, $0) == 0
            }
            if sorted { return }
        }
        var values = buffer.values
        values.sort()
    }

    private func spill() throws(MTLModelError) {
        sortBuffer()
        try writeRun(buffer!)
        buffer!.removeAll()
    }

    /// Appends the sorted values of `run` to the temporary file as a run.
    private func writeRun(_ run: RunBuffer<Element>) throws(MTLModelError) {
        if file == nil { file = try TemporaryFile(name, for: purpose) }
        let start = runs.last?.upperBound ?? 0
        try file!.write(UnsafeRawBufferPointer(run.values), at: start * MemoryLayout<Element>.stride)
        runs.append(start..<(start + run.count))
    }

    /// The values in memory in order, or a k-way merge of the runs through a binary heap of
    /// their heads.
    final class SortedReader {
        private let values: RunBuffer<Element>?
        @exclusivity(unchecked) private var position = 0
        private let file: TemporaryFile?
        /// The runs' readers, in memory of their own: a class per run in an array cost a retain
        /// and a release per value merged.
        private let readers: UnsafeMutableBufferPointer<RunReader>
        @exclusivity(unchecked) private var heap: [(value: Element, run: Int)] = []

        fileprivate init(_ values: RunBuffer<Element>?) {
            (self.values, file, readers) = (values, nil, .allocate(capacity: 0))
        }

        fileprivate init(merging runs: [Range<Int>], of file: TemporaryFile, share: Int) throws(MTLModelError) {
            (values, self.file) = (nil, file)
            readers = .allocate(capacity: runs.count)
            _ = readers.initialize(from: runs.map { RunReader(run: $0, capacity: share) })
            heap.reserveCapacity(readers.count)
            for r in readers.indices {
                if let value = try readers[r].next(file) { heap.append((value, r)) }
            }
            for i in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
        }

        deinit {
            for r in readers.indices { readers[r].deallocate() }
            readers.deallocate()
        }

        func next() throws(MTLModelError) -> Element? {
            guard let file else {
                guard let values, position < values.count else { return nil }
                defer { position += 1 }
                return values.values[position]
            }
            guard let top = heap.first else { return nil }
            // The smallest head out, its run's next value in (or the last head in its place).
            if let value = try readers[top.run].next(file) {
                heap[0] = (value, top.run)
            } else {
                heap[0] = heap[heap.count - 1]
                heap.removeLast()
            }
            if !heap.isEmpty { siftDown(0) }
            return top.value
        }

        private func siftDown(_ start: Int) {
            var i = start
            while true {
                let left = 2 * i + 1, right = left + 1
                var smallest = i
                if left < heap.count && heap[left].value < heap[smallest].value { smallest = left }
                if right < heap.count && heap[right].value < heap[smallest].value { smallest = right }
                if smallest == i { return }
                heap.swapAt(i, smallest)
                i = smallest
            }
        }
    }

    /// One run read back a slice at a time (its slice freed by `deallocate`).
    fileprivate struct RunReader {
        private var remaining: Range<Int>
        private let slice: UnsafeMutableBufferPointer<Element>
        private var position = 0
        private var filled = 0

        init(run: Range<Int>, capacity: Int) {
            remaining = run
            slice = .allocate(capacity: min(capacity, max(run.count, 1)))
        }

        func deallocate() { slice.deallocate() }

        mutating func next(_ file: TemporaryFile) throws(MTLModelError) -> Element? {
            if position == filled {
                guard !remaining.isEmpty else { return nil }
                filled = min(slice.count, remaining.count)
                let bytes = UnsafeMutableRawBufferPointer(start: slice.baseAddress, count: filled * MemoryLayout<Element>.stride)
                try file.read(into: bytes, at: remaining.lowerBound * MemoryLayout<Element>.stride)
                remaining = (remaining.lowerBound + filled)..<remaining.upperBound
                position = 0
            }
            defer { position += 1 }
            return slice[position]
        }
    }
}

/// A run's values in anonymous memory mapped at the run's full size: pages become resident as
/// values are appended, and all are returned to the system when it is released, on whichever
/// thread. (Grown as an array on a thread of their own, the evaluators' buffers stayed in that
/// thread's malloc arena once freed: 80 MiB more for `quantize --eval`.)
final class RunBuffer<Element: BitwiseCopyable> {
    private let base: UnsafeMutablePointer<Element>
    private let capacity: Int
    @exclusivity(unchecked) private(set) var count = 0

    init(capacity: Int, for purpose: String) throws(MTLModelError) {
        let byteCount = max(capacity, 1) * MemoryLayout<Element>.stride
        guard let pointer = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), pointer != MAP_FAILED else {
            throw MTLModelError(.io, "cannot map \(byteCount) bytes of memory for \(purpose): \(String(cString: strerror(errno)))")
        }
        base = pointer.bindMemory(to: Element.self, capacity: max(capacity, 1))
        self.capacity = max(capacity, 1)
    }

    deinit { munmap(base, capacity * MemoryLayout<Element>.stride) }

    /// The values appended, in place.
    var values: UnsafeMutableBufferPointer<Element> { UnsafeMutableBufferPointer(start: base, count: count) }

    @inline(__always)
    func append(_ value: Element) {
        precondition(count < capacity)
        base[count] = value
        count += 1
    }

    /// Empty again; its pages stay (the next run fills them).
    func removeAll() { count = 0 }
}

/// The radix sorts' scratch copy of a run, one for the process, kept between sorts: allocated
/// for each run, its pages were faulted in and zeroed again every time (a tenth of a sort), and
/// kept by each sorter, every sorter's run would be held twice (60 MiB more for `quantize
/// --eval`). A sort that finds it taken (another thread's) allocates its own.
enum RunScratch {
    private struct Buffer: @unchecked Sendable { let bytes: UnsafeMutableRawBufferPointer }
    private static let spare = Mutex<Buffer?>(nil)

    static func with<R>(byteCount: Int, _ body: (UnsafeMutableRawPointer?) -> R) -> R {
        var taken = spare.withLock { spare -> Buffer? in
            defer { spare = nil }
            return spare
        }
        if let buffer = taken, buffer.bytes.count < byteCount {
            buffer.bytes.deallocate()
            taken = nil
        }
        let buffer = taken ?? Buffer(bytes: .allocate(byteCount: max(byteCount, 1), alignment: 16))
        defer {
            // The larger of this one and one another thread put back meanwhile is kept.
            let dropped = spare.withLock { spare -> Buffer? in
                if let kept = spare, kept.bytes.count >= buffer.bytes.count { return buffer }
                defer { spare = buffer }
                return spare
            }
            dropped?.bytes.deallocate()
        }
        return body(buffer.bytes.baseAddress)
    }
}

/// A value whose order is that of some of its bytes read as one little-endian integer: their
/// offsets, least significant first (`mtlm_radix_sort`).
protocol RadixSortable: BitwiseCopyable {
    static var radixKeyBytes: [UInt8] { get }
}

extension RadixSortable {
    /// The bytes of the field at `offset` of `size` bytes, as a key's offsets.
    static func keyBytes(at offset: Int, size: Int) -> [UInt8] { (offset..<(offset + size)).map { UInt8($0) } }
}

extension UInt32: RadixSortable {
    static let radixKeyBytes = keyBytes(at: 0, size: 4)
}

extension UInt64: RadixSortable {
    static let radixKeyBytes = keyBytes(at: 0, size: 8)
}

/// Two keys sorted as one: the first, then the second.
struct KeyPair: Comparable, BitwiseCopyable {
    var high: UInt64
    var low: UInt64

    static func < (a: KeyPair, b: KeyPair) -> Bool { a.high != b.high ? a.high < b.high : a.low < b.low }
}

extension KeyPair: RadixSortable {
    static let radixKeyBytes = keyBytes(at: MemoryLayout<KeyPair>.offset(of: \.low)!, size: 8) + keyBytes(at: MemoryLayout<KeyPair>.offset(of: \.high)!, size: 8)
}
