import Foundation

/// One tensor a VoVNet needs: its timm key and shape.
public struct VoVNetTensorSpec: Sendable, Equatable {
    /// timm state_dict key (spec 1.8), e.g. `stages.0.blocks.0.conv_mid.0.conv.weight`.
    public let key: String
    /// Shape as PyTorch stores it (conv weights OIHW).
    public let shape: [Int]
    /// True for BN running statistics (buffers, not trainable parameters).
    public var isBuffer: Bool { key.hasSuffix(".running_mean") || key.hasSuffix(".running_var") }
}

/// The tensors a VoVNet config needs, under timm's names (spec `vovnet.md` 1.1-1.8).
/// `num_batches_tracked` is never needed (inference ignores it).
public enum VoVNetKeys {
    /// Every tensor of the network, in module order (stem, stages, head).
    public static func expected(_ c: VoVNetConfig) -> [VoVNetTensorSpec] {
        var out: [VoVNetTensorSpec] = []
        let s = c.stemChannels
        convNormAct(&out, "stem.0.", c.inChannels, s[0], 3)
        if c.depthwise {
            separable(&out, "stem.1.", s[0], s[1])
            separable(&out, "stem.2.", s[1], s[2])
        } else {
            convNormAct(&out, "stem.1.", s[0], s[1], 3)
            convNormAct(&out, "stem.2.", s[1], s[2], 3)
        }
        for (i, stage) in c.blocks.enumerated() {
            for (j, b) in stage.enumerated() { out += block("stages.\(i).blocks.\(j).", b) }
        }
        if !c.featuresOnly && c.numClasses > 0 {
            out.append(.init(key: "head.fc.weight", shape: [c.numClasses, c.stageOutChannels[3]]))
            out.append(.init(key: "head.fc.bias", shape: [c.numClasses]))
        }
        return out
    }

    /// The tensors of one OSA block whose keys start with `prefix` (`""` for a lone block).
    public static func block(_ prefix: String, _ b: VoVNetBlockSpec) -> [VoVNetTensorSpec] {
        var out: [VoVNetTensorSpec] = []
        if b.hasReduction { convNormAct(&out, prefix + "conv_reduction.", b.inChannels, b.midChannels, 1) }
        for l in 0..<b.layers {
            let cin = (l == 0 && !b.hasReduction) ? b.inChannels : b.midChannels
            if b.depthwise {
                separable(&out, prefix + "conv_mid.\(l).", cin, b.midChannels)
            } else {
                convNormAct(&out, prefix + "conv_mid.\(l).", cin, b.midChannels, 3)
            }
        }
        convNormAct(&out, prefix + "conv_concat.", b.concatChannels, b.outChannels, 1)
        if b.ese {
            out.append(.init(key: prefix + "attn.fc.weight", shape: [b.outChannels, b.outChannels, 1, 1]))
            out.append(.init(key: prefix + "attn.fc.bias", shape: [b.outChannels]))
        }
        return out
    }

    /// Number of batch norms (= `num_batches_tracked` entries of a timm state_dict).
    public static func batchNormCount(_ specs: [VoVNetTensorSpec]) -> Int {
        specs.filter { $0.key.hasSuffix(".running_var") }.count
    }

    /// Trainable parameters (conv weights, BN weight+bias, eSE fc, head), as in the spec's tables.
    public static func parameterCount(_ specs: [VoVNetTensorSpec]) -> Int {
        specs.filter { !$0.isBuffer }.reduce(0) { $0 + $1.shape.reduce(1, *) }
    }

    static func bn(_ out: inout [VoVNetTensorSpec], _ p: String, _ c: Int) {
        for leaf in ["weight", "bias", "running_mean", "running_var"] { out.append(.init(key: p + "bn." + leaf, shape: [c])) }
    }

    static func convNormAct(_ out: inout [VoVNetTensorSpec], _ p: String, _ cin: Int, _ cout: Int, _ k: Int) {
        out.append(.init(key: p + "conv.weight", shape: [cout, cin, k, k]))
        bn(&out, p, cout)
    }

    static func separable(_ out: inout [VoVNetTensorSpec], _ p: String, _ cin: Int, _ cout: Int) {
        out.append(.init(key: p + "conv_dw.weight", shape: [cin, 1, 3, 3]))
        out.append(.init(key: p + "conv_pw.weight", shape: [cout, cin, 1, 1]))
        bn(&out, p, cout)
    }
}
