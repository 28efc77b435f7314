import Foundation
import XCTest
@testable import DenseKit

/// The AVX-512 kernels of `CKernels` against the Swift kernels they replace, on many geometries
/// (odd widths, both strides, every padding, ceil mode, NaN inputs). Skipped on CPUs without AVX-512.
final class VectorKernelTests: XCTestCase {
    override func setUpWithError() throws {
        try XCTSkipUnless(KernelDispatch.avx512, "this CPU has no AVX-512: only the Swift kernels run")
    }

    override func tearDown() { KernelDispatch.allowVectorKernels = true }

    private func both<T>(_ body: () throws -> T) rethrows -> (vector: T, swift: T) {
        KernelDispatch.allowVectorKernels = true
        let v = try body()
        KernelDispatch.allowVectorKernels = false
        defer { KernelDispatch.allowVectorKernels = true }
        return (v, try body())
    }

    func testDepthwiseMatchesSwiftKernel() throws {
        var gen = KAGenerator(seed: 41)
        var cases = 0
        for k in [1, 3, 5, 7] {
            for stride in [1, 2] {
                for pad in Set([0, k / 2, k - 1]) {
                    for (h, w) in [(1, 1), (5, 3), (9, 17), (12, 33), (7, 40), (20, 64)] {
                        for act in [Activation.none, .relu, .gelu] {
                            let p = Conv2dParameters(inChannels: 3, outChannels: 6, kernelH: k, kernelW: k,
                                                     strideH: stride, strideW: stride, padH: pad, padW: pad,
                                                     groups: 3, activation: act)
                            let o = p.outputSize(height: h, width: w)
                            if o.height < 1 || o.width < 1 { continue }
                            let x = gen.tensor([2, 3, h, w]), wt = gen.tensor([6, 1, k, k]), b = gen.tensor([6])
                            let op = try Conv2dOperator(p, weight: wt, bias: b)
                            let r = try both { try op.checkedCall(x) }
                            XCTAssertEqual(r.vector.shape, r.swift.shape)
                            for (a, s) in zip(r.vector.scalars, r.swift.scalars) {
                                XCTAssertEqual(a, s, accuracy: 2e-6 * max(1, abs(s)), "k\(k) s\(stride) p\(pad) \(h)x\(w) \(act)")
                            }
                            cases += 1
                        }
                    }
                }
            }
        }
        XCTAssertGreaterThan(cases, 150)
    }

    func testMaxPoolMatchesSwiftKernelBitForBit() throws {
        var gen = KAGenerator(seed: 42)
        var cases = 0
        for k in [1, 2, 3, 5] {
            for stride in [1, 2, 3] {
                for pad in 0...(k / 2) {
                    for ceil in [false, true] {
                        for (h, w) in [(1, 1), (4, 7), (9, 17), (16, 33), (13, 70)] {
                            let p = Pool2dParameters(kernelH: k, kernelW: k, strideH: stride, strideW: stride,
                                                     padH: pad, padW: pad, ceilMode: ceil)
                            let o = p.outputSize(height: h, width: w)
                            if o.0 < 1 || o.1 < 1 { continue }
                            var x = gen.tensor([1, 2, h, w])
                            var vals = x.scalars
                            for i in 0..<vals.count where i % 29 == stride { vals[i] = .nan }
                            x = Tensor(shape: x.shape, values: vals)
                            let r = try both { try PoolKernels.maxPool2d(x, p) }
                            XCTAssertEqual(r.vector.shape, r.swift.shape)
                            for (a, s) in zip(r.vector.scalars, r.swift.scalars) {
                                XCTAssertTrue(a.bitPattern == s.bitPattern || (a.isNaN && s.isNaN),
                                              "k\(k) s\(stride) p\(pad) ceil \(ceil) \(h)x\(w): \(a) vs \(s)")
                            }
                            cases += 1
                        }
                    }
                }
            }
        }
        XCTAssertGreaterThan(cases, 100)
    }
}

/// The vector GELU (the FMA kernel where the CPU has AVX-512) against the float64 erf form and the Swift formula.
final class VectorGeluTests: XCTestCase {
    func testGeluVectorKernelMatchesErfForm() throws {
        var xs: [Float] = [0, -0, 1, -1, 1e-30, -1e-30, 3, -3, 5.5, -5.5, 9, -9, 13, -13, 20, -20, 88, -88, 100, -100,
                           .infinity, -.infinity, .nan, .leastNonzeroMagnitude, .greatestFiniteMagnitude, -.greatestFiniteMagnitude]
        var gen = KAGenerator(seed: 5)
        for _ in 0..<20_000 { xs.append(gen.next() * 12) }
        xs.append(contentsOf: [0.5, -0.25, 2.5])   // a masked tail
        var ys = [Float](repeating: 0, count: xs.count)
        xs.withUnsafeBufferPointer { x in ys.withUnsafeMutableBufferPointer { y in
            VectorMath.apply(.gelu, x.baseAddress!, y.baseAddress!, count: x.count)
        } }
        for (x, y) in zip(xs, ys) {
            let swift = VectorMath.gelu1(x)
            if swift.isNaN { XCTAssertTrue(y.isNaN, "gelu(\(x)) = \(y), expected NaN"); continue }
            if !x.isFinite { XCTAssertEqual(y, swift, "gelu(\(x))"); continue }
            let exact = 0.5 * Double(x) * erfc(-Double(x) / 2.0.squareRoot())
            XCTAssertEqual(Double(y), exact, accuracy: 1e-6 * max(1, abs(exact)), "gelu(\(x))")
        }
    }
}

/// The AVX-512 routed token attention against the Swift loop it replaces.
final class VectorRoutedAttentionTests: XCTestCase {
    override func tearDown() { KernelDispatch.allowVectorKernels = true }

    func testRoutedAttentionMatchesSwiftKernel() throws {
        try XCTSkipUnless(KernelDispatch.avx512, "this CPU has no AVX-512")
        var gen = KAGenerator(seed: 77)
        // (H, W, S, qkDim, valueDim, heads, topk): odd region sizes, key/query tails, dv not a multiple of 16.
        let cases = [(12, 12, 3, 24, 40, 2, 2), (21, 14, 7, 64, 64, 2, 3), (14, 21, 7, 48, 96, 3, 5), (16, 16, 2, 16, 16, 1, 4)]
        for (h, w, s, qk, vd, heads, topk) in cases {
            let g = RoutedAttentionGeometry(batch: 2, height: h, width: w, regionsPerSide: s, qkDim: qk, valueDim: vd, heads: heads, topk: topk)
            try g.validate()
            let qkv = (0..<(2 * h * w * g.rowStride)).map { _ in gen.next() * 2 }
            let routing = (0..<(2 * g.regions * topk)).map { k in (k * 7 + k / topk) % g.regions }
            func run() -> [Float] {
                var out = [Float](repeating: .nan, count: 2 * h * w * vd)
                qkv.withUnsafeBufferPointer { q in routing.withUnsafeBufferPointer { r in out.withUnsafeMutableBufferPointer { o in
                    RoutedAttention.attend(qkv: q.baseAddress!, geometry: g, routing: r.baseAddress!, scale: 0.3, output: o.baseAddress!)
                } } }
                return out
            }
            KernelDispatch.allowVectorKernels = true
            let v = run()
            KernelDispatch.allowVectorKernels = false
            let ref = run()
            KernelDispatch.allowVectorKernels = true
            for (a, b) in zip(v, ref) { XCTAssertEqual(a, b, accuracy: 2e-6 * max(1, abs(b)), "\(g)") }
        }
    }

    /// Dense self-attention (`MultiHeadAttention`, fused q/k/v): the AVX-512 attention kernel against the
    /// GEMM + softmax path, with token counts that are not multiples of 16 or of the query block and head
    /// sizes that are not multiples of 16.
    func testDenseSelfAttentionMatchesGemmPath() throws {
        try XCTSkipUnless(KernelDispatch.avx512, "this CPU has no AVX-512")
        var gen = KAGenerator(seed: 91)
        for (batch, tokens, embed, heads) in [(1, 1, 16, 1), (2, 37, 40, 2), (1, 130, 96, 3), (1, 257, 64, 1), (2, 200, 120, 5)] {
            func t(_ shape: [Int], _ s: Float) -> Tensor { Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in gen.next() * s }) }
            let mha = try MultiHeadAttention(embedDim: embed, numHeads: heads, inProjWeight: t([3 * embed, embed], 0.3),
                                             inProjBias: t([3 * embed], 0.1), outProjWeight: t([embed, embed], 0.2),
                                             outProjBias: t([embed], 0.1))
            let x = t([batch, tokens, embed], 1)
            KernelDispatch.allowVectorKernels = true
            let v = try mha(x).scalars
            KernelDispatch.allowVectorKernels = false
            let ref = try mha(x).scalars
            KernelDispatch.allowVectorKernels = true
            XCTAssertEqual(v.count, ref.count)
            for (a, b) in zip(v, ref) { XCTAssertEqual(a, b, accuracy: 2e-5 * max(1, abs(b)), "B\(batch) L\(tokens) E\(embed) H\(heads)") }
        }
    }
}

/// The AVX-512 row softmax of BiFormer's full attention against the Swift loop.
final class VectorSoftmaxTests: XCTestCase {
    override func tearDown() { KernelDispatch.allowVectorKernels = true }

    func testSoftmaxRowsMatchesSwiftLoop() throws {
        try XCTSkipUnless(KernelDispatch.avx512, "this CPU has no AVX-512")
        var gen = KAGenerator(seed: 9)
        for cols in [1, 5, 16, 17, 49, 256, 1000] {
            let rows = 7
            var x = (0..<(rows * cols)).map { _ in gen.next() * 20 }
            if cols > 2 { x[cols + 1] = .nan }   // row 1 holds a NaN
            var a = x, b = x
            KernelDispatch.allowVectorKernels = true
            a.withUnsafeMutableBufferPointer { AttentionLePE.softmaxRows($0.baseAddress!, rows: rows, cols: cols, scale: 0.37) }
            KernelDispatch.allowVectorKernels = false
            b.withUnsafeMutableBufferPointer { AttentionLePE.softmaxRows($0.baseAddress!, rows: rows, cols: cols, scale: 0.37) }
            KernelDispatch.allowVectorKernels = true
            for (i, (u, v)) in zip(a, b).enumerated() {
                if v.isNaN { XCTAssertTrue(u.isNaN, "cols \(cols) index \(i)"); continue }
                XCTAssertEqual(u, v, accuracy: 4e-6 * v + 1e-12, "cols \(cols) index \(i)")
            }
        }
    }
}

/// Winograd F(2x2, 3x3) against the float64 reference convolution.
final class WinogradConvTests: XCTestCase {
    func testWinogradMatchesReference() throws {
        try XCTSkipUnless(KernelDispatch.avx512, "this CPU has no AVX-512")
        var gen = KAGenerator(seed: 123)
        var ran = 0
        for (cin, cout) in [(16, 16), (24, 40), (64, 17)] {
            for pad in [0, 1, 2] {
                for (h, w) in [(1, 1), (2, 3), (5, 7), (9, 33), (16, 16), (37, 70)] {
                    for act in [Activation.none, .relu, .gelu] {
                        let p = Conv2dParameters(inChannels: cin, outChannels: cout, kernelH: 3, kernelW: 3,
                                                 padH: pad, padW: pad, activation: act)
                        let o = p.outputSize(height: h, width: w)
                        if o.height < 1 || o.width < 1 { continue }
                        XCTAssertTrue(WinogradConv.applies(p))
                        let x = gen.tensor([2, cin, h, w]), wt = gen.tensor([cout, cin, 3, 3]), b = gen.tensor([cout])
                        let op = try Conv2dOperator(p, weight: wt, bias: b)
                        XCTAssertEqual(op.path, .winograd)
                        let got = try op.checkedCall(x)
                        var want = referenceConv2d(x, wt, b, Conv2dParameters(inChannels: cin, outChannels: cout, kernelH: 3, kernelW: 3,
                                                                               padH: pad, padW: pad))
                        want = Tensor(shape: want.shape, values: want.scalars.map { act.apply($0) })
                        XCTAssertEqual(got.shape, want.shape)
                        var worst: Float = 0
                        for (a, r) in zip(got.scalars, want.scalars) { worst = max(worst, abs(a - r) / max(1, abs(r))) }
                        XCTAssertLessThan(worst, 2e-5, "cin \(cin) cout \(cout) pad \(pad) \(h)x\(w) \(act)")
                        ran += 1
                    }
                }
            }
        }
        XCTAssertGreaterThan(ran, 100)
    }

    /// Products on BLAS (one U[ξν] above the 1x1 kernel's weight bound) and on the panels give the reference too,
    /// the panel case with more tiles than one work item and the same bits with 1 and 2 threads.
    func testWinogradProductPaths() throws {
        try XCTSkipUnless(KernelDispatch.avx512, "this CPU has no AVX-512")
        var gen = KAGenerator(seed: 321)
        let saved = Threading.threads
        defer { Threading.threads = saved }
        for (cin, cout, h, w) in [(520, 512, 5, 7), (40, 30, 75, 90)] {
            XCTAssertEqual(WinogradConv.usesPanels(cout: cout, cin: cin), cin * cout * 4 <= Conv2dOperator.pointwisePanelBound)
            let p = Conv2dParameters(inChannels: cin, outChannels: cout, kernelH: 3, kernelW: 3, padH: 1, padW: 1, activation: .relu)
            let x = gen.tensor([1, cin, h, w]), wt = gen.tensor([cout, cin, 3, 3]), b = gen.tensor([cout])
            let op = try Conv2dOperator(p, weight: wt, bias: b)
            XCTAssertEqual(op.path, .winograd)
            Threading.threads = 2
            let got = try op.checkedCall(x)
            Threading.threads = 1
            assertBitIdentical(try op.checkedCall(x), got, "cin \(cin) cout \(cout): 1 vs 2 threads")
            let want = referenceConv2d(x, wt, b, p)
            var worst: Float = 0
            for (a, r) in zip(got.scalars, want.scalars) { worst = max(worst, abs(a - r) / max(1, abs(r))) }
            // float32 rounding of 9 * C_in-term sums (|y| up to ~70 at C_in 520) and of the transforms
            XCTAssertLessThan(worst, cin > 100 ? 1e-4 : 2e-5, "cin \(cin) cout \(cout)")
        }
    }
}
