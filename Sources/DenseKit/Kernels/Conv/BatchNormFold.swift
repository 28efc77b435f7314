import Foundation

extension Conv2dOperator {
    /// Folds an inference-mode BatchNorm that follows a convolution into the convolution's
    /// weight and bias, as `torch.nn.utils.fusion.fuse_conv_bn_weights` does:
    /// `s[o] = gamma[o] / sqrt(runningVar[o] + eps)`, `weight'[o] = weight[o] * s[o]`,
    /// `bias'[o] = (bias[o] - runningMean[o]) * s[o] + beta[o]` (`bias` = 0 when nil).
    /// The scale is computed in double precision, then rounded.
    /// - Parameters:
    ///   - weight: `[C_out, C_in/groups, kH, kW]`.
    ///   - bias: `[C_out]` or nil.
    ///   - gamma, beta, runningMean, runningVar: `[C_out]` (the BN's `weight`, `bias`, `running_mean`, `running_var`).
    ///   - eps: that BatchNorm's own epsilon (1e-5 in PyTorch by default, 1e-3 in some models).
    /// - Returns: the folded weight (same shape) and bias `[C_out]`.
    /// - Precondition: the shapes agree (use `foldBatchNormChecked` to get an error instead).
    public static func foldBatchNorm(weight: Tensor, bias: Tensor?, gamma: Tensor, beta: Tensor,
                                     runningMean: Tensor, runningVar: Tensor, eps: Float) -> (weight: Tensor, bias: Tensor) {
        do {
            return try foldBatchNormChecked(weight: weight, bias: bias, gamma: gamma, beta: beta,
                                            runningMean: runningMean, runningVar: runningVar, eps: eps)
        } catch {
            preconditionFailure("\(error)")
        }
    }

    /// `foldBatchNorm` with shape checks.
    /// - Throws: `ConvError.shapeMismatch` when a BN tensor or the bias is not `[C_out]`.
    public static func foldBatchNormChecked(weight: Tensor, bias: Tensor?, gamma: Tensor, beta: Tensor,
                                            runningMean: Tensor, runningVar: Tensor, eps: Float) throws -> (weight: Tensor, bias: Tensor) {
        guard weight.rank >= 1, weight.shape[0] > 0 else {
            throw ConvError.shapeMismatch("conv weight \(weight.shape) has no output channels")
        }
        let cout = weight.shape[0]
        for (name, t) in [("gamma", gamma), ("beta", beta), ("running_mean", runningMean), ("running_var", runningVar)] {
            guard t.shape == [cout] else {
                throw ConvError.shapeMismatch("batch norm \(name) has shape \(t.shape), expected [\(cout)]")
            }
        }
        if let b = bias, b.shape != [cout] {
            throw ConvError.shapeMismatch("conv bias has shape \(b.shape), expected [\(cout)]")
        }
        let g = gamma.scalars, be = beta.scalars, m = runningMean.scalars, v = runningVar.scalars
        let b0 = bias?.scalars ?? [Float](repeating: 0, count: cout)
        var scale = [Float](repeating: 0, count: cout)
        var newBias = [Float](repeating: 0, count: cout)
        for o in 0..<cout {
            let s = Double(g[o]) / (Double(v[o]) + Double(eps)).squareRoot()
            scale[o] = Float(s)
            newBias[o] = Float((Double(b0[o]) - Double(m[o])) * s + Double(be[o]))
        }
        var w = weight
        let per = weight.count / cout
        w.withUnsafeMutableBufferPointer { wb in
            for o in 0..<cout {
                let s = scale[o]
                for i in 0..<per { wb[o * per + i] *= s }
            }
        }
        return (w, Tensor(shape: [cout], values: newBias))
    }
}
