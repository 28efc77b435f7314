import Foundation
import CKernels

/// One attention head, `out = softmax(q k^T * scale + mask) v`, on strided row-major views:
/// the building block of `Attention.scaledDotProductAttention` and `MultiHeadAttention`.
///
/// Scores are computed for blocks of query rows (so the score buffer stays below
/// `scoreBound` floats), with two `BLAS.sgemm` calls per block and a max-subtracted softmax in
/// between, split over rows with a fixed partition.
enum AttentionHead {
    /// Largest score block, in floats (4M floats = 16 MB).
    nonisolated(unsafe) static var scoreBound: Int = 4 << 20

    /// Query rows per score block for `keys` keys.
    static func blockRows(queries: Int, keys: Int) -> Int {
        max(1, min(queries, scoreBound / max(1, keys)))
    }

    /// Computes one head.
    /// - Parameters:
    ///   - q: `[L, E]`, row stride `ldq`; `k`: `[S, E]`, row stride `ldk`; `v`: `[S, Ev]`, row stride `ldv`.
    ///   - out: `[L, Ev]`, row stride `ldo`.
    ///   - mask: additive float mask `[L, S]` with row stride `ldm` (0 to broadcast one row) and
    ///     column stride `mcs` (0 to broadcast one column), or nil.
    ///   - causal: masks keys `j > i` (top-left aligned, `tril(ones(L, S))`).
    ///   - scores: scratch of `blockRows(queries: L, keys: S) * S` floats.
    /// Rows whose every key is masked (-inf) get zeros.
    static func compute(q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int,
                        v: UnsafePointer<Float>, ldv: Int, out: UnsafeMutablePointer<Float>, ldo: Int,
                        L: Int, S: Int, E: Int, Ev: Int, scale: Float,
                        mask: UnsafePointer<Float>?, ldm: Int, mcs: Int, causal: Bool,
                        scores: UnsafeMutablePointer<Float>) {
        if L <= 0 || Ev <= 0 { return }
        if S <= 0 {
            for i in 0..<L { (out + i * ldo).update(repeating: 0, count: Ev) }
            return
        }
        let block = blockRows(queries: L, keys: S)
        var l0 = 0
        while l0 < L {
            let lc = min(block, L - l0)
            if E > 0 {
                BLAS.sgemm(transB: true, m: lc, n: S, k: E, alpha: scale, a: q + l0 * ldq, lda: ldq,
                           b: k, ldb: ldk, c: scores, ldc: S)
            } else {
                scores.update(repeating: 0, count: lc * S)
            }
            let first = l0
            // Unmasked rows: the AVX-512 row softmax (CKernels) when the CPU has it.
            let vector = mask == nil && !causal && KernelDispatch.avx512
            Threading.parallelFor(lc, grain: max(1, 4_096 / S)) { r in
                if vector && dk_softmax_rows(scores + r * S, 1, S, 1) != 0 { return }
                let i = first + r
                softmaxRow(scores + r * S, count: S, mask: mask.map { $0 + i * ldm }, maskStride: mcs,
                           validCount: causal ? min(S, i + 1) : S)
            }
            BLAS.sgemm(m: lc, n: Ev, k: S, a: scores, lda: S, b: v, ldb: ldv, c: out + l0 * ldo, ldc: ldo)
            l0 += lc
        }
    }

    /// In place: `row = softmax(row + mask)` over the first `validCount` entries, zeros after
    /// them (causal masking). Max-subtracted; an all `-inf` row becomes zeros.
    @inline(__always)
    static func softmaxRow(_ row: UnsafeMutablePointer<Float>, count: Int, mask: UnsafePointer<Float>?, maskStride: Int,
                           validCount: Int) {
        let n = max(0, min(validCount, count))
        if let m = mask {
            for j in 0..<n { row[j] += m[j * maskStride] }
        }
        var mx = -Float.infinity
        for j in 0..<n { mx = max(mx, row[j]) }
        if n < count { (row + n).update(repeating: 0, count: count - n) }
        guard mx > -Float.infinity else {
            row.update(repeating: 0, count: n)
            return
        }
        var sum: Float = 0
        for j in 0..<n {
            let e = expf(row[j] - mx)
            row[j] = e
            sum += e
        }
        let inv = 1 / sum
        for j in 0..<n { row[j] *= inv }
    }
}
