import Foundation

/// The semantic segmentation of one image, at its ORIGINAL upright size.
public struct SegmentationResult: Sendable {
    /// Image width (upright).
    public var width: Int
    /// Image height (upright).
    public var height: Int
    /// Class index per pixel, row-major `[height * width]`, each `0..<classNames.count`.
    public var labels: [Int32]
    /// Class names from the model's metadata (index = class).
    public var classNames: [String]
    /// Colour `[r, g, b]` per class from the model's metadata.
    public var palette: [[UInt8]]
    /// Per-class scores `[C, height, width]` (sum over clusters of cluster probability x class probability,
    /// void dropped); nil unless requested.
    public var scores: Tensor?

    /// Fraction of pixels (0...1) labelled with each class, `[classNames.count]`.
    public var classShares: [Double] {
        var counts = [Int](repeating: 0, count: classNames.count)
        for l in labels where l >= 0 && Int(l) < counts.count { counts[Int(l)] += 1 }
        let n = Double(max(1, labels.count))
        return counts.map { Double($0) / n }
    }
}

/// A depth map at the ORIGINAL upright image size.
public struct DepthMap: Sendable {
    /// Width.
    public var width: Int
    /// Height.
    public var height: Int
    /// Depth per pixel, row-major `[height * width]`, in `units`.
    public var values: [Float]
    /// `metres` or `relative` (from the model's `depth_units`).
    public var units: String

    /// Minimum, median (lower middle for an even count) and maximum of `values`.
    public var statistics: (min: Float, median: Float, max: Float) {
        guard !values.isEmpty else { return (0, 0, 0) }
        let s = values.sorted()
        return (s[0], s[(s.count - 1) / 2], s[s.count - 1])
    }
}

/// Surface normals at the ORIGINAL upright image size.
public struct NormalMap: Sendable {
    /// Width.
    public var width: Int
    /// Height.
    public var height: Int
    /// Unit normal per pixel, interleaved `[height * width * 3]` (x, y, z).
    public var values: [Float]
}

/// Errors of the pipelines.
public enum PipelineError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The model cannot do what was asked (e.g. normals without `readout.normals.*`).
    case unsupportedTask(String)
    /// No model file in a folder serves the requested use (``ModelCapabilities/defaultModel(in:for:)``).
    case noSuitableModel(String)
    /// The model produced NaN or infinite values (damaged weights); nothing is written.
    case nonFiniteOutput(String)

    /// One line.
    public var description: String {
        switch self {
        case .unsupportedTask(let m): return m
        case .noSuitableModel(let m): return m
        case .nonFiniteOutput(let m): return m
        }
    }
}

/// Semantic segmentation with a full `polymax` model file.
///
/// ```swift
/// let seg = try Segmenter(modelPath: "Models/camvid.safetensors")
/// let (image, _) = try ImageDecoder.decode(path: "photo.jpg")
/// let result = try seg.segment(image)        // result.labels: [H * W] class indices
/// ```
/// Immutable and `Sendable`: one instance serves concurrent calls (weights shared, scratch per call).
public struct Segmenter: Sendable {
    /// The loaded model.
    public let model: PolyMaXModel

    /// Loads the model at `modelPath`.
    /// - Throws: `ImageError.unreadableFile`-like `WeightsError` for a missing or damaged file;
    ///   `ModelConfigError` for a file that is not a full `polymax` model or does not fit its config.
    public init(modelPath: String) throws { model = try ModelFile.loadPolyMaX(path: modelPath) }

    /// Wraps an already loaded model.
    public init(model: PolyMaXModel) { self.model = model }

    /// Class names (index = class).
    public var classNames: [String] { model.config.classes }
    /// Palette `[r, g, b]` per class.
    public var palette: [[UInt8]] { model.config.palette }

    /// Checks from the upright image size alone (e.g. an ``ImageInfo`` from ``ImageDecoder/probe(path:)``),
    /// before decoding, that the model can take the image; see ``PolyMaXModel/checkInputSize(width:height:)``.
    /// - Throws: `PolyMaXError.unsupportedInputSize`; `ImageError.invalidArgument` for a non-positive size.
    public func checkImageSize(width: Int, height: Int) throws { try model.checkInputSize(width: width, height: height) }

    /// Segments an upright image (as `ImageDecoder.decode` returns it).
    /// - Parameter includeScores: also return the `[C, H, W]` class scores.
    /// - Returns: labels at the image's size.
    /// - Throws: `ImageError.invalidArgument` for an empty image; `PolyMaXError.unsupportedInputSize` for an image
    ///   the model cannot take (checked before anything is allocated); `PolyMaXError` on an internal shape mismatch.
    public func segment(_ image: RGBImage, includeScores: Bool = false) throws -> SegmentationResult {
        try segmentNow(image, includeScores: includeScores)
    }

    func segmentNow(_ image: RGBImage, includeScores: Bool) throws -> SegmentationResult {
        guard model.config.task == .segmentation || model.config.task == .multitask else {
            throw PipelineError.unsupportedTask("this model's task is \(model.config.task.rawValue), not segmentation: its class read-out was not trained")
        }
        let p = try model.predict(image, tasks: .semantic, scores: includeScores)
        return SegmentationResult(width: p.width, height: p.height, labels: p.labels ?? [], classNames: classNames,
                                  palette: palette, scores: p.scores)
    }

    /// `segment(_:includeScores:)` on a detached task.
    /// - Throws: as the synchronous form.
    public func segment(_ image: RGBImage, includeScores: Bool = false) async throws -> SegmentationResult {
        let s = self
        return try await Task.detached { try s.segmentNow(image, includeScores: includeScores) }.value
    }
}

/// Depth and surface normals with a full `polymax` model file.
///
/// Immutable and `Sendable`: one instance serves concurrent calls.
public struct DepthEstimator: Sendable {
    /// The loaded model.
    public let model: PolyMaXModel

    /// Loads the model at `modelPath`.
    /// - Throws: `WeightsError` for a missing or damaged file; `ModelConfigError` for a file that is not a full
    ///   `polymax` model or does not fit its config.
    public init(modelPath: String) throws { model = try ModelFile.loadPolyMaX(path: modelPath) }

    /// Wraps an already loaded model.
    public init(model: PolyMaXModel) { self.model = model }

    /// Whether the model has `readout.depth.*` weights.
    public var hasDepth: Bool { model.head.readout.hasDepth }
    /// Whether the model has `readout.normals.*` weights.
    public var hasNormals: Bool { model.head.readout.hasNormals }

    /// Checks from the upright image size alone, before decoding, that the model can take the image; see
    /// ``PolyMaXModel/checkInputSize(width:height:)``.
    /// - Throws: `PolyMaXError.unsupportedInputSize`; `ImageError.invalidArgument` for a non-positive size.
    public func checkImageSize(width: Int, height: Int) throws { try model.checkInputSize(width: width, height: height) }

    /// Depth of an upright image at its size, in the model's `depth_units`.
    /// - Throws: `PipelineError.unsupportedTask` when the model has no depth read-out; `ImageError.invalidArgument`
    ///   for an empty image.
    public func estimateDepth(_ image: RGBImage) throws -> DepthMap { try depthNow(image) }

    func depthNow(_ image: RGBImage) throws -> DepthMap {
        guard hasDepth else { throw PipelineError.unsupportedTask("this model has no depth read-out (no readout.depth.* weights)") }
        let p = try model.predict(image, tasks: .depth)
        let values = p.depth ?? []
        guard values.allSatisfy({ $0.isFinite }) else {
            throw PipelineError.nonFiniteOutput("the model produced non-finite depth (NaN or infinity): its weights are damaged")
        }
        return DepthMap(width: p.width, height: p.height, values: values, units: model.config.depthUnits)
    }

    /// Unit surface normals of an upright image at its size.
    /// - Throws: `PipelineError.unsupportedTask` when the model has no `readout.normals.*` weights (the shipped models
    ///   may not); `ImageError.invalidArgument` for an empty image.
    public func estimateNormals(_ image: RGBImage) throws -> NormalMap { try normalsNow(image) }

    func normalsNow(_ image: RGBImage) throws -> NormalMap {
        guard hasNormals else {
            throw PipelineError.unsupportedTask("this model has no surface-normal read-out (no readout.normals.* weights); use a model trained with normals")
        }
        let p = try model.predict(image, tasks: .normals)
        let hw = p.width * p.height
        var v = [Float](repeating: 0, count: 3 * hw)
        if let n = p.normals {
            let s = n.scalars
            for i in 0..<hw { for c in 0..<3 { v[3 * i + c] = s[c * hw + i] } }
        }
        return NormalMap(width: p.width, height: p.height, values: v)
    }

    /// `estimateDepth(_:)` on a detached task. - Throws: as the synchronous form.
    public func estimateDepth(_ image: RGBImage) async throws -> DepthMap {
        let s = self
        return try await Task.detached { try s.depthNow(image) }.value
    }

    /// `estimateNormals(_:)` on a detached task. - Throws: as the synchronous form.
    public func estimateNormals(_ image: RGBImage) async throws -> NormalMap {
        let s = self
        return try await Task.detached { try s.normalsNow(image) }.value
    }
}
