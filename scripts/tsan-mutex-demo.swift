// Why scripts/tsan-suppressions.txt names the types that hold a Synchronization.Mutex: two
// threads count to 2,000,000 under one, and the count is right, yet ThreadSanitizer reports
// races on Linux (the contended lock is taken by FUTEX_LOCK_PI in the uninstrumented standard
// library). When a toolchain prints no WARNING here, the Mutex entries can go.
//   swiftc -O -sanitize=thread scripts/tsan-mutex-demo.swift -o /tmp/tsan-mutex-demo && /tmp/tsan-mutex-demo
import Dispatch
import Synchronization

final class Counter: Sendable {
    let state = Mutex<(slots: [Int?], next: Int)>((Array(repeating: nil, count: 2_000_000), 0))
}

let counter = Counter()
DispatchQueue.concurrentPerform(iterations: 2) { _ in
    while let i = counter.state.withLock({ s -> Int? in
        guard s.next < s.slots.count else { return nil }
        s.next += 1
        return s.next - 1
    }) {
        counter.state.withLock { $0.slots[i] = i }
    }
}
print("counted", counter.state.withLock { $0.slots.compactMap { $0 }.count }, "of 2000000")
