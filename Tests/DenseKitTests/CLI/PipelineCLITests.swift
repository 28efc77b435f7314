import Foundation
import XCTest
@testable import DenseKit
#if canImport(Glibc)
import Glibc
#endif

/// `densekit segment / depth / normals` run as processes on a tiny random-weights PolyMaX model (the one of
/// `PipelineSegmenterTests`): every output format read back, `--json`, overwrite protection, the default model
/// choice in `Models/`, and every failure path (one stderr line, exit code 1 or 64, no partial or temporary file,
/// no output folder left behind).
final class PipelineCLITests: XCTestCase {
    static var repoRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
    }
    static var shared: URL { repoRoot.deletingLastPathComponent().appendingPathComponent("shared") }
    static var chelsea: String { repoRoot.appendingPathComponent("Samples/chelsea.png").path }
    static var testorig: String { repoRoot.appendingPathComponent("Samples/testorig.jpg").path }

    var dir = ""
    var model = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "densekit-pipecli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        model = try writeModel(dir + "/tiny.safetensors")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    // MARK: - helpers

    /// The tiny model of `PipelineSegmenterTests` (multitask, depth and normals read-outs unless `readout` is false).
    @discardableResult
    func writeModel(_ path: String, readout: Bool = true, config: String = PipelineSegmenterTests.configJSON) throws -> String {
        let cfg = try PolyMaXModelConfig(json: try JSONValue.parse(config))
        var w = SafeTensorsWriter()
        w.metadata = ["densekit.format": "1", "densekit.architecture": "polymax", "densekit.config": config]
        let bb = VoVNetRandomWeights.make(cfg.backbone, seed: 4)
        for k in bb.keys { try w.add(k.hasPrefix("backbone.") ? k : "backbone." + k, try bb.tensor(k)) }
        let hd = PolyMaXWeightLayout.randomWeights(config: cfg.head, seed: 6, readout: readout)
        for k in hd.keys { try w.add(k, try hd.tensor(k)) }
        try w.write(to: path)
        return path
    }

    /// The config with another task and class names.
    func config(task: String, classes: [String]? = nil) -> String {
        var c = PipelineSegmenterTests.configJSON.replacingOccurrences(of: "\"task\": \"multitask\"", with: "\"task\": \"\(task)\"")
        if let classes {
            let list = "[" + classes.map { JSONValue.quote($0) }.joined(separator: ", ") + "]"
            c = c.replacingOccurrences(of: #"["sky", "tree", "cat", "road", "other"]"#, with: list)
        }
        return c
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

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
        var errLines: [Substring] { stderr.split(separator: "\n", omittingEmptySubsequences: true) }
    }

    func run(_ args: [String], cwd: String? = nil) throws -> Result {
        let p = Process()
        p.executableURL = try executable()
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: cwd ?? Self.repoRoot.path)
        var env = ProcessInfo.processInfo.environment
        env["DENSEKIT_THREADS"] = "2"
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    /// Every file under `root` (recursive), relative paths.
    func files(under root: String) -> [String] {
        guard let e = FileManager.default.enumerator(atPath: root) else { return [] }
        var out: [String] = []
        while let f = e.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + f, isDirectory: &isDir), !isDir.boolValue { out.append(f) }
        }
        return out.sorted()
    }

    /// A failure: exit `status`, exactly one stderr line starting `densekit: error:` (containing `mentions`),
    /// nothing on stdout, and no file written (no output, no temporary file) anywhere under `dir` except `keep`.
    func assertCleanFailure(_ r: Result, status: Int32 = 1, mentions: String? = nil, keep: [String],
                            file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, status, "exit \(r.status): \(r.stderr)", file: file, line: line)
        XCTAssertEqual(r.errLines.count, 1, "stderr: \(r.stderr)", file: file, line: line)
        if status == 1 {
            XCTAssertTrue(r.stderr.hasPrefix("densekit: error: "), r.stderr, file: file, line: line)
        }
        if let mentions { XCTAssertTrue(r.stderr.contains(mentions), "expected '\(mentions)' in: \(r.stderr)", file: file, line: line) }
        XCTAssertTrue(r.stdout.isEmpty, "stdout: \(r.stdout)", file: file, line: line)
        let left = files(under: dir).filter { !keep.contains($0) }
        XCTAssertEqual(left, [], "files left behind", file: file, line: line)
    }

    /// The header dictionary text and the data offset of a `.npy` file.
    func npyHeader(_ d: Data) throws -> (header: String, dataStart: Int) {
        XCTAssertEqual(Array(d.prefix(8)), [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
        let hlen = Int(d[8]) | Int(d[9]) << 8
        XCTAssertEqual((10 + hlen) % 64, 0)
        return (String(decoding: d[10 ..< 10 + hlen], as: UTF8.self), 10 + hlen)
    }

    func floats(_ d: Data, from start: Int) -> [Float] {
        let n = (d.count - start) / 4
        return (0..<n).map { i in
            let o = start + 4 * i
            let bits = UInt32(d[o]) | UInt32(d[o + 1]) << 8 | UInt32(d[o + 2]) << 16 | UInt32(d[o + 3]) << 24
            return Float(bitPattern: bits)
        }
    }

    func jsonLines(_ s: String) throws -> [[String: Any]] {
        try s.split(separator: "\n").map { line in
            let o = try JSONSerialization.jsonObject(with: Data(line.utf8))
            guard let d = o as? [String: Any] else { throw XCTSkip("not an object: \(line)") }
            return d
        }
    }

    // MARK: - success paths

    func testSegmentIndexedPNGHoldsClassIndicesAndOverlay() throws {
        let out = dir + "/out"
        let r = try run(["segment", Self.chelsea, "-m", model, "-o", out, "--overlay"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.isEmpty, "a single image prints no progress: \(r.stderr)")
        XCTAssertTrue(r.stdout.hasPrefix(Self.chelsea + ": 451x300 -> "), r.stdout)
        let labels = try ImageDecoder.decodeGray(path: out + "/chelsea.labels.png")
        XCTAssertEqual([labels.width, labels.height], [451, 300])
        // Pixel value = class index: the same labels as the API gives.
        let api = try Segmenter(modelPath: model).segment(try ImageDecoder.decode(path: Self.chelsea).image)
        XCTAssertEqual(labels.values.map { Int32($0) }, api.labels)
        XCTAssertEqual(try ImageDecoder.probe(path: out + "/chelsea.labels.png").colorType, "palette")
        let overlay = try ImageDecoder.decode(path: out + "/chelsea.overlay.png")
        XCTAssertEqual([overlay.image.width, overlay.image.height], [451, 300])
        // Every class with pixels is listed with its share.
        for (c, share) in api.classShares.enumerated() where share > 0 {
            XCTAssertTrue(r.stdout.contains("  " + api.classNames[c]), r.stdout)
        }
        XCTAssertEqual(files(under: out), ["chelsea.labels.png", "chelsea.overlay.png"])
    }

    func testSegmentNpyScoresAndJSON() throws {
        let out = dir + "/out"
        let r = try run(["segment", Self.chelsea, Self.testorig, "-m", model, "-o", out, "--format", "npy", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let objs = try jsonLines(r.stdout)
        XCTAssertEqual(objs.count, 2)
        XCTAssertEqual(objs[0]["image"] as? String, Self.chelsea)
        XCTAssertEqual(objs[0]["width"] as? Int, 451)
        XCTAssertEqual(objs[1]["height"] as? Int, 149)
        let classes = objs[0]["classes"] as? [[String: Any]] ?? []
        XCTAssertFalse(classes.isEmpty)
        XCTAssertEqual(classes.compactMap { $0["share"] as? Double }.reduce(0, +), 1, accuracy: 1e-4)
        XCTAssertEqual(objs[0]["outputs"] as? [String], [out + "/chelsea.scores.npy"])
        // Progress for several images on stderr.
        XCTAssertTrue(r.stderr.contains("[1/2]") && r.stderr.contains("[2/2]"), r.stderr)
        let d = try Data(contentsOf: URL(fileURLWithPath: out + "/chelsea.scores.npy"))
        let (h, start) = try npyHeader(d)
        XCTAssertTrue(h.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (5, 300, 451), }"), h)
        XCTAssertEqual(d.count - start, 5 * 300 * 451 * 4)
        // The argmax of the scores is the label map.
        let s = floats(d, from: start)
        let api = try Segmenter(modelPath: model).segment(try ImageDecoder.decode(path: Self.chelsea).image)
        let hw = 300 * 451
        for i in stride(from: 0, to: hw, by: 1009) {
            let best = (0..<5).max { a, b in s[a * hw + i] < s[b * hw + i] || (s[a * hw + i] == s[b * hw + i] && a > b) }
            XCTAssertEqual(Int(api.labels[i]), best)
        }
    }

    func testDepthPNG16NpyAndPfmAgree() throws {
        var raw: [String: Data] = [:]
        for format in ["png16", "npy", "pfm"] {
            let out = dir + "/" + format
            let r = try run(["depth", Self.chelsea, "-m", model, "-o", out, "--format", format, "--json", "--colormap", "viridis"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let o = try jsonLines(r.stdout)
            XCTAssertEqual(o.count, 1)
            XCTAssertEqual(o.first?["units"] as? String, "metres")
            let mn = o.first?["min"] as? Double ?? -1, md = o.first?["median"] as? Double ?? -1, mx = o.first?["max"] as? Double ?? -1
            XCTAssertTrue(0 < mn && mn <= md && md <= mx && mx <= 10.001, "\(o)")
            let name = format == "png16" ? "chelsea.depth16.png" : "chelsea.depth.\(format)"
            XCTAssertEqual(files(under: out), [name, "chelsea.depth.png"].sorted())
            raw[format] = try Data(contentsOf: URL(fileURLWithPath: out + "/" + name))
            let color = try ImageDecoder.decode(path: out + "/chelsea.depth.png").image
            XCTAssertEqual([color.width, color.height], [451, 300])
        }
        let npy = try XCTUnwrap(raw["npy"])
        let (h, start) = try npyHeader(npy)
        XCTAssertTrue(h.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (300, 451), }"), h)
        let v = floats(npy, from: start)
        XCTAssertEqual(v.count, 300 * 451)
        // 16-bit PNG: millimetres.
        let g = try ImageDecoder.decodeGray(data: try XCTUnwrap(raw["png16"]), name: "png16")
        XCTAssertEqual(g.bitDepth, 16)
        for i in stride(from: 0, to: v.count, by: 997) {
            XCTAssertEqual(Int(g.values[i]), Int(max(0, min(65535, (v[i] * 1000).rounded()))))
        }
        // PFM: header, rows bottom to top.
        let pfm = try XCTUnwrap(raw["pfm"])
        let head = "Pf\n451 300\n-1.0\n"
        XCTAssertEqual(String(decoding: pfm.prefix(head.utf8.count), as: UTF8.self), head)
        let p = floats(pfm, from: head.utf8.count)
        XCTAssertEqual(p.count, 300 * 451)
        XCTAssertEqual(Array(p[0..<451]), Array(v[(299 * 451)..<(300 * 451)]))
        XCTAssertEqual(Array(p[(299 * 451)...]), Array(v[0..<451]))
    }

    func testNormalsPNGAndNpy() throws {
        let r = try run(["normals", Self.testorig, "-m", model, "-o", dir + "/n"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let img = try ImageDecoder.decode(path: dir + "/n/testorig.normals.png").image
        XCTAssertEqual([img.width, img.height], [227, 149])
        let r2 = try run(["normals", Self.testorig, "-m", model, "-o", dir + "/n", "--format", "npy", "--json"])
        XCTAssertEqual(r2.status, 0, r2.stderr)
        XCTAssertEqual(try jsonLines(r2.stdout).first?["outputs"] as? [String], [dir + "/n/testorig.normals.npy"])
        let d = try Data(contentsOf: URL(fileURLWithPath: dir + "/n/testorig.normals.npy"))
        let (h, start) = try npyHeader(d)
        XCTAssertTrue(h.contains("'shape': (149, 227, 3)"), h)
        let v = floats(d, from: start)
        let len = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).squareRoot()
        XCTAssertEqual(len, 1, accuracy: 1e-4)
    }

    func testExistingOutputIsNotOverwrittenWithoutForce() throws {
        let out = dir + "/out"
        XCTAssertEqual(try run(["segment", Self.chelsea, "-m", model, "-o", out]).status, 0)
        let target = out + "/chelsea.labels.png"
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: target))
        let r = try run(["segment", Self.chelsea, "-m", model, "-o", out])
        assertCleanFailure(r, mentions: "--force", keep: ["tiny.safetensors", "out/chelsea.labels.png"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: target)), Data("keep me".utf8))
        let f = try run(["segment", Self.chelsea, "-m", model, "-o", out, "--force"])
        XCTAssertEqual(f.status, 0, f.stderr)
        XCTAssertEqual(try ImageDecoder.decodeGray(path: target).width, 451)
        XCTAssertEqual(files(under: out), ["chelsea.labels.png"])
    }

    // MARK: - failure paths

    func testMissingImageModelAndFolder() throws {
        let out = dir + "/out"
        for cmd in ["segment", "depth", "normals"] {
            assertCleanFailure(try run([cmd, dir + "/nope.png", "-m", model, "-o", out]), mentions: "nope.png", keep: ["tiny.safetensors"])
            assertCleanFailure(try run([cmd, Self.chelsea, "-m", dir + "/nope.safetensors", "-o", out]), mentions: "nope.safetensors",
                               keep: ["tiny.safetensors"])
            assertCleanFailure(try run([cmd, dir + "/empty-folder-that-is-absent/", "-m", model, "-o", out]), keep: ["tiny.safetensors"])
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "the output folder was created for nothing")
    }

    func testCorruptImagesMadeHereAndFromSharedData() throws {
        let out = dir + "/out/sub"
        var images: [String] = []
        let made: [(String, Data)] = [
            ("text.png", Data("not an image at all".utf8)),
            ("empty.jpg", Data()),
            ("trunc.png", try Data(contentsOf: URL(fileURLWithPath: Self.chelsea)).prefix(3000)),
            ("trunc.jpg", try Data(contentsOf: URL(fileURLWithPath: Self.testorig)).prefix(2000)),
        ]
        for (n, d) in made {
            try d.write(to: URL(fileURLWithPath: dir + "/" + n))
            images.append(dir + "/" + n)
        }
        var keep = ["tiny.safetensors"] + made.map { $0.0 }
        let corrupt = Self.shared.appendingPathComponent("data/corrupt").path
        if let names = try? FileManager.default.contentsOfDirectory(atPath: corrupt) {
            for n in names.sorted() where n.hasSuffix(".png") || n.hasSuffix(".jpg") {
                images.append(corrupt + "/" + n)
            }
        }
        keep.sort()
        for img in images {
            for cmd in ["segment", "depth", "normals"] {
                let r = try run([cmd, img, "-m", model, "-o", out])
                assertCleanFailure(r, mentions: (img as NSString).lastPathComponent, keep: keep)
                XCTAssertFalse(r.stderr.contains("Fatal"), r.stderr)
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out"))
    }

    func testCorruptAndUnsuitableModels() throws {
        let keep = ["tiny.safetensors", "m.safetensors"]
        // Truncated, garbage, and a model whose config disagrees with its tensors.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: model))
        var bad: [(Data, String?)] = [(bytes.prefix(bytes.count / 2), nil), (Data("{}".utf8), nil)]
        let wrong = PipelineSegmenterTests.configJSON.replacingOccurrences(of: "\"num_clusters\": 6", with: "\"num_clusters\": 7")
        var w = SafeTensorsWriter()
        w.metadata = ["densekit.format": "1", "densekit.architecture": "polymax", "densekit.config": wrong]
        let src = SafeTensorsWeights(file: try SafeTensorsFile(path: model))
        for k in src.keys { try w.add(k, try src.tensor(k)) }
        let mismatched = dir + "/mismatch.tmp"
        try w.write(to: mismatched)
        bad.append((try Data(contentsOf: URL(fileURLWithPath: mismatched)), nil))
        try FileManager.default.removeItem(atPath: mismatched)
        for (d, mention) in bad {
            try d.write(to: URL(fileURLWithPath: dir + "/m.safetensors"))
            for cmd in ["segment", "depth", "normals"] {
                let r = try run([cmd, Self.chelsea, "-m", dir + "/m.safetensors", "-o", dir + "/out"])
                assertCleanFailure(r, mentions: mention ?? "m.safetensors", keep: keep)
            }
        }
        // The shared corrupt safetensors files.
        let corrupt = Self.shared.appendingPathComponent("data/corrupt").path
        for n in ((try? FileManager.default.contentsOfDirectory(atPath: corrupt)) ?? []).sorted() where n.hasSuffix(".safetensors") {
            let r = try run(["segment", Self.chelsea, "-m", corrupt + "/" + n, "-o", dir + "/out"])
            assertCleanFailure(r, mentions: n, keep: ["tiny.safetensors"] + (FileManager.default.fileExists(atPath: dir + "/m.safetensors") ? ["m.safetensors"] : []))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out"))
    }

    func testNormalsAndDepthRefuseModelsWithoutTheirReadout() throws {
        let seg = try writeModel(dir + "/seg.safetensors", readout: false, config: config(task: "segmentation"))
        let keep = ["seg.safetensors", "tiny.safetensors"]
        assertCleanFailure(try run(["normals", Self.chelsea, "-m", seg, "-o", dir + "/out"]), mentions: "readout.normals", keep: keep)
        assertCleanFailure(try run(["depth", Self.chelsea, "-m", seg, "-o", dir + "/out"]), mentions: "readout.depth", keep: keep)
        XCTAssertEqual(try run(["segment", Self.chelsea, "-m", seg, "-o", dir + "/out"]).status, 0)
    }

    func testUnwritableOutputFolder() throws {
        // Root may write anywhere, so "unwritable" is a path under a regular file, and a regular file as the folder.
        try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/afile"))
        let keep = ["afile", "tiny.safetensors"]
        for cmd in ["segment", "depth", "normals"] {
            assertCleanFailure(try run([cmd, Self.chelsea, "-m", model, "-o", dir + "/afile/out"]), mentions: "afile", keep: keep)
            assertCleanFailure(try run([cmd, Self.chelsea, "-m", model, "-o", dir + "/afile"]), mentions: "not a folder", keep: keep)
        }
        if getuid() != 0 {
            let ro = dir + "/ro"
            try FileManager.default.createDirectory(atPath: ro, withIntermediateDirectories: true)
            chmod(ro, 0o555)
            defer { chmod(ro, 0o755) }
            assertCleanFailure(try run(["segment", Self.chelsea, "-m", model, "-o", ro]), mentions: "ro", keep: keep)
        }
    }

    func testDuplicateStemsAreRefusedBeforeAnythingRuns() throws {
        for sub in ["a", "b"] { try FileManager.default.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true) }
        try FileManager.default.copyItem(atPath: Self.chelsea, toPath: dir + "/a/x.png")
        try FileManager.default.copyItem(atPath: Self.testorig, toPath: dir + "/b/x.jpg")
        let keep = ["a/x.png", "b/x.jpg", "tiny.safetensors"]
        for cmd in ["segment", "depth", "normals"] {
            for force in [false, true] {
                let r = try run([cmd, dir + "/a", dir + "/b/x.jpg", "-m", model, "-o", dir + "/out"] + (force ? ["--force"] : []))
                assertCleanFailure(r, mentions: "same outputs", keep: keep)
            }
        }
        // The same file named twice (directly and through its folder) is processed once.
        let r = try run(["segment", dir + "/a", dir + "/a/x.png", "-m", model, "-o", dir + "/out", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try jsonLines(r.stdout).count, 1)
    }

    func testOversizedImagesAreRefusedFromTheHeaderWithoutDecoding() throws {
        // A valid 10000x10000 PNG (100 megapixels, the default limit): the model's max_span refuses it from the header.
        let big = dir + "/big.png"
        let png = try PNGEncoder.encodeGray8(width: 10000, height: 10000, pixels: [UInt8](repeating: 7, count: 100_000_000))
        try png.write(to: URL(fileURLWithPath: big))
        var before = rusage()
        getrusage(__rusage_who_t(RUSAGE_CHILDREN.rawValue), &before)
        let keep = ["big.png", "tiny.safetensors"]
        for cmd in ["segment", "depth", "normals"] {
            let r = try run([cmd, big, "-m", model, "-o", dir + "/out"])
            assertCleanFailure(r, mentions: "max_span", keep: keep)
        }
        var after = rusage()
        getrusage(__rusage_who_t(RUSAGE_CHILDREN.rawValue), &after)
        if before.ru_maxrss < 600_000 {   // KiB; only meaningful when no earlier child used more
            XCTAssertLessThan(after.ru_maxrss, 600_000, "a refused image still made the process grow to \(after.ru_maxrss) KiB")
        }
        // --max-pixels refuses from the header too, naming the limit.
        assertCleanFailure(try run(["segment", Self.chelsea, "-m", model, "-o", dir + "/out", "--max-pixels", "1000"]),
                           mentions: "limit of 1000 pixels", keep: keep)
        let bomb = Self.shared.appendingPathComponent("data/corrupt/png_bomb_100000x100000.png").path
        if FileManager.default.fileExists(atPath: bomb) {
            assertCleanFailure(try run(["segment", bomb, "-m", model, "-o", dir + "/out"]), mentions: "exceeds the limit", keep: keep)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out"))
        // The API check, from sizes alone.
        let seg = try Segmenter(modelPath: model)
        XCTAssertNoThrow(try seg.checkImageSize(width: 451, height: 300))
        XCTAssertThrowsError(try seg.checkImageSize(width: 10000, height: 10000)) { e in
            guard case PolyMaXError.unsupportedInputSize = e else { return XCTFail("\(e)") }
            // The finest axial stage (stride 16 with kMaX's layer types) is named, with the largest side that fits.
            XCTAssertTrue("\(e)".contains("stride-16") && "\(e)".contains("4080"), "\(e)")
        }
        XCTAssertThrowsError(try seg.segment(try RGBImage(width: 4200, height: 8, fill: (1, 2, 3)))) { e in
            XCTAssertTrue("\(e)".contains("max_span"), "\(e)")
        }
    }

    func testBadOptionsAreUsageErrors() throws {
        for args in [["segment", Self.chelsea, "-m", model, "--max-pixels", "0"], ["depth", Self.chelsea, "-m", model, "--max-pixels", "-5"],
                     ["normals", Self.chelsea, "-m", model, "--max-pixels", "0"], ["inspect", Self.chelsea, "--max-pixels", "0"],
                     ["segment", Self.chelsea, "-m", model, "--format", "jpg"], ["depth", Self.chelsea, "-m", model, "--colormap", "jet"],
                     ["segment", Self.chelsea, "-m", model, "--alpha", "2"], ["segment"], ["segment", "--no-such-flag", Self.chelsea]] {
            let r = try run(args + ["-o", dir + "/out"])
            XCTAssertEqual(r.status, 64, "\(args): exit \(r.status) \(r.stderr)")
            XCTAssertFalse(r.stderr.isEmpty)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out"))
        let h = try run(["segment", "--help"])
        XCTAssertEqual(h.status, 0)
        XCTAssertTrue(h.stdout.contains("Exit codes: 0") && h.stdout.contains("64 usage error"), h.stdout)
    }

    func testClassNamesWithControlCharactersAreEscaped() throws {
        let names = ["sky\u{1b}[2J", "tree\nline", "cat\"quote\\", "road\t", "other\u{7f}"]
        let m = try writeModel(dir + "/ctl.safetensors", config: config(task: "segmentation", classes: names))
        let r = try run(["segment", Self.chelsea, "-m", m, "-o", dir + "/out"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertFalse(r.stdout.contains("\u{1b}") || r.stdout.contains("\t") || r.stdout.contains("\u{7f}"), r.stdout)
        let shares = try Segmenter(modelPath: m).segment(try ImageDecoder.decode(path: Self.chelsea).image).classShares
        XCTAssertEqual(r.stdout.split(separator: "\n").count, 1 + shares.filter { $0 > 0 }.count, r.stdout)
        let j = try run(["segment", Self.chelsea, "-m", m, "-o", dir + "/out2", "--json"])
        XCTAssertEqual(j.status, 0, j.stderr)
        let objs = try jsonLines(j.stdout)
        XCTAssertEqual(objs.count, 1)
        let got = Set((objs[0]["classes"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String })
        XCTAssertFalse(got.isEmpty)
        XCTAssertTrue(got.isSubset(of: Set(names)), "\(got)")
    }

    // MARK: - default model

    func testDefaultModelIsTheFirstThatServesTheTask() throws {
        let work = dir + "/work"
        let models = work + "/Models"
        try FileManager.default.createDirectory(atPath: models, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.chelsea, toPath: work + "/c.png")
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: models + "/0-broken.safetensors"))
        try writeModel(models + "/1-depth.safetensors", config: config(task: "depth", classes: ["d0", "d1", "d2", "d3", "d4"]))
        try writeModel(models + "/2-seg.safetensors", readout: false, config: config(task: "segmentation", classes: ["s0", "s1", "s2", "s3", "s4"]))
        try writeModel(models + "/3-multi.safetensors", config: config(task: "multitask", classes: ["m0", "m1", "m2", "m3", "m4"]))
        XCTAssertEqual(try ModelCapabilities.defaultModel(in: models, for: .segmentation), models + "/2-seg.safetensors")
        XCTAssertEqual(try ModelCapabilities.defaultModel(in: models, for: .depth), models + "/1-depth.safetensors")
        XCTAssertEqual(try ModelCapabilities.defaultModel(in: models, for: .normals), models + "/1-depth.safetensors")
        let r = try run(["segment", "c.png", "-o", "out", "--json"], cwd: work)
        XCTAssertEqual(r.status, 0, r.stderr)
        let names = (try jsonLines(r.stdout).first?["classes"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        XCTAssertFalse(names.isEmpty)
        XCTAssertTrue(names.allSatisfy { $0.hasPrefix("s") }, "\(names)")
        XCTAssertEqual(try run(["depth", "c.png", "-o", "out"], cwd: work).status, 0)
        XCTAssertEqual(try run(["normals", "c.png", "-o", "out"], cwd: work).status, 0)
        XCTAssertEqual(files(under: work + "/out"), ["c.depth.png", "c.depth16.png", "c.labels.png", "c.normals.png"])

        // Only a segmentation model: depth and normals fail with one line naming what is missing.
        try FileManager.default.removeItem(atPath: models + "/1-depth.safetensors")
        try FileManager.default.removeItem(atPath: models + "/3-multi.safetensors")
        for (cmd, want) in [("depth", "depth read-out"), ("normals", "surface-normal read-out")] {
            let f = try run([cmd, "c.png", "-o", "out2"], cwd: work)
            XCTAssertEqual(f.status, 1, f.stderr)
            XCTAssertEqual(f.errLines.count, 1, f.stderr)
            XCTAssertTrue(f.stderr.contains(want) && f.stderr.contains("-m"), f.stderr)
        }
        try FileManager.default.removeItem(atPath: models)
        let none = try run(["segment", "c.png", "-o", "out2"], cwd: work)
        XCTAssertEqual(none.status, 1)
        XCTAssertEqual(none.errLines.count, 1, none.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: work + "/out2"))
    }
}
