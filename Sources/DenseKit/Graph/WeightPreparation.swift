import Foundation

/// Inference batch-norm parameters of one channel axis (`y = (x - mean) / sqrt(var + eps) * gamma + beta`).
public struct BatchNormParameters: Sendable {
    /// Scale `weight`, `[C]`.
    public let gamma: Tensor
    /// Shift `bias`, `[C]`.
    public let beta: Tensor
    /// `running_mean`, `[C]`.
    public let runningMean: Tensor
    /// `running_var`, `[C]`.
    public let runningVar: Tensor
    /// Epsilon of THIS norm (timm `BatchNormAct2d` and detectron2 `FrozenBatchNorm2d`: 1e-5).
    public let eps: Double

    /// Creates the parameters. - Throws: `GraphError.invalidWeights` when the four
    /// tensors do not all have `C` elements or `eps` is negative or not finite.
    public init(gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor, eps: Double, name: String = "batch_norm") throws {
        let c = gamma.count
        for (t, n) in [(beta, "bias"), (runningMean, "running_mean"), (runningVar, "running_var")] where t.count != c {
            throw GraphError.invalidWeights(layer: name, message: "\(n) has \(t.count) elements, weight has \(c)")
        }
        guard eps >= 0, eps.isFinite else { throw GraphError.invalidWeights(layer: name, message: "eps \(eps) is not a finite value >= 0") }
        self.gamma = gamma; self.beta = beta; self.runningMean = runningMean; self.runningVar = runningVar; self.eps = eps
    }

    /// Number of channels.
    public var channels: Int { gamma.count }
}

/// Weight preparation done once at load time.
public enum WeightPreparation {
    /// Folds an inference batch norm into the convolution (or linear layer) before it.
    ///
    /// With `s[c] = gamma[c] / sqrt(var[c] + eps)`: `w'[c, ...] = w[c, ...] * s[c]` and
    /// `b'[c] = (b[c] - mean[c]) * s[c] + beta[c]` (`b = 0` without a bias). Computed in
    /// float64 and rounded once to float32, so the folded layer stays within a few ulps of
    /// the unfolded float32 computation.
    /// - Parameters:
    ///   - weight: `[Cout, ...]` (conv `[Cout, Cin/g, kH, kW]`, linear `[Cout, Cin]`).
    ///   - bias: `[Cout]` or nil.
    ///   - bn: the norm over `Cout` channels, with its own eps.
    ///   - name: used in errors.
    /// - Returns: the folded weight (same shape) and bias `[Cout]`.
    /// - Throws: `GraphError.invalidWeights` when the channel counts differ or `var + eps <= 0`.
    public static func foldBatchNorm(weight: Tensor, bias: Tensor?, bn: BatchNormParameters, name: String = "conv") throws -> (weight: Tensor, bias: Tensor) {
        guard let cout = weight.shape.first, cout == bn.channels else {
            throw GraphError.invalidWeights(layer: name, message: "weight \(ShapeText.of(weight.shape)) does not match a norm over \(bn.channels) channels")
        }
        if let b = bias, b.count != cout {
            throw GraphError.invalidWeights(layer: name, message: "bias has \(b.count) elements for \(cout) output channels")
        }
        let per = cout > 0 ? weight.count / cout : 0
        let g = bn.gamma.scalars, be = bn.beta.scalars, m = bn.runningMean.scalars, v = bn.runningVar.scalars
        let b0 = bias?.scalars
        var scale = [Double](repeating: 0, count: cout)
        for c in 0..<cout {
            let d = Double(v[c]) + bn.eps
            guard d > 0, d.isFinite else {
                throw GraphError.invalidWeights(layer: name, message: "running_var[\(c)] + eps = \(d) is not positive")
            }
            scale[c] = Double(g[c]) / d.squareRoot()
        }
        var w = Tensor(zeros: weight.shape, layout: weight.layout)
        weight.withUnsafeBufferPointer { src in
            w.withUnsafeMutableBufferPointer { dst in
                for c in 0..<cout {
                    let s = scale[c]
                    for i in (c * per)..<((c + 1) * per) { dst[i] = Float(Double(src[i]) * s) }
                }
            }
        }
        let folded = (0..<cout).map { c in Float((Double(b0?[c] ?? 0) - Double(m[c])) * scale[c] + Double(be[c])) }
        return (w, Tensor(shape: [cout], values: folded))
    }
}
