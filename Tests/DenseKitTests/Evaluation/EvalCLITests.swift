import XCTest
@testable import DenseKit

/// `densekit eval segment|depth` run as a process on a tiny random-weights model: output keys, exit codes and
/// one-line errors. The CamVid / depth-eval cases skip when `../shared` is absent.
final class EvalCLITests: XCTestCase {
    static var repoRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
    }
    static var data: String { repoRoot.deletingLastPathComponent().appendingPathComponent("shared/data").path }

    /// The tiny test model of `PipelineSegmenterTests` with CamVid's 11 classes.
    static let configJSON = #"""
    {"backbone": {"architecture": "vovnet", "stem_chs": [8, 8, 8], "stage_conv_chs": [8, 8, 8, 8],
                  "stage_out_chs": [8, 16, 24, 32], "layer_per_block": 1, "block_per_stage": [1, 1, 1, 1],
                  "residual": false, "depthwise": true, "attn": "ese"},
     "head": {"in_channels": [8, 16, 24, 32], "dec_layers": [1, 1, 1, 1], "dec_channels": [16, 16, 8, 8],
              "num_clusters": 6, "query_dim": 24, "trans_base_filters": 8, "ffn_dim": 32, "pred_mid_channels": 16,
              "embed_dim": 8, "num_classes": 11, "trans_dec_layers": [1, 1, 1]},
     "task": "multitask",
     "preprocess": {"size_multiple": 32, "resize": "letterbox", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                    "channel_order": "rgb", "pad_value": 0},
     "classes": ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist"],
     "palette": [[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [0, 0, 192], [128, 128, 0],
                 [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0], [0, 128, 192]],
     "depth_units": "metres"}
    """#

    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "/densekit-evalcli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func writeModel() throws -> String {
        let cfg = try PolyMaXModelConfig(json: try JSONValue.parse(Self.configJSON))
        var w = SafeTensorsWriter()
        w.metadata = ["densekit.format": "1", "densekit.architecture": "polymax", "densekit.config": Self.configJSON]
        let bb = VoVNetRandomWeights.make(cfg.backbone, seed: 4)
        for k in bb.keys { try w.add(k.hasPrefix("backbone.") ? k : "backbone." + k, try bb.tensor(k)) }
        let hd = PolyMaXWeightLayout.randomWeights(config: cfg.head, seed: 6, readout: true)
        for k in hd.keys { try w.add(k, try hd.tensor(k)) }
        let path = dir + "/tiny.safetensors"
        try w.write(to: path)
        return path
    }

    func executable() throws -> URL {
        var d = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let c = d.appendingPathComponent("densekit")
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: c.path, isDirectory: &isDir), !isDir.boolValue { return c }
            d = d.deletingLastPathComponent()
        }
        throw XCTSkip("densekit executable not found beside the test bundle")
    }

    struct Result { let status: Int32; let stdout: String; let stderr: String }

    func run(_ args: [String]) throws -> Result {
        let p = Process()
        p.executableURL = try executable()
        p.arguments = args
        p.currentDirectoryURL = Self.repoRoot
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    func requireShared() throws {
        guard FileManager.default.fileExists(atPath: Self.data + "/camvid/val.txt") else { throw XCTSkip("../shared/data not present") }
    }

    func writeList(_ names: [String]) throws -> String {
        let p = dir + "/list.txt"
        try Data((names.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: p))
        return p
    }

    func testEvalSegmentOnCamVidValJSON() throws {
        try requireShared()
        let model = try writeModel()
        let names = try String(contentsOfFile: Self.data + "/camvid/val.txt", encoding: .utf8).split(separator: "\n").prefix(3).map(String.init)
        let list = try writeList(names)
        let r = try run(["eval", "segment", "--images", Self.data + "/camvid/val/images", "--labels", Self.data + "/camvid/val/labels",
                         "-m", model, "--list", list, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        for key in ["task", "model", "images", "class_count", "miou", "pixel_accuracy", "mean_class_accuracy", "labelled_pixels", "ignored_pixels", "classes"] {
            XCTAssertNotNil(obj[key], "missing \(key) in \(r.stdout)")
        }
        XCTAssertEqual(obj["images"] as? Int, 3)
        XCTAssertEqual(obj["class_count"] as? Int, 11)
        XCTAssertEqual((obj["labelled_pixels"] as? Int ?? 0) + (obj["ignored_pixels"] as? Int ?? 0), 3 * 480 * 360)
        let classes = try XCTUnwrap(obj["classes"] as? [[String: Any]])
        XCTAssertEqual(classes.count, 11)
        XCTAssertEqual(classes[0]["name"] as? String, "Sky")
        for k in ["class", "name", "iou", "accuracy", "gt_pixels", "predicted_pixels"] { XCTAssertNotNil(classes[3][k], k) }
        if let m = obj["miou"] as? Double { XCTAssertTrue((0...1).contains(m)) }
        XCTAssertEqual(r.stderr.split(separator: "\n").filter { $0.hasPrefix("[") }.count, 3, "progress per image: \(r.stderr)")

        // The table form names the classes and the mIoU.
        let t = try run(["eval", "segment", "--images", Self.data + "/camvid/val/images", "--labels", Self.data + "/camvid/val/labels",
                         "-m", model, "--list", list])
        XCTAssertEqual(t.status, 0, t.stderr)
        XCTAssertTrue(t.stdout.contains("Bicyclist") && t.stdout.contains("mIoU"), t.stdout)
    }

    func testEvalDepthOnDepthEvalJSON() throws {
        try requireShared()
        let model = try writeModel()
        let list = try writeList(["3dmatch_cubicles_000935", "tum_office_0"])
        let r = try run(["eval", "depth", "--images", Self.data + "/depth-eval/rgb", "--depth", Self.data + "/depth-eval/depth",
                         "-m", model, "--list", list, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        for key in ["task", "model", "model_units", "images", "valid_pixels", "metric", "median_scaled", "baseline", "frames"] {
            XCTAssertNotNil(obj[key], "missing \(key) in \(r.stdout)")
        }
        XCTAssertEqual(obj["images"] as? Int, 2)
        for key in ["metric", "median_scaled", "baseline"] {
            let m = try XCTUnwrap(obj[key] as? [String: Any], key)
            for k in ["abs_rel", "rmse", "delta1"] { XCTAssertNotNil(m[k] as? Double, "\(key).\(k)") }
        }
        let frames = try XCTUnwrap(obj["frames"] as? [[String: Any]])
        XCTAssertEqual(frames.count, 2)
        // The baseline predicts the median ground truth: 3576 mm for this frame (manifest depth_median_mm).
        XCTAssertEqual(frames[0]["gt_median"] as? Double ?? 0, 3.576, accuracy: 1e-4)
    }

    func testErrorsAreOneLineAndExitOne() throws {
        let model = try writeModel()
        let img = dir + "/images", lab = dir + "/labels", other = dir + "/other"
        for d in [img, lab, other] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        try FileManager.default.copyItem(atPath: Self.repoRoot.path + "/Samples/chelsea.png", toPath: img + "/cat.png")
        // A label of the wrong size for the photo.
        try PNGEncoder.encodeGray8(width: 4, height: 4, pixels: [UInt8](repeating: 0, count: 16))
            .write(to: URL(fileURLWithPath: lab + "/cat.png"))
        try PNGEncoder.encodeGray8(width: 4, height: 4, pixels: [UInt8](repeating: 0, count: 16))
            .write(to: URL(fileURLWithPath: other + "/dog.png"))
        let cases: [(String, [String])] = [
            ("missing folder", ["eval", "segment", "--images", dir + "/none", "--labels", lab, "-m", model]),
            ("no pairs", ["eval", "segment", "--images", img, "--labels", other, "-m", model]),
            ("wrong size", ["eval", "segment", "--images", img, "--labels", lab, "-m", model]),
            ("missing listed", ["eval", "segment", "--images", img, "--labels", lab, "-m", model, "--list", try writeList(["nope"])]),
            ("missing model", ["eval", "segment", "--images", img, "--labels", lab, "-m", dir + "/none.safetensors"]),
            ("depth wrong size", ["eval", "depth", "--images", img, "--depth", lab, "-m", model]),
            ("depth no pairs", ["eval", "depth", "--images", img, "--depth", other, "-m", model]),
            ("memory limit", ["eval", "segment", "--images", img, "--labels", lab, "-m", model, "--max-memory", "1M"]),
            ("pixel limit", ["eval", "depth", "--images", img, "--depth", lab, "-m", model, "--max-pixels", "100"]),
            ("list not text", ["eval", "segment", "--images", img, "--labels", lab, "-m", model, "--list", try writeList(["a\u{0}b"])]),
        ]
        for (what, args) in cases {
            let r = try run(args)
            XCTAssertEqual(r.status, 1, "\(what): exit \(r.status) \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "\(what): \(r.stderr)")
            XCTAssertTrue(r.stderr.hasPrefix("densekit: error: "), "\(what): \(r.stderr)")
            XCTAssertTrue(r.stdout.isEmpty, "\(what): \(r.stdout)")
        }
        let wrong = try run(["eval", "segment", "--images", img, "--labels", lab, "-m", model])
        XCTAssertTrue(wrong.stderr.contains("cat.png") && wrong.stderr.contains("4x4"), wrong.stderr)
    }

    func testUsageErrorsExit64() throws {
        for args in [["eval", "segment", "--images", dir], ["eval", "depth", "--depth", dir], ["eval", "depth", "--images", dir, "--depth", dir, "--depth-scale", "0"],
                     ["eval", "depth", "--images", dir, "--depth", dir, "--depth-scale", "1e300"],
                     ["eval", "segment", "--images", dir, "--labels", dir, "--max-pixels", "0"],
                     ["eval", "segment", "--images", dir, "--labels", dir, "--threads", "0"]] {
            let r = try run(args)
            XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)")
        }
    }

    /// With `DENSEKIT_EVAL_MODEL_OUT=<path>`, saves the 11-class tiny model there (to try `densekit eval` by hand).
    func testSaveTinyCamVidModel() throws {
        guard let out = ProcessInfo.processInfo.environment["DENSEKIT_EVAL_MODEL_OUT"] else { throw XCTSkip("set DENSEKIT_EVAL_MODEL_OUT") }
        let p = try writeModel()
        try? FileManager.default.removeItem(atPath: out)
        try FileManager.default.copyItem(atPath: p, toPath: out)
    }
}
