import Foundation

/// Independent jobs on several threads.
enum Concurrently {
    /// `job(0) … job(count − 1)`, each run once on one of up to `threadCount` threads, in
    /// order of their number.
    ///
    /// - Throws: the error of the lowest-numbered job that failed (the others still run).
    static func map<Value: Sendable, Failure: Error>(_ count: Int, threadCount: Int, _ job: (Int) throws(Failure) -> Value) throws(Failure) -> [Value] {
        let results = WorkResults<Result<Value, Failure>>(count: count)
        withoutActuallyEscaping(job) { job in
            let shared = UncheckedJob(job)
            DispatchQueue.concurrentPerform(iterations: max(1, min(threadCount, count))) { _ in
                while let next = results.claim() {
                    do throws(Failure) { results.set(next, .success(try shared.job(next))) } catch { results.set(next, .failure(error)) }
                }
            }
        }
        return try results.all.map { result throws(Failure) in try result!.get() }
    }

    /// The caller's jobs, handed to the threads: `@unchecked Sendable` because the caller
    /// gives each job state of its own, and `map` returns only once every job has.
    private struct UncheckedJob<Value, Failure: Error>: @unchecked Sendable {
        let job: (Int) throws(Failure) -> Value
        init(_ job: @escaping (Int) throws(Failure) -> Value) { self.job = job }
    }
}
