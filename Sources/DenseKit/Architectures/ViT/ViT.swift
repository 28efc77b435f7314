import Foundation

/// One pre-norm transformer block of a timm ViT: `x += proj(attn(norm1(x)))`,
/// `x += fc2(gelu(fc1(norm2(x))))`, on `[B, L, C]` tokens.
final class ViTBlock: @unchecked Sendable {
    let norm1w: Tensor, norm1b: Tensor, norm2w: Tensor, norm2b: Tensor
    let attn: MultiHeadAttention
    let fc1: LinearOperator, fc2: LinearOperator
    let eps: Double

    init(weights: [String: Tensor], prefix p: String, config: ViTConfig) throws {
        func t(_ k: String) throws -> Tensor {
            guard let v = weights[p + k] else { throw ModelConfigError.missingWeights(model: "vit", keys: [p + k]) }
            return v
        }
        norm1w = try t("norm1.weight"); norm1b = try t("norm1.bias")
        norm2w = try t("norm2.weight"); norm2b = try t("norm2.bias")
        attn = try MultiHeadAttention(embedDim: config.embedDim, numHeads: config.numHeads,
                                      inProjWeight: try t("attn.qkv.weight"), inProjBias: try t("attn.qkv.bias"),
                                      outProjWeight: try t("attn.proj.weight"), outProjBias: try t("attn.proj.bias"))
        fc1 = try LinearOperator(weight: try t("mlp.fc1.weight"), bias: try t("mlp.fc1.bias"), activation: .gelu)
        fc2 = try LinearOperator(weight: try t("mlp.fc2.weight"), bias: try t("mlp.fc2.bias"))
        eps = config.lnEps
    }

    /// Runs the block on `x` in place (the residual sums are written into `x`'s storage when no one else holds it).
    func callAsFunction(_ x: inout Tensor) throws {
        let a = try attn(try NormKernels.layerNorm(x, weight: norm1w, bias: norm1b, eps: eps))
        let n2 = try NormKernels.addLayerNorm(&x, residual: a, weight: norm2w, bias: norm2b, eps: eps)
        let h = try fc2.checkedCall(try fc1.checkedCall(n2))
        ViT.addInPlace(&x, h)
    }
}

/// A plain timm `VisionTransformer` backbone (spec `token-clustering.md` section 4) with optional
/// token clustering after block alpha and token reconstruction after block beta
/// (Liang et al., NeurIPS 2022: "Expediting Large-Scale Vision Transformer for Dense Prediction
/// without Fine-tuning").
///
/// Image `[B, 3, Hi, Wi]` -> patch embedding (Conv2d 16/16) -> `[cls, tokens] + pos_embed` (the
/// embedding resampled to the input grid with timm's antialiased bicubic rule, 4.1) -> blocks
/// `0 ..< alpha` on 1+N tokens -> clustering of the N patch tokens to M = h*w centres -> blocks
/// `alpha ..< beta` on 1+M tokens -> reconstruction back to N (after the final LayerNorm when
/// beta = depth) -> remaining blocks and final norm. Weights use timm's state_dict keys
/// (`patch_embed.proj.*`, `cls_token`, `pos_embed`, `blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*`, `norm.*`).
public final class ViT: @unchecked Sendable {
    /// The configuration.
    public let config: ViTConfig
    let patchEmbed: Conv2dOperator
    let clsToken: Tensor
    let posEmbed: Tensor
    let blocks: [ViTBlock]
    let normW: Tensor, normB: Tensor

    /// Every tensor key a config needs, with its shape.
    public static func expectedWeights(_ c: ViTConfig) -> [(key: String, shape: [Int])] {
        let e = c.embedDim, hd = c.hiddenDim
        var r: [(String, [Int])] = [
            ("cls_token", [1, 1, e]), ("pos_embed", [1, 1 + c.posGridH * c.posGridW, e]),
            ("patch_embed.proj.weight", [e, 3, c.patchSize, c.patchSize]), ("patch_embed.proj.bias", [e]),
            ("norm.weight", [e]), ("norm.bias", [e]),
        ]
        for i in 0..<c.depth {
            let p = "blocks.\(i)."
            r += [(p + "norm1.weight", [e]), (p + "norm1.bias", [e]),
                  (p + "attn.qkv.weight", [3 * e, e]), (p + "attn.qkv.bias", [3 * e]),
                  (p + "attn.proj.weight", [e, e]), (p + "attn.proj.bias", [e]),
                  (p + "norm2.weight", [e]), (p + "norm2.bias", [e]),
                  (p + "mlp.fc1.weight", [hd, e]), (p + "mlp.fc1.bias", [hd]),
                  (p + "mlp.fc2.weight", [e, hd]), (p + "mlp.fc2.bias", [e])]
        }
        return r
    }

    /// Builds the model, checking every weight's presence and shape before loading any.
    /// - Throws: `ModelConfigError.missingWeights` / `.weightShapes`, kernel shape errors.
    public init(config: ViTConfig, weights: WeightSource) throws {
        self.config = config
        let expected = Self.expectedWeights(config)
        var missing: [String] = [], wrong: [String] = []
        for (k, s) in expected {
            guard let found = weights.shape(of: k) else { missing.append(k); continue }
            if found != s { wrong.append("\(k): expected \(s), found \(found)") }
        }
        if !missing.isEmpty { throw ModelConfigError.missingWeights(model: "vit", keys: missing) }
        if !wrong.isEmpty { throw ModelConfigError.weightShapes(model: "vit", mismatches: wrong) }
        var w: [String: Tensor] = [:]
        for (k, _) in expected { w[k] = try weights.tensor(k) }
        func t(_ k: String) throws -> Tensor {
            guard let v = w[k] else { throw ModelConfigError.missingWeights(model: "vit", keys: [k]) }
            return v
        }
        let e = config.embedDim, ps = config.patchSize
        patchEmbed = try Conv2dOperator(Conv2dParameters(inChannels: 3, outChannels: e, kernelH: ps, kernelW: ps,
                                                         strideH: ps, strideW: ps),
                                        weight: try t("patch_embed.proj.weight"), bias: try t("patch_embed.proj.bias"))
        clsToken = try t("cls_token")
        posEmbed = try t("pos_embed")
        normW = try t("norm.weight"); normB = try t("norm.bias")
        blocks = try (0..<config.depth).map { try ViTBlock(weights: w, prefix: "blocks.\($0).", config: config) }
    }

    /// `x += y` element-wise (same shapes).
    static func addInPlace(_ x: inout Tensor, _ y: Tensor) {
        y.withUnsafeBufferPointer { yb in
            x.withUnsafeMutableBufferPointer { xb in
                let n = min(xb.count, yb.count)
                guard let xp = xb.baseAddress, let yp = yb.baseAddress else { return }
                for i in 0..<n { xp[i] += yp[i] }
            }
        }
    }

    /// Rows `[from, from + count)` of every image of `[B, L, C]`.
    static func rows(_ x: Tensor, from: Int, count: Int) -> Tensor {
        let b = x.shape[0], l = x.shape[1], c = x.shape[2]
        var out = Tensor(zeros: [b, count, c], layout: .tokens)
        x.withUnsafeBufferPointer { xb in out.withUnsafeMutableBufferPointer { ob in
            guard let xp = xb.baseAddress, let op = ob.baseAddress, count > 0 else { return }
            for bi in 0..<b { (op + bi * count * c).update(from: xp + (bi * l + from) * c, count: count * c) }
        } }
        return out
    }

    /// `[cls (row 0 of x), rest]` per image: `[B, 1 + R, C]`.
    static func withClass(_ x: Tensor, _ rest: Tensor) -> Tensor {
        let b = x.shape[0], l = x.shape[1], c = x.shape[2], r = rest.shape[1]
        var out = Tensor(zeros: [b, 1 + r, c], layout: .tokens)
        x.withUnsafeBufferPointer { xb in rest.withUnsafeBufferPointer { rb in out.withUnsafeMutableBufferPointer { ob in
            guard let xp = xb.baseAddress, let op = ob.baseAddress else { return }
            for bi in 0..<b {
                (op + bi * (1 + r) * c).update(from: xp + bi * l * c, count: c)
                if r > 0, let rp = rb.baseAddress { (op + (bi * (1 + r) + 1) * c).update(from: rp + bi * r * c, count: r * c) }
            }
        } } }
        return out
    }

    /// Runs the backbone on `image` `[B, 3, Hi, Wi]` (Hi, Wi multiples of the patch size; the
    /// position embedding is resampled to the input grid when it differs).
    /// - Returns: `y` `[B, C, Hi/16, Wi/16]` (final patch tokens as a map), `cls` `[B, C]`; with
    ///   clustering also the taps `feat_alpha` `[B, 1+N, C]` (output of block alpha-1),
    ///   `clustered` `[B, 1+M, C]` and `before_recon` `[B, 1+M, C]`.
    /// - Throws: on an image shape the model cannot take.
    public func run(_ image: Tensor) throws -> [String: Tensor] {
        let ps = config.patchSize, e = config.embedDim
        guard image.rank == 4, image.shape[1] == 3, image.shape[2] >= ps, image.shape[3] >= ps,
              image.shape[2] % ps == 0, image.shape[3] % ps == 0 else {
            throw ModelConfigError.invalidField(model: "vit", field: "image", message: "expected [B, 3, H, W] with H, W multiples of \(ps), got \(image.shape)")
        }
        let b = image.shape[0], gh = image.shape[2] / ps, gw = image.shape[3] / ps, n = gh * gw
        let pos = try PosEmbedResample.resample(posEmbed, from: (config.posGridH, config.posGridW), to: (gh, gw))
        let patches = try patchEmbed.checkedCall(image)   // [B, C, gh, gw]
        var x = Tensor(uninitialized: [b, 1 + n, e], layout: .tokens)   // embed writes every row
        patches.withUnsafeBufferPointer { pb in clsToken.withUnsafeBufferPointer { cb in pos.withUnsafeBufferPointer { qb in
            x.withUnsafeMutableBufferPointer { xb in
                guard let pp = pb.baseAddress, let cp = cb.baseAddress, let qp = qb.baseAddress, let xp = xb.baseAddress else { return }
                Self.embed(pp, cls: cp, pos: qp, batch: b, tokens: n, channels: e, xp)
            }
        } } }

        var outs: [String: Tensor] = [:]
        let depth = config.depth
        guard let cc = config.cluster else {
            for blk in blocks { try blk(&x) }
            x = try NormKernels.layerNorm(x, weight: normW, bias: normB, eps: config.lnEps)
            return Self.finish(x, gh: gh, gw: gw, into: outs)
        }
        let clustering = try TokenClustering(grid: (gh, gw), cells: (cc.cellsH, cc.cellsW), window: cc.window, iters: cc.iters,
                                             temperature: Float(cc.temperature), classToken: true)
        let recon = try TokenReconstruction(k: cc.reconK, temperature: Float(cc.reconTemperature), stabilized: cc.reconStabilized)
        for i in 0..<cc.alpha { try blocks[i](&x) }
        outs["feat_alpha"] = x
        let feat = Self.rows(x, from: 1, count: n)
        x = try clustering(x).centres
        outs["clustered"] = x
        let m = cc.cellsH * cc.cellsW
        let centres = Self.rows(x, from: 1, count: m)
        for i in cc.alpha..<cc.beta { try blocks[i](&x) }
        if cc.beta == depth { x = try NormKernels.layerNorm(x, weight: normW, bias: normB, eps: config.lnEps) }
        outs["before_recon"] = x
        let y = try recon(feat: feat, centres: centres, x: Self.rows(x, from: 1, count: m)).y
        x = Self.withClass(x, y)
        if cc.beta < depth {
            for i in cc.beta..<depth { try blocks[i](&x) }
            x = try NormKernels.layerNorm(x, weight: normW, bias: normB, eps: config.lnEps)
        }
        return Self.finish(x, gh: gh, gw: gw, into: outs)
    }

    /// Adds `y` (patch tokens as `[B, C, gh, gw]`) and `cls` `[B, C]` to `outs`.
    static func finish(_ x: Tensor, gh: Int, gw: Int, into outs: [String: Tensor]) -> [String: Tensor] {
        var outs = outs
        let b = x.shape[0], l = x.shape[1], c = x.shape[2], n = gh * gw
        var y = Tensor(uninitialized: [b, c, gh, gw])   // transposeOut writes every element of y and cls
        var cls = Tensor(uninitialized: [b, c])
        x.withUnsafeBufferPointer { xb in y.withUnsafeMutableBufferPointer { yb in cls.withUnsafeMutableBufferPointer { cb in
            guard let xp = xb.baseAddress, let yp = yb.baseAddress, let cp = cb.baseAddress else { return }
            transposeOut(xp, batch: b, rows: l, tokens: n, channels: c, yp, cp)
        } } }
        outs["y"] = y
        outs["cls"] = cls
        return outs
    }

    /// `[B, 1+N, C]` -> map `[B, C, N]` and class rows `[B, C]`.
    static func transposeOut(_ x: UnsafePointer<Float>, batch: Int, rows l: Int, tokens n: Int, channels c: Int,
                             _ y: UnsafeMutablePointer<Float>, _ cls: UnsafeMutablePointer<Float>) {
        for bi in 0..<batch {
            let xb = x + bi * l * c
            (cls + bi * c).update(from: xb, count: c)
            forEachTile(tokens: n, channels: c) { t, k in y[(bi * c + k) * n + t] = xb[(1 + t) * c + k] }
        }
    }

    /// Calls `body(t, k)` for every token `t < tokens` and channel `k < channels`, in 32 x 32 tiles, so that a
    /// transpose between `[tokens, channels]` and `[channels, tokens]` keeps both sides' lines in L1.
    @inline(__always)
    static func forEachTile(tokens n: Int, channels c: Int, _ body: (Int, Int) -> Void) {
        let tile = 32
        for t0 in stride(from: 0, to: n, by: tile) {
            let t1 = min(n, t0 + tile)
            for k0 in stride(from: 0, to: c, by: tile) {
                let k1 = min(c, k0 + tile)
                for t in t0..<t1 { for k in k0..<k1 { body(t, k) } }
            }
        }
    }

    /// `x[b, 0] = cls + pos[0]`, `x[b, 1 + t, k] = patches[b, k, t] + pos[1 + t, k]`.
    static func embed(_ p: UnsafePointer<Float>, cls: UnsafePointer<Float>, pos: UnsafePointer<Float>, batch: Int,
                      tokens n: Int, channels c: Int, _ x: UnsafeMutablePointer<Float>) {
        for bi in 0..<batch {
            let xb = x + bi * (1 + n) * c
            for k in 0..<c { xb[k] = cls[k] + pos[k] }
            forEachTile(tokens: n, channels: c) { t, k in xb[(1 + t) * c + k] = p[(bi * c + k) * n + t] + pos[(1 + t) * c + k] }
        }
    }
}
