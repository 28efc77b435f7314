import CKernels
import Foundation

/// Multi-head attention with `torch.nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)`
/// semantics (no masks, no dropout, `need_weights=False`).
///
/// `q = query Wq^T + bq`, `k = key Wk^T + bk`, `v = value Wv^T + bv` (rows `0..<E`, `E..<2E`,
/// `2E..<3E` of `in_proj_weight` / `in_proj_bias`); head `h` uses features `h*D ..< (h+1)*D`
/// (`D = E / H`): `o_h = softmax(q_h k_h^T / sqrt(D)) v_h`; the heads are concatenated in order
/// and `y = concat out_proj.weight^T + out_proj.bias`. Heads are read and written in place through
/// strided views (no transposes). When `query`, `key` and `value` are the same tensor the three
/// projections run as one GEMM. `callAsFunction` is reentrant.
public final class MultiHeadAttention: @unchecked Sendable {
    /// Embedding size `E`.
    public let embedDim: Int
    /// Number of heads `H`.
    public let numHeads: Int
    /// Head size `D = E / H`.
    public var headDim: Int { embedDim / numHeads }
    /// The fused `[3E, E]` projection (self-attention: one GEMM for q, k and v).
    let qkvProj: LinearOperator
    let outProj: LinearOperator
    /// The separate q, k and v projections for cross-attention, sliced from `qkvProj` on first use (a self-attention
    /// model never builds them, so it holds the in-projection once).
    private var separate: (q: LinearOperator, k: LinearOperator, v: LinearOperator)?
    private let separateLock = NSLock()

    /// Creates the layer from the module's state_dict tensors.
    /// - Parameters:
    ///   - embedDim: `E`; `numHeads`: `H`, dividing `E`.
    ///   - inProjWeight: `[3E, E]`; `inProjBias`: `[3E]` or nil.
    ///   - outProjWeight: `[E, E]` (`out_proj.weight`); `outProjBias`: `[E]` or nil.
    /// - Throws: `LinearError.shapeMismatch` for wrong shapes or `E` not divisible by `H`.
    public init(embedDim: Int, numHeads: Int, inProjWeight: Tensor, inProjBias: Tensor?,
                outProjWeight: Tensor, outProjBias: Tensor?) throws {
        guard embedDim > 0, numHeads > 0, embedDim % numHeads == 0 else {
            throw LinearError.shapeMismatch("embed_dim \(embedDim) must be a positive multiple of num_heads \(numHeads)")
        }
        let e = embedDim
        guard inProjWeight.shape == [3 * e, e] else {
            throw LinearError.shapeMismatch("in_proj_weight has shape \(inProjWeight.shape), expected [\(3 * e), \(e)]")
        }
        if let b = inProjBias, b.shape != [3 * e] {
            throw LinearError.shapeMismatch("in_proj_bias has shape \(b.shape), expected [\(3 * e)]")
        }
        guard outProjWeight.shape == [e, e] else {
            throw LinearError.shapeMismatch("out_proj.weight has shape \(outProjWeight.shape), expected [\(e), \(e)]")
        }
        if let b = outProjBias, b.shape != [e] {
            throw LinearError.shapeMismatch("out_proj.bias has shape \(b.shape), expected [\(e)]")
        }
        self.embedDim = e
        self.numHeads = numHeads
        qkvProj = try LinearOperator(weight: inProjWeight, bias: inProjBias)
        outProj = try LinearOperator(weight: outProjWeight, bias: outProjBias)
    }

    /// The separate q, k and v projections (rows `0..<E`, `E..<2E`, `2E..<3E` of the in-projection), built once.
    private func separateProjections() throws -> (q: LinearOperator, k: LinearOperator, v: LinearOperator) {
        separateLock.lock()
        defer { separateLock.unlock() }
        if let p = separate { return p }
        let e = embedDim
        let p = (q: try qkvProj.slice(first: 0, count: e), k: try qkvProj.slice(first: e, count: e),
                 v: try qkvProj.slice(first: 2 * e, count: e))
        separate = p
        return p
    }

    /// Attention of `query` `[B, L, E]` over `key` `[B, S, E]` / `value` `[B, S, E]`; returns `[B, L, E]`.
    /// - Throws: `LinearError.shapeMismatch` when the shapes do not fit.
    public func callAsFunction(query: Tensor, key: Tensor, value: Tensor) throws -> Tensor {
        let e = embedDim
        guard query.rank == 3, key.rank == 3, value.rank == 3,
              query.shape[2] == e, key.shape[2] == e, value.shape[2] == e else {
            throw LinearError.shapeMismatch("multi-head attention needs [B, L, \(e)] tensors, got query \(query.shape), key \(key.shape), value \(value.shape)")
        }
        let b = query.shape[0], l = query.shape[1], s = key.shape[1]
        guard key.shape[0] == b, value.shape[0] == b, value.shape[1] == s else {
            throw LinearError.shapeMismatch("key \(key.shape) and value \(value.shape) do not match query \(query.shape)")
        }
        if b == 0 || l == 0 { return Tensor(zeros: [b, l, e], layout: .tokens) }
        var y = Tensor(uninitialized: [b, l, e], layout: .tokens)   // outProj writes every row
        let fused = query.storage === key.storage && key.storage === value.storage && query.shape == key.shape
        let concat = UnsafeMutablePointer<Float>.allocate(capacity: b * l * e)
        defer { concat.deallocate() }
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, AttentionHead.blockRows(queries: l, keys: s) * s))
        defer { scratch.deallocate() }
        let d = headDim
        let scale = 1 / Float(d).squareRoot()
        if fused {
            // One GEMM for q, k and v: rows of [q | k | v], 3E wide.
            let qkv = UnsafeMutablePointer<Float>.allocate(capacity: b * l * 3 * e)
            defer { qkv.deallocate() }
            query.withUnsafeBufferPointer { qb in
                guard let qp = qb.baseAddress else { return }
                qkvProj.forward(input: qp, rows: b * l, output: qkv)
            }
            if !Self.vectorHeads(qkv: qkv, embedDim: e, heads: numHeads, batch: b, tokens: l, scale: scale, out: concat) {
                heads(q: qkv, k: qkv + e, v: qkv + 2 * e, ld: 3 * e, batch: b, l: l, s: s, scale: scale, out: concat, scratch: scratch)
            }
        } else {
            let (qProj, kProj, vProj) = try separateProjections()
            let q = UnsafeMutablePointer<Float>.allocate(capacity: b * l * e)
            let k = UnsafeMutablePointer<Float>.allocate(capacity: max(1, b * s * e))
            let v = UnsafeMutablePointer<Float>.allocate(capacity: max(1, b * s * e))
            defer { q.deallocate(); k.deallocate(); v.deallocate() }
            query.withUnsafeBufferPointer { xb in if let p = xb.baseAddress { qProj.forward(input: p, rows: b * l, output: q) } }
            key.withUnsafeBufferPointer { xb in if let p = xb.baseAddress { kProj.forward(input: p, rows: b * s, output: k) } }
            value.withUnsafeBufferPointer { xb in if let p = xb.baseAddress { vProj.forward(input: p, rows: b * s, output: v) } }
            heads(q: q, k: k, v: v, ld: e, batch: b, l: l, s: s, scale: scale, out: concat, scratch: scratch)
        }
        y.withUnsafeMutableBufferPointer { yb in
            guard let yp = yb.baseAddress else { return }
            outProj.forward(input: concat, rows: b * l, output: yp)
        }
        return y
    }

    /// Self-attention: `callAsFunction(query: x, key: x, value: x)`, with the fused q/k/v projection.
    /// - Throws: `LinearError.shapeMismatch` when `x` is not `[B, L, E]`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try callAsFunction(query: x, key: x, value: x)
    }

    /// Queries per work item of the vector path (two of the kernel's 24-query blocks): many small items, so that
    /// a faster core takes more of them.
    static let vectorBlockQueries = 48

    /// Self-attention of all heads of all images with the AVX-512 kernels (`CKernels`): `qkv` is `[B, L, 3E]`
    /// (`q | k | v` per row), `out` `[B, L, E]`. First each (image, head)'s keys and values are packed once
    /// (`dk_attention_pack`: keys transposed, values contiguous); then blocks of `vectorBlockQueries` queries
    /// (`dk_attention_packed`: scores, softmax and value sums per 24-query block) are handed to whichever thread
    /// is free (`Threading.dynamicFor`). No BLAS call, so no hand-over between OpenBLAS's threads and ours.
    /// Returns false (nothing written) when the CPU lacks AVX-512 or vector kernels are off; the caller then
    /// runs the GEMM path.
    static func vectorHeads(qkv: UnsafePointer<Float>, embedDim e: Int, heads nh: Int, batch: Int, tokens l: Int,
                            scale: Float, out: UnsafeMutablePointer<Float>) -> Bool {
        guard KernelDispatch.avx512, l > 0, nh > 0, e % nh == 0 else { return false }
        let d = e / nh, ld = 3 * e, dim = Int32(d)
        let heads = batch * nh
        let packedCount = dk_attention_packed_floats(l, dim, dim)
        let packed = UnsafeMutablePointer<Float>.allocate(capacity: heads * packedCount)
        defer { packed.deallocate() }
        let flag = UnsafeMutablePointer<Bool>.allocate(capacity: heads)
        defer { flag.deallocate() }
        flag.initialize(repeating: true, count: heads)
        Threading.parallelFor(heads) { item in
            let h = item % nh, n = item / nh
            let keyRows = UnsafeMutablePointer<Int>.allocate(capacity: l)
            defer { keyRows.deallocate() }
            for u in 0..<l { keyRows[u] = (n * l + u) * ld + h * d }
            flag[item] = dk_attention_pack(qkv, keyRows, l, e, 2 * e, dim, dim, packed + item * packedCount) != 0
        }
        guard (0..<heads).allSatisfy({ flag[$0] }) else { return false }
        let bq = vectorBlockQueries, blocks = (l + bq - 1) / bq
        let scratchCount = dk_attention_query_scratch(l, dim, dim)
        Threading.dynamicFor(heads * blocks) { item in
            let blk = item % blocks, head = item / blocks, h = head % nh, n = head / nh
            let q0 = blk * bq, nq = min(bq, l - q0)
            let rows = UnsafeMutablePointer<Int>.allocate(capacity: 2 * nq)
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: scratchCount)
            defer { rows.deallocate(); scratch.deallocate() }
            for i in 0..<nq {
                rows[i] = (n * l + q0 + i) * ld + h * d
                rows[nq + i] = (n * l + q0 + i) * e + h * d
            }
            _ = dk_attention_packed(qkv, rows, nq, l, dim, dim, scale, packed + head * packedCount, out, rows + nq, scratch)
        }
        return true
    }

    /// All heads of all images; q/k/v rows have stride `ld` and head `h` starts at column `h*D`.
    private func heads(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, ld: Int,
                       batch: Int, l: Int, s: Int, scale: Float, out: UnsafeMutablePointer<Float>,
                       scratch: UnsafeMutablePointer<Float>) {
        let d = headDim, e = embedDim
        for n in 0..<batch {
            for h in 0..<numHeads {
                AttentionHead.compute(q: q + n * l * ld + h * d, ldq: ld, k: k + n * s * ld + h * d, ldk: ld,
                                      v: v + n * s * ld + h * d, ldv: ld, out: out + n * l * e + h * d, ldo: e,
                                      L: l, S: s, E: d, Ev: d, scale: scale, mask: nil, ldm: 0, mcs: 0,
                                      causal: false, scores: scratch)
            }
        }
    }
}
