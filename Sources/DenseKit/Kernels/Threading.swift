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
