import Foundation

/// Options of one BiFormer block (`specs/biformer.md` §3; reference `models/biformer.py` `Block`).
public struct BiFormerBlockOptions: Sendable, Equatable {
    /// BRA options; `topk > 0` selects BRA, `topk == -2` the stage-4 `AttentionLePE`.
    public var attention: BRAOptions
    /// Depthwise positional conv kernel (`before_attn_dwconv`, padding fixed at 1 in the reference).
    public var beforeAttnDWConv: Int
    /// MLP hidden = `Int(mlpRatio · dim)`.
    public var mlpRatio: Double

    /// Creates block options.
    public init(attention: BRAOptions, beforeAttnDWConv: Int = 3, mlpRatio: Double = 3) {
        self.attention = attention; self.beforeAttnDWConv = beforeAttnDWConv; self.mlpRatio = mlpRatio
    }

    /// Reads the `block` golden-case attributes (every BRA attr, plus `before_attn_dwconv`, `mlp_ratio`,
    /// `mlp_dwconv` (must be false), `layer_scale_init_value` (must be ≤ 0), `pre_norm` (must be true)).
    /// - Throws: `ModelConfigError.invalidField` or `BiFormerError.unsupported`.
    public init(json: JSONValue) throws {
        let r = try ConfigReader(json, model: "biformer")
        let dim = try r.int("dim")
        let topk = try r.int("topk")
        let qk = try r.int("qk_dim", default: dim)
        let att = BRAOptions(dim: dim, numHeads: topk == -2 ? 8 : try r.int("num_heads", default: max(1, qk / 32)),
                             nWin: try r.int("n_win", default: 7), qkDim: qk,
                             qkScale: r.has("qk_scale") ? try r.double("qk_scale") : nil, topk: topk,
                             sideDWConv: try r.int("side_dwconv", default: 5), autoPad: try r.bool("auto_pad", default: false))
        try BRAOptions.checkFixed(r)
        if try r.bool("mlp_dwconv", default: false) { throw BiFormerError.unsupported("mlp_dwconv = true") }
        if try r.double("layer_scale_init_value", default: -1) > 0 { throw BiFormerError.unsupported("layer scale") }
        if try !r.bool("pre_norm", default: true) { throw BiFormerError.unsupported("pre_norm = false") }
        self.init(attention: att, beforeAttnDWConv: try r.int("before_attn_dwconv", default: 3),
                  mlpRatio: try r.double("mlp_ratio", default: 3))
    }
}

/// One BiFormer block (`specs/biformer.md` §3): input and output **NCHW** `[N, C, H, W]`.
///
/// `x = x + pos_embed(x)` (depthwise, NCHW, unpadded); then in NHWC
/// `x = x + attn(norm1(x))`, `x = x + mlp(norm2(x))` with LayerNorm eps 1e-6 and an exact-GELU MLP.
/// Weights under the official keys (`pos_embed.*`, `norm1.*`, `attn.*`, `norm2.*`, `mlp.0.*`, `mlp.3.*`).
public final class BiFormerBlock: @unchecked Sendable {
    /// The block's options.
    public let options: BiFormerBlockOptions
    let posEmbed: Conv2dOperator
    let norm1: (Tensor, Tensor)
    let norm2: (Tensor, Tensor)
    let bra: BiLevelRoutingAttention?
    let full: AttentionLePE?
    let fc1: LinearOperator
    let fc2: LinearOperator

    /// Builds the block from weights under `prefix` (e.g. `stages.2.5.`).
    /// - Throws: `ModelConfigError` for missing / mis-shaped weights or invalid options.
    public convenience init(options: BiFormerBlockOptions, weights: WeightSource, prefix: String = "") throws {
        try self.init(options: options, reader: BiFormerWeightReader(weights, prefix: prefix))
    }

    init(options o: BiFormerBlockOptions, reader r: BiFormerWeightReader) throws {
        let c = o.attention.dim
        guard c > 0 else { throw ModelConfigError.invalidField(model: "biformer", field: "dim", message: "must be positive") }
        guard o.beforeAttnDWConv == 3 else {
            // The reference hard-codes padding 1, so only a 3×3 kernel keeps the map size.
            throw BiFormerError.unsupported("before_attn_dwconv \(o.beforeAttnDWConv) (only 3 is used)")
        }
        options = o
        let pp = Conv2dParameters(inChannels: c, outChannels: c, kernelH: 3, kernelW: 3, padH: 1, padW: 1, groups: c)
        posEmbed = try Conv2dOperator(pp, weight: try r.read("pos_embed.weight", [c, 1, 3, 3]), bias: try r.read("pos_embed.bias", [c]))
        norm1 = (try r.read("norm1.weight", [c]), try r.read("norm1.bias", [c]))
        norm2 = (try r.read("norm2.weight", [c]), try r.read("norm2.bias", [c]))
        if o.attention.topk == -2 {
            full = try AttentionLePE(dim: c, sideDWConv: o.attention.sideDWConv, reader: r.scoped("attn."))
            bra = nil
        } else if o.attention.topk > 0 {
            bra = try BiLevelRoutingAttention(options: o.attention, reader: r.scoped("attn."))
            full = nil
        } else {
            throw BiFormerError.unsupported("topk \(o.attention.topk) (only > 0 or -2 are used by released models)")
        }
        let hidden = Int(o.mlpRatio * Double(c))
        guard hidden > 0 else { throw ModelConfigError.invalidField(model: "biformer", field: "mlp_ratio", message: "hidden size must be positive") }
        fc1 = try LinearOperator(weight: try r.read("mlp.0.weight", [hidden, c]), bias: try r.read("mlp.0.bias", [hidden]), activation: .gelu)
        fc2 = try LinearOperator(weight: try r.read("mlp.3.weight", [c, hidden]), bias: try r.read("mlp.3.bias", [c]))
    }

    /// Runs the block on `x` NCHW `[N, C, H, W]`, returning NCHW `[N, C, H, W]`.
    /// - Throws: `BiFormerError` for a wrong shape or a BRA map not divisible by `n_win` without auto-pad.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let nhwc = try forwardNHWC(x)
        return BiFormerLayout.toNCHW(nhwc)
    }

    /// Runs the block on NCHW `x` and returns the result in **NHWC** `[N, H, W, C]`.
    func forwardNHWC(_ x: Tensor) throws -> Tensor {
        let c = options.attention.dim
        guard x.rank == 4, x.shape[1] == c else { throw BiFormerError.inputShape("block input", "NCHW [N, \(c), H, W]", x.shape) }
        let n = x.shape[0], h = x.shape[1 + 1], w = x.shape[3]
        if n == 0 || h == 0 || w == 0 { return Tensor(zeros: [n, h, w, c], layout: .nhwc) }
        let pos = try posEmbed.checkedCall(x)
        BiFormerLayout.addInPlace(pos.storage.pointer, x.storage.pointer, count: pos.count)
        let xh = BiFormerLayout.toNHWC(pos)
        let rows = n * h * w
        let n1 = try NormKernels.layerNorm(xh, weight: norm1.0, bias: norm1.1, eps: 1e-6)
        let a: Tensor
        if let bra { a = try bra(n1) } else if let full { a = try full(n1) } else { throw BiFormerError.unsupported("no attention") }
        BiFormerLayout.addInPlace(xh.storage.pointer, a.storage.pointer, count: xh.count)
        let n2 = try NormKernels.layerNorm(xh, weight: norm2.0, bias: norm2.1, eps: 1e-6)
        let hid = Tensor(zeros: [rows, fc1.outFeatures])
        fc1.forward(input: n2.storage.pointer, rows: rows, output: hid.storage.pointer)
        let m = Tensor(zeros: [rows, c])
        fc2.forward(input: hid.storage.pointer, rows: rows, output: m.storage.pointer)
        BiFormerLayout.addInPlace(xh.storage.pointer, m.storage.pointer, count: xh.count)
        return xh
    }
}
