import CKernels
import Foundation

/// One 1-D axial attention (`AxialAttention`, spec section 3.3) with its BNs folded / as affines.
///
/// It works on **position-major** maps (`[H*W, channels]`, one pixel's channels contiguous): the qkv 1x1 conv
/// writes that layout directly (one GEMM), every (sequence, position, head) slice of q, k, v is then a contiguous
/// run, and the output `[H*W, Vd]` feeds the next axis's qkv GEMM (or the block's `conv3`) without a transpose.
///
/// The relative-position tables (`[2*maxSpan-1, d]`) are prepared once at load and then used as views: for query
/// position `l` the expanded table `R[l, 0..<L, :]` (`R[l, m] = table[m - l + maxSpan - 1]`) is the contiguous block
/// of rows starting at `maxSpan-1-l`, so the expansion for any length `L <= maxSpan` needs no copy. The query and
/// key tables are stored transposed (`[d, rows]`) so that the logits run contiguously over key positions.
struct KMaXAxialAttention: Sendable {
    let cin: Int
    let keyDepth: Int
    let valueDepth: Int
    let heads: Int
    let maxSpan: Int
    /// qkv 1x1 conv with `_batch_norm_qkv` folded: `[2Kd+Vd, cin]`.
    let qkv: KMaXPointwise
    /// `[3h]` affine of `_batch_norm_similarity` (channel `t*h + head`).
    let similarity: KMaXAffine
    /// `[2Vd]` affine of `_batch_norm_retrieved_output` (content first).
    let retrieved: KMaXAffine
    /// `[dk, rows]` (transposed at load).
    let queryTable: [Float]
    /// `[dk, rows]` (transposed at load).
    let keyTable: [Float]
    /// `[rows, dv]`.
    let valueTable: [Float]

    /// Width of the qkv map, `2Kd + Vd`.
    var qkvChannels: Int { 2 * keyDepth + valueDepth }

    /// `[rows, d]` -> `[d, rows]`.
    static func transposed(_ t: [Float], rows: Int, cols: Int) -> [Float] {
        var o = [Float](repeating: 0, count: t.count)
        for r in 0..<rows { for c in 0..<cols { o[c * rows + r] = t[r * cols + c] } }
        return o
    }

    static func load(_ r: KMaXWeightReader, _ prefix: String, cin: Int, keyDepth kd: Int, valueDepth vd: Int,
                     heads: Int, maxSpan: Int, eps: Double) throws -> KMaXAxialAttention {
        let rows = 2 * maxSpan - 1
        let qkv = try KMaXPointwise.loadSplitBN(r, convKey: prefix + ".qkv_transform.conv.weight", bnPrefix: prefix + "._batch_norm_qkv",
                                                cin: cin, cout: 2 * kd + vd, eps: eps)
        return KMaXAxialAttention(
            cin: cin, keyDepth: kd, valueDepth: vd, heads: heads, maxSpan: maxSpan, qkv: qkv,
            similarity: try KMaXAffine.load(r, prefix + "._batch_norm_similarity", channels: 3 * heads, eps: eps),
            retrieved: try KMaXAffine.load(r, prefix + "._batch_norm_retrieved_output", channels: 2 * vd, eps: eps),
            queryTable: transposed(try r.tensor(prefix + "._query_rpe._embeddings.weight", shape: [rows, kd / heads]).scalars, rows: rows, cols: kd / heads),
            keyTable: transposed(try r.tensor(prefix + "._key_rpe._embeddings.weight", shape: [rows, kd / heads]).scalars, rows: rows, cols: kd / heads),
            valueTable: try r.tensor(prefix + "._value_rpe._embeddings.weight", shape: [rows, vd / heads]).scalars)
    }

    /// Attention along one axis of an `h x w` map: `x` is channel-major `[cin, H*W]` or, with
    /// `inputPositionMajor`, `[H*W, cin]`. `alongHeight` treats every column as a sequence of length H,
    /// otherwise every row as a sequence of length W. Returns the position-major output `[H*W, Vd]`.
    func positionMajor(_ x: UnsafePointer<Float>, inputPositionMajor: Bool, h: Int, w: Int, alongHeight: Bool) throws -> [Float] {
        let L = alongHeight ? h : w
        guard L <= maxSpan else { throw PolyMaXError.shape("axial attention length \(L) exceeds max_span \(maxSpan)") }
        let hw = h * w, cq = qkvChannels, vd = valueDepth
        let qkvMap = qkv.positionMajor(x, n: hw, inputPositionMajor: inputPositionMajor)   // [H*W, 2Kd+Vd]
        return [Float](unsafeUninitializedCapacity: vd * hw) { out, count in
            count = vd * hw
            guard let ob = out.baseAddress else { return }
            qkvMap.withUnsafeBufferPointer { qp in
                guard let qb = qp.baseAddress else { return }
                let pixStride = alongHeight ? w : 1       // pixels between consecutive positions of a sequence
                let seqStride = alongHeight ? 1 : w       // pixels between consecutive sequences
                let g = dk_axial_geometry(length: L, posStride: pixStride * cq, outPosStride: pixStride * vd,
                                          keyOffset: keyDepth, valueOffset: 2 * keyDepth, span: maxSpan,
                                          tableRows: 2 * maxSpan - 1, heads: Int32(heads),
                                          dk: Int32(keyDepth / heads), dv: Int32(valueDepth / heads))
                Threading.parallelFor(alongHeight ? w : h) { s in
                    attendSequence(g, qkv: qb + s * seqStride * cq, out: ob + s * seqStride * vd)
                }
            }
        }
    }

    /// One sequence, all heads: the AVX-512 kernel, or the Swift loop where it does not run.
    func attendSequence(_ g: dk_axial_geometry, qkv: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
        let dk = keyDepth / heads, lp = (g.length + 15) / 16 * 16
        queryTable.withUnsafeBufferPointer { tq in
            keyTable.withUnsafeBufferPointer { tk in
                valueTable.withUnsafeBufferPointer { tv in
                    similarity.scale.withUnsafeBufferPointer { sa in
                        similarity.shift.withUnsafeBufferPointer { sb in
                            retrieved.scale.withUnsafeBufferPointer { ra in
                                retrieved.shift.withUnsafeBufferPointer { rb in
                                    guard let tqb = tq.baseAddress, let tkb = tk.baseAddress, let tvb = tv.baseAddress,
                                          let sab = sa.baseAddress, let sbb = sb.baseAddress,
                                          let rab = ra.baseAddress, let rbb = rb.baseAddress else { return }
                                    withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * dk * lp + lp + 2 * valueDepth) { scratch in
                                        guard let sc = scratch.baseAddress else { return }
                                        var geo = g
                                        if KernelDispatch.avx512
                                            && dk_axial_sequence(&geo, qkv, tqb, tkb, tvb, sab, sbb, rab, rbb, out, sc) != 0 { return }
                                        for head in 0..<heads {
                                            Self.sequenceHead(g, qkv: qkv, out: out, head: head, tq: tqb, tk: tkb, tv: tvb,
                                                              sa: sab, sb: sbb, ra: rab, rb: rbb, scratch: sc)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// One (sequence, head) in Swift (spec 3.3): content + query-relative + key-relative logits, each through
    /// its BN channel, softmax over key positions, content + relative retrieval through the retrieved-output
    /// BN, summed. Same contract as `dk_axial_sequence`; `scratch` holds `2 * dk * L + L + 2 * dv` floats.
    static func sequenceHead(_ g: dk_axial_geometry, qkv: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, head: Int,
                             tq: UnsafePointer<Float>, tk: UnsafePointer<Float>, tv: UnsafePointer<Float>,
                             sa: UnsafePointer<Float>, sb: UnsafePointer<Float>,
                             ra: UnsafePointer<Float>, rb: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let L = g.length, ps = g.posStride, heads = Int(g.heads), dk = Int(g.dk), dv = Int(g.dv)
        let rows = g.tableRows, span = g.span, vd = heads * dv
        // Gather q [L, dk] (position-major), k transposed [dk, L], v [L, dv].
        let q = scratch, kT = scratch + L * dk, wrow = kT + L * dk, o1 = wrow + L, o2 = o1 + dv
        for l in 0..<L {
            let pos = qkv + l * ps
            for d in 0..<dk {
                q[l * dk + d] = pos[head * dk + d]
                kT[d * L + l] = pos[g.keyOffset + head * dk + d]
            }
        }
        let vbase = qkv + g.valueOffset + head * dv
        let a0 = sa[head], a1 = sa[heads + head], a2 = sa[2 * heads + head]
        let c = sb[head] + sb[heads + head] + sb[2 * heads + head]
        for l in 0..<L {
            let off = span - 1 - l               // R[l, m] = table[off + m]
            for m in 0..<L { wrow[m] = 0 }
            for d in 0..<dk {
                let qd = q[l * dk + d]
                let qa = a0 * qd, qb = a1 * qd
                let kr = kT + d * L, tqr = tq + d * rows + off, tkr = tk + d * rows + off
                for m in 0..<L { wrow[m] += qa * kr[m] + qb * tqr[m] + a2 * kr[m] * tkr[m] }
            }
            var mx = -Float.infinity
            for m in 0..<L { let z = wrow[m] + c; wrow[m] = z; mx = max(mx, z) }
            var sum: Float = 0
            for m in 0..<L { let e = expf(wrow[m] - mx); wrow[m] = e; sum += e }
            let inv = 1 / sum
            for d in 0..<dv { o1[d] = 0; o2[d] = 0 }
            let rv = tv + off * dv
            for m in 0..<L {
                let p = wrow[m] * inv
                let vm = vbase + m * ps, rvm = rv + m * dv
                for d in 0..<dv { o1[d] += p * vm[d]; o2[d] += p * rvm[d] }
            }
            let o = out + l * g.outPosStride
            for d in 0..<dv {
                let ch = head * dv + d
                o[ch] = (ra[ch] * o1[d] + rb[ch]) + (ra[vd + ch] * o2[d] + rb[vd + ch])
            }
        }
    }
}

extension KMaXPointwise {
    /// A 1x1 conv without bias (`convKey`, `[cout, cin, 1]` or `[cout, cin, 1, 1]`) followed by the BN `bnPrefix.*`.
    static func loadSplitBN(_ r: KMaXWeightReader, convKey: String, bnPrefix: String, cin: Int, cout: Int, eps: Double) throws -> KMaXPointwise {
        let w = try r.tensor(convKey, shape: [cout, cin, 1], alternatives: [[cout, cin, 1, 1]]).scalars
        let bn = try KMaXAffine.load(r, bnPrefix, channels: cout, eps: eps)
        var fw = [Float](repeating: 0, count: cout * cin)
        for o in 0..<cout { for i in 0..<cin { fw[o * cin + i] = Float(Double(w[o * cin + i]) * Double(bn.scale[o])) } }
        return KMaXPointwise(cin: cin, cout: cout, weight: fw, bias: bn.shift, activation: .none)
    }
}
