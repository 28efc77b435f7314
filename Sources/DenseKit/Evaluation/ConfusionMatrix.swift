import Foundation

/// A semantic-segmentation confusion matrix that accumulates over images, and the metrics read from it:
/// per-class IoU, mean IoU (mIoU), pixel accuracy and mean class accuracy.
///
/// Rows are ground-truth classes, columns predicted classes: `counts[g * classCount + p]` pixels have ground
/// truth `g` and prediction `p`. A ground-truth value is IGNORED (counted in `ignoredPixels`, nowhere else) when
/// it is `>= classCount` (for CamVid's 11 classes, the void value 11) or equals `ignoreIndex`.
///
/// Definitions (as in mmsegmentation / the Cityscapes scripts), with `TP_c = counts[c][c]`,
/// `FP_c` = column sum - `TP_c`, `FN_c` = row sum - `TP_c`:
/// - `IoU_c = TP_c / (TP_c + FP_c + FN_c)`, nil when that union is 0 (class absent from ground truth and
///   prediction);
/// - `mIoU` = mean of the non-nil `IoU_c`;
/// - pixel accuracy = `sum TP_c / labelled pixels`;
/// - class accuracy `TP_c / (TP_c + FN_c)`, nil for a class absent from the ground truth; mean class accuracy =
///   mean of the non-nil ones.
///
/// A pure value type: `add` for one image, `merge` (or `+`) for partial matrices.
public struct ConfusionMatrix: Sendable, Equatable {
    /// Number of classes C (valid labels are `0..<C`).
    public let classCount: Int
    /// An extra ground-truth value to ignore inside `0..<C` (values `>= C` are always ignored), or nil.
    public let ignoreIndex: Int?
    /// Pixel counts, row-major `[C * C]`: row = ground truth, column = prediction.
    public private(set) var counts: [Int]
    /// Ground-truth pixels skipped as void / ignored.
    public private(set) var ignoredPixels: Int = 0

    /// An empty matrix.
    /// - Parameters: `classCount` C >= 1 (at most 65536); `ignoreIndex` an optional extra ignored label.
    /// - Throws: `EvaluationError.invalidArgument` when C is out of range.
    public init(classCount: Int, ignoreIndex: Int? = nil) throws {
        guard (1...65536).contains(classCount) else {
            throw EvaluationError.invalidArgument("class count must be in 1...65536, got \(classCount)")
        }
        self.classCount = classCount
        self.ignoreIndex = ignoreIndex
        counts = [Int](repeating: 0, count: classCount * classCount)
    }

    /// Pixels with ground truth `g` and prediction `p` (both `0..<C`).
    public func count(groundTruth g: Int, predicted p: Int) -> Int { counts[g * classCount + p] }

    /// Adds one image.
    /// - Parameters:
    ///   - prediction: predicted class per pixel, `[H * W]`, each `0..<C` (as `SegmentationResult.labels`).
    ///   - groundTruth: label value per pixel, `[H * W]` (as `GrayImage.values` of a label PNG); ignored values
    ///     are skipped.
    ///   - name: names the pair in errors.
    /// - Throws: `EvaluationError.sizeMismatch` when the counts differ; `EvaluationError.invalidArgument` for a
    ///   prediction outside `0..<C` at a labelled pixel. Nothing is added when it throws.
    public mutating func add(prediction: [Int32], groundTruth: [UInt16], name: String = "prediction") throws {
        guard prediction.count == groundTruth.count else {
            throw EvaluationError.sizeMismatch(what: name, expected: "\(prediction.count) pixels", got: "\(groundTruth.count) pixels")
        }
        let c = classCount
        var local = [Int](repeating: 0, count: c * c)
        var ignored = 0
        let skip = ignoreIndex ?? -1
        for i in 0..<prediction.count {
            let g = Int(groundTruth[i])
            if g >= c || g == skip { ignored += 1; continue }
            let p = Int(prediction[i])
            guard p >= 0, p < c else {
                throw EvaluationError.invalidArgument("\(name): predicted class \(p) at pixel \(i) is outside 0..<\(c)")
            }
            local[g * c + p] += 1
        }
        for k in 0..<local.count { counts[k] += local[k] }
        ignoredPixels += ignored
    }

    /// Adds the counts of `other`.
    /// - Throws: `EvaluationError.invalidArgument` when the class counts or ignore indices differ.
    public mutating func merge(_ other: ConfusionMatrix) throws {
        guard other.classCount == classCount, other.ignoreIndex == ignoreIndex else {
            throw EvaluationError.invalidArgument("cannot merge confusion matrices of \(classCount) and \(other.classCount) classes")
        }
        for k in 0..<counts.count { counts[k] += other.counts[k] }
        ignoredPixels += other.ignoredPixels
    }

    /// Labelled (not ignored) pixels seen.
    public var labelledPixels: Int { counts.reduce(0, +) }

    /// Ground-truth pixels of class `c` (row sum).
    public func groundTruthPixels(_ c: Int) -> Int { (0..<classCount).reduce(0) { $0 + counts[c * classCount + $1] } }

    /// Pixels predicted as class `c` at labelled pixels (column sum).
    public func predictedPixels(_ c: Int) -> Int { (0..<classCount).reduce(0) { $0 + counts[$1 * classCount + c] } }

    /// IoU of class `c` in 0...1, nil when the class is absent from both ground truth and prediction.
    public func iou(_ c: Int) -> Double? {
        let tp = counts[c * classCount + c]
        let union = groundTruthPixels(c) + predictedPixels(c) - tp
        return union > 0 ? Double(tp) / Double(union) : nil
    }

    /// `iou(c)` for every class, `[C]`.
    public var perClassIoU: [Double?] { (0..<classCount).map(iou) }

    /// Mean of the defined per-class IoUs in 0...1; nil when no class is defined (nothing labelled).
    public var meanIoU: Double? { Self.mean(perClassIoU) }

    /// Recall of class `c` (`TP / ground-truth pixels`) in 0...1, nil when the class is absent from the ground truth.
    public func classAccuracy(_ c: Int) -> Double? {
        let n = groundTruthPixels(c)
        return n > 0 ? Double(counts[c * classCount + c]) / Double(n) : nil
    }

    /// Mean of the defined class accuracies in 0...1; nil when nothing is labelled.
    public var meanClassAccuracy: Double? { Self.mean((0..<classCount).map(classAccuracy)) }

    /// Correct labelled pixels / labelled pixels in 0...1; nil when nothing is labelled.
    public var pixelAccuracy: Double? {
        let n = labelledPixels
        guard n > 0 else { return nil }
        return Double((0..<classCount).reduce(0) { $0 + counts[$1 * classCount + $1] }) / Double(n)
    }

    /// The sum of two matrices of the same shape. - Throws: as `merge(_:)`.
    public static func + (a: ConfusionMatrix, b: ConfusionMatrix) throws -> ConfusionMatrix {
        var r = a
        try r.merge(b)
        return r
    }

    static func mean(_ xs: [Double?]) -> Double? {
        let v = xs.compactMap { $0 }
        return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
    }
}
