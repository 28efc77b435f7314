import CBLAS
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Errors raised while loading the BLAS library.
public enum BLASError: Error, CustomStringConvertible, Sendable {
    /// No OpenBLAS shared library could be opened; `tried` lists the names and `reason` dlerror().
    case libraryNotFound(tried: [String], reason: String)
    /// The library lacks a required symbol.
    case missingSymbol(String)

    public var description: String {
        switch self {
        case .libraryNotFound(let tried, let reason):
            return "cannot load OpenBLAS (tried \(tried.joined(separator: ", "))): \(reason); install libopenblas-dev (apt-get install -y libopenblas-dev)"
        case .missingSymbol(let s):
            return "OpenBLAS library lacks the symbol \(s)"
        }
    }
}

/// OpenBLAS, loaded at run time.
///
/// Debian 12's OpenBLAS 0.3.21 does not know recent Intel CPUs (AVX-512 with FP16)
/// and falls back to its SSE3 `Prescott` kernels, about 5x slower. The core type is
/// chosen when the library loads, so DenseKit never links it: before the first
/// call it sets `OPENBLAS_CORETYPE` from the CPU's features (unless the user set
/// it) and then opens `libopenblas.so.0` with `dlopen`. This works the same in the
/// CLI and in programs that embed the library.
public enum BLAS {
    typealias SgemmFn = @convention(c) (CBLAS_ORDER, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE,
                                        blasint, blasint, blasint, Float,
                                        UnsafePointer<Float>?, blasint,
                                        UnsafePointer<Float>?, blasint, Float,
                                        UnsafeMutablePointer<Float>?, blasint) -> Void
    typealias SetThreadsFn = @convention(c) (Int32) -> Void
    typealias GetIntFn = @convention(c) () -> Int32
    typealias GetStringFn = @convention(c) () -> UnsafeMutablePointer<CChar>?

    struct Library: @unchecked Sendable {
        let sgemm: SgemmFn
        let setThreads: SetThreadsFn?
        let getThreads: GetIntFn?
        let getConfig: GetStringFn?
        let getCoreName: GetStringFn?
        let chosenCore: String?
        let path: String
    }

    private static let loaded: Result<Library, BLASError> = load()
    /// Serialises calls into OpenBLAS: it is never entered from several of our threads at once.
    private static let lock = NSLock()

    /// Loads the library if needed; throws if it cannot be found.
    public static func ensureLoaded() throws {
        _ = try loaded.get()
    }

    static func library() -> Library? {
        if case .success(let lib) = loaded { return lib }
        return nil
    }

    /// The core type DenseKit picks for this CPU, or nil to let OpenBLAS decide.
    /// Reads `/proc/cpuinfo` flags: `avx512f`+`avx512bw`+`avx512vl` -> SkylakeX, `avx2`+`fma` -> Haswell.
    static func preferredCoreType() -> String? {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        guard let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
        let flags = Set(line.split(separator: " ").map(String.init))
        if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq"]) { return "SkylakeX" }
        if flags.isSuperset(of: ["avx2", "fma"]) { return "Haswell" }
        return nil
    }

    private static func load() -> Result<Library, BLASError> {
        var chosen: String? = nil
        if getenv("OPENBLAS_CORETYPE") == nil, let core = preferredCoreType() {
            setenv("OPENBLAS_CORETYPE", core, 0)
            chosen = core
        }
        if ownThreading {
            // DenseKit splits each large GEMM over its own threads and OpenBLAS runs single-threaded in the
            // caller: OpenBLAS's worker threads, which spin (sched_yield) between calls and competed with
            // DenseKit's threads in every non-GEMM kernel, are never started.
            setenv("OPENBLAS_NUM_THREADS", "1", 1)
        } else if getenv("OPENBLAS_NUM_THREADS") == nil && getenv("OMP_NUM_THREADS") == nil {
            setenv("OPENBLAS_NUM_THREADS", String(Threading.defaultThreadCount()), 0)
        }
        let names = ["libopenblas.so.0", "libopenblas.so", "libopenblas.dylib"]
        var handle: UnsafeMutableRawPointer? = nil
        var used = ""
        var reason = ""
        for n in names {
            if let h = dlopen(n, RTLD_NOW | RTLD_GLOBAL) { handle = h; used = n; break }
            if let e = dlerror() { reason = String(cString: e) }
        }
        guard let h = handle else { return .failure(.libraryNotFound(tried: names, reason: reason)) }
        guard let s = dlsym(h, "cblas_sgemm") else { return .failure(.missingSymbol("cblas_sgemm")) }
        func opt<T>(_ name: String, _: T.Type) -> T? {
            guard let p = dlsym(h, name) else { return nil }
            return unsafeBitCast(p, to: T.self)
        }
        let lib = Library(sgemm: unsafeBitCast(s, to: SgemmFn.self),
                          setThreads: opt("openblas_set_num_threads", SetThreadsFn.self),
                          getThreads: opt("openblas_get_num_threads", GetIntFn.self),
                          getConfig: opt("openblas_get_config", GetStringFn.self),
                          getCoreName: opt("openblas_get_corename", GetStringFn.self),
                          chosenCore: chosen, path: used)
        return .success(lib)
    }

    /// Who parallelises a GEMM: DenseKit (default: the product is split into `Threading.threads` slabs of C, each
    /// a single-threaded OpenBLAS call on one of DenseKit's threads) or OpenBLAS's own thread pool
    /// (`DENSEKIT_BLAS_THREADS=openblas`). Fixed when the library loads.
    static let ownThreading: Bool = getenvString("DENSEKIT_BLAS_THREADS") != "openblas"

    /// Smallest product (2 m n k FLOPs) that is split over threads.
    static let splitFlops = 1 << 21

    /// Sets OpenBLAS's thread count (only when OpenBLAS does the threading).
    static func setThreads(_ n: Int) {
        guard !ownThreading, case .success(let lib) = loaded else { return }
        lib.setThreads?(Int32(clamping: n))
    }

    /// One line describing the BLAS in use:
    /// `blas: OpenBLAS <version> core <name> threads <n>` (plus who splits the GEMMs).
    public static func summary() -> String {
        switch loaded {
        case .failure(let e): return "blas: unavailable (\(e))"
        case .success(let lib):
            var version = "unknown"
            if let c = lib.getConfig?() {
                let cfg = String(cString: c)
                // "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64"
                let parts = cfg.split(separator: " ")
                if parts.count > 1 { version = String(parts[1]) }
            }
            let core = lib.getCoreName.flatMap { $0() }.map { String(cString: $0) } ?? "unknown"
            if ownThreading {
                return "blas: OpenBLAS \(version) core \(core) threads \(Threading.threads) (GEMMs split by DenseKit, OpenBLAS single-threaded)"
            }
            let threads = lib.getThreads?() ?? 1
            return "blas: OpenBLAS \(version) core \(core) threads \(threads)"
        }
    }

    /// Row-major single-precision GEMM: `C = alpha * op(A) * op(B) + beta * C`.
    ///
    /// - Parameters:
    ///   - transA, transB: whether A (M x K, or K x M when transposed) and B are transposed.
    ///   - m, n, k: sizes of the product (C is m x n).
    ///   - a, lda, b, ldb, c, ldc: row-major matrices and their leading dimensions.
    /// With DenseKit's threading (the default) OpenBLAS is single-threaded and large products are split into
    /// slabs run on DenseKit's threads (concurrent single-threaded calls); with `DENSEKIT_BLAS_THREADS=openblas`
    /// calls are serialised and OpenBLAS threads them itself.
    @inline(__always)
    public static func sgemm(transA: Bool = false, transB: Bool = false,
                             m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0,
                             c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        guard let lib = library() else {
            // No OpenBLAS on this system: a plain reference GEMM keeps results correct
            // (slowly); the CLI reports the missing library before running anything.
            referenceSgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                           a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        let ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans
        if ownThreading {
            let parts = Threading.threads
            if parts > 1 && 2 * m * n * k >= splitFlops && max(m, n) >= 32 * parts {
                // Slabs of C: rows when C is at least as tall as wide, else columns (multiples of 16). Each slab
                // is a whole GEMM over the full K, so every element sums in the same order as one call would.
                let alongM = m >= n
                let extent = alongM ? m : n
                let step = ((extent + parts - 1) / parts + 15) / 16 * 16
                let count = (extent + step - 1) / step
                Threading.parallelFor(count) { p in
                    let lo = p * step, len = min(step, extent - lo)
                    if len <= 0 { return }
                    if alongM {
                        lib.sgemm(CblasRowMajor, ta, tb, blasint(len), blasint(n), blasint(k), alpha,
                                  transA ? a + lo : a + lo * lda, blasint(lda), b, blasint(ldb), beta,
                                  c + lo * ldc, blasint(ldc))
                    } else {
                        lib.sgemm(CblasRowMajor, ta, tb, blasint(m), blasint(len), blasint(k), alpha,
                                  a, blasint(lda), transB ? b + lo * ldb : b + lo, blasint(ldb), beta,
                                  c + lo, blasint(ldc))
                    }
                }
                return
            }
            lib.sgemm(CblasRowMajor, ta, tb, blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
                      beta, c, blasint(ldc))
            return
        }
        lock.lock()
        defer { lock.unlock() }
        lib.sgemm(CblasRowMajor, ta, tb, blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
                  beta, c, blasint(ldc))
    }

    /// Row-major reference GEMM with the same contract as `sgemm`, used only when
    /// OpenBLAS cannot be loaded.
    static func referenceSgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                               a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                               beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        var row = [Float](repeating: 0, count: n)
        for i in 0..<m {
            for j in 0..<n { row[j] = 0 }
            for p in 0..<k {
                let av = transA ? a[p * lda + i] : a[i * lda + p]
                if av == 0 { continue }
                if transB {
                    for j in 0..<n { row[j] += av * b[j * ldb + p] }
                } else {
                    let bp = b + p * ldb
                    for j in 0..<n { row[j] += av * bp[j] }
                }
            }
            let ci = c + i * ldc
            for j in 0..<n { ci[j] = alpha * row[j] + (beta == 0 ? 0 : beta * ci[j]) }
        }
    }
}
