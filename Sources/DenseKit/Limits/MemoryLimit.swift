import Foundation

/// An inference refused before anything was allocated because it would need more memory than allowed.
public enum ResourceLimitError: Error, CustomStringConvertible, Sendable, Equatable {
    /// `what` would need about `neededBytes` (weights plus activations), above `limitBytes`.
    case memory(what: String, neededBytes: Int, limitBytes: Int)

    /// One line: what, the estimate, the limit, and how to raise it.
    public var description: String {
        switch self {
        case let .memory(what, needed, limit):
            return "\(what) would need about \(MemorySize.format(needed)) of memory (weights + activations), "
                + "above the limit of \(MemorySize.format(limit)) (raise it with --max-memory or maxMemoryBytes)"
        }
    }
}

/// Memory sizes as people write them: `1073741824`, `512M`, `2G`, `1.5GiB`, `800MB` (K, M, G, T are powers of 1024).
public enum MemorySize {
    /// Parses a size. - Returns: bytes, or nil for text that is not a positive size (or above 2^62).
    public static func parse(_ text: String) -> Int? {
        var s = text.trimmingCharacters(in: .whitespaces).uppercased()
        for suffix in ["IB", "B"] where s.hasSuffix(suffix) && s.count > suffix.count {
            s.removeLast(suffix.count); break
        }
        var scale = 1.0
        if let last = s.last, let i = ["K", "M", "G", "T"].firstIndex(of: String(last)) {
            scale = pow(1024, Double(i + 1))
            s.removeLast()
        }
        guard !s.isEmpty, s.allSatisfy({ $0.isNumber || $0 == "." }), let v = Double(s), v.isFinite else { return nil }
        let bytes = (v * scale).rounded()
        guard bytes >= 1, bytes <= Double(1 << 62) else { return nil }
        return Int(bytes)
    }

    /// `1.5 GiB`, `12.0 MiB`, `512 bytes`.
    public static func format(_ bytes: Int) -> String {
        let units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        guard bytes >= 1024 else { return "\(bytes) bytes" }
        var v = Double(bytes) / 1024
        var i = 0
        while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        return String(format: "%.1f %@", v, units[i])
    }

    /// Three quarters of the machine's physical memory: the default inference cap of the command-line tool.
    public static var defaultInferenceLimit: Int {
        let physical = ProcessInfo.processInfo.physicalMemory
        return physical > 0 ? Int(clamping: physical / 4 * 3) : 1 << 34
    }
}

/// Saturating arithmetic for size estimates from untrusted configs (never traps, never wraps).
enum Saturating {
    static func mul(_ a: Int, _ b: Int) -> Int {
        let (p, o) = a.multipliedReportingOverflow(by: b)
        return o ? Int.max : p
    }
    static func add(_ a: Int, _ b: Int) -> Int {
        let (s, o) = a.addingReportingOverflow(b)
        return o ? Int.max : s
    }
    static func product(_ xs: [Int]) -> Int { xs.reduce(1) { mul($0, max($1, 0)) } }
    static func sum(_ xs: [Int]) -> Int { xs.reduce(0) { add($0, $1) } }
}

/// What one inference of a model needs, estimated from the config and the input size before anything is allocated.
public struct InferenceMemoryEstimate: Sendable, Equatable, CustomStringConvertible {
    /// Float32 parameters of the model (as loaded; read-only, shared by concurrent calls).
    public var weightBytes: Int
    /// The backbone graph's activation arena (its memory planner's `arenaBytes`: activations + workspace).
    public var backboneArenaBytes: Int
    /// Everything else one call allocates: input tensor, decoded image, head features, attention, read-out maps.
    public var otherBytes: Int

    /// The whole estimate (saturating).
    public var totalBytes: Int { Saturating.sum([weightBytes, backboneArenaBytes, otherBytes]) }

    /// `weights 12.0 MiB + backbone arena 80.0 MiB + head and outputs 40.0 MiB = 132.0 MiB`.
    public var description: String {
        "weights \(MemorySize.format(weightBytes)) + backbone arena \(MemorySize.format(backboneArenaBytes)) + "
            + "head and outputs \(MemorySize.format(otherBytes)) = \(MemorySize.format(totalBytes))"
    }

    /// Throws when `totalBytes` is above `limitBytes`.
    /// - Throws: `ResourceLimitError.memory` naming `what`.
    public func check(limitBytes: Int, what: String) throws {
        guard totalBytes <= limitBytes else {
            throw ResourceLimitError.memory(what: what, neededBytes: totalBytes, limitBytes: limitBytes)
        }
    }
}

extension VoVNetConfig {
    /// Float32 parameter bytes of the backbone this config describes (from the config alone; BN folded in).
    public var parameterBytes: Int {
        Saturating.mul(4, Saturating.sum(VoVNetKeys.expected(self).filter { !$0.isBuffer }.map { Saturating.product($0.shape) }))
    }
}

extension PolyMaXHeadConfig {
    /// Float32 parameter bytes of the head (with read-outs) this config describes.
    public var parameterBytes: Int {
        Saturating.mul(4, Saturating.sum(PolyMaXWeightLayout.shapes(config: self, readout: true).map { Saturating.product($0.shape) }))
    }
}

extension VoVNet {
    /// The memory one run on an input of `inputShape` needs: weights, the planned arena, input and outputs.
    /// - Throws: `GraphError` when the shape does not fit the graph.
    public func memoryEstimate(inputShape: [Int]) throws -> InferenceMemoryEstimate {
        let plan = try plan(inputShape: inputShape)
        let io = Saturating.mul(4, Saturating.add(Saturating.product(inputShape), Saturating.sum(plan.outputShapes.map(Saturating.product))))
        return InferenceMemoryEstimate(weightBytes: config.parameterBytes, backboneArenaBytes: plan.memory.arenaBytes, otherBytes: io)
    }
}

extension PolyMaXModel {
    /// The memory one `predict` of an upright `width x height` image needs, from the config and the backbone's memory
    /// plan, before any pixel or activation memory exists: the weights; the backbone arena (planned, exact); and
    /// an upper-leaning estimate of the rest (decoded image and network input, the pixel decoder's stage features
    /// with their block scratch, axial-attention logits of a whole axis, the k-means decoder's cluster-by-pixel
    /// maps, the stride-4 pixel head, and the read-out maps at the image size).
    /// - Throws: as ``checkInputSize(width:height:)``.
    public func memoryEstimate(width: Int, height: Int) throws -> InferenceMemoryEstimate {
        let g = try checkInputSize(width: width, height: height)
        let plan = try backbone.plan(inputShape: [1, 3, g.paddedHeight, g.paddedWidth])
        let h = config.head, pd = h.pixelDecoder
        let m = Saturating.mul, a = Saturating.add
        func cells(_ stride: Int) -> (Int, Int) { ((g.paddedHeight + stride - 1) / stride, (g.paddedWidth + stride - 1) / stride) }
        var floats = 0
        // Network input, the backbone's outputs kept for the head.
        floats = a(floats, m(3, m(g.paddedHeight, g.paddedWidth)))
        floats = a(floats, Saturating.sum(plan.outputShapes.map(Saturating.product)))
        // Pixel decoder, OS32 -> OS4: stage output (4 b), block scratch (input, mid, residual, upsampled and
        // concatenated features), and for axial stages the attention logits of one whole axis per head.
        for (i, stride) in [32, 16, 8, 4].enumerated() {
            let (fh, fw) = cells(stride)
            let px = m(fh, fw)
            floats = a(floats, m(8, m(pd.outputChannels[i], px)))
            if pd.layerTypes[i] == .axial {
                floats = a(floats, m(2, m(pd.numHeads, m(px, max(fh, fw)))))
            }
        }
        // k-means decoder at OS32/16/8: cluster-by-pixel logits and assignments, pixel features.
        for stride in [32, 16, 8] {
            let (fh, fw) = cells(stride)
            floats = a(floats, m(4, m(h.numClusters, m(fh, fw))))
        }
        // Pixel head at OS4: mid features, embeddings, mask logits (and the cropped copy).
        let (h4, w4) = cells(4)
        floats = a(floats, m(m(h4, w4), a(m(2, h.predMidChannels), a(m(2, h.embedDim), m(3, h.numClusters)))))
        // Read-out at the image size: class scores (two buffers), labels, depth, normals.
        let hw = m(g.originalHeight, g.originalWidth)
        floats = a(floats, m(hw, a(m(2, a(h.numClasses, 1)), 6)))
        // The decoded RGB8 image (bytes).
        let imageBytes = m(3, hw)
        let weights = a(config.backbone.parameterBytes, h.parameterBytes)
        return InferenceMemoryEstimate(weightBytes: weights, backboneArenaBytes: plan.memory.arenaBytes,
                                       otherBytes: a(m(4, floats), imageBytes))
    }

    /// Refuses, before anything is allocated, an image whose inference would need more than `limitBytes`
    /// (``memoryEstimate(width:height:)``). Also runs ``checkInputSize(width:height:)``.
    /// - Throws: `ResourceLimitError.memory`; the errors of ``checkInputSize(width:height:)``.
    public func checkMemory(width: Int, height: Int, limitBytes: Int) throws {
        try memoryEstimate(width: width, height: height).check(limitBytes: limitBytes, what: "a \(width)x\(height) image with this model")
    }

    /// ``predict(_:tasks:scores:)`` after refusing, before anything is allocated, an inference above `maxMemoryBytes`.
    /// - Throws: `ResourceLimitError.memory`, then as ``predict(_:tasks:scores:)``.
    public func predict(_ image: RGBImage, tasks: PolyMaXReadoutTasks, scores: Bool = false, maxMemoryBytes: Int) throws -> PolyMaXPrediction {
        try checkMemory(width: image.width, height: image.height, limitBytes: maxMemoryBytes)
        return try predict(image, tasks: tasks, scores: scores)
    }
}

extension Segmenter {
    /// ``checkImageSize(width:height:)`` plus the memory cap (nil: no cap), from the image header alone.
    /// - Throws: `ResourceLimitError.memory`; `PolyMaXError.unsupportedInputSize`.
    public func checkImageSize(width: Int, height: Int, maxMemoryBytes: Int?) throws {
        if let limit = maxMemoryBytes { try model.checkMemory(width: width, height: height, limitBytes: limit) }
        else { try checkImageSize(width: width, height: height) }
    }

    /// ``segment(_:includeScores:)`` refusing, before anything is allocated, an inference above `maxMemoryBytes`.
    public func segment(_ image: RGBImage, includeScores: Bool = false, maxMemoryBytes: Int) throws -> SegmentationResult {
        try checkImageSize(width: image.width, height: image.height, maxMemoryBytes: maxMemoryBytes)
        return try segment(image, includeScores: includeScores)
    }
}

extension DepthEstimator {
    /// ``checkImageSize(width:height:)`` plus the memory cap (nil: no cap), from the image header alone.
    /// - Throws: `ResourceLimitError.memory`; `PolyMaXError.unsupportedInputSize`.
    public func checkImageSize(width: Int, height: Int, maxMemoryBytes: Int?) throws {
        if let limit = maxMemoryBytes { try model.checkMemory(width: width, height: height, limitBytes: limit) }
        else { try checkImageSize(width: width, height: height) }
    }

    /// ``estimateDepth(_:)`` refusing, before anything is allocated, an inference above `maxMemoryBytes`.
    public func estimateDepth(_ image: RGBImage, maxMemoryBytes: Int) throws -> DepthMap {
        try checkImageSize(width: image.width, height: image.height, maxMemoryBytes: maxMemoryBytes)
        return try estimateDepth(image)
    }

    /// ``estimateNormals(_:)`` refusing, before anything is allocated, an inference above `maxMemoryBytes`.
    public func estimateNormals(_ image: RGBImage, maxMemoryBytes: Int) throws -> NormalMap {
        try checkImageSize(width: image.width, height: image.height, maxMemoryBytes: maxMemoryBytes)
        return try estimateNormals(image)
    }
}

/// Memory estimates for any loaded model, for the tools that run a model on a raw input tensor (profile, bench).
public enum InferenceMemory {
    /// The estimate for one run of `model` on an input of `inputShape` (`[N, C, H, W]`): for VoVNet the planned arena,
    /// for a PolyMaX model its backbone graph (what `run`/`profile` plan) plus the head's weights; for BiFormer and ViT
    /// (not planned ahead) an upper-leaning count of token features, MLP and attention buffers from the config.
    /// - Throws: `GraphError` when the shape does not fit the graph.
    public static func estimate(_ model: any DenseModel, inputShape: [Int]) throws -> InferenceMemoryEstimate {
        if let v = model as? VoVNet { return try v.memoryEstimate(inputShape: inputShape) }
        if let p = model as? PolyMaXModel {
            var e = try p.backbone.memoryEstimate(inputShape: inputShape)
            e.weightBytes = Saturating.add(e.weightBytes, p.config.head.parameterBytes)
            return e
        }
        let m = Saturating.mul, a = Saturating.add
        let h = inputShape.count == 4 ? max(inputShape[2], 0) : 0, w = inputShape.count == 4 ? max(inputShape[3], 0) : 0
        var floats = Saturating.product(inputShape)
        var weights = 0
        if let b = model as? BiFormer {
            // Per stage (stride 4, 8, 16, 32): token features with the block's buffers and MLP hidden layer, and the
            // attention logits (full attention: all token pairs; routed: each token against its top-k regions).
            let c = b.config
            weights = m(4, c.parameterCount)
            for i in 0..<4 {
                let s = 4 << i
                let px = m((h + s - 1) / s, (w + s - 1) / s)
                let hidden = Int(min(64, max(1, c.mlpRatios[i].rounded(.up))))
                floats = a(floats, m(px, m(c.embedDim[i], a(8, m(2, hidden)))))
                let heads = max(1, c.qkDims[i] / max(c.headDim, 1))
                let keys = c.topks[i] > 0 ? m(c.topks[i], max(1, px / max(1, c.nWin * c.nWin))) : px
                floats = a(floats, m(heads, m(px, keys)))
            }
        } else if let v = model as? ViT {
            // Tokens with the block's buffers and MLP hidden layer, and one layer's attention logits (all heads).
            let c = v.config
            let tokens = a(m(h / max(c.patchSize, 1), w / max(c.patchSize, 1)), 1)
            weights = m(4, m(c.depth, m(c.embedDim, a(m(4, c.embedDim), m(2, c.hiddenDim)))))
            floats = a(floats, m(tokens, a(m(8, c.embedDim), m(2, c.hiddenDim))))
            floats = a(floats, m(c.numHeads, m(tokens, tokens)))
        }
        return InferenceMemoryEstimate(weightBytes: weights, backboneArenaBytes: 0, otherBytes: m(4, floats))
    }

    /// Refuses a run above `limitBytes` before its input tensor exists.
    /// - Throws: `ResourceLimitError.memory`, or as ``estimate(_:inputShape:)``.
    public static func check(_ model: any DenseModel, inputShape: [Int], limitBytes: Int) throws {
        let what = "a \(inputShape.map(String.init).joined(separator: "x")) input to this \(model.architecture) model"
        try estimate(model, inputShape: inputShape).check(limitBytes: limitBytes, what: what)
    }
}
