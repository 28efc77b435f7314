import XCTest
@testable import DenseKit

/// Weight layout, error paths and an opt-in latency run of the BiFormer backbone (spec §4–§6, §9).
final class BiFormerModelTests: XCTestCase {
    func testParameterCountsMatchSpec() throws {
        let expected: [(String, BiFormerConfig.Variant, Int, Int)] = [
            ("tiny", .classification, 13_142_760, 258), ("tiny", .dense, 12_630_656, 260),
            ("small", .classification, 25_536_232, 512), ("small", .dense, 25_024_128, 514),
            ("base", .classification, 56_804_968, 512), ("base", .dense, 56_037_312, 514),
        ]
        for (name, variant, params, tensors) in expected {
            let c = try BiFormerConfig.preset(name, variant: variant)
            XCTAssertEqual(c.parameterCount, params, "\(name) \(variant)")
            // State-dict tensors minus the num_batches_tracked counters (spec §5 table).
            XCTAssertEqual(c.weightShapes().count, tensors, "\(name) \(variant)")
        }
    }

    func reducedDense() -> BiFormerConfig {
        BiFormerConfig(variant: .dense, depth: [1, 1, 2, 1], embedDim: [16, 32, 48, 64], headDim: 8)
    }

    func testDenseAnySizeAndBackbonePrefix() throws {
        let c = reducedDense()
        let w = c.randomWeights(seed: 3)
        let net = try BiFormer(config: c, weights: w)
        let x = Tensor(shape: [1, 3, 45, 71], generator: { i in Float((i * 7919) % 101) / 101 - 0.5 })
        let out = try net.run(x)
        XCTAssertEqual(out["out0"]?.shape, [1, 16, 12, 18])
        XCTAssertEqual(out["out3"]?.shape, [1, 64, 2, 3])
        var prefixed = TensorDictionary()
        for k in w.keys { prefixed["backbone." + k] = w[k] }
        prefixed["decode_head.conv_seg.weight"] = Tensor(zeros: [2, 2])
        let net2 = try BiFormer(config: c, weights: prefixed)
        XCTAssertEqual(net2.weightPrefix, "backbone.")
        XCTAssertEqual(try net2.run(x)["out2"]?.scalars, out["out2"]?.scalars)
    }

    func testWeightErrors() throws {
        let c = reducedDense()
        var w = c.randomWeights()
        w["stages.0.0.attn.wo.bias"] = nil
        XCTAssertThrowsError(try BiFormer(config: c, weights: w)) { e in XCTAssertTrue("\(e)".contains("stages.0.0.attn.wo.bias"), "\(e)") }
        var w2 = c.randomWeights()
        w2["stages.9.0.extra"] = Tensor(zeros: [1])
        XCTAssertThrowsError(try BiFormer(config: c, weights: w2)) { e in XCTAssertTrue("\(e)".contains("stages.9.0.extra"), "\(e)") }
        var w3 = c.randomWeights()
        w3["norm.weight"] = nil
        w3["stages.1.0.attn.wo.weight"] = Tensor(zeros: [3, 3])
        XCTAssertThrowsError(try BiFormer(config: c, weights: w3)) { e in XCTAssertTrue("\(e)".contains("wrong shape"), "\(e)") }
    }

    func testClassificationRejectsSizeWithValidSizes() throws {
        let c = BiFormerConfig(variant: .classification, depth: [1, 1, 1, 1], embedDim: [16, 32, 48, 64], headDim: 8, numClasses: 5)
        let net = try BiFormer(config: c, weights: c.randomWeights())
        XCTAssertThrowsError(try net.run(Tensor(zeros: [1, 3, 113, 112]))) { e in XCTAssertTrue("\(e)".contains("109–112"), "\(e)") }
        let y = try net.run(Tensor(shape: [2, 3, 110, 112], generator: { i in Float(i % 13) / 13 }))
        XCTAssertEqual(y["logits"]?.shape, [2, 5])
    }

    /// Opt-in (`BIFORMER_BENCH=1`): tiny dense at 512×512, random weights, 1 warm-up + 3 timed runs.
    func testTinyDenseLatency() throws {
        guard ProcessInfo.processInfo.environment["BIFORMER_BENCH"] == "1" else { throw XCTSkip("set BIFORMER_BENCH=1") }
        let c = try BiFormerConfig.preset("tiny", variant: .dense)
        let net = try BiFormer(config: c, weights: c.randomWeights())
        let x = Tensor(shape: [1, 3, 512, 512], generator: { i in Float((i * 7919) % 255) / 255 - 0.5 })
        _ = try net.run(x)
        var times: [Double] = []
        for _ in 0..<3 {
            let t0 = Date()
            _ = try net.run(x)
            times.append(Date().timeIntervalSince(t0))
        }
        print("biformer tiny dense 512x512: \(times.map { String(format: "%.3f", $0) }.joined(separator: " ")) s")
    }
}

/// BiFormer as a DenseKit model file (`densekit.architecture` = `biformer`), as `tools/convert.py` writes it.
final class BiFormerModelFileTests: XCTestCase {
    func testModelFileLoadsRunsAndProfiles() throws {
        let c = BiFormerConfig(variant: .dense, depth: [1, 1, 2, 1], embedDim: [16, 32, 48, 64], headDim: 8)
        let weights = c.randomWeights(seed: 11)
        var w = SafeTensorsWriter()
        for k in weights.keys.sorted() { try w.add(k, try weights.tensor(k)) }
        w.metadata = ["densekit.format": "1", "densekit.architecture": "biformer",
                      "densekit.config": #"{"variant":"dense","depth":[1,1,2,1],"embed_dim":[16,32,48,64],"head_dim":8}"#]
        let path = NSTemporaryDirectory() + "biformer-modelfile-\(getpid()).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try w.write(to: path)
        let model = try ModelFile.load(path: path)
        XCTAssertEqual(model.architecture, "biformer")
        XCTAssertEqual(model.outputNames, ["out0", "out1", "out2", "out3"])
        var gen = KAGenerator(seed: 2)
        let x = gen.tensor([1, 3, 70, 90])
        let got = try model.run(x)
        let want = try BiFormer(config: c, weights: weights).run(x)
        for n in model.outputNames {
            XCTAssertEqual(got[n]?.shape, want[n]?.shape, n)
            XCTAssertEqual(got[n]?.scalars, want[n]?.scalars, n)
        }
        let report = try model.profile(input: x, warmup: 0)
        XCTAssertEqual(report.entries.count, 1 + 3 + 5 + 4)   // stem, 3 downsamples, 5 blocks, 4 norms
        // A bad config names the field.
        w.metadata["densekit.config"] = #"{"variant":"dense","depth":[1,1,2,1],"embed_dim":[16,32,48,64],"head_dim":7}"#
        try w.write(to: path)
        XCTAssertThrowsError(try ModelFile.load(path: path)) { e in XCTAssertTrue("\(e)".contains("head_dim") || "\(e)".contains("embed_dim"), "\(e)") }
    }
}
