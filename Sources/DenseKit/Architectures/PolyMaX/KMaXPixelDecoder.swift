import Foundation

/// The kMaX-DeepLab pixel decoder (`kMaXPixelDecoder`, spec `polymax-head.md` section 3; reference
/// `kmax_deeplab/modeling/pixel_decoder/kmax_pixel_decoder.py`): channels-first LayerNorm on each backbone
/// feature, four stages of axial / bottleneck blocks, resized fuses between them.
///
/// Keys (relative to `prefix`, e.g. `pixel_decoder.`): `_in_norms.{i}`, `_stages.{i}._blocks.{j}.*`,
/// `_resized_fuses.{i}._conv_bn_low|_conv_bn_high` (spec section 8). Immutable after loading; `Sendable`.
public final class KMaXPixelDecoder: Sendable {
    /// The configuration.
    public let config: KMaXPixelDecoderConfig
    let norms: [(weight: [Float], bias: [Float])]      // stage order: 0 = res5 ... 3 = res2
    let stages: [[KMaXSingleBlock]]
    let fuseLow: [KMaXPointwise?]
    let fuseHigh: [KMaXPointwise?]

    /// Feature maps of one image (internal): widths and sizes per stage; `activated` is `gelu(data)` where the
    /// decoder computed it (the OS32 / OS16 / OS8 outputs, whose every consumer but the final predictor starts with it).
    struct Map {
        var data: [Float]; var c: Int; var h: Int; var w: Int
        var activated: [Float]? = nil
    }

    /// Loads the decoder.
    /// - Parameters:
    ///   - config: validated again here.
    ///   - weights: tensors named as in spec section 8, under `prefix`.
    ///   - prefix: `pixel_decoder.` for a `kMaXDeepLabHead` state dict, `sem_seg_head.pixel_decoder.` in a full checkpoint, `""` for the module itself.
    ///   - checkUnexpected: refuse tensors under `prefix` that the decoder does not use (only meaningful with a non-empty prefix or a decoder-only source).
    /// - Throws: `ModelConfigError` (config, missing / wrong-shape / unexpected tensors).
    public convenience init(config: KMaXPixelDecoderConfig, weights: any WeightSource, prefix: String = "pixel_decoder.",
                            checkUnexpected: Bool = true) throws {
        let r = KMaXWeightReader(source: weights, model: "kmax pixel decoder")
        try self.init(config: config, reader: r, prefix: prefix)
        if checkUnexpected {
            let extra = r.unexpected(under: prefix.isEmpty ? [] : [prefix])
            if !extra.isEmpty { throw ModelConfigError.unexpectedWeights(model: "kmax pixel decoder", keys: extra) }
        }
    }

    init(config: KMaXPixelDecoderConfig, reader r: KMaXWeightReader, prefix: String) throws {
        try config.validate()
        self.config = config
        let eps = config.bnEps
        // Stage i reads backbone feature res(5 - i): widths C_i in stage order.
        let cStage = [config.inChannels[3], config.inChannels[2], config.inChannels[1], config.inChannels[0]]
        var norms: [(weight: [Float], bias: [Float])] = []
        for i in 0..<4 {
            let w = try r.tensor(prefix + "_in_norms.\(i).weight", shape: [cStage[i]]).scalars
            let b = try r.tensor(prefix + "_in_norms.\(i).bias", shape: [cStage[i]]).scalars
            norms.append((w, b))
        }
        var stages: [[KMaXSingleBlock]] = []
        var low: [KMaXPointwise?] = [], high: [KMaXPointwise?] = []
        for i in 0..<4 {
            let b = config.decChannels[i]
            var cin = i == 0 ? cStage[0] : b
            var blocks: [KMaXSingleBlock] = []
            for j in 0..<config.decLayers[i] {
                blocks.append(try KMaXSingleBlock.load(r, prefix + "_stages.\(i)._blocks.\(j)", type: config.layerTypes[i], cin: cin,
                                                       filters: b, heads: config.numHeads, maxSpan: config.maxSpan, eps: eps))
                cin = 4 * b
            }
            stages.append(blocks)
            if i < 3 {
                let bNext = config.decChannels[i + 1]
                low.append(4 * b != bNext
                           ? try KMaXPointwise.load(r, prefix + "_resized_fuses.\(i)._conv_bn_low", cin: 4 * b, cout: bNext, activation: .none, eps: eps)
                           : nil)
                high.append(cStage[i + 1] != bNext
                            ? try KMaXPointwise.load(r, prefix + "_resized_fuses.\(i)._conv_bn_high", cin: cStage[i + 1], cout: bNext, activation: .none, eps: eps)
                            : nil)
            }
        }
        self.norms = norms
        self.stages = stages
        self.fuseLow = low
        self.fuseHigh = high
    }

    /// Runs the decoder on one image's features (stage order: res5, res4, res3, res2, each `[C, H, W]`), returning
    /// the four stage outputs (OS32, OS16, OS8, OS4), each `[4 b_i, H_i, W_i]`.
    func run(features f: [Map]) throws -> [Map] {
        guard f.count == 4 else { throw PolyMaXError.shape("pixel decoder needs 4 features") }
        var outs: [Map] = []
        var x = f[0]
        // Every block starts with gelu(input): it is fused into the pass that makes the input (the LayerNorm, the
        // fuse's sum, the previous block's residual sum); `activated` says that x.data holds it.
        var activated = !stages[0].isEmpty
        x.data = KMaXMath.layerNormChannels(x.data, channels: x.c, pixels: x.h * x.w, weight: norms[0].weight, bias: norms[0].bias,
                                            eps: Float(config.lnEps), activation: activated ? .gelu : .none)
        for i in 0..<4 {
            for (j, blk) in stages[i].enumerated() {
                let (y, _) = try blk.run(x.data, h: x.h, w: x.w, inputIsActivated: activated, activateOutput: j + 1 < stages[i].count)
                x = Map(data: y, c: blk.cout, h: x.h, w: x.w)
                activated = j + 1 < stages[i].count
            }
            if i < 3 { x.activated = KMaXMath.gelu(x.data) }
            outs.append(x)
            if i == 3 { break }
            let hi = f[i + 1]
            // The high branch's GELU (only where it has its conv) runs inside the LayerNorm's last pass.
            var highData = KMaXMath.layerNormChannels(hi.data, channels: hi.c, pixels: hi.h * hi.w, weight: norms[i + 1].weight,
                                                      bias: norms[i + 1].bias, eps: Float(config.lnEps),
                                                      activation: fuseHigh[i] != nil ? .gelu : .none)
            var lowData = x.data, lowC = x.c
            if let lc = fuseLow[i] { lowData = lc(x.activated ?? KMaXMath.gelu(lowData), n: x.h * x.w); lowC = lc.cout }
            lowData = KMaXMath.resize(lowData, channels: lowC, inH: x.h, inW: x.w, outH: hi.h, outW: hi.w, alignCorners: x.w % 2 == 1)
            var highC = hi.c
            if let hc = fuseHigh[i] { highData = hc(highData, n: hi.h * hi.w); highC = hc.cout }
            guard lowC == highC else { throw PolyMaXError.shape("fuse \(i): widths \(lowC) and \(highC) differ") }
            activated = !stages[i + 1].isEmpty
            KMaXMath.addInPlace(&lowData, highData, activation: activated ? .gelu : .none)
            x = Map(data: lowData, c: lowC, h: hi.h, w: hi.w)
        }
        return outs
    }

    /// Checks and splits `[B, C, H, W]` features into per-image maps (stage order res5, res4, res3, res2).
    func split(res2: Tensor, res3: Tensor, res4: Tensor, res5: Tensor) throws -> (batch: Int, maps: [[Map]]) {
        let feats = [res5, res4, res3, res2]
        let names = ["res5", "res4", "res3", "res2"]
        let widths = [config.inChannels[3], config.inChannels[2], config.inChannels[1], config.inChannels[0]]
        let b = res2.shape.first ?? 0
        for (i, t) in feats.enumerated() {
            guard t.rank == 4, t.shape[0] == b, t.shape[1] == widths[i], t.shape[2] > 0, t.shape[3] > 0 else {
                throw PolyMaXError.shape("\(names[i]) must be [\(b), \(widths[i]), H, W], got \(t.shape)")
            }
            guard t.shape[2] <= config.maxSpan && t.shape[3] <= config.maxSpan || config.layerTypes[i] != .axial else {
                throw PolyMaXError.shape("\(names[i]) size \(t.shape[2])x\(t.shape[3]) exceeds max_span \(config.maxSpan) of its axial stage")
            }
        }
        var maps: [[Map]] = []
        for n in 0..<b {
            maps.append(feats.map { t in
                let per = t.shape[1] * t.shape[2] * t.shape[3]
                let data = t.withUnsafeBufferPointer { Array($0[(n * per)..<((n + 1) * per)]) }
                return Map(data: data, c: t.shape[1], h: t.shape[2], w: t.shape[3])
            })
        }
        return (b, maps)
    }

    /// Runs the decoder.
    /// - Parameters: backbone features `[B, C_i, H_i, W_i]` at strides 4, 8, 16, 32 (widths `config.inChannels`).
    /// - Returns: `os32 [B, 4b_0, ...]`, `os16`, `os8`, `os4 [B, 4b_3, ...]` (no activation), keyed by those names.
    /// - Throws: `PolyMaXError.shape` for inconsistent features (or an axial length above `max_span`).
    public func run(res2: Tensor, res3: Tensor, res4: Tensor, res5: Tensor) throws -> [String: Tensor] {
        let (b, maps) = try split(res2: res2, res3: res3, res4: res4, res5: res5)
        var per: [[Map]] = []
        for n in 0..<b { per.append(try run(features: maps[n])) }
        var out: [String: Tensor] = [:]
        for (i, name) in ["os32", "os16", "os8", "os4"].enumerated() {
            guard let first = per.first?[i] else { break }
            out[name] = Tensor(shape: [b, first.c, first.h, first.w], values: per.flatMap { $0[i].data })
        }
        return out
    }
}
