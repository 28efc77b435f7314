import CKernels
import Foundation

// Building blocks shared by the kMaX pixel decoder, the k-means decoder and the read-outs
// (spec `polymax-head.md` sections 1, 3, 4, 5). All of them work on ONE image (batch element)
// stored as a plain row-major `[Float]`: a feature map `[C, H, W]` or a cluster tensor `[C, K]`.

/// Reads a kMaX module's tensors under a key prefix, checking shapes and recording which keys
/// were used (so that a builder can report unexpected tensors).
final class KMaXWeightReader {
    let source: any WeightSource
    let model: String
    private(set) var used = Set<String>()

    init(source: any WeightSource, model: String) {
        self.source = source
        self.model = model
    }

    /// Whether `key` exists.
    func has(_ key: String) -> Bool { source.shape(of: key) != nil }

    /// The tensor `key`, whose shape must be `shape` (or, when `alternatives` are given, one of them).
    /// - Throws: `ModelConfigError.missingWeights` / `.weightShapes`.
    func tensor(_ key: String, shape: [Int], alternatives: [[Int]] = []) throws -> Tensor {
        guard let s = source.shape(of: key) else { throw ModelConfigError.missingWeights(model: model, keys: [key]) }
        guard s == shape || alternatives.contains(s) else {
            throw ModelConfigError.weightShapes(model: model, mismatches: ["\(key): expected \(shape), found \(s)"])
        }
        used.insert(key)
        return try source.tensor(key)
    }

    /// Marks `key` as known (e.g. `num_batches_tracked`, which carries no inference information).
    func markUsed(_ key: String) { used.insert(key) }

    /// Keys under `prefixes` that were not read, ignoring `num_batches_tracked` and training-only keys.
    func unexpected(under prefixes: [String]) -> [String] {
        source.keys.filter { k in
            if used.contains(k) { return false }
            if k.hasSuffix("num_batches_tracked") { return false }
            if k.contains("_auxiliary_semantic_predictor") || k.hasPrefix("criterion.") { return false }
            return prefixes.isEmpty || prefixes.contains { k.hasPrefix($0) }
        }
    }
}

/// Inference BatchNorm as a per-channel affine map `y = x * scale + shift` (spec section 1).
struct KMaXAffine: Sendable {
    var scale: [Float]
    var shift: [Float]
    var channels: Int { scale.count }

    /// Loads `prefix.{weight,bias,running_mean,running_var}` (`[n]`) with epsilon `eps`.
    static func load(_ r: KMaXWeightReader, _ prefix: String, channels n: Int, eps: Double) throws -> KMaXAffine {
        let g = try r.tensor(prefix + ".weight", shape: [n]).scalars
        let b = try r.tensor(prefix + ".bias", shape: [n]).scalars
        let m = try r.tensor(prefix + ".running_mean", shape: [n]).scalars
        let v = try r.tensor(prefix + ".running_var", shape: [n]).scalars
        r.markUsed(prefix + ".num_batches_tracked")
        var scale = [Float](repeating: 0, count: n), shift = [Float](repeating: 0, count: n)
        for i in 0..<n {
            let s = Double(g[i]) / (Double(v[i]) + eps).squareRoot()
            scale[i] = Float(s)
            shift[i] = Float(Double(b[i]) - Double(m[i]) * s)
        }
        return KMaXAffine(scale: scale, shift: shift)
    }

    /// Applies the map in place to `[channels, n]` values.
    func apply(_ x: inout [Float], n: Int) {
        x.withUnsafeMutableBufferPointer { p in
            guard let base = p.baseAddress else { return }
            for c in 0..<scale.count {
                let a = scale[c], s = shift[c]
                let row = base + c * n
                for i in 0..<n { row[i] = row[i] * a + s }
            }
        }
    }
}

/// A k x k convolution ("same" padding, stride 1, optional groups) with its BN folded and an activation,
/// run by `Conv2dOperator` (the bottleneck 3x3 and the predictor's 5x5 depthwise conv).
struct KMaXSpatialConv: @unchecked Sendable {
    let op: Conv2dOperator
    let cin: Int
    let cout: Int

    static func load(_ r: KMaXWeightReader, _ prefix: String, cin: Int, cout: Int, kernel: Int, groups: Int,
                     activation: Activation, eps: Double) throws -> KMaXSpatialConv {
        let w = try r.tensor(prefix + ".conv.weight", shape: [cout, cin / groups, kernel, kernel])
        let bias: Tensor? = r.has(prefix + ".conv.bias") ? try r.tensor(prefix + ".conv.bias", shape: [cout]) : nil
        let g = try r.tensor(prefix + ".norm.weight", shape: [cout])
        let be = try r.tensor(prefix + ".norm.bias", shape: [cout])
        let m = try r.tensor(prefix + ".norm.running_mean", shape: [cout])
        let v = try r.tensor(prefix + ".norm.running_var", shape: [cout])
        r.markUsed(prefix + ".norm.num_batches_tracked")
        let folded = try Conv2dOperator.foldBatchNormChecked(weight: w, bias: bias, gamma: g, beta: be,
                                                             runningMean: m, runningVar: v, eps: Float(eps))
        let p = Conv2dParameters(inChannels: cin, outChannels: cout, kernelH: kernel, kernelW: kernel,
                                 padH: kernel / 2, padW: kernel / 2, groups: groups, activation: activation)
        return KMaXSpatialConv(op: try Conv2dOperator(p, weight: folded.weight, bias: folded.bias), cin: cin, cout: cout)
    }

    /// `[cout, h, w]` from `[cin, h, w]`. The operator writes every output value and uses its workspace as
    /// scratch only, so neither is zero-filled first.
    func callAsFunction(_ x: [Float], h: Int, w: Int) -> [Float] {
        let count = cout * h * w
        let need = op.workspaceCount(batch: 1, height: h, width: w)
        return [Float](unsafeUninitializedCapacity: count) { y, done in
            done = count
            guard let yb = y.baseAddress else { return }
            withUnsafeTemporaryAllocation(of: Float.self, capacity: max(1, need)) { ws in
                x.withUnsafeBufferPointer { xp in
                    guard let xb = xp.baseAddress else { yb.update(repeating: 0, count: count); return }
                    op.forward(input: xb, batch: 1, height: h, width: w, output: yb, workspace: ws.baseAddress)
                }
            }
        }
    }
}

/// Small element-wise helpers on one image.
enum KMaXMath {
    /// Values per parallel chunk of an element-wise activation (fixed, so results do not depend on the thread count).
    static let chunk = 16384

    /// `x = act(x)` in place, split into fixed chunks over `Threading.parallelFor`.
    static func applyParallel(_ act: Activation, _ x: UnsafeMutablePointer<Float>, count: Int) {
        if act == .none || count <= 0 { return }
        let chunks = (count + chunk - 1) / chunk
        Threading.parallelFor(chunks) { c in
            let lo = c * chunk
            act.apply(x + lo, count: min(chunk, count - lo))
        }
    }

    /// Exact GELU of every element (a copy).
    static func gelu(_ x: [Float]) -> [Float] {
        var y = x
        y.withUnsafeMutableBufferPointer { p in
            guard let b = p.baseAddress else { return }
            applyParallel(.gelu, b, count: p.count)
        }
        return y
    }

    /// `[rows, cols]` -> `[cols, rows]`, in blocks of 32 x 32.
    static func transposed(_ x: [Float], rows: Int, cols: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: rows * cols) { y, done in
            done = rows * cols
            x.withUnsafeBufferPointer { xp in
                guard let xb = xp.baseAddress, let yb = y.baseAddress else { return }
                let bs = 32
                for r0 in stride(from: 0, to: rows, by: bs) {
                    for c0 in stride(from: 0, to: cols, by: bs) {
                        for r in r0..<min(rows, r0 + bs) {
                            for c in c0..<min(cols, c0 + bs) { yb[c * rows + r] = xb[r * cols + c] }
                        }
                    }
                }
            }
        }
    }

    /// `y = act(y + b)` element-wise, in place, in fixed chunks over the threads (the activation runs on each
    /// chunk while it is in cache).
    static func addInPlace(_ y: inout [Float], _ b: [Float], activation: Activation = .none) {
        let n = min(y.count, b.count)
        y.withUnsafeMutableBufferPointer { p in
            b.withUnsafeBufferPointer { q in
                guard let pb = p.baseAddress, let qb = q.baseAddress else { return }
                Threading.parallelFor((n + chunk - 1) / chunk) { c in
                    let lo = c * chunk, hi = min(n, lo + chunk)
                    for i in lo..<hi { pb[i] += qb[i] }
                    activation.apply(pb + lo, count: hi - lo)
                }
            }
        }
    }

    /// Channels-first LayerNorm of `[C, H*W]` (spec 1: biased variance, `eps`), per pixel over C, followed by
    /// `activation` (applied in the same pass).
    static func layerNormChannels(_ x: [Float], channels c: Int, pixels n: Int, weight: [Float], bias: [Float], eps: Float,
                                  activation: Activation = .none) -> [Float] {
        var y = [Float](unsafeUninitializedCapacity: c * n) { _, done in done = c * n }   // every value written below
        var mean = [Float](repeating: 0, count: n), inv = [Float](repeating: 0, count: n)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                mean.withUnsafeMutableBufferPointer { mp in
                    inv.withUnsafeMutableBufferPointer { vp in
                        guard let xb = xp.baseAddress, let yb = yp.baseAddress, let mb = mp.baseAddress, let vb = vp.baseAddress else { return }
                        // Fixed pixel chunks in parallel; inside a chunk, row-wise passes (contiguous, vectorisable):
                        // mean, biased variance, then normalise. A chunk's c rows stay within ~256 KB, so the three
                        // passes read them from L2 (the sums run over channels in the same order for any chunk).
                        let pc = max(64, min(2048, (64 * 1024 / max(1, c)) & ~15))
                        Threading.parallelFor((n + pc - 1) / pc) { chunk in
                            let lo = chunk * pc, cnt = min(pc, n - lo)
                            let m = mb + lo, v = vb + lo
                            for ch in 0..<c { let r = xb + ch * n + lo; for p in 0..<cnt { m[p] += r[p] } }
                            let rc = 1 / Float(c)
                            for p in 0..<cnt { m[p] *= rc }
                            for ch in 0..<c { let r = xb + ch * n + lo; for p in 0..<cnt { let d = r[p] - m[p]; v[p] += d * d } }
                            for p in 0..<cnt { v[p] = 1 / (v[p] * rc + eps).squareRoot() }
                            for ch in 0..<c {
                                let r = xb + ch * n + lo, o = yb + ch * n + lo, wc = weight[ch], bc = bias[ch]
                                for p in 0..<cnt { o[p] = (r[p] - m[p]) * v[p] * wc + bc }
                                activation.apply(o, count: cnt)
                            }
                        }
                    }
                }
            }
        }
        return y
    }

    /// Bilinear resize of `[C, inH, inW]` to `[C, outH, outW]` (`F.interpolate`, spec 1).
    static func resize(_ x: [Float], channels c: Int, inH: Int, inW: Int, outH: Int, outW: Int, alignCorners: Bool) -> [Float] {
        if inH == outH && inW == outW { return x }
        var y = [Float](repeating: 0, count: c * outH * outW)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                guard let xb = xp.baseAddress, let yb = yp.baseAddress else { return }
                ResizeKernels.bilinear(xb, planes: c, inH: inH, inW: inW, outH: outH, outW: outW,
                                       alignCorners: alignCorners, scaleH: nil, scaleW: nil, yb)
            }
        }
        return y
    }
}
