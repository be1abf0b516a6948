import Foundation
import Synchronization
import Testing
@testable import MTLModel

@Suite("Work on other threads")
struct ConcurrencyTests {
    /// A log several threads append to.
    final class Log: Sendable {
        let entries = Mutex<[Int]>([])
        func append(_ value: Int) { entries.withLock { $0.append(value) } }
        var all: [Int] { entries.withLock { $0 } }
    }

    @Test("A serial worker runs its pieces in order; its first error stops it, and the next submit and finish throw it")
    func serialWorker() throws {
        let log = Log()
        let worker = SerialWorker(depth: 2)
        for i in 0..<100 { try worker.submit { log.append(i) } }
        try worker.finish()
        #expect(log.all == Array(0..<100))

        let failing = SerialWorker(depth: 1)
        defer { failing.cancel() }
        try failing.submit { log.append(100) }
        try failing.submit { () throws(MTLModelError) in throw MTLModelError(.io, "piece 2 failed") }
        var thrownBySubmit: MTLModelError?
        for i in 0..<1000 where thrownBySubmit == nil {
            do throws(MTLModelError) { try failing.submit { log.append(200 + i) } } catch { thrownBySubmit = error }
        }
        #expect(thrownBySubmit?.message == "piece 2 failed")
        #expect(throws: MTLModelError.self) { try failing.finish() }
        #expect(log.all.count < 100 + 1 + 1000 && log.all[100] == 100)
    }

    @Test("Concurrently.map returns every job's value in order, or the lowest-numbered job's error")
    func concurrentMap() throws {
        for threads in [1, 2, 5] {
            #expect(try Concurrently.map(37, threadCount: threads) { $0 * $0 } == (0..<37).map { $0 * $0 })
            let ran = Log()
            #expect {
                _ = try Concurrently.map(20, threadCount: threads) { (job: Int) throws(MTLModelError) -> Int in
                    ran.append(job)
                    if job == 7 || job == 13 { throw MTLModelError(.io, "job \(job)") }
                    return job
                }
            } throws: { ($0 as? MTLModelError)?.message == "job 7" }
            #expect(ran.all.sorted() == Array(0..<20))
        }
        #expect(try Concurrently.map(0, threadCount: 2) { $0 }.isEmpty)
    }
}
