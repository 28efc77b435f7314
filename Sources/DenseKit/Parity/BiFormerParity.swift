import Foundation

/// Parity handlers of the `biformer` family (`golden/biformer/INDEX.md`, spec `biformer.md`),
/// keyed `biformer/<target>`.
///
/// - `biformer/bra`: `BiLevelRoutingAttention(options: BRAOptions(json: attrs))`; input `x` NHWC;
///   outputs `y` NHWC and `routing_index` (I64 `[N, n_win², topk]`) when the case has it.
/// - `biformer/biformer`: `BiFormer(config: BiFormerConfig(json: attrs))`; input `x` NCHW; outputs
///   `logits` (cls) or `out0…out3` (dense).
/// - `biformer/block`: `BiFormerBlock(options: BiFormerBlockOptions(json: attrs))`; input `x` NCHW, output `y` NCHW.
enum BiFormerParity {
    static let handlers: [String: ParityHandler] = [
        "biformer/bra": bra,
        "biformer/block": block,
        "biformer/biformer": model,
    ]

    static func bra(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let layer = try BiLevelRoutingAttention(options: try BRAOptions(json: gc.attrs), weights: gc.params)
        let r = try layer.forward(try gc.input("x"))
        var out: [String: ParityOutput] = ["y": .float(r.y)]
        if gc.outputs["routing_index"] != nil { out["routing_index"] = .index(r.routing) }
        return out
    }

    static func block(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let b = try BiFormerBlock(options: try BiFormerBlockOptions(json: gc.attrs), weights: gc.params)
        return ["y": .float(try b(try gc.input("x")))]
    }

    static func model(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let net = try BiFormer(config: try BiFormerConfig(json: gc.attrs), weights: gc.params)
        return try net.run(try gc.input("x")).mapValues { ParityOutput.float($0) }
    }
}
