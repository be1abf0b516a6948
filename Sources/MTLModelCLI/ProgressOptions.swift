import ArgumentParser
import Foundation
import MTLModel

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `--quiet`, and the progress bar of a command that can take a while: bytes done of the
/// total, the rate and the time left, redrawn on stderr five times a second once the command
/// has run for half a second — only when stderr is a terminal, and never with `--quiet`.
struct ProgressOptions: ParsableArguments {
    @Flag(help: "No progress bar on stderr (none is drawn when stderr is not a terminal either).")
    var quiet = false

    /// Runs `body` with a progress bar towards `total` bytes (0: unknown, the bar shows the
    /// bytes and the rate only).
    func run<R>(total: UInt64, _ body: () throws -> R) rethrows -> R {
        Progress.begin(total: total)
        guard !quiet, isatty(STDERR_FILENO) != 0 else { return try body() }
        let bar = ProgressBar()
        defer { bar.stop() }
        return try body()
    }
}

/// The bar itself: a thread that draws `Progress.snapshot` until stopped, then clears its line.
private final class ProgressBar: @unchecked Sendable {
    // `@unchecked Sendable`: `stopped` is read by the drawing thread and set once by the
    // caller under `lock`; the thread is joined (`finished`) before `stop` returns.
    private let lock = NSLock()
    private var stopped = false
    private let finished = DispatchSemaphore(value: 0)

    init() {
        let started = Date()
        // The delay before the first drawing (the tests set it to 0).
        let delay = ProcessInfo.processInfo.environment["MTLM_PROGRESS_AFTER"].flatMap(Double.init) ?? 0.5
        Thread.detachNewThread { [self] in
            var drawn = false
            // Drawn before `stopped` is looked at: a command past the delay shows its bar at
            // least once, however soon it ends.
            while true {
                let elapsed = Date().timeIntervalSince(started)
                if elapsed >= delay {
                    Self.draw(Progress.snapshot, elapsed: elapsed)
                    drawn = true
                }
                if lock.withLock({ stopped }) { break }
                Thread.sleep(forTimeInterval: 0.2)
            }
            if drawn { Self.emit("\r\u{1B}[K") }
            finished.signal()
        }
    }

    func stop() {
        lock.withLock { stopped = true }
        finished.wait()
    }

    private static func draw(_ progress: (done: UInt64, total: UInt64), elapsed: Double) {
        let rate = Double(progress.done) / max(elapsed, 1e-3)
        var line = "\r"
        if progress.total > 0 {
            let fraction = min(1, Double(progress.done) / Double(progress.total))
            let filled = Int(fraction * 30)
            line += "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: 30 - filled) + "] "
            line += "\(Format.bytes(min(progress.done, progress.total))) / \(Format.bytes(progress.total)) \(Int(fraction * 100))%"
            if rate > 0 && fraction < 1 { line += ", \(Int((Double(progress.total - min(progress.done, progress.total)) / rate).rounded(.up))) s left" }
        } else {
            line += Format.bytes(progress.done)
        }
        line += ", \(Format.bytes(UInt64(rate)))/s\u{1B}[K"
        emit(line)
    }

    private static func emit(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
