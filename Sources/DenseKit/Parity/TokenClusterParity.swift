import Foundation

/// Parity handlers of the `tokencluster` family (`golden/tokencluster/INDEX.md`, spec
/// `token-clustering.md`), keyed `tokencluster/<target>`.
///
/// - `tokencluster/token_clustering`: `TokenClustering(json: attrs)`; input `tokens`; outputs
///   `tokens` (centres, with the class token when `cls_token`) and `labels` (I64).
/// - `tokencluster/token_reconstruction`: `TokenReconstruction(json: attrs)`; inputs `feat`,
///   `centres`, `x`; outputs `y` and `weights`.
/// - `tokencluster/vit`: `ViT(config: ViTConfig(json: attrs), weights: params)`; input `image`;
///   outputs `y`, `cls`, `feat_alpha`, `clustered`, `before_recon`.
enum TokenClusterParity {
    static let handlers: [String: ParityHandler] = [
        "tokencluster/token_clustering": clustering,
        "tokencluster/token_reconstruction": reconstruction,
        "tokencluster/vit": vit,
    ]

    static func clustering(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let layer = try TokenClustering(json: gc.attrs)
        let wantLabels = gc.outputs["labels"] != nil
        let r = try layer(try gc.input("tokens"), withLabels: wantLabels)
        var out: [String: ParityOutput] = ["tokens": .float(r.centres)]
        if let l = r.labels { out["labels"] = .index(l) }
        return out
    }

    static func reconstruction(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let layer = try TokenReconstruction(json: gc.attrs)
        let r = try layer(feat: try gc.input("feat"), centres: try gc.input("centres"), x: try gc.input("x"),
                          withWeights: gc.outputs["weights"] != nil)
        var out: [String: ParityOutput] = ["y": .float(r.y)]
        if let w = r.weights { out["weights"] = .float(w) }
        return out
    }

    static func vit(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let net = try ViT(config: try ViTConfig(json: gc.attrs), weights: gc.params)
        return try net.run(try gc.input("image")).mapValues { ParityOutput.float($0) }
    }
}
