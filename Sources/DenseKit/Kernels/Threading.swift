import Dispatch

/// How many threads DenseKit's own kernels (and OpenBLAS) may use.
///
/// Our kernels split work over a partition that depends only on the problem size,
/// never on the thread count, and each part is computed by one thread in a fixed
/// order: results are bit-identical for 1 and N threads.
public enum Threading {
    nonisolated(unsafe) private static var _threads: Int = defaultThreadCount()

    /// Number of threads for DenseKit kernels and OpenBLAS (clamped to 1...1024). Setting it also
    /// sets OpenBLAS's thread count. Default: the `DENSEKIT_THREADS` environment
    /// variable, else the number of active processors.
    public static var threads: Int {
        get { _threads }
        set {
            _threads = min(max(1, newValue), 1024)
            BLAS.setThreads(_threads)
        }
    }

    static func defaultThreadCount() -> Int {
        if let s = getenvString("DENSEKIT_THREADS"), let n = Int(s), n > 0 { return min(n, 1024) }
        return max(1, ProcessInfo_activeProcessorCount())
    }

    /// Runs `body(i)` for every `i` in `0..<count`, spreading contiguous chunks over
    /// the threads. The chunks are fixed by `count` and `grain` alone, so the work
    /// each index does (and its floating-point order) does not depend on `threads`.
    /// - Parameters:
    ///   - count: number of independent work items.
    ///   - grain: minimum items per chunk (use larger values for tiny items).
    @inlinable
    public static func parallelFor(_ count: Int, grain: Int = 1, _ body: (Int) -> Void) {
        if count <= 0 { return }
        let t = threads
        if t <= 1 || count <= grain {
            for i in 0..<count { body(i) }
            return
        }
        let chunks = min(t, (count + grain - 1) / grain)
        let per = (count + chunks - 1) / chunks
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let lo = c * per
                let hi = min(count, lo + per)
                if lo < hi { for i in lo..<hi { body(i) } }
            }
        }
    }

    /// Work items that a partition fixed by the sizes aims for at least (`panelsPerRun`), so that threads running at
    /// unequal speeds still finish together under `dynamicFor`.
    static let minItems = 16

    /// Panels per run when each of `items` work items (blocks of rows or pixels) is also cut into runs of whole
    /// weight panels, so that there are about `minItems` items: all `panels` (one run) when `items` reaches
    /// `minItems` already. Depends on the sizes only, never on `threads`, so the work of each output is the same
    /// for any thread count.
    static func panelsPerRun(panels: Int, items: Int) -> Int {
        let runs = min(max(1, panels), max(1, (minItems + max(1, items) - 1) / max(1, items)))
        return (max(1, panels) + runs - 1) / runs
    }

    /// Runs `body(i)` for every `i` in `0..<count` on up to `threads` threads, each taking the next index as soon as
    /// it is free (an uneven share when one core runs slower than the other, as the cores of a shared virtual
    /// machine often do). For items of real size (a block of a GEMM): the hand-out costs a lock per item. Each
    /// index is computed by one thread, so results do not depend on who runs it.
    public static func dynamicFor(_ count: Int, _ body: (Int) -> Void) {
        if count <= 0 { return }
        let t = min(threads, count)
        if t <= 1 {
            for i in 0..<count { body(i) }
            return
        }
        let next = ItemCounter()
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: t) { _ in
                while let i = next.take(below: count) { body(i) }
            }
        }
    }
}

/// The next index of a `Threading.dynamicFor` loop, shared by its threads.
final class ItemCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    /// The next index, or nil once `count` have been handed out.
    func take(below count: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        if value >= count { return nil }
        value += 1
        return value - 1
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

@usableFromInline func getenvString(_ name: String) -> String? {
    guard let p = getenv(name) else { return nil }
    return String(cString: p)
}

func ProcessInfo_activeProcessorCount() -> Int { ProcessInfo.processInfo.activeProcessorCount }
