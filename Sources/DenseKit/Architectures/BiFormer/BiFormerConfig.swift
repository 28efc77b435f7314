import Foundation

/// Configuration of a BiFormer backbone (`specs/biformer.md` §4–§5; reference `models/biformer.py`
/// `BiFormer` and `semantic_segmentation/models_mm/biformer_mm.py` `BiFormer_mm`).
public struct BiFormerConfig: Sendable, Equatable {
    /// Which model: the classification `BiFormer` or the dense `BiFormer_mm`.
    public enum Variant: String, Sendable, Equatable {
        /// `BiFormer`: BatchNorm2d → global mean → Linear head; output `logits [N, num_classes]`.
        case classification = "cls"
        /// `BiFormer_mm`: four LayerNorm2d'd stage outputs `out0…out3` (NCHW, strides 4/8/16/32).
        case dense
    }

    /// The model variant.
    public var variant: Variant
    /// Blocks per stage (4 stages).
    public var depth: [Int]
    /// Stage widths C0…C3.
    public var embedDim: [Int]
    /// Per-stage q/k width (= embedDim in released models).
    public var qkDims: [Int]
    /// BRA heads per stage = qkDims[i] / headDim.
    public var headDim: Int
    /// Regions per side of every BRA (7 classification, 8 dense).
    public var nWin: Int
    /// Auto-pad each BRA input to a multiple of `nWin` (dense: true).
    public var autoPad: Bool
    /// Per-stage routing top-k; -2 = full attention with LePE (stage 4).
    public var topks: [Int]
    /// Per-stage MLP ratio.
    public var mlpRatios: [Double]
    /// LePE kernel size.
    public var sideDWConv: Int
    /// Positional depthwise conv kernel.
    public var beforeAttnDWConv: Int
    /// Explicit BRA scale, nil for `qk_dim ** -0.5`.
    public var qkScale: Double?
    /// Classification classes (classification only); 0 = no head (output `features [N, C3]`).
    public var numClasses: Int

    /// Creates a config; see the field docs.
    public init(variant: Variant, depth: [Int], embedDim: [Int], qkDims: [Int]? = nil, headDim: Int = 32,
                nWin: Int? = nil, autoPad: Bool? = nil, topks: [Int] = [1, 4, 16, -2], mlpRatios: [Double] = [3, 3, 3, 3],
                sideDWConv: Int = 5, beforeAttnDWConv: Int = 3, qkScale: Double? = nil, numClasses: Int = 1000) {
        self.variant = variant; self.depth = depth; self.embedDim = embedDim; self.qkDims = qkDims ?? embedDim
        self.headDim = headDim; self.nWin = nWin ?? (variant == .dense ? 8 : 7); self.autoPad = autoPad ?? (variant == .dense)
        self.topks = topks; self.mlpRatios = mlpRatios; self.sideDWConv = sideDWConv; self.beforeAttnDWConv = beforeAttnDWConv
        self.qkScale = qkScale; self.numClasses = numClasses
    }

    /// Preset names: `tiny`, `small`, `base` (§5).
    public static let presetNames = ["tiny", "small", "base"]

    /// A released preset (`biformer_tiny/small/base`) with the classification (n_win 7) or dense
    /// (n_win 8, auto-pad, extra norms) settings.
    /// - Throws: `ModelConfigError.unknownPreset`.
    public static func preset(_ name: String, variant: Variant = .classification, numClasses: Int = 1000) throws -> BiFormerConfig {
        switch name.lowercased().replacingOccurrences(of: "biformer_", with: "") {
        case "tiny": return BiFormerConfig(variant: variant, depth: [2, 2, 8, 2], embedDim: [64, 128, 256, 512], numClasses: numClasses)
        case "small": return BiFormerConfig(variant: variant, depth: [4, 4, 18, 4], embedDim: [64, 128, 256, 512], numClasses: numClasses)
        case "base": return BiFormerConfig(variant: variant, depth: [4, 4, 18, 4], embedDim: [96, 192, 384, 768], numClasses: numClasses)
        default: throw ModelConfigError.unknownPreset(model: "biformer", name: name, known: presetNames)
        }
    }

    /// Reads a config object with the reference's keys (`variant`, `depth`, `embed_dim`, `qk_dims`, `head_dim`,
    /// `n_win`, `auto_pad`, `topks`, `mlp_ratios`, `side_dwconv`, `before_attn_dwconv`, `qk_scale`,
    /// `num_classes`), optionally starting from `"preset": "tiny"|"small"|"base"`.
    /// - Throws: `ModelConfigError` / `BiFormerError.unsupported` for invalid or unsupported fields.
    public init(json: JSONValue) throws {
        let r = try ConfigReader(json, model: "biformer")
        guard let variant = Variant(rawValue: try r.string("variant", default: "cls")) else {
            throw ModelConfigError.invalidField(model: "biformer", field: "variant", message: "expected \"cls\" or \"dense\"")
        }
        var c: BiFormerConfig
        if r.has("preset") {
            c = try BiFormerConfig.preset(try r.string("preset"), variant: variant)
        } else {
            c = BiFormerConfig(variant: variant, depth: try r.ints("depth", count: 4), embedDim: try r.ints("embed_dim", count: 4))
        }
        c.depth = try r.ints("depth", count: 4, default: c.depth)
        c.embedDim = try r.ints("embed_dim", count: 4, default: c.embedDim)
        c.qkDims = try r.ints("qk_dims", count: 4, default: c.embedDim)
        c.headDim = try r.int("head_dim", default: c.headDim)
        c.nWin = try r.int("n_win", default: c.nWin)
        c.autoPad = try r.bool("auto_pad", default: c.autoPad)
        c.topks = try r.ints("topks", count: 4, default: c.topks)
        if r.has("mlp_ratios") {
            guard let m = r.object["mlp_ratios"]?.doubles, m.count == 4 else {
                throw ModelConfigError.invalidField(model: "biformer", field: "mlp_ratios", message: "expected 4 numbers")
            }
            c.mlpRatios = m
        }
        c.sideDWConv = try r.int("side_dwconv", default: c.sideDWConv)
        c.beforeAttnDWConv = try r.int("before_attn_dwconv", default: c.beforeAttnDWConv)
        c.qkScale = r.has("qk_scale") ? try r.double("qk_scale") : nil
        c.numClasses = try r.int("num_classes", default: c.numClasses)
        if try r.int("in_chans", default: 3) != 3 { throw BiFormerError.unsupported("in_chans other than 3") }
        try BRAOptions.checkFixed(r)
        if try r.bool("mlp_dwconv", default: false) { throw BiFormerError.unsupported("mlp_dwconv = true") }
        if try r.double("layer_scale_init_value", default: -1) > 0 { throw BiFormerError.unsupported("layer scale") }
        if try !r.bool("pre_norm", default: true) { throw BiFormerError.unsupported("pre_norm = false") }
        try c.validate()
        self = c
    }

    /// Checks ranges and divisibility of the fields.
    /// - Throws: `ModelConfigError.invalidField` naming the field.
    public func validate() throws {
        func bad(_ f: String, _ m: String) -> ModelConfigError { .invalidField(model: "biformer", field: f, message: m) }
        guard depth.count == 4, embedDim.count == 4, qkDims.count == 4, topks.count == 4, mlpRatios.count == 4 else {
            throw bad("depth", "depth, embed_dim, qk_dims, topks and mlp_ratios need 4 entries each")
        }
        // Every size is bounded first, so no later product overflows and no absurd config reaches an allocation.
        guard depth.allSatisfy({ $0 >= 0 }) else { throw bad("depth", "negative depth") }
        guard depth.allSatisfy({ $0 <= 256 }) else { throw bad("depth", "at most 256 blocks per stage, got \(depth)") }
        guard embedDim.allSatisfy({ $0 > 0 && $0 % 2 == 0 }) else { throw bad("embed_dim", "widths must be positive and even") }
        guard embedDim.allSatisfy({ $0 <= 1 << 16 }) else { throw bad("embed_dim", "widths must be at most 65536, got \(embedDim)") }
        guard qkDims.allSatisfy({ $0 >= 1 && $0 <= 1 << 16 }) else { throw bad("qk_dims", "widths must be in 1...65536, got \(qkDims)") }
        guard headDim > 0 else { throw bad("head_dim", "must be positive") }
        guard headDim <= 1 << 16 else { throw bad("head_dim", "must be at most 65536, got \(headDim)") }
        guard nWin > 0 else { throw bad("n_win", "must be positive") }
        guard nWin <= 1024 else { throw bad("n_win", "must be at most 1024, got \(nWin)") }
        guard numClasses >= 0 else { throw bad("num_classes", "must be >= 0") }
        guard numClasses <= 1_000_000 else { throw bad("num_classes", "must be at most 1000000, got \(numClasses)") }
        guard topks.allSatisfy({ $0 <= 1 << 20 }) else { throw bad("topks", "entries must be at most 1048576, got \(topks)") }
        guard mlpRatios.allSatisfy({ $0.isFinite && $0 > 0 && $0 <= 64 }) else { throw bad("mlp_ratios", "ratios must be in (0, 64], got \(mlpRatios)") }
        guard (0...63).contains(sideDWConv) else { throw bad("side_dwconv", "kernel size must be in 0...63, got \(sideDWConv)") }
        guard (0...63).contains(beforeAttnDWConv) else { throw bad("before_attn_dwconv", "kernel size must be in 0...63, got \(beforeAttnDWConv)") }
        if let s = qkScale { guard s.isFinite else { throw bad("qk_scale", "must be finite") } }
        for i in 0..<4 where depth[i] > 0 {
            if topks[i] > 0 {
                guard qkDims[i] >= headDim, qkDims[i] % headDim == 0 else {
                    throw bad("head_dim", "stage \(i + 1): qk_dim \(qkDims[i]) is not a multiple of head_dim \(headDim)")
                }
                let heads = qkDims[i] / headDim
                guard embedDim[i] % heads == 0 else { throw bad("embed_dim", "stage \(i + 1): \(heads) heads do not divide \(embedDim[i])") }
                guard topks[i] <= nWin * nWin else { throw bad("topks", "stage \(i + 1): topk \(topks[i]) > n_win² = \(nWin * nWin)") }
            } else if topks[i] != -2 {
                throw bad("topks", "stage \(i + 1): topk \(topks[i]) is not supported (> 0 for BRA, -2 for full attention)")
            }
        }
    }

    /// Spatial size of each stage for an input side `L`: each k3/s2/p1 conv maps `L → ceil(L/2)` (§4).
    public static func stageSizes(_ side: Int) -> [Int] {
        var l = (((side + 1) / 2) + 1) / 2
        var out = [l]
        for _ in 1..<4 { l = (l + 1) / 2; out.append(l) }
        return out
    }

    /// Whether one image side is accepted: without auto-pad every BRA stage size must be a multiple of `n_win` (§5.1).
    public func accepts(side: Int) -> Bool {
        guard side >= 1 else { return false }
        if autoPad { return true }
        let s = BiFormerConfig.stageSizes(side)
        for i in 0..<4 where topks[i] > 0 && depth[i] > 0 && s[i] % nWin != 0 { return false }
        return true
    }

    /// Checks an input size; the error names the sizes that work.
    /// - Throws: `BiFormerError.inputSize`.
    public func checkInputSize(height: Int, width: Int) throws {
        if accepts(side: height) && accepts(side: width) { return }
        throw BiFormerError.inputSize(height: height, width: width, valid: validSizesDescription(near: max(height, width)))
    }

    /// A description of the accepted sides: the first ranges and the ranges nearest to `near`.
    func validSizesDescription(near: Int) -> String {
        var ranges: [ClosedRange<Int>] = []
        var start: Int?
        let limit = max(near * 2, 64) + 8 * 32 * max(1, nWin)
        for s in 1...limit + 1 {
            let ok = s <= limit && accepts(side: s)
            if ok, start == nil { start = s }
            if !ok, let a = start { ranges.append(a...(s - 1)); start = nil }
        }
        guard !ranges.isEmpty else { return "no input size is accepted with n_win \(nWin)" }
        func text(_ r: ClosedRange<Int>) -> String { r.count == 1 ? "\(r.lowerBound)" : "\(r.lowerBound)–\(r.upperBound)" }
        var shown = Array(ranges.prefix(3))
        if let below = ranges.last(where: { $0.upperBound < near }), !shown.contains(below) { shown.append(below) }
        if let above = ranges.first(where: { $0.lowerBound > near }), !shown.contains(above) { shown.append(above) }
        shown.sort { $0.lowerBound < $1.lowerBound }
        return "each of H and W must be one of " + shown.map(text).joined(separator: ", ")
            + ", … (stage sizes 1–3 must be multiples of n_win \(nWin); a dense config with auto_pad accepts any size)"
    }
}
