import Foundation

/// Options of a Bi-level Routing Attention layer (`specs/biformer.md` §1.1; reference
/// `ops/bra_legacy.py` `BiLevelRoutingAttention`). Only the released settings are supported:
/// `kv_downsample_mode "identity"`, `param_attention "qkvo"`, hard routing without router weights.
public struct BRAOptions: Sendable, Equatable {
    /// C, input/output channels (`dim`).
    public var dim: Int
    /// Heads m; must divide `qkDim` and `dim`.
    public var numHeads: Int
    /// S, regions per side (`n_win`).
    public var nWin: Int
    /// Total q/k width (`qk_dim`, = dim in the released models).
    public var qkDim: Int
    /// Explicit scale, or nil for `qk_dim ** -0.5` (the whole qk width).
    public var qkScale: Double?
    /// Routed regions per query region.
    public var topk: Int
    /// LePE depthwise kernel size (padding k/2).
    public var sideDWConv: Int
    /// Pad the input bottom/right to a multiple of `n_win` before the projection, crop after `wo`.
    public var autoPad: Bool

    /// Creates options; `qkDim` defaults to `dim`, heads to `qkDim / 32`.
    public init(dim: Int, numHeads: Int? = nil, nWin: Int, qkDim: Int? = nil, qkScale: Double? = nil, topk: Int,
                sideDWConv: Int = 5, autoPad: Bool) {
        self.dim = dim
        self.qkDim = qkDim ?? dim
        self.numHeads = numHeads ?? max(1, (qkDim ?? dim) / 32)
        self.nWin = nWin; self.qkScale = qkScale; self.topk = topk; self.sideDWConv = sideDWConv; self.autoPad = autoPad
    }

    /// Reads the golden-case / config attributes (`dim`, `num_heads`, `n_win`, `qk_dim`, `qk_scale`, `topk`,
    /// `side_dwconv`, `auto_pad`, and the fixed options, which must have their released values).
    /// - Throws: `ModelConfigError.invalidField` or `BiFormerError.unsupported`.
    public init(json: JSONValue) throws {
        let r = try ConfigReader(json, model: "biformer")
        let dim = try r.int("dim")
        let qk = try r.int("qk_dim", default: dim)
        self.init(dim: dim, numHeads: try r.int("num_heads", default: max(1, qk / 32)), nWin: try r.int("n_win"),
                  qkDim: qk, qkScale: r.has("qk_scale") ? try r.double("qk_scale") : nil, topk: try r.int("topk"),
                  sideDWConv: try r.int("side_dwconv", default: 5), autoPad: try r.bool("auto_pad", default: false))
        try BRAOptions.checkFixed(r)
    }

    /// Rejects options the released models never use.
    static func checkFixed(_ r: ConfigReader) throws {
        if try r.string("kv_downsample_mode", default: "identity") != "identity" { throw BiFormerError.unsupported("kv_downsample_mode") }
        if try r.string("param_attention", default: "qkvo") != "qkvo" { throw BiFormerError.unsupported("param_attention") }
        for f in ["param_routing", "diff_routing", "soft_routing"] {
            if try r.bool(f, default: false) { throw BiFormerError.unsupported("\(f) = true") }
        }
    }

    /// The attention and routing scale.
    public var scale: Double { qkScale ?? 1 / Double(qkDim).squareRoot() }
}

/// Bi-level Routing Attention (`specs/biformer.md` §1; reference `ops/bra_legacy.py`).
///
/// Input and output **NHWC** `[N, H, W, C]`. Weights (keys relative to the module):
/// `qkv.qkv.weight [2·qk+C, C]`, `qkv.qkv.bias`, `wo.weight [C, C]`, `wo.bias`,
/// `lepe.weight [C, 1, k, k]`, `lepe.bias`. Thread-safe for concurrent calls.
public final class BiLevelRoutingAttention: @unchecked Sendable {
    /// The layer's options.
    public let options: BRAOptions
    let qkv: LinearOperator
    let wo: LinearOperator
    let lepe: Conv2dOperator

    /// Builds the layer from weights under `prefix` (e.g. `stages.0.0.attn.`).
    /// - Throws: `ModelConfigError` for missing / mis-shaped weights or invalid options.
    public convenience init(options: BRAOptions, weights: WeightSource, prefix: String = "") throws {
        try self.init(options: options, reader: BiFormerWeightReader(weights, prefix: prefix))
    }

    init(options o: BRAOptions, reader r: BiFormerWeightReader) throws {
        guard o.dim > 0, o.qkDim > 0, o.numHeads > 0, o.dim % o.numHeads == 0, o.qkDim % o.numHeads == 0 else {
            throw ModelConfigError.invalidField(model: "biformer", field: "num_heads",
                                                message: "\(o.numHeads) heads must divide dim \(o.dim) and qk_dim \(o.qkDim)")
        }
        guard o.nWin > 0, o.topk >= 1, o.topk <= o.nWin * o.nWin else {
            throw ModelConfigError.invalidField(model: "biformer", field: "topk",
                                                message: "topk \(o.topk) must be in 1...n_win² (n_win \(o.nWin))")
        }
        guard o.sideDWConv > 0, o.sideDWConv % 2 == 1 else {
            throw ModelConfigError.invalidField(model: "biformer", field: "side_dwconv", message: "must be a positive odd kernel size")
        }
        options = o
        let c = o.dim, width = 2 * o.qkDim + c
        qkv = try LinearOperator(weight: try r.read("qkv.qkv.weight", [width, c]), bias: try r.read("qkv.qkv.bias", [width]))
        wo = try LinearOperator(weight: try r.read("wo.weight", [c, c]), bias: try r.read("wo.bias", [c]))
        lepe = try BiFormerLayout.depthwise(channels: c, kernel: o.sideDWConv,
                                             weight: try r.read("lepe.weight", [c, 1, o.sideDWConv, o.sideDWConv]),
                                             bias: try r.read("lepe.bias", [c]))
    }

    /// Runs the layer on `x` NHWC `[N, H, W, C]`, returning `y` NHWC `[N, H, W, C]`.
    /// - Throws: `BiFormerError` for a wrong shape, or a map not divisible by `n_win` without auto-pad.
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try forward(x).y }

    /// Runs the layer and also returns the routing indices `[N, n_win², topk]` (descending affinity,
    /// regions counted row-major on the padded grid).
    /// - Throws: as `callAsFunction`.
    public func forward(_ x: Tensor) throws -> (y: Tensor, routing: IndexTensor) {
        let o = options
        guard x.rank == 4, x.shape[3] == o.dim else { throw BiFormerError.inputShape("BRA input", "NHWC [N, H, W, \(o.dim)]", x.shape) }
        let n = x.shape[0], hIn = x.shape[1], wIn = x.shape[2], c = o.dim, S = o.nWin
        var padB = 0, padR = 0
        if o.autoPad {
            padB = (S - hIn % S) % S
            padR = (S - wIn % S) % S
        } else if hIn % S != 0 || wIn % S != 0 {
            throw BiFormerError.notDivisible(height: hIn, width: wIn, nWin: S)
        }
        let h = hIn + padB, w = wIn + padR
        let g = RoutedAttentionGeometry(batch: n, height: h, width: w, regionsPerSide: S, qkDim: o.qkDim, valueDim: c,
                                        heads: o.numHeads, topk: o.topk)
        try g.validate()
        // 1. Zero-pad the (normalised) input bottom/right, then the fused projection (§1.2, §1.3).
        let xp: Tensor
        if padB > 0 || padR > 0 {
            xp = Tensor(zeros: [n, h, w, c], layout: .nhwc)
            BRAPad.pad(x.storage.pointer, into: xp.storage.pointer, n: n, hIn: hIn, wIn: wIn, h: h, w: w, c: c)
        } else {
            xp = x
        }
        let rows = n * h * w, rs = g.rowStride
        let t = Tensor(zeros: [n, h, w, rs], layout: .nhwc)
        qkv.forward(input: xp.storage.pointer, rows: rows, output: t.storage.pointer)
        // 2. Routing (§1.4, §1.5).
        var routing = [Int](repeating: 0, count: n * g.regions * o.topk)
        routing.withUnsafeMutableBufferPointer { rb in
            guard let base = rb.baseAddress else { return }
            RoutedAttention.route(qkv: t.storage.pointer, geometry: g, scale: o.scale, routing: base)
        }
        // 3. Token attention over the routed regions, in place (§1.6).
        let attn = Tensor(zeros: [n, h, w, c], layout: .nhwc)
        routing.withUnsafeBufferPointer { rb in
            guard let base = rb.baseAddress else { return }
            RoutedAttention.attend(qkv: t.storage.pointer, geometry: g, routing: base, scale: Float(o.scale),
                                   output: attn.storage.pointer)
        }
        // 4. LePE on v of the padded map (§1.7), added to the attention output.
        let v = Tensor(zeros: [n, c, h, w], layout: .nchw)
        BRAPad.extractValueNCHW(t.storage.pointer, rowStride: rs, offset: 2 * o.qkDim, into: v.storage.pointer, n: n, hw: h * w, c: c)
        let le = try lepe.checkedCall(v)
        BRAPad.addNCHW(le.storage.pointer, intoNHWC: attn.storage.pointer, n: n, hw: h * w, c: c)
        // 5. Output projection, then crop (§1.8).
        var y = Tensor(zeros: [n, h, w, c], layout: .nhwc)
        wo.forward(input: attn.storage.pointer, rows: rows, output: y.storage.pointer)
        if padB > 0 || padR > 0 {
            let cropped = Tensor(zeros: [n, hIn, wIn, c], layout: .nhwc)
            BRAPad.crop(y.storage.pointer, into: cropped.storage.pointer, n: n, h: h, w: w, hOut: hIn, wOut: wIn, c: c)
            y = cropped
        }
        let idx = IndexTensor(shape: [n, g.regions, o.topk], values: routing.map { Int64($0) })
        return (y, idx)
    }
}

/// Padding, cropping and channel-extraction loops of the BRA layer.
enum BRAPad {
    /// Copies `[n, hIn, wIn, c]` into the top-left of a zeroed `[n, h, w, c]`.
    static func pad(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, n: Int, hIn: Int, wIn: Int, h: Int, w: Int, c: Int) {
        for b in 0..<n {
            for r in 0..<hIn {
                (dst + ((b * h + r) * w) * c).update(from: src + ((b * hIn + r) * wIn) * c, count: wIn * c)
            }
        }
    }

    /// Copies the top-left `[n, hOut, wOut, c]` of `[n, h, w, c]`.
    static func crop(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, n: Int, h: Int, w: Int, hOut: Int, wOut: Int, c: Int) {
        for b in 0..<n {
            for r in 0..<hOut {
                (dst + ((b * hOut + r) * wOut) * c).update(from: src + ((b * h + r) * w) * c, count: wOut * c)
            }
        }
    }

    /// `dst[b, ch, s] = src[(b·hw + s)·rowStride + offset + ch]`: the v channels as an NCHW map.
    static func extractValueNCHW(_ src: UnsafePointer<Float>, rowStride: Int, offset: Int, into dst: UnsafeMutablePointer<Float>,
                                 n: Int, hw: Int, c: Int) {
        Threading.parallelFor(n * c, grain: max(1, 4096 / max(1, hw))) { bc in
            let b = bc / c, ch = bc % c
            let s0 = src + b * hw * rowStride + offset + ch
            let d = dst + bc * hw
            for s in 0..<hw { d[s] = s0[s * rowStride] }
        }
    }

    /// `dst[b, s, ch] += src[b, ch, s]`.
    static func addNCHW(_ src: UnsafePointer<Float>, intoNHWC dst: UnsafeMutablePointer<Float>, n: Int, hw: Int, c: Int) {
        Threading.parallelFor(n * hw, grain: max(1, 4096 / max(1, c))) { bs in
            let b = bs / hw, s = bs % hw
            let d = dst + bs * c
            let s0 = src + b * c * hw + s
            for ch in 0..<c { d[ch] += s0[ch * hw] }
        }
    }
}
