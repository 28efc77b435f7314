import Foundation

/// Element-wise activation functions, with PyTorch's exact definitions.
///
/// Shared by fused epilogues (convolution, linear) and the stand-alone activation
/// kernels. `apply(_:)` is the scalar reference; vectorised loops live with the kernels.
public enum Activation: String, Sendable, Hashable, Codable, CaseIterable {
    /// Identity.
    case none
    /// `max(x, 0)`.
    case relu
    /// `min(max(x, 0), 6)`.
    case relu6
    /// GELU, exact form `x * 0.5 * (1 + erf(x / sqrt(2)))` (PyTorch `approximate="none"`).
    case gelu
    /// GELU, tanh approximation (PyTorch `approximate="tanh"`).
    case geluTanh = "gelu_tanh"
    /// `x * sigmoid(x)` (SiLU / swish).
    case silu
    /// `1 / (1 + exp(-x))`.
    case sigmoid
    /// `relu6(x + 3) / 6` (PyTorch `hardsigmoid`).
    case hardSigmoid = "hardsigmoid"
    /// `x * relu6(x + 3) / 6` (PyTorch `hardswish`).
    case hardSwish = "hardswish"

    /// The activation of one value.
    @inlinable @inline(__always)
    public func apply(_ x: Float) -> Float {
        switch self {
        case .none: return x
        case .relu: return x > 0 || x.isNaN ? x : 0   // NaN kept, as torch.relu
        case .relu6: return min(max(x, 0), 6)
        case .gelu: return 0.5 * x * (1 + erff(x * 0.70710678118654752440))
        case .geluTanh:
            let k: Float = 0.79788456080286535588 // sqrt(2/pi)
            return 0.5 * x * (1 + tanhf(k * (x + 0.044715 * x * x * x)))
        case .silu: return x / (1 + expf(-x))
        case .sigmoid: return 1 / (1 + expf(-x))
        case .hardSigmoid: return min(max(x + 3, 0), 6) / 6
        case .hardSwish: return x * min(max(x + 3, 0), 6) / 6
        }
    }

    /// Applies the activation in place to `count` contiguous values. The smooth activations (GELU,
    /// SiLU, sigmoid) use the vectorised `VectorMath` formulas (within a few float32 ulp of the
    /// libm-based `apply(_:)`; GELU's erfc has a fractional error below 1.2e-7).
    public func apply(_ p: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .none: return
        case .relu: for i in 0..<count { let v = p[i]; p[i] = v > 0 || v.isNaN ? v : 0 }
        case .relu6: for i in 0..<count { p[i] = min(max(p[i], 0), 6) }
        case .gelu, .geluTanh, .silu, .sigmoid: VectorMath.apply(self, UnsafePointer(p), p, count: count)
        default: for i in 0..<count { p[i] = apply(p[i]) }
        }
    }
}
