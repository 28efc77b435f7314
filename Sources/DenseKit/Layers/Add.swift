import Foundation

/// Element-wise sum of two or more tensors of the same shape, then an optional
/// activation (`y = act(x0 + x1 + ...)`; the OSA residual uses `.none`).
public final class Add: GraphLayer {
    /// Applied after the sum.
    public let activation: Activation
    /// `add`.
    public var opName: String { "add" }
    /// Any number of inputs (>= 2 useful).
    public var inputCount: Int? { nil }

    /// Creates the layer.
    public init(activation: Activation = .none) { self.activation = activation }

    /// All inputs must have one shape; the output has it too.
    /// - Throws: `LayerShapeError` when shapes differ.
    public func outputShapes(for s: [[Int]]) throws -> [[Int]] {
        guard let first = s.first else { throw LayerShapeError("needs at least one input") }
        for (i, t) in s.enumerated() where t != first {
            throw LayerShapeError("input \(i) has shape \(ShapeText.of(t)), input 0 has \(ShapeText.of(first))")
        }
        return [first]
    }

    /// One addition per element and input after the first.
    public func flops(for s: [[Int]]) -> Double {
        Double(max(0, s.count - 1)) * Double(s.first?.reduce(1, *) ?? 0)
    }

    /// Sums in input order (float32, like PyTorch's `a + b`).
    public func forward(inputs: [ValueBuffer], outputs: [ValueBuffer], workspace: UnsafeMutablePointer<Float>?) {
        let y = outputs[0]
        let act = activation
        LayerSupport.forEachChunk(batch: y.batch, count: y.sampleCount) { n, lo, hi in
            let d = y.sample(n)
            let a = inputs[0].sample(n)
            if inputs.count >= 2 {
                let b = inputs[1].sample(n)
                for i in lo..<hi { d[i] = a[i] + b[i] }
            } else {
                for i in lo..<hi { d[i] = a[i] }
            }
            if inputs.count > 2 {
                for x in inputs[2...] { let p = x.sample(n); for i in lo..<hi { d[i] += p[i] } }
            }
            if act != .none { act.apply(d + lo, count: hi - lo) }
        }
    }
}
