import XCTest
@testable import DenseKit

/// The evaluation maths on hand-computed cases, and the pairing of images with ground truth.
final class EvaluationMetricsTests: XCTestCase {
    // Ground truth / prediction of 8 pixels; value 3 is void for C = 3.
    // Labelled pairs (g, p): (0,0) (0,1) (1,1) (1,1) (2,2) (2,0) (0,0)  -> rows: [2 1 0] [0 2 0] [1 0 1].
    let gt: [UInt16] = [0, 0, 1, 1, 2, 3, 2, 0]
    let pred: [Int32] = [0, 1, 1, 1, 2, 0, 0, 0]

    func testConfusionMatrixByHand() throws {
        var cm = try ConfusionMatrix(classCount: 3)
        try cm.add(prediction: pred, groundTruth: gt)
        XCTAssertEqual(cm.counts, [2, 1, 0, 0, 2, 0, 1, 0, 1])
        XCTAssertEqual(cm.ignoredPixels, 1)
        XCTAssertEqual(cm.labelledPixels, 7)
        // IoU: class 0 = 2 / (3 + 3 - 2); class 1 = 2 / (2 + 3 - 2); class 2 = 1 / (2 + 1 - 1).
        XCTAssertEqual(cm.iou(0)!, 0.5, accuracy: 1e-12)
        XCTAssertEqual(cm.iou(1)!, 2.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(cm.iou(2)!, 0.5, accuracy: 1e-12)
        XCTAssertEqual(cm.meanIoU!, (0.5 + 2.0 / 3 + 0.5) / 3, accuracy: 1e-12)
        XCTAssertEqual(cm.pixelAccuracy!, 5.0 / 7, accuracy: 1e-12)
        XCTAssertEqual(cm.classAccuracy(0)!, 2.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(cm.meanClassAccuracy!, (2.0 / 3 + 1 + 0.5) / 3, accuracy: 1e-12)
    }

    func testIgnoreIndexAndAbsentClass() throws {
        // With C = 4, value 3 is a class unless ignored; ignored, class 3 is absent everywhere -> IoU nil, not 0.
        var cm = try ConfusionMatrix(classCount: 4, ignoreIndex: 3)
        try cm.add(prediction: pred, groundTruth: gt)
        XCTAssertNil(cm.iou(3))
        XCTAssertNil(cm.classAccuracy(3))
        XCTAssertEqual(cm.perClassIoU.compactMap { $0 }.count, 3)
        XCTAssertEqual(cm.meanIoU!, (0.5 + 2.0 / 3 + 0.5) / 3, accuracy: 1e-12)
        XCTAssertEqual(cm.ignoredPixels, 1)
        // Without the ignore index, pixel 5 (gt 3, pred 0) counts: class 3 has IoU 0, class 0 gains a false positive.
        var all = try ConfusionMatrix(classCount: 4)
        try all.add(prediction: pred, groundTruth: gt)
        XCTAssertEqual(all.iou(3)!, 0)
        XCTAssertEqual(all.iou(0)!, 2.0 / 5, accuracy: 1e-12)
        XCTAssertEqual(all.ignoredPixels, 0)
    }

    func testEmptyMergeAndErrors() throws {
        let empty = try ConfusionMatrix(classCount: 2)
        XCTAssertNil(empty.meanIoU)
        XCTAssertNil(empty.pixelAccuracy)
        var a = try ConfusionMatrix(classCount: 3)
        try a.add(prediction: Array(pred[0..<4]), groundTruth: Array(gt[0..<4]))
        var b = try ConfusionMatrix(classCount: 3)
        try b.add(prediction: Array(pred[4...]), groundTruth: Array(gt[4...]))
        var whole = try ConfusionMatrix(classCount: 3)
        try whole.add(prediction: pred, groundTruth: gt)
        XCTAssertEqual(try a + b, whole)
        XCTAssertThrowsError(try a.merge(try ConfusionMatrix(classCount: 4)))
        XCTAssertThrowsError(try ConfusionMatrix(classCount: 0))
        XCTAssertThrowsError(try a.add(prediction: [0, 1], groundTruth: [0])) { e in
            XCTAssertEqual(e as? EvaluationError, .sizeMismatch(what: "prediction", expected: "2 pixels", got: "1 pixels"))
        }
        let before = a
        XCTAssertThrowsError(try a.add(prediction: [0, 7], groundTruth: [0, 1]))
        XCTAssertEqual(a, before, "a failed add leaves the matrix unchanged")
        // A bad prediction at an ignored pixel does not matter.
        XCTAssertNoThrow(try a.add(prediction: [0, 7], groundTruth: [0, 200]))
    }

    func testDepthMetricsByHand() throws {
        // gt 0 is invalid. Valid: g = [1, 2, 4], d = [1, 4, 6]; median g = 2, median d = 4, scale 0.5.
        let e = try XCTUnwrap(try DepthEvaluation.evaluate(prediction: [1, 4, 5, 6], groundTruth: [1, 2, 0, 4]))
        XCTAssertEqual(e.validPixels, 3)
        XCTAssertEqual(e.groundTruthMedian, 2)
        XCTAssertEqual(e.predictionMedian, 4)
        XCTAssertEqual(e.scale, 0.5)
        // metric: |d-g|/g = 0, 1, 0.5; squares 0, 4, 4; ratios 1, 2, 1.5.
        XCTAssertEqual(e.metric.absRel, 0.5, accuracy: 1e-12)
        XCTAssertEqual(e.metric.rmse, (8.0 / 3).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(e.metric.delta1, 1.0 / 3, accuracy: 1e-12)
        // scaled d = [0.5, 2, 3]: rel 0.5, 0, 0.25; squares 0.25, 0, 1; ratios 2, 1, 4/3.
        XCTAssertEqual(e.medianScaled.absRel, 0.25, accuracy: 1e-12)
        XCTAssertEqual(e.medianScaled.rmse, (1.25 / 3).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(e.medianScaled.delta1, 1.0 / 3, accuracy: 1e-12)
        // baseline 2 everywhere: rel 1, 0, 0.5; squares 1, 0, 4; ratios 2, 1, 2.
        XCTAssertEqual(e.baseline.absRel, 0.5, accuracy: 1e-12)
        XCTAssertEqual(e.baseline.rmse, (5.0 / 3).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(e.baseline.delta1, 1.0 / 3, accuracy: 1e-12)
    }

    func testDepthEdgeCases() throws {
        // A ratio of exactly 1.25 is not within delta1 (strict <).
        let b = try XCTUnwrap(try DepthEvaluation.evaluate(prediction: [5, 4.9], groundTruth: [4, 4]))
        XCTAssertEqual(b.metric.delta1, 0.5)
        // Negative and NaN predictions are floored at 1 mm; NaN, infinite and negative ground truth is invalid.
        let f = try XCTUnwrap(try DepthEvaluation.evaluate(prediction: [-1, .nan, 3, 3, 3], groundTruth: [1, 1, .nan, .infinity, -2]))
        XCTAssertEqual(f.validPixels, 2)
        XCTAssertEqual(f.metric.absRel, 1 - Double(Float(1e-3)), accuracy: 1e-9)
        XCTAssertEqual(f.metric.delta1, 0)
        XCTAssertEqual(f.medianScaled.absRel, 0, accuracy: 1e-9, "a constant prediction is exact after median scaling")
        XCTAssertNil(try DepthEvaluation.evaluate(prediction: [1, 2], groundTruth: [0, 0]))
        XCTAssertThrowsError(try DepthEvaluation.evaluate(prediction: [1, 2], groundTruth: [1]))
        XCTAssertThrowsError(try DepthEvaluation.evaluate(prediction: [1], groundTruth: [1], minimumDepth: 0))
        XCTAssertEqual(DepthEvaluation.median([3, 1, 4, 2]), 2.5)
        XCTAssertEqual(DepthEvaluation.median([5, 1, 3]), 3)
        XCTAssertEqual(DepthEvaluation.median([]), 0)
    }

    func testDepthAccumulatorAveragesImages() throws {
        var acc = DepthMetricsAccumulator()
        XCTAssertNil(acc.metric)
        acc.add(try XCTUnwrap(try DepthEvaluation.evaluate(prediction: [1, 4, 5, 6], groundTruth: [1, 2, 0, 4])))
        acc.add(try XCTUnwrap(try DepthEvaluation.evaluate(prediction: [2], groundTruth: [2])))  // exact: 0, 0, 1
        XCTAssertEqual(acc.count, 2)
        XCTAssertEqual(acc.validPixels, 4)
        XCTAssertEqual(acc.metric!.absRel, 0.25, accuracy: 1e-12)
        XCTAssertEqual(acc.metric!.rmse, (8.0 / 3).squareRoot() / 2, accuracy: 1e-12)
        XCTAssertEqual(acc.metric!.delta1, (1.0 / 3 + 1) / 2, accuracy: 1e-12)
        XCTAssertEqual(acc.medianScaled!.absRel, 0.125, accuracy: 1e-12)
        XCTAssertEqual(acc.baseline!.absRel, 0.25, accuracy: 1e-12)
    }

    func testPairingByStemListAndSizes() throws {
        let root = NSTemporaryDirectory() + "/densekit-evalpairs-\(UUID().uuidString)"
        let img = root + "/images", lab = root + "/labels"
        for d in [img, lab] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        defer { try? FileManager.default.removeItem(atPath: root) }
        let rgb = try PNGEncoder.encodeRGB8(width: 4, height: 3, pixels: [UInt8](repeating: 9, count: 36))
        for n in ["a", "b", "c"] { try rgb.write(to: URL(fileURLWithPath: "\(img)/\(n).png")) }
        try Data("x".utf8).write(to: URL(fileURLWithPath: "\(img)/notes.txt"))
        let label = try PNGEncoder.encodeGray8(width: 4, height: 3, pixels: [UInt8](repeating: 1, count: 12))
        for n in ["a", "b", "z"] { try label.write(to: URL(fileURLWithPath: "\(lab)/\(n).png")) }

        let (pairs, unmatched) = try EvaluationPairs.match(images: img, targets: lab)
        XCTAssertEqual(pairs.map(\.name), ["a", "b"])
        XCTAssertEqual(pairs[0].target, lab + "/a.png")
        XCTAssertEqual(unmatched, ["c"])
        XCTAssertNoThrow(try EvaluationPairs.checkSizes(pairs))

        try Data("# comment\n\n  b  \nval/a.png\n".utf8).write(to: URL(fileURLWithPath: root + "/list.txt"))
        let names = try EvaluationPairs.readList(path: root + "/list.txt")
        XCTAssertEqual(names, ["b", "a"])
        XCTAssertEqual(try EvaluationPairs.match(images: img, targets: lab, names: names).pairs.map(\.name), ["b", "a"])
        XCTAssertThrowsError(try EvaluationPairs.match(images: img, targets: lab, names: ["c"])) { e in
            guard case .missingListed = e as? EvaluationError else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try EvaluationPairs.match(images: root + "/none", targets: lab)) { e in
            XCTAssertEqual(e as? EvaluationError, .notAFolder(root + "/none"))
        }
        XCTAssertThrowsError(try EvaluationPairs.match(images: img, targets: root)) { e in
            guard case .noPairs = e as? EvaluationError else { return XCTFail("\(e)") }
        }
        try PNGEncoder.encodeGray8(width: 3, height: 4, pixels: [UInt8](repeating: 1, count: 12))
            .write(to: URL(fileURLWithPath: "\(lab)/b.png"))
        XCTAssertThrowsError(try EvaluationPairs.checkSizes(pairs)) { e in
            XCTAssertEqual(e as? EvaluationError, .sizeMismatch(what: lab + "/b.png", expected: "4x3", got: "3x4"))
        }
        try rgb.write(to: URL(fileURLWithPath: "\(img)/a.jpg"))
        XCTAssertThrowsError(try EvaluationPairs.match(images: img, targets: lab), "two images named a")
    }
}
