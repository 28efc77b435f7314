import Foundation
import XCTest
@testable import DenseKit

/// Naive matmul of row-major matrices in float64.
private func naiveMM(_ a: [Float], _ b: [Float], m: Int, k: Int, n: Int) -> [Float] {
    var y = [Float](repeating: 0, count: m * n)
    for i in 0..<m { for j in 0..<n {
        var s = 0.0
        for t in 0..<k { s += Double(a[i * k + t]) * Double(b[t * n + j]) }
        y[i * n + j] = Float(s)
    } }
    return y
}

final class LinearAttentionKernelTests: XCTestCase {
    override func tearDown() {
        ConvTranspose2dOperator.colBound = 8 << 20
        AttentionHead.scoreBound = 4 << 20
    }

    func testLinearWithActivation() throws {
        var rng = KAGenerator(seed: 21)
        let w = rng.tensor([9, 13]), b = rng.tensor([9]), x = rng.tensor([2, 3, 13])
        let op = try LinearOperator(weight: w, bias: b, activation: .gelu)
        let y = op(x)
        XCTAssertEqual(y.shape, [2, 3, 9])
        var wt = [Float](repeating: 0, count: 13 * 9)
        for o in 0..<9 { for i in 0..<13 { wt[i * 9 + o] = w[o, i] } }
        var want = naiveMM(x.scalars, wt, m: 6, k: 13, n: 9)
        for r in 0..<6 { for j in 0..<9 { want[r * 9 + j] = Activation.gelu.apply(want[r * 9 + j] + b[j]) } }
        assertClose(y, Tensor(shape: [2, 3, 9], values: want), "linear gelu")
        XCTAssertThrowsError(try op.checkedCall(rng.tensor([2, 12])))
        XCTAssertThrowsError(try LinearOperator(weight: w, bias: rng.tensor([8])))
    }

    /// The panel GEMM (AVX-512) against float64 and against the same panels through BLAS (vector kernels off):
    /// row counts around the 14-row tile and the 56-row block (few row blocks: items cut into column runs too),
    /// widths around the 32-column panel, strided rows,
    /// with and without bias, with GELU; also the same bits with one and two threads.
    func testLinearPanelGemmTails() throws {
        var rng = KAGenerator(seed: 77)
        defer { KernelDispatch.allowVectorKernels = true; Threading.threads = 2 }
        for (rows, inF, outF) in [(1, 1, 1), (13, 5, 17), (14, 64, 31), (15, 7, 32), (57, 33, 33), (113, 20, 70), (3, 96, 65)] {
            for withBias in [false, true] {
                let w = rng.tensor([outF, inF]), b = withBias ? rng.tensor([outF]) : nil
                let op = try LinearOperator(weight: w, bias: b, activation: withBias ? .gelu : .none)
                // inputs and outputs as views into wider rows (stride + 3)
                let ldx = inF + 3, ldy = outF + 3
                let x = (0..<rows * ldx).map { _ in rng.next() }
                var want = [Float](repeating: 0, count: rows * outF)
                for r in 0..<rows { for j in 0..<outF {
                    var sum = Double(b?[j] ?? 0)
                    for i in 0..<inF { sum += Double(x[r * ldx + i]) * Double(w[j, i]) }
                    want[r * outF + j] = op.activation.apply(Float(sum))
                } }
                func run() -> [Float] {
                    var y = [Float](repeating: .nan, count: rows * ldy)
                    x.withUnsafeBufferPointer { xb in y.withUnsafeMutableBufferPointer { yb in
                        op.forward(input: xb.baseAddress!, rows: rows, inputStride: ldx, output: yb.baseAddress!, outputStride: ldy)
                    } }
                    for r in 0..<rows { for j in outF..<ldy { XCTAssertTrue(y[r * ldy + j].isNaN, "padding written") } }
                    return (0..<rows * outF).map { y[($0 / outF) * ldy + $0 % outF] }
                }
                let label = "rows \(rows) in \(inF) out \(outF) bias \(withBias)"
                Threading.threads = 2
                let fast = run()
                assertClose(Tensor(shape: [rows, outF], values: fast), Tensor(shape: [rows, outF], values: want), tol: 1e-5, label)
                Threading.threads = 1
                XCTAssertEqual(run().map(\.bitPattern), fast.map(\.bitPattern), "\(label): 1 vs 2 threads")
                KernelDispatch.allowVectorKernels = false
                let plain = run()
                KernelDispatch.allowVectorKernels = true
                assertClose(Tensor(shape: [rows, outF], values: plain), Tensor(shape: [rows, outF], values: want), tol: 1e-5, "\(label) (BLAS)")
            }
        }
    }

    func testMatmulBroadcasting() throws {
        var rng = KAGenerator(seed: 22)
        let a = rng.tensor([3, 1, 4, 5]), b = rng.tensor([2, 5, 6])
        let y = try MatMul.matmul(a, b)
        XCTAssertEqual(y.shape, [3, 2, 4, 6])
        let av = a.scalars, bv = b.scalars
        for i in 0..<3 { for j in 0..<2 {
            let want = naiveMM(Array(av[(i * 20)..<(i * 20 + 20)]), Array(bv[(j * 30)..<(j * 30 + 30)]), m: 4, k: 5, n: 6)
            let got = Array(y.scalars[((i * 2 + j) * 24)..<((i * 2 + j) * 24 + 24)])
            for (g, w) in zip(got, want) { XCTAssertEqual(g, w, accuracy: 1e-5) }
        } }
        XCTAssertEqual(try MatMul.matmul(rng.tensor([5]), rng.tensor([5])).shape, [])
        XCTAssertEqual(try MatMul.matmul(rng.tensor([5]), rng.tensor([2, 5, 3])).shape, [2, 3])
        XCTAssertEqual(try MatMul.matmul(rng.tensor([2, 4, 5]), rng.tensor([5])).shape, [2, 4])
        XCTAssertThrowsError(try MatMul.matmul(rng.tensor([2, 4, 5]), rng.tensor([3, 5, 2])))
        XCTAssertThrowsError(try MatMul.matmul(rng.tensor([4, 5]), rng.tensor([4, 2])))
    }

    /// Naive attention for one head.
    private func naiveAttention(q: [Float], k: [Float], v: [Float], L: Int, S: Int, E: Int, Ev: Int,
                                scale: Float, mask: [Float]?, causal: Bool) -> [Float] {
        var out = [Float](repeating: 0, count: L * Ev)
        for i in 0..<L {
            var s = [Double](repeating: 0, count: S)
            for j in 0..<S {
                var d = 0.0
                for e in 0..<E { d += Double(q[i * E + e]) * Double(k[j * E + e]) }
                s[j] = d * Double(scale) + Double(mask?[i * S + j] ?? 0)
                if causal && j > i { s[j] = -.infinity }
            }
            let mx = s.max() ?? 0
            let ex = s.map { Foundation.exp($0 - mx) }
            let sum = ex.reduce(0, +)
            for c in 0..<Ev {
                var acc = 0.0
                for j in 0..<S { acc += ex[j] / sum * Double(v[j * Ev + c]) }
                out[i * Ev + c] = Float(acc)
            }
        }
        return out
    }

    func testSDPAVariantsAndBlocking() throws {
        var rng = KAGenerator(seed: 23)
        let L = 37, S = 29, E = 8, Ev = 5
        let q = rng.tensor([2, L, E]), k = rng.tensor([2, S, E]), v = rng.tensor([2, S, Ev])
        var maskValues = (0..<(L * S)).map { _ in rng.next() }
        for i in 0..<L { maskValues[i * S + (i * 7) % S] = -.infinity }
        let mask = Tensor(shape: [L, S], values: maskValues)
        for bound in [4 << 20, 3 * S, 1] {
            AttentionHead.scoreBound = bound
            for (m, causal, scale) in [(nil, false, nil), (mask, false, nil), (nil, true, Float(0.3)), (mask, false, Float(0.7))] as [(Tensor?, Bool, Float?)] {
                let y = try Attention.scaledDotProductAttention(query: q, key: k, value: v, attnMask: m, isCausal: causal, scale: scale)
                XCTAssertEqual(y.shape, [2, L, Ev])
                for b in 0..<2 {
                    let want = naiveAttention(q: Array(q.scalars[(b * L * E)..<((b + 1) * L * E)]), k: Array(k.scalars[(b * S * E)..<((b + 1) * S * E)]),
                                              v: Array(v.scalars[(b * S * Ev)..<((b + 1) * S * Ev)]), L: L, S: S, E: E, Ev: Ev,
                                              scale: scale ?? 1 / Float(E).squareRoot(), mask: m?.scalars, causal: causal)
                    let got = Array(y.scalars[(b * L * Ev)..<((b + 1) * L * Ev)])
                    for (g, w) in zip(got, want) { XCTAssertEqual(g, w, accuracy: 1e-5, "bound \(bound) causal \(causal)") }
                }
            }
        }
        XCTAssertThrowsError(try Attention.scaledDotProductAttention(query: q, key: k, value: v, attnMask: mask, isCausal: true))
        XCTAssertThrowsError(try Attention.scaledDotProductAttention(query: q, key: rng.tensor([2, S, 7]), value: v))
        // A fully masked row gives zeros, never NaN.
        let allMasked = Tensor(shape: [1, 3], values: [-.infinity, -.infinity, -.infinity])
        let z = try Attention.scaledDotProductAttention(query: rng.tensor([1, 1, 4]), key: rng.tensor([1, 3, 4]), value: rng.tensor([1, 3, 2]), attnMask: allMasked)
        XCTAssertEqual(z.scalars, [0, 0])
    }

    func testConvTransposeTiledMatchesUntiled() throws {
        var rng = KAGenerator(seed: 24)
        let p = ConvTranspose2dParameters(inChannels: 6, outChannels: 4, kernelH: 3, kernelW: 3, strideH: 2, strideW: 2,
                                          padH: 1, padW: 1, outputPaddingH: 1, outputPaddingW: 1, groups: 2, activation: .relu)
        let op = try ConvTranspose2dOperator(p, weight: rng.tensor([6, 2, 3, 3]), bias: rng.tensor([4]))
        let x = rng.tensor([2, 6, 13, 17])
        let full = try op(x)
        XCTAssertEqual(full.shape, [2, 4, 26, 34])
        for bound in [2 * 9 * 20, 2 * 9 * 3, 1] {
            ConvTranspose2dOperator.colBound = bound
            // OpenBLAS picks other (small-matrix) kernels for narrow tiles: equal up to float rounding.
            assertClose(try op(x), full, tol: 1e-6, "bound \(bound)")
        }
        let saved = Threading.threads
        defer { Threading.threads = saved }
        ConvTranspose2dOperator.colBound = 8 << 20
        Threading.threads = 1
        let one = try op(x)
        Threading.threads = 2
        assertBitIdentical(try op(x), one, "conv_transpose2d 1 vs 2 threads")
        XCTAssertThrowsError(try ConvTranspose2dOperator(ConvTranspose2dParameters(inChannels: 6, outChannels: 4, kernelH: 3, kernelW: 3, strideH: 2, strideW: 2, outputPaddingH: 2), weight: rng.tensor([6, 4, 3, 3]), bias: nil))
    }
}
