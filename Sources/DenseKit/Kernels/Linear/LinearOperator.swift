import Foundation

/// Errors of the linear, matmul and attention kernels: shapes that do not fit.
public enum LinearError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A tensor has the wrong shape; the message names it and what was expected.
    case shapeMismatch(String)

    /// A one-line message naming the problem.
    public var description: String {
        switch self {
        case .shapeMismatch(let m): return "shape mismatch: \(m)"
        }
    }
}

/// A fully connected layer with packed weights: `y = act(x @ weight^T + bias)`, matching
/// `torch.nn.functional.linear` (followed by the optional activation).
///
/// Inputs are row-major `[rows, in]` (any leading dimensions flattened into rows), outputs
/// `[rows, out]`. The weight is stored transposed (`[in, out]`) once at init so that the product is
/// one plain `BLAS.sgemm`; the bias + activation epilogue is split over rows with a fixed
/// partition. `forward` is reentrant.
public final class LinearOperator: @unchecked Sendable {
    /// Input features.
    public let inFeatures: Int
    /// Output features.
    public let outFeatures: Int
    /// Activation applied after the bias.
    public let activation: Activation
    /// `[in, out]` row-major.
    let packedWeight: UnsafeMutablePointer<Float>
    let packedBias: UnsafeMutablePointer<Float>?

    /// Creates the layer.
    /// - Parameters:
    ///   - weight: `[out, in]` (PyTorch's `Linear.weight`).
    ///   - bias: `[out]` or nil.
    ///   - activation: fused activation (default none).
    /// - Throws: `LinearError.shapeMismatch` when the weight is not 2-D or the bias is not `[out]`.
    public convenience init(weight: Tensor, bias: Tensor?, activation: Activation = .none) throws {
        guard weight.rank == 2, weight.shape[0] > 0, weight.shape[1] > 0 else {
            throw LinearError.shapeMismatch("linear weight must be [out, in] with out, in > 0, got \(weight.shape)")
        }
        try self.init(weight: weight, rowOffset: 0, rows: weight.shape[0], bias: bias, biasOffset: 0, activation: activation)
    }

    /// Creates the layer from rows `[rowOffset, rowOffset + rows)` of a `[*, in]` weight and the
    /// same range of a bias (used for the fused q/k/v projection of attention).
    init(weight: Tensor, rowOffset: Int, rows: Int, bias: Tensor?, biasOffset: Int, activation: Activation) throws {
        guard weight.rank == 2, rowOffset >= 0, rows > 0, rowOffset + rows <= weight.shape[0], weight.shape[1] > 0 else {
            throw LinearError.shapeMismatch("linear weight \(weight.shape) has no rows \(rowOffset)..<\(rowOffset + rows)")
        }
        if let b = bias {
            guard b.rank == 1, biasOffset >= 0, biasOffset + rows <= b.shape[0] else {
                throw LinearError.shapeMismatch("linear bias \(b.shape) does not cover \(rows) outputs at \(biasOffset)")
            }
            if rowOffset == 0 && biasOffset == 0 && b.shape[0] != weight.shape[0] {
                throw LinearError.shapeMismatch("linear bias has shape \(b.shape), expected [\(weight.shape[0])]")
            }
        }
        let inF = weight.shape[1]
        inFeatures = inF
        outFeatures = rows
        self.activation = activation
        let pw = UnsafeMutablePointer<Float>.allocate(capacity: inF * rows)
        weight.withUnsafeBufferPointer { w in
            for o in 0..<rows {
                let src = (rowOffset + o) * inF
                for i in 0..<inF { pw[i * rows + o] = w[src + i] }
            }
        }
        packedWeight = pw
        if let b = bias {
            let pb = UnsafeMutablePointer<Float>.allocate(capacity: rows)
            b.withUnsafeBufferPointer { bb in
                for o in 0..<rows { pb[o] = bb[biasOffset + o] }
            }
            packedBias = pb
        } else {
            packedBias = nil
        }
    }

    deinit {
        packedWeight.deallocate()
        packedBias?.deallocate()
    }

    /// Multiply-adds times two for `rows` rows.
    public func flops(rows: Int) -> Double { 2 * Double(rows) * Double(inFeatures) * Double(outFeatures) }

    /// Computes `rows` rows.
    /// - Parameters:
    ///   - input: `[rows, in]` row-major.
    ///   - output: `[rows, out]` row-major, fully overwritten.
    public func forward(input: UnsafePointer<Float>, rows: Int, output: UnsafeMutablePointer<Float>) {
        forward(input: input, rows: rows, inputStride: inFeatures, output: output, outputStride: outFeatures)
    }

    /// Computes `rows` rows with arbitrary row strides (for views into wider buffers).
    func forward(input: UnsafePointer<Float>, rows: Int, inputStride: Int, output: UnsafeMutablePointer<Float>, outputStride: Int) {
        if rows <= 0 { return }
        if let bias = packedBias {
            // The bias first, then C += A B (beta 1): one pass over C fewer than zeroing it (OpenBLAS's beta
            // pass) and adding the bias afterwards; the sum is formed in the same order (A B, then + bias).
            let n = outFeatures
            LinearOperator.fillBiasRows(output, rows: rows, columns: n, stride: outputStride, bias: bias)
            BLAS.sgemm(m: rows, n: n, k: inFeatures, a: input, lda: inputStride,
                       b: packedWeight, ldb: n, beta: 1, c: output, ldc: outputStride)
            LinearOperator.rowEpilogue(output, rows: rows, columns: n, stride: outputStride, bias: nil, activation: activation)
            return
        }
        BLAS.sgemm(m: rows, n: outFeatures, k: inFeatures, a: input, lda: inputStride,
                   b: packedWeight, ldb: outFeatures, c: output, ldc: outputStride)
        LinearOperator.rowEpilogue(output, rows: rows, columns: outFeatures, stride: outputStride,
                                   bias: nil, activation: activation)
    }

    /// `y[r, 0..<columns] = bias` for `rows` rows (row stride `stride`): the starting value of a GEMM that then
    /// accumulates onto it (`beta = 1`), so the product needs no zeroing pass and no bias pass.
    static func fillBiasRows(_ y: UnsafeMutablePointer<Float>, rows: Int, columns: Int, stride: Int, bias: UnsafePointer<Float>) {
        Threading.parallelFor(rows, grain: max(1, 16_384 / max(1, columns))) { r in
            (y + r * stride).update(from: bias, count: columns)
        }
    }

    /// `y[r, j] = act(y[r, j] + bias[j])` over `rows` rows of `columns` values (row stride `stride`).
    static func rowEpilogue(_ y: UnsafeMutablePointer<Float>, rows: Int, columns: Int, stride: Int,
                            bias: UnsafePointer<Float>?, activation: Activation) {
        if bias == nil && activation == .none { return }
        Threading.parallelFor(rows, grain: max(1, 16_384 / max(1, columns))) { r in
            let row = y + r * stride
            if let b = bias { for j in 0..<columns { row[j] += b[j] } }
            activation.apply(row, count: columns)
        }
    }

    /// Applies the layer to `[..., in]`, returning `[..., out]`.
    /// - Precondition: the last dimension is `inFeatures` (use `checkedCall` for a throwing variant).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        do { return try checkedCall(x) } catch { preconditionFailure("\(error)") }
    }

    /// Applies the layer to `[..., in]`, returning `[..., out]`.
    /// - Throws: `LinearError.shapeMismatch` when the last dimension is not `inFeatures`.
    public func checkedCall(_ x: Tensor) throws -> Tensor {
        guard x.rank >= 1, x.shape[x.rank - 1] == inFeatures else {
            throw LinearError.shapeMismatch("linear input must be [..., \(inFeatures)], got \(x.shape)")
        }
        let rows = x.count / inFeatures
        var shape = x.shape
        shape[shape.count - 1] = outFeatures
        if rows == 0 { return Tensor(zeros: shape, layout: x.layout == .nchw ? .plain : x.layout) }
        var y = Tensor(uninitialized: shape, layout: x.layout == .nchw ? .plain : x.layout)   // forward writes all of it
        x.withUnsafeBufferPointer { xb in
            y.withUnsafeMutableBufferPointer { yb in
                guard let xp = xb.baseAddress, let yp = yb.baseAddress else { return }
                forward(input: xp, rows: rows, output: yp)
            }
        }
        return y
    }
}
