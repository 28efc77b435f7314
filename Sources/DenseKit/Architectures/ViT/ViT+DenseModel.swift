import Foundation

/// A plain timm ViT (optionally with token clustering / reconstruction) as a DenseKit model file
/// (`densekit.architecture` = `vit`, `densekit.config` = `ViTConfig(json:)`'s keys).
extension ViT: DenseModel {
    /// `vit`.
    public var architecture: String { "vit" }
    /// Always 3 (RGB).
    public var inputChannels: Int { 3 }
    /// `y` (`[B, C, H/16, W/16]`) and `cls` (`[B, C]`); with clustering also the taps `feat_alpha`,
    /// `clustered` and `before_recon` (see `run(_:)`).
    public var outputNames: [String] {
        config.cluster == nil ? ["y", "cls"] : ["y", "cls", "feat_alpha", "clustered", "before_recon"]
    }

    /// Floating-point operations of one pre-norm block on `tokens` rows (multiply-add = 2): qkv, the two
    /// attention products, the output projection and the MLP.
    func blockFlops(batch: Int, tokens l: Int) -> Double {
        let c = Double(config.embedDim), h = Double(config.hiddenDim), n = Double(l)
        return Double(batch) * (2 * n * c * 3 * c + 4 * n * n * c + 2 * n * c * c + 4 * n * c * h)
    }

    /// Times one run after `warmup` untimed runs, step by step: position-embedding resampling, patch
    /// embedding, each block, clustering, the final norm, reconstruction and the output transpose (the same
    /// steps as `run(_:)`). Counted FLOPs: patch embedding and blocks exactly; clustering as
    /// `4 kappa N lambda^2 C` (window cut at the borders not subtracted), reconstruction as
    /// `3 N M C + 2 N k C`. ViT runs imperatively, so the memory figures are the sum of the step outputs.
    /// - Throws: as `run(_:)`.
    public func profile(input: Tensor, warmup: Int) throws -> ProfileReport {
        for _ in 0..<max(0, warmup) { _ = try run(input) }
        let ps = config.patchSize, e = config.embedDim
        guard input.rank == 4, input.shape[1] == 3, input.shape[2] >= ps, input.shape[3] >= ps,
              input.shape[2] % ps == 0, input.shape[3] % ps == 0 else {
            throw ModelConfigError.invalidField(model: "vit", field: "image", message: "expected [B, 3, H, W] with H, W multiples of \(ps), got \(input.shape)")
        }
        let b = input.shape[0], gh = input.shape[2] / ps, gw = input.shape[3] / ps, n = gh * gw
        var entries: [ProfileReport.Entry] = []
        var sumBytes = input.count * 4, peak = 0
        func timed(_ node: String, _ op: String, flops: Double = 0, _ body: () throws -> Tensor) rethrows -> Tensor {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let y = try body()
            let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
            entries.append(ProfileReport.Entry(node: node, op: op, outputShape: y.shape, milliseconds: ms, flops: flops))
            sumBytes += y.count * 4
            peak = max(peak, y.count * 4)
            return y
        }
        let total0 = DispatchTime.now().uptimeNanoseconds
        let pos = try timed("pos_embed", "resample") {
            try PosEmbedResample.resample(posEmbed, from: (config.posGridH, config.posGridW), to: (gh, gw))
        }
        let patches = try timed("patch_embed", "conv2d", flops: Double(2 * b * n * e * 3 * ps * ps)) { try patchEmbed.checkedCall(input) }
        var x = timed("embed", "add_pos") {
            var x = Tensor(uninitialized: [b, 1 + n, e], layout: .tokens)   // embed writes every row
            patches.withUnsafeBufferPointer { pb in clsToken.withUnsafeBufferPointer { cb in pos.withUnsafeBufferPointer { qb in
                x.withUnsafeMutableBufferPointer { xb in
                    guard let pp = pb.baseAddress, let cp = cb.baseAddress, let qp = qb.baseAddress, let xp = xb.baseAddress else { return }
                    Self.embed(pp, cls: cp, pos: qp, batch: b, tokens: n, channels: e, xp)
                }
            } } }
            return x
        }
        let depth = config.depth
        func block(_ i: Int) throws {
            let y = try timed("blocks.\(i)", "vit_block", flops: blockFlops(batch: b, tokens: x.shape[1])) { () throws -> Tensor in
                try blocks[i](&x)
                return x
            }
            x = y
        }
        func norm() throws {
            let v = x
            x = try timed("norm", "layer_norm") { try NormKernels.layerNorm(v, weight: normW, bias: normB, eps: config.lnEps) }
        }
        if let cc = config.cluster {
            let clustering = try TokenClustering(grid: (gh, gw), cells: (cc.cellsH, cc.cellsW), window: cc.window, iters: cc.iters,
                                                 temperature: Float(cc.temperature), classToken: true)
            let recon = try TokenReconstruction(k: cc.reconK, temperature: Float(cc.reconTemperature), stabilized: cc.reconStabilized)
            let m = cc.cellsH * cc.cellsW
            for i in 0..<cc.alpha { try block(i) }
            let feat = Self.rows(x, from: 1, count: n)
            let before = x
            x = try timed("token_clustering", "token_cluster",
                          flops: Double(b * 4 * cc.iters * n * cc.window * cc.window * e)) { try clustering(before).centres }
            let centres = Self.rows(x, from: 1, count: m)
            for i in cc.alpha..<cc.beta { try block(i) }
            if cc.beta == depth { try norm() }
            let low = x
            let kept = cc.reconK < 0 ? m : cc.reconK
            let y = try timed("token_reconstruction", "token_recon", flops: Double(b * (3 * n * m * e + 2 * n * kept * e))) {
                try recon(feat: feat, centres: centres, x: Self.rows(low, from: 1, count: m)).y
            }
            x = Self.withClass(low, y)
            if cc.beta < depth {
                for i in cc.beta..<depth { try block(i) }
                try norm()
            }
        } else {
            for i in 0..<depth { try block(i) }
            try norm()
        }
        let last = x
        _ = timed("output", "transpose") { Self.finish(last, gh: gh, gw: gw, into: [:])["y"] ?? last }
        let total = Double(DispatchTime.now().uptimeNanoseconds - total0) / 1e6
        let memory = MemoryPlanSummary(plannedActivationBytes: 0, sumActivationBytes: sumBytes, peakLiveBytes: peak,
                                       workspaceBytes: 0, valueCount: entries.count + 1, bufferCount: entries.count + 1,
                                       aliasedValueCount: 0)
        return ProfileReport(entries: entries, totalMilliseconds: total, memory: memory)
    }
}
