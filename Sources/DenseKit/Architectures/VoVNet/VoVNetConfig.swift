import Foundation

/// Naming of VoVNet checkpoint tensors.
public enum VoVNetKeyStyle: String, Sendable, Codable, CaseIterable {
    /// timm state_dict names (spec `vovnet.md` 1.8), also `stem_<k>.`/`stages_<k>.` (features-only models).
    case timm
    /// youngwanLEE/vovnet-detectron2 names (spec 3.3), converted with the table of spec 3.4.
    case detectron2
}

/// The configuration of a VoVNet backbone (timm `VovNet` / detectron2 `VoVNet`).
///
/// Fields and JSON keys (golden `vovnet/INDEX.md`, spec `vovnet.md` 1.7): `stem_chs` [3],
/// `stage_conv_chs` [4] (mid width), `stage_out_chs` [4], `layer_per_block`,
/// `block_per_stage` [4], `residual`, `depthwise`, `attn` (`""` or `"ese"`),
/// `attn_all_blocks`, `in_chans`, `num_classes`, `features_only`, `out_indices`,
/// `key_style`, `key_prefix`, `bn_eps`, `stem_stride`. Per-block flags follow from it
/// (`blocks`). A JSON config may name a `preset` whose values the other keys override.
public struct VoVNetConfig: Sendable, Equatable {
    /// Output channels of `stem.0`, `stem.1`, `stem.2`.
    public var stemChannels: [Int]
    /// Mid width of every OSA block of each stage (4 entries).
    public var stageConvChannels: [Int]
    /// Output width of each stage (4 entries).
    public var stageOutChannels: [Int]
    /// Conv layers per OSA block (`L`).
    public var layerPerBlock: Int
    /// OSA blocks per stage (4 entries).
    public var blockPerStage: [Int]
    /// Identity add on blocks `j >= 1` of every stage (after eSE).
    public var residual: Bool
    /// Separable stem.1/stem.2 and mid convs; `conv_reduction` when a block's input width differs from its mid width.
    public var depthwise: Bool
    /// eSE attention (`attn == "ese"`).
    public var ese: Bool
    /// eSE on every block (detectron2) instead of the last block of each stage only (timm).
    public var attnAllBlocks: Bool
    /// Input channels.
    public var inChannels: Int
    /// Classifier width when `featuresOnly` is false (0: the pooled features are returned).
    public var numClasses: Int
    /// Return the feature maps selected by `outIndices` (true) or the classifier output (false).
    public var featuresOnly: Bool
    /// Feature indices (0: stride 2 = `stem.1`, 1..4: stages 0..3), in output order.
    public var outIndices: [Int]
    /// Key naming of the weights; nil: detect from the keys.
    public var keyStyle: VoVNetKeyStyle?
    /// Text in front of every weight key; nil: detect (the text before the stem's first conv weight).
    public var keyPrefix: String?
    /// Batch-norm epsilon (1e-5 in timm and detectron2).
    public var bnEps: Double
    /// 4 (presets) or 2 (timm `stem_stride=2`: `stem.2` keeps the size, stage 0 pools).
    public var stemStride: Int

    /// A config with timm's defaults for the optional fields.
    public init(stemChannels: [Int], stageConvChannels: [Int], stageOutChannels: [Int], layerPerBlock: Int,
                blockPerStage: [Int], residual: Bool, depthwise: Bool, ese: Bool, attnAllBlocks: Bool = false,
                inChannels: Int = 3, numClasses: Int = 0, featuresOnly: Bool = true, outIndices: [Int] = [1, 2, 3, 4],
                keyStyle: VoVNetKeyStyle? = nil, keyPrefix: String? = nil, bnEps: Double = 1e-5, stemStride: Int = 4) {
        self.stemChannels = stemChannels
        self.stageConvChannels = stageConvChannels
        self.stageOutChannels = stageOutChannels
        self.layerPerBlock = layerPerBlock
        self.blockPerStage = blockPerStage
        self.residual = residual
        self.depthwise = depthwise
        self.ese = ese
        self.attnAllBlocks = attnAllBlocks
        self.inChannels = inChannels
        self.numClasses = numClasses
        self.featuresOnly = featuresOnly
        self.outIndices = outIndices
        self.keyStyle = keyStyle
        self.keyPrefix = keyPrefix
        self.bnEps = bnEps
        self.stemStride = stemStride
    }

    /// Parses a JSON config (golden-case attrs, model-file metadata). A `preset` key
    /// starts from that preset; every other key present overrides it.
    /// - Throws: `ModelConfigError` naming the first bad field, or an unknown preset.
    public init(json: JSONValue) throws {
        let r = try ConfigReader(json, model: "vovnet")
        let base: VoVNetConfig? = r.has("preset") ? try VoVNetPresets.config(named: try r.string("preset")) : nil
        stemChannels = try r.ints("stem_chs", count: 3, default: base?.stemChannels)
        stageConvChannels = try r.ints("stage_conv_chs", count: 4, default: base?.stageConvChannels)
        stageOutChannels = try r.ints("stage_out_chs", count: 4, default: base?.stageOutChannels)
        layerPerBlock = try r.int("layer_per_block", default: base?.layerPerBlock)
        blockPerStage = try r.ints("block_per_stage", count: 4, default: base?.blockPerStage)
        residual = try r.bool("residual", default: base?.residual)
        depthwise = try r.bool("depthwise", default: base?.depthwise)
        let attn = try r.string("attn", default: base.map { $0.ese ? "ese" : "" })
        switch attn {
        case "": ese = false
        case "ese": ese = true
        default: throw r.fail("attn", "\"\(attn)\" is not supported (use \"\" or \"ese\"; eca and EvoNorm variants are out of scope)")
        }
        attnAllBlocks = try r.bool("attn_all_blocks", default: base?.attnAllBlocks ?? false)
        inChannels = try r.int("in_chans", default: base?.inChannels ?? 3)
        numClasses = try r.int("num_classes", default: base?.numClasses ?? 0)
        featuresOnly = try r.bool("features_only", default: base?.featuresOnly ?? true)
        outIndices = try r.ints("out_indices", default: base?.outIndices ?? [1, 2, 3, 4])
        if r.has("key_style") {
            let s = try r.string("key_style")
            guard let style = VoVNetKeyStyle(rawValue: s) else { throw r.fail("key_style", "\"\(s)\" is neither \"timm\" nor \"detectron2\"") }
            keyStyle = style
        } else {
            keyStyle = base?.keyStyle
        }
        keyPrefix = r.has("key_prefix") ? try r.string("key_prefix") : base?.keyPrefix
        bnEps = try r.double("bn_eps", default: base?.bnEps ?? 1e-5)
        stemStride = try r.int("stem_stride", default: base?.stemStride ?? 4)
        try validate()
    }

    /// Checks every field's range.
    /// - Throws: `ModelConfigError.invalidField` naming the field.
    public func validate() throws {
        func fail(_ f: String, _ m: String) -> ModelConfigError { .invalidField(model: "vovnet", field: f, message: m) }
        func positive(_ a: [Int], _ n: Int, _ f: String) throws {
            guard a.count == n else { throw fail(f, "expected \(n) entries, got \(a.count)") }
            guard a.allSatisfy({ $0 > 0 && $0 <= 1 << 16 }) else { throw fail(f, "entries must be in 1...65536, got \(a)") }
        }
        try positive(stemChannels, 3, "stem_chs")
        try positive(stageConvChannels, 4, "stage_conv_chs")
        try positive(stageOutChannels, 4, "stage_out_chs")
        try positive(blockPerStage, 4, "block_per_stage")
        guard blockPerStage.allSatisfy({ $0 <= 64 }) else { throw fail("block_per_stage", "at most 64 blocks per stage, got \(blockPerStage)") }
        guard (1...64).contains(layerPerBlock) else { throw fail("layer_per_block", "must be in 1...64, got \(layerPerBlock)") }
        guard (1...4096).contains(inChannels) else { throw fail("in_chans", "must be in 1...4096, got \(inChannels)") }
        guard (0...1_000_000).contains(numClasses) else { throw fail("num_classes", "must be in 0...1000000, got \(numClasses)") }
        guard stemStride == 2 || stemStride == 4 else { throw fail("stem_stride", "must be 2 or 4, got \(stemStride)") }
        guard bnEps > 0, bnEps.isFinite else { throw fail("bn_eps", "must be a positive number, got \(bnEps)") }
        if featuresOnly {
            guard !outIndices.isEmpty else { throw fail("out_indices", "no feature selected") }
            guard outIndices.allSatisfy({ (0...4).contains($0) }) else { throw fail("out_indices", "entries must be in 0...4, got \(outIndices)") }
            guard Set(outIndices).count == outIndices.count else { throw fail("out_indices", "repeated entries in \(outIndices)") }
        }
    }

    /// The `attn` string (`""` or `"ese"`).
    public var attn: String { ese ? "ese" : "" }

    /// Input width of stage `i`: `stem_chs[2]` for stage 0, else the previous stage's output.
    public func stageInChannels(_ i: Int) -> Int { i == 0 ? stemChannels[2] : stageOutChannels[i - 1] }

    /// Whether stage `i` starts with the 3x3/2 ceil-mode max pool (stages 1..3; all with `stem_stride` 2).
    public func stageDownsamples(_ i: Int) -> Bool { stemStride == 2 || i > 0 }

    /// Every OSA block with its derived flags, stage by stage (spec 1.4, 1.5).
    public var blocks: [[VoVNetBlockSpec]] {
        (0..<4).map { i in
            (0..<blockPerStage[i]).map { j in
                let cin = j == 0 ? stageInChannels(i) : stageOutChannels[i]
                return VoVNetBlockSpec(inChannels: cin, midChannels: stageConvChannels[i], outChannels: stageOutChannels[i],
                                       layers: layerPerBlock, residual: residual && j > 0, depthwise: depthwise,
                                       ese: ese && (attnAllBlocks || j == blockPerStage[i] - 1))
            }
        }
    }

    /// Channels and reduction of feature index `i` (0...4), timm `feature_info`.
    public func featureInfo(_ i: Int) -> (channels: Int, reduction: Int) {
        if i == 0 { return (stemStride == 4 ? stemChannels[1] : stemChannels[2], 2) }
        return (stageOutChannels[i - 1], 2 << i)
    }

    /// Output names in order: `feat<reduction>` per `outIndices`, or `["logits"]`.
    public var outputNames: [String] {
        featuresOnly ? outIndices.map { "feat\(featureInfo($0).reduction)" } : ["logits"]
    }

    /// The config as golden-style JSON (snake_case keys; `key_style`/`key_prefix` only when set).
    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "stem_chs": .array(stemChannels.map { .number(Double($0)) }),
            "stage_conv_chs": .array(stageConvChannels.map { .number(Double($0)) }),
            "stage_out_chs": .array(stageOutChannels.map { .number(Double($0)) }),
            "layer_per_block": .number(Double(layerPerBlock)),
            "block_per_stage": .array(blockPerStage.map { .number(Double($0)) }),
            "residual": .bool(residual), "depthwise": .bool(depthwise), "attn": .string(attn),
            "attn_all_blocks": .bool(attnAllBlocks), "in_chans": .number(Double(inChannels)),
            "num_classes": .number(Double(numClasses)), "features_only": .bool(featuresOnly),
            "out_indices": .array(outIndices.map { .number(Double($0)) }),
            "bn_eps": .number(bnEps), "stem_stride": .number(Double(stemStride)),
        ]
        if let keyStyle { o["key_style"] = .string(keyStyle.rawValue) }
        if let keyPrefix { o["key_prefix"] = .string(keyPrefix) }
        return .object(o)
    }
}

/// One OSA block's derived structure (spec 1.4): widths and which optional parts exist.
public struct VoVNetBlockSpec: Sendable, Equatable {
    /// Block input width.
    public var inChannels: Int
    /// Width of each mid conv (and of `conv_reduction`).
    public var midChannels: Int
    /// `conv_concat` output width.
    public var outChannels: Int
    /// Number of mid convs `L`.
    public var layers: Int
    /// Identity add after eSE (requires `inChannels == outChannels`).
    public var residual: Bool
    /// Separable mid convs.
    public var depthwise: Bool
    /// eSE after `conv_concat`.
    public var ese: Bool

    /// Creates a block spec.
    public init(inChannels: Int, midChannels: Int, outChannels: Int, layers: Int, residual: Bool, depthwise: Bool, ese: Bool) {
        self.inChannels = inChannels; self.midChannels = midChannels; self.outChannels = outChannels
        self.layers = layers; self.residual = residual; self.depthwise = depthwise; self.ese = ese
    }

    /// `conv_reduction` exists only for depthwise blocks whose input width differs from the mid width.
    public var hasReduction: Bool { depthwise && inChannels != midChannels }
    /// Width of the concatenation: the block input plus `L` mid outputs.
    public var concatChannels: Int { inChannels + layers * midChannels }
}
