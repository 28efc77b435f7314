import Foundation
import XCTest
@testable import DenseKit

/// `NormKernels.layerNorm` and `addLayerNorm` (the AVX-512 `dk_layernorm_rows` and the Swift rows) against a
/// float64 reference: row widths around the 16-lane vector (tails), with and without weight and bias, a residual
/// added first, NaN and infinity, output in place.
final class LayerNormKernelTests: XCTestCase {
    override func tearDown() { KernelDispatch.allowVectorKernels = true }

    /// Both paths when this CPU has AVX-512, else the Swift one alone.
    private var paths: [Bool] { KernelDispatch.avx512 ? [true, false] : [false] }

    /// float64 layer norm of one row.
    private func reference(_ x: [Float], _ w: [Float]?, _ b: [Float]?, eps: Double) -> [Double] {
        let n = Double(x.count)
        let mu = x.reduce(0.0) { $0 + Double($1) } / n
        let v = x.reduce(0.0) { $0 + (Double($1) - mu) * (Double($1) - mu) } / n
        let r = 1 / (v + eps).squareRoot()
        return x.indices.map { i in (Double(x[i]) - mu) * r * Double(w?[i] ?? 1) + Double(b?[i] ?? 0) }
    }

    func testLayerNormMatchesFloat64AcrossWidths() throws {
        var gen = KAGenerator(seed: 71)
        for cols in [1, 2, 3, 15, 16, 17, 31, 32, 33, 64, 100, 384, 385, 1000] {
            for rows in [1, 5] {
                for (hasW, hasB) in [(true, true), (true, false), (false, true), (false, false)] {
                    let x = gen.tensor([rows, cols]), w = gen.tensor([cols]), b = gen.tensor([cols])
                    var outs: [[Float]] = []
                    for vector in paths {
                        KernelDispatch.allowVectorKernels = vector
                        let y = try NormKernels.layerNorm(x, weight: hasW ? w : nil, bias: hasB ? b : nil, eps: 1e-6)
                        XCTAssertEqual(y.shape, [rows, cols])
                        outs.append(y.scalars)
                    }
                    let xs = x.scalars
                    for r in 0..<rows {
                        let ref = reference(Array(xs[r * cols ..< (r + 1) * cols]), hasW ? w.scalars : nil,
                                            hasB ? b.scalars : nil, eps: 1e-6)
                        for out in outs {
                            for c in 0..<cols {
                                XCTAssertEqual(Double(out[r * cols + c]), ref[c], accuracy: 3e-6 * max(1, abs(ref[c])),
                                               "cols \(cols) row \(r) w \(hasW) b \(hasB)")
                            }
                        }
                    }
                    if outs.count == 2 {
                        let diff = zip(outs[0], outs[1]).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
                        XCTAssertLessThanOrEqual(diff, 2.4e-7, "vector vs Swift, cols \(cols)")
                    }
                }
            }
        }
    }

    func testAddLayerNormWritesSumAndNormalisesIt() throws {
        var gen = KAGenerator(seed: 72)
        for cols in [1, 7, 16, 23, 384, 401] {
            let x = gen.tensor([3, cols]), res = gen.tensor([3, cols]), w = gen.tensor([cols]), b = gen.tensor([cols])
            let sum = zip(x.scalars, res.scalars).map { $0 + $1 }
            let sumTensor = Tensor(shape: [3, cols], values: sum)
            let expected = try NormKernels.layerNorm(sumTensor, weight: w, bias: b, eps: 1e-5)
            for vector in paths {
                KernelDispatch.allowVectorKernels = vector
                var xv = Tensor(shape: [3, cols], values: x.scalars)
                let y = try NormKernels.addLayerNorm(&xv, residual: res, weight: w, bias: b, eps: 1e-5)
                XCTAssertEqual(xv.scalars, sum, "x += residual, bit for bit (cols \(cols), vector \(vector))")
                for (a, e) in zip(y.scalars, expected.scalars) {
                    XCTAssertEqual(a, e, accuracy: 2.4e-7 * max(1, abs(e)), "cols \(cols) vector \(vector)")
                }
                XCTAssertEqual(x.scalars.count, 3 * cols)
            }
        }
    }

    func testAddLayerNormLeavesTheCallersCopyAlone() throws {
        let x = Tensor(shape: [1, 4], values: [1, 2, 3, 4])
        var y = x
        _ = try NormKernels.addLayerNorm(&y, residual: x, weight: nil, bias: nil, eps: 1e-5)
        XCTAssertEqual(x.scalars, [1, 2, 3, 4])
        XCTAssertEqual(y.scalars, [2, 4, 6, 8])
    }

    func testNaNAndInfinityReachOnlyTheirRow() throws {
        for vector in paths {
            KernelDispatch.allowVectorKernels = vector
            var v = [Float](repeating: 0.5, count: 3 * 20)
            for i in 0..<20 { v[i] = Float(i) }
            v[20 + 17] = .nan
            v[40 + 3] = .infinity
            let y = try NormKernels.layerNorm(Tensor(shape: [3, 20], values: v), weight: nil, bias: nil, eps: 1e-5)
            let s = y.scalars
            XCTAssertTrue(s[0..<20].allSatisfy { $0.isFinite }, "vector \(vector)")
            XCTAssertTrue(s[20..<40].allSatisfy { $0.isNaN }, "vector \(vector)")
            XCTAssertTrue(s[40..<60].allSatisfy { $0.isNaN }, "vector \(vector)")
        }
    }

    func testInPlaceOutput() throws {
        var gen = KAGenerator(seed: 73)
        let x = gen.tensor([4, 37]), w = gen.tensor([37]), b = gen.tensor([37])
        for vector in paths {
            KernelDispatch.allowVectorKernels = vector
            let expected = try NormKernels.layerNorm(x, weight: w, bias: b, eps: 1e-6).scalars
            var buf = x.scalars
            w.withUnsafeBufferPointer { wb in b.withUnsafeBufferPointer { bb in
                buf.withUnsafeMutableBufferPointer { p in
                    guard let base = p.baseAddress else { return }
                    NormKernels.layerNorm(base, rows: 4, cols: 37, weight: wb.baseAddress, bias: bb.baseAddress, eps: 1e-6, base)
                }
            } }
            XCTAssertEqual(buf, expected, "vector \(vector)")
        }
    }

    func testAddLayerNormRejectsMismatchedShapes() throws {
        var x = Tensor(shape: [2, 4], values: [Float](repeating: 1, count: 8))
        let r = Tensor(shape: [2, 5], values: [Float](repeating: 1, count: 10))
        XCTAssertThrowsError(try NormKernels.addLayerNorm(&x, residual: r, weight: nil, bias: nil, eps: 1e-5))
        let w = Tensor(shape: [3], values: [1, 1, 1])
        XCTAssertThrowsError(try NormKernels.addLayerNorm(&x, residual: x, weight: w, bias: nil, eps: 1e-5))
    }
}
