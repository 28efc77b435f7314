import Foundation

/// Fully connected layer (`nn.Linear`): `y = act(x · Wᵀ + b)`.
///
/// Input `[N, in]` (or `[N, in, 1, 1]`), weight `[out, in]` as PyTorch stores it, bias
/// `[out]`; output `[N, out]`. One `BLAS.sgemm` with the batch as rows.
public final class Linear: GraphLayer {
    /// Input features.
    public let inFeatures: Int
    /// Output features.
    public let outFeatures: Int
    /// Applied after the bias.
    public let activation: Activation
    private let weight: Tensor
    private let bias: [Float]

    /// `linear`.
    public var opName: String { "linear" }

    /// Creates the layer.
    /// - Throws: `GraphError.invalidWeights` unless weight is `[out, in]` and bias `[out]` (or nil).
    public init(weight: Tensor, bias: Tensor?, activation: Activation = .none, name: String = "linear") throws {
        guard weight.rank == 2 else { throw GraphError.invalidWeights(layer: name, message: "weight \(ShapeText.of(weight.shape)) is not [out, in]") }
        let out = weight.shape[0]
        if let b = bias, b.shape != [out] {
            throw GraphError.invalidWeights(layer: name, message: "bias \(ShapeText.of(b.shape)) does not match weight \(ShapeText.of(weight.shape))")
        }
        self.inFeatures = weight.shape[1]
        self.outFeatures = out
        self.activation = activation
        var w = Tensor(zeros: weight.shape)   // own, aligned copy (the source may be a file mapping)
        weight.withUnsafeBufferPointer { s in w.withUnsafeMutableBufferPointer { d in if let sb = s.baseAddress, let db = d.baseAddress { db.update(from: sb, count: s.count) } } }
        self.weight = w
        self.bias = bias?.scalars ?? [Float](repeating: 0, count: out)
    }

    /// - Throws: `LayerShapeError` unless the input is `[N, in]` or `[N, in, 1, 1]`.
    public func outputShapes(for s: [[Int]]) throws -> [[Int]] {
        let x = s[0]
        guard (x.count == 2 || (x.count == 4 && x[2] == 1 && x[3] == 1)), x[1] == inFeatures else {
            throw LayerShapeError("expects [N, \(inFeatures)] or [N, \(inFeatures), 1, 1], got \(ShapeText.of(x))")
        }
        return [[x[0], outFeatures]]
    }

    /// `2 * N * in * out`.
    public func flops(for s: [[Int]]) -> Double { 2 * Double(s[0][0]) * Double(inFeatures) * Double(outFeatures) }

    /// One GEMM over the batch, then bias and activation.
    public func forward(inputs: [ValueBuffer], outputs: [ValueBuffer], workspace: UnsafeMutablePointer<Float>?) {
        let x = inputs[0], y = outputs[0]
        let n = x.batch
        weight.withUnsafeBufferPointer { w in
            guard let wb = w.baseAddress else { return }
            BLAS.sgemm(transA: false, transB: true, m: n, n: outFeatures, k: inFeatures,
                       a: x.base, lda: max(x.sampleStride, inFeatures), b: wb, ldb: inFeatures,
                       c: y.base, ldc: max(y.sampleStride, outFeatures))
        }
        bias.withUnsafeBufferPointer { b in
            LinearOperator.rowEpilogue(y.base, rows: n, columns: outFeatures, stride: y.sampleStride,
                                       bias: b.baseAddress, activation: activation)
        }
    }
}
