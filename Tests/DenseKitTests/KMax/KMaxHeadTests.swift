import XCTest
@testable import DenseKit

/// The head's weight layout against the golden case's state dict, random-weight runs, and (opt-in)
/// the spec section 10 latency setting.
final class KMaxHeadTests: XCTestCase {
    func testWeightLayoutMatchesReferenceStateDict() throws {
        let path = KMaxGoldenTests.folder + "/kmax_head_97x161.safetensors"
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("no kmax_head case at \(path)") }
        let gc = try GoldenCase(path: path)
        let config = try PolyMaXHeadConfig(json: gc.attrs)
        let layout = PolyMaXWeightLayout.shapes(config: config, readout: false)
        let store = gc.params
        let want = Set(store.keys.filter { !$0.hasSuffix("num_batches_tracked") })
        XCTAssertEqual(Set(layout.map { $0.key }), want)
        for (key, shape) in layout { XCTAssertEqual(store.shape(of: key), shape, key) }
    }

    func smallConfig() -> PolyMaXHeadConfig {
        var c = PolyMaXHeadConfig()
        c.pixelDecoder.inChannels = [8, 16, 24, 32]
        c.pixelDecoder.decLayers = [1, 1, 1, 1]
        c.pixelDecoder.decChannels = [16, 16, 8, 8]
        c.numClusters = 6
        c.queryDim = 24
        c.transBaseFilters = 8
        c.ffnDim = 32
        c.predMidChannels = 16
        c.embedDim = 8
        c.numClasses = 5
        c.transDecLayers = [1, 1, 1]
        return c
    }

    func testRandomWeightsLoadAndRunWithBatchTwo() throws {
        let c = smallConfig()
        let head = try PolyMaXHead(config: c, weights: PolyMaXWeightLayout.randomWeights(config: c, seed: 3))
        func feat(_ ch: Int, _ h: Int, _ w: Int, _ seed: Int) -> Tensor {
            Tensor(shape: [2, ch, h, w]) { i in sinf(Float(i * 7 + seed)) }
        }
        let (r2, r3, r4, r5) = (feat(8, 17, 21, 1), feat(16, 9, 11, 2), feat(24, 5, 6, 3), feat(32, 3, 3, 4))
        let o = try head.run(res2: r2, res3: r3, res4: r4, res5: r5)
        XCTAssertEqual(o.maskLogits.shape, [2, 6, 17, 21])
        XCTAssertEqual(o.classLogits.shape, [2, 6, 6])
        XCTAssertEqual(o.clusterEmbeddings.shape, [2, 24, 6])
        XCTAssertEqual(o.assignments.map { $0.shape }, [[2, 3, 3], [2, 5, 6], [2, 9, 11]])
        XCTAssertTrue(o.maskLogits.scalars.allSatisfy { $0.isFinite })
        // Batch elements are independent: running image 1 alone gives the same result.
        func slice(_ t: Tensor) -> Tensor {
            let per = t.count / 2
            return Tensor(shape: [1] + t.shape.dropFirst(), values: Array(t.scalars[per...]))
        }
        let one = try head.run(res2: slice(r2), res3: slice(r3), res4: slice(r4), res5: slice(r5))
        XCTAssertEqual(one.maskLogits.scalars, Array(o.maskLogits.scalars[(o.maskLogits.count / 2)...]))
        let ro = try head.readout.run(maskLogits: o.maskLogits, classLogits: o.classLogits, clusterEmbeddings: o.clusterEmbeddings,
                                      outputSize: (65, 81), alignCorners: true)
        XCTAssertEqual(ro.normals?.shape, [2, 3, 65, 81])
        XCTAssertEqual(ro.semanticLabels?.shape, [2, 65, 81])
        XCTAssertTrue(ro.depth?.scalars.allSatisfy { $0 > 1e-3 && $0 < 10 } ?? false)
    }

    func testUnexpectedAndMisshapenWeightsAreRefused() throws {
        let c = smallConfig()
        var w = PolyMaXWeightLayout.randomWeights(config: c)
        w["predictor._kmax_transformer_layers.7._query_conv1_bn_act.conv.weight"] = Tensor(zeros: [16, 24, 1])
        XCTAssertThrowsError(try PolyMaXHead(config: c, weights: w)) { e in
            guard case ModelConfigError.unexpectedWeights = e else { return XCTFail("\(e)") }
        }
        w["predictor._kmax_transformer_layers.7._query_conv1_bn_act.conv.weight"] = nil
        w["predictor._cluster_centers.weight"] = Tensor(zeros: [6, 24])
        XCTAssertThrowsError(try PolyMaXHead(config: c, weights: w)) { e in
            guard case ModelConfigError.weightShapes = e else { return XCTFail("\(e)") }
        }
    }

    /// Spec section 10: R50 widths, 512x512 features, K = 128, C = 133. Opt-in (`DENSEKIT_KMAX_BENCH=1`).
    func testLatencyAnchor() throws {
        guard ProcessInfo.processInfo.environment["DENSEKIT_KMAX_BENCH"] == "1" else { throw XCTSkip("set DENSEKIT_KMAX_BENCH=1") }
        let c = PolyMaXHeadConfig()
        let head = try PolyMaXHead(config: c, weights: PolyMaXWeightLayout.randomWeights(config: c, seed: 5))
        func feat(_ ch: Int, _ s: Int) -> Tensor { Tensor(shape: [1, ch, s, s]) { i in sinf(Float(i % 9973)) } }
        let (r2, r3, r4, r5) = (feat(256, 128), feat(512, 64), feat(1024, 32), feat(2048, 16))
        _ = try head.run(res2: r2, res3: r3, res4: r4, res5: r5)
        var times: [Double] = []
        for _ in 0..<5 {
            let t0 = Date()
            _ = try head.run(res2: r2, res3: r3, res4: r4, res5: r5)
            times.append(Date().timeIntervalSince(t0))
        }
        times.sort()
        print("kmax head 512x512 R50 K=128 C=133 threads \(Threading.threads): median \(String(format: "%.3f", times[2])) s")
    }
}
