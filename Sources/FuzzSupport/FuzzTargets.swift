import DenseKit
import Foundation

/// The bodies of the fuzz targets (`Sources/Fuzz*`), shared with the regression tests that replay
/// `Tests/FuzzCorpus` and `Tests/FuzzCrashes` through the same code.
///
/// Every input must end in a value or a thrown error whose description is one line; anything else (a trap, an
/// out-of-bounds access, an allocation past libFuzzer's `-rss_limit_mb` / `-malloc_limit_mb`, a hang past its
/// `-timeout`) is a finding. The invariants below turn silent wrong answers into findings too.
public enum FuzzTargets {
    /// Pixel cap used while fuzzing (the default cap of 100 Mpx is tested on its own; 4 Mpx keeps runs fast).
    public static let maxPixels = 1 << 22
    /// Models are built (with random weights) only below this many parameter bytes, and planned only when the
    /// estimate for a small input stays below `maxModelMemory`.
    public static let maxModelParameterBytes = 8 << 20
    public static let maxModelMemory = 96 << 20

    /// A finding that is not a crash by itself: a wrong answer or a malformed error.
    static func invariant(_ ok: @autoclosure () -> Bool, _ what: @autoclosure () -> String) {
        if !ok() { fatalError("fuzz invariant violated: \(what())") }
    }

    /// Every refusal must be one readable line.
    static func checkError(_ error: Error) {
        let text = "\(error)"
        invariant(!text.isEmpty && !text.contains("\n") && !text.contains("\r"), "error is not one line: \(text.debugDescription)")
    }

    static func attempt<T>(_ body: () throws -> T) -> T? {
        do { return try body() } catch { checkError(error); return nil }
    }

    static func data(_ p: UnsafePointer<UInt8>?, _ n: Int) -> Data {
        guard let p, n > 0 else { return Data() }
        return Data(bytes: p, count: n)
    }

    // MARK: FuzzImage

    /// Format detection, header probe, RGB8 decode (with and without the EXIF orientation) and the gray/palette
    /// sample decode of PNG / JPEG bytes.
    public static func image(_ p: UnsafePointer<UInt8>?, _ n: Int) -> CInt { image(data(p, n)); return 0 }

    public static func image(_ data: Data) {
        let format = ImageFormat.detect(data)
        let info = attempt { try ImageDecoder.probe(data: data, name: "fuzz") }
        if info != nil { invariant(format != nil, "probe accepted bytes of no known format") }
        let options = ImageDecodeOptions(maxPixels: maxPixels, applyOrientation: data.count % 2 == 0)
        if let (img, i) = attempt({ try ImageDecoder.decode(data: data, name: "fuzz", options: options) }) {
            invariant(img.width > 0 && img.height > 0 && img.pixels.count == img.width * img.height * 3, "decoded image size")
            invariant(i.storedWidth * i.storedHeight <= maxPixels, "pixel cap ignored")
            if options.applyOrientation { invariant(img.width == i.width && img.height == i.height, "upright size differs from the header") }
            invariant(img.channelMeans().allSatisfy { $0 >= 0 && $0 <= 255 }, "channel means out of range")
        }
        if let g = attempt({ try ImageDecoder.decodeGray(data: data, name: "fuzz", options: options) }) {
            invariant(g.values.count == g.width * g.height, "gray sample count")
        }
    }

    // MARK: FuzzSafeTensors

    /// The safetensors reader: header length, JSON header, dtypes, shapes, offsets; then the summary `info` prints
    /// and every tensor read as float and as integers.
    public static func safeTensors(_ p: UnsafePointer<UInt8>?, _ n: Int) -> CInt { safeTensors(data(p, n)); return 0 }

    public static func safeTensors(_ data: Data) {
        guard let file = attempt({ try SafeTensorsFile(data: data, name: "fuzz.safetensors") }) else { return }
        summarize(file)
        for name in file.tensorNames.prefix(256) {
            let info = file.info(name)
            invariant(info != nil, "listed tensor without an entry")
            if let t = attempt({ try file.floatTensor(name) }) {
                invariant(t.shape == info?.shape && t.count == info?.elementCount, "float tensor shape")
            }
            if let t = attempt({ try file.indexTensor(name) }) {
                invariant(t.shape == info?.shape, "index tensor shape")
            }
        }
    }

    static func summarize(_ file: SafeTensorsFile) {
        let s = WeightsSummary(file: file)
        _ = s.text
        invariant((try? JSONValue.parse(s.jsonText)) != nil, "info --json is not JSON: \(s.jsonText.prefix(200))")
    }

    // MARK: FuzzModelConfig

    /// Architectures selected by the first byte of a FuzzModelConfig input; the rest is the `densekit.config` JSON.
    public static let configArchitectures = ["vovnet", "biformer", "polymax", "vit", "graph"]

    /// The model-config path: the first byte picks the architecture (`configArchitectures`, modulo), the rest is the
    /// JSON of `densekit.config`. The config is parsed and validated; when it is small it is built with random
    /// weights, its memory estimate and execution plan are made for small inputs, and the smallest ones run once.
    public static func modelConfig(_ p: UnsafePointer<UInt8>?, _ n: Int) -> CInt { modelConfig(data(p, n)); return 0 }

    public static func modelConfig(_ data: Data) {
        guard let first = data.first else { return }
        let arch = configArchitectures[Int(first) % configArchitectures.count]
        let text = String(decoding: data.dropFirst(), as: UTF8.self)
        guard let json = attempt({ try JSONValue.parse(text) }) else { return }
        _ = json.jsonText
        switch arch {
        case "vovnet":
            guard let c = attempt({ try VoVNetConfig(json: json) }) else { return }
            guard c.parameterBytes <= maxModelParameterBytes,
                  let net = attempt({ try VoVNet(config: c, weights: VoVNetRandomWeights.make(c, seed: 1)) }) else { return }
            for side in [1, 7, 32, 64] {
                guard let est = attempt({ try net.memoryEstimate(inputShape: [1, c.inChannels, side, side]) }) else { continue }
                if est.totalBytes <= maxModelMemory / 4 && side <= 32 {
                    _ = attempt { try net.run(Tensor(zeros: [1, c.inChannels, side, side])) }
                }
            }
        case "biformer":
            guard let c = attempt({ try BiFormerConfig(json: json) }) else { return }
            guard c.parameterCount <= maxModelParameterBytes / 4 else { return }
            guard let net = attempt({ try BiFormer(config: c, weights: c.randomWeights(seed: 1)) }) else { return }
            for side in [1, 17, 32] {
                _ = attempt { try c.checkInputSize(height: side, width: side) }
            }
            _ = net
        case "polymax":
            guard let c = attempt({ try PolyMaXModelConfig(json: json) }) else { return }
            guard c.backbone.parameterBytes <= maxModelParameterBytes, c.head.parameterBytes <= maxModelParameterBytes else { return }
            var w = TensorDictionary()
            let bb = VoVNetRandomWeights.make(c.backbone, seed: 1)
            let prefix = c.backbone.keyPrefix ?? "backbone."
            for k in bb.keys { if let t = try? bb.tensor(k) { w[k.hasPrefix(prefix) ? k : prefix + k] = t } }
            let hd = PolyMaXWeightLayout.randomWeights(config: c.head, seed: 2, readout: true)
            for k in hd.keys { if let t = try? hd.tensor(k) { w[k] = t } }
            guard let model = attempt({ try PolyMaXModel(config: c, weights: w) }) else { return }
            for (wd, ht) in [(1, 1), (33, 17), (64, 48), (4000, 3000), (1 << 20, 3)] {
                if let est = attempt({ try model.memoryEstimate(width: wd, height: ht) }) {
                    invariant(est.totalBytes > 0, "empty memory estimate")
                    _ = attempt { try est.check(limitBytes: maxModelMemory, what: "fuzz") }
                }
            }
        case "vit":
            _ = attempt { try ViTConfig(json: json) }
        default:
            guard let g = attempt({ try GraphConfig.build(json: json, weights: TensorDictionary()) }) else { return }
            for shape in [[1, 3, 16, 16], [1, 1, 1, 1], [2, 5, 9, 3]] {
                guard let plan = attempt({ try g.plan(inputShapes: Dictionary(uniqueKeysWithValues: g.inputNames.map { ($0, shape) })) })
                else { continue }
                if plan.memory.arenaBytes <= maxModelMemory / 4 {
                    let inputs = Dictionary(uniqueKeysWithValues: g.inputNames.map { ($0, Tensor(zeros: shape)) })
                    _ = attempt { try plan.run(inputs) }
                }
            }
        }
    }

    // MARK: FuzzInspect

    /// The `inspect` and `info` commands' library path on a real file: the bytes are written to a temporary file,
    /// then read as an image report (text and JSON), as a safetensors summary, through the model-file loader
    /// (metadata, config, weights) and the default-model check of the pipelines.
    public static func inspect(_ p: UnsafePointer<UInt8>?, _ n: Int) -> CInt { inspect(data(p, n)); return 0 }

    static let scratchFolder: String = {
        let dir = NSTemporaryDirectory() + "/densekit-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()

    public static func inspect(_ data: Data) {
        let path = scratchFolder + "/input.safetensors"
        guard FileManager.default.createFile(atPath: path, contents: data) else { return }
        defer { try? FileManager.default.removeItem(atPath: path) }
        if let r = attempt({ try ImageReport(path: path, options: ImageDecodeOptions(maxPixels: maxPixels)) }) {
            _ = r.text
            invariant((try? JSONValue.parse(r.jsonText)) != nil, "inspect --json is not JSON")
        }
        if let file = attempt({ try SafeTensorsFile(path: path) }) {
            summarize(file)
            // A model file only loads when its weights are in the file, so what it builds is bounded by the file;
            // keep fuzzing fast by loading only small ones.
            if data.count <= 4 << 20 {
                _ = attempt { try ModelFile.load(path: path) }
                _ = attempt { try ModelCapabilities(path: path) }
            }
        }
    }
}
