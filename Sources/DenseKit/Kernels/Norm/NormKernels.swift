import CKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Normalisation kernels: inference BatchNorm, LayerNorm (last dim and over NCHW channels), GroupNorm.
///
/// Statistics are accumulated in Double with a two-pass mean / variance (biased, divide by the count),
/// so rows with a large mean and a variance near `eps` stay exact. Reductions are split into chunks
/// fixed by the sizes alone and combined in a fixed order: results do not depend on `Threading.threads`.
/// `weight` / `bias` may be nil (PyTorch's `weight=None` / `bias=None`: scale 1, shift 0).
public enum NormKernels {
    /// Elements per reduction chunk (fixed: part of the summation order).
    static let chunk = 8192

    /// Inference batch normalisation, `torch.nn.functional.batch_norm(x, running_mean, running_var,
    /// weight, bias, training=False, eps=eps)`.
    ///
    /// `y[n, c, s] = (x[n, c, s] - mean[c]) / sqrt(var[c] + eps) * weight[c] + bias[c]`.
    /// - Parameters:
    ///   - x: `[n, c, spatial]` row-major (NCHW with `spatial = H * W`; any trailing size works).
    ///   - mean, var: running statistics, `c` values each.
    ///   - weight, bias: `c` values each, or nil.
    ///   - y: `[n, c, spatial]`; may equal `x` (in place).
    public static func batchNorm(_ x: UnsafePointer<Float>, n: Int, c: Int, spatial: Int,
                                 mean: UnsafePointer<Float>, `var` variance: UnsafePointer<Float>,
                                 weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, eps: Double,
                                 _ y: UnsafeMutablePointer<Float>) {
        guard n > 0, c > 0, spatial > 0 else { return }
        Threading.parallelFor(n * c, grain: max(1, 16384 / spatial)) { plane in
            let ch = plane % c
            let w = weight.map { Double($0[ch]) } ?? 1
            let scale = Float(w / (Double(variance[ch]) + eps).squareRoot())
            let m = mean[ch]
            let b = bias?[ch] ?? 0
            affinePlane(x + plane * spatial, count: spatial, subtract: m, scale: scale, add: b, y + plane * spatial)
        }
    }

    /// `y[i] = (x[i] - subtract) * scale + add` over `count` values (float32, vectorisable).
    @inline(__always)
    static func affinePlane(_ x: UnsafePointer<Float>, count: Int, subtract: Float, scale: Float, add: Float,
                            _ y: UnsafeMutablePointer<Float>) {
        for i in 0..<count { y[i] = (x[i] - subtract) * scale + add }
    }

    /// Layer normalisation over the last dimension, `torch.nn.functional.layer_norm(x, (cols,), weight, bias, eps)`.
    ///
    /// For each row: `mu = mean(x)`, `var = mean((x - mu)^2)`, `y = (x - mu) / sqrt(var + eps) * weight + bias`.
    /// - Parameters:
    ///   - x: `[rows, cols]` row-major (`[..., C]` with `cols = C`).
    ///   - weight, bias: `cols` values each, or nil.
    ///   - y: `[rows, cols]`; may equal `x`.
    public static func layerNorm(_ x: UnsafePointer<Float>, rows: Int, cols: Int,
                                 weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, eps: Double,
                                 _ y: UnsafeMutablePointer<Float>) {
        layerNormRows(x, residual: nil, sum: nil, rows: rows, cols: cols, weight: weight, bias: bias, eps: eps, y)
    }

    /// A residual connection followed by layer normalisation, in one pass over the rows: `x += residual`, then
    /// `y = layerNorm(x)` (as `layerNorm(_:rows:cols:weight:bias:eps:_:)`).
    /// - Parameters:
    ///   - x: `[rows, cols]` row-major; receives `x + residual` (float sums).
    ///   - residual: `[rows, cols]`.
    ///   - weight, bias: `cols` values each, or nil.
    ///   - y: `[rows, cols]`; may equal `x`.
    public static func addLayerNorm(_ x: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>, rows: Int, cols: Int,
                                    weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, eps: Double,
                                    _ y: UnsafeMutablePointer<Float>) {
        layerNormRows(UnsafePointer(x), residual: residual, sum: x, rows: rows, cols: cols, weight: weight, bias: bias,
                      eps: eps, y)
    }

    /// The rows of `layerNorm` and `addLayerNorm`, in parallel: with `residual` (and `sum`), `sum = x + residual`
    /// is normalised, else `x`; the AVX-512 kernel (`dk_layernorm_rows`) or the Swift row.
    private static func layerNormRows(_ x: UnsafePointer<Float>, residual: UnsafePointer<Float>?, sum: UnsafeMutablePointer<Float>?,
                                      rows: Int, cols: Int, weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?,
                                      eps: Double, _ y: UnsafeMutablePointer<Float>) {
        guard rows > 0, cols > 0 else { return }
        let vector = KernelDispatch.avx512
        Threading.parallelFor(rows, grain: max(1, 8192 / cols)) { r in
            let xr = x + r * cols, rr = residual.map { $0 + r * cols }, sr = sum.map { $0 + r * cols }
            if vector && dk_layernorm_rows(xr, rr, sr, 1, cols, weight, bias, eps, y + r * cols) != 0 { return }
            var z = xr
            if let rr, let sr {
                for i in 0..<cols { sr[i] = xr[i] + rr[i] }
                z = UnsafePointer(sr)
            }
            layerNormRow(z, cols: cols, weight: weight, bias: bias, eps: eps, y + r * cols)
        }
    }

    static func layerNormRow(_ x: UnsafePointer<Float>, cols: Int, weight: UnsafePointer<Float>?,
                             bias: UnsafePointer<Float>?, eps: Double, _ y: UnsafeMutablePointer<Float>) {
        let mu = sumDouble(x, count: cols) / Double(cols)
        let v = sumSquaredDeviation(x, count: cols, mean: mu) / Double(cols)
        let rstd = 1 / (v + eps).squareRoot()
        switch (weight, bias) {
        case let (w?, b?):
            for i in 0..<cols { y[i] = Float((Double(x[i]) - mu) * rstd * Double(w[i]) + Double(b[i])) }
        case let (w?, nil):
            for i in 0..<cols { y[i] = Float((Double(x[i]) - mu) * rstd * Double(w[i])) }
        case let (nil, b?):
            for i in 0..<cols { y[i] = Float((Double(x[i]) - mu) * rstd + Double(b[i])) }
        case (nil, nil):
            for i in 0..<cols { y[i] = Float((Double(x[i]) - mu) * rstd) }
        }
    }

    /// Layer normalisation over the channels of an NCHW tensor, separately at every pixel
    /// (`timm.layers.LayerNorm2d`, i.e. `F.layer_norm(x.permute(0,2,3,1), (C,), weight, bias, eps).permute(0,3,1,2)`).
    ///
    /// For each `(n, s)`: `mu = mean_c x[n, :, s]`, `var = mean_c (x - mu)^2`,
    /// `y[n, c, s] = (x[n, c, s] - mu) / sqrt(var + eps) * weight[c] + bias[c]`.
    /// - Parameters:
    ///   - x: `[n, c, spatial]` row-major (NCHW, `spatial = H * W`).
    ///   - weight, bias: `c` values each, or nil.
    ///   - y: `[n, c, spatial]`; may equal `x`.
    public static func layerNorm2d(_ x: UnsafePointer<Float>, n: Int, c: Int, spatial: Int,
                                   weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, eps: Double,
                                   _ y: UnsafeMutablePointer<Float>) {
        guard n > 0, c > 0, spatial > 0 else { return }
        let block = 256
        let blocks = (spatial + block - 1) / block
        Threading.parallelFor(n * blocks) { item in
            let b = item / blocks, blk = item % blocks
            let s0 = blk * block
            let len = min(block, spatial - s0)
            let base = b * c * spatial + s0
            layerNorm2dBlock(x + base, y + base, c: c, stride: spatial, len: len, weight: weight, bias: bias, eps: eps)
        }
    }

    static func layerNorm2dBlock(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, c: Int, stride: Int,
                                 len: Int, weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, eps: Double) {
        let acc = UnsafeMutablePointer<Double>.allocate(capacity: 2 * len)
        defer { acc.deallocate() }
        let mean = acc, rstd = acc + len
        mean.initialize(repeating: 0, count: len)
        rstd.initialize(repeating: 0, count: len)
        for ch in 0..<c {
            let row = x + ch * stride
            for s in 0..<len { mean[s] += Double(row[s]) }
        }
        let inv = 1 / Double(c)
        for s in 0..<len { mean[s] *= inv }
        for ch in 0..<c {
            let row = x + ch * stride
            for s in 0..<len { let d = Double(row[s]) - mean[s]; rstd[s] += d * d }
        }
        for s in 0..<len { rstd[s] = 1 / (rstd[s] * inv + eps).squareRoot() }
        for ch in 0..<c {
            let row = x + ch * stride, out = y + ch * stride
            let w = weight.map { Double($0[ch]) } ?? 1
            let b = bias.map { Double($0[ch]) } ?? 0
            for s in 0..<len { out[s] = Float((Double(row[s]) - mean[s]) * rstd[s] * w + b) }
        }
    }

    /// Group normalisation, `torch.nn.functional.group_norm(x, groups, weight, bias, eps)`.
    ///
    /// Statistics per `(n, g)` over channels `g*c/groups ..< (g+1)*c/groups` and all pixels (biased variance);
    /// `y[n, ch, s] = (x - mu[n, g]) / sqrt(var[n, g] + eps) * weight[ch] + bias[ch]` (per-channel affine).
    /// - Parameters:
    ///   - x: `[n, c, spatial]` row-major (NCHW, `spatial = H * W`).
    ///   - groups: `G`, dividing `c` (the caller checks; a non-dividing G returns without writing).
    ///   - weight, bias: `c` values each, or nil.
    ///   - y: `[n, c, spatial]`; may equal `x`.
    public static func groupNorm(_ x: UnsafePointer<Float>, n: Int, c: Int, groups: Int, spatial: Int,
                                 weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, eps: Double,
                                 _ y: UnsafeMutablePointer<Float>) {
        guard n > 0, c > 0, spatial > 0, groups > 0, c % groups == 0 else { return }
        let cg = c / groups
        let len = cg * spatial                  // elements of one (n, g), contiguous
        let slices = n * groups
        let chunksPer = (len + chunk - 1) / chunk
        let partial = UnsafeMutablePointer<Double>.allocate(capacity: slices * chunksPer)
        let stats = UnsafeMutablePointer<Double>.allocate(capacity: 2 * slices)
        defer { partial.deallocate(); stats.deallocate() }
        // Pass 1: chunk sums -> means.
        Threading.parallelFor(slices * chunksPer) { item in
            let sl = item / chunksPer, k = item % chunksPer
            let lo = k * chunk
            partial[item] = sumDouble(x + sl * len + lo, count: min(chunk, len - lo))
        }
        for sl in 0..<slices {
            var s = 0.0
            for k in 0..<chunksPer { s += partial[sl * chunksPer + k] }
            stats[2 * sl] = s / Double(len)
        }
        // Pass 2: chunk sums of squared deviations -> 1/std.
        Threading.parallelFor(slices * chunksPer) { item in
            let sl = item / chunksPer, k = item % chunksPer
            let lo = k * chunk
            partial[item] = sumSquaredDeviation(x + sl * len + lo, count: min(chunk, len - lo), mean: stats[2 * sl])
        }
        for sl in 0..<slices {
            var s = 0.0
            for k in 0..<chunksPer { s += partial[sl * chunksPer + k] }
            stats[2 * sl + 1] = 1 / (s / Double(len) + eps).squareRoot()
        }
        // Pass 3: per-channel affine.
        Threading.parallelFor(n * c, grain: max(1, 16384 / spatial)) { plane in
            let ch = plane % c
            let sl = (plane / c) * groups + ch / cg
            let mu = stats[2 * sl], rstd = stats[2 * sl + 1]
            let w = weight.map { Double($0[ch]) } ?? 1
            let b = bias.map { Double($0[ch]) } ?? 0
            let xs = x + plane * spatial, ys = y + plane * spatial
            let k = rstd * w
            for i in 0..<spatial { ys[i] = Float((Double(xs[i]) - mu) * k + b) }
        }
    }

    // MARK: - Reductions

    /// Sum of `count` floats in Double, four interleaved accumulators (a fixed order).
    @inline(__always)
    static func sumDouble(_ x: UnsafePointer<Float>, count: Int) -> Double {
        var a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0
        var i = 0
        while i + 4 <= count {
            a0 += Double(x[i]); a1 += Double(x[i + 1]); a2 += Double(x[i + 2]); a3 += Double(x[i + 3])
            i += 4
        }
        while i < count { a0 += Double(x[i]); i += 1 }
        return (a0 + a1) + (a2 + a3)
    }

    /// `sum (x - mean)^2` over `count` floats in Double.
    @inline(__always)
    static func sumSquaredDeviation(_ x: UnsafePointer<Float>, count: Int, mean: Double) -> Double {
        var a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0
        var i = 0
        while i + 4 <= count {
            let d0 = Double(x[i]) - mean, d1 = Double(x[i + 1]) - mean
            let d2 = Double(x[i + 2]) - mean, d3 = Double(x[i + 3]) - mean
            a0 += d0 * d0; a1 += d1 * d1; a2 += d2 * d2; a3 += d3 * d3
            i += 4
        }
        while i < count { let d = Double(x[i]) - mean; a0 += d * d; i += 1 }
        return (a0 + a1) + (a2 + a3)
    }
}

// MARK: - Tensor wrappers

extension NormKernels {
    /// Calls `body` with the base address of an optional tensor (nil for nil or empty).
    static func withOptional<R>(_ t: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let t else { return body(nil) }
        return t.withUnsafeBufferPointer { body($0.baseAddress) }
    }

    static func checkVector(_ t: Tensor?, _ n: Int, _ name: String, _ op: String) throws {
        if let t, t.count != n { throw KernelArgumentError("\(op): \(name) has \(t.count) values, expected \(n)") }
    }

    /// Inference `batch_norm` of an `[N, C, ...]` tensor (rank >= 2) with `[C]` statistics and affine.
    /// - Throws: `KernelArgumentError` on mismatched sizes.
    public static func batchNorm(_ x: Tensor, mean: Tensor, variance: Tensor, weight: Tensor?, bias: Tensor?,
                                 eps: Double) throws -> Tensor {
        guard x.rank >= 2 else { throw KernelArgumentError("batchNorm: rank \(x.rank) < 2") }
        let n = x.shape[0], c = x.shape[1], sp = x.shape.dropFirst(2).reduce(1, *)
        for (t, name) in [(mean, "running_mean"), (variance, "running_var")] { try checkVector(t, c, name, "batchNorm") }
        try checkVector(weight, c, "weight", "batchNorm"); try checkVector(bias, c, "bias", "batchNorm")
        var y = Tensor(zeros: x.shape, layout: x.layout)
        x.withUnsafeBufferPointer { xs in y.withUnsafeMutableBufferPointer { ys in
            mean.withUnsafeBufferPointer { ms in variance.withUnsafeBufferPointer { vs in
                withOptional(weight) { w in withOptional(bias) { b in
                    guard let xb = xs.baseAddress, let yb = ys.baseAddress, let mb = ms.baseAddress,
                          let vb = vs.baseAddress else { return }
                    batchNorm(xb, n: n, c: c, spatial: sp, mean: mb, var: vb, weight: w, bias: b, eps: eps, yb)
                } }
            } }
        } }
        return y
    }

    /// `layer_norm` over the last dimension of `x` (`[..., C]`), `weight` / `bias` `[C]` or nil.
    /// - Throws: `KernelArgumentError` on mismatched sizes.
    public static func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Double) throws -> Tensor {
        guard let cols = x.shape.last, cols > 0 else { throw KernelArgumentError("layerNorm: empty shape \(x.shape)") }
        try checkVector(weight, cols, "weight", "layerNorm"); try checkVector(bias, cols, "bias", "layerNorm")
        let rows = x.count / cols
        var y = Tensor(uninitialized: x.shape, layout: x.layout)   // every row is written below
        x.withUnsafeBufferPointer { xs in y.withUnsafeMutableBufferPointer { ys in
            withOptional(weight) { w in withOptional(bias) { b in
                guard let xb = xs.baseAddress, let yb = ys.baseAddress else { return }
                layerNorm(xb, rows: rows, cols: cols, weight: w, bias: b, eps: eps, yb)
            } }
        } }
        return y
    }

    /// `x += residual`, then `layerNorm(x)` over the last dimension (one pass; see
    /// `addLayerNorm(_:residual:rows:cols:weight:bias:eps:_:)`). `x` and `residual` have the same shape.
    /// - Returns: the normalised tensor, shape of `x`.
    /// - Throws: `KernelArgumentError` on mismatched sizes.
    public static func addLayerNorm(_ x: inout Tensor, residual: Tensor, weight: Tensor?, bias: Tensor?,
                                    eps: Double) throws -> Tensor {
        guard let cols = x.shape.last, cols > 0 else { throw KernelArgumentError("addLayerNorm: empty shape \(x.shape)") }
        guard residual.shape == x.shape else {
            throw KernelArgumentError("addLayerNorm: residual \(residual.shape) does not match \(x.shape)")
        }
        try checkVector(weight, cols, "weight", "addLayerNorm"); try checkVector(bias, cols, "bias", "addLayerNorm")
        let rows = x.count / cols
        var y = Tensor(uninitialized: x.shape, layout: x.layout)   // every row is written below
        residual.withUnsafeBufferPointer { rs in x.withUnsafeMutableBufferPointer { xs in y.withUnsafeMutableBufferPointer { ys in
            withOptional(weight) { w in withOptional(bias) { b in
                guard let xb = xs.baseAddress, let rb = rs.baseAddress, let yb = ys.baseAddress else { return }
                addLayerNorm(xb, residual: rb, rows: rows, cols: cols, weight: w, bias: b, eps: eps, yb)
            } }
        } } }
        return y
    }

    /// LayerNorm2d over the channels of an `[N, C, H, W]` tensor, `weight` / `bias` `[C]` or nil.
    /// - Throws: `KernelArgumentError` on mismatched sizes.
    public static func layerNorm2d(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Double) throws -> Tensor {
        guard x.rank >= 2 else { throw KernelArgumentError("layerNorm2d: rank \(x.rank) < 2") }
        let n = x.shape[0], c = x.shape[1], sp = x.shape.dropFirst(2).reduce(1, *)
        try checkVector(weight, c, "weight", "layerNorm2d"); try checkVector(bias, c, "bias", "layerNorm2d")
        var y = Tensor(zeros: x.shape, layout: x.layout)
        x.withUnsafeBufferPointer { xs in y.withUnsafeMutableBufferPointer { ys in
            withOptional(weight) { w in withOptional(bias) { b in
                guard let xb = xs.baseAddress, let yb = ys.baseAddress else { return }
                layerNorm2d(xb, n: n, c: c, spatial: sp, weight: w, bias: b, eps: eps, yb)
            } }
        } }
        return y
    }

    /// `group_norm` of an `[N, C, ...]` tensor with `groups` groups, `weight` / `bias` `[C]` or nil.
    /// - Throws: `KernelArgumentError` when `groups` does not divide C or sizes mismatch.
    public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Double) throws -> Tensor {
        guard x.rank >= 2 else { throw KernelArgumentError("groupNorm: rank \(x.rank) < 2") }
        let n = x.shape[0], c = x.shape[1], sp = x.shape.dropFirst(2).reduce(1, *)
        guard groups > 0, c % groups == 0 else { throw KernelArgumentError("groupNorm: \(groups) groups for \(c) channels") }
        try checkVector(weight, c, "weight", "groupNorm"); try checkVector(bias, c, "bias", "groupNorm")
        var y = Tensor(zeros: x.shape, layout: x.layout)
        x.withUnsafeBufferPointer { xs in y.withUnsafeMutableBufferPointer { ys in
            withOptional(weight) { w in withOptional(bias) { b in
                guard let xb = xs.baseAddress, let yb = ys.baseAddress else { return }
                groupNorm(xb, n: n, c: c, groups: groups, spatial: sp, weight: w, bias: b, eps: eps, yb)
            } }
        } }
        return y
    }
}
