#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Softmax and log-softmax along one dimension of a row-major tensor seen as `[outer, dim, inner]`.
///
/// Both subtract the maximum along the dimension first (inputs of ~1e3 do not overflow); the sum of
/// exponentials is accumulated in Double. Log-softmax is `x - max - log(sum)`, never `log(softmax)`.
/// Work is split over `outer` and blocks of `inner` fixed by the sizes: results do not depend on
/// `Threading.threads`.
public enum SoftmaxKernels {
    /// Columns of `inner` handled together when `inner > 1`.
    static let block = 64

    /// `torch.nn.functional.softmax(x, dim)`: `y = exp(x - m) / sum(exp(x - m))` along `dim`, `m = max(x)`.
    /// - Parameters:
    ///   - x: `[outer, dim, inner]` row-major (`outer` = product of the sizes before the dimension,
    ///     `inner` = product after it).
    ///   - y: same size; may equal `x`.
    public static func softmax(_ x: UnsafePointer<Float>, outer: Int, dim: Int, inner: Int, _ y: UnsafeMutablePointer<Float>) {
        run(x, outer: outer, dim: dim, inner: inner, log: false, y)
    }

    /// `torch.nn.functional.log_softmax(x, dim)`: `y = x - m - log(sum(exp(x - m)))` along `dim`.
    /// - Parameters:
    ///   - x: `[outer, dim, inner]` row-major.
    ///   - y: same size; may equal `x`.
    public static func logSoftmax(_ x: UnsafePointer<Float>, outer: Int, dim: Int, inner: Int, _ y: UnsafeMutablePointer<Float>) {
        run(x, outer: outer, dim: dim, inner: inner, log: true, y)
    }

    static func run(_ x: UnsafePointer<Float>, outer: Int, dim: Int, inner: Int, log: Bool, _ y: UnsafeMutablePointer<Float>) {
        guard outer > 0, dim > 0, inner > 0 else { return }
        if inner == 1 {
            Threading.parallelFor(outer, grain: max(1, 4096 / dim)) { r in
                row(x + r * dim, count: dim, log: log, y + r * dim)
            }
            return
        }
        let blocks = (inner + block - 1) / block
        Threading.parallelFor(outer * blocks, grain: max(1, 4096 / (dim * min(inner, block)))) { item in
            let o = item / blocks, b = item % blocks
            let i0 = b * block
            let off = o * dim * inner + i0
            columns(x + off, dim: dim, stride: inner, width: min(block, inner - i0), log: log, y + off)
        }
    }

    /// One contiguous row.
    static func row(_ x: UnsafePointer<Float>, count: Int, log: Bool, _ y: UnsafeMutablePointer<Float>) {
        var m = -Float.infinity
        for i in 0..<count { let v = x[i]; if v > m || v.isNaN { m = v } }
        if m == -.infinity { m = 0 }   // all -inf: keep exp(-inf - 0) = 0 rather than NaN
        // exp(x - m) into y (log-softmax overwrites it afterwards, so it may alias x only at the end).
        if log {
            let tmp = UnsafeMutablePointer<Float>.allocate(capacity: count)
            defer { tmp.deallocate() }
            let s = VectorMath.expShifted(x, shift: m, tmp, count: count)
            let ls = Float(Foundation_log(s))
            for i in 0..<count { y[i] = (x[i] - m) - ls }
        } else {
            let s = VectorMath.expShifted(x, shift: m, y, count: count)
            let inv = 1 / s
            for i in 0..<count { y[i] = Float(Double(y[i]) * inv) }
        }
    }

    /// `width` interleaved columns of a `[dim, stride]` block (the reduction runs down the columns).
    static func columns(_ x: UnsafePointer<Float>, dim: Int, stride: Int, width: Int, log: Bool,
                        _ y: UnsafeMutablePointer<Float>) {
        let buf = UnsafeMutablePointer<Double>.allocate(capacity: width)
        let mx = UnsafeMutablePointer<Float>.allocate(capacity: width)
        defer { buf.deallocate(); mx.deallocate() }
        mx.initialize(repeating: -.infinity, count: width)
        buf.initialize(repeating: 0, count: width)
        for d in 0..<dim {
            let r = x + d * stride
            for j in 0..<width { let v = r[j]; if v > mx[j] || v.isNaN { mx[j] = v } }
        }
        for j in 0..<width where mx[j] == -.infinity { mx[j] = 0 }
        if log {
            let e = UnsafeMutablePointer<Float>.allocate(capacity: width)
            defer { e.deallocate() }
            for d in 0..<dim {
                VectorMath.expDiff(x + d * stride, mx, e, count: width)
                for j in 0..<width { buf[j] += Double(e[j]) }
            }
            for j in 0..<width { buf[j] = Foundation_log(buf[j]) }
            for d in 0..<dim {
                let r = x + d * stride, o = y + d * stride
                for j in 0..<width { o[j] = (r[j] - mx[j]) - Float(buf[j]) }
            }
        } else {
            for d in 0..<dim {
                let o = y + d * stride
                VectorMath.expDiff(x + d * stride, mx, o, count: width)
                for j in 0..<width { buf[j] += Double(o[j]) }
            }
            for j in 0..<width { buf[j] = 1 / buf[j] }
            for d in 0..<dim {
                let o = y + d * stride
                for j in 0..<width { o[j] = Float(Double(o[j]) * buf[j]) }
            }
        }
    }
}

@inline(__always) fileprivate func Foundation_log(_ x: Double) -> Double { log(x) }

// MARK: - Tensor wrappers

extension SoftmaxKernels {
    /// `F.softmax(x, dim)` for a tensor of any rank (`dim` may be negative).
    /// - Throws: `KernelArgumentError` when `dim` is out of range.
    public static func softmax(_ x: Tensor, dim: Int) throws -> Tensor { try apply(x, dim: dim, log: false) }

    /// `F.log_softmax(x, dim)` for a tensor of any rank (`dim` may be negative).
    /// - Throws: `KernelArgumentError` when `dim` is out of range.
    public static func logSoftmax(_ x: Tensor, dim: Int) throws -> Tensor { try apply(x, dim: dim, log: true) }

    static func apply(_ x: Tensor, dim: Int, log: Bool) throws -> Tensor {
        let d = try normalizedDim(dim, rank: x.rank, log ? "logSoftmax" : "softmax")
        let (o, n, i) = splitShape(x.shape, at: d)
        var y = Tensor(zeros: x.shape, layout: x.layout)
        x.withUnsafeBufferPointer { xs in y.withUnsafeMutableBufferPointer { ys in
            guard let xb = xs.baseAddress, let yb = ys.baseAddress else { return }
            run(xb, outer: o, dim: n, inner: i, log: log, yb)
        } }
        return y
    }
}
