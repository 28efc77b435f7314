import Foundation

/// The three depth errors of one comparison (Eigen et al., NIPS 2014; the definitions of Monodepth2's
/// `compute_errors`), over the valid ground-truth pixels `i` with ground truth `g_i` and prediction `d_i`
/// (both in metres, or both in the same unit):
/// - `absRel = mean(|d_i - g_i| / g_i)` (unitless, lower is better);
/// - `rmse = sqrt(mean((d_i - g_i)^2))` (in the depth unit, metres; lower is better);
/// - `delta1` = fraction of pixels with `max(d_i / g_i, g_i / d_i) < 1.25` (0...1, higher is better).
public struct DepthMetrics: Sendable, Equatable {
    /// Mean absolute relative error.
    public var absRel: Double
    /// Root mean squared error, in the depth unit (metres).
    public var rmse: Double
    /// Fraction (0...1) of pixels within a factor 1.25 of the ground truth.
    public var delta1: Double

    /// The three values as given.
    public init(absRel: Double, rmse: Double, delta1: Double) {
        self.absRel = absRel
        self.rmse = rmse
        self.delta1 = delta1
    }
}

/// The evaluation of one depth prediction against its ground truth, made by `DepthEvaluation.evaluate`.
public struct DepthImageEvaluation: Sendable, Equatable {
    /// Ground-truth pixels used (finite and > 0).
    public var validPixels: Int
    /// Median of the valid ground truth (the baseline's constant), in the ground truth's unit.
    public var groundTruthMedian: Double
    /// Median of the (floored) prediction at the valid pixels.
    public var predictionMedian: Double
    /// The median-scaling factor `groundTruthMedian / predictionMedian`.
    public var scale: Double
    /// Errors of the prediction as it is (metric depth).
    public var metric: DepthMetrics
    /// Errors of `scale x prediction` (per-image median scaling: only the shape of the depth counts).
    public var medianScaled: DepthMetrics
    /// Errors of the trivial baseline: `groundTruthMedian` at every pixel. Median scaling leaves it unchanged
    /// (its scale is 1), so the one value serves both comparisons.
    public var baseline: DepthMetrics
}

/// Depth metrics as pure functions over `[H * W]` maps.
public enum DepthEvaluation {
    /// Predictions below this (and non-finite ones) are raised to it before any ratio: 1 mm when in metres.
    public static let defaultMinimumDepth: Float = 1e-3

    /// Compares one prediction with its ground truth.
    /// - Parameters:
    ///   - prediction: predicted depth per pixel, row-major `[H * W]`, in metres (or the ground truth's unit).
    ///     Values below `minimumDepth`, and NaN / infinities, are replaced by `minimumDepth`.
    ///   - groundTruth: ground-truth depth per pixel, `[H * W]`, same unit; pixels that are 0, negative or not
    ///     finite are invalid and excluded from every metric.
    ///   - name: names the pair in errors.
    ///   - minimumDepth: the floor of the prediction (> 0).
    /// - Returns: the metric, median-scaled and baseline errors; nil when no ground-truth pixel is valid.
    /// - Throws: `EvaluationError.sizeMismatch` when the counts differ; `EvaluationError.invalidArgument` for a
    ///   `minimumDepth` that is not positive and finite.
    ///
    /// The median of an even count is the mean of the two middle values (as `numpy.median`).
    public static func evaluate(prediction: [Float], groundTruth: [Float], name: String = "prediction",
                                minimumDepth: Float = defaultMinimumDepth) throws -> DepthImageEvaluation? {
        guard prediction.count == groundTruth.count else {
            throw EvaluationError.sizeMismatch(what: name, expected: "\(prediction.count) pixels", got: "\(groundTruth.count) pixels")
        }
        guard minimumDepth > 0, minimumDepth.isFinite else {
            throw EvaluationError.invalidArgument("minimum depth must be positive and finite, got \(minimumDepth)")
        }
        var g: [Double] = [], d: [Double] = []
        g.reserveCapacity(groundTruth.count)
        d.reserveCapacity(groundTruth.count)
        for i in 0..<groundTruth.count {
            let t = groundTruth[i]
            guard t.isFinite, t > 0 else { continue }
            let p = prediction[i]
            g.append(Double(t))
            d.append(Double(p.isFinite && p >= minimumDepth ? p : minimumDepth))
        }
        guard !g.isEmpty else { return nil }
        let gm = median(g), dm = median(d)
        let scale = gm / dm
        let metric = errors(prediction: d, groundTruth: g)
        let scaled = errors(prediction: d.map { $0 * scale }, groundTruth: g)
        let base = errors(prediction: [Double](repeating: gm, count: g.count), groundTruth: g)
        return DepthImageEvaluation(validPixels: g.count, groundTruthMedian: gm, predictionMedian: dm, scale: scale,
                                    metric: metric, medianScaled: scaled, baseline: base)
    }

    /// AbsRel, RMSE and delta1 of `prediction` against `groundTruth` (same count, every value > 0, non-empty).
    public static func errors(prediction d: [Double], groundTruth g: [Double]) -> DepthMetrics {
        precondition(d.count == g.count && !g.isEmpty, "errors: counts must match and be positive")
        var rel = 0.0, sq = 0.0, within = 0
        for i in 0..<g.count {
            let e = d[i] - g[i]
            rel += abs(e) / g[i]
            sq += e * e
            if max(d[i] / g[i], g[i] / d[i]) < 1.25 { within += 1 }
        }
        let n = Double(g.count)
        return DepthMetrics(absRel: rel / n, rmse: (sq / n).squareRoot(), delta1: Double(within) / n)
    }

    /// The median of `values` (mean of the two middle values for an even count); 0 for none.
    public static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let s = values.sorted()
        let m = s.count / 2
        return s.count % 2 == 1 ? s[m] : (s[m - 1] + s[m]) / 2
    }
}

/// Averages per-image depth evaluations over a data set: every metric is the mean of the per-image values (each
/// image weighs the same, as in the NYU / KITTI evaluation scripts), not a pooled mean over all pixels.
public struct DepthMetricsAccumulator: Sendable, Equatable {
    /// The images added, in order.
    public private(set) var images: [DepthImageEvaluation] = []

    /// An empty accumulator.
    public init() {}

    /// Adds one image's evaluation.
    public mutating func add(_ e: DepthImageEvaluation) { images.append(e) }

    /// Number of images added.
    public var count: Int { images.count }
    /// Valid ground-truth pixels over all images.
    public var validPixels: Int { images.reduce(0) { $0 + $1.validPixels } }

    /// Mean metric-depth errors; nil when empty.
    public var metric: DepthMetrics? { mean(\.metric) }
    /// Mean errors after per-image median scaling; nil when empty.
    public var medianScaled: DepthMetrics? { mean(\.medianScaled) }
    /// Mean errors of the median-ground-truth baseline; nil when empty.
    public var baseline: DepthMetrics? { mean(\.baseline) }

    func mean(_ k: KeyPath<DepthImageEvaluation, DepthMetrics>) -> DepthMetrics? {
        guard !images.isEmpty else { return nil }
        let n = Double(images.count)
        var a = 0.0, r = 0.0, d = 0.0
        for e in images { a += e[keyPath: k].absRel; r += e[keyPath: k].rmse; d += e[keyPath: k].delta1 }
        return DepthMetrics(absRel: a / n, rmse: r / n, delta1: d / n)
    }
}
