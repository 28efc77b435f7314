import Foundation

extension BiFormerConfig {
    /// Every weight the model reads, with its shape, under the official state-dict keys (spec §3, §4, §6),
    /// in state-dict order, without `num_batches_tracked`. Classification adds `norm.*` and (when
    /// `numClasses > 0`) `head.*`; dense adds `extra_norms.{0..3}.*`.
    public func weightShapes() -> [(key: String, shape: [Int])] {
        var out: [(key: String, shape: [Int])] = []
        func bn(_ p: String, _ c: Int) { for s in ["weight", "bias", "running_mean", "running_var"] { out.append((p + s, [c])) } }
        func conv(_ p: String, _ cin: Int, _ cout: Int) { out.append((p + "weight", [cout, cin, 3, 3])); out.append((p + "bias", [cout])) }
        let e = embedDim
        conv("downsample_layers.0.0.", 3, e[0] / 2); bn("downsample_layers.0.1.", e[0] / 2)
        conv("downsample_layers.0.3.", e[0] / 2, e[0]); bn("downsample_layers.0.4.", e[0])
        for i in 1..<4 { conv("downsample_layers.\(i).0.", e[i - 1], e[i]); bn("downsample_layers.\(i).1.", e[i]) }
        for i in 0..<4 {
            let c = e[i], hidden = Int(mlpRatios[i] * Double(c)), k = sideDWConv
            for j in 0..<depth[i] {
                let p = "stages.\(i).\(j)."
                out.append((p + "pos_embed.weight", [c, 1, 3, 3])); out.append((p + "pos_embed.bias", [c]))
                out.append((p + "norm1.weight", [c])); out.append((p + "norm1.bias", [c]))
                if topks[i] == -2 {
                    out.append((p + "attn.qkv.weight", [3 * c, c]))
                    out.append((p + "attn.lepe.weight", [c, 1, k, k])); out.append((p + "attn.lepe.bias", [c]))
                    out.append((p + "attn.proj.weight", [c, c])); out.append((p + "attn.proj.bias", [c]))
                } else {
                    let w = 2 * qkDims[i] + c
                    out.append((p + "attn.qkv.qkv.weight", [w, c])); out.append((p + "attn.qkv.qkv.bias", [w]))
                    out.append((p + "attn.wo.weight", [c, c])); out.append((p + "attn.wo.bias", [c]))
                    out.append((p + "attn.lepe.weight", [c, 1, k, k])); out.append((p + "attn.lepe.bias", [c]))
                }
                out.append((p + "norm2.weight", [c])); out.append((p + "norm2.bias", [c]))
                out.append((p + "mlp.0.weight", [hidden, c])); out.append((p + "mlp.0.bias", [hidden]))
                out.append((p + "mlp.3.weight", [c, hidden])); out.append((p + "mlp.3.bias", [c]))
            }
        }
        if variant == .classification {
            bn("norm.", e[3])
            if numClasses > 0 { out.append(("head.weight", [numClasses, e[3]])); out.append(("head.bias", [numClasses])) }
        } else {
            for i in 0..<4 { out.append(("extra_norms.\(i).weight", [e[i]])); out.append(("extra_norms.\(i).bias", [e[i]])) }
        }
        return out
    }

    /// Trainable parameter count (running statistics excluded), e.g. 13,142,760 for tiny classification (spec §5).
    public var parameterCount: Int {
        weightShapes().filter { !$0.key.hasSuffix("running_mean") && !$0.key.hasSuffix("running_var") }
            .reduce(0) { $0 + $1.shape.reduce(1, *) }
    }

    /// Deterministic small random weights for every key of `weightShapes()` (tests and benchmarks):
    /// uniform in ±`scale`/√fan-in, BN variances in [0.5, 1.5], norm weights near 1.
    public func randomWeights(seed: UInt64 = 0) -> TensorDictionary {
        var state = seed &+ 0x9E37_79B9_7F4A_7C15
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float((state >> 40) & 0xFFFFFF) / Float(0x1000000)   // [0, 1)
        }
        var d = TensorDictionary()
        for (key, shape) in weightShapes() {
            let count = shape.reduce(1, *)
            let fanIn = shape.count > 1 ? shape.dropFirst().reduce(1, *) : 1
            let bound = 1 / Float(Double(fanIn).squareRoot())
            let values: [Float]
            if key.hasSuffix("running_var") { values = (0..<count).map { _ in 0.5 + next() } }
            else if shape.count == 1 && (key.contains("norm") || key.hasSuffix(".1.weight") || key.hasSuffix(".4.weight")) && key.hasSuffix("weight") {
                values = (0..<count).map { _ in 0.9 + 0.2 * next() }
            } else { values = (0..<count).map { _ in (2 * next() - 1) * bound } }
            d[key] = Tensor(shape: shape, values: values)
        }
        return d
    }
}
