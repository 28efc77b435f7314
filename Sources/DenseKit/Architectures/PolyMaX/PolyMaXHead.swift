import Foundation

/// Outputs of `PolyMaXHead.run` (spec `polymax-head.md` sections 4, 5.3).
public struct PolyMaXHeadOutput: Sendable {
    /// Mask logits at OS4 `[B, K, H4, W4]` (after the scalar mask BN; not upsampled).
    public var maskLogits: Tensor
    /// Class logits `[B, K, C+1]` (void last, void prior included).
    public var classLogits: Tensor
    /// L2-normalised pixel embedding `[B, E, H4, W4]`.
    public var pixelEmbedding: Tensor
    /// Cluster centres after the last decoder layer `[B, D, K]`.
    public var clusterCenters: Tensor
    /// Cluster embeddings `[B, D, K]` (`_class_embedding_projection` output: the read-outs' input).
    public var clusterEmbeddings: Tensor
    /// Hard assignment of every decoder layer, execution order: `[B, h_i, w_i]` cluster indices.
    public var assignments: [IndexTensor]
    /// Per layer after the first: fraction of pixels whose assignment differs from the previous layer's on
    /// the same stride (nil when the previous layer ran on another stride).
    public var assignmentFlips: [Double?]
}

/// The PolyMaX-style mask-transformer head: kMaX-DeepLab pixel decoder + k-means cross-attention decoder +
/// prediction heads + PolyMaX read-outs (spec `polymax-head.md`; reference bytedance/kmax-deeplab
/// `kmax_deeplab_head.py`, `kmax_pixel_decoder.py`, `kmax_transformer_decoder.py`).
///
/// Takes four backbone features (`res2..res5`, strides 4..32; any backbone, e.g. VoVNet) and predicts K
/// clusters. Weights are named as in the kMaX PyTorch port's `kMaXDeepLabHead.state_dict()`
/// (`pixel_decoder.*`, `predictor.*`; a full checkpoint's `sem_seg_head.` prefix is accepted) plus DenseKit's
/// read-out keys `readout.*`. Immutable after loading; `Sendable`.
///
/// ```swift
/// let head = try PolyMaXHead(config: try PolyMaXHeadConfig(json: cfg), weights: SafeTensorsWeights(path: p))
/// let out = try head.run(res2: f4, res3: f8, res4: f16, res5: f32)
/// let sem = try head.readout.run(maskLogits: out.maskLogits, classLogits: out.classLogits,
///                                clusterEmbeddings: out.clusterEmbeddings, outputSize: (h, w), tasks: .semantic)
/// ```
public final class PolyMaXHead: Sendable {
    /// The configuration.
    public let config: PolyMaXHeadConfig
    /// The pixel decoder.
    public let pixelDecoder: KMaXPixelDecoder
    /// The read-out heads (`readout.*`; depth / normals absent when the weights lack them).
    public let readout: PolyMaXReadout
    let clusterCenters: [Float]          // [D, K]
    let layers: [KMaXTransformerLayer]
    let layerStage: [Int]                // pixel-decoder stage each layer reads (0, 1, 2)
    let classProjection: KMaXPointwise
    let maskProjection: KMaXPointwise
    let predictor: KMaXPredictor

    /// Loads the head.
    /// - Parameters:
    ///   - config: validated before any tensor is read.
    ///   - weights: `pixel_decoder.*`, `predictor.*` (optionally all under `sem_seg_head.`), optional `readout.*`.
    /// - Throws: `ModelConfigError` (config; missing, wrong-shape or unexpected tensors, naming the keys).
    public init(config: PolyMaXHeadConfig, weights: any WeightSource) throws {
        try config.validate()
        self.config = config
        let pre = weights.shape(of: "sem_seg_head.predictor._cluster_centers.weight") != nil ? "sem_seg_head." : ""
        let r = KMaXWeightReader(source: weights, model: "polymax head")
        pixelDecoder = try KMaXPixelDecoder(config: config.pixelDecoder, reader: r, prefix: pre + "pixel_decoder.")
        let d = config.queryDim, k = config.numClusters, eps = config.pixelDecoder.bnEps
        clusterCenters = try r.tensor(pre + "predictor._cluster_centers.weight", shape: [d, k]).scalars
        var layers: [KMaXTransformerLayer] = [], stageOf: [Int] = []
        var n = 0
        for (stage, count) in config.transDecLayers.enumerated() {
            for _ in 0..<count {
                layers.append(try KMaXTransformerLayer.load(
                    r, pre + "predictor._kmax_transformer_layers.\(n)", pixelChannels: config.pixelDecoder.outputChannels[stage],
                    queryDim: d, base: config.transBaseFilters, heads: config.numHeads, ffnDim: config.ffnDim,
                    midChannels: config.predMidChannels, embedDim: config.embedDim, clusters: k, numClasses: config.numClasses,
                    voidPrior: config.voidPriorProb, eps: eps))
                stageOf.append(stage)
                n += 1
            }
        }
        self.layers = layers
        self.layerStage = stageOf
        classProjection = try KMaXPointwise.load(r, pre + "predictor._class_embedding_projection", cin: d, cout: d, activation: .gelu, eps: eps)
        maskProjection = try KMaXPointwise.load(r, pre + "predictor._mask_embedding_projection", cin: d, cout: d, activation: .gelu, eps: eps)
        predictor = try KMaXPredictor.load(r, pre + "predictor._predcitor", pixelChannels: config.pixelDecoder.outputChannels[3],
                                           queryChannels: d, midChannels: config.predMidChannels, embedDim: config.embedDim,
                                           numClasses: config.numClasses, voidPrior: config.voidPriorProb, eps: eps)
        readout = try PolyMaXReadout(weights: weights, queryDim: d, dMin: config.dMin, dMax: config.dMax)
        for key in ["readout.depth.weight", "readout.depth.bias", "readout.normals.weight", "readout.normals.bias"] { r.markUsed(key) }
        let extra = r.unexpected(under: [pre + "pixel_decoder.", pre + "predictor.", "readout."])
        if !extra.isEmpty { throw ModelConfigError.unexpectedWeights(model: "polymax head", keys: extra) }
    }

    /// Runs the head on backbone features.
    /// - Parameters: `res2 [B, C0, H/4, W/4]`, `res3 [B, C1, H/8, W/8]`, `res4 [B, C2, H/16, W/16]`, `res5 [B, C3, H/32, W/32]`
    ///   (widths `config.pixelDecoder.inChannels`).
    /// - Returns: the OS4 predictions, cluster tensors and every layer's assignment.
    /// - Throws: `PolyMaXError.shape` for inconsistent features.
    public func run(res2: Tensor, res3: Tensor, res4: Tensor, res5: Tensor) throws -> PolyMaXHeadOutput {
        let (b, maps) = try pixelDecoder.split(res2: res2, res3: res3, res4: res4, res5: res5)
        let d = config.queryDim, k = config.numClusters, c1 = config.numClasses + 1, e = config.embedDim
        var ml: [[Float]] = [], cl: [[Float]] = [], pe: [[Float]] = [], cc: [[Float]] = [], ce: [[Float]] = []
        var assign = [[Int64]](repeating: [], count: layers.count)
        var sizes = [(Int, Int)](repeating: (0, 0), count: layers.count)
        var flips = [Double?](repeating: nil, count: layers.count)
        var h4 = 0, w4 = 0
        for n in 0..<b {
            let feats = try pixelDecoder.run(features: maps[n])
            var q = clusterCenters
            var prev: [Int32]? = nil
            for (li, layer) in layers.enumerated() {
                let f = feats[layerStage[li]]
                let o = layer.run(query: q, pixel: f.data, activated: f.activated, h: f.h, w: f.w, withClassLogits: false)
                q = o.query
                assign[li].append(contentsOf: o.assignment.map { Int64($0) })
                sizes[li] = (f.h, f.w)
                if let p = prev, p.count == o.assignment.count, n == 0 {
                    let changed = zip(p, o.assignment).filter { $0 != $1 }.count
                    flips[li] = Double(changed) / Double(max(1, p.count))
                }
                prev = o.assignment
            }
            let x = feats[3]
            let cEmb = classProjection(q, n: k)
            let mEmb = maskProjection(q, n: k)
            let pix = predictor.pixelEmbedding(x.data, h: x.h, w: x.w)
            ml.append(predictor.maskLogits(mEmb, clusters: k, pixelEmbedding: pix, n: x.h * x.w))
            cl.append(predictor.classLogits(cEmb, clusters: k))
            pe.append(pix)
            cc.append(q)
            ce.append(cEmb)
            h4 = x.h; w4 = x.w
        }
        return PolyMaXHeadOutput(
            maskLogits: Self.batched([b, k, h4, w4], ml),
            classLogits: Self.batched([b, k, c1], cl),
            pixelEmbedding: Self.batched([b, e, h4, w4], pe),
            clusterCenters: Self.batched([b, d, k], cc),
            clusterEmbeddings: Self.batched([b, d, k], ce),
            assignments: assign.enumerated().map { IndexTensor(shape: [b, sizes[$0.offset].0, sizes[$0.offset].1], values: $0.element) },
            assignmentFlips: flips)
    }

    /// A `shape` tensor from the images' results in order, copied once (no concatenated array in between). The
    /// parts fill it exactly (`shape[0]` images of equal size); were they to fall short, the rest would be zeros,
    /// and nothing past the tensor is ever written.
    static func batched(_ shape: [Int], _ parts: [[Float]]) -> Tensor {
        let total = parts.reduce(0) { $0 + $1.count }
        var t = total == shape.reduce(1, *) ? Tensor(uninitialized: shape) : Tensor(zeros: shape)
        t.withUnsafeMutableBufferPointer { dst in
            guard let base = dst.baseAddress else { return }
            var at = 0
            for p in parts where at < dst.count {
                let n = min(p.count, dst.count - at)
                p.withUnsafeBufferPointer { src in if let s = src.baseAddress { (base + at).update(from: s, count: n) } }
                at += n
            }
        }
        return t
    }
}
