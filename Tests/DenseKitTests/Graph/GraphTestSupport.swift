import Foundation
@testable import DenseKit

/// `y = x * factor + offset`, any shape: a layer with no kernel dependency for graph tests.
final class GraphTestAffine: GraphLayer {
    let factor: Float, offset: Float
    var opName: String { "affine" }
    init(_ factor: Float, _ offset: Float = 0) { self.factor = factor; self.offset = offset }
    func outputShapes(for s: [[Int]]) throws -> [[Int]] { [s[0]] }
    func flops(for s: [[Int]]) -> Double { 2 * Double(s[0].reduce(1, *)) }
    func forward(inputs: [ValueBuffer], outputs: [ValueBuffer], workspace: UnsafeMutablePointer<Float>?) {
        let x = inputs[0], y = outputs[0]
        for n in 0..<y.batch {
            let s = x.sample(n), d = y.sample(n)
            for i in 0..<y.sampleCount { d[i] = s[i] * factor + offset }
        }
    }
}

/// Changes the channel count (`[N, C, H, W] -> [N, outC, H, W]`), output channel `o` = mean over input channels + o.
final class GraphTestChannelMix: GraphLayer {
    let outChannels: Int
    var opName: String { "mix" }
    init(_ outChannels: Int) { self.outChannels = outChannels }
    func outputShapes(for s: [[Int]]) throws -> [[Int]] {
        guard s[0].count == 4 else { throw LayerShapeError("expects 4-d input") }
        return [[s[0][0], outChannels, s[0][2], s[0][3]]]
    }
    func workspaceCount(for s: [[Int]]) -> Int { s[0][2] * s[0][3] }
    func forward(inputs: [ValueBuffer], outputs: [ValueBuffer], workspace: UnsafeMutablePointer<Float>?) {
        let x = inputs[0], y = outputs[0]
        let c = x.shape[1], hw = x.shape[2] * x.shape[3]
        guard let ws = workspace else { return }
        for n in 0..<y.batch {
            for i in 0..<hw { ws[i] = 0 }
            for k in 0..<c { let p = x.sample(n) + k * hw; for i in 0..<hw { ws[i] += p[i] } }
            for o in 0..<outChannels { let d = y.sample(n) + o * hw; for i in 0..<hw { d[i] = ws[i] / Float(c) + Float(o) } }
        }
    }
}

enum GraphTestData {
    /// Deterministic pseudo-random values in [-1, 1).
    static func tensor(_ shape: [Int], seed: UInt64 = 1) -> Tensor {
        var rng = SeededRandom(seed: seed)
        return Tensor(shape: shape) { _ in Float(2 * rng.uniform() - 1) }
    }

    static func maxAbsDiff(_ a: Tensor, _ b: Tensor) -> Float {
        precondition(a.shape == b.shape, "\(a.shape) vs \(b.shape)")
        return zip(a.scalars, b.scalars).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }
}
