import Foundation

/// One 1-D axial attention (`AxialAttention`, spec section 3.3) with its BNs folded / as affines.
///
/// The relative-position tables (`[2*maxSpan-1, d]`) are prepared once at load and then used as views: for query
/// position `l` the expanded table `R[l, 0..<L, :]` (`R[l, m] = table[m - l + maxSpan - 1]`) is the contiguous block
/// of rows starting at `maxSpan-1-l`, so the expansion for any length `L <= maxSpan` needs no copy. The query and
/// key tables are stored transposed (`[d, rows]`) so that the logits loop runs contiguously over key positions.
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

    /// Attention along one axis of a feature map `x [cin, H, W]`: `alongHeight` treats every column as a
    /// sequence of length H, otherwise every row as a sequence of length W. Returns `[Vd, H, W]`.
    func callAsFunction(_ x: [Float], h: Int, w: Int, alongHeight: Bool) throws -> [Float] {
        let L = alongHeight ? h : w
        let nSeq = alongHeight ? w : h
        guard L <= maxSpan else { throw PolyMaXError.shape("axial attention length \(L) exceeds max_span \(maxSpan)") }
        let hw = h * w
        let qkvMap = qkv(x, n: hw)               // [2Kd+Vd, H, W]
        var out = [Float](repeating: 0, count: valueDepth * hw)
        let dk = keyDepth / heads, dv = valueDepth / heads
        let posStride = alongHeight ? w : 1       // distance between consecutive positions of a sequence
        let seqStride = alongHeight ? 1 : w       // distance between consecutive sequences
        let kd = keyDepth, vd = valueDepth, nh = heads, span = maxSpan
        qkvMap.withUnsafeBufferPointer { qp in
            out.withUnsafeMutableBufferPointer { op in
                queryTable.withUnsafeBufferPointer { tq in
                    keyTable.withUnsafeBufferPointer { tk in
                        valueTable.withUnsafeBufferPointer { tv in
                            similarity.scale.withUnsafeBufferPointer { sa in
                                similarity.shift.withUnsafeBufferPointer { sb in
                                    retrieved.scale.withUnsafeBufferPointer { ra in
                                        retrieved.shift.withUnsafeBufferPointer { rb in
                                            guard let qb = qp.baseAddress, let ob = op.baseAddress,
                                                  let tqb = tq.baseAddress, let tkb = tk.baseAddress, let tvb = tv.baseAddress else { return }
                                            Threading.parallelFor(nSeq * nh) { item in
                                                let s = item / nh, head = item % nh
                                                Self.sequenceHead(qkv: qb, out: ob, hw: hw, seqOffset: s * seqStride, posStride: posStride,
                                                                  length: L, head: head, heads: nh, kd: kd, vd: vd, dk: dk, dv: dv, span: span,
                                                                  tq: tqb, tk: tkb, tv: tvb, sa: sa, sb: sb, ra: ra, rb: rb)
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
        return out
    }

    /// One (sequence, head) of the axial attention (spec 3.3): content + query-relative + key-relative
    /// logits, each through its BN channel, softmax over key positions, content + relative retrieval through
    /// the retrieved-output BN, summed.
    static func sequenceHead(qkv: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, hw: Int, seqOffset: Int, posStride: Int,
                             length L: Int, head: Int, heads: Int, kd: Int, vd: Int, dk: Int, dv: Int, span: Int,
                             tq: UnsafePointer<Float>, tk: UnsafePointer<Float>, tv: UnsafePointer<Float>,
                             sa: UnsafeBufferPointer<Float>, sb: UnsafeBufferPointer<Float>,
                             ra: UnsafeBufferPointer<Float>, rb: UnsafeBufferPointer<Float>) {
        // Gather q [L, dk] (position-major), k transposed [dk, L], v [L, dv].
        let rows = 2 * span - 1
        let buf = UnsafeMutablePointer<Float>.allocate(capacity: L * (2 * dk + dv) + L + 2 * dv)
        defer { buf.deallocate() }
        let q = buf, kT = buf + L * dk, v = kT + L * dk, wrow = v + L * dv, o1 = wrow + L, o2 = o1 + dv
        for l in 0..<L {
            let pix = seqOffset + l * posStride
            for d in 0..<dk {
                q[l * dk + d] = qkv[(head * dk + d) * hw + pix]
                kT[d * L + l] = qkv[(kd + head * dk + d) * hw + pix]
            }
            for d in 0..<dv { v[l * dv + d] = qkv[(2 * kd + head * dv + d) * hw + pix] }
        }
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
            let rv = tv + (span - 1 - l) * dv
            for m in 0..<L {
                let p = wrow[m] * inv
                let vm = v + m * dv, rvm = rv + m * dv
                for d in 0..<dv { o1[d] += p * vm[d]; o2[d] += p * rvm[d] }
            }
            let pix = seqOffset + l * posStride
            for d in 0..<dv {
                let ch = head * dv + d
                out[ch * hw + pix] = (ra[ch] * o1[d] + rb[ch]) + (ra[vd + ch] * o2[d] + rb[vd + ch])
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

/// The kind of a pixel-decoder block (spec 3.2).
public enum KMaXBlockType: String, Sendable, Hashable, Codable {
    /// Axial-attention block: filters `[2b, b, 4b]`.
    case axial
    /// Bottleneck block: filters `[b, b, 4b]`.
    case bottleneck
}

/// One `SingleBlock` of the pixel decoder (spec 3.2): `gelu(x)` first (also the shortcut's input), 1x1 ConvBN+GELU,
/// axial attention + GELU or 3x3 ConvBN+GELU, 1x1 ConvBN, plus the (projected) shortcut. Keys relative to the block.
struct KMaXSingleBlock: Sendable {
    let type: KMaXBlockType
    let cin: Int
    let filters: Int
    let conv1: KMaXPointwise
    let heightAxis: KMaXAxialAttention?
    let widthAxis: KMaXAxialAttention?
    let conv2: KMaXSpatialConv?
    let conv3: KMaXPointwise
    let shortcut: KMaXPointwise?

    /// Output width `4b`.
    var cout: Int { 4 * filters }

    static func load(_ r: KMaXWeightReader, _ prefix: String, type: KMaXBlockType, cin: Int, filters b: Int,
                     heads: Int, maxSpan: Int, eps: Double) throws -> KMaXSingleBlock {
        let p = prefix.isEmpty ? "" : prefix + "."
        let f0 = type == .axial ? 2 * b : b
        let conv1 = try KMaXPointwise.load(r, p + "_conv1_bn_act", cin: cin, cout: f0, activation: .gelu, eps: eps)
        var ha: KMaXAxialAttention? = nil, wa: KMaXAxialAttention? = nil, c2: KMaXSpatialConv? = nil
        switch type {
        case .axial:
            guard b % heads == 0 else { throw ModelConfigError.invalidField(model: "kmax", field: "dec_channels", message: "\(b) is not a multiple of num_heads \(heads)") }
            ha = try KMaXAxialAttention.load(r, p + "_attention._height_axis", cin: 2 * b, keyDepth: b, valueDepth: 2 * b,
                                             heads: heads, maxSpan: maxSpan, eps: eps)
            wa = try KMaXAxialAttention.load(r, p + "_attention._width_axis", cin: 2 * b, keyDepth: b, valueDepth: 2 * b,
                                             heads: heads, maxSpan: maxSpan, eps: eps)
        case .bottleneck:
            c2 = try KMaXSpatialConv.load(r, p + "_conv2_bn_act", cin: b, cout: b, kernel: 3, groups: 1, activation: .gelu, eps: eps)
        }
        let conv3 = try KMaXPointwise.load(r, p + "_conv3_bn", cin: f0, cout: 4 * b, activation: .none, eps: eps)
        let sc: KMaXPointwise? = cin != 4 * b
            ? try KMaXPointwise.load(r, p + "_shortcut", cin: cin, cout: 4 * b, activation: .none, eps: eps) : nil
        return KMaXSingleBlock(type: type, cin: cin, filters: b, conv1: conv1, heightAxis: ha, widthAxis: wa, conv2: c2, conv3: conv3, shortcut: sc)
    }

    /// Runs the block on `x [cin, h, w]`; returns `[4b, h, w]` and, for an axial block, the axial-attention
    /// output `[2b, h, w]` (before its GELU).
    func run(_ x: [Float], h: Int, w: Int) throws -> (y: [Float], attention: [Float]?) {
        let n = h * w
        let g = KMaXMath.gelu(x)
        let sc = shortcut.map { $0(g, n: n) } ?? g
        var y = conv1(g, n: n)
        var attn: [Float]? = nil
        if let ha = heightAxis, let wa = widthAxis {
            let a1 = try ha(y, h: h, w: w, alongHeight: true)
            let a2 = try wa(a1, h: h, w: w, alongHeight: false)
            attn = a2
            y = KMaXMath.gelu(a2)
        } else if let c2 = conv2 {
            y = c2(y, h: h, w: w)
        }
        y = conv3(y, n: n)
        return (KMaXMath.add(y, sc), attn)
    }
}
