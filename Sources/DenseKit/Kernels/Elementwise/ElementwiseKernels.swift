#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Element-wise activation kernels over contiguous float32 buffers.
///
/// The formulas are `Activation.apply`'s (PyTorch's exact definitions); here each activation gets
/// its own loop: the piecewise-linear ones vectorise as written, GELU / SiLU / sigmoid use
/// `VectorMath`'s branch-free exp (within a few ulp of libm; see `VectorMath` for the forms used). Work is split into fixed chunks, so
/// results do not depend on `Threading.threads`. Every kernel may run in place (`y == x`).
public enum ElementwiseKernels {
    /// Elements per parallel chunk.
    static let chunk = 16384

    /// `y = act(x)` over `count` values: `F.relu`, `F.relu6`, `F.gelu(approximate="none"|"tanh")`,
    /// `F.silu`, `torch.sigmoid`, `F.hardsigmoid`, `F.hardswish` (see `Activation`).
    /// - Parameters:
    ///   - x: `count` values, any layout.
    ///   - y: `count` values; may equal `x`.
    public static func activation(_ act: Activation, _ x: UnsafePointer<Float>, count: Int, _ y: UnsafeMutablePointer<Float>) {
        guard count > 0 else { return }
        let chunks = (count + chunk - 1) / chunk
        Threading.parallelFor(chunks) { k in
            let lo = k * chunk
            activationRange(act, x + lo, count: min(chunk, count - lo), y + lo)
        }
    }

    static func activationRange(_ act: Activation, _ x: UnsafePointer<Float>, count: Int, _ y: UnsafeMutablePointer<Float>) {
        switch act {
        case .none:
            if UnsafePointer(y) != x { y.update(from: x, count: count) }
        case .relu:
            for i in 0..<count { let v = x[i]; y[i] = v > 0 ? v : (v.isNaN ? v : 0) }
        case .relu6:
            for i in 0..<count { let v = x[i]; y[i] = v.isNaN ? v : min(max(v, 0), 6) }
        case .hardSigmoid:
            for i in 0..<count { let v = x[i]; y[i] = min(max(v + 3, 0), 6) / 6 }
        case .hardSwish:
            for i in 0..<count { let v = x[i]; y[i] = v * min(max(v + 3, 0), 6) / 6 }
        case .gelu:
            VectorMath.apply(.gelu, x, y, count: count)
        case .geluTanh:
            VectorMath.apply(.geluTanh, x, y, count: count)
        case .silu:
            VectorMath.apply(.silu, x, y, count: count)
        case .sigmoid:
            VectorMath.apply(.sigmoid, x, y, count: count)
        }
    }

    /// Leaky ReLU, `torch.nn.functional.leaky_relu(x, negative_slope)`: `y = x > 0 ? x : x * slope`.
    /// - Parameters:
    ///   - x: `count` values.
    ///   - y: `count` values; may equal `x`.
    public static func leakyRelu(_ x: UnsafePointer<Float>, count: Int, slope: Float, _ y: UnsafeMutablePointer<Float>) {
        guard count > 0 else { return }
        let chunks = (count + chunk - 1) / chunk
        Threading.parallelFor(chunks) { k in
            let lo = k * chunk
            slopeRange(x + lo, count: min(chunk, count - lo), slope: slope, y + lo)
        }
    }

    @inline(__always)
    static func slopeRange(_ x: UnsafePointer<Float>, count: Int, slope: Float, _ y: UnsafeMutablePointer<Float>) {
        for i in 0..<count { let v = x[i]; y[i] = v > 0 ? v : v * slope }
    }

    /// PReLU, `torch.nn.functional.prelu(x, weight)`: `y = x > 0 ? x : weight[c] * x` with `c` the channel
    /// (dim 1), or one shared slope.
    /// - Parameters:
    ///   - x: `[n, c, spatial]` row-major (NCHW with `spatial = H * W`).
    ///   - slopes: `slopeCount` values, `slopeCount` is 1 (shared) or `c` (per channel); any other count
    ///     uses `slopes[ch % slopeCount]`.
    ///   - y: `[n, c, spatial]`; may equal `x`.
    public static func prelu(_ x: UnsafePointer<Float>, n: Int, c: Int, spatial: Int,
                             slopes: UnsafePointer<Float>, slopeCount: Int, _ y: UnsafeMutablePointer<Float>) {
        guard n > 0, c > 0, spatial > 0, slopeCount > 0 else { return }
        if slopeCount == 1 {
            leakyRelu(x, count: n * c * spatial, slope: slopes[0], y)
            return
        }
        Threading.parallelFor(n * c, grain: max(1, chunk / spatial)) { plane in
            let s = slopes[(plane % c) % slopeCount]
            slopeRange(x + plane * spatial, count: spatial, slope: s, y + plane * spatial)
        }
    }
}

// MARK: - Tensor wrappers

extension ElementwiseKernels {
    /// `act(x)` for a tensor of any shape.
    public static func activation(_ act: Activation, _ x: Tensor) -> Tensor {
        var y = Tensor(zeros: x.shape, layout: x.layout)
        x.withUnsafeBufferPointer { xs in y.withUnsafeMutableBufferPointer { ys in
            guard let xb = xs.baseAddress, let yb = ys.baseAddress else { return }
            activation(act, xb, count: xs.count, yb)
        } }
        return y
    }

    /// Applies `act` in place.
    public static func applyInPlace(_ act: Activation, _ x: inout Tensor) {
        if act == .none { return }
        x.withUnsafeMutableBufferPointer { xs in
            guard let b = xs.baseAddress else { return }
            activation(act, UnsafePointer(b), count: xs.count, b)
        }
    }

    /// `F.leaky_relu(x, slope)` for a tensor of any shape.
    public static func leakyRelu(_ x: Tensor, slope: Float) -> Tensor {
        var y = Tensor(zeros: x.shape, layout: x.layout)
        x.withUnsafeBufferPointer { xs in y.withUnsafeMutableBufferPointer { ys in
            guard let xb = xs.baseAddress, let yb = ys.baseAddress else { return }
            leakyRelu(xb, count: xs.count, slope: slope, yb)
        } }
        return y
    }

    /// `F.prelu(x, weight)`: `weight` has 1 value, or one per channel (dim 1 of `x`).
    /// - Throws: `KernelArgumentError` when `weight`'s count is neither 1 nor `x.shape[1]`.
    public static func prelu(_ x: Tensor, weight: Tensor) throws -> Tensor {
        let c = x.rank >= 2 ? x.shape[1] : 1
        guard weight.count == 1 || (x.rank >= 2 && weight.count == c) else {
            throw KernelArgumentError("prelu: \(weight.count) slopes for shape \(x.shape)")
        }
        let n = x.rank >= 2 ? x.shape[0] : 1
        let sp = x.rank >= 2 ? x.shape.dropFirst(2).reduce(1, *) : x.count
        var y = Tensor(zeros: x.shape, layout: x.layout)
        x.withUnsafeBufferPointer { xs in y.withUnsafeMutableBufferPointer { ys in weight.withUnsafeBufferPointer { ws in
            guard let xb = xs.baseAddress, let yb = ys.baseAddress, let wb = ws.baseAddress else { return }
            prelu(xb, n: n, c: c, spatial: sp, slopes: wb, slopeCount: ws.count, yb)
        } } }
        return y
    }
}
