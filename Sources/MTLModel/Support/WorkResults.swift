import Synchronization

/// Work items done by several threads (`DispatchQueue.concurrentPerform` workers claiming
/// items one at a time) and their results, one slot each, read in order when all are done.
final class WorkResults<Value: Sendable>: Sendable {
    private let state: Mutex<(slots: [Value?], next: Int)>

    init(count: Int) { state = Mutex((Array(repeating: nil, count: count), 0)) }

    /// The next item to work on, or nil when all are taken.
    func claim() -> Int? {
        state.withLock { state in
            guard state.next < state.slots.count else { return nil }
            state.next += 1
            return state.next - 1
        }
    }

    func set(_ index: Int, _ value: Value) {
        state.withLock { $0.slots[index] = value }
    }

    var all: [Value?] { state.withLock { $0.slots } }
}
