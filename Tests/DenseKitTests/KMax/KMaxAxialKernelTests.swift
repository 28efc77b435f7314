import CKernels
import Foundation
import XCTest
@testable import DenseKit

/// The AVX-512 axial attention (`dk_axial_sequence`) against the Swift loop it replaces, on geometries with
/// length / depth tails (dk, dv not multiples of 16, L above one and four 16-lane chunks, L = max span), both axes,
/// channel- and position-major inputs.
final class KMaxAxialKernelTests: XCTestCase {
    override func tearDown() { KernelDispatch.allowVectorKernels = true }

    func testAxialAttentionKernelMatchesSwiftLoop() throws {
        try XCTSkipUnless(KernelDispatch.avx512, "this CPU has no AVX-512: only the Swift loop runs")
        var gen = KAGenerator(seed: 23)
        func values(_ n: Int, _ s: Float = 1) -> [Float] { (0..<n).map { _ in gen.next() * s } }
        // (h, w, key depth, value depth, heads, max span)
        let cases = [(5, 7, 16, 32, 8, 255), (16, 16, 128, 256, 8, 255), (33, 20, 64, 128, 2, 40), (70, 3, 32, 160, 2, 70),
                     (9, 9, 24, 48, 3, 9)]
        for (h, w, kd, vd, heads, span) in cases {
            let cin = 12, rows = 2 * span - 1, cq = 2 * kd + vd
            let att = KMaXAxialAttention(
                cin: cin, keyDepth: kd, valueDepth: vd, heads: heads, maxSpan: span,
                qkv: KMaXPointwise(cin: cin, cout: cq, weight: values(cq * cin, 0.5), bias: values(cq, 0.1), activation: .none),
                similarity: KMaXAffine(scale: values(3 * heads), shift: values(3 * heads)),
                retrieved: KMaXAffine(scale: values(2 * vd), shift: values(2 * vd)),
                queryTable: values(rows * kd / heads), keyTable: values(rows * kd / heads), valueTable: values(rows * vd / heads))
            let x = values(h * w * cin, 2)
            for (alongHeight, positionMajor) in [(true, false), (false, true)] {
                func run() throws -> [Float] {
                    try x.withUnsafeBufferPointer { p in
                        try att.positionMajor(p.baseAddress!, inputPositionMajor: positionMajor, h: h, w: w, alongHeight: alongHeight)
                    }
                }
                KernelDispatch.allowVectorKernels = true
                let v = try run()
                KernelDispatch.allowVectorKernels = false
                let s = try run()
                KernelDispatch.allowVectorKernels = true
                XCTAssertEqual(v.count, h * w * vd)
                for (a, b) in zip(v, s) {
                    XCTAssertEqual(a, b, accuracy: 2e-5 * max(1, abs(b)), "\(h)x\(w) kd \(kd) vd \(vd) heads \(heads) height \(alongHeight)")
                }
            }
        }
    }

    /// `dk_gelu_fma` (the kMaX head's GELU) against the float64 erf form.
    func testGeluFMAKernelIsAccurate() throws {
        try XCTSkipUnless(KernelDispatch.avx512, "this CPU has no AVX-512")
        var x = (0..<100_003).map { i in Float(i) * (24 / 100_003) - 12 }
        x += [0, -0.0, 1e-30, -1e-30, 30, -30, 1e20, -1e20, .infinity, .nan]
        var y = [Float](repeating: 0, count: x.count)
        XCTAssertEqual(dk_gelu_fma(x, &y, x.count), 1)
        for (a, b) in zip(x, y) {
            if a.isNaN { XCTAssertTrue(b.isNaN); continue }
            if a == .infinity { XCTAssertEqual(b, .infinity); continue }
            let g = 0.5 * Double(a) * erfc(-Double(a) / 2.0.squareRoot())
            XCTAssertEqual(Double(b), g, accuracy: 2e-7 * max(1, abs(g)), "x = \(a)")
        }
    }

    func testLengthAboveMaxSpanThrows() throws {
        let att = KMaXAxialAttention(
            cin: 1, keyDepth: 1, valueDepth: 1, heads: 1, maxSpan: 2,
            qkv: KMaXPointwise(cin: 1, cout: 3, weight: [1, 1, 1], bias: [0, 0, 0], activation: .none),
            similarity: KMaXAffine(scale: [1, 1, 1], shift: [0, 0, 0]), retrieved: KMaXAffine(scale: [1, 1], shift: [0, 0]),
            queryTable: [0, 0, 0], keyTable: [0, 0, 0], valueTable: [0, 0, 0])
        let x = [Float](repeating: 1, count: 3)
        XCTAssertThrowsError(try x.withUnsafeBufferPointer { p in
            try att.positionMajor(p.baseAddress!, inputPositionMajor: false, h: 3, w: 1, alongHeight: true)
        })
    }
}
