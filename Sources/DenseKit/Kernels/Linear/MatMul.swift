import Foundation

/// Matrix products with `torch.matmul` semantics.
public enum MatMul {
    /// `torch.matmul(a, b)`: `a` `[..., M, K]` times `b` `[..., K, N]` gives `[..., M, N]`.
    ///
    /// Follows PyTorch's rules: batch dimensions broadcast (size 1 against any size, missing
    /// leading ones count as 1); a 1-D `a` is treated as `[1, K]` and a 1-D `b` as `[K, 1]`,
    /// the added dimension being removed from the result (two 1-D inputs give a 0-d dot product).
    /// One `BLAS.sgemm` per batch entry.
    /// - Throws: `LinearError.shapeMismatch` for 0-d inputs, inner sizes that differ, or batch
    ///   dimensions that do not broadcast.
    public static func matmul(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        guard a.rank >= 1, b.rank >= 1 else {
            throw LinearError.shapeMismatch("matmul needs inputs of rank >= 1, got \(a.shape) and \(b.shape)")
        }
        let aShape = a.rank == 1 ? [1, a.shape[0]] : a.shape
        let bShape = b.rank == 1 ? [b.shape[0], 1] : b.shape
        let m = aShape[aShape.count - 2], k = aShape[aShape.count - 1]
        let k2 = bShape[bShape.count - 2], n = bShape[bShape.count - 1]
        guard k == k2 else {
            throw LinearError.shapeMismatch("matmul inner sizes differ: \(a.shape) @ \(b.shape)")
        }
        let aBatch = Array(aShape.dropLast(2)), bBatch = Array(bShape.dropLast(2))
        let batch = try broadcastShapes(aBatch, bBatch)
        let count = batch.reduce(1, *)
        var outShape = batch
        if a.rank > 1 { outShape.append(m) }
        if b.rank > 1 { outShape.append(n) }
        var y = Tensor(zeros: outShape)
        if count == 0 || m == 0 || n == 0 { return y }
        let aStrides = broadcastStrides(aBatch, to: batch, matrix: m * k)
        let bStrides = broadcastStrides(bBatch, to: batch, matrix: k * n)
        a.withUnsafeBufferPointer { ab in
            b.withUnsafeBufferPointer { bb in
                y.withUnsafeMutableBufferPointer { yb in
                    guard let ap = ab.baseAddress, let bp = bb.baseAddress, let yp = yb.baseAddress else { return }
                    var index = [Int](repeating: 0, count: batch.count)
                    for i in 0..<count {
                        var ao = 0, bo = 0
                        for d in 0..<batch.count { ao += index[d] * aStrides[d]; bo += index[d] * bStrides[d] }
                        let c = yp + i * m * n
                        if k == 0 {
                            c.update(repeating: 0, count: m * n)
                        } else {
                            BLAS.sgemm(m: m, n: n, k: k, a: ap + ao, lda: k, b: bp + bo, ldb: n, c: c, ldc: n)
                        }
                        var d = batch.count - 1
                        while d >= 0 { index[d] += 1; if index[d] < batch[d] { break }; index[d] = 0; d -= 1 }
                    }
                }
            }
        }
        return y
    }

    /// The broadcast of two shapes (NumPy / PyTorch rules, aligned at the right).
    /// - Throws: `LinearError.shapeMismatch` when two sizes differ and neither is 1.
    static func broadcastShapes(_ x: [Int], _ y: [Int]) throws -> [Int] {
        let r = max(x.count, y.count)
        var out = [Int](repeating: 1, count: r)
        for i in 0..<r {
            let a = i < r - x.count ? 1 : x[i - (r - x.count)]
            let b = i < r - y.count ? 1 : y[i - (r - y.count)]
            if a == b || b == 1 { out[i] = a } else if a == 1 { out[i] = b } else {
                throw LinearError.shapeMismatch("batch dimensions \(x) and \(y) do not broadcast")
            }
        }
        return out
    }

    /// Element strides (in floats) of each broadcast batch dimension for a tensor whose batch
    /// shape is `shape`, contiguous matrices of `matrix` floats; 0 where the dimension broadcasts.
    static func broadcastStrides(_ shape: [Int], to batch: [Int], matrix: Int) -> [Int] {
        var strides = [Int](repeating: 0, count: batch.count)
        var s = matrix
        let off = batch.count - shape.count
        var i = shape.count - 1
        while i >= 0 {
            strides[i + off] = shape[i] == 1 ? 0 : s
            s *= shape[i]
            i -= 1
        }
        return strides
    }
}
