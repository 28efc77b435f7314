import Foundation

/// Attention kernels.
public enum Attention {
    /// `softmax(query @ key^T * scale + attnMask) @ value`, matching
    /// `torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask, dropout_p=0, is_causal, scale)`.
    ///
    /// - Parameters:
    ///   - query: `[..., L, E]`.
    ///   - key: `[..., S, E]`.
    ///   - value: `[..., S, Ev]`. The batch dimensions (`...`) of the three broadcast.
    ///   - attnMask: optional float mask ADDED to the scores, broadcastable to `[..., L, S]`
    ///     (typically `[L, S]`); `-inf` entries exclude keys. Boolean masks are not supported.
    ///   - isCausal: masks keys `j > i` (top-left aligned: `tril(ones(L, S))`); not combinable with `attnMask`.
    ///   - scale: multiplier of `q k^T`; nil means `1/sqrt(E)`.
    /// - Returns: `[..., L, Ev]` (batch dimensions broadcast). A query row whose keys are all
    ///   masked gives zeros (PyTorch would give NaN).
    /// - Throws: `LinearError.shapeMismatch` for inconsistent shapes or a mask combined with `isCausal`.
    public static func scaledDotProductAttention(query: Tensor, key: Tensor, value: Tensor, attnMask: Tensor? = nil,
                                                 isCausal: Bool = false, scale: Float? = nil) throws -> Tensor {
        guard query.rank >= 2, key.rank >= 2, value.rank >= 2 else {
            throw LinearError.shapeMismatch("attention inputs must have rank >= 2: query \(query.shape), key \(key.shape), value \(value.shape)")
        }
        let L = query.shape[query.rank - 2], E = query.shape[query.rank - 1]
        let S = key.shape[key.rank - 2]
        guard key.shape[key.rank - 1] == E else {
            throw LinearError.shapeMismatch("query \(query.shape) and key \(key.shape) have different feature sizes")
        }
        guard value.shape[value.rank - 2] == S else {
            throw LinearError.shapeMismatch("key \(key.shape) and value \(value.shape) have different sequence lengths")
        }
        let Ev = value.shape[value.rank - 1]
        if isCausal && attnMask != nil {
            throw LinearError.shapeMismatch("attn_mask and is_causal cannot be combined")
        }
        let qB = Array(query.shape.dropLast(2)), kB = Array(key.shape.dropLast(2)), vB = Array(value.shape.dropLast(2))
        var batch = try MatMul.broadcastShapes(try MatMul.broadcastShapes(qB, kB), vB)
        var maskStrides: [Int] = []
        var ldm = 0, mcs = 0
        if let m = attnMask {
            guard m.rank >= 1 else { throw LinearError.shapeMismatch("attn_mask must have rank >= 1, got \(m.shape)") }
            let ms = m.rank == 1 ? [1, m.shape[0]] : m.shape
            let mL = ms[ms.count - 2], mS = ms[ms.count - 1]
            guard (mL == L || mL == 1) && (mS == S || mS == 1) else {
                throw LinearError.shapeMismatch("attn_mask \(m.shape) does not broadcast to [\(L), \(S)]")
            }
            let mB = Array(ms.dropLast(2))
            batch = try MatMul.broadcastShapes(batch, mB)
            maskStrides = MatMul.broadcastStrides(mB, to: batch, matrix: mL * mS)
            ldm = mL == 1 ? 0 : mS
            mcs = mS == 1 ? 0 : 1
        }
        let qS = MatMul.broadcastStrides(qB, to: batch, matrix: L * E)
        let kS = MatMul.broadcastStrides(kB, to: batch, matrix: S * E)
        let vS = MatMul.broadcastStrides(vB, to: batch, matrix: S * Ev)
        let count = batch.reduce(1, *)
        var y = Tensor(zeros: batch + [L, Ev])
        if count == 0 || L == 0 || Ev == 0 { return y }
        let sc = scale ?? (E > 0 ? 1 / Float(E).squareRoot() : 1)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, AttentionHead.blockRows(queries: L, keys: S) * S))
        defer { scratch.deallocate() }
        let maskTensor = attnMask ?? Tensor(zeros: [0])
        query.withUnsafeBufferPointer { qb in
        key.withUnsafeBufferPointer { kb in
        value.withUnsafeBufferPointer { vb in
        maskTensor.withUnsafeBufferPointer { mb in
        y.withUnsafeMutableBufferPointer { yb in
            guard let qp = qb.baseAddress, let kp = kb.baseAddress, let vp = vb.baseAddress, let yp = yb.baseAddress else { return }
            var index = [Int](repeating: 0, count: batch.count)
            for i in 0..<count {
                var qo = 0, ko = 0, vo = 0, mo = 0
                for d in 0..<batch.count {
                    qo += index[d] * qS[d]; ko += index[d] * kS[d]; vo += index[d] * vS[d]
                    if !maskStrides.isEmpty { mo += index[d] * maskStrides[d] }
                }
                let mp: UnsafePointer<Float>? = attnMask == nil ? nil : mb.baseAddress.map { $0 + mo }
                AttentionHead.compute(q: qp + qo, ldq: E, k: kp + ko, ldk: E, v: vp + vo, ldv: Ev,
                                      out: yp + i * L * Ev, ldo: Ev, L: L, S: S, E: E, Ev: Ev, scale: sc,
                                      mask: mp, ldm: ldm, mcs: mcs, causal: isCausal, scores: scratch)
                var d = batch.count - 1
                while d >= 0 { index[d] += 1; if index[d] < batch[d] { break }; index[d] = 0; d -= 1 }
            }
        }}}}}
        return y
    }
}
