import XCTest
@testable import DenseKit
import FuzzSupport

/// Issue 12: resource limits checked before anything is allocated, and the fuzz corpora and findings replayed.
final class HostileInputTests: XCTestCase {
    static var repoRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
    }

    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "/densekit-hostile-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// A model file with only metadata (no tensors): whatever the config asks for must be refused from the config.
    func modelFile(architecture: String, config: String) throws -> String {
        var w = SafeTensorsWriter()
        w.metadata = ["densekit.format": "1", "densekit.architecture": architecture, "densekit.config": config]
        let path = dir + "/\(architecture)-\(UUID().uuidString).safetensors"
        try w.write(to: path)
        return path
    }

    func assertRefused(_ architecture: String, _ config: String, field: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let path = try modelFile(architecture: architecture, config: config)
        XCTAssertThrowsError(try ModelFile.load(path: path), file: file, line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(error is ModelConfigError, "\(type(of: error)): \(text)", file: file, line: line)
            XCTAssertTrue(text.contains("\"\(field)\""), "error does not name \(field): \(text)", file: file, line: line)
            XCTAssertFalse(text.contains("\n"), file: file, line: line)
        }
    }

    static let tinyPolyMaX = #"""
    {"backbone": {"architecture": "vovnet", "stem_chs": [8, 8, 8], "stage_conv_chs": [8, 8, 8, 8],
                  "stage_out_chs": [8, 16, 24, 32], "layer_per_block": 1, "block_per_stage": [1, 1, 1, 1],
                  "residual": false, "depthwise": true, "attn": "ese"},
     "head": {"in_channels": [8, 16, 24, 32], "dec_layers": [1, 1, 1, 1], "dec_channels": [16, 16, 8, 8],
              "num_clusters": 6, "query_dim": 24, "trans_base_filters": 8, "ffn_dim": 32, "pred_mid_channels": 16,
              "embed_dim": 8, "num_classes": 5, "trans_dec_layers": [1, 1, 1]},
     "task": "multitask", "preprocess": {"size_multiple": 32},
     "classes": ["sky", "tree", "cat", "road", "other"],
     "palette": [[70, 130, 180], [107, 142, 35], [220, 20, 60], [128, 64, 128], [0, 0, 0]]}
    """#

    /// `tinyPolyMaX` with `replacement` spliced in (a JSON fragment replacing `original`).
    func polymax(_ original: String, _ replacement: String) -> String {
        precondition(Self.tinyPolyMaX.contains(original))
        return Self.tinyPolyMaX.replacingOccurrences(of: original, with: replacement)
    }

    // MARK: configs asking for absurd sizes

    /// 10^9 channels (and other absurd sizes) are refused from the config alone, naming the field, before any
    /// tensor is read or any buffer exists (the files hold no tensors at all).
    func testAbsurdConfigsAreRefusedNamingTheField() throws {
        let billion = "1000000000"
        try assertRefused("vovnet", #"{"preset": "ese_vovnet19b_dw", "stem_chs": [\#(billion), 64, 64]}"#, field: "stem_chs")
        try assertRefused("vovnet", #"{"preset": "ese_vovnet19b_dw", "stage_out_chs": [256, 512, 768, \#(billion)]}"#, field: "stage_out_chs")
        try assertRefused("vovnet", #"{"preset": "ese_vovnet19b_dw", "layer_per_block": \#(billion)}"#, field: "layer_per_block")
        try assertRefused("vovnet", #"{"preset": "ese_vovnet19b_dw", "block_per_stage": [1, 1, \#(billion), 1]}"#, field: "block_per_stage")
        try assertRefused("vovnet", #"{"preset": "ese_vovnet19b_dw", "in_chans": \#(billion)}"#, field: "in_chans")
        try assertRefused("biformer", #"{"preset": "tiny", "embed_dim": [64, 128, 256, \#(billion)]}"#, field: "embed_dim")
        try assertRefused("biformer", #"{"preset": "tiny", "depth": [2, 2, \#(billion), 2]}"#, field: "depth")
        try assertRefused("biformer", #"{"preset": "tiny", "n_win": 4294967296}"#, field: "n_win")   // n_win² would overflow
        try assertRefused("biformer", #"{"preset": "tiny", "mlp_ratios": [3, 3, 3, 1e300]}"#, field: "mlp_ratios")
        try assertRefused("biformer", #"{"preset": "tiny", "side_dwconv": 1000001}"#, field: "side_dwconv")
        try assertRefused("polymax", polymax("\"stage_out_chs\": [8, 16, 24, 32]", "\"stage_out_chs\": [8, 16, 24, \(billion)]"), field: "stage_out_chs")
        try assertRefused("polymax", polymax("\"in_channels\": [8, 16, 24, 32]", "\"in_channels\": [8, 16, 24, \(billion)]"), field: "in_channels")
        try assertRefused("polymax", polymax("\"num_clusters\": 6", "\"num_clusters\": \(billion)"), field: "num_clusters")
        try assertRefused("polymax", polymax("\"dec_channels\": [16, 16, 8, 8]", "\"dec_channels\": [16, 16, 8, \(billion)]"), field: "dec_channels")
        try assertRefused("polymax", polymax("\"dec_layers\": [1, 1, 1, 1]", "\"dec_layers\": [1, \(billion), 1, 1]"), field: "dec_layers")
        try assertRefused("polymax", polymax("\"trans_dec_layers\": [1, 1, 1]", "\"trans_dec_layers\": [1, \(billion), 1]"), field: "trans_dec_layers")
        try assertRefused("polymax", polymax("\"embed_dim\": 8", "\"embed_dim\": \(billion)"), field: "embed_dim")
        try assertRefused("polymax", polymax("\"size_multiple\": 32", "\"input_size\": [\(billion), 64]"), field: "input_size")
        try assertRefused("polymax", polymax("\"dec_layers\"", "\"max_span\": \(billion), \"dec_layers\""), field: "max_span")
        try assertRefused("polymax", polymax("\"dec_layers\"", "\"num_heads\": \(billion), \"dec_layers\""), field: "num_heads")
        // ViT configs are not loaded from model files, but parse the same way.
        for (json, field) in [(#"{"embed_dim": 1000000000, "depth": 2, "num_heads": 1, "img_size": [32, 32]}"#, "embed_dim"),
                              (#"{"embed_dim": 16, "depth": 2, "num_heads": 1, "mlp_ratio": 1e300, "img_size": [32, 32]}"#, "mlp_ratio"),
                              (#"{"embed_dim": 16, "depth": 1000000000, "num_heads": 1, "img_size": [32, 32]}"#, "depth"),
                              (#"{"embed_dim": 16, "depth": 2, "num_heads": 1, "patch_size": 1, "img_size": [1000000000, 32]}"#, "img_size")] {
            XCTAssertThrowsError(try ViTConfig(json: try JSONValue.parse(json))) { XCTAssertTrue("\($0)".contains("\"\(field)\""), "\($0)") }
        }
    }

    // MARK: safetensors caps

    func testSafeTensorsHeaderSizeAndTensorCountAreCapped() throws {
        var w = SafeTensorsWriter()
        try w.add("a", Tensor(shape: [2], values: [1, 2]))
        try w.add("b", Tensor(shape: [1], values: [3]))
        let data = try w.serialized()
        XCTAssertNoThrow(try SafeTensorsFile(data: data, name: "ok"))
        XCTAssertThrowsError(try SafeTensorsFile(data: data, name: "x", maxHeaderBytes: 16)) {
            XCTAssertTrue("\($0)".contains("exceeds the limit of 16 bytes"), "\($0)")
        }
        XCTAssertThrowsError(try SafeTensorsFile(data: data, name: "x", maxTensors: 1)) {
            XCTAssertTrue("\($0)".contains("more than 1 tensors"), "\($0)")
        }
        // The default caps exist (a header length of 2^63 is refused without allocating: shared corrupt files).
        let huge = Data([0, 0, 0, 0, 0, 0, 0, 0x80]) + Data("{}".utf8)
        XCTAssertThrowsError(try SafeTensorsFile(data: huge, name: "huge"))
    }

    // MARK: memory cap per inference

    func tinyModel() throws -> PolyMaXModel {
        let cfg = try PolyMaXModelConfig(json: try JSONValue.parse(Self.tinyPolyMaX))
        var w = TensorDictionary()
        let bb = VoVNetRandomWeights.make(cfg.backbone, seed: 4)
        for k in bb.keys { w[k.hasPrefix("backbone.") ? k : "backbone." + k] = try bb.tensor(k) }
        let hd = PolyMaXWeightLayout.randomWeights(config: cfg.head, seed: 6, readout: true)
        for k in hd.keys { w[k] = try hd.tensor(k) }
        return try PolyMaXModel(config: cfg, weights: w)
    }

    func testMemoryEstimateComesFromTheConfigAndThePlan() throws {
        let model = try tinyModel()
        let small = try model.memoryEstimate(width: 64, height: 48)
        let params = VoVNetKeys.parameterCount(VoVNetKeys.expected(model.config.backbone))
            + PolyMaXWeightLayout.shapes(config: model.config.head).reduce(0) { $0 + $1.shape.reduce(1, *) }
        XCTAssertEqual(small.weightBytes, 4 * params)
        let plan = try model.backbone.plan(inputShape: [1, 3, 64, 64])
        XCTAssertEqual(small.backboneArenaBytes, plan.memory.arenaBytes)
        XCTAssertGreaterThan(small.otherBytes, 4 * 3 * 64 * 64)
        let big = try model.memoryEstimate(width: 1024, height: 768)
        XCTAssertGreaterThan(big.totalBytes, 100 * small.totalBytes / 2)
        XCTAssertTrue(big.description.contains("backbone arena"), big.description)
        // A size the model cannot take at all is refused by the size check, not estimated.
        XCTAssertThrowsError(try model.memoryEstimate(width: 100_000, height: 10))
    }

    func testMemoryCapRefusesBeforeRunning() throws {
        let model = try tinyModel()
        let image = try RGBImage(width: 40, height: 30, fill: (10, 200, 30))
        let need = try model.memoryEstimate(width: 40, height: 30).totalBytes
        XCTAssertThrowsError(try model.checkMemory(width: 40, height: 30, limitBytes: need - 1)) { error in
            guard case let ResourceLimitError.memory(_, needed, limit) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(needed, need)
            XCTAssertEqual(limit, need - 1)
            let text = "\(error)"
            XCTAssertTrue(text.contains("40x30") && text.contains("--max-memory") && !text.contains("\n"), text)
        }
        XCTAssertNoThrow(try model.checkMemory(width: 40, height: 30, limitBytes: need))
        let seg = Segmenter(model: model)
        XCTAssertThrowsError(try seg.segment(image, maxMemoryBytes: 1 << 10)) { XCTAssertTrue($0 is ResourceLimitError, "\($0)") }
        XCTAssertThrowsError(try seg.checkImageSize(width: 40, height: 30, maxMemoryBytes: 1 << 10))
        XCTAssertNoThrow(try seg.checkImageSize(width: 40, height: 30, maxMemoryBytes: nil))
        let r = try seg.segment(image, maxMemoryBytes: 1 << 34)
        XCTAssertEqual(r.labels.count, 40 * 30)
        let depth = DepthEstimator(model: model)
        XCTAssertThrowsError(try depth.estimateDepth(image, maxMemoryBytes: 1 << 10)) { XCTAssertTrue($0 is ResourceLimitError, "\($0)") }
        XCTAssertThrowsError(try depth.estimateNormals(image, maxMemoryBytes: 1 << 10)) { XCTAssertTrue($0 is ResourceLimitError, "\($0)") }
        XCTAssertEqual(try depth.estimateDepth(image, maxMemoryBytes: 1 << 34).values.count, 40 * 30)
        XCTAssertThrowsError(try model.predict(image, tasks: .semantic, maxMemoryBytes: 100))
    }

    func executable(_ name: String) -> URL? {
        var d = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let c = d.appendingPathComponent(name)
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: c.path, isDirectory: &isDir), !isDir.boolValue { return c }
            d = d.deletingLastPathComponent()
        }
        return nil
    }

    func runProcess(_ exe: URL, _ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = exe
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    /// `--max-memory` on segment / depth / normals: a cap below the estimate refuses the image with one line and exit 1,
    /// before anything is written; a bad value is a usage error.
    func testCLIMaxMemory() throws {
        guard let exe = executable("densekit") else { throw XCTSkip("densekit not built beside the tests") }
        let cfg = try PolyMaXModelConfig(json: try JSONValue.parse(Self.tinyPolyMaX))
        var w = SafeTensorsWriter()
        w.metadata = ["densekit.format": "1", "densekit.architecture": "polymax", "densekit.config": Self.tinyPolyMaX]
        let bb = VoVNetRandomWeights.make(cfg.backbone, seed: 4)
        for k in bb.keys { try w.add(k.hasPrefix("backbone.") ? k : "backbone." + k, try bb.tensor(k)) }
        let hd = PolyMaXWeightLayout.randomWeights(config: cfg.head, seed: 6, readout: true)
        for k in hd.keys { try w.add(k, try hd.tensor(k)) }
        try w.write(to: dir + "/m.safetensors")
        let png = try PNGEncoder.encode(try RGBImage(width: 40, height: 30, fill: (1, 2, 3)))
        try png.write(to: URL(fileURLWithPath: dir + "/p.png"))
        for cmd in ["segment", "depth", "normals"] {
            let r = try runProcess(exe, [cmd, "p.png", "-m", "m.safetensors", "-o", "out-\(cmd)", "--max-memory", "1K"])
            XCTAssertEqual(r.status, 1, cmd + r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains("--max-memory") && r.stderr.contains("40x30"), r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out-\(cmd)"))
            let bad = try runProcess(exe, [cmd, "p.png", "-m", "m.safetensors", "--max-memory", "lots"])
            XCTAssertEqual(bad.status, 64, bad.stderr)
            let ok = try runProcess(exe, [cmd, "p.png", "-m", "m.safetensors", "-o", "ok-\(cmd)", "--max-memory", "16G"])
            XCTAssertEqual(ok.status, 0, ok.stderr)
        }
    }

    /// Models that are not planned ahead (BiFormer, ViT) get an estimate from the config too, so `profile` / `bench`
    /// refuse an 8192x8192 input to them instead of running out of memory.
    func testUnplannedModelsAreEstimated() throws {
        let c = try BiFormerConfig(json: try JSONValue.parse(#"{"variant": "dense", "depth": [1, 1, 1, 1], "embed_dim": [8, 16, 16, 32], "qk_dims": [8, 16, 16, 32], "head_dim": 8, "n_win": 2, "topks": [1, 2, 2, -2], "mlp_ratios": [2, 2, 2, 2], "auto_pad": true, "num_classes": 0}"#))
        let net = try BiFormer(config: c, weights: c.randomWeights(seed: 1))
        let small = try InferenceMemory.estimate(net, inputShape: [1, 3, 64, 64])
        XCTAssertEqual(small.weightBytes, 4 * c.parameterCount)
        let big = try InferenceMemory.estimate(net, inputShape: [1, 3, 8192, 8192])
        XCTAssertGreaterThan(big.totalBytes, 1 << 30)
        XCTAssertThrowsError(try InferenceMemory.check(net, inputShape: [1, 3, 8192, 8192], limitBytes: 1 << 30)) {
            XCTAssertTrue("\($0)".contains("1x3x8192x8192") && "\($0)".contains("biformer"), "\($0)")
        }
        XCTAssertNoThrow(try InferenceMemory.check(net, inputShape: [1, 3, 64, 64], limitBytes: 1 << 30))
    }

    /// Finding (FuzzModelConfig: RSS grew steadily, LeakSanitizer: ExecutionContext leaked): a graph's plan cache held
    /// plans that held the graph, so every graph that ever ran (with its weights) stayed alive forever. Now a graph is
    /// freed when its last user lets go, and a plan that outlives its graph still runs.
    func testGraphThatRanIsFreed() throws {
        weak var weakGraph: Graph?
        var plan: ExecutionPlan?
        do {
            let g = try Graph(inputs: ["x"], nodes: [GraphNode(name: "id", layer: Identity(), inputs: ["x"], outputs: ["y"])],
                              outputs: [(name: "y", value: "y")])
            XCTAssertEqual(try g.run(Tensor(shape: [1, 1, 1, 2], values: [3, 4]))["y"]?.scalars, [3, 4])
            _ = try g.run(Tensor(shape: [1, 1, 1, 2], values: [5, 6]))   // through the idle arena
            plan = try g.plan(inputShapes: ["x": [1, 1, 1, 2]])
            XCTAssertTrue(plan?.graph === g)
            weakGraph = g
        }
        XCTAssertNil(weakGraph, "the graph is kept alive by its own plan cache")
        XCTAssertEqual(plan?.graph.nodes.count, 1)
        XCTAssertEqual(try plan?.run(["x": Tensor(shape: [1, 1, 1, 2], values: [7, 8])])["y"]?.scalars, [7, 8])
        // A model built from a config is freed too (the fuzzer built thousands).
        weak var weakNet: VoVNet?
        do {
            let c = try VoVNetConfig(json: try JSONValue.parse(#"{"stem_chs": [4, 4, 4], "stage_conv_chs": [4, 4, 4, 4], "stage_out_chs": [4, 4, 4, 8], "layer_per_block": 1, "block_per_stage": [1, 1, 1, 1], "residual": false, "depthwise": false, "attn": ""}"#))
            let net = try VoVNet(config: c, weights: VoVNetRandomWeights.make(c, seed: 1))
            _ = try net.run(Tensor(zeros: [1, 3, 32, 32]))
            weakNet = net
        }
        XCTAssertNil(weakNet)
    }

    /// Finding (FuzzInspect, crash-header-key-newline-in-error): a header syntax error after an entry quoted the raw
    /// tensor name, so a name with a newline (JSON escape) broke the one-line error rule.
    func testHeaderSyntaxErrorQuotesTheNameOnOneLine() throws {
        let url = Self.repoRoot.appendingPathComponent("Tests/FuzzCrashes/FuzzInspect/crash-header-key-newline-in-error")
        let data = try Data(contentsOf: url)
        XCTAssertThrowsError(try SafeTensorsFile(data: data, name: "x.safetensors")) { error in
            let text = "\(error)"
            XCTAssertFalse(text.contains("\n"), text)
            XCTAssertTrue(text.contains("after the entry") && text.contains("\\u{A}"), text)
        }
    }

    /// A config string with a carriage return (fuzz finding) is echoed escaped: the error stays one line.
    func testConfigErrorEscapesControlCharacters() {
        let e = ModelConfigError.invalidField(model: "polymax preprocess", field: "resize",
                                              message: "only \"letterbox\" is supported, got \"lett\rbox\n\"")
        let text = "\(e)"
        XCTAssertFalse(text.contains("\r") || text.contains("\n"), text)
        XCTAssertTrue(text.contains("lett\\u{D}box\\u{A}"), text)
    }

    func testMemorySizeParsing() {
        XCTAssertEqual(MemorySize.parse("1048576"), 1 << 20)
        XCTAssertEqual(MemorySize.parse("512M"), 512 << 20)
        XCTAssertEqual(MemorySize.parse("512MB"), 512 << 20)
        XCTAssertEqual(MemorySize.parse("2g"), 2 << 30)
        XCTAssertEqual(MemorySize.parse("1.5GiB"), 3 << 29)
        XCTAssertEqual(MemorySize.parse("64k"), 64 << 10)
        for bad in ["", "0", "-5", "abc", "1e400", "5X", "G", "1.2.3", "99999999999T"] {
            XCTAssertNil(MemorySize.parse(bad), bad)
        }
        XCTAssertEqual(MemorySize.format(512), "512 bytes")
        XCTAssertEqual(MemorySize.format(3 << 29), "1.5 GiB")
        XCTAssertGreaterThan(MemorySize.defaultInferenceLimit, 0)
    }

    // MARK: fuzz corpora and findings

    /// Every committed seed and every past finding (Tests/FuzzCrashes/<target>/) runs through the same entry points
    /// as the fuzzers, plus the shared corrupt files when present: none may crash, and every refusal is one line.
    func testFuzzCorporaAndFindingsReplay() throws {
        let tests = Self.repoRoot.appendingPathComponent("Tests")
        let shared = Self.repoRoot.deletingLastPathComponent().appendingPathComponent("shared/data").path
        let targets: [(String, (Data) -> Void, [String])] = [
            ("FuzzImage", FuzzTargets.image, [shared + "/corrupt", shared + "/corrupt-controls"]),
            ("FuzzSafeTensors", FuzzTargets.safeTensors, [shared + "/corrupt", shared + "/corrupt-controls"]),
            ("FuzzModelConfig", FuzzTargets.modelConfig, []),
            ("FuzzInspect", FuzzTargets.inspect, [shared + "/corrupt", shared + "/corrupt-controls"]),
        ]
        for (name, body, extra) in targets {
            let folders = [tests.appendingPathComponent("FuzzCorpus/\(name)").path, tests.appendingPathComponent("FuzzCrashes/\(name)").path] + extra
            let files = folders.flatMap { FuzzCorpus.files(at: $0) }
            XCTAssertFalse(FuzzCorpus.files(at: folders[0]).isEmpty, "no seeds for \(name)")
            for f in files {
                guard let data = FileManager.default.contents(atPath: f) else { XCTFail("cannot read \(f)"); continue }
                body(data)
            }
        }
    }

    /// The committed corpus stays small (the issue's budget: well under 1 MB).
    func testFuzzCorpusIsSmall() {
        let files = FuzzCorpus.files(at: Self.repoRoot.appendingPathComponent("Tests/FuzzCorpus").path)
            + FuzzCorpus.files(at: Self.repoRoot.appendingPathComponent("Tests/FuzzCrashes").path)
        let bytes = files.reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: $1)[.size] as? Int) ?? 0) }
        XCTAssertLessThan(bytes, 1 << 20)
    }

    /// The plain build of a fuzz target replays files given as arguments (how a crash file is checked by hand).
    func testFuzzExecutablesReplayFiles() throws {
        var dirURL = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        var exe: URL?
        for _ in 0..<4 {
            let c = dirURL.appendingPathComponent("FuzzSafeTensors")
            if FileManager.default.isExecutableFile(atPath: c.path) { exe = c; break }
            dirURL = dirURL.deletingLastPathComponent()
        }
        guard let exe else { throw XCTSkip("FuzzSafeTensors not built beside the tests") }
        let p = Process()
        p.executableURL = exe
        p.arguments = [Self.repoRoot.appendingPathComponent("Tests/FuzzCorpus/FuzzSafeTensors").path]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        XCTAssertTrue(text.hasPrefix("ran ") && text.contains("input(s)"), text)
    }
}
