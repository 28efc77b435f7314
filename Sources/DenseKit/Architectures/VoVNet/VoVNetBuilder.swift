import Foundation

/// Turns a `VoVNetConfig` and checked weights into a `Graph` (spec `vovnet.md` 1.1-1.7;
/// timm `vovnet.py` `VovNet`, `OsaStage`, `OsaBlock`).
///
/// Every conv + BN + ReLU becomes one `Conv2d` node with the BN folded (float64, eps
/// `bn_eps`) and ReLU fused; a separable conv is a depthwise `Conv2d` node (`.conv_dw`)
/// then a 1x1 `Conv2d` node with the folded BN and ReLU (`.conv_pw`). Node names are the
/// timm module paths. The graph has one input `x` `[N, in_chans, H, W]` and the outputs
/// `config.outputNames` (`feat2`...`feat32`, or `logits`).
public enum VoVNetBuilder {
    /// Validates the weights against the config and builds the graph.
    /// - Parameters:
    ///   - config: the network; `key_style`/`key_prefix` nil are detected from the keys; a
    ///     detectron2 key style implies eSE on every block.
    ///   - weights: timm or detectron2 names (spec 1.8, 3.3), optionally prefixed.
    /// - Throws: `ModelConfigError` (config, missing / unexpected / wrong-shape tensors naming
    ///   the keys), `GraphError` (inconsistent weights), `WeightsError` (unreadable tensors).
    public static func build(config: VoVNetConfig, weights: any WeightSource) throws -> Graph {
        let (c, w) = try prepare(config: config, weights: weights)
        return try build(resolvedConfig: c, weights: w)
    }

    /// The effective config (detectron2 names force `attn_all_blocks`) and the checked weights.
    /// - Throws: as `build(config:weights:)`.
    public static func prepare(config: VoVNetConfig, weights: any WeightSource) throws -> (VoVNetConfig, VoVNetWeights) {
        try config.validate()
        var c = config
        let style = try c.keyStyle ?? VoVNetWeights.detectStyle(weights.keys)
        if style == .detectron2 {
            guard c.ese else {
                throw ModelConfigError.keyStyle(model: "vovnet", message: "detectron2 VoVNet weights always carry eSE; the config has attn \"\"")
            }
            c.attnAllBlocks = true
        }
        c.keyStyle = style
        let w = try VoVNetWeights.resolve(source: weights, expected: VoVNetKeys.expected(c), style: style, prefix: c.keyPrefix,
                                          ignoreHead: c.featuresOnly,
                                          depthwise: c.depthwise)
        c.keyPrefix = w.prefix
        return (c, w)
    }

    static func build(resolvedConfig c: VoVNetConfig, weights w: VoVNetWeights) throws -> Graph {
        var g = GraphBuilder()
        let x = g.input("x")
        let s = c.stemChannels
        let eps = c.bnEps
        // Stem: stem.0 plain 3x3/2; stem.1 3x3/1; stem.2 3x3/(stem_stride/2), separable when depthwise.
        var h = try convNormAct(&g, w, "stem.0", x, cin: c.inChannels, cout: s[0], k: 3, stride: 2, eps: eps)
        var features: [Int: String] = [:]
        if c.depthwise {
            h = try separable(&g, w, "stem.1", h, cin: s[0], cout: s[1], stride: 1, eps: eps)
            if c.stemStride == 4 { features[0] = h }
            h = try separable(&g, w, "stem.2", h, cin: s[1], cout: s[2], stride: c.stemStride / 2, eps: eps)
        } else {
            h = try convNormAct(&g, w, "stem.1", h, cin: s[0], cout: s[1], k: 3, stride: 1, eps: eps)
            if c.stemStride == 4 { features[0] = h }
            h = try convNormAct(&g, w, "stem.2", h, cin: s[1], cout: s[2], k: 3, stride: c.stemStride / 2, eps: eps)
        }
        if c.stemStride == 2 { features[0] = h }
        for (i, stage) in c.blocks.enumerated() {
            if c.stageDownsamples(i) {
                h = g.add("stages.\(i).pool", try MaxPool2d(parameters: VoVNetBuilder.stagePool, name: "stages.\(i).pool"), inputs: [h])
            }
            for (j, spec) in stage.enumerated() {
                h = try addOsaBlock(&g, w, prefix: "stages.\(i).blocks.\(j).", input: h, spec: spec, eps: eps)
            }
            features[i + 1] = h
        }
        if c.featuresOnly {
            for (name, idx) in zip(c.outputNames, c.outIndices) {
                guard let v = features[idx] else { throw ModelConfigError.invalidField(model: "vovnet", field: "out_indices", message: "no feature \(idx)") }
                g.output(name, v)
            }
        } else {
            var y = g.add("head.global_pool", GlobalAvgPool(flatten: true), inputs: [h])
            if c.numClasses > 0 {
                y = g.add("head.fc", try Linear(weight: try w.tensor("head.fc.weight"), bias: try w.tensor("head.fc.bias"), name: "head.fc"), inputs: [y])
            }
            g.output("logits", y)
        }
        return try g.build()
    }

    /// The inter-stage pool: kernel 3, stride 2, no padding, ceil mode (spec 1.6).
    static let stagePool = Pool2dParameters(kernelH: 3, kernelW: 3, strideH: 2, strideW: 2, padH: 0, padW: 0, ceilMode: true)

    /// Adds one OSA block (spec 1.4) whose weights are `<prefix>conv_mid.0.conv.weight`, ...;
    /// `prefix` is empty or ends with a dot. Returns the block output's value name.
    /// - Throws: `GraphError.invalidWeights`, or the weights' errors.
    public static func addOsaBlock(_ g: inout GraphBuilder, _ w: VoVNetWeights, prefix: String, input: String,
                                   spec b: VoVNetBlockSpec, eps: Double) throws -> String {
        var outs = [input]
        var h = input
        if b.hasReduction {
            h = try convNormAct(&g, w, prefix + "conv_reduction", h, cin: b.inChannels, cout: b.midChannels, k: 1, stride: 1, eps: eps)
        }
        for l in 0..<b.layers {
            let cin = (l == 0 && !b.hasReduction) ? b.inChannels : b.midChannels
            let name = prefix + "conv_mid.\(l)"
            h = b.depthwise
                ? try separable(&g, w, name, h, cin: cin, cout: b.midChannels, stride: 1, eps: eps)
                : try convNormAct(&g, w, name, h, cin: cin, cout: b.midChannels, k: 3, stride: 1, eps: eps)
            outs.append(h)
        }
        var y = g.add(prefix + "concat", Concat(axis: 1), inputs: outs)
        y = try convNormAct(&g, w, prefix + "conv_concat", y, cin: b.concatChannels, cout: b.outChannels, k: 1, stride: 1, eps: eps)
        if b.ese {
            let ese = try EffectiveSE(fcWeight: try w.tensor(prefix + "attn.fc.weight"), fcBias: try w.tensor(prefix + "attn.fc.bias"),
                                      name: prefix + "attn")
            y = g.add(prefix + "attn", ese, inputs: [y])
        }
        if b.residual {
            guard b.inChannels == b.outChannels else {
                throw GraphError.invalidWeights(layer: prefix.isEmpty ? "osa_block" : String(prefix.dropLast()),
                                                message: "a residual block needs in_chs == out_chs, got \(b.inChannels) and \(b.outChannels)")
            }
            y = g.add(prefix + "residual", Add(), inputs: [y, input])
        }
        return y
    }

    /// `ConvNormAct` (spec 1.1): k x k conv, symmetric padding `((s-1)+(k-1))/2`, BN folded, ReLU fused.
    static func convNormAct(_ g: inout GraphBuilder, _ w: VoVNetWeights, _ name: String, _ x: String,
                            cin: Int, cout: Int, k: Int, stride: Int, eps: Double) throws -> String {
        let pad = ((stride - 1) + (k - 1)) / 2
        let p = Conv2dParameters(inChannels: cin, outChannels: cout, kernelH: k, kernelW: k, strideH: stride, strideW: stride,
                                 padH: pad, padW: pad, activation: .relu)
        let layer = try Conv2d(parameters: p, weight: try w.tensor(name + ".conv.weight"), bias: nil,
                               batchNorm: try w.batchNorm(name + ".", eps: eps), name: name)
        return g.add(name, layer, inputs: [x])
    }

    /// `SeparableConvNormAct` (spec 1.2): depthwise 3x3 (stride on it, padding 1, no bias, nothing
    /// after it), then 1x1 `cin -> cout` with BN folded and ReLU fused.
    static func separable(_ g: inout GraphBuilder, _ w: VoVNetWeights, _ name: String, _ x: String,
                          cin: Int, cout: Int, stride: Int, eps: Double) throws -> String {
        let dwp = Conv2dParameters(inChannels: cin, outChannels: cin, kernelH: 3, kernelW: 3, strideH: stride, strideW: stride,
                                   padH: 1, padW: 1, groups: cin)
        let dw = try Conv2d(parameters: dwp, weight: try w.tensor(name + ".conv_dw.weight"), bias: nil, name: name + ".conv_dw")
        let h = g.add(name + ".conv_dw", dw, inputs: [x])
        let pwp = Conv2dParameters(inChannels: cin, outChannels: cout, kernelH: 1, kernelW: 1, activation: .relu)
        let pw = try Conv2d(parameters: pwp, weight: try w.tensor(name + ".conv_pw.weight"), bias: nil,
                            batchNorm: try w.batchNorm(name + ".", eps: eps), name: name + ".conv_pw")
        return g.add(name + ".conv_pw", pw, inputs: [h])
    }
}
