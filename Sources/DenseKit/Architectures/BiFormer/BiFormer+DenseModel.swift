import Foundation

extension BiFormer: DenseModel {
    /// `biformer`.
    public var architecture: String { "biformer" }
    /// Always 3 (RGB).
    public var inputChannels: Int { 3 }
    /// `out0` ... `out3` (dense), `logits` (classification with a head) or `features` (without).
    public var outputNames: [String] {
        if config.variant == .dense { return (0..<4).map { "out\($0)" } }
        return config.numClasses > 0 ? ["logits"] : ["features"]
    }

    /// Times one run after `warmup` untimed runs, module by module (stem, each down-sampling layer and block,
    /// the output norms / head). BiFormer runs imperatively (tensors allocated per module), so the memory
    /// figures are the sum of the module outputs of that run (no arena plan).
    /// - Throws: as `run(_:)`.
    public func profile(input: Tensor, warmup: Int) throws -> ProfileReport {
        for _ in 0..<max(0, warmup) { _ = try run(input) }
        guard input.rank == 4, input.shape[1] == 3 else { throw BiFormerError.inputShape("image", "NCHW [N, 3, H, W]", input.shape) }
        try config.checkInputSize(height: input.shape[2], width: input.shape[3])
        var entries: [ProfileReport.Entry] = []
        var sumBytes = input.count * 4, peak = 0
        func timed(_ node: String, _ op: String, _ body: () throws -> Tensor) rethrows -> Tensor {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let y = try body()
            let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
            entries.append(ProfileReport.Entry(node: node, op: op, outputShape: y.shape, milliseconds: ms, flops: 0))
            sumBytes += y.count * 4
            peak = max(peak, y.count * 4)
            return y
        }
        let total0 = DispatchTime.now().uptimeNanoseconds
        var t = try timed("stem", "conv_bn_gelu") {
            var s = try batchNorm(try stemConv0.checkedCall(input), stemBN0)
            Activation.gelu.apply(s.storage.pointer, count: s.count)
            s = try batchNorm(try stemConv1.checkedCall(s), stemBN1)
            return s
        }
        var feats: [Tensor] = []
        for i in 0..<4 {
            if i > 0 {
                let x = t
                t = try timed("downsample_layers.\(i)", "conv_bn") { try batchNorm(try downConvs[i - 1].checkedCall(x), downBNs[i - 1]) }
            }
            for (j, b) in stages[i].enumerated() {
                let x = t
                t = try timed("stages.\(i).\(j)", config.topks[i] == -2 ? "attention" : "bra_block") { try b(x) }
            }
            feats.append(t)
        }
        if config.variant == .dense {
            for i in 0..<4 {
                _ = try timed("extra_norms.\(i)", "layer_norm2d") {
                    try NormKernels.layerNorm2d(feats[i], weight: extraNorms[i].0, bias: extraNorms[i].1, eps: 1e-6)
                }
            }
        } else if let norm {
            _ = try timed("norm+head", "bn_pool_linear") {
                let s = try batchNorm(feats[3], norm)
                let n = s.shape[0], ch = s.shape[1], hw = s.shape[2] * s.shape[3]
                let pooled = Tensor(zeros: [n, ch])
                BiFormer.meanPlanes(s.storage.pointer, planes: n * ch, size: hw, into: pooled.storage.pointer)
                return try head?.checkedCall(pooled) ?? pooled
            }
        }
        let total = Double(DispatchTime.now().uptimeNanoseconds - total0) / 1e6
        let memory = MemoryPlanSummary(plannedActivationBytes: 0, sumActivationBytes: sumBytes, peakLiveBytes: peak,
                                       workspaceBytes: 0, valueCount: entries.count + 1, bufferCount: entries.count + 1,
                                       aliasedValueCount: 0)
        return ProfileReport(entries: entries, totalMilliseconds: total, memory: memory)
    }
}
