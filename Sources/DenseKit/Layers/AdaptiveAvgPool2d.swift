import Foundation

/// Adaptive average pooling to a fixed output size (`nn.AdaptiveAvgPool2d((OH, OW))`):
/// output row `i` averages input rows `floor(i*H/OH) ..< ceil((i+1)*H/OH)`, same for columns.
///
/// Input `[N, C, H, W]`, output `[N, C, OH, OW]`. For a global mean into a classifier,
/// `GlobalAvgPool` (float64 accumulation, optional flatten) is the cheaper choice.
public final class AdaptiveAvgPool2d: GraphLayer {
    /// Output height `OH`.
    public let outHeight: Int
    /// Output width `OW`.
    public let outWidth: Int
    /// `adaptive_avg_pool2d`.
    public var opName: String { "adaptive_avg_pool2d" }

    /// Creates the layer.
    /// - Throws: `GraphError.invalidWeights` for a non-positive output size.
    public init(outHeight: Int, outWidth: Int, name: String = "adaptive_avg_pool2d") throws {
        guard outHeight > 0, outWidth > 0 else { throw GraphError.invalidWeights(layer: name, message: "output size \(outHeight)x\(outWidth) must be positive") }
        self.outHeight = outHeight
        self.outWidth = outWidth
    }

    /// - Throws: `LayerShapeError` unless the input is 4-d with a non-empty plane.
    public func outputShapes(for s: [[Int]]) throws -> [[Int]] {
        let x = s[0]
        try LayerSupport.requireNCHW(x)
        guard x[2] > 0, x[3] > 0 else { throw LayerShapeError("cannot pool an empty \(x[2])x\(x[3]) plane") }
        return [[x[0], x[1], outHeight, outWidth]]
    }

    /// About one addition per input element.
    public func flops(for s: [[Int]]) -> Double { Double(s[0].reduce(1, *)) }

    /// All planes at once for packed batches, sample by sample otherwise.
    public func forward(inputs: [ValueBuffer], outputs: [ValueBuffer], workspace: UnsafeMutablePointer<Float>?) {
        let x = inputs[0], y = outputs[0]
        let c = x.shape[1], h = x.shape[2], w = x.shape[3]
        if x.isContiguous && y.isContiguous {
            PoolKernels.adaptiveAvgPool2d(x.base, planes: x.batch * c, height: h, width: w, outHeight: outHeight, outWidth: outWidth, y.base)
        } else {
            for n in 0..<x.batch {
                PoolKernels.adaptiveAvgPool2d(x.sample(n), planes: c, height: h, width: w, outHeight: outHeight, outWidth: outWidth, y.sample(n))
            }
        }
    }
}
