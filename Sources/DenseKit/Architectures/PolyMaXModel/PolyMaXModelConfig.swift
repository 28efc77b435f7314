import Foundation

/// How an image becomes the network input (the `preprocess` object of a PolyMaX model file).
///
/// JSON keys:
/// - `input_size`: `[H, W]`: the image is scaled (aspect kept, bilinear, half-pixel centres) to fit inside
///   `H x W`, then padded bottom/right to exactly `H x W`; or
/// - `size_multiple`: `m` (default 32 when neither key is given): no scaling, the image is padded bottom/right
///   to the next multiples of `m`;
/// - `resize`: `"letterbox"` (the only rule);
/// - `mean`, `std`: 3 values each, per input channel, in 0...1 units (if any value is above 1 all six are read as
///   0...255 units and divided by 255; kMaX's `127.5` works). Defaults: ImageNet;
/// - `channel_order`: `"rgb"` (default) or `"bgr"`: the order of the 3 input planes;
/// - `pad_value`: the value written into the padding of the NORMALISED tensor (default 0, as kMaX).
public struct PolyMaXPreprocess: Sendable, Equatable {
    /// The size rule.
    public enum Sizing: Sendable, Equatable {
        /// Pad (no scaling) to multiples of this value.
        case multiple(Int)
        /// Scale to fit inside, then pad to exactly `height x width`.
        case fixed(height: Int, width: Int)
    }
    /// The size rule.
    public var sizing: Sizing = .multiple(32)
    /// Per-channel mean in 0...1 units, in `channelOrder`.
    public var mean: [Float] = ImageTensor.imagenetMean
    /// Per-channel standard deviation in 0...1 units, in `channelOrder`.
    public var std: [Float] = ImageTensor.imagenetStd
    /// True for BGR input planes.
    public var bgr = false
    /// Value of the padding in the normalised tensor.
    public var padValue: Float = 0

    /// Defaults: `size_multiple` 32, ImageNet mean/std, RGB, pad 0.
    public init() {}

    /// Parses the `preprocess` object (keys above); a missing object gives the defaults.
    /// - Throws: `ModelConfigError.invalidField` naming the field.
    public init(json: JSONValue?) throws {
        guard let json, !json.isNull else { return }
        let r = try ConfigReader(json, model: "polymax preprocess")
        func fail(_ f: String, _ m: String) -> ModelConfigError { .invalidField(model: "polymax preprocess", field: f, message: m) }
        if r.has("input_size") {
            let s = try r.ints("input_size", count: 2)
            guard s.allSatisfy({ (32...16384).contains($0) }) else { throw fail("input_size", "sides must be 32...16384, got \(s)") }
            sizing = .fixed(height: s[0], width: s[1])
        } else if r.has("size_multiple") {
            let m = try r.int("size_multiple")
            guard (1...1024).contains(m) else { throw fail("size_multiple", "must be 1...1024, got \(m)") }
            sizing = .multiple(m)
        }
        let resize = try r.string("resize", default: "letterbox")
        guard resize == "letterbox" else { throw fail("resize", "only \"letterbox\" is supported, got \"\(resize)\"") }
        func floats(_ f: String, _ d: [Float]) throws -> [Float] {
            guard r.has(f) else { return d }
            guard let a = r.object[f]?.array, a.count == 3 else { throw fail(f, "expected 3 numbers") }
            return try a.map { v in
                guard let x = v.double, x.isFinite, Float(x).isFinite, abs(x) <= 1e6 else {
                    throw fail(f, "expected 3 finite numbers of magnitude at most 1e6")
                }
                return Float(x)
            }
        }
        var m = try floats("mean", mean), s = try floats("std", std)
        if (m + s).contains(where: { $0 > 1 }) { m = m.map { $0 / 255 }; s = s.map { $0 / 255 } }
        guard s.allSatisfy({ $0 >= 1e-6 }) else { throw fail("std", "values must be at least 1e-6 (in 0...1 units)") }
        mean = m; std = s
        let order = try r.string("channel_order", default: "rgb")
        guard order == "rgb" || order == "bgr" else { throw fail("channel_order", "\"rgb\" or \"bgr\", got \"\(order)\"") }
        bgr = order == "bgr"
        let pv = try r.double("pad_value", default: 0)
        guard pv.isFinite, abs(pv) <= 1e6 else { throw fail("pad_value", "must be finite, of magnitude at most 1e6") }
        padValue = Float(pv)
    }
}

/// What a full model predicts (`task` of the model file).
public enum PolyMaXTask: String, Sendable, CaseIterable {
    /// Semantic segmentation (class scores and labels).
    case segmentation
    /// Depth (needs `readout.depth.*`).
    case depth
    /// Surface normals (needs `readout.normals.*`).
    case normals
    /// Several of the above.
    case multitask
}

/// The `densekit.config` of a `polymax` model file: backbone, head, task, preprocessing and label metadata.
///
/// ```json
/// {"backbone": {"architecture": "vovnet", ...VoVNetConfig keys...},
///  "head": {...PolyMaXHeadConfig keys...},
///  "task": "segmentation" | "depth" | "normals" | "multitask",
///  "preprocess": {"size_multiple": 32, "resize": "letterbox", "mean": [...], "std": [...],
///                 "channel_order": "rgb", "pad_value": 0},
///  "classes": ["road", ...], "palette": [[128, 64, 128], ...], "depth_units": "metres" | "relative"}
/// ```
/// The backbone must output `feat4`, `feat8`, `feat16`, `feat32` (its `out_indices` default to `[1, 2, 3, 4]`)
/// whose widths equal the head's `in_channels`; its tensors are read under `key_prefix` (default `backbone.`).
/// `classes` (default `class_0` ...) and `palette` (default: a fixed colour table) must have `num_classes` entries.
public struct PolyMaXModelConfig: Sendable {
    /// The backbone (VoVNet) config, `keyPrefix` set.
    public var backbone: VoVNetConfig
    /// The head config.
    public var head: PolyMaXHeadConfig
    /// The task.
    public var task: PolyMaXTask
    /// Preprocessing.
    public var preprocess: PolyMaXPreprocess
    /// Class names, `head.numClasses` entries.
    public var classes: [String]
    /// Colour per class `(r, g, b)`, `head.numClasses` entries.
    public var palette: [[UInt8]]
    /// Units of depth: `metres` or `relative`.
    public var depthUnits: String

    /// Parses and validates the whole config (nothing is allocated for weights).
    /// - Throws: `ModelConfigError.invalidField` naming the field.
    public init(json: JSONValue) throws {
        let r = try ConfigReader(json, model: "polymax")
        func fail(_ f: String, _ m: String) -> ModelConfigError { .invalidField(model: "polymax", field: f, message: m) }
        guard let bj = r.object["backbone"], let bo = bj.object else { throw fail("backbone", "missing object") }
        let arch = bo["architecture"]?.string ?? "vovnet"
        guard arch == "vovnet" else { throw fail("backbone.architecture", "only \"vovnet\" is supported, got \"\(arch)\"") }
        var bobj = bo
        bobj["architecture"] = nil
        var b = try VoVNetConfig(json: .object(bobj))
        if b.keyPrefix == nil { b.keyPrefix = "backbone." }
        guard b.featuresOnly else { throw fail("backbone.features_only", "the backbone must output features") }
        guard let hj = r.object["head"], hj.object != nil else { throw fail("head", "missing object") }
        let h = try PolyMaXHeadConfig(json: hj)
        let names = b.outputNames
        for (i, want) in ["feat4", "feat8", "feat16", "feat32"].enumerated() {
            guard let j = names.firstIndex(of: want) else {
                throw fail("backbone.out_indices", "the backbone must output \(want) (outputs: \(names.joined(separator: ", ")))")
            }
            let ch = b.featureInfo(b.outIndices[j]).channels
            guard ch == h.pixelDecoder.inChannels[i] else {
                throw fail("head.in_channels", "res\(i + 2) expects \(h.pixelDecoder.inChannels[i]) channels but backbone \(want) has \(ch)")
            }
        }
        let t = try r.string("task", default: "segmentation")
        guard let task = PolyMaXTask(rawValue: t) else {
            throw fail("task", "unknown task \"\(t)\" (known: \(PolyMaXTask.allCases.map { $0.rawValue }.joined(separator: ", ")))")
        }
        let pre = try PolyMaXPreprocess(json: r.object["preprocess"])
        let c = h.numClasses
        var classes = (0..<c).map { "class_\($0)" }
        if r.has("classes") {
            guard let a = r.object["classes"]?.array else { throw fail("classes", "expected an array of strings") }
            let s = a.compactMap { $0.string }
            guard s.count == a.count, s.count == c else { throw fail("classes", "expected \(c) strings (num_classes), got \(a.count) entries") }
            classes = s
        }
        var palette = Self.defaultPalette(count: c)
        if r.has("palette") {
            guard let a = r.object["palette"]?.array, a.count == c else { throw fail("palette", "expected \(c) [r, g, b] entries (num_classes)") }
            palette = try a.enumerated().map { (i, e) in
                guard let v = e.array, v.count == 3 else { throw fail("palette", "entry \(i) is not [r, g, b]") }
                return try v.map { x in
                    guard let n = x.int, (0...255).contains(n) else { throw fail("palette", "entry \(i): values must be integers 0...255") }
                    return UInt8(n)
                }
            }
        }
        let units = try r.string("depth_units", default: "metres")
        guard units == "metres" || units == "relative" else { throw fail("depth_units", "\"metres\" or \"relative\", got \"\(units)\"") }
        backbone = b; head = h; self.task = task; preprocess = pre; self.classes = classes; self.palette = palette; depthUnits = units
    }

    /// A deterministic, well-spread colour table (`count` entries; Pascal VOC's bit-interleaving rule).
    public static func defaultPalette(count: Int) -> [[UInt8]] {
        (0..<max(0, count)).map { i in
            var r = 0, g = 0, b = 0, c = i
            for j in 0..<8 {
                r |= ((c >> 0) & 1) << (7 - j); g |= ((c >> 1) & 1) << (7 - j); b |= ((c >> 2) & 1) << (7 - j)
                c >>= 3
            }
            return [UInt8(r), UInt8(g), UInt8(b)]
        }
    }
}
