import Foundation

/// A model that maps one preprocessed image tensor to named output tensors.
///
/// Every architecture's loaded network conforms (VoVNet now; BiFormer, ViT and the
/// PolyMaX head later). Implementations are immutable and safe to call from several
/// tasks at once.
public protocol DenseModel: Sendable {
    /// Architecture name as stored in `densekit.architecture` (e.g. `vovnet`).
    var architecture: String { get }
    /// Channels the input must have (3 for RGB).
    var inputChannels: Int { get }
    /// Output names, in order.
    var outputNames: [String] { get }
    /// Runs the model on `input` `[N, inputChannels, H, W]` (NCHW float32, preprocessed).
    /// - Throws: `GraphError` when the input shape does not fit.
    func run(_ input: Tensor) throws -> [String: Tensor]
    /// Per-node timing of one run after `warmup` untimed runs, and the memory plan.
    func profile(input: Tensor, warmup: Int) throws -> ProfileReport
}

extension VoVNet: DenseModel {
    /// `vovnet`.
    public var architecture: String { "vovnet" }
    /// `in_chans` of the config.
    public var inputChannels: Int { config.inChannels }
}

/// Loads DenseKit model files: safetensors whose metadata says what to build.
///
/// Metadata keys (all values are strings):
/// - `densekit.format`: `"1"`;
/// - `densekit.architecture`: `vovnet`, `biformer` or `vit` (backbones), `polymax` (full models, below);
/// - `densekit.config`: the architecture's config as JSON (the golden-case attrs'
///   keys; for VoVNet `stem_chs`, `stage_conv_chs`, ... or `{"preset": "ese_vovnet39b"}`; for BiFormer
///   `BiFormerConfig(json:)`'s keys, e.g. `{"preset": "tiny", "variant": "dense"}`; for ViT `ViTConfig(json:)`'s
///   keys: `embed_dim`, `depth`, `num_heads`, `img_size`, `pos_embed_grid`, and for token clustering `alpha`,
///   `beta`, `cluster_grid`, `window`, `iters`, `temperature`, `recon_k`, `recon_temperature`; timm tensor names).
/// Files written by `tools/convert.py` carry these. A bare `config` key is accepted too.
///
/// Full dense-prediction models (`densekit.architecture` = `polymax`, loaded by `loadPolyMaX(path:)`):
/// `densekit.config` is the JSON of `PolyMaXModelConfig`:
/// `{"backbone": {"architecture": "vovnet", ...VoVNet config...}, "head": {...PolyMaXHeadConfig keys...},
///   "task": "segmentation"|"depth"|"normals"|"multitask",
///   "preprocess": {"size_multiple": 32 | "input_size": [H, W], "resize": "letterbox", "mean": [3], "std": [3],
///                  "channel_order": "rgb"|"bgr", "pad_value": 0},
///   "classes": [names], "palette": [[r, g, b], ...], "depth_units": "metres"|"relative"}`;
/// tensors: the backbone's timm names under `backbone.`, the head's spec-section-8 names (`pixel_decoder.*`,
/// `predictor.*`), optional read-outs `readout.depth.{weight,bias}` and `readout.normals.{weight,bias}`.
public enum ModelFile {
    /// Architectures this build can load.
    public static let architectures = ["vovnet", "biformer", "vit", "polymax"]

    /// Loads the model at `path`.
    /// - Throws: `WeightsError` for a damaged file; `ModelConfigError` when the metadata
    ///   is missing or invalid, the architecture is unknown, or tensors do not fit the config
    ///   (the error names the keys).
    public static func load(path: String) throws -> any DenseModel {
        let file = try SafeTensorsFile(path: path)
        let arch = file.metadata["densekit.architecture"] ?? (file.metadata["config"] != nil ? "vovnet" : nil)
        guard let arch else {
            throw ModelConfigError.invalidField(model: "model", field: "densekit.architecture",
                                                message: "\(path) has no densekit.architecture metadata (convert it with tools/convert.py)")
        }
        guard let text = file.metadata["densekit.config"] ?? file.metadata["config"] else {
            throw ModelConfigError.invalidField(model: arch, field: "densekit.config", message: "\(path) has no config metadata")
        }
        let json: JSONValue
        do { json = try JSONValue.parse(text) } catch {
            throw ModelConfigError.invalidField(model: arch, field: "densekit.config", message: "\(path): \(error)")
        }
        switch arch {
        case "polymax":
            return try loadPolyMaX(file: file, path: path, json: json)
        case "vovnet":
            let config = try VoVNetConfig(json: json)
            return try VoVNet(config: config, weights: SafeTensorsWeights(file: file))
        case "biformer":
            let config = try BiFormerConfig(json: json)
            return try BiFormer(config: config, weights: SafeTensorsWeights(file: file))
        case "vit":
            let config = try ViTConfig(json: json)
            return try ViT(config: config, weights: SafeTensorsWeights(file: file))
        default:
            throw ModelConfigError.invalidField(model: arch, field: "densekit.architecture",
                                                message: "\(path): unknown architecture '\(arch)' (known: \(architectures.joined(separator: ", ")))")
        }
    }

    /// Loads a full `polymax` model (backbone + head + read-outs) from `path`.
    /// - Throws: `WeightsError` for a damaged file; `ModelConfigError` when the metadata is missing or invalid,
    ///   the architecture is not `polymax`, or tensors do not fit the config (the error names the keys).
    public static func loadPolyMaX(path: String) throws -> PolyMaXModel {
        let file = try SafeTensorsFile(path: path)
        let json = try polyMaXConfigJSON(file, path: path)
        return try loadPolyMaX(file: file, path: path, json: json)
    }

    /// The parsed `densekit.config` of a full `polymax` model file (shared by the loader and `ModelCapabilities`).
    /// - Throws: `ModelConfigError` when the file is not a `polymax` model or its config is missing or not JSON.
    static func polyMaXConfigJSON(_ file: SafeTensorsFile, path: String) throws -> JSONValue {
        let arch = file.metadata["densekit.architecture"] ?? "(none)"
        guard arch == "polymax" else {
            throw ModelConfigError.invalidField(model: "model", field: "densekit.architecture",
                                                message: "\(path) holds a '\(arch)' model, not a full polymax dense-prediction model")
        }
        guard let text = file.metadata["densekit.config"] else {
            throw ModelConfigError.invalidField(model: "polymax", field: "densekit.config", message: "\(path) has no config metadata")
        }
        let json: JSONValue
        do { json = try JSONValue.parse(text) } catch {
            throw ModelConfigError.invalidField(model: "polymax", field: "densekit.config", message: "\(path): \(error)")
        }
        return json
    }

    static func loadPolyMaX(file: SafeTensorsFile, path: String, json: JSONValue) throws -> PolyMaXModel {
        let config = try PolyMaXModelConfig(json: json)
        return try PolyMaXModel(config: config, weights: SafeTensorsWeights(file: file))
    }
}
