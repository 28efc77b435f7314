import CKernels

/// AVX-512 paths of the token clustering and reconstruction layers (spec `token-clustering.md`
/// sections 2.4 and 3), calling the C kernels of `token_cluster_avx512.c` / `token_recon_avx512.c`. Same contracts as the
/// Swift loops in `TokenClusterKernels` (which run on CPUs without AVX-512); results agree to float32
/// rounding (different summation order, FMA, a polynomial exp).
enum TokenClusterVector {
    /// The kappa iterations of the clustering (spec 2.4) on centres `[M, C]` already holding S0, in place.
    /// Per iteration: the soft assignment of every home cell's tokens to its window (`dk_token_cluster_affinity`,
    /// parallel over home cells), then every centre's weighted mean (`dk_token_cluster_update`, parallel over
    /// blocks of a cell row of centres). `x`: tokens `[H*W, C]`.
    /// - Returns: false (nothing written) when this CPU lacks AVX-512.
    static func iterate(_ x: UnsafePointer<Float>, height: Int, width: Int, channels c: Int, cellsH: Int, cellsW: Int,
                        window: Int, iters: Int, temperature t: Float, centres: UnsafeMutablePointer<Float>) -> Bool {
        guard KernelDispatch.avx512 else { return false }
        let m = cellsH * cellsW, n = height * width
        let g = TokenClusterWindows(height: height, width: width, cellsH: cellsH, cellsW: cellsW, window: window, channels: c)
        let aff = UnsafeMutablePointer<Float>.allocate(capacity: max(1, g.affinityCount))
        defer { aff.deallocate() }
        // 64-byte aligned copies of the tokens and the centres when their rows can be aligned (C a multiple of
        // 16): the centre update is load-bound, and split cache-line loads cost it about a third.
        let align = c % 16 == 0
        let xs = align && Int(bitPattern: x) % 64 != 0 ? alignedCopy(x, count: n * c) : nil
        let cs = align && Int(bitPattern: centres) % 64 != 0 ? alignedCopy(UnsafePointer(centres), count: m * c) : nil
        defer { xs?.deallocate(); cs?.deallocate() }
        let xp = xs.map { UnsafePointer($0) } ?? x
        let work = cs ?? centres
        g.tokenStart.withUnsafeBufferPointer { ts in g.tokenRows.withUnsafeBufferPointer { tr in
        g.candStart.withUnsafeBufferPointer { cst in g.candRows.withUnsafeBufferPointer { cr in
        g.affStart.withUnsafeBufferPointer { ast in
        g.pairStart.withUnsafeBufferPointer { ps in g.pairRows.withUnsafeBufferPointer { pr in g.pairAff.withUnsafeBufferPointer { pa in
            guard let trp = tr.baseAddress, let crp = cr.baseAddress, let psp = ps.baseAddress, let prp = pr.baseAddress,
                  let pap = pa.baseAddress else { return }
            // Centre updates in blocks of one cell row (at least 8 centres): neighbours share tokens (L1 reuse).
            let block = max(8, cellsW), blocks = (m + block - 1) / block
            for _ in 0..<iters {
                Threading.parallelFor(m, grain: 8) { q in
                    _ = dk_token_cluster_affinity(xp, trp + ts[q], ts[q + 1] - ts[q], UnsafePointer(work), crp + cst[q],
                                                  cst[q + 1] - cst[q], c, t, aff + ast[q])
                }
                Threading.parallelFor(blocks) { p in
                    _ = dk_token_cluster_update(xp, psp, prp, UnsafePointer(aff), pap, p * block, min(m, (p + 1) * block), c, work)
                }
            }
        } } } } } } } }
        if let cs { centres.update(from: cs, count: m * c) }
        return true
    }

    /// A copy of `count` floats at a 64-byte aligned address (release with `deallocate()`).
    static func alignedCopy(_ p: UnsafePointer<Float>, count: Int) -> UnsafeMutablePointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * MemoryLayout<Float>.stride, alignment: 64)
        let q = raw.bindMemory(to: Float.self, capacity: max(1, count))
        q.update(from: p, count: count)
        return q
    }

    /// Token reconstruction of one image (spec 3), same arguments as `TokenClusterKernels.reconstruct`,
    /// parallel over chunks of 64 tokens (each with its own scratch). With `1 <= k < M` the dot products
    /// `feat . centres^T` `[N, M]` come first from `BLAS.sgemm` and screen the centres per token.
    /// - Returns: false (nothing written) when this CPU lacks AVX-512.
    static func reconstruct(feat: UnsafePointer<Float>, tokens n: Int, centres: UnsafePointer<Float>, count m: Int,
                            channels c: Int, x: UnsafePointer<Float>, outChannels c2: Int, k: Int,
                            temperature t: Float, stabilized: Bool,
                            y: UnsafeMutablePointer<Float>, weights: UnsafeMutablePointer<Float>?) -> Bool {
        guard KernelDispatch.avx512, m >= 1, c >= 1, c2 >= 1, k != 0, k <= m else { return false }
        // With a top-k threshold, f.s_j for all pairs by one GEMM lets each token compute direct distances only
        // for the few centres that can reach its k-th weight (the C kernel's screen; same result).
        let screen = k >= 1 && k < m
        let dots: UnsafeMutablePointer<Float>? = screen ? .allocate(capacity: n * m) : nil
        defer { dots?.deallocate() }
        if let dots {
            BLAS.sgemm(transA: false, transB: true, m: n, n: m, k: c, a: feat, lda: c, b: centres, ldb: c, c: dots, ldc: m)
        }
        let chunk = 64
        let scratchCount = dk_token_reconstruct_scratch(m)
        Threading.parallelFor((n + chunk - 1) / chunk) { p in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: scratchCount)
            defer { scratch.deallocate() }
            let n0 = p * chunk, n1 = min(n, n0 + chunk)
            _ = dk_token_reconstruct(feat, n0, n1, centres, m, c, x, c2, k, t, stabilized ? 1 : 0, dots.map { UnsafePointer($0) },
                                     y, weights, scratch)
        }
        return true
    }
}
