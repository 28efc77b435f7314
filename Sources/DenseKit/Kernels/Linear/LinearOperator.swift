import CKernels
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
/// `[rows, out]`. The weight is packed once at init. On CPUs with AVX-512 it is cut into 32-column panels
/// (`[ceil(out/32)][in][32]`) for DenseKit's own GEMM (`dk_panel_gemm`): rows are processed in blocks of
/// `blockRows` (and, when there are few blocks, runs of whole panels: `Threading.panelsPerRun`), each computed
/// from the bias and finished (activation) while it is in cache, and handed to whichever thread is free
/// (`Threading.dynamicFor`), so no weight repacking per call and no separate bias or activation pass. Elsewhere
/// the weight is stored transposed (`[in, out]`) for one plain `BLAS.sgemm` onto the bias and a parallel epilogue. Every output element sums over `in` in increasing order
/// from the bias, whatever the thread count. `forward` is reentrant.
public final class LinearOperator: @unchecked Sendable {
    /// Input features.
    public let inFeatures: Int
    /// Output features.
    public let outFeatures: Int
    /// Activation applied after the bias.
    public let activation: Activation
    /// `[in, out]` row-major, or (when `usesPanels`) the panels `dk_panel_gemm` reads. 64-byte aligned.
    let packedWeight: UnsafeMutablePointer<Float>
    /// Whether `packedWeight` holds 32-column panels (the CPU has AVX-512).
    let usesPanels: Bool
    /// Rows per work item of the panel GEMM (four 14-row register tiles): small enough for a block of inputs
    /// and outputs to stay in L2, enough items for the threads to share unevenly.
    static let blockRows = 56
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
        let panels = dk_has_avx512() != 0
        usesPanels = panels
        let count = panels ? dk_panel_floats(rows, inF) : inF * rows
        let pw = UnsafeMutableRawPointer.allocate(byteCount: count * MemoryLayout<Float>.stride, alignment: 64)
            .bindMemory(to: Float.self, capacity: count)
        weight.withUnsafeBufferPointer { w in
            if panels {
                // panels[(p*in + i)*32 + t] = weight[rowOffset + 32p + t][i], zero past the last row
                pw.initialize(repeating: 0, count: count)
                for o in 0..<rows {
                    let src = (rowOffset + o) * inF, dst = (o / 32) * inF * 32 + o % 32
                    for i in 0..<inF { pw[dst + i * 32] = w[src + i] }
                }
            } else {
                for o in 0..<rows {
                    let src = (rowOffset + o) * inF
                    for i in 0..<inF { pw[i * rows + o] = w[src + i] }
                }
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

    /// A layer computing output features `[first, first + count)` of this one (same activation): its weight rows
    /// and bias entries, read back from the packed copy (exact: packing only moves values).
    /// - Throws: `LinearError.shapeMismatch` when the range is empty or outside `0..<outFeatures`.
    func slice(first: Int, count: Int) throws -> LinearOperator {
        guard first >= 0, count > 0, first + count <= outFeatures else {
            throw LinearError.shapeMismatch("linear output features \(first)..<\(first + count) outside 0..<\(outFeatures)")
        }
        let k = inFeatures, n = outFeatures
        var w = [Float](repeating: 0, count: count * k)
        for o in 0..<count {
            let j = first + o
            for i in 0..<k {
                w[o * k + i] = usesPanels ? packedWeight[(j / 32) * k * 32 + i * 32 + j % 32] : packedWeight[i * n + j]
            }
        }
        let b = packedBias.map { pb in Tensor(shape: [count], values: (0..<count).map { pb[first + $0] }) }
        return try LinearOperator(weight: Tensor(shape: [count, k], values: w), bias: b, activation: activation)
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
        if usesPanels {
            forwardPanels(input: input, rows: rows, inputStride: inputStride, output: output, outputStride: outputStride)
            return
        }
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

    /// `forward` with the weight in panels: blocks of `blockRows` rows by `dk_panel_gemm` (then the activation on
    /// the block), taken by whichever thread is free. When the vector kernels are switched off (tests), the same
    /// panels go through `BLAS.sgemm`, one 32-column panel at a time, onto the bias.
    private func forwardPanels(input: UnsafePointer<Float>, rows: Int, inputStride: Int,
                               output: UnsafeMutablePointer<Float>, outputStride: Int) {
        let n = outFeatures, k = inFeatures, act = activation
        let panels = UnsafePointer(packedWeight), bias = packedBias.map { UnsafePointer($0) }
        guard KernelDispatch.avx512 else {
            if let b = bias {
                LinearOperator.fillBiasRows(output, rows: rows, columns: n, stride: outputStride, bias: b)
            } else {
                for r in 0..<rows { (output + r * outputStride).update(repeating: 0, count: n) }
            }
            for j in stride(from: 0, to: n, by: 32) {
                BLAS.sgemm(m: rows, n: min(32, n - j), k: k, a: input, lda: inputStride, b: panels + (j / 32) * k * 32,
                           ldb: 32, beta: 1, c: output + j, ldc: outputStride)
            }
            LinearOperator.rowEpilogue(output, rows: rows, columns: n, stride: outputStride, bias: nil, activation: act)
            return
        }
        let block = LinearOperator.blockRows
        let rowItems = (rows + block - 1) / block
        // Few row blocks (a few hundred tokens) would leave a thread idle at the end: cut the columns too, into runs
        // of whole panels (fixed by the sizes, not the thread count).
        let width = Threading.panelsPerRun(panels: (n + 31) / 32, items: rowItems) * 32
        let columnItems = (n + width - 1) / width
        Threading.dynamicFor(rowItems * columnItems) { item in
            let r0 = (item / columnItems) * block, count = min(block, rows - r0)
            let j0 = (item % columnItems) * width, w = min(width, n - j0)
            let y = output + r0 * outputStride + j0
            _ = dk_panel_gemm(input + r0 * inputStride, inputStride, count, panels + (j0 / 32) * k * 32, w, k,
                              bias.map { $0 + j0 }, y, outputStride)
            if act == .none { return }
            if outputStride == n && w == n {
                act.apply(y, count: count * n)
            } else {
                for r in 0..<count { act.apply(y + r * outputStride, count: w) }
            }
        }
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
