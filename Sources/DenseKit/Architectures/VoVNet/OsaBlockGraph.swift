import Foundation

extension VoVNetBlockSpec {
    /// Parses a lone-block config (golden `osa_block` attrs: `in_chs`, `mid_chs`, `out_chs`,
    /// `layer_per_block`, `residual`, `depthwise`, `attn`).
    /// - Throws: `ModelConfigError.invalidField` naming the field.
    public init(json: JSONValue) throws {
        let r = try ConfigReader(json, model: "osa_block")
        let attn = try r.string("attn", default: "")
        guard attn == "" || attn == "ese" else { throw r.fail("attn", "\"\(attn)\" is not supported (use \"\" or \"ese\")") }
        self.init(inChannels: try r.int("in_chs"), midChannels: try r.int("mid_chs"), outChannels: try r.int("out_chs"),
                  layers: try r.int("layer_per_block"), residual: try r.bool("residual", default: false),
                  depthwise: try r.bool("depthwise", default: false), ese: attn == "ese")
        for (f, v) in [("in_chs", inChannels), ("mid_chs", midChannels), ("out_chs", outChannels)] where !(1...65536).contains(v) {
            throw r.fail(f, "must be in 1...65536, got \(v)")
        }
        guard (1...64).contains(layers) else { throw r.fail("layer_per_block", "must be in 1...64, got \(layers)") }
        if residual && inChannels != outChannels {
            throw r.fail("residual", "needs in_chs == out_chs, got \(inChannels) and \(outChannels)")
        }
    }
}

extension VoVNetBuilder {
    /// A graph of one OSA block (spec 1.4) with input `x` `[N, in_chs, H, W]` and output `y`
    /// `[N, out_chs, H, W]`; weights under the block's own timm keys (`conv_mid.0.conv.weight`, ...).
    /// - Throws: `ModelConfigError` for missing / unexpected / wrong-shape tensors, `GraphError`.
    public static func buildBlock(spec: VoVNetBlockSpec, weights: any WeightSource, prefix: String = "", bnEps: Double = 1e-5) throws -> Graph {
        let w = try VoVNetWeights.resolve(source: weights, expected: VoVNetKeys.block("", spec), style: .timm, prefix: prefix)
        var g = GraphBuilder()
        let x = g.input("x")
        let y = try addOsaBlock(&g, w, prefix: "", input: x, spec: spec, eps: bnEps)
        g.output("y", y)
        return try g.build()
    }
}
