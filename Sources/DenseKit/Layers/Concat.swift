import Foundation

/// Concatenation of several tensors along one axis (`torch.cat(xs, dim=axis)`).
///
/// Inputs share every dimension except `axis`; the output's `axis` is their sum. With
/// `axis == 1` (NCHW channels) the execution plan usually lets the producers write into
/// the output directly, and this layer then only copies the inputs that could not be
/// placed (graph inputs concatenated twice, repeated inputs...).
public final class Concat: ConcatenatingLayer {
    /// The concatenated axis (>= 1; the batch axis is not supported).
    public let axis: Int
    /// `concat`.
    public var opName: String { "concat" }
    /// Any number of inputs (>= 1).
    public var inputCount: Int? { nil }
    /// Same as `axis`.
    public var concatAxis: Int { axis }

    /// Creates the layer. `axis` is 1 for NCHW channels.
    public init(axis: Int = 1) { self.axis = axis }

    /// All inputs have the same rank and dimensions except `axis`.
    /// - Throws: `LayerShapeError` otherwise, or for `axis` outside `1..<rank`.
    public func outputShapes(for s: [[Int]]) throws -> [[Int]] {
        guard let first = s.first else { throw LayerShapeError("needs at least one input") }
        guard axis >= 1, axis < first.count else { throw LayerShapeError("axis \(axis) is outside 1..<\(first.count)") }
        var out = first
        out[axis] = 0
        for (i, t) in s.enumerated() {
            var a = t, b = first
            guard a.count == b.count else { throw LayerShapeError("input \(i) has rank \(a.count), input 0 has rank \(b.count)") }
            a[axis] = 0; b[axis] = 0
            guard a == b else { throw LayerShapeError("input \(i) differs from input 0 outside axis \(axis)") }
            out[axis] += t[axis]
        }
        return [out]
    }

    /// Copies each input into its slice of the output, skipping those already in place.
    public func forward(inputs: [ValueBuffer], outputs: [ValueBuffer], workspace: UnsafeMutablePointer<Float>?) {
        let y = outputs[0]
        let outer = y.shape[1..<axis].reduce(1, *)
        let inner = y.shape[(axis + 1)...].reduce(1, *)
        let outAxis = y.shape[axis]
        var offset = 0
        for x in inputs {
            let len = x.shape[axis] * inner
            defer { offset += x.shape[axis] }
            if outer == 1 && x.base == y.base + offset * inner && x.sampleStride == y.sampleStride { continue }
            let off = offset
            Threading.parallelFor(y.batch * outer, grain: max(1, 8192 / max(len, 1))) { i in
                let n = i / outer, o = i % outer
                (y.sample(n) + (o * outAxis + off) * inner).update(from: x.sample(n) + o * len, count: len)
            }
        }
    }
}
