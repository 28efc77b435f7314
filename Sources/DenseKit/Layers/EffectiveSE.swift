import Foundation

/// Effective squeeze-excitation (eSE; timm `EffectiveSEModule`, detectron2 VoVNet `eSEModule`).
///
/// For `x` `[N, C, H, W]`: `s[n,c] = mean_{h,w} x[n,c]` (exact count `H*W`),
/// `z = fc.weight · s + fc.bias` (a `C -> C` 1x1 conv with bias, no reduction),
/// `g = relu6(z + 3) / 6` (hard sigmoid, saturating exactly at 0 and 1),
/// `y = x * g` broadcast over `H, W`. Spec `vovnet.md` section 1.3.
///
/// The mean and the `C x C` product are accumulated in float64 (cheap: `C²` per
/// sample); the gate is rounded once to float32 and the product is float32.
public final class EffectiveSE: GraphLayer {
    /// Channels `C`.
    public let channels: Int
    private let weight: [Float]   // [C, C] row-major (output channel major)
    private let bias: [Float]     // [C]

    /// `ese`.
    public var opName: String { "ese" }

    /// Creates the layer from `fc.weight` `[C, C, 1, 1]` (or `[C, C]`) and `fc.bias` `[C]`.
    /// - Throws: `GraphError.invalidWeights` for other shapes.
    public init(fcWeight: Tensor, fcBias: Tensor, name: String = "ese") throws {
        let c = fcBias.count
        let okShape = fcWeight.shape == [c, c, 1, 1] || fcWeight.shape == [c, c]
        guard fcBias.rank == 1, okShape, c > 0 else {
            throw GraphError.invalidWeights(layer: name, message: "fc.weight \(ShapeText.of(fcWeight.shape)) and fc.bias \(ShapeText.of(fcBias.shape)) do not form a C -> C 1x1 conv")
        }
        self.channels = c
        self.weight = fcWeight.scalars
        self.bias = fcBias.scalars
    }

    /// Input `[N, C, H, W]`, output the same.
    /// - Throws: `LayerShapeError` for another rank or channel count.
    public func outputShapes(for s: [[Int]]) throws -> [[Int]] {
        try LayerSupport.requireNCHW(s[0])
        guard s[0][1] == channels else { throw LayerShapeError("expects \(channels) channels, got \(s[0][1])") }
        return [s[0]]
    }

    /// Room for the means and gates of one sample, as float64 (`4 * C` floats).
    public func workspaceCount(for s: [[Int]]) -> Int { 4 * channels }

    /// Mean, `C x C` product, gate and product.
    public func flops(for s: [[Int]]) -> Double {
        let n = Double(s[0][0]), hw = Double(s[0][2] * s[0][3]), c = Double(channels)
        return n * (2 * c * hw + 2 * c * c)
    }

    /// Computes sample by sample; `workspace` holds `4 * C` floats.
    public func forward(inputs: [ValueBuffer], outputs: [ValueBuffer], workspace: UnsafeMutablePointer<Float>?) {
        guard let workspace else { return }
        let x = inputs[0], y = outputs[0]
        let c = channels, hw = x.shape[2] * x.shape[3]
        UnsafeMutableRawPointer(workspace).withMemoryRebound(to: Double.self, capacity: 2 * c) { ws in
            let means = ws, gates = ws + c
            weight.withUnsafeBufferPointer { w in
                guard let wb = w.baseAddress else { return }
                for n in 0..<x.batch {
                    let xs = UnsafePointer(x.sample(n)), ys = y.sample(n)
                    LayerSupport.planeMeans(xs, channels: c, spatial: hw, into: means)
                    Threading.parallelFor(c, grain: 16) { o in
                        let row = wb + o * c
                        var z = Double(bias[o])
                        for k in 0..<c { z += Double(row[k]) * means[k] }
                        gates[o] = min(max(z + 3, 0), 6) / 6
                    }
                    Threading.parallelFor(c, grain: max(1, 4096 / max(hw, 1))) { ch in
                        let g = Float(gates[ch])
                        let src = xs + ch * hw, dst = ys + ch * hw
                        for i in 0..<hw { dst[i] = src[i] * g }
                    }
                }
            }
        }
    }
}
