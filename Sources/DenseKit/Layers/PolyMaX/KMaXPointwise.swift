import CKernels
import Foundation

/// A 1x1 convolution (2-D on a feature map `[Cin, H*W]`, or 1-D on a cluster tensor `[Cin, K]`)
/// with its BatchNorm folded in and an optional activation (`ConvBN_1x1` / `ConvBN_1x1d`, spec 1).
struct KMaXPointwise: Sendable {
    let cin: Int
    let cout: Int
    /// `[cout, cin]`, BN folded.
    let weight: [Float]
    /// `[cout]`, BN folded (conv bias included).
    let bias: [Float]
    let activation: Activation
    /// The weight as 14-output-channel panels for DenseKit's 1x1 kernel (`dk_pointwise_conv`, `[ceil(cout/14)][cin][14]`)
    /// when the CPU has AVX-512 and the weight is within `Conv2dOperator.pointwisePanelBound`; else empty.
    let panels: [Float]

    /// A 1x1 convolution with `weight` `[cout, cin]` (BN folded), `bias` `[cout]` and a fused activation.
    init(cin: Int, cout: Int, weight: [Float], bias: [Float], activation: Activation) {
        self.cin = cin
        self.cout = cout
        self.weight = weight
        self.bias = bias
        self.activation = activation
        var packed: [Float] = []
        if dk_has_avx512() != 0, cin > 0, cout > 0, weight.count == cin * cout,
           cin * cout * 4 <= Conv2dOperator.pointwisePanelBound {
            let count = dk_pointwise_panel_floats(cout, cin)
            packed = [Float](unsafeUninitializedCapacity: count) { dst, done in
                weight.withUnsafeBufferPointer { w in
                    guard let d = dst.baseAddress else { return }
                    if let src = w.baseAddress {
                        Conv2dOperator.packPanels(src, cout: cout, inputs: cin, into: d)   // writes all `count` floats
                    } else {
                        d.initialize(repeating: 0, count: count)
                    }
                }
                done = count
            }
        }
        panels = packed
    }

    /// Loads `prefix.conv.weight` (`[cout, cin, 1, 1]` or `[cout, cin, 1]`), the optional `prefix.conv.bias`
    /// and, when `prefix.norm.weight` exists, the BN `prefix.norm.*` (folded with `eps`).
    static func load(_ r: KMaXWeightReader, _ prefix: String, cin: Int, cout: Int, activation: Activation,
                     eps: Double, requireNorm: Bool = true) throws -> KMaXPointwise {
        let w = try r.tensor(prefix + ".conv.weight", shape: [cout, cin, 1, 1], alternatives: [[cout, cin, 1]]).scalars
        var b = [Double](repeating: 0, count: cout)
        if r.has(prefix + ".conv.bias") {
            let bt = try r.tensor(prefix + ".conv.bias", shape: [cout]).scalars
            for i in 0..<cout { b[i] = Double(bt[i]) }
        }
        var wd = w.map { Double($0) }
        if r.has(prefix + ".norm.weight") || requireNorm {
            let g = try r.tensor(prefix + ".norm.weight", shape: [cout]).scalars
            let be = try r.tensor(prefix + ".norm.bias", shape: [cout]).scalars
            let m = try r.tensor(prefix + ".norm.running_mean", shape: [cout]).scalars
            let v = try r.tensor(prefix + ".norm.running_var", shape: [cout]).scalars
            r.markUsed(prefix + ".norm.num_batches_tracked")
            for o in 0..<cout {
                let s = Double(g[o]) / (Double(v[o]) + eps).squareRoot()
                for i in 0..<cin { wd[o * cin + i] *= s }
                b[o] = (b[o] - Double(m[o])) * s + Double(be[o])
            }
        }
        return KMaXPointwise(cin: cin, cout: cout, weight: wd.map { Float($0) }, bias: b.map { Float($0) }, activation: activation)
    }

    /// `y [cout, n] = act(W x + b)` for `x [cin, n]`.
    func callAsFunction(_ x: [Float], n: Int) -> [Float] {
        x.withUnsafeBufferPointer { xp in
            guard let xb = xp.baseAddress else { return [Float](repeating: 0, count: cout * n) }
            return channelMajor(xb, n: n, inputPositionMajor: false)
        }
    }

    /// `y [cout, n] = act(W x + b)` for `x` channel-major `[cin, n]` or, with `inputPositionMajor`, `[n, cin]`.
    /// The bias is written first and the GEMM accumulates onto it (`beta = 1`: no separate zeroing or bias pass).
    func channelMajor(_ x: UnsafePointer<Float>, n: Int, inputPositionMajor: Bool) -> [Float] {
        let count = cout * n
        return [Float](unsafeUninitializedCapacity: count) { y, done in
            done = count
            guard let yb = y.baseAddress else { return }
            if !inputPositionMajor && n > 0 && !panels.isEmpty && bias.count == cout && KernelDispatch.avx512 {
                pointwisePanels(x, n: n, y: yb)
                return
            }
            bias.withUnsafeBufferPointer { bp in
                Threading.parallelFor(cout, grain: max(1, KMaXMath.chunk / max(1, n))) { o in
                    (yb + o * n).update(repeating: bp[o], count: n)
                }
            }
            if n == 0 || cin == 0 { KMaXMath.applyParallel(activation, yb, count: count); return }
            weight.withUnsafeBufferPointer { wp in
                guard let wb = wp.baseAddress else { return }
                BLAS.sgemm(transB: inputPositionMajor, m: cout, n: n, k: cin, a: wb, lda: cin,
                           b: x, ldb: inputPositionMajor ? cin : n, beta: 1, c: yb, ldc: n)
            }
            KMaXMath.applyParallel(activation, yb, count: count)
        }
    }

    /// `channelMajor` on the 1x1 kernel: work items of blocks of 32 pixels and runs of output channels
    /// (`Conv2dOperator.PointwiseCut`) from the bias, ReLU fused, other activations on the item's pixels right after,
    /// taken by whichever thread is free (as `Conv2dOperator`'s 1x1 path). Each output sums its input channels in
    /// increasing order.
    private func pointwisePanels(_ x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>) {
        let cut = Conv2dOperator.PointwiseCut(pixels: n, outChannels: cout, planes: 1)
        let relu = activation == .relu, cin = cin
        panels.withUnsafeBufferPointer { pp in
            bias.withUnsafeBufferPointer { bp in
                guard let pw = pp.baseAddress, let bb = bp.baseAddress else { return }
                Conv2dOperator.runPanelItems(cut, outPixels: n, activation: activation) { _, p0, p1, o0, channels in
                    Conv2dOperator.pointwiseItem(x: x, hw: n, cin: cin, panels: pw + o0 * cin, cout: channels, bias: bb + o0,
                                                 relu: relu, y: y + o0 * n, p0: p0, p1: p1)
                    return y + o0 * n
                }
            }
        }
    }

    /// `y [cout, n] = act(y + W x + b)` in place (a residual sum: the bias goes onto `y`, the GEMM accumulates onto
    /// it, `beta = 1`), for `x` channel-major `[cin, n]` or, with `inputPositionMajor`, `[n, cin]`. The conv's own
    /// activation is not applied (this is for the no-activation convs that end a block).
    func accumulate(onto y: inout [Float], _ x: UnsafePointer<Float>, n: Int, inputPositionMajor: Bool, then act: Activation) {
        guard y.count == cout * n else { return }
        y.withUnsafeMutableBufferPointer { yp in
            guard let yb = yp.baseAddress else { return }
            bias.withUnsafeBufferPointer { bp in
                Threading.parallelFor(cout, grain: max(1, KMaXMath.chunk / max(1, n))) { o in
                    let row = yb + o * n, bo = bp[o]
                    for i in 0..<n { row[i] += bo }
                }
            }
            if n > 0 && cin > 0 {
                weight.withUnsafeBufferPointer { wp in
                    guard let wb = wp.baseAddress else { return }
                    BLAS.sgemm(transB: inputPositionMajor, m: cout, n: n, k: cin, a: wb, lda: cin,
                               b: x, ldb: inputPositionMajor ? cin : n, beta: 1, c: yb, ldc: n)
                }
            }
            KMaXMath.applyParallel(act, yb, count: cout * n)
        }
    }

    /// Position-major `y [n, cout] = act(x^T W^T + b)` for `x` channel-major `[cin, n]` or, with
    /// `inputPositionMajor`, `[n, cin]`: one GEMM either way, accumulating onto the bias rows (`beta = 1`).
    func positionMajor(_ x: UnsafePointer<Float>, n: Int, inputPositionMajor: Bool) -> [Float] {
        let count = cout * n
        return [Float](unsafeUninitializedCapacity: count) { y, done in
            done = count
            guard let yb = y.baseAddress else { return }
            bias.withUnsafeBufferPointer { bp in
                guard let bb = bp.baseAddress else { return }
                LinearOperator.fillBiasRows(yb, rows: n, columns: cout, stride: cout, bias: bb)
            }
            if n == 0 || cin == 0 { KMaXMath.applyParallel(activation, yb, count: count); return }
            weight.withUnsafeBufferPointer { wp in
                guard let wb = wp.baseAddress else { return }
                BLAS.sgemm(transA: !inputPositionMajor, transB: true, m: n, n: cout, k: cin,
                           a: x, lda: inputPositionMajor ? cin : n, b: wb, ldb: cin, beta: 1, c: yb, ldc: cout)
            }
            KMaXMath.applyParallel(activation, yb, count: count)
        }
    }
}
