import Foundation

/// The BiFormer backbone (`specs/biformer.md` §4; reference `models/biformer.py` `BiFormer`, dense
/// `semantic_segmentation/models_mm/biformer_mm.py` `BiFormer_mm`).
///
/// Input: an NCHW image `[N, 3, H, W]`. Output (`run`): `logits [N, num_classes]` for the
/// classification variant (or `features [N, C3]` when `num_classes == 0`), or `out0…out3`, NCHW,
/// strides 4/8/16/32, each after its LayerNorm2d, for the dense variant.
/// Weights under the official state-dict keys (§6); a dense checkpoint may carry the mmseg prefix
/// `backbone.`; `num_batches_tracked` is ignored. Thread-safe for concurrent calls.
public final class BiFormer: @unchecked Sendable {
    /// The configuration.
    public let config: BiFormerConfig
    /// The key prefix the weights were read under (`""` or `backbone.`).
    public let weightPrefix: String

    struct BN { let weight: Tensor, bias: Tensor, mean: Tensor, variance: Tensor }
    let stemConv0: Conv2dOperator, stemBN0: BN, stemConv1: Conv2dOperator, stemBN1: BN
    let downConvs: [Conv2dOperator], downBNs: [BN]
    let stages: [[BiFormerBlock]]
    let norm: BN?
    let head: LinearOperator?
    let extraNorms: [(Tensor, Tensor)]

    /// Builds the model and reads every weight; unused keys under the model's prefix are refused.
    /// - Throws: `ModelConfigError` for an invalid config or missing / unexpected / mis-shaped weights.
    public init(config c: BiFormerConfig, weights: WeightSource) throws {
        try c.validate()
        config = c
        let prefix = (weights.shape(of: "downsample_layers.0.0.weight") == nil && weights.shape(of: "backbone.downsample_layers.0.0.weight") != nil)
            ? "backbone." : ""
        weightPrefix = prefix
        let r = BiFormerWeightReader(weights, prefix: prefix)
        func bn(_ p: String, _ ch: Int) throws -> BN {
            BN(weight: try r.read(p + "weight", [ch]), bias: try r.read(p + "bias", [ch]),
               mean: try r.read(p + "running_mean", [ch]), variance: try r.read(p + "running_var", [ch]))
        }
        func conv(_ p: String, _ cin: Int, _ cout: Int) throws -> Conv2dOperator {
            let pp = Conv2dParameters(inChannels: cin, outChannels: cout, kernelH: 3, kernelW: 3, strideH: 2, strideW: 2, padH: 1, padW: 1)
            return try Conv2dOperator(pp, weight: try r.read(p + "weight", [cout, cin, 3, 3]), bias: try r.read(p + "bias", [cout]))
        }
        let e = c.embedDim
        stemConv0 = try conv("downsample_layers.0.0.", 3, e[0] / 2)
        stemBN0 = try bn("downsample_layers.0.1.", e[0] / 2)
        stemConv1 = try conv("downsample_layers.0.3.", e[0] / 2, e[0])
        stemBN1 = try bn("downsample_layers.0.4.", e[0])
        var dc: [Conv2dOperator] = [], db: [BN] = []
        for i in 1..<4 {
            dc.append(try conv("downsample_layers.\(i).0.", e[i - 1], e[i]))
            db.append(try bn("downsample_layers.\(i).1.", e[i]))
        }
        downConvs = dc; downBNs = db
        var st: [[BiFormerBlock]] = []
        for i in 0..<4 {
            let heads = c.topks[i] == -2 ? 8 : c.qkDims[i] / c.headDim
            let att = BRAOptions(dim: e[i], numHeads: heads, nWin: c.nWin, qkDim: c.qkDims[i], qkScale: c.qkScale, topk: c.topks[i],
                                 sideDWConv: c.sideDWConv, autoPad: c.autoPad)
            let o = BiFormerBlockOptions(attention: att, beforeAttnDWConv: c.beforeAttnDWConv, mlpRatio: c.mlpRatios[i])
            st.append(try (0..<c.depth[i]).map { j in try BiFormerBlock(options: o, reader: r.scoped("stages.\(i).\(j).")) })
        }
        stages = st
        if c.variant == .classification {
            norm = try bn("norm.", e[3])
            head = c.numClasses > 0
                ? try LinearOperator(weight: try r.read("head.weight", [c.numClasses, e[3]]), bias: try r.read("head.bias", [c.numClasses]))
                : nil
            extraNorms = []
        } else {
            norm = nil; head = nil
            extraNorms = try (0..<4).map { i in (try r.read("extra_norms.\(i).weight", [e[i]]), try r.read("extra_norms.\(i).bias", [e[i]])) }
        }
        let unexpected = weights.keys.filter {
            $0.hasPrefix(prefix) && !r.record.keys.contains($0) && !$0.hasSuffix("num_batches_tracked")
        }
        if !unexpected.isEmpty { throw ModelConfigError.unexpectedWeights(model: "biformer", keys: unexpected) }
    }

    /// Convenience: a preset (`tiny`, `small`, `base`) with the given variant.
    /// - Throws: `ModelConfigError` as `init(config:weights:)`.
    public convenience init(preset: String, variant: BiFormerConfig.Variant, numClasses: Int = 1000, weights: WeightSource) throws {
        try self.init(config: try BiFormerConfig.preset(preset, variant: variant, numClasses: numClasses), weights: weights)
    }

    /// Runs the model on an NCHW image `[N, 3, H, W]`.
    /// - Returns: `["logits": [N, num_classes]]` (classification; `"features": [N, C3]` without head) or
    ///   `["out0": …, "out3": …]` NCHW (dense).
    /// - Throws: `BiFormerError.inputShape`, `BiFormerError.inputSize` (a size the classification config rejects).
    public func run(_ x: Tensor) throws -> [String: Tensor] {
        let feats = try forwardStages(x)
        let c = config
        if c.variant == .dense {
            var out: [String: Tensor] = [:]
            for i in 0..<4 {
                out["out\(i)"] = try NormKernels.layerNorm2d(feats[i], weight: extraNorms[i].0, bias: extraNorms[i].1, eps: 1e-6)
            }
            return out
        }
        guard let norm else { return [:] }
        let s = try batchNorm(feats[3], norm)
        let n = s.shape[0], ch = s.shape[1], hw = s.shape[2] * s.shape[3]
        let pooled = Tensor(zeros: [n, ch])
        BiFormer.meanPlanes(s.storage.pointer, planes: n * ch, size: hw, into: pooled.storage.pointer)
        guard let head else { return ["features": pooled] }
        return ["logits": try head.checkedCall(pooled)]
    }

    /// The four un-normalised stage outputs `s0…s3`, NCHW (strides 4/8/16/32).
    /// - Throws: as `run`.
    public func forwardStages(_ x: Tensor) throws -> [Tensor] {
        guard x.rank == 4, x.shape[1] == 3, x.shape[2] > 0, x.shape[3] > 0 else {
            throw BiFormerError.inputShape("image", "NCHW [N, 3, H, W]", x.shape)
        }
        try config.checkInputSize(height: x.shape[2], width: x.shape[3])
        var t = try batchNorm(try stemConv0.checkedCall(x), stemBN0)
        Activation.gelu.apply(t.storage.pointer, count: t.count)
        t = try batchNorm(try stemConv1.checkedCall(t), stemBN1)
        var feats: [Tensor] = []
        for i in 0..<4 {
            if i > 0 { t = try batchNorm(try downConvs[i - 1].checkedCall(t), downBNs[i - 1]) }
            for b in stages[i] { t = try b(t) }
            feats.append(t)
        }
        return feats
    }

    func batchNorm(_ x: Tensor, _ b: BN) throws -> Tensor {
        try NormKernels.batchNorm(x, mean: b.mean, variance: b.variance, weight: b.weight, bias: b.bias, eps: 1e-5)
    }

    /// `out[p] = mean(x[p, 0..<size])` (float64 accumulation).
    static func meanPlanes(_ x: UnsafePointer<Float>, planes: Int, size: Int, into out: UnsafeMutablePointer<Float>) {
        for p in 0..<planes {
            var s = 0.0
            let row = x + p * size
            for i in 0..<size { s += Double(row[i]) }
            out[p] = Float(s / Double(max(1, size)))
        }
    }
}
