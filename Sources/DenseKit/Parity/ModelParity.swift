import Foundation

/// Parity handlers for whole architectures and their blocks (`vovnet`, `biformer`,
/// `tokencluster`, `kmax` families), keyed `family/target`.
///
/// - `vovnet/vovnet`: `VoVNetConfig(json: attrs)` + the case's `param.*` tensors through
///   `VoVNet`; input `x`, outputs `feat<reduction>` or `logits`.
/// - `vovnet/osa_block`: one OSA block (`VoVNetBuilder.buildBlock`); input `x`, output `y`.
enum ModelParity {
    static let handlers: [String: ParityHandler] = [
        "vovnet/vovnet": vovnet,
        "vovnet/osa_block": osaBlock,
    ]

    static func vovnet(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let config = try VoVNetConfig(json: gc.attrs)
        let net = try VoVNet(config: config, weights: gc.params)
        return try net.run(try gc.input("x")).mapValues { ParityOutput.float($0) }
    }

    static func osaBlock(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let spec = try VoVNetBlockSpec(json: gc.attrs)
        let eps = gc.attrs["bn_eps"]?.double ?? 1e-5
        let graph = try VoVNetBuilder.buildBlock(spec: spec, weights: gc.params, bnEps: eps)
        return try graph.run(["x": try gc.input("x")]).mapValues { ParityOutput.float($0) }
    }
}
