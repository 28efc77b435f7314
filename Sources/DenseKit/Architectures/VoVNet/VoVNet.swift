import Foundation

/// A loaded VoVNet backbone or classifier, ready to run (spec `vovnet.md`).
///
/// Built once from a config and weights (BN folded, weights packed); immutable and
/// `Sendable`: one instance serves concurrent calls, each with its own activation arena.
///
/// ```swift
/// let net = try VoVNet(config: try VoVNetPresets.config(named: "ese_vovnet19b_dw"),
///                      weights: try SafeTensorsWeights(path: "ese_vovnet19b_dw.safetensors"))
/// let feats = try net.run(image)     // ["feat4": [1, 256, H/4, W/4], ..., "feat32": ...]
/// ```
public final class VoVNet: Sendable {
    /// The effective config (key style and prefix filled in; detectron2 weights set `attnAllBlocks`).
    public let config: VoVNetConfig
    /// The layer graph (input `x`).
    public let graph: Graph

    /// Builds the network.
    /// - Parameters:
    ///   - config: the architecture (a preset or a parsed JSON config).
    ///   - weights: timm or detectron2 tensor names, optionally prefixed.
    /// - Throws: `ModelConfigError` (config, missing / unexpected / wrong-shape tensors, naming
    ///   the keys), `GraphError`, `WeightsError`.
    public init(config: VoVNetConfig, weights: any WeightSource) throws {
        let (c, w) = try VoVNetBuilder.prepare(config: config, weights: weights)
        self.config = c
        self.graph = try VoVNetBuilder.build(resolvedConfig: c, weights: w)
    }

    /// Loads a safetensors checkpoint. Without `config`, the file's metadata must hold a
    /// `config` JSON object (VoVNet attrs, or `{"preset": "ese_vovnet19b_dw", ...}`).
    /// - Throws: `WeightsError` for the file, `ModelConfigError` for the config or the weights.
    public convenience init(path: String, config: VoVNetConfig? = nil) throws {
        let file = try SafeTensorsFile(path: path)
        let cfg: VoVNetConfig
        if let config {
            cfg = config
        } else {
            guard let text = file.metadata["config"] else {
                throw ModelConfigError.invalidField(model: "vovnet", field: "config", message: "\(path) has no \"config\" metadata; pass a config")
            }
            let json: JSONValue
            do { json = try JSONValue.parse(text) } catch {
                throw ModelConfigError.invalidField(model: "vovnet", field: "config", message: "\(error)")
            }
            cfg = try VoVNetConfig(json: json)
        }
        try self.init(config: cfg, weights: SafeTensorsWeights(file: file))
    }

    /// Output names, in order (`feat2`...`feat32` per `out_indices`, or `logits`).
    public var outputNames: [String] { graph.outputNames }

    /// Runs the network on `input` `[N, in_chans, H, W]` (NCHW float32, preprocessed).
    /// - Returns: `feat<reduction>` `[N, C_i, H_i, W_i]` (sizes per spec 1.7) or `logits` `[N, num_classes]`.
    /// - Throws: `GraphError` when the input has another channel count or is too small
    ///   (every pool needs at least 2 rows and columns: H, W >= 29 for the whole network).
    public func run(_ input: Tensor) throws -> [String: Tensor] {
        try graph.run(["x": input])
    }

    /// The execution plan for an input shape (shapes of every value, memory figures).
    /// - Throws: as `run(_:)`.
    public func plan(inputShape: [Int]) throws -> ExecutionPlan {
        try graph.plan(inputShapes: ["x": inputShape])
    }

    /// Per-node timing (op, output shape, ms, GFLOP/s) of one run after `warmup` untimed
    /// runs, and the memory plan (planned activation bytes vs their sum).
    /// - Throws: as `run(_:)`.
    public func profile(input: Tensor, warmup: Int = 1) throws -> ProfileReport {
        try graph.profile(inputs: ["x": input], warmup: warmup)
    }
}
