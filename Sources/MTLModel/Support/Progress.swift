import Synchronization

/// How far a long command has come, for a progress bar: the library's loops count what they
/// have read (`advance`), the command line draws it (`snapshot`). One command runs per
/// process, so one counter serves; counting costs one relaxed atomic add per window of rows or
/// chunk, never per element.
public enum Progress {
    private static let done = Atomic<UInt64>(0)
    private static let total = Atomic<UInt64>(0)

    /// Starts counting towards `total` units (0: unknown).
    public static func begin(total: UInt64) {
        done.store(0, ordering: .relaxed)
        self.total.store(total, ordering: .relaxed)
    }

    /// Counts `count` more units done.
    @inline(__always)
    public static func advance(_ count: Int) {
        done.add(UInt64(max(0, count)), ordering: .relaxed)
    }

    /// Units done so far and the total (0: unknown).
    public static var snapshot: (done: UInt64, total: UInt64) {
        (done.load(ordering: .relaxed), total.load(ordering: .relaxed))
    }

    /// The stored bytes of every file of `models`: what a pass over them reads.
    public static func byteCount(of models: [Model]) -> UInt64 {
        models.flatMap(\.files).reduce(0) { $0 + $1.fileByteCount }
    }
}
