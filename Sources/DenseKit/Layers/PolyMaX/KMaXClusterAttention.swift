import Foundation

extension KMaXTransformerLayer {
    /// The cluster self-attention of a decoder layer (spec 5.2), before `_batch_norm_retrieved_value`: from
    /// `qkv [4t, K]` (q = rows `[0, t)`, k = `[t, 2t)`, v = `[2t, 4t)`, heads head-major) returns `R [2t, K]`,
    /// `R[head*dv + d, l] = sum_m softmax_m(BN_sim(q_l . k_m)) v[head*dv + d, m]` (no scaling). Per head two GEMMs
    /// and a row softmax over the `K x K` logits.
    static func clusterAttention(_ qkv: [Float], base t: Int, heads: Int, clusters k: Int, similarity: KMaXAffine) -> [Float] {
        let dk = t / heads, dv = 2 * t / heads
        var logits = [Float](repeating: 0, count: k * k)
        return [Float](unsafeUninitializedCapacity: 2 * t * k) { r, done in
            done = 2 * t * k
            guard let rb = r.baseAddress else { return }
            qkv.withUnsafeBufferPointer { qp in
                logits.withUnsafeMutableBufferPointer { sp in
                    guard let qb = qp.baseAddress, let sb = sp.baseAddress, k > 0 else { return }
                    for head in 0..<heads {
                        // S[l, m] = sum_d q[d, l] k[d, m]
                        BLAS.sgemm(transA: true, m: k, n: k, k: dk, a: qb + head * dk * k, lda: k,
                                   b: qb + (t + head * dk) * k, ldb: k, c: sb, ldc: k)
                        let a = similarity.scale[head], c = similarity.shift[head]
                        for i in 0..<(k * k) { sb[i] = sb[i] * a + c }
                        AttentionLePE.softmaxRows(sb, rows: k, cols: k, scale: 1)
                        // R_head [dv, K] = V_head [dv, K] x W^T
                        BLAS.sgemm(transB: true, m: dv, n: k, k: k, a: qb + (2 * t + head * dv) * k, lda: k,
                                   b: sb, ldb: k, c: rb + head * dv * k, ldc: k)
                    }
                }
            }
        }
    }
}
