import Foundation

/// Configuration of the kMaX-DeepLab pixel decoder (spec `polymax-head.md` sections 2 and 3;
/// reference `kmax_deeplab/modeling/pixel_decoder/kmax_pixel_decoder.py`).
///
/// Stage lists are ordered coarse to fine: index 0 = OS32 (res5), 1 = OS16, 2 = OS8, 3 = OS4 (res2).
public struct KMaXPixelDecoderConfig: Sendable, Equatable {
    /// Backbone widths of `res2, res3, res4, res5` (strides 4, 8, 16, 32), in that order.
    public var inChannels: [Int] = [256, 512, 1024, 2048]
    /// Blocks per stage, OS32 -> OS4.
    public var decLayers: [Int] = [1, 5, 1, 1]
    /// Base width `b_i` per stage (stage output `4 b_i`), OS32 -> OS4.
    public var decChannels: [Int] = [512, 256, 128, 64]
    /// Block type per stage, OS32 -> OS4.
    public var layerTypes: [KMaXBlockType] = [.axial, .axial, .bottleneck, .bottleneck]
    /// Heads of every axial attention.
    public var numHeads = 8
    /// Relative-position span (tables have `2*maxSpan-1` rows; axial lengths must be <= maxSpan).
    public var maxSpan = 255
    /// BatchNorm epsilon (1e-3 in the reference).
    public var bnEps = 1e-3
    /// Channels-first LayerNorm epsilon (1e-6).
    public var lnEps = 1e-6

    /// The defaults of kMaX R50 (COCO).
    public init() {}

    /// Reads the pixel-decoder fields of a kMaX config object (golden `pixel_decoder` / `kmax_head` attrs):
    /// `in_channels` (a dict keyed `res2`...`res5`, or a 4-array in that order), `dec_layers`, `dec_channels`,
    /// `layer_types`, `num_heads`, `max_span`, `bn_eps`, `ln_eps`; `key_expansion` must be 1 and
    /// `value_expansion` 2 (the only values of the reference). Missing fields keep the defaults.
    /// - Throws: `ModelConfigError.invalidField` naming the field; then `validate()`'s errors.
    public init(json: JSONValue) throws {
        let r = try ConfigReader(json, model: "kmax")
        if let ic = r.object["in_channels"], !ic.isNull {
            if let o = ic.object {
                var out: [Int] = []
                for name in ["res2", "res3", "res4", "res5"] {
                    guard let v = o[name]?.int else {
                        throw ModelConfigError.invalidField(model: "kmax", field: "in_channels", message: "missing integer entry \"\(name)\"")
                    }
                    out.append(v)
                }
                inChannels = out
            } else {
                inChannels = try r.ints("in_channels", count: 4)
            }
        }
        decLayers = try r.ints("dec_layers", default: decLayers)
        decChannels = try r.ints("dec_channels", default: decChannels)
        if r.has("layer_types") {
            guard let a = r.object["layer_types"]?.array else {
                throw ModelConfigError.invalidField(model: "kmax", field: "layer_types", message: "expected an array of strings")
            }
            layerTypes = try a.map { v in
                guard let s = v.string, let t = KMaXBlockType(rawValue: s) else {
                    throw ModelConfigError.invalidField(model: "kmax", field: "layer_types", message: "unknown block type \(v.jsonText) (axial, bottleneck)")
                }
                return t
            }
        }
        numHeads = try r.int("num_heads", default: numHeads)
        maxSpan = try r.int("max_span", default: maxSpan)
        bnEps = try r.double("bn_eps", default: bnEps)
        lnEps = try r.double("ln_eps", default: lnEps)
        let ke = try r.int("key_expansion", default: 1), ve = try r.int("value_expansion", default: 2)
        guard ke == 1 else { throw ModelConfigError.invalidField(model: "kmax", field: "key_expansion", message: "only 1 is supported, got \(ke)") }
        guard ve == 2 else { throw ModelConfigError.invalidField(model: "kmax", field: "value_expansion", message: "only 2 is supported, got \(ve)") }
        try validate()
    }

    /// Checks the config before anything is allocated.
    /// - Throws: `ModelConfigError.invalidField`.
    public func validate() throws {
        func fail(_ f: String, _ m: String) -> ModelConfigError { .invalidField(model: "kmax", field: f, message: m) }
        guard inChannels.count == 4, inChannels.allSatisfy({ $0 > 0 }) else { throw fail("in_channels", "need 4 positive widths (res2..res5), got \(inChannels)") }
        guard inChannels.allSatisfy({ $0 <= 1 << 16 }) else { throw fail("in_channels", "widths must be at most 65536, got \(inChannels)") }
        guard decLayers.count == 4 else { throw fail("dec_layers", "need 4 stages (OS32..OS4), got \(decLayers.count)") }
        guard decLayers.allSatisfy({ $0 >= 1 && $0 <= 64 }) else { throw fail("dec_layers", "each stage needs 1...64 blocks, got \(decLayers)") }
        guard decChannels.count == 4, decChannels.allSatisfy({ $0 > 0 && $0 <= 1 << 16 }) else { throw fail("dec_channels", "need 4 positive widths, got \(decChannels)") }
        guard layerTypes.count == 4 else { throw fail("layer_types", "need 4 entries, got \(layerTypes.count)") }
        guard numHeads >= 1, numHeads <= 1024 else { throw fail("num_heads", "must be in 1...1024, got \(numHeads)") }
        for (i, t) in layerTypes.enumerated() where t == .axial && decChannels[i] % numHeads != 0 {
            throw fail("dec_channels", "axial stage \(i) width \(decChannels[i]) is not a multiple of num_heads \(numHeads)")
        }
        guard maxSpan >= 1 && maxSpan <= 4096 else { throw fail("max_span", "must be in 1...4096") }
        guard bnEps > 0, bnEps.isFinite else { throw fail("bn_eps", "must be positive") }
        guard lnEps > 0, lnEps.isFinite else { throw fail("ln_eps", "must be positive") }
    }

    /// Stage output widths `4 b_i`, OS32 -> OS4.
    public var outputChannels: [Int] { decChannels.map { 4 * $0 } }
}

/// Configuration of the whole PolyMaX / kMaX head: pixel decoder, k-means transformer decoder, prediction
/// heads and read-outs (spec sections 2, 5, 6; reference `kmax_transformer_decoder.py`, `config.py`).
public struct PolyMaXHeadConfig: Sendable, Equatable {
    /// The pixel decoder.
    public var pixelDecoder = KMaXPixelDecoderConfig()
    /// Decoder layers run on the OS32, OS16 and OS8 features.
    public var transDecLayers: [Int] = [2, 2, 2]
    /// Cluster count K.
    public var numClusters = 128
    /// Cluster-centre width D.
    public var queryDim = 256
    /// Decoder base width t (bottleneck 2t, key depth t, value depth 2t).
    public var transBaseFilters = 128
    /// Heads of the cluster self-attention.
    public var numHeads = 8
    /// FFN hidden width F.
    public var ffnDim = 2048
    /// Pixel-head middle width M.
    public var predMidChannels = 256
    /// Mask-embedding width E.
    public var embedDim = 128
    /// Classes without void C (the head outputs C+1, void last).
    public var numClasses = 133
    /// Void prior p of the class-logit bias `log(C p / (1 - p))`.
    public var voidPriorProb = 0.9
    /// Depth range of read-out option A.
    public var dMin = 1e-3
    /// Depth range of read-out option A.
    public var dMax = 10.0

    /// The kMaX R50 COCO defaults.
    public init() {}

    /// Parses a head config (golden `kmax_head` attrs or a model file's `config`): the pixel-decoder fields of
    /// `KMaXPixelDecoderConfig(json:)` plus `trans_dec_layers`, `num_clusters`, `query_dim`, `trans_base_filters`,
    /// `ffn_dim`, `pred_mid_channels`, `embed_dim`, `num_classes`, `void_prior_prob`, `d_min`, `d_max`.
    /// Missing fields keep the defaults; the result is validated.
    /// - Throws: `ModelConfigError.invalidField`.
    public init(json: JSONValue) throws {
        pixelDecoder = try KMaXPixelDecoderConfig(json: json)
        let r = try ConfigReader(json, model: "kmax")
        transDecLayers = try r.ints("trans_dec_layers", default: transDecLayers)
        numClusters = try r.int("num_clusters", default: numClusters)
        queryDim = try r.int("query_dim", default: queryDim)
        transBaseFilters = try r.int("trans_base_filters", default: transBaseFilters)
        numHeads = try r.int("num_heads", default: numHeads)
        ffnDim = try r.int("ffn_dim", default: ffnDim)
        predMidChannels = try r.int("pred_mid_channels", default: predMidChannels)
        embedDim = try r.int("embed_dim", default: embedDim)
        numClasses = try r.int("num_classes", default: numClasses)
        voidPriorProb = try r.double("void_prior_prob", default: voidPriorProb)
        dMin = try r.double("d_min", default: dMin)
        dMax = try r.double("d_max", default: dMax)
        try validate()
    }

    /// Checks the whole config before anything is allocated.
    /// - Throws: `ModelConfigError.invalidField`.
    public func validate() throws {
        func fail(_ f: String, _ m: String) -> ModelConfigError { .invalidField(model: "kmax", field: f, message: m) }
        try pixelDecoder.validate()
        guard transDecLayers.count == 3, transDecLayers.allSatisfy({ $0 >= 0 && $0 <= 64 }) else {
            throw fail("trans_dec_layers", "need 3 counts (OS32, OS16, OS8) in 0...64, got \(transDecLayers)")
        }
        let limit = 1 << 16
        for (name, v) in [("num_clusters", numClusters), ("query_dim", queryDim), ("trans_base_filters", transBaseFilters),
                          ("ffn_dim", ffnDim), ("pred_mid_channels", predMidChannels), ("embed_dim", embedDim), ("num_classes", numClasses)] {
            guard v >= 1 && v <= limit else { throw fail(name, "must be in 1...\(limit), got \(v)") }
        }
        guard numHeads >= 1, transBaseFilters % numHeads == 0 else {
            throw fail("num_heads", "trans_base_filters \(transBaseFilters) must be a multiple of num_heads \(numHeads)")
        }
        guard voidPriorProb > 0, voidPriorProb < 1 else { throw fail("void_prior_prob", "must be in (0, 1)") }
        guard dMin.isFinite, dMax.isFinite, dMin >= 0, dMin < dMax, dMax <= 10_000 else {
            throw fail("d_min", "need 0 <= d_min < d_max <= 10000 (depth range, in the model's units), got \(dMin), \(dMax)")
        }
    }

    /// Total decoder layers.
    public var totalDecoderLayers: Int { transDecLayers.reduce(0, +) }
}

/// Configuration of one k-means decoder layer (golden `kmax_layer` attrs; spec 5.2).
struct KMaXLayerConfig {
    var pixelChannels: Int
    var head: PolyMaXHeadConfig

    init(json: JSONValue) throws {
        let r = try ConfigReader(json, model: "kmax")
        pixelChannels = try r.int("in_channels_pixel")
        guard pixelChannels >= 1 else { throw ModelConfigError.invalidField(model: "kmax", field: "in_channels_pixel", message: "must be positive") }
        var h = PolyMaXHeadConfig()
        h.numClusters = try r.int("num_clusters", default: h.numClusters)
        h.queryDim = try r.int("query_dim", default: h.queryDim)
        h.transBaseFilters = try r.int("trans_base_filters", default: h.transBaseFilters)
        h.numHeads = try r.int("num_heads", default: h.numHeads)
        h.ffnDim = try r.int("ffn_dim", default: h.ffnDim)
        h.predMidChannels = try r.int("pred_mid_channels", default: h.predMidChannels)
        h.embedDim = try r.int("embed_dim", default: h.embedDim)
        h.numClasses = try r.int("num_classes", default: h.numClasses)
        h.voidPriorProb = try r.double("void_prior_prob", default: h.voidPriorProb)
        h.pixelDecoder.bnEps = try r.double("bn_eps", default: 1e-3)
        try h.validate()
        head = h
    }
}
