import Foundation

/// Work items done by several threads (`DispatchQueue.concurrentPerform` workers claiming
/// items one at a time) and their results, one slot each, read in order when all are done.
final class WorkResults<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Value?]
    private var next = 0

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    /// The next item to work on, or nil when all are taken.
    func claim() -> Int? {
        lock.withLock {
            guard next < slots.count else { return nil }
            next += 1
            return next - 1
        }
    }

    func set(_ index: Int, _ value: Value) {
        lock.withLock { slots[index] = value }
    }

    var all: [Value?] { lock.withLock { slots } }
}
