import ArgumentParser
import DenseKit
import Foundation

/// `densekit eval`: measures a model on images with ground truth (segmentation labels or depth maps).
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Evaluate a model against ground truth: mIoU for segmentation, AbsRel / RMSE / delta1 for depth.",
        subcommands: [EvalSegmentCommand.self, EvalDepthCommand.self])
}

/// Shared plumbing of the `eval` subcommands: pairing, progress and number formatting.
enum EvalCLI {
    /// Decodes one pair: the image through the pipelines' size / memory check (`check` gets the upright width and
    /// height before decoding), the ground truth as gray samples of the same size.
    /// - Throws: `ImageError` for a bad or too large image; `EvaluationError.sizeMismatch` when the sizes differ.
    static func decodePair(_ p: EvaluationPair, maxPixels: Int, check: (Int, Int) throws -> Void) throws -> (RGBImage, GrayImage) {
        let image = try PipelineCLI.decode(p.image, maxPixels: maxPixels, check: check)
        let gt = try ImageDecoder.decodeGray(path: p.target)
        guard gt.width == image.width, gt.height == image.height else {
            throw EvaluationError.sizeMismatch(what: p.target, expected: "\(image.width)x\(image.height)", got: "\(gt.width)x\(gt.height)")
        }
        return (image, gt)
    }

    /// Pairs `images` with `targets` (by stem, or the names of `list`), checks their sizes from the headers, and
    /// notes on stderr the images left without ground truth.
    static func pairs(images: String, targets: String, list: String?) throws -> [EvaluationPair] {
        let names = try list.map { try EvaluationPairs.readList(path: $0) }
        let (pairs, unmatched) = try EvaluationPairs.match(images: images, targets: targets, names: names)
        if !unmatched.isEmpty {
            printError("densekit: note: \(unmatched.count) image(s) in \(images) have no ground truth in \(targets) and are skipped (first: \(unmatched[0]))")
        }
        try EvaluationPairs.checkSizes(pairs)
        return pairs
    }

    /// A percentage with two decimals, or `-` for nil.
    static func pct(_ x: Double?) -> String { x.map { String(format: "%6.2f", $0 * 100) } ?? "     -" }

    /// A JSON number, or `null` for nil.
    static func jnum(_ x: Double?) -> String { x.map { PipelineCLI.num($0) } ?? "null" }

    /// `{"abs_rel": .., "rmse": .., "delta1": ..}`.
    static func json(_ m: DepthMetrics?) -> String {
        guard let m else { return "null" }
        return "{\"abs_rel\": \(jnum(m.absRel)), \"rmse\": \(jnum(m.rmse)), \"delta1\": \(jnum(m.delta1))}"
    }

    static let exitCodes = "Exit codes: 0 done; 1 a failure (missing folder, no image with ground truth, a ground truth of another size, a bad model or image: one line on stderr); 64 usage error. Progress goes to stderr, results to stdout."
}

/// `densekit eval segment`: confusion matrix, per-class IoU and mIoU of a segmentation model.
struct EvalSegmentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment", abstract: "Per-class IoU, mIoU and pixel accuracy of a segmentation model on labelled images.",
        discussion: """
        Pairs each image in --images with the label PNG of the same stem in --labels (8-bit gray or palette PNG, \
        pixel value = class index; CamVid: val/images/NAME.jpg with val/labels/NAME.png) and runs the model at the \
        image's own size. Label values >= the model's class count (CamVid's void, 11) are ignored, as is \
        --ignore-index. IoU_c = TP / (TP + FP + FN) over all pixels of all images; mIoU = mean over the classes \
        present in ground truth or prediction. The default model is the first Models/*.safetensors whose task is segmentation or multitask. \
        \(EvalCLI.exitCodes)
        """)

    @Option(help: "Folder of images (PNG, JPEG).") var images: String
    @Option(help: "Folder of label PNGs named like the images.") var labels: String
    @Option(name: .shortAndLong, help: "Model file (.safetensors, architecture polymax).") var model: String?
    @Option(help: "File of image names (stems), one per line; only these are evaluated (e.g. camvid/val.txt).") var list: String?
    @Option(help: "A further label value to ignore (values >= the class count always are).") var ignoreIndex: Int?
    @Option(help: "Threads for DenseKit kernels and OpenBLAS.") var threads: Int?
    @Option(help: "Refuse images with more pixels (stored width x height) than this.") var maxPixels: Int = PipelineCLI.defaultMaxPixels
    @Option(help: PipelineCLI.maxMemoryHelp) var maxMemory: String?
    @Flag(help: "Print one JSON object instead of the table.") var json = false

    func validate() throws {
        try validateThreads(threads)
        if let i = ignoreIndex, !(0...65535).contains(i) { throw ValidationError("--ignore-index must be in 0...65535") }
        guard maxPixels > 0 else { throw ValidationError("--max-pixels must be positive, got \(maxPixels)") }
        _ = try PipelineCLI.memoryLimit(maxMemory)
    }

    func run() throws {
        try runReportingErrors {
            if let threads { Threading.threads = threads }
            let pairs = try EvalCLI.pairs(images: images, targets: labels, list: list)
            let modelPath = try PipelineCLI.modelPath(model, for: .segmentation)
            let seg = try PipelineCLI.loadModel(modelPath) { try Segmenter(modelPath: $0) }
            let limit = try PipelineCLI.memoryLimit(maxMemory)
            let names = seg.classNames
            var cm = try ConfusionMatrix(classCount: names.count, ignoreIndex: ignoreIndex)
            let start = Date()
            for (i, p) in pairs.enumerated() {
                let (image, gt) = try EvalCLI.decodePair(p, maxPixels: maxPixels) { w, h in
                    try seg.checkImageSize(width: w, height: h, maxMemoryBytes: limit)
                }
                guard gt.bitDepth <= 8 else {
                    throw EvaluationError.invalidArgument("\(p.target): a \(gt.bitDepth)-bit PNG is not a label map (8-bit gray or palette class indices expected)")
                }
                let r = try seg.segment(image)
                try cm.add(prediction: r.labels, groundTruth: gt.values, name: p.target)
                printError("[\(i + 1)/\(pairs.count)] \(p.name)  mIoU so far \(EvalCLI.pct(cm.meanIoU).trimmingCharacters(in: .whitespaces)) %")
            }
            let seconds = Date().timeIntervalSince(start)
            if json {
                let cls = (0..<names.count).map { c in
                    "{\"class\": \(c), \"name\": \(PipelineCLI.quote(names[c])), \"iou\": \(EvalCLI.jnum(cm.iou(c))), "
                        + "\"accuracy\": \(EvalCLI.jnum(cm.classAccuracy(c))), \"gt_pixels\": \(cm.groundTruthPixels(c)), "
                        + "\"predicted_pixels\": \(cm.predictedPixels(c))}"
                }
                print("{\"task\": \"segment\", \"model\": \(PipelineCLI.quote(modelPath)), \"images\": \(pairs.count), "
                      + "\"class_count\": \(names.count), \"ignore_index\": \(ignoreIndex.map(String.init) ?? "null"), "
                      + "\"miou\": \(EvalCLI.jnum(cm.meanIoU)), \"pixel_accuracy\": \(EvalCLI.jnum(cm.pixelAccuracy)), "
                      + "\"mean_class_accuracy\": \(EvalCLI.jnum(cm.meanClassAccuracy)), "
                      + "\"labelled_pixels\": \(cm.labelledPixels), \"ignored_pixels\": \(cm.ignoredPixels), "
                      + "\"seconds\": \(PipelineCLI.num(seconds)), \"classes\": [\(cls.joined(separator: ", "))]}")
            } else {
                print(oneLine("model: \(modelPath) (\(names.count) classes)"))
                print(oneLine("images: \(pairs.count) from \(images), labels from \(labels)"))
                print("class".padding(toLength: 24, withPad: " ", startingAt: 0) + "   IoU %   acc %   gt pixels")
                for c in 0..<names.count {
                    let n = oneLine(names[c]).padding(toLength: 24, withPad: " ", startingAt: 0)
                    print(n + "  " + EvalCLI.pct(cm.iou(c)) + "  " + EvalCLI.pct(cm.classAccuracy(c)) + String(format: "  %10d", cm.groundTruthPixels(c)))
                }
                let present = cm.perClassIoU.compactMap { $0 }.count
                print("mIoU".padding(toLength: 24, withPad: " ", startingAt: 0) + "  " + EvalCLI.pct(cm.meanIoU) + " %  (mean over \(present) of \(names.count) classes)")
                print("pixel accuracy".padding(toLength: 24, withPad: " ", startingAt: 0) + "  " + EvalCLI.pct(cm.pixelAccuracy) + " %")
                print("mean class accuracy".padding(toLength: 24, withPad: " ", startingAt: 0) + "  " + EvalCLI.pct(cm.meanClassAccuracy) + " %")
                print("pixels: \(cm.labelledPixels) labelled, \(cm.ignoredPixels) ignored (label >= \(names.count)\(ignoreIndex.map { " or = \($0)" } ?? ""))")
                print(String(format: "time: %.1f s (%.0f ms per image)", seconds, seconds * 1000 / Double(pairs.count)))
            }
        }
    }
}

/// `densekit eval depth`: AbsRel, RMSE and delta1 of a depth model, metric and median-scaled, against the
/// per-image median baseline.
struct EvalDepthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "depth", abstract: "AbsRel, RMSE and delta1 of a depth model (metric and median-scaled) against a median baseline.",
        discussion: """
        Pairs each image in --images with the 16-bit depth PNG of the same stem in --depth (depth-eval: rgb/ID.jpg \
        with depth/ID.png; values in millimetres, 0 = invalid, as its manifest.json says; --depth-scale converts \
        other units to metres). Pixels with ground truth 0 are excluded; predictions are floored at 1 mm. \
        Each metric is computed per image and averaged over images, (a) on the depth as predicted, in metres, \
        (b) after scaling each prediction by median(ground truth) / median(prediction), and (c) for the baseline \
        that predicts the image's median ground-truth depth everywhere (the same with or without median scaling). \
        delta1 = share of pixels with max(d/g, g/d) < 1.25. \
        The default model is the first Models/*.safetensors with readout.depth.* weights. \(EvalCLI.exitCodes)
        """)

    @Option(help: "Folder of RGB images (PNG, JPEG).") var images: String
    @Option(help: "Folder of 16-bit depth PNGs named like the images.") var depth: String
    @Option(name: .shortAndLong, help: "Model file (.safetensors, architecture polymax, with readout.depth.*).") var model: String?
    @Option(help: "File of image names (stems), one per line; only these are evaluated.") var list: String?
    @Option(help: "Metres per stored depth unit (0.001: millimetres).") var depthScale: Double = 0.001
    @Option(help: "Threads for DenseKit kernels and OpenBLAS.") var threads: Int?
    @Option(help: "Refuse images with more pixels (stored width x height) than this.") var maxPixels: Int = PipelineCLI.defaultMaxPixels
    @Option(help: PipelineCLI.maxMemoryHelp) var maxMemory: String?
    @Flag(help: "Print one JSON object instead of the table.") var json = false

    func validate() throws {
        try validateThreads(threads)
        guard depthScale.isFinite, (1e-9...1e9).contains(depthScale) else {
            throw ValidationError("--depth-scale must be from 1e-9 to 1e9 (metres per stored unit), got \(depthScale)")
        }
        guard maxPixels > 0 else { throw ValidationError("--max-pixels must be positive, got \(maxPixels)") }
        _ = try PipelineCLI.memoryLimit(maxMemory)
    }

    func run() throws {
        try runReportingErrors {
            if let threads { Threading.threads = threads }
            let pairs = try EvalCLI.pairs(images: images, targets: depth, list: list)
            let modelPath = try PipelineCLI.modelPath(model, for: .depth)
            let est = try PipelineCLI.loadModel(modelPath) { try DepthEstimator(modelPath: $0) }
            let limit = try PipelineCLI.memoryLimit(maxMemory)
            guard est.hasDepth else { throw PipelineError.unsupportedTask("this model has no depth read-out (no readout.depth.* weights)") }
            var acc = DepthMetricsAccumulator()
            var frames: [(EvaluationPair, DepthImageEvaluation)] = []
            var units = "metres"
            let start = Date()
            for (i, p) in pairs.enumerated() {
                let (image, gt) = try EvalCLI.decodePair(p, maxPixels: maxPixels) { w, h in
                    try est.checkImageSize(width: w, height: h, maxMemoryBytes: limit)
                }
                guard gt.bitDepth == 16 else {
                    throw EvaluationError.invalidArgument("\(p.target): a \(gt.bitDepth)-bit PNG is not a depth map (16-bit gray expected)")
                }
                let d = try est.estimateDepth(image)
                units = d.units
                let g = gt.values.map { Float(Double($0) * depthScale) }
                guard let e = try DepthEvaluation.evaluate(prediction: d.values, groundTruth: g, name: p.target) else {
                    printError("[\(i + 1)/\(pairs.count)] \(p.name): no valid ground-truth pixel, skipped")
                    continue
                }
                acc.add(e)
                frames.append((p, e))
                printError("[\(i + 1)/\(pairs.count)] \(p.name)  AbsRel \(String(format: "%.3f", e.metric.absRel)), median-scaled \(String(format: "%.3f", e.medianScaled.absRel))")
            }
            guard acc.count > 0 else { throw EvaluationError.invalidArgument("no image has a valid ground-truth pixel (all zero) in \(depth)") }
            let seconds = Date().timeIntervalSince(start)
            if json {
                let fj = frames.map { p, e in
                    "{\"name\": \(PipelineCLI.quote(p.name)), \"valid_pixels\": \(e.validPixels), \"gt_median\": \(EvalCLI.jnum(e.groundTruthMedian)), "
                        + "\"pred_median\": \(EvalCLI.jnum(e.predictionMedian)), \"scale\": \(EvalCLI.jnum(e.scale)), "
                        + "\"metric\": \(EvalCLI.json(e.metric)), \"median_scaled\": \(EvalCLI.json(e.medianScaled)), \"baseline\": \(EvalCLI.json(e.baseline))}"
                }
                print("{\"task\": \"depth\", \"model\": \(PipelineCLI.quote(modelPath)), \"model_units\": \(PipelineCLI.quote(units)), "
                      + "\"images\": \(acc.count), \"valid_pixels\": \(acc.validPixels), \"depth_scale\": \(PipelineCLI.num(depthScale)), "
                      + "\"metric\": \(EvalCLI.json(acc.metric)), \"median_scaled\": \(EvalCLI.json(acc.medianScaled)), "
                      + "\"baseline\": \(EvalCLI.json(acc.baseline)), \"seconds\": \(PipelineCLI.num(seconds)), \"frames\": [\(fj.joined(separator: ", "))]}")
            } else {
                print(oneLine("model: \(modelPath) (depth units: \(units))"))
                print(oneLine("images: \(acc.count) from \(images), depth from \(depth) (stored x \(PipelineCLI.num(depthScale)) = metres, 0 = invalid); \(acc.validPixels) valid pixels"))
                print("mean over images           AbsRel    RMSE m    delta1")
                func row(_ label: String, _ m: DepthMetrics?) {
                    guard let m else { return }
                    print(label.padding(toLength: 24, withPad: " ", startingAt: 0) + String(format: "  %8.4f  %8.4f  %8.4f", m.absRel, m.rmse, m.delta1))
                }
                row(units == "metres" ? "model, metric" : "model, as predicted", acc.metric)
                row("model, median-scaled", acc.medianScaled)
                row("baseline: median gt", acc.baseline)
                if units != "metres" { print("note: the model's depth is \(units), so only the median-scaled row is meaningful") }
                let beats = (acc.medianScaled?.delta1 ?? 0) > (acc.baseline?.delta1 ?? 0)
                print("median-scaled delta1 \(beats ? "beats" : "does not beat") the baseline")
                print(String(format: "time: %.1f s (%.0f ms per image)", seconds, seconds * 1000 / Double(pairs.count)))
            }
        }
    }
}
