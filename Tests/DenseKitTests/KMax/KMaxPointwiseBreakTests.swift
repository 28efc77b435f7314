import Foundation
import XCTest
@testable import DenseKit

/// Break-it checks of the kMaX 1x1 convolution on DenseKit's 1x1 kernel and of layerNormChannels.
final class KMaxPointwiseBreakTests: XCTestCase {
    override func tearDown() { KernelDispatch.allowVectorKernels = true; Threading.threads = 2 }

    /// `channelMajor` (weight panels) against a float64 reference and the BLAS path: pixel counts around the
    /// 32-pixel block, output channels around the 14-channel panel, each activation, a NaN input; 1/2/3 threads
    /// bit-identical.
    func testChannelMajorPanels() {
        var rng = KAGenerator(seed: 5)
        for (cin, cout, n, act) in [(1, 1, 1, Activation.none), (3, 13, 31, .relu), (16, 14, 32, .gelu), (7, 15, 33, .silu),
                                    (33, 29, 517, .relu), (256, 28, 1, .none), (64, 43, 4097, .gelu), (512, 512, 40, .relu)] {
            let w = (0..<(cin * cout)).map { _ in rng.next() }, b = (0..<cout).map { _ in rng.next() }
            let conv = KMaXPointwise(cin: cin, cout: cout, weight: w, bias: b, activation: act)
            XCTAssertEqual(conv.panels.isEmpty, !KernelDispatch.avx512)
            var x = (0..<(cin * n)).map { _ in rng.next() }
            if n > 3 { x[cin / 2 * n + 3] = .nan }
            var want = [Float](repeating: 0, count: cout * n)
            for o in 0..<cout {
                for p in 0..<n {
                    var s = Double(b[o])
                    for c in 0..<cin { s += Double(w[o * cin + c]) * Double(x[c * n + p]) }
                    want[o * n + p] = act.apply(Float(s))
                }
            }
            Threading.threads = 2
            let two = conv(x, n: n)
            for i in 0..<want.count {
                XCTAssertEqual(two[i].isNaN, want[i].isNaN, "cin \(cin) cout \(cout) n \(n) at \(i)")
                if !want[i].isNaN { XCTAssertLessThanOrEqual(abs(two[i] - want[i]), 1e-5 * (1 + abs(want[i])), "cin \(cin) cout \(cout) n \(n)") }
            }
            for t in [1, 3] {
                Threading.threads = t
                XCTAssertEqual(conv(x, n: n).map(\.bitPattern), two.map(\.bitPattern), "\(t) threads")
            }
            KernelDispatch.allowVectorKernels = false
            let blas = conv(x, n: n)
            KernelDispatch.allowVectorKernels = true
            for i in 0..<want.count where !want[i].isNaN {
                XCTAssertLessThanOrEqual(abs(blas[i] - want[i]), 1e-5 * (1 + abs(want[i])), "BLAS cin \(cin) cout \(cout) n \(n)")
            }
        }
    }

    /// layerNormChannels writes every value (no zero-fill any more): against a float64 reference for channel
    /// counts that give every chunk size, pixel counts not a multiple of the chunk; 1/2/3 threads bit-identical.
    func testLayerNormChannelsEveryValue() {
        var rng = KAGenerator(seed: 9)
        for (c, n) in [(1, 1), (3, 2049), (14, 4700), (33, 130), (1000, 67), (5000, 130), (4096, 65)] {
            // garbage into freed memory first, so an unwritten value would likely show
            for _ in 0..<4 { var junk = [Float](repeating: .nan, count: c * n); junk[0] = 1; _ = junk }
            let x = (0..<(c * n)).map { _ in rng.next() * 3 }
            let w = (0..<c).map { _ in rng.next() }, b = (0..<c).map { _ in rng.next() }
            Threading.threads = 2
            let y = KMaXMath.layerNormChannels(x, channels: c, pixels: n, weight: w, bias: b, eps: 1e-5, activation: .gelu)
            var worst: Double = 0
            for p in 0..<n {
                var m = 0.0
                for ch in 0..<c { m += Double(x[ch * n + p]) }
                m /= Double(c)
                var v = 0.0
                for ch in 0..<c { let d = Double(x[ch * n + p]) - m; v += d * d }
                let inv = 1 / (v / Double(c) + 1e-5).squareRoot()
                for ch in 0..<c {
                    let want = Double(Activation.gelu.apply(Float((Double(x[ch * n + p]) - m) * inv * Double(w[ch]) + Double(b[ch]))))
                    worst = max(worst, abs(Double(y[ch * n + p]) - want) / (1 + abs(want)))
                }
            }
            XCTAssertLessThanOrEqual(worst, 1e-4, "c \(c) n \(n)")
            for t in [1, 3] {
                Threading.threads = t
                let z = KMaXMath.layerNormChannels(x, channels: c, pixels: n, weight: w, bias: b, eps: 1e-5, activation: .gelu)
                XCTAssertEqual(z.map(\.bitPattern), y.map(\.bitPattern), "c \(c) n \(n) \(t) threads")
            }
        }
    }
}
