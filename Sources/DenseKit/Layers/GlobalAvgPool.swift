import Foundation

/// Global average pooling (timm `SelectAdaptivePool2d('avg')`, `nn.AdaptiveAvgPool2d(1)`):
/// `y[n, c] = mean over H*W of x[n, c]`, accumulated in float64.
///
/// Input `[N, C, H, W]`; output `[N, C]` when `flatten` (classifier heads) or `[N, C, 1, 1]`.
public final class GlobalAvgPool: GraphLayer {
    /// Whether the output is `[N, C]` instead of `[N, C, 1, 1]`.
    public let flatten: Bool
    /// `global_avg_pool`.
    public var opName: String { "global_avg_pool" }

    /// Creates the layer.
    public init(flatten: Bool = true) { self.flatten = flatten }

    /// - Throws: `LayerShapeError` unless the input is 4-d with a non-empty plane.
    public func outputShapes(for s: [[Int]]) throws -> [[Int]] {
        try LayerSupport.requireNCHW(s[0])
        guard s[0][2] * s[0][3] > 0 else { throw LayerShapeError("cannot average an empty \(s[0][2])x\(s[0][3]) plane") }
        return [flatten ? [s[0][0], s[0][1]] : [s[0][0], s[0][1], 1, 1]]
    }

    /// `2 * C` float64 per channel of one sample.
    public func workspaceCount(for s: [[Int]]) -> Int { 2 * s[0][1] }

    /// One addition per element.
    public func flops(for s: [[Int]]) -> Double { Double(s[0].reduce(1, *)) }

    /// Averages sample by sample.
    public func forward(inputs: [ValueBuffer], outputs: [ValueBuffer], workspace: UnsafeMutablePointer<Float>?) {
        guard let workspace else { return }
        let x = inputs[0], y = outputs[0]
        let c = x.shape[1], hw = x.shape[2] * x.shape[3]
        UnsafeMutableRawPointer(workspace).withMemoryRebound(to: Double.self, capacity: c) { means in
            for n in 0..<x.batch {
                LayerSupport.planeMeans(x.sample(n), channels: c, spatial: hw, into: means)
                let d = y.sample(n)
                for k in 0..<c { d[k] = Float(means[k]) }
            }
        }
    }
}
