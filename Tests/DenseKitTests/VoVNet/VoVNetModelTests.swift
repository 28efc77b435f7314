import XCTest
@testable import DenseKit

/// Building, loading and running VoVNets: shapes, key styles, errors, memory plan.
final class VoVNetModelTests: XCTestCase {
    /// A small config exercising depthwise, reduction, residual and eSE.
    func smallConfig() -> VoVNetConfig {
        VoVNetConfig(stemChannels: [8, 8, 12], stageConvChannels: [8, 12, 16, 20], stageOutChannels: [16, 24, 32, 40],
                     layerPerBlock: 2, blockPerStage: [1, 2, 1, 2], residual: true, depthwise: true, ese: true,
                     outIndices: [0, 1, 2, 3, 4])
    }

    func testFeatureShapesFollowTheSpec() throws {
        let c = smallConfig()
        let net = try VoVNet(config: c, weights: VoVNetRandomWeights.make(c, seed: 1))
        XCTAssertEqual(net.outputNames, ["feat2", "feat4", "feat8", "feat16", "feat32"])
        let plan = try net.plan(inputShape: [1, 3, 67, 93])
        XCTAssertEqual(plan.outputShapes, [[1, 8, 34, 47], [1, 16, 17, 24], [1, 24, 8, 12], [1, 32, 4, 6], [1, 40, 2, 3]])
        let p2 = try net.plan(inputShape: [2, 3, 224, 288])
        XCTAssertEqual(p2.outputShapes.map { Array($0[2...]) }, [[112, 144], [56, 72], [28, 36], [14, 18], [7, 9]])
        let out = try net.run(GraphTestData.tensor([1, 3, 67, 93], seed: 3))
        XCTAssertEqual(out["feat32"]?.shape, [1, 40, 2, 3])
        XCTAssertTrue(out.values.allSatisfy { $0.scalars.allSatisfy { $0.isFinite } })
    }

    func testStemStride2MovesTheFirstPoolIntoStage0() throws {
        var c = smallConfig()
        c.depthwise = false
        c.stemStride = 2
        let net = try VoVNet(config: c, weights: VoVNetRandomWeights.make(c, seed: 2))
        XCTAssertTrue(net.graph.nodes.contains { $0.name == "stages.0.pool" })
        let plan = try net.plan(inputShape: [1, 3, 64, 64])
        XCTAssertEqual(plan.outputShapes, [[1, 12, 32, 32], [1, 16, 16, 16], [1, 24, 8, 8], [1, 32, 4, 4], [1, 40, 2, 2]])
    }

    /// One loaded model serves concurrent calls (each with its own arena) with identical results.
    func testConcurrentCallsOnOneModel() throws {
        let c = smallConfig()
        let net = try VoVNet(config: c, weights: VoVNetRandomWeights.make(c, seed: 8))
        let xs = (0..<4).map { GraphTestData.tensor([1, 3, 48, 56], seed: UInt64(50 + $0)) }
        let want = try xs.map { try net.run($0) }
        var got = [[String: Tensor]?](repeating: nil, count: 12)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: 12) { i in
            let r = try? net.run(xs[i % 4])
            lock.lock(); got[i] = r; lock.unlock()
        }
        for i in 0..<12 {
            let r = try XCTUnwrap(got[i])
            for (k, v) in want[i % 4] { XCTAssertEqual(r[k]?.scalars, v.scalars, k) }
        }
    }

    func testTooSmallInputNamesThePool() throws {
        let c = smallConfig()
        let net = try VoVNet(config: c, weights: VoVNetRandomWeights.make(c))
        XCTAssertThrowsError(try net.run(Tensor(zeros: [1, 3, 16, 40]))) { e in
            guard case .invalidShape(let node, let op, _)? = e as? GraphError else { return XCTFail("\(e)") }
            XCTAssertEqual(node, "stages.3.pool")
            XCTAssertEqual(op, "max_pool2d")
        }
        XCTAssertThrowsError(try net.run(Tensor(zeros: [1, 4, 64, 64])))   // wrong channel count
    }

    func testClassifierHeadAndHeadIgnoredForFeatures() throws {
        var c = smallConfig()
        c.featuresOnly = false
        c.numClasses = 7
        let w = VoVNetRandomWeights.make(c, seed: 5)
        let net = try VoVNet(config: c, weights: w)
        let x = GraphTestData.tensor([2, 3, 64, 64], seed: 6)
        let logits = try XCTUnwrap(try net.run(x)["logits"])
        XCTAssertEqual(logits.shape, [2, 7])
        // Features-only model on a classifier checkpoint: head ignored; logits = fc(mean(feat32)).
        var f = smallConfig()
        f.outIndices = [4]
        let feats = try VoVNet(config: f, weights: w)
        let f32 = try XCTUnwrap(try feats.run(x)["feat32"])
        let fcw = try w.tensor("head.fc.weight"), fcb = try w.tensor("head.fc.bias")
        let hw = f32.shape[2] * f32.shape[3]
        for n in 0..<2 { for k in 0..<7 {
            var z = Double(fcb[k])
            for ch in 0..<40 {
                var m = 0.0
                for i in 0..<hw { m += Double(f32[n, ch, i / f32.shape[3], i % f32.shape[3]]) }
                z += Double(fcw[k, ch]) * m / Double(hw)
            }
            XCTAssertEqual(Double(logits[n, k]), z, accuracy: 1e-4)
        } }
    }

    /// timm -> detectron2 (prefixed, with foreign FPN keys) -> loaded by auto-detection: same outputs.
    func testDetectron2NamesLoadThroughTheRenameTable() throws {
        var c = smallConfig()
        c.stemChannels = [8, 8, 8]   // a depthwise detectron2 stem needs equal widths
        c.attnAllBlocks = true
        let timm = VoVNetRandomWeights.make(c, seed: 9)
        var d2 = TensorDictionary()
        for k in timm.keys {
            let n = try XCTUnwrap(VoVNetKeyRename.detectron2Key(fromTimm: k, depthwise: true))
            d2["backbone.bottom_up." + n] = timm[k]
        }
        d2["backbone.fpn_lateral2.weight"] = Tensor(zeros: [4, 4, 1, 1])
        d2["roi_heads.box_predictor.cls_score.weight"] = Tensor(zeros: [3, 3])
        var cd = c
        cd.attnAllBlocks = false   // implied by detectron2 names
        let a = try VoVNet(config: c, weights: timm)
        let b = try VoVNet(config: cd, weights: d2)
        XCTAssertEqual(b.config.keyStyle, .detectron2)
        XCTAssertEqual(b.config.keyPrefix, "backbone.bottom_up.")
        XCTAssertTrue(b.config.attnAllBlocks)
        let x = GraphTestData.tensor([1, 3, 45, 61], seed: 10)
        let ya = try a.run(x), yb = try b.run(x)
        for k in ya.keys { XCTAssertEqual(ya[k]?.scalars, yb[k]?.scalars, k) }
        // And back: every detectron2 key maps to the timm key it came from.
        for k in d2.keys where k.hasPrefix("backbone.bottom_up.") {
            let t = try XCTUnwrap(VoVNetKeyRename.timmKey(fromDetectron2: String(k.dropFirst(19))))
            XCTAssertEqual(timm[t]?.scalars, d2[k]?.scalars)
        }
    }

    func testTimmWrapperPrefixesAndFeaturesOnlyNames() throws {
        let c = smallConfig()
        let w = VoVNetRandomWeights.make(c, seed: 11)
        var wrapped = TensorDictionary(), flat = TensorDictionary()
        for k in w.keys {
            wrapped["module._orig_mod." + k] = w[k]
            let f = k.hasPrefix("stem.") ? "stem_" + k.dropFirst(5) : k.hasPrefix("stages.") ? "stages_" + k.dropFirst(7) : k
            flat[f] = w[k]
            if k.hasSuffix(".bn.weight") { wrapped["module._orig_mod." + k.replacingOccurrences(of: ".weight", with: ".num_batches_tracked")] = Tensor(zeros: []) }
        }
        XCTAssertTrue(flat.keys.contains("stages_1.blocks.1.conv_concat.conv.weight"))
        let x = GraphTestData.tensor([1, 3, 40, 44], seed: 12)
        let ref = try VoVNet(config: c, weights: w).run(x)
        let a = try VoVNet(config: c, weights: wrapped)
        XCTAssertEqual(a.config.keyPrefix, "module._orig_mod.")
        let b = try VoVNet(config: c, weights: flat)
        for (k, v) in try a.run(x) { XCTAssertEqual(v.scalars, ref[k]?.scalars) }
        for (k, v) in try b.run(x) { XCTAssertEqual(v.scalars, ref[k]?.scalars) }
    }

    func testWeightErrorsNameTheKeys() throws {
        let c = smallConfig()
        let good = VoVNetRandomWeights.make(c)
        func message(_ w: TensorDictionary, _ cfg: VoVNetConfig? = nil) -> String {
            do { _ = try VoVNet(config: cfg ?? c, weights: w); return "" } catch { return "\(error)" }
        }
        var missing = good
        missing["stages.1.blocks.1.conv_mid.0.bn.running_var"] = nil
        XCTAssertTrue(message(missing).contains("missing tensor(s): stages.1.blocks.1.conv_mid.0.bn.running_var"), message(missing))
        var extra = good
        extra["stages.1.blocks.0.attn.fc.weight"] = Tensor(zeros: [24, 24, 1, 1])   // timm: no eSE on a non-last block
        extra["stages.9.blocks.0.conv.weight"] = Tensor(zeros: [1])
        var one = c; one.blockPerStage = [2, 2, 1, 2]
        let m = message(extra)
        XCTAssertTrue(m.contains("2 unexpected tensor(s)") && m.contains("stages.9.blocks.0.conv.weight")
                      && m.contains("stages.1.blocks.0.attn.fc.weight"), m)
        var shape = good
        shape["stages.2.blocks.0.conv_concat.conv.weight"] = Tensor(zeros: [32, 59, 1, 1])
        let s = message(shape)
        XCTAssertTrue(s.contains("stages.2.blocks.0.conv_concat.conv.weight expected [32, 56, 1, 1] found [32, 59, 1, 1]"), s)
        XCTAssertTrue(message(TensorDictionary(["x.weight": Tensor(zeros: [1])])).contains("no VoVNet stem found"))
        XCTAssertFalse(message(good, one).isEmpty)   // stage 0 now needs a second block
    }

    func testConfigParsing() throws {
        let json = try JSONValue.parse(#"{"preset": "ese_vovnet19b_dw", "out_indices": [0, 4], "key_prefix": "backbone."}"#)
        let c = try VoVNetConfig(json: json)
        XCTAssertEqual(c.stageOutChannels, [256, 512, 768, 1024])
        XCTAssertEqual(c.outIndices, [0, 4])
        XCTAssertEqual(c.keyPrefix, "backbone.")
        XCTAssertEqual(c.outputNames, ["feat2", "feat32"])
        XCTAssertEqual(try VoVNetConfig(json: c.json), c)
        func err(_ text: String) -> String {
            do { _ = try VoVNetConfig(json: try JSONValue.parse(text)); return "" } catch { return "\(error)" }
        }
        let base = #""stem_chs": [8,8,8], "stage_conv_chs": [8,8,8,8], "stage_out_chs": [8,8,8,8], "layer_per_block": 2, "block_per_stage": [1,1,1,1], "residual": false, "depthwise": false"#
        XCTAssertEqual(err("{\(base), \"attn\": \"\"}"), "")
        XCTAssertTrue(err("{\(base), \"attn\": \"eca\"}").contains("field \"attn\""))
        XCTAssertTrue(err("{\(base), \"attn\": \"\", \"out_indices\": [5]}").contains("field \"out_indices\""))
        XCTAssertTrue(err(#"{"stem_chs": [8, 8]}"#).contains("field \"stem_chs\": expected 3 entries"))
        XCTAssertTrue(err(#"{"preset": "vovnet1000"}"#).contains("no preset named \"vovnet1000\""))
        XCTAssertTrue(err("{\(base), \"attn\": \"\", \"key_style\": \"caffe\"}").contains("key_style"))
        XCTAssertTrue(err("[1]").contains("not a JSON object"))
    }

    /// Issue 3 item 5: the planned activation arena of ese_vovnet19b_dw at 256x256 is under half
    /// the sum of all its activations.
    func testMemoryPlanOfEseVoVNet19bDw() throws {
        let c = try VoVNetPresets.config(named: "ese_vovnet19b_dw")
        let net = try VoVNet(config: c, weights: VoVNetRandomWeights.make(c, seed: 3))
        let x = GraphTestData.tensor([1, 3, 256, 256], seed: 4)
        let report = try net.profile(input: x)
        let m = report.memory
        print("ese_vovnet19b_dw 256x256: \(m)")
        print(String(format: "total %.1f ms, %.2f GFLOP", report.totalMilliseconds, report.totalFlops / 1e9))
        for o in report.byOp { print(String(format: "  %@ x%d %.1f ms", o.op, o.count, o.milliseconds)) }
        if ProcessInfo.processInfo.environment["DENSEKIT_PRINT_PROFILE"] != nil { print(report.description) }
        XCTAssertLessThan(2 * m.plannedActivationBytes, m.sumActivationBytes)
        XCTAssertLessThan(m.plannedActivationBytes, Int(Double(m.peakLiveBytes) * 1.5))
        XCTAssertGreaterThan(m.aliasedValueCount, 0)
        XCTAssertEqual(report.entries.count, net.graph.nodes.count)
        XCTAssertEqual(report.entries.first?.node, "stem.0")
        XCTAssertEqual(report.entries.first?.outputShape, [1, 64, 128, 128])
        XCTAssertTrue(report.description.contains("stages.3.blocks.0.attn"))
        let out = try net.run(x)
        XCTAssertEqual(out["feat32"]?.shape, [1, 1024, 8, 8])
    }
}
