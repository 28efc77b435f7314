import Foundation
import XCTest
@testable import DenseKit

/// Deterministic pseudo-random values in [-1, 1).
struct KAGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E3779B97F4A7C15 | 1 }
    mutating func next() -> Float {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return Float(state >> 40) / Float(1 << 23) - 1
    }
    mutating func tensor(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in next() })
    }
}

/// Naive float64 reference of conv2d with pre-padding (INDEX.md formula).
func referenceConv2d(_ x: Tensor, _ w: Tensor, _ b: Tensor?, _ p: Conv2dParameters) -> Tensor {
    let n = x.shape[0], cin = x.shape[1], h = x.shape[2], wd = x.shape[3]
    let o = p.outputSize(height: h, width: wd)
    let cinG = cin / p.groups, coutG = p.outChannels / p.groups
    let xs = x.scalars, ws = w.scalars, bs = b?.scalars
    var y = [Float](repeating: 0, count: n * p.outChannels * o.height * o.width)
    let top = p.padH + p.prePad[2], left = p.padW + p.prePad[0]
    for ni in 0..<n {
        for oc in 0..<p.outChannels {
            let g = oc / coutG
            for i in 0..<o.height {
                for j in 0..<o.width {
                    var acc = Double(bs?[oc] ?? 0)
                    for c in 0..<cinG {
                        for a in 0..<p.kernelH {
                            let ih = i * p.strideH - top + a * p.dilationH
                            if ih < 0 || ih >= h { continue }
                            for bb in 0..<p.kernelW {
                                let iw = j * p.strideW - left + bb * p.dilationW
                                if iw < 0 || iw >= wd { continue }
                                acc += Double(ws[((oc * cinG + c) * p.kernelH + a) * p.kernelW + bb])
                                    * Double(xs[((ni * cin + g * cinG + c) * h + ih) * wd + iw])
                            }
                        }
                    }
                    y[((ni * p.outChannels + oc) * o.height + i) * o.width + j] = p.activation.apply(Float(acc))
                }
            }
        }
    }
    return Tensor(shape: [n, p.outChannels, o.height, o.width], values: y)
}

func assertClose(_ a: Tensor, _ b: Tensor, tol: Float = 1e-4, _ msg: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.shape, b.shape, msg, file: file, line: line)
    guard a.shape == b.shape else { return }
    var worst: Float = 0
    for (x, y) in zip(a.scalars, b.scalars) { worst = max(worst, abs(x - y) / (1 + abs(y))) }
    XCTAssertLessThanOrEqual(worst, tol, msg, file: file, line: line)
}

/// Fails (with a short message) unless both tensors have the same shape and bit-identical values.
func assertBitIdentical(_ a: Tensor, _ b: Tensor, _ msg: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.shape, b.shape, msg, file: file, line: line)
    let x = a.scalars, y = b.scalars
    guard x.count == y.count else { return }
    var differ = 0, worst: Float = 0
    for i in 0..<x.count where x[i].bitPattern != y[i].bitPattern { differ += 1; worst = max(worst, abs(x[i] - y[i])) }
    XCTAssertEqual(differ, 0, "\(msg): \(differ) of \(x.count) values differ (max abs \(worst))", file: file, line: line)
}

final class ConvKernelTests: XCTestCase {
    override func tearDown() {
        Conv2dOperator.im2colBound = 8 << 20
        ConvTranspose2dOperator.colBound = 8 << 20
        AttentionHead.scoreBound = 4 << 20
    }

    /// Random configurations of every path (pointwise, im2col, depthwise fast and generic) against the naive reference.
    func testAgainstReference() throws {
        var rng = KAGenerator(seed: 11)
        struct C { var cin, cout, k, kw, s, sw, p, pw, d, g: Int; var pre: [Int] = [0, 0, 0, 0]; var act = Activation.none; var h = 23, w = 41 }
        let configs: [C] = [
            C(cin: 8, cout: 12, k: 1, kw: 1, s: 1, sw: 1, p: 0, pw: 0, d: 1, g: 1),
            C(cin: 8, cout: 12, k: 1, kw: 1, s: 1, sw: 1, p: 0, pw: 0, d: 1, g: 2, act: .relu),
            C(cin: 6, cout: 10, k: 3, kw: 3, s: 1, sw: 1, p: 1, pw: 1, d: 1, g: 1, act: .silu),
            C(cin: 6, cout: 10, k: 3, kw: 3, s: 2, sw: 2, p: 1, pw: 1, d: 1, g: 1),
            C(cin: 6, cout: 8, k: 5, kw: 3, s: 3, sw: 1, p: 2, pw: 0, d: 2, g: 2, pre: [1, 2, 0, 3]),
            C(cin: 3, cout: 16, k: 7, kw: 7, s: 2, sw: 2, p: 3, pw: 3, d: 1, g: 1, act: .gelu),
            C(cin: 8, cout: 8, k: 3, kw: 3, s: 1, sw: 1, p: 1, pw: 1, d: 1, g: 8, act: .relu6),
            C(cin: 8, cout: 16, k: 3, kw: 3, s: 2, sw: 2, p: 1, pw: 1, d: 1, g: 8),
            C(cin: 8, cout: 8, k: 5, kw: 5, s: 1, sw: 1, p: 2, pw: 2, d: 1, g: 8, pre: [0, 1, 0, 1]),
            C(cin: 4, cout: 8, k: 5, kw: 5, s: 2, sw: 2, p: 2, pw: 2, d: 1, g: 4, h: 37, w: 70),
            C(cin: 4, cout: 4, k: 3, kw: 3, s: 1, sw: 1, p: 2, pw: 2, d: 2, g: 4),           // dilated depthwise
            C(cin: 4, cout: 4, k: 7, kw: 7, s: 1, sw: 1, p: 3, pw: 3, d: 1, g: 4, h: 20, w: 53), // 7x7 depthwise
            C(cin: 4, cout: 8, k: 3, kw: 3, s: 3, sw: 3, p: 0, pw: 1, d: 1, g: 4),           // stride-3 depthwise
            C(cin: 4, cout: 4, k: 3, kw: 3, s: 2, sw: 1, p: 1, pw: 1, d: 1, g: 4),           // uneven stride depthwise
            C(cin: 5, cout: 7, k: 1, kw: 1, s: 2, sw: 2, p: 0, pw: 0, d: 1, g: 1),
            C(cin: 6, cout: 8, k: 3, kw: 5, s: 1, sw: 2, p: 2, pw: 1, d: 2, g: 2, pre: [1, 0, 2, 1], act: .hardSwish),
            C(cin: 4, cout: 6, k: 7, kw: 1, s: 1, sw: 1, p: 3, pw: 0, d: 1, g: 1),
            // Stride-2 depthwise whose last 16-column block must load from the right edge.
            C(cin: 3, cout: 3, k: 3, kw: 3, s: 2, sw: 2, p: 1, pw: 1, d: 1, g: 3, act: .relu, h: 9, w: 128),
            C(cin: 3, cout: 6, k: 5, kw: 5, s: 2, sw: 2, p: 2, pw: 2, d: 1, g: 3, h: 8, w: 100),
            C(cin: 2, cout: 2, k: 3, kw: 3, s: 2, sw: 2, p: 0, pw: 0, d: 1, g: 2, h: 7, w: 67),
            C(cin: 2, cout: 2, k: 3, kw: 3, s: 1, sw: 1, p: 1, pw: 1, d: 1, g: 2, h: 5, w: 18),
        ]
        for (i, c) in configs.enumerated() {
            let p = Conv2dParameters(inChannels: c.cin, outChannels: c.cout, kernelH: c.k, kernelW: c.kw, strideH: c.s, strideW: c.sw,
                                     padH: c.p, padW: c.pw, dilationH: c.d, dilationW: c.d, groups: c.g, prePad: c.pre, activation: c.act)
            let x = rng.tensor([2, c.cin, c.h, c.w])
            let w = rng.tensor([c.cout, c.cin / c.g, c.k, c.kw])
            let b = i % 3 == 1 ? nil : rng.tensor([c.cout])
            let op = try Conv2dOperator(p, weight: w, bias: b)
            assertClose(op(x), referenceConv2d(x, w, b, p), "config \(i) path \(op.path)")
        }
    }

    /// A conv and a depthwise conv give bit-identical results with 1 and 2 threads.
    func testThreadCountInvariance() throws {
        var rng = KAGenerator(seed: 5)
        let saved = Threading.threads
        defer { Threading.threads = saved }
        let cases: [(Conv2dParameters, [Int])] = [
            (Conv2dParameters(inChannels: 32, outChannels: 48, kernelH: 3, kernelW: 3, padH: 1, padW: 1, activation: .relu), [2, 32, 45, 67]),
            (Conv2dParameters(inChannels: 32, outChannels: 32, kernelH: 3, kernelW: 3, padH: 1, padW: 1, groups: 32, activation: .silu), [2, 32, 45, 67]),
            (Conv2dParameters(inChannels: 16, outChannels: 32, kernelH: 5, kernelW: 5, strideH: 2, strideW: 2, padH: 2, padW: 2, groups: 16), [1, 16, 61, 77]),
            (Conv2dParameters(inChannels: 32, outChannels: 64, kernelH: 1, kernelW: 1), [1, 32, 40, 50]),
        ]
        for (p, shape) in cases {
            let x = rng.tensor(shape)
            let op = try Conv2dOperator(p, weight: rng.tensor([p.outChannels, p.inChannels / p.groups, p.kernelH, p.kernelW]),
                                        bias: rng.tensor([p.outChannels]))
            Threading.threads = 1
            let a = op(x)
            Threading.threads = 2
            let b = op(x)
            Threading.threads = 3
            let c = op(x)
            assertBitIdentical(a, b, "\(p) 1 vs 2 threads")
            assertBitIdentical(a, c, "\(p) 1 vs 3 threads")
        }
    }

    /// The 1x1 kernel on weight panels (AVX-512) against the reference convolution and against BLAS (vector kernels
    /// off): output channels around the 14-channel panel, pixel counts around the 32-pixel block and the 16-block
    /// work item, channel runs (few pixels), groups, each activation kind (none, fused ReLU, GELU after), batch 2;
    /// the same bits with 1 and 2 threads. A group's weights above the panel bound take the BLAS path.
    func testPointwisePanelsTails() throws {
        var rng = KAGenerator(seed: 19)
        let saved = Threading.threads
        defer { Threading.threads = saved; KernelDispatch.allowVectorKernels = true }
        let cases: [(Int, Int, Int, Activation, [Int])] = [   // cin, cout, groups, activation, input shape
            (1, 1, 1, .none, [1, 1, 1, 1]), (5, 13, 1, .relu, [2, 5, 3, 11]), (16, 14, 1, .gelu, [1, 16, 4, 8]),
            (7, 15, 1, .none, [1, 7, 17, 31]), (24, 29, 1, .relu, [2, 24, 23, 29]), (12, 42, 3, .silu, [1, 12, 9, 61]),
            (64, 70, 2, .relu, [1, 64, 40, 50]),
            (20, 45, 1, .gelu, [1, 20, 5, 13]),   // few pixels: items cut into runs of output channels too
        ]
        for (cin, cout, groups, act, shape) in cases {
            let p = Conv2dParameters(inChannels: cin, outChannels: cout, kernelH: 1, kernelW: 1, groups: groups, activation: act)
            let w = rng.tensor([cout, cin / groups, 1, 1])
            for bias in [nil, rng.tensor([cout])] {
                let op = try Conv2dOperator(p, weight: w, bias: bias)
                XCTAssertEqual(op.pointwisePanels, KernelDispatch.avx512)
                let x = rng.tensor(shape)
                let want = referenceConv2d(x, w, bias, p)
                Threading.threads = 2
                let two = op(x)
                assertClose(two, want, tol: 2e-5, "\(p) bias \(bias != nil)")
                Threading.threads = 1
                assertBitIdentical(op(x), two, "\(p) 1 vs 2 threads")
                KernelDispatch.allowVectorKernels = false
                assertClose(op(x), want, tol: 2e-5, "\(p) vector kernels off")
                KernelDispatch.allowVectorKernels = true
            }
        }
        let big = Conv2dParameters(inChannels: 512, outChannels: 513, kernelH: 1, kernelW: 1)
        let op = try Conv2dOperator(big, weight: rng.tensor([513, 512, 1, 1]), bias: nil)
        XCTAssertFalse(op.pointwisePanels, "weights above the bound go to BLAS")
    }

    /// The direct kernel (strided convolutions, AVX-512) against the reference convolution and against im2col
    /// (vector kernels off): strides 2, 3 and uneven, dilation, padding and pre-padding, groups, output widths
    /// below, at and across the 32-pixel block (blocks that span output rows), stride-2 loads at the right edge,
    /// output channels around the 14-channel panel, each activation kind; the same bits with 1 and 2 threads.
    func testDirectConvAgainstReference() throws {
        var rng = KAGenerator(seed: 23)
        let saved = Threading.threads
        defer { Threading.threads = saved; KernelDispatch.allowVectorKernels = true }
        struct C { var cin, cout, k, kw, s, sw, p, pw, d, g: Int; var pre = [0, 0, 0, 0]; var act = Activation.none; var h, w: Int }
        let cases: [C] = [
            C(cin: 3, cout: 64, k: 3, kw: 3, s: 2, sw: 2, p: 1, pw: 1, d: 1, g: 1, act: .relu, h: 24, w: 130),  // a stem
            C(cin: 3, cout: 13, k: 3, kw: 3, s: 2, sw: 2, p: 1, pw: 1, d: 1, g: 1, h: 9, w: 64),
            C(cin: 8, cout: 15, k: 3, kw: 3, s: 2, sw: 2, p: 0, pw: 0, d: 1, g: 1, act: .gelu, h: 11, w: 67),
            C(cin: 5, cout: 29, k: 3, kw: 3, s: 2, sw: 2, p: 1, pw: 1, d: 1, g: 1, h: 7, w: 15),    // 8 columns: rows per block
            C(cin: 4, cout: 14, k: 1, kw: 1, s: 2, sw: 2, p: 0, pw: 0, d: 1, g: 1, act: .relu, h: 33, w: 97),
            C(cin: 6, cout: 9, k: 5, kw: 3, s: 3, sw: 3, p: 2, pw: 1, d: 1, g: 1, h: 20, w: 101),
            C(cin: 6, cout: 10, k: 3, kw: 3, s: 2, sw: 1, p: 1, pw: 1, d: 2, g: 2, pre: [1, 2, 0, 3], act: .silu, h: 13, w: 45),
            C(cin: 4, cout: 28, k: 3, kw: 3, s: 1, sw: 2, p: 1, pw: 2, d: 1, g: 1, h: 6, w: 70),
            C(cin: 3, cout: 8, k: 16, kw: 16, s: 16, sw: 16, p: 0, pw: 0, d: 1, g: 1, h: 32, w: 48),   // ViT patch embedding
            C(cin: 2, cout: 3, k: 3, kw: 3, s: 2, sw: 2, p: 1, pw: 1, d: 1, g: 1, h: 1, w: 1),
        ]
        for c in cases {
            let p = Conv2dParameters(inChannels: c.cin, outChannels: c.cout, kernelH: c.k, kernelW: c.kw, strideH: c.s,
                                     strideW: c.sw, padH: c.p, padW: c.pw, dilationH: c.d, dilationW: c.d, groups: c.g,
                                     prePad: c.pre, activation: c.act)
            let w = rng.tensor([c.cout, c.cin / c.g, c.k, c.kw])
            for bias in [nil, rng.tensor([c.cout])] {
                let op = try Conv2dOperator(p, weight: w, bias: bias)
                if KernelDispatch.avx512 { XCTAssertEqual(op.path, .direct, "\(p)") }
                let x = rng.tensor([2, c.cin, c.h, c.w])
                let want = referenceConv2d(x, w, bias, p)
                Threading.threads = 2
                let two = op(x)
                assertClose(two, want, tol: 2e-5, "\(p) bias \(bias != nil)")
                Threading.threads = 1
                assertBitIdentical(op(x), two, "\(p) 1 vs 2 threads")
                KernelDispatch.allowVectorKernels = false
                assertClose(op(x), want, tol: 2e-5, "\(p) vector kernels off")
                KernelDispatch.allowVectorKernels = true
            }
        }
    }

    /// ReLU keeps NaN (as torch.relu) in every path: the scalar activation, the epilogue's vector body and
    /// scalar tail, a linear layer with fused ReLU (panel GEMM and BLAS), the 1x1 kernel.
    func testReluKeepsNaN() throws {
        defer { KernelDispatch.allowVectorKernels = true }
        XCTAssertTrue(Activation.relu.apply(Float.nan).isNaN)
        var v: [Float] = [.nan, -1, 2, .nan, -0.5, 3, -2, 1, .nan, -3, .nan]   // 8-wide body + 3-value tail
        v.withUnsafeMutableBufferPointer { ConvEpilogue.applyPlane($0.baseAddress!, count: $0.count, bias: 0, activation: .relu) }
        XCTAssertEqual(v.map { $0.isNaN }, [true, false, false, true, false, false, false, false, true, false, true])
        XCTAssertEqual(v[1], 0); XCTAssertEqual(v[5], 3)
        let lin = try LinearOperator(weight: Tensor(shape: [2, 2], values: [1, 0, 0, 1]), bias: nil, activation: .relu)
        for vector in [true, false] {
            KernelDispatch.allowVectorKernels = vector
            let y = lin(Tensor(shape: [2, 2], values: [.nan, 0, -1, 2])).scalars   // a NaN row, then a plain one
            XCTAssertTrue(y[0].isNaN && y[1].isNaN, "linear relu, vector kernels \(vector)")
            XCTAssertEqual(Array(y[2...]), [0, 2])
        }
        KernelDispatch.allowVectorKernels = true
        let p = Conv2dParameters(inChannels: 1, outChannels: 1, kernelH: 1, kernelW: 1, activation: .relu)
        let conv = try Conv2dOperator(p, weight: Tensor(shape: [1, 1, 1, 1], values: [1]), bias: nil)
        let y = conv(Tensor(shape: [1, 1, 1, 3], values: [.nan, -1, 2])).scalars
        XCTAssertTrue(y[0].isNaN); XCTAssertEqual(Array(y[1...]), [0, 2])
    }

    /// With the im2col bound forced small, the tiled result equals the untiled one and the workspace respects the bound.
    func testTiledIm2colMatchesUntiled() throws {
        var rng = KAGenerator(seed: 3)
        Conv2dOperator.allowDirect = false   // the strided configurations would take the direct kernel
        defer { Conv2dOperator.allowDirect = true }
        let configs = [
            // Row-shift kernel (stride 1); small bounds force few-row tiles, then the im2col fallback.
            Conv2dParameters(inChannels: 8, outChannels: 16, kernelH: 3, kernelW: 3, padH: 1, padW: 1, activation: .relu),
            Conv2dParameters(inChannels: 6, outChannels: 8, kernelH: 3, kernelW: 3, strideW: 2, padH: 2, padW: 1, dilationH: 2, groups: 2, prePad: [0, 1, 1, 2]),
            // Row-shift kernel with two row phases (stride 2).
            Conv2dParameters(inChannels: 6, outChannels: 8, kernelH: 3, kernelW: 3, strideH: 2, strideW: 2, padH: 1, padW: 1, groups: 2, prePad: [1, 0, 2, 1]),
            // Plain im2col kernel (stride 3: every kernel row its own phase).
            Conv2dParameters(inChannels: 6, outChannels: 8, kernelH: 3, kernelW: 3, strideH: 3, strideW: 2, padH: 1, padW: 1, activation: .silu),
        ]
        for (i, p) in configs.enumerated() {
            Conv2dOperator.im2colBound = 8 << 20
            let x = rng.tensor([2, p.inChannels, 29, 37])
            let op = try Conv2dOperator(p, weight: rng.tensor([p.outChannels, p.inChannels / p.groups, 3, 3]), bias: rng.tensor([p.outChannels]))
            XCTAssertEqual(op.path, i < 3 ? .rowShift : .im2col)
            let untiled = op(x)
            let reference = referenceConv2d(x, try op.weightTensor(), try op.biasTensor(), p)
            assertClose(untiled, reference, "untiled vs reference \(i)")
            let k = p.inChannels / p.groups * 9
            for bound in [k * 200, k * 50, k * 7, k] {   // many rows, a few rows, a part of a row, one pixel per tile
                Conv2dOperator.im2colBound = bound
                XCTAssertLessThanOrEqual(op.workspaceCount(batch: 2, height: 29, width: 37), bound)
                let tiled = op(x)
                // Narrow tiles make OpenBLAS use its small-matrix kernels: equal up to float rounding.
                assertClose(tiled, untiled, tol: 2e-6, "config \(i) bound \(bound)")
                assertClose(tiled, reference, "config \(i) bound \(bound) vs reference")
            }
        }
    }

    /// Kernel rows grouped by input-row phase.
    func testRowShiftPlan() {
        let s2 = RowShiftPlan(Conv2dParameters(inChannels: 4, outChannels: 4, kernelH: 3, kernelW: 3, strideH: 2, padH: 1))
        XCTAssertEqual(s2.phases.count, 2)
        XCTAssertEqual(s2.tapShift, [-1, 0, 0])
        XCTAssertEqual(s2.base, -1)
        let d2 = RowShiftPlan(Conv2dParameters(inChannels: 4, outChannels: 4, kernelH: 3, kernelW: 3, strideH: 2, padH: 2, dilationH: 2))
        XCTAssertEqual(d2.phases.count, 1)
        let stem = RowShiftPlan(Conv2dParameters(inChannels: 3, outChannels: 16, kernelH: 7, kernelW: 7, strideH: 2, padH: 3))
        XCTAssertEqual(stem.phases.count, 2)
        XCTAssertEqual(RowShiftPlan(Conv2dParameters(inChannels: 4, outChannels: 4, kernelH: 3, kernelW: 3, strideH: 3)).phases.count, 3)
    }

    /// The workspace stays under the bound for a huge image.
    func testWorkspaceBoundedForLargeImages() throws {
        let p = Conv2dParameters(inChannels: 64, outChannels: 64, kernelH: 3, kernelW: 3, padH: 1, padW: 1)
        let op = try Conv2dOperator(p, weight: Tensor(zeros: [64, 64, 3, 3]), bias: nil)
        XCTAssertLessThanOrEqual(op.workspaceCount(batch: 4, height: 8192, width: 8192), Conv2dOperator.im2colBound)
        let pw = try Conv2dOperator(Conv2dParameters(inChannels: 64, outChannels: 64, kernelH: 1, kernelW: 1), weight: Tensor(zeros: [64, 64, 1, 1]), bias: nil)
        XCTAssertEqual(pw.workspaceCount(batch: 1, height: 8192, width: 8192), 0)
        XCTAssertEqual(pw.path, .pointwise)
        XCTAssertEqual(op.flops(batch: 1, height: 128, width: 128), 2.0 * 64 * 128 * 128 * 576)
    }

    func testValidationErrors() {
        XCTAssertThrowsError(try Conv2dParameters(inChannels: 6, outChannels: 8, kernelH: 3, kernelW: 3, groups: 4).validate())
        XCTAssertThrowsError(try Conv2dParameters(inChannels: 6, outChannels: 8, kernelH: 0, kernelW: 3).validate())
        XCTAssertThrowsError(try Conv2dParameters(inChannels: 6, outChannels: 8, kernelH: 3, kernelW: 3, prePad: [1, 1]).validate())
        XCTAssertThrowsError(try Conv2dOperator(Conv2dParameters(inChannels: 6, outChannels: 8, kernelH: 3, kernelW: 3),
                                                weight: Tensor(zeros: [8, 6, 3, 1]), bias: nil))
        XCTAssertThrowsError(try Conv2dOperator(Conv2dParameters(inChannels: 6, outChannels: 8, kernelH: 3, kernelW: 3),
                                                weight: Tensor(zeros: [8, 6, 3, 3]), bias: Tensor(zeros: [7])))
        do {
            let op = try Conv2dOperator(Conv2dParameters(inChannels: 6, outChannels: 8, kernelH: 3, kernelW: 3),
                                        weight: Tensor(zeros: [8, 6, 3, 3]), bias: nil)
            XCTAssertThrowsError(try op.checkedCall(Tensor(zeros: [1, 5, 9, 9])))
            XCTAssertThrowsError(try op.checkedCall(Tensor(zeros: [1, 6, 2, 9])))
        } catch { XCTFail("\(error)") }
    }

    func testBatchNormFold() throws {
        var rng = KAGenerator(seed: 9)
        let p = Conv2dParameters(inChannels: 4, outChannels: 6, kernelH: 3, kernelW: 3, padH: 1, padW: 1)
        let w = rng.tensor([6, 4, 3, 3]), b = rng.tensor([6])
        let gamma = rng.tensor([6]), beta = rng.tensor([6]), mean = rng.tensor([6])
        let vr = Tensor(shape: [6], values: (0..<6).map { Float($0) * 0.3 + 0.5 })
        let x = rng.tensor([1, 4, 11, 13])
        let eps: Float = 1e-3
        let conv = referenceConv2d(x, w, b, p)
        var want = conv
        want.withUnsafeMutableBufferPointer { y in
            let per = 11 * 13
            for o in 0..<6 {
                let s = gamma[o] / (vr[o] + eps).squareRoot()
                for i in 0..<per { y[o * per + i] = (y[o * per + i] - mean[o]) * s + beta[o] }
            }
        }
        let f = Conv2dOperator.foldBatchNorm(weight: w, bias: b, gamma: gamma, beta: beta, runningMean: mean, runningVar: vr, eps: eps)
        let op = try Conv2dOperator(p, weight: f.weight, bias: f.bias)
        assertClose(op(x), want, "folded BN")
        XCTAssertThrowsError(try Conv2dOperator.foldBatchNormChecked(weight: w, bias: nil, gamma: Tensor(zeros: [5]), beta: beta,
                                                                     runningMean: mean, runningVar: vr, eps: eps))
    }
}

extension Conv2dOperator {
    /// The packed weight as a PyTorch-layout tensor (tests).
    func weightTensor() throws -> Tensor {
        let p = parameters
        let shape = [p.outChannels, p.inChannels / p.groups, p.kernelH, p.kernelW]
        let n = shape.reduce(1, *)
        if path == .rowShift || pointwisePanels {
            let w = standardWeights()
            defer { w.deallocate() }
            return Tensor(shape: shape, values: Array(UnsafeBufferPointer(start: w, count: n)))
        }
        return Tensor(shape: shape, values: Array(UnsafeBufferPointer(start: packedWeight, count: n)))
    }
    func biasTensor() throws -> Tensor? {
        packedBias.map { Tensor(shape: [parameters.outChannels], values: Array(UnsafeBufferPointer(start: $0, count: parameters.outChannels))) }
    }
}
