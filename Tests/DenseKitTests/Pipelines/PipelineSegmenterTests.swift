import XCTest
@testable import DenseKit

/// The full-model pipeline on a tiny random-weights PolyMaX model saved to a temporary file.
final class PipelineSegmenterTests: XCTestCase {
    static let configJSON = #"""
    {"backbone": {"architecture": "vovnet", "stem_chs": [8, 8, 8], "stage_conv_chs": [8, 8, 8, 8],
                  "stage_out_chs": [8, 16, 24, 32], "layer_per_block": 1, "block_per_stage": [1, 1, 1, 1],
                  "residual": false, "depthwise": true, "attn": "ese"},
     "head": {"in_channels": [8, 16, 24, 32], "dec_layers": [1, 1, 1, 1], "dec_channels": [16, 16, 8, 8],
              "num_clusters": 6, "query_dim": 24, "trans_base_filters": 8, "ffn_dim": 32, "pred_mid_channels": 16,
              "embed_dim": 8, "num_classes": 5, "trans_dec_layers": [1, 1, 1]},
     "task": "multitask",
     "preprocess": {"size_multiple": 32, "resize": "letterbox", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                    "channel_order": "rgb", "pad_value": 0},
     "classes": ["sky", "tree", "cat", "road", "other"],
     "palette": [[70, 130, 180], [107, 142, 35], [220, 20, 60], [128, 64, 128], [0, 0, 0]],
     "depth_units": "metres"}
    """#

    static var samples: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Samples").path
    }

    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "/densekit-pipeline-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// Writes the tiny model (with or without read-out weights) and returns its path.
    func writeModel(readout: Bool = true, config: String = configJSON, name: String = "tiny.safetensors") throws -> String {
        let cfg = try PolyMaXModelConfig(json: try JSONValue.parse(config))
        var w = SafeTensorsWriter()
        w.metadata = ["densekit.format": "1", "densekit.architecture": "polymax", "densekit.config": config]
        let bb = VoVNetRandomWeights.make(cfg.backbone, seed: 4)
        for k in bb.keys {
            try w.add(k.hasPrefix("backbone.") ? k : "backbone." + k, try bb.tensor(k))
        }
        let hd = PolyMaXWeightLayout.randomWeights(config: cfg.head, seed: 6, readout: readout)
        for k in hd.keys { try w.add(k, try hd.tensor(k)) }
        let path = dir + "/" + name
        try w.write(to: path)
        return path
    }

    func chelsea() throws -> RGBImage { try ImageDecoder.decode(path: Self.samples + "/chelsea.png").image }

    func testSegmentGivesLabelsAtTheUprightSize() throws {
        let seg = try Segmenter(modelPath: try writeModel())
        let img = try chelsea()
        let r = try seg.segment(img, includeScores: true)
        XCTAssertEqual(r.width, img.width)
        XCTAssertEqual(r.height, img.height)
        XCTAssertEqual(r.labels.count, img.width * img.height)
        XCTAssertTrue(r.labels.allSatisfy { $0 >= 0 && $0 < 5 })
        XCTAssertEqual(r.classNames, ["sky", "tree", "cat", "road", "other"])
        XCTAssertEqual(r.scores?.shape, [5, img.height, img.width])
        XCTAssertEqual(r.classShares.reduce(0, +), 1, accuracy: 1e-9)
        // Labels are the argmax of the scores.
        if let s = r.scores?.scalars {
            let hw = img.width * img.height
            for i in stride(from: 0, to: hw, by: 997) {
                let best = (0..<5).max { a, b in s[a * hw + i] < s[b * hw + i] || (s[a * hw + i] == s[b * hw + i] && a > b) }
                XCTAssertEqual(Int(r.labels[i]), best)
            }
        }
    }

    func testExifRotatedPhotoGivesUprightSize() throws {
        let path = Self.samples + "/portrait_exif6.jpg"
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("no \(path)") }
        let (img, info) = try ImageDecoder.decode(path: path)
        let seg = try Segmenter(modelPath: try writeModel())
        let r = try seg.segment(img)
        XCTAssertEqual(r.width, info.width)
        XCTAssertEqual(r.height, info.height)
    }

    func testLetterboxAndCropRoundTrip() throws {
        var p = PolyMaXPreprocess()
        p.sizing = .multiple(32)
        let g = try LetterboxGeometry(height: 300, width: 451, preprocess: p)
        XCTAssertEqual([g.paddedHeight, g.paddedWidth, g.resizedHeight, g.resizedWidth], [320, 480, 300, 451])
        let c = g.contentRegion(featureHeight: 80, featureWidth: 120)
        XCTAssertEqual([c.height, c.width], [75, 113])
        p.sizing = .fixed(height: 256, width: 256)
        let f = try LetterboxGeometry(height: 300, width: 451, preprocess: p)
        XCTAssertEqual([f.resizedHeight, f.resizedWidth, f.paddedHeight, f.paddedWidth], [170, 256, 256, 256])
        XCTAssertEqual(f.contentRegion(featureHeight: 64, featureWidth: 64).height, 43)
        // The tensor holds the image top-left and pad_value elsewhere.
        p.padValue = -7
        let img = try RGBImage(width: 5, height: 3, fill: (255, 0, 0))
        p.sizing = .multiple(4)
        let (t, tg) = try ImageTensor.letterbox(img, preprocess: p)
        XCTAssertEqual(t.shape, [1, 3, 4, 8])
        XCTAssertEqual(tg.resizedWidth, 5)
        XCTAssertEqual(t[0, 0, 0, 0], (1 - 0.485) / 0.229, accuracy: 1e-5)
        XCTAssertEqual(t[0, 0, 3, 0], -7)
        XCTAssertEqual(t[0, 2, 0, 7], -7)
        p.bgr = true
        let (tb, _) = try ImageTensor.letterbox(img, preprocess: p)
        XCTAssertEqual(tb[0, 2, 0, 0], (1 - 0.406) / 0.225, accuracy: 1e-5)   // red is the last plane, with mean[2]
    }

    func testLabelPNGDecodesBackAndNpyHeader() throws {
        let seg = try Segmenter(modelPath: try writeModel())
        let r = try seg.segment(try chelsea())
        let png = dir + "/labels.png"
        try PNGEncoder.write(try PipelineOutputs.labelPNG(r), to: png, overwrite: false)
        let back = try ImageDecoder.decodeGray(path: png)
        XCTAssertEqual(back.width, r.width)
        XCTAssertEqual(back.values.map { Int32($0) }, r.labels)
        XCTAssertThrowsError(try PNGEncoder.write(Data([1]), to: png, overwrite: false))
        let npy = try PipelineOutputs.npyFloat32([1, 2, 3, 4, 5, 6], shape: [2, 3])
        XCTAssertEqual(Array(npy.prefix(8)), [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
        let hlen = Int(npy[8]) | Int(npy[9]) << 8
        XCTAssertEqual((10 + hlen) % 64, 0)
        let header = String(decoding: npy[10 ..< 10 + hlen], as: UTF8.self)
        XCTAssertTrue(header.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"))
        XCTAssertTrue(header.hasSuffix("\n"))
        XCTAssertEqual(npy.count, 10 + hlen + 24)
        let pfm = try PipelineOutputs.pfm([1, 2, 3, 4], width: 2, height: 2)
        XCTAssertTrue(String(decoding: pfm.prefix(13), as: UTF8.self).hasPrefix("Pf\n2 2\n-1.0\n"))
    }

    func testDepthAndNormals() throws {
        let est = try DepthEstimator(modelPath: try writeModel())
        let img = try chelsea()
        let d = try est.estimateDepth(img)
        XCTAssertEqual(d.values.count, img.width * img.height)
        XCTAssertEqual(d.units, "metres")
        let st = d.statistics
        XCTAssertTrue(st.min >= 0.0009 && st.max <= 10.001 && st.min <= st.median && st.median <= st.max, "\(st)")
        let n = try est.estimateNormals(img)
        XCTAssertEqual(n.values.count, 3 * img.width * img.height)
        let i = 1234
        let len = (n.values[3 * i] * n.values[3 * i] + n.values[3 * i + 1] * n.values[3 * i + 1] + n.values[3 * i + 2] * n.values[3 * i + 2]).squareRoot()
        XCTAssertEqual(len, 1, accuracy: 1e-4)
        let png = dir + "/d.png"
        try PNGEncoder.write(try PipelineOutputs.depthPNG16(d), to: png, overwrite: false)
        let back = try ImageDecoder.decodeGray(path: png)
        XCTAssertEqual(Int(back.values[0]), Int((d.values[0] * 1000).rounded()))
    }

    func testNormalsRefusedWithoutReadoutWeights() throws {
        let est = try DepthEstimator(modelPath: try writeModel(readout: false, config: Self.configJSON.replacingOccurrences(of: "multitask", with: "segmentation")))
        XCTAssertFalse(est.hasNormals)
        XCTAssertThrowsError(try est.estimateNormals(try chelsea())) { e in
            XCTAssertTrue("\(e)".contains("readout.normals"), "\(e)")
        }
        XCTAssertThrowsError(try est.estimateDepth(try chelsea()))
    }

    func testErrorsAreClearAndLeaveNoFile() throws {
        XCTAssertThrowsError(try Segmenter(modelPath: dir + "/missing.safetensors"))
        let bad = dir + "/corrupt.png"
        try Data([0x89, 0x50, 0x4E, 0x47, 0, 1, 2]).write(to: URL(fileURLWithPath: bad))
        XCTAssertThrowsError(try ImageDecoder.decode(path: bad))
        // A model whose config disagrees with its tensors.
        let wrong = Self.configJSON.replacingOccurrences(of: "\"num_clusters\": 6", with: "\"num_clusters\": 7")
        let path = try writeModel(name: "m.safetensors")
        var w = SafeTensorsWriter()
        let f = try SafeTensorsFile(path: path)
        w.metadata = ["densekit.architecture": "polymax", "densekit.config": wrong]
        let src = SafeTensorsWeights(file: f)
        for k in src.keys { try w.add(k, try src.tensor(k)) }
        try w.write(to: dir + "/wrong.safetensors")
        XCTAssertThrowsError(try Segmenter(modelPath: dir + "/wrong.safetensors")) { e in
            XCTAssertTrue(e is ModelConfigError, "\(e)")
        }
        // Unwritable output: nothing is left behind.
        let r = try Segmenter(modelPath: path).segment(try RGBImage(width: 40, height: 33, fill: (10, 200, 30)))
        let out = dir + "/no/such/folder/x.png"
        XCTAssertThrowsError(try PNGEncoder.write(try PipelineOutputs.labelPNG(r), to: out, overwrite: false))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        XCTAssertEqual(r.labels.count, 40 * 33)
    }

    func testConcurrentSegmentCallsMatchSequential() async throws {
        let seg = try Segmenter(modelPath: try writeModel())
        let img = try chelsea()
        let small = try RGBImage(width: 77, height: 51, fill: (90, 120, 200))
        let a = try seg.segmentNow(img, includeScores: false).labels, b = try seg.segmentNow(small, includeScores: false).labels
        async let x = seg.segment(img)
        async let y = seg.segment(img)
        async let z = seg.segment(small)
        let (rx, ry, rz) = try await (x, y, z)
        XCTAssertEqual(rx.labels, a)
        XCTAssertEqual(ry.labels, a)
        XCTAssertEqual(rz.labels, b)
    }

    /// With `DENSEKIT_PIPELINE_MODEL_OUT=<path>`, saves the tiny model there (to try the CLI by hand).
    func testSaveTinyModelForTheCLI() throws {
        guard let out = ProcessInfo.processInfo.environment["DENSEKIT_PIPELINE_MODEL_OUT"] else { throw XCTSkip("set DENSEKIT_PIPELINE_MODEL_OUT") }
        let p = try writeModel()
        try? FileManager.default.removeItem(atPath: out)
        try FileManager.default.copyItem(atPath: p, toPath: out)
    }

    /// Preprocess values that would make every score NaN or infinite are refused when the config is read.
    func testPreprocessValuesOutOfRangeAreRefused() throws {
        for bad in ["{\"std\": [0, 0.2, 0.2]}", "{\"std\": [1e-30, 0.2, 0.2]}", "{\"mean\": [1e300, 0, 0]}",
                    "{\"std\": [1e39, 1, 1]}", "{\"pad_value\": 1e300}"] {
            XCTAssertThrowsError(try PolyMaXPreprocess(json: try JSONValue.parse(bad)), bad) { e in
                guard case ModelConfigError.invalidField? = e as? ModelConfigError else { return XCTFail("\(bad): \(e)") }
            }
        }
        XCTAssertNoThrow(try PolyMaXPreprocess(json: try JSONValue.parse("{\"mean\": [123.7, 116.3, 103.5], \"std\": [58.4, 57.1, 57.4]}")))
    }

    /// A depth-only model is refused for segmentation (its class read-out was never trained), and a depth
    /// read-out whose weights are damaged into NaN is refused instead of written.
    func testTaskAndNonFiniteDepthAreRefused() throws {
        let depthOnly = try writeModel(config: Self.configJSON.replacingOccurrences(of: #""task": "multitask""#, with: #""task": "depth""#),
                                       name: "depth.safetensors")
        XCTAssertThrowsError(try Segmenter(modelPath: depthOnly).segment(try chelsea())) { e in
            guard case .unsupportedTask(let m)? = e as? PipelineError else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains("depth"), m)
        }
        XCTAssertNoThrow(try DepthEstimator(modelPath: depthOnly).estimateDepth(try chelsea()))
        // The same file with a NaN depth-read-out bias.
        let file = try SafeTensorsFile(path: depthOnly)
        var w = SafeTensorsWriter()
        w.metadata = file.metadata
        for k in file.tensorNames.sorted() {
            var t = try file.floatTensor(k)
            if k == "readout.depth.bias" { t = Tensor(shape: t.shape, values: [Float](repeating: .nan, count: t.count)) }
            try w.add(k, t)
        }
        let broken = dir + "/nan.safetensors"
        try w.write(to: broken)
        XCTAssertThrowsError(try DepthEstimator(modelPath: broken).estimateDepth(try chelsea())) { e in
            guard case .nonFiniteOutput? = e as? PipelineError else { return XCTFail("\(e)") }
        }
    }

    /// The depth range of read-out option A must be 0 <= d_min < d_max <= 10000.
    func testDepthRangeIsChecked() throws {
        for (lo, hi) in [(-5.0, 10.0), (1.0, 1.0), (0.1, 1e30)] {
            let cfg = Self.configJSON.replacingOccurrences(of: #""num_classes": 5,"#, with: "\"num_classes\": 5, \"d_min\": \(lo), \"d_max\": \(hi),")
            XCTAssertThrowsError(try PolyMaXModelConfig(json: try JSONValue.parse(cfg)), "\(lo) \(hi)")
        }
    }
}
