import Foundation

/// Copies its input (`nn.Identity`); useful to give a value a second name, for example
/// to expose an inner value as a graph output under a fixed node name.
public final class Identity: GraphLayer {
    /// `identity`.
    public var opName: String { "identity" }
    /// Creates the layer.
    public init() {}
    /// The output has the input's shape.
    public func outputShapes(for s: [[Int]]) throws -> [[Int]] { [s[0]] }
    /// Copies sample by sample.
    public func forward(inputs: [ValueBuffer], outputs: [ValueBuffer], workspace: UnsafeMutablePointer<Float>?) {
        let x = inputs[0], y = outputs[0]
        for n in 0..<y.batch { y.sample(n).update(from: x.sample(n), count: y.sampleCount) }
    }
}
