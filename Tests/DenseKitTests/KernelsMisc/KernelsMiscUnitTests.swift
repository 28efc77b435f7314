import XCTest
@testable import DenseKit

/// Edge cases of the non-GEMM kernels that the golden cases do not pin down.
final class KernelsMiscUnitTests: XCTestCase {
    func testPoolOutputSizeRules() {
        // VoVNet MaxPool2d(3, 2, ceil_mode=True): 13 -> 6, 16 -> 8.
        let v = Pool2dParameters(kernel: 3, stride: 2, ceilMode: true)
        XCTAssertTrue(v.outputSize(height: 13, width: 16) == (6, 8))
        // The ceil-mode window that would start in the bottom padding is dropped: 5 -> 2.
        let d = Pool2dParameters(kernel: 2, stride: 3, padding: 1, ceilMode: true)
        XCTAssertEqual(d.outputSize(height: 5, width: 8).height, 2)
        XCTAssertEqual(d.outputSize(height: 5, width: 8).width, 3)
        // Floor mode, dilation 2: (10 + 2 - 2*2 - 1)/1 + 1 = 8.
        let dl = Pool2dParameters(kernelH: 3, kernelW: 3, strideH: 1, strideW: 1, padH: 1, padW: 1, dilationH: 2, dilationW: 2)
        XCTAssertEqual(dl.outputSize(height: 10, width: 10).height, 8)
        // Too small an input: no window.
        XCTAssertEqual(Pool2dParameters(kernel: 5, stride: 1).outputSize(height: 3, width: 3).height, 0)
    }

    func testMaxPoolDilationMatchesNaive() throws {
        let x = KernelsMiscThreadingTests.random([1, 3, 11, 13], seed: 11)
        let p = Pool2dParameters(kernelH: 3, kernelW: 2, strideH: 2, strideW: 3, padH: 1, padW: 1,
                                 dilationH: 2, dilationW: 3, ceilMode: true)
        let y = try PoolKernels.maxPool2d(x, p)
        let (oh, ow) = p.outputSize(height: 11, width: 13)
        XCTAssertEqual(y.shape, [1, 3, oh, ow])
        for c in 0..<3 { for i in 0..<oh { for j in 0..<ow {
            var m = -Float.infinity
            for a in 0..<3 { for b in 0..<2 {
                let h = i * 2 - 1 + a * 2, w = j * 3 - 1 + b * 3
                if h >= 0 && h < 11 && w >= 0 && w < 13 { m = max(m, x[0, c, h, w]) }
            } }
            XCTAssertEqual(y[0, c, i, j], m)
        } } }
    }

    func testAvgPoolDivisorOverrideAndExclusion() throws {
        let x = Tensor(shape: [1, 1, 2, 2], values: [1, 2, 3, 4])
        var p = Pool2dParameters(kernel: 2, stride: 2, padding: 1)
        XCTAssertEqual(try PoolKernels.avgPool2d(x, p).scalars, [0.25, 0.5, 0.75, 1])
        p.countIncludePad = false
        XCTAssertEqual(try PoolKernels.avgPool2d(x, p).scalars, [1, 2, 3, 4])
        p.divisorOverride = 2
        XCTAssertEqual(try PoolKernels.avgPool2d(x, p).scalars, [0.5, 1, 1.5, 2])
        p.dilationH = 2
        XCTAssertThrowsError(try PoolKernels.avgPool2d(x, p))
    }

    func testActivationExtremes() {
        let x = Tensor(shape: [8], values: [-30000, 30000, -89, 89, -88.8, 3, -3, .nan])
        let silu = ElementwiseKernels.activation(.silu, x).scalars
        XCTAssertEqual(silu[0], 0); XCTAssertEqual(silu[1], 30000); XCTAssertFalse(silu[0].isNaN)
        let sig = ElementwiseKernels.activation(.sigmoid, x).scalars
        XCTAssertEqual(sig[0], 0); XCTAssertEqual(sig[1], 1); XCTAssertEqual(sig[3], 1)
        let gt = ElementwiseKernels.activation(.geluTanh, x).scalars
        XCTAssertEqual(gt[0], 0); XCTAssertEqual(gt[1], 30000)
        let g = ElementwiseKernels.activation(.gelu, x).scalars
        XCTAssertEqual(g[0], 0); XCTAssertEqual(g[1], 30000)
        let hs = ElementwiseKernels.activation(.hardSwish, x).scalars
        XCTAssertEqual(hs[5], 3); XCTAssertEqual(hs[6], 0)
        XCTAssertTrue(ElementwiseKernels.activation(.relu, x).scalars[7].isNaN)
    }

    func testSoftmaxLargeAndLogSoftmaxTail() throws {
        let x = Tensor(shape: [1, 3], values: [1000, 0, -4000])
        let s = try SoftmaxKernels.softmax(x, dim: 1).scalars
        XCTAssertEqual(s[0], 1); XCTAssertEqual(s[2], 0)
        let l = try SoftmaxKernels.logSoftmax(x, dim: -1).scalars
        XCTAssertEqual(l[0], 0); XCTAssertEqual(l[1], -1000); XCTAssertEqual(l[2], -5000)
        XCTAssertThrowsError(try SoftmaxKernels.softmax(x, dim: 2))
    }

    func testPadModes() throws {
        let x = Tensor(shape: [1, 4], values: [1, 2, 3, 4])
        XCTAssertEqual(try ShapeKernels.pad(x, [2, 1], mode: .reflect).scalars, [3, 2, 1, 2, 3, 4, 3])
        XCTAssertEqual(try ShapeKernels.pad(x, [1, 2], mode: .replicate).scalars, [1, 1, 2, 3, 4, 4, 4])
        XCTAssertEqual(try ShapeKernels.pad(x, [-1, 1], mode: .constant, value: 9).scalars, [2, 3, 4, 9])
        XCTAssertThrowsError(try ShapeKernels.pad(x, [4, 0], mode: .reflect))
        XCTAssertThrowsError(try ShapeKernels.pad(x, [1, 1, 1], mode: .constant))
    }

    func testGatherChecksIndices() throws {
        let x = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let y = try ShapeKernels.gather(x, dim: 1, index: IndexTensor(shape: [2, 2], values: [2, 0, 1, 1]))
        XCTAssertEqual(y.scalars, [3, 1, 5, 5])
        let z = try ShapeKernels.gather(x, dim: 0, index: IndexTensor(shape: [1, 3], values: [1, 0, 1]))
        XCTAssertEqual(z.scalars, [4, 2, 6])
        XCTAssertThrowsError(try ShapeKernels.gather(x, dim: 1, index: IndexTensor(shape: [1, 1], values: [3])))
        XCTAssertThrowsError(try ShapeKernels.gather(x, dim: 1, index: IndexTensor(shape: [1, 1], values: [-1])))
        XCTAssertThrowsError(try ShapeKernels.gather(x, dim: 0, index: IndexTensor(shape: [1, 4], values: [0, 0, 0, 0])))
    }

    func testTopKAndArgmaxTiesAndNaN() throws {
        let x = Tensor(shape: [1, 5], values: [1, 5, .nan, 5, -2])
        let t = try ReduceKernels.topK(x, k: 3, dim: 1)
        XCTAssertEqual(t.indices.values, [2, 1, 3])
        let s = try ReduceKernels.topK(x, k: 2, dim: -1, largest: false)
        XCTAssertEqual(s.indices.values, [4, 0])
        XCTAssertEqual(try ReduceKernels.argmax(Tensor(shape: [4], values: [1, 3, 3, 0]), dim: 0).values, [1])
        XCTAssertEqual(try ReduceKernels.argmax(x, dim: 1).values, [2])
        XCTAssertThrowsError(try ReduceKernels.topK(x, k: 6, dim: 1))
    }

    func testL2NormalizeClampsTheNorm() throws {
        let x = Tensor(shape: [3, 2], values: [0, 0, 3e-14, 4e-14, 3, 4])
        let y = try ReduceKernels.l2Normalize(x, dim: 1).scalars
        XCTAssertEqual(y[0], 0); XCTAssertEqual(y[1], 0)
        XCTAssertEqual(y[2], 0.03, accuracy: 1e-6); XCTAssertEqual(y[3], 0.04, accuracy: 1e-6)
        XCTAssertEqual(y[4], 0.6, accuracy: 1e-7); XCTAssertEqual(y[5], 0.8, accuracy: 1e-7)
    }

    func testPixelShuffleRoundTrip() throws {
        let x = KernelsMiscThreadingTests.random([2, 18, 4, 5], seed: 12)
        let up = try ShapeKernels.pixelShuffle(x, factor: 3)
        XCTAssertEqual(up.shape, [2, 2, 12, 15])
        XCTAssertEqual(up[1, 1, 7, 11], x[1, 1 * 9 + (7 % 3) * 3 + (11 % 3), 7 / 3, 11 / 3])
        XCTAssertEqual(try ShapeKernels.pixelUnshuffle(up, factor: 3).scalars, x.scalars)
        XCTAssertThrowsError(try ShapeKernels.pixelShuffle(x, factor: 4))
    }

    func testConcatAlongLastDim() throws {
        let a = Tensor(shape: [2, 1], values: [1, 2]), b = Tensor(shape: [2, 2], values: [3, 4, 5, 6])
        XCTAssertEqual(try ShapeKernels.concat([a, b], dim: -1).scalars, [1, 3, 4, 2, 5, 6])
        XCTAssertThrowsError(try ShapeKernels.concat([a, b], dim: 0))
    }

    func testInterpolateNearestFloat32IndexRule() throws {
        // 6 -> 74: dst 37 reads row 2 (float32 product just below 3).
        let x = Tensor(shape: [1, 1, 6, 1]) { Float($0) }
        let y = try ResizeKernels.interpolate(x, mode: .nearest, size: (74, 1))
        XCTAssertEqual(y[0, 0, 37, 0], 2)
        // Bilinear with an unchanged axis copies it whatever the factor.
        let z = try ResizeKernels.interpolate(Tensor(shape: [1, 1, 5, 1]) { Float($0 * $0) }, mode: .bilinear,
                                              scaleFactor: (1.1, 1.0))
        XCTAssertEqual(z.scalars, [0, 1, 4, 9, 16])
        XCTAssertThrowsError(try ResizeKernels.interpolate(x, mode: .bilinear))
    }

    /// The vectorised exp / sigmoid / SiLU / GELU agree with the Double-precision formulas.
    func testVectorMathAccuracy() {
        var xs: [Float] = []
        var v: Float = -120
        while v < 120 { xs.append(v); v += 0.00731 }
        xs += [0, -0, 1e-30, -1e-30, 88.72, 88.73, -87.3, -87.4, 30000, -30000, .infinity, -.infinity]
        let n = xs.count
        var out = [Float](repeating: 0, count: n)
        func check(_ name: String, _ f: (Float) -> Float, _ ref: (Double) -> Double, atol: Double, rtol: Double) {
            for i in 0..<n { out[i] = f(xs[i]) }
            var worst = 0.0, at: Float = 0
            for i in 0..<n {
                let want = ref(Double(xs[i])), got = Double(out[i])
                if want.isNaN { continue }   // inf * 0 in the formula itself (PyTorch gives NaN too)
                if Float(want).isInfinite { XCTAssertEqual(got, Double(Float(want)), "\(name)(\(xs[i]))"); continue }
                XCTAssertFalse(got.isNaN, "\(name)(\(xs[i])) is NaN")
                let excess = abs(got - want) / (atol + rtol * abs(want))
                if excess > worst { worst = excess; at = xs[i] }
            }
            XCTAssertLessThanOrEqual(worst, 1, "\(name): worst at x = \(at)")
        }
        check("exp", VectorMath.exp1, { Foundation.exp($0) }, atol: 1e-37, rtol: 4e-7)
        check("sigmoid", VectorMath.sigmoid1, { 1 / (1 + Foundation.exp(-$0)) }, atol: 1e-7, rtol: 4e-7)
        check("silu", VectorMath.silu1, { $0 / (1 + Foundation.exp(-$0)) }, atol: 1e-7, rtol: 4e-7)
        check("gelu", VectorMath.gelu1, { 0.5 * $0 * erfc(-$0 / 2.0.squareRoot()) }, atol: 1e-7, rtol: 1e-6)
        check("geluTanh", VectorMath.geluTanh1, { x in
            0.5 * x * (1 + tanh(0.79788456080286535588 * (x + 0.044715 * x * x * x))) }, atol: 1e-7, rtol: 1e-6)
        for f in [VectorMath.exp1, VectorMath.sigmoid1, VectorMath.silu1, VectorMath.gelu1, VectorMath.geluTanh1] {
            XCTAssertTrue(f(.nan).isNaN)
        }
        // The element-wise kernel (the FMA GELU on AVX-512, else the formula above) within 1e-6 of the erf form.
        let t = Tensor(shape: [n], values: xs)
        let g = ElementwiseKernels.activation(.gelu, t).scalars
        for i in 0..<n where xs[i].isFinite {
            let exact = 0.5 * Double(xs[i]) * erfc(-Double(xs[i]) / 2.0.squareRoot())
            XCTAssertEqual(Double(g[i]), exact, accuracy: 1e-6 * max(1, abs(exact)), "gelu(\(xs[i]))")
        }
    }
}
