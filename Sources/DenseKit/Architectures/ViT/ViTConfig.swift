import Foundation

/// Token clustering / reconstruction settings of a plain ViT (spec `token-clustering.md` section 4).
public struct ViTClusterConfig: Sendable, Equatable {
    /// alpha: clustering after the alpha-th block (1-based; reference `location` = alpha - 1).
    public var alpha: Int
    /// beta: reconstruction after the beta-th block (1-based); beta = depth puts it after the final norm.
    public var beta: Int
    /// Cell grid h x w.
    public var cellsH: Int, cellsW: Int
    /// lambda (odd window side), kappa (iterations), t (clustering temperature).
    public var window: Int, iters: Int, temperature: Double
    /// Reconstruction k (-1 = all) and temperature.
    public var reconK: Int, reconTemperature: Double
    /// Stabilised reconstruction (row-minimum distance subtracted before exp); off = reference.
    public var reconStabilized: Bool
}

/// Configuration of a timm `VisionTransformer` (class token, learned absolute position embedding,
/// pre-norm blocks, exact GELU, qkv bias), optionally with a token clustering layer after block
/// alpha and a token reconstruction layer after block beta (spec section 4; golden `vit` attrs).
public struct ViTConfig: Sendable, Equatable {
    /// Patch size (16).
    public var patchSize: Int
    /// C.
    public var embedDim: Int
    /// Number of blocks.
    public var depth: Int
    /// Attention heads (dividing C).
    public var numHeads: Int
    /// Hidden width of the MLP = `mlpRatio * C`.
    public var mlpRatio: Double
    /// LayerNorm eps (1e-6).
    public var lnEps: Double
    /// Input image size [Hi, Wi] (multiples of the patch size).
    public var imageH: Int, imageW: Int
    /// Grid the stored `pos_embed` is for (gh0, gw0).
    public var posGridH: Int, posGridW: Int
    /// Clustering settings, nil for the plain ViT.
    public var cluster: ViTClusterConfig?

    /// Token grid (gh, gw) = image size / patch size.
    public var gridH: Int { imageH / patchSize }
    /// Token grid width.
    public var gridW: Int { imageW / patchSize }
    /// MLP hidden width.
    public var hiddenDim: Int { Int((Double(embedDim) * mlpRatio).rounded()) }

    /// Parses and validates the golden `vit` attrs (`patch_size`, `embed_dim`, `depth`, `num_heads`,
    /// `mlp_ratio`, `qkv_bias`, `class_token`, `ln_eps`, `img_size`, `pos_embed_grid`, `alpha` /
    /// `cluster_location`, `beta` / `recon_location`, `cluster_grid`, `window`, `iters`, `temperature`,
    /// `recon_k`, `recon_temperature`, and the DenseKit extra `recon_stabilized`).
    /// Clustering is enabled when `alpha` or `cluster_location` is present.
    /// - Throws: `ModelConfigError.invalidField` naming the field.
    public init(json: JSONValue) throws {
        let r = try ConfigReader(json, model: "vit")
        patchSize = try r.int("patch_size", default: 16)
        embedDim = try r.int("embed_dim")
        depth = try r.int("depth")
        numHeads = try r.int("num_heads")
        mlpRatio = try r.double("mlp_ratio", default: 4)
        lnEps = try r.double("ln_eps", default: 1e-6)
        guard try r.bool("qkv_bias", default: true) else { throw r.fail("qkv_bias", "only qkv_bias = true is supported") }
        guard try r.bool("class_token", default: true) else { throw r.fail("class_token", "only class_token = true is supported") }
        guard (1...1024).contains(patchSize) else { throw r.fail("patch_size", "must be in 1...1024, got \(patchSize)") }
        guard (1...65536).contains(embedDim) else { throw r.fail("embed_dim", "must be in 1...65536, got \(embedDim)") }
        guard (1...1024).contains(depth) else { throw r.fail("depth", "must be in 1...1024, got \(depth)") }
        guard numHeads >= 1, embedDim % numHeads == 0 else { throw r.fail("num_heads", "must be >= 1 and divide embed_dim \(embedDim)") }
        guard mlpRatio > 0, mlpRatio <= 64, mlpRatio.isFinite else { throw r.fail("mlp_ratio", "must be in (0, 64], got \(mlpRatio)") }
        guard lnEps > 0, lnEps.isFinite else { throw r.fail("ln_eps", "must be > 0") }
        let img = try r.ints("img_size", count: 2)
        guard img.allSatisfy({ (1...16384).contains($0) }) else { throw r.fail("img_size", "sides must be in 1...16384, got \(img)") }
        guard img[0] >= patchSize, img[1] >= patchSize, img[0] % patchSize == 0, img[1] % patchSize == 0 else {
            throw r.fail("img_size", "must be positive multiples of patch_size \(patchSize), got \(img)")
        }
        imageH = img[0]; imageW = img[1]
        let pg = try r.ints("pos_embed_grid", count: 2, default: [img[0] / patchSize, img[1] / patchSize])
        guard pg[0] >= 1, pg[1] >= 1 else { throw r.fail("pos_embed_grid", "must be >= 1x1") }
        guard pg[0] <= 16384, pg[1] <= 16384 else { throw r.fail("pos_embed_grid", "sides must be at most 16384, got \(pg)") }
        posGridH = pg[0]; posGridW = pg[1]
        guard hiddenDim >= 1 else { throw r.fail("mlp_ratio", "gives an empty MLP") }

        if r.has("alpha") || r.has("cluster_location") {
            let alpha = try r.int("alpha", default: (try r.int("cluster_location", default: -2)) + 1)
            if r.has("cluster_location"), try r.int("cluster_location") != alpha - 1 {
                throw r.fail("cluster_location", "must equal alpha - 1 = \(alpha - 1)")
            }
            let beta = try r.int("beta", default: (try r.int("recon_location", default: depth - 1)) + 1)
            if r.has("recon_location"), try r.int("recon_location") != beta - 1 {
                throw r.fail("recon_location", "must equal beta - 1 = \(beta - 1)")
            }
            guard alpha >= 1, alpha < beta else { throw r.fail("alpha", "need 1 <= alpha < beta, got alpha \(alpha), beta \(beta)") }
            guard beta <= depth else { throw r.fail("beta", "need beta <= depth \(depth), got \(beta)") }
            let cg = try r.ints("cluster_grid", count: 2)
            guard cg[0] >= 1, cg[0] <= img[0] / patchSize, cg[1] >= 1, cg[1] <= img[1] / patchSize else {
                throw r.fail("cluster_grid", "must lie in 1x1 ... \(img[0] / patchSize)x\(img[1] / patchSize), got \(cg)")
            }
            let window = try r.int("window", default: 5)
            guard window >= 1, window <= 255, window % 2 == 1 else { throw r.fail("window", "must be odd and in 1...255") }
            let iters = try r.int("iters", default: 5)
            guard (0...1000).contains(iters) else { throw r.fail("iters", "must be in 0...1000") }
            let t = try r.double("temperature")
            guard t > 0, t.isFinite else { throw r.fail("temperature", "must be > 0") }
            let k = try r.int("recon_k", default: 20)
            guard k >= 1 || k == -1, k <= cg[0] * cg[1] else { throw r.fail("recon_k", "must be -1 or in 1 ... \(cg[0] * cg[1])") }
            let rt = try r.double("recon_temperature", default: t)
            guard rt > 0, rt.isFinite else { throw r.fail("recon_temperature", "must be > 0") }
            cluster = ViTClusterConfig(alpha: alpha, beta: beta, cellsH: cg[0], cellsW: cg[1], window: window, iters: iters,
                                       temperature: t, reconK: k, reconTemperature: rt,
                                       reconStabilized: try r.bool("recon_stabilized", default: false))
        } else {
            cluster = nil
        }
    }
}
