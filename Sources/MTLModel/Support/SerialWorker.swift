import Foundation

/// Runs pieces of work in order on a thread of its own, at most `depth` of them waiting: the
/// caller hands over what follows from one batch (adding its scores to evaluators) and goes on
/// to compute the next batch while it runs. The first error stops the work; `submit` and
/// `finish` throw it.
///
/// `@unchecked Sendable`: its state is only touched with `condition` locked, and a piece of
/// work is run by the worker's thread alone. The caller must not touch what the pieces use
/// (the evaluators) until `finish` has returned: `finish` orders their effects before its return.
final class SerialWorker: @unchecked Sendable {
    typealias Work = () throws(MTLModelError) -> Void

    private let condition = NSCondition()
    private var waiting: [Work] = []
    private var busy = false
    private var closed = false
    private var failure: MTLModelError?
    private let depth: Int

    init(depth: Int = 2) {
        self.depth = max(1, depth)
        Thread { [self] in run() }.start()
    }

    /// Queues `work` once fewer than `depth` pieces wait.
    ///
    /// - Throws: the error of a piece run before (the work is then not queued).
    func submit(_ work: @escaping Work) throws(MTLModelError) {
        condition.lock()
        defer { condition.unlock() }
        while waiting.count >= depth && failure == nil { condition.wait() }
        if let failure { throw failure }
        waiting.append(work)
        condition.broadcast()
    }

    /// Waits until every piece queued has run, and stops the thread.
    ///
    /// - Throws: the first error of a piece.
    func finish() throws(MTLModelError) {
        condition.lock()
        defer { condition.unlock() }
        closed = true
        condition.broadcast()
        while (!waiting.isEmpty || busy) && failure == nil { condition.wait() }
        if let failure { throw failure }
    }

    /// Drops the pieces not run yet and stops the thread after the running one (a caller
    /// leaving early: the thread holds the worker until it stops).
    func cancel() {
        condition.lock()
        closed = true
        waiting.removeAll()
        condition.broadcast()
        condition.unlock()
    }

    private func run() {
        condition.lock()
        while true {
            while waiting.isEmpty && !closed { condition.wait() }
            guard !waiting.isEmpty, failure == nil else { break }
            let work = waiting.removeFirst()
            busy = true
            condition.unlock()
            var error: MTLModelError?
            do throws(MTLModelError) { try work() } catch let thrown { error = thrown }
            condition.lock()
            busy = false
            if let error { failure = error }
            condition.broadcast()
        }
        condition.unlock()
    }
}
