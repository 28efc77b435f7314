import Foundation

/// What one image's prediction holds, at the ORIGINAL upright image size `H x W` (row-major).
public struct PolyMaXPrediction: Sendable {
    /// Image height.
    public var height: Int
    /// Image width.
    public var width: Int
    /// Class index per pixel `[H * W]` (argmax, lowest index on ties); nil when not requested.
    public var labels: [Int32]?
    /// Class scores `[C, H, W]` (void dropped, spec 6.1); nil unless requested.
    public var scores: Tensor?
    /// Depth `[H * W]` in the model's depth units; nil when not requested.
    public var depth: [Float]?
    /// Unit normals `[3, H, W]` (x, y, z planes); nil when not requested.
    public var normals: Tensor?
    /// Where the image sat in the network input.
    public var geometry: LetterboxGeometry
}

/// A full PolyMaX-style dense-prediction model: a VoVNet backbone plus the PolyMaX head and read-outs, built from
/// ONE safetensors file (`densekit.architecture` = `polymax`; config in `PolyMaXModelConfig`).
///
/// Tensors: the backbone's timm names under `backbone.` (or the config's `key_prefix`), the head's names of
/// spec `polymax-head.md` section 8 (`pixel_decoder.*`, `predictor.*`), read-outs `readout.depth.*`,
/// `readout.normals.*` (optional). Immutable; weights are shared read-only and every call allocates its own
/// scratch, so one instance serves concurrent calls.
public final class PolyMaXModel: Sendable {
    /// The configuration.
    public let config: PolyMaXModelConfig
    /// The backbone.
    public let backbone: VoVNet
    /// The head (with its read-outs).
    public let head: PolyMaXHead

    /// Builds the model; the config is validated (by `PolyMaXModelConfig`) before any tensor is read.
    /// - Throws: `ModelConfigError` for missing, unexpected or wrongly shaped tensors, or a task whose read-out
    ///   weights are absent; `WeightsError` for unreadable tensors.
    public init(config: PolyMaXModelConfig, weights: any WeightSource) throws {
        self.config = config
        backbone = try VoVNet(config: config.backbone, weights: weights)
        head = try PolyMaXHead(config: config.head, weights: weights)
        let prefix = config.backbone.keyPrefix ?? "backbone."
        let known = [prefix, "pixel_decoder.", "predictor.", "readout.", "sem_seg_head."]
        let stray = weights.keys.filter { k in !known.contains { k.hasPrefix($0) } && !k.hasSuffix("num_batches_tracked") }
        if !stray.isEmpty { throw ModelConfigError.unexpectedWeights(model: "polymax", keys: stray) }
        if config.task == .depth && !head.readout.hasDepth {
            throw ModelConfigError.missingWeights(model: "polymax (task depth)", keys: ["readout.depth.weight", "readout.depth.bias"])
        }
        if config.task == .normals && !head.readout.hasNormals {
            throw ModelConfigError.missingWeights(model: "polymax (task normals)", keys: ["readout.normals.weight", "readout.normals.bias"])
        }
    }

    /// Runs backbone and head on a preprocessed input `[1, 3, Hp, Wp]`.
    /// - Throws: `GraphError` / `PolyMaXError` for a wrong input shape.
    public func forward(_ input: Tensor) throws -> PolyMaXHeadOutput {
        let f = try backbone.run(input)
        guard let r2 = f["feat4"], let r3 = f["feat8"], let r4 = f["feat16"], let r5 = f["feat32"] else {
            throw PolyMaXError.shape("backbone did not return feat4...feat32")
        }
        return try head.run(res2: r2, res3: r3, res4: r4, res5: r5)
    }

    /// Checks, from the upright image size alone and before any pixel or activation memory is allocated, that an
    /// image of `width x height` can run through this model: the letterboxed network input (`config.preprocess`)
    /// must pass the backbone's shape checks (every pool needs 2 rows and columns), and the backbone features
    /// that reach an axial stage of the pixel decoder must be at most `max_span` long on each side. Callers that
    /// read the size from an image header (``ImageDecoder/probe(path:)``, upright ``ImageInfo/width`` and
    /// ``ImageInfo/height``) can refuse an image before decoding it; ``predict(_:tasks:scores:)`` runs the
    /// same check first.
    /// - Returns: the letterbox geometry the image would get.
    /// - Throws: `PolyMaXError.unsupportedInputSize` naming the image size, the limit and the largest side that fits;
    ///   `ImageError.invalidArgument` for a non-positive size.
    @discardableResult
    public func checkInputSize(width: Int, height: Int) throws -> LetterboxGeometry {
        let g = try LetterboxGeometry(height: height, width: width, preprocess: config.preprocess)
        let inputShape = [1, 3, g.paddedHeight, g.paddedWidth]
        let plan: ExecutionPlan
        do { plan = try backbone.plan(inputShape: inputShape) } catch {
            throw PolyMaXError.unsupportedInputSize("a \(width)x\(height) image (network input \(g.paddedWidth)x\(g.paddedHeight)) does not fit the backbone: \(error)")
        }
        let names = backbone.outputNames, shapes = plan.outputShapes
        let pd = config.head.pixelDecoder
        // Pixel-decoder stage i (OS32, OS16, OS8, OS4) reads the backbone feature of that stride; the finest axial
        // stage sets the limit, so it is checked (and reported) first.
        let stages = [("feat32", 32), ("feat16", 16), ("feat8", 8), ("feat4", 4)].enumerated().filter { pd.layerTypes[$0.offset] == .axial }
        let finest = stages.map { $0.element.1 }.min() ?? 32
        for (_, (name, stride)) in stages.reversed() {
            guard let j = names.firstIndex(of: name), j < shapes.count, shapes[j].count == 4 else { continue }
            let fh = shapes[j][2], fw = shapes[j][3]
            guard fh > pd.maxSpan || fw > pd.maxSpan else { continue }
            let fit: String
            switch config.preprocess.sizing {
            case .multiple: fit = "images up to about \(pd.maxSpan * finest) pixels per side fit"
            case .fixed(let h, let w): fit = "its fixed input size \(w)x\(h) is too large for every image"
            }
            throw PolyMaXError.unsupportedInputSize(
                "a \(width)x\(height) image is too large for this model: its stride-\(stride) features would be \(fw)x\(fh), "
                + "above the axial attention's max_span \(pd.maxSpan) (\(fit))")
        }
        return g
    }

    /// Predicts one decoded (upright) image: letterbox as `config.preprocess` says, backbone + head, crop the
    /// padding on the stride-4 mask logits, then the fused read-out straight to `H x W` (logits resized
    /// bilinearly, half-pixel centres, before the softmax). Nothing is resized after the read-out.
    /// - Parameters:
    ///   - tasks: read-outs to compute (`.semantic` gives labels, and scores when `scores` is true).
    ///   - scores: keep the `[C, H, W]` class scores.
    /// - Throws: `PolyMaXError.missingReadout` when depth / normals are asked without their weights;
    ///   `PolyMaXError.unsupportedInputSize` (before anything is allocated) as ``checkInputSize(width:height:)``;
    ///   `ImageError.invalidArgument` for an empty image.
    public func predict(_ image: RGBImage, tasks: PolyMaXReadoutTasks, scores: Bool = false) throws -> PolyMaXPrediction {
        if tasks.contains(.depth) && !head.readout.hasDepth {
            throw PolyMaXError.missingReadout("this model has no depth read-out (no readout.depth.* weights)")
        }
        if tasks.contains(.normals) && !head.readout.hasNormals {
            throw PolyMaXError.missingReadout("this model has no surface-normal read-out (no readout.normals.* weights)")
        }
        _ = try checkInputSize(width: image.width, height: image.height)
        let (input, g) = try ImageTensor.letterbox(image, preprocess: config.preprocess)
        let out = try forward(input)
        let ml = out.maskLogits
        let k = ml.shape[1], h4 = ml.shape[2], w4 = ml.shape[3]
        let (ch, cw) = g.contentRegion(featureHeight: h4, featureWidth: w4)
        var cropped = Tensor(zeros: [1, k, ch, cw])
        cropped.withUnsafeMutableBufferPointer { dst in
            ml.withUnsafeBufferPointer { src in
                for c in 0..<k {
                    for y in 0..<ch {
                        let s = (c * h4 + y) * w4, d = (c * ch + y) * cw
                        for x in 0..<cw { dst[d + x] = src[s + x] }
                    }
                }
            }
        }
        let r = try head.readout.run(maskLogits: cropped, classLogits: out.classLogits, clusterEmbeddings: out.clusterEmbeddings,
                                     outputSize: (g.originalHeight, g.originalWidth), alignCorners: false, tasks: tasks)
        let hw = g.originalHeight * g.originalWidth
        var p = PolyMaXPrediction(height: g.originalHeight, width: g.originalWidth, labels: nil, scores: nil,
                                  depth: nil, normals: nil, geometry: g)
        if let l = r.semanticLabels { p.labels = l.values.prefix(hw).map { Int32(truncatingIfNeeded: $0) } }
        if scores, let s = r.semanticScores { p.scores = s.reshaped([s.shape[1], g.originalHeight, g.originalWidth]) }
        if let d = r.depth { p.depth = d.scalars }
        if let n = r.normals { p.normals = n.reshaped([3, g.originalHeight, g.originalWidth]) }
        return p
    }
}

extension PolyMaXModel: DenseModel {
    /// `polymax`.
    public var architecture: String { "polymax" }
    /// 3.
    public var inputChannels: Int { 3 }
    /// `mask_logits`, `class_logits`, `cluster_embeddings`.
    public var outputNames: [String] { ["mask_logits", "class_logits", "cluster_embeddings"] }
    /// Backbone + head on a preprocessed input `[1, 3, H, W]`; returns the stride-4 mask logits `[1, K, H/4, W/4]`,
    /// class logits `[1, K, C+1]` and cluster embeddings `[1, D, K]`.
    /// - Throws: `GraphError` / `PolyMaXError` for a wrong input shape.
    public func run(_ input: Tensor) throws -> [String: Tensor] {
        let o = try forward(input)
        return ["mask_logits": o.maskLogits, "class_logits": o.classLogits, "cluster_embeddings": o.clusterEmbeddings]
    }
    /// Profile of the BACKBONE graph (the head is not a graph).
    /// - Throws: as `VoVNet.profile`.
    public func profile(input: Tensor, warmup: Int) throws -> ProfileReport {
        try backbone.profile(input: input, warmup: warmup)
    }
}
