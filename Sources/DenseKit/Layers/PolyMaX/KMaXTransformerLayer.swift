import Foundation

/// The prediction heads `kMaXPredictor` (spec section 4; keys `..._predcitor.*`, the reference's typo).
struct KMaXPredictor: Sendable {
    let pixelChannels: Int
    let queryChannels: Int
    let embedDim: Int
    let numClasses: Int
    let voidLogBias: Float
    let conv0: KMaXSpatialConv           // 5x5 depthwise + BN + GELU
    let conv1: KMaXPointwise             // -> M, GELU
    let last: KMaXPointwise              // -> E, conv bias + BN
    let classHead: KMaXPointwise         // -> C+1, bias, no BN
    let maskHead: KMaXPointwise          // -> E, BN
    let maskScale: Float
    let maskShift: Float

    static func load(_ r: KMaXWeightReader, _ prefix: String, pixelChannels cx: Int, queryChannels dq: Int, midChannels m: Int,
                     embedDim e: Int, numClasses c: Int, voidPrior p: Double, eps: Double) throws -> KMaXPredictor {
        let s = try KMaXAffine.load(r, prefix + "._pixel_space_mask_batch_norm", channels: 1, eps: eps)
        return KMaXPredictor(
            pixelChannels: cx, queryChannels: dq, embedDim: e, numClasses: c,
            voidLogBias: Float(log(Double(c) * p / (1 - p))),
            conv0: try KMaXSpatialConv.load(r, prefix + "._pixel_space_head_conv0bnact", cin: cx, cout: cx, kernel: 5, groups: cx,
                                            activation: .gelu, eps: eps),
            conv1: try KMaXPointwise.load(r, prefix + "._pixel_space_head_conv1bnact", cin: cx, cout: m, activation: .gelu, eps: eps),
            last: try KMaXPointwise.load(r, prefix + "._pixel_space_head_last_convbn", cin: m, cout: e, activation: .none, eps: eps),
            classHead: try KMaXPointwise.load(r, prefix + "._transformer_class_head", cin: dq, cout: c + 1, activation: .none,
                                              eps: eps, requireNorm: false),
            maskHead: try KMaXPointwise.load(r, prefix + "._transformer_mask_head", cin: dq, cout: e, activation: .none, eps: eps),
            maskScale: s.scale[0], maskShift: s.shift[0])
    }

    /// Pixel embedding `[E, h*w]`, L2-normalised per pixel.
    func pixelEmbedding(_ x: [Float], h: Int, w: Int) -> [Float] {
        let n = h * w
        var y = last(conv1(conv0(x, h: h, w: w), n: n), n: n)
        let e = embedDim
        var norm = [Float](repeating: 0, count: n)
        y.withUnsafeMutableBufferPointer { p in
            norm.withUnsafeMutableBufferPointer { q in
                guard let pb = p.baseAddress, let qb = q.baseAddress else { return }
                let pc = 2048
                Threading.parallelFor((n + pc - 1) / pc) { chunk in
                    let lo = chunk * pc, cnt = min(pc, n - lo), nq = qb + lo
                    for c in 0..<e { let r = pb + c * n + lo; for i in 0..<cnt { nq[i] += r[i] * r[i] } }
                    for i in 0..<cnt { nq[i] = 1 / max(nq[i].squareRoot(), 1e-12) }
                    for c in 0..<e { let r = pb + c * n + lo; for i in 0..<cnt { r[i] *= nq[i] } }
                }
            }
        }
        return y
    }

    /// Class logits `[K, C+1]` (void last, void prior added) from class embeddings `ce [Dq, K]`.
    func classLogits(_ ce: [Float], clusters k: Int) -> [Float] {
        let c1 = numClasses + 1
        let t = classHead(ce, n: k)   // [C+1, K]
        var out = [Float](repeating: 0, count: k * c1)
        for j in 0..<k { for c in 0..<c1 { out[j * c1 + c] = t[c * k + j] } }
        for j in 0..<k { out[j * c1 + numClasses] += voidLogBias }
        return out
    }

    /// Mask logits `[K, n]` from mask embeddings `me [Dq, K]` and the pixel embedding `[E, n]`.
    func maskLogits(_ me: [Float], clusters k: Int, pixelEmbedding pe: [Float], n: Int) -> [Float] {
        let ker = maskHead(me, n: k)  // [E, K]
        var ml = [Float](repeating: 0, count: k * n)
        if n == 0 { return ml }
        ker.withUnsafeBufferPointer { kp in
            pe.withUnsafeBufferPointer { pp in
                ml.withUnsafeMutableBufferPointer { mp in
                    guard let kb = kp.baseAddress, let pb = pp.baseAddress, let mb = mp.baseAddress else { return }
                    BLAS.sgemm(transA: true, m: k, n: n, k: embedDim, a: kb, lda: k, b: pb, ldb: n, c: mb, ldc: n)
                    let a = maskScale, c = maskShift
                    Threading.parallelFor(k, grain: max(1, KMaXMath.chunk / n)) { j in
                        let row = mb + j * n
                        for i in 0..<n { row[i] = row[i] * a + c }
                    }
                }
            }
        }
        return ml
    }
}

/// Argmax over clusters of mask logits `[K, n]` per pixel; ties resolve to the lowest cluster index.
func kmaxAssignment(_ ml: [Float], clusters k: Int, pixels n: Int) -> [Int32] {
    var a = [Int32](repeating: 0, count: n)
    if k == 0 || n == 0 { return a }
    var best = Array(ml[0..<n])
    ml.withUnsafeBufferPointer { p in
        a.withUnsafeMutableBufferPointer { ap in
            best.withUnsafeMutableBufferPointer { bp in
                guard let pb = p.baseAddress, let ab = ap.baseAddress, let bb = bp.baseAddress else { return }
                // Row by row (contiguous): a strictly greater value replaces, so ties keep the lowest index.
                let pc = 2048
                Threading.parallelFor((n + pc - 1) / pc) { chunk in
                    let lo = chunk * pc, cnt = min(pc, n - lo)
                    for j in 1..<k {
                        let r = pb + j * n + lo, jj = Int32(j), b = bb + lo, a = ab + lo
                        for i in 0..<cnt {
                            let v = r[i], gt = v > b[i]
                            b[i] = gt ? v : b[i]
                            a[i] = gt ? jj : a[i]
                        }
                    }
                }
            }
        }
    }
    return a
}

/// One k-means cross-attention decoder layer (`kMaXTransformerLayer`, spec 5.2). Keys relative to the layer.
struct KMaXTransformerLayer: Sendable {
    let pixelChannels: Int
    let queryDim: Int
    let base: Int
    let heads: Int
    let clusters: Int
    let pixelConv1: KMaXPointwise
    let queryConv1: KMaXPointwise
    let pixelV: KMaXPointwise
    let predictor: KMaXPredictor
    let kmeansBN: KMaXAffine
    let kmeansConv3: KMaXPointwise
    let qkv: KMaXPointwise
    let simBN: KMaXAffine
    let retBN: KMaXAffine
    let queryConv3: KMaXPointwise
    let ffn1: KMaXPointwise
    let ffn2: KMaXPointwise

    /// Everything one layer produces (one image). Layouts: clusters `[D, K]`, maps `[C, h*w]`.
    struct Output {
        var query: [Float]
        var assignment: [Int32]
        var maskLogits: [Float]
        var classLogits: [Float]?
        var pixelEmbedding: [Float]
        var kmeansUpdate: [Float]
        var attentionUpdate: [Float]
    }

    static func load(_ r: KMaXWeightReader, _ prefix: String, pixelChannels cp: Int, queryDim d: Int, base t: Int, heads: Int,
                     ffnDim f: Int, midChannels m: Int, embedDim e: Int, clusters k: Int, numClasses c: Int,
                     voidPrior: Double, eps: Double) throws -> KMaXTransformerLayer {
        let p = prefix.isEmpty ? "" : prefix + "."
        guard t % heads == 0 else { throw ModelConfigError.invalidField(model: "kmax", field: "trans_base_filters", message: "\(t) is not a multiple of num_heads \(heads)") }
        return KMaXTransformerLayer(
            pixelChannels: cp, queryDim: d, base: t, heads: heads, clusters: k,
            pixelConv1: try .load(r, p + "_pixel_conv1_bn_act", cin: cp, cout: 2 * t, activation: .gelu, eps: eps),
            queryConv1: try .load(r, p + "_query_conv1_bn_act", cin: d, cout: 2 * t, activation: .gelu, eps: eps),
            pixelV: try .load(r, p + "_pixel_v_conv_bn", cin: 2 * t, cout: 2 * t, activation: .none, eps: eps),
            predictor: try .load(r, p + "_predcitor", pixelChannels: 2 * t, queryChannels: 2 * t, midChannels: m, embedDim: e,
                                 numClasses: c, voidPrior: voidPrior, eps: eps),
            kmeansBN: try .load(r, p + "_kmeans_query_batch_norm_retrieved_value", channels: 2 * t, eps: eps),
            kmeansConv3: try .load(r, p + "_kmeans_query_conv3_bn", cin: 2 * t, cout: d, activation: .none, eps: eps),
            qkv: try .load(r, p + "_query_qkv_conv_bn", cin: 2 * t, cout: 4 * t, activation: .none, eps: eps),
            simBN: try .load(r, p + "_query_self_attention._batch_norm_similarity", channels: heads, eps: eps),
            retBN: try .load(r, p + "_query_self_attention._batch_norm_retrieved_value", channels: 2 * t, eps: eps),
            queryConv3: try .load(r, p + "_query_conv3_bn", cin: 2 * t, cout: d, activation: .none, eps: eps),
            ffn1: try .load(r, p + "_query_ffn_conv1_bn_act", cin: d, cout: f, activation: .gelu, eps: eps),
            ffn2: try .load(r, p + "_query_ffn_conv2_bn", cin: f, cout: d, activation: .none, eps: eps))
    }

    /// The k-means update before its BN (spec 5.2): `U = V onehot(A)^T` with `V = pixelV(Ps) = Wv Ps + bv`, computed
    /// as `Wv (Ps onehot(A)^T) + bv count^T`: the scatter-add of the assigned pixels runs on `Ps` (same width) and
    /// the value conv then acts on K columns instead of every pixel.
    func kmeansValues(_ ps: [Float], assignment a: [Int32], pixels n: Int) -> [Float] {
        let c = pixelV.cin, k = clusters
        var sums = [Float](repeating: 0, count: c * k)
        var counts = [Float](repeating: 0, count: k)
        for i in 0..<n { counts[Int(a[i])] += 1 }
        ps.withUnsafeBufferPointer { pp in
            a.withUnsafeBufferPointer { ap in
                sums.withUnsafeMutableBufferPointer { sp in
                    guard let pb = pp.baseAddress, let ab = ap.baseAddress, let sb = sp.baseAddress else { return }
                    Threading.parallelFor(c, grain: max(1, KMaXMath.chunk / max(1, n))) { d in
                        let row = pb + d * n, out = sb + d * k
                        for i in 0..<n { out[Int(ab[i])] += row[i] }
                    }
                }
            }
        }
        let co = pixelV.cout
        return [Float](unsafeUninitializedCapacity: co * k) { u, done in
            done = co * k
            guard let ub = u.baseAddress else { return }
            for d in 0..<co { for j in 0..<k { ub[d * k + j] = pixelV.bias[d] * counts[j] } }
            sums.withUnsafeBufferPointer { sp in
                pixelV.weight.withUnsafeBufferPointer { wp in
                    guard let sb = sp.baseAddress, let wb = wp.baseAddress, c > 0 else { return }
                    BLAS.sgemm(m: co, n: k, k: c, a: wb, lda: c, b: sb, ldb: k, beta: 1, c: ub, ldc: k)
                }
            }
        }
    }

    /// Runs the layer on centres `q [D, K]` and a pixel feature `x [Cp, h, w]` (spec 5.2).
    /// `withClassLogits` also computes the layer's class logits (training-only at inference); `activated`, when
    /// given, is `gelu(x)` (shared by the layers that read the same stage).
    func run(query q: [Float], pixel x: [Float], activated: [Float]? = nil, h: Int, w: Int, withClassLogits: Bool) -> Output {
        let n = h * w, k = clusters, t = base
        let ps = pixelConv1(activated ?? KMaXMath.gelu(x), n: n)   // [2t, n]
        let qs = queryConv1(q, n: k)                          // [2t, K]
        let pe = predictor.pixelEmbedding(ps, h: h, w: w)
        let ml = predictor.maskLogits(qs, clusters: k, pixelEmbedding: pe, n: n)
        let cl = withClassLogits ? predictor.classLogits(qs, clusters: k) : nil
        let a = kmaxAssignment(ml, clusters: k, pixels: n)
        var u = kmeansValues(ps, assignment: a, pixels: n)
        kmeansBN.apply(&u, n: k)
        let kmUpdate = kmeansConv3(u, n: k)                   // [D, K]
        // Cluster self-attention from Qs (the layer input).
        let qkvT = qkv(qs, n: k)                              // [4t, K]
        var rOut = Self.clusterAttention(qkvT, base: t, heads: heads, clusters: k, similarity: simBN)
        retBN.apply(&rOut, n: k)
        let rAct = KMaXMath.gelu(rOut)
        let attUpdate = queryConv3(rAct, n: k)
        var q2 = q
        for i in 0..<q2.count { q2[i] = q[i] + kmUpdate[i] + attUpdate[i] }
        q2 = KMaXMath.gelu(q2)
        var q3 = ffn2(ffn1(q2, n: k), n: k)
        KMaXMath.addInPlace(&q3, q2, activation: .gelu)
        return Output(query: q3, assignment: a, maskLogits: ml, classLogits: cl, pixelEmbedding: pe,
                      kmeansUpdate: kmUpdate, attentionUpdate: attUpdate)
    }
}
