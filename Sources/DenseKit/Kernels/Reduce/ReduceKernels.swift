/// Reductions along one dimension of a row-major tensor seen as `[outer, dim, inner]`:
/// argmax, top-k and L2 normalisation.
///
/// `outer` is the product of the sizes before the reduced dimension, `inner` the product after it.
/// Work is split by the sizes alone, so results do not depend on `Threading.threads`.
public enum ReduceKernels {
    /// `torch.argmax(x, dim)` (keepdim false): the index of the largest value along `dim`, the first one
    /// on ties; a NaN counts as the largest (PyTorch's rule), the first NaN wins.
    /// - Parameters:
    ///   - x: `[outer, dim, inner]` row-major, `dim >= 1`.
    ///   - y: `[outer, inner]` indices in `0..<dim`.
    public static func argmax(_ x: UnsafePointer<Float>, outer: Int, dim: Int, inner: Int, _ y: UnsafeMutablePointer<Int64>) {
        guard outer > 0, dim > 0, inner > 0 else { return }
        Threading.parallelFor(outer, grain: max(1, 16384 / (dim * inner))) { o in
            argmaxSlice(x + o * dim * inner, dim: dim, inner: inner, y + o * inner)
        }
    }

    static func argmaxSlice(_ x: UnsafePointer<Float>, dim: Int, inner: Int, _ y: UnsafeMutablePointer<Int64>) {
        let best = UnsafeMutablePointer<Float>.allocate(capacity: inner)
        defer { best.deallocate() }
        best.update(from: x, count: inner)
        for j in 0..<inner { y[j] = 0 }
        for d in 1..<max(dim, 1) {
            let r = x + d * inner
            for j in 0..<inner {
                let v = r[j], b = best[j]
                if v > b || (v.isNaN && !b.isNaN) { best[j] = v; y[j] = Int64(d) }
            }
        }
    }

    /// `torch.nn.functional.normalize(x, p=2, dim, eps)`: `y = x / max(||x||_2, eps)` along `dim`.
    ///
    /// `eps` clamps the norm (it is not added): a zero vector gives zeros and a vector of norm 1e-13 is
    /// divided by 1e-12. The sum of squares is accumulated in Double; the norm is rounded to float32 and
    /// the division is done in float32, as PyTorch does.
    /// - Parameters:
    ///   - x: `[outer, dim, inner]` row-major.
    ///   - y: same size; may equal `x`.
    public static func l2Normalize(_ x: UnsafePointer<Float>, outer: Int, dim: Int, inner: Int, eps: Double,
                                   _ y: UnsafeMutablePointer<Float>) {
        guard outer > 0, dim > 0, inner > 0 else { return }
        let e = Float(eps)
        Threading.parallelFor(outer, grain: max(1, 16384 / (dim * inner))) { o in
            l2Slice(x + o * dim * inner, dim: dim, inner: inner, eps: e, y + o * dim * inner)
        }
    }

    static func l2Slice(_ x: UnsafePointer<Float>, dim: Int, inner: Int, eps: Float, _ y: UnsafeMutablePointer<Float>) {
        let acc = UnsafeMutablePointer<Double>.allocate(capacity: inner)
        let den = UnsafeMutablePointer<Float>.allocate(capacity: inner)
        defer { acc.deallocate(); den.deallocate() }
        acc.initialize(repeating: 0, count: inner)
        for d in 0..<dim {
            let r = x + d * inner
            for j in 0..<inner { let v = Double(r[j]); acc[j] += v * v }
        }
        for j in 0..<inner {
            let n = Float(acc[j].squareRoot())
            den[j] = n < eps ? eps : n
        }
        for d in 0..<dim {
            let r = x + d * inner, o = y + d * inner
            for j in 0..<inner { o[j] = r[j] / den[j] }
        }
    }

    /// `torch.topk(x, k, dim, largest, sorted=True)`: the `k` largest (or smallest) values along `dim`,
    /// sorted descending (ascending for smallest), with their indices. Ties keep the lower index first;
    /// NaN counts as larger than every number (PyTorch's order). An unsorted request may use this too:
    /// sorted output is one of the orders PyTorch allows.
    /// - Parameters:
    ///   - x: `[outer, dim, inner]` row-major.
    ///   - k: `0 <= k <= dim` (clamped to that range).
    ///   - values: `[outer, k, inner]`.
    ///   - indices: `[outer, k, inner]`, indices in `0..<dim`.
    public static func topK(_ x: UnsafePointer<Float>, outer: Int, dim: Int, inner: Int, k: Int, largest: Bool,
                            values: UnsafeMutablePointer<Float>, indices: UnsafeMutablePointer<Int64>) {
        let k = min(max(k, 0), dim)
        guard outer > 0, dim > 0, inner > 0, k > 0 else { return }
        Threading.parallelFor(outer * inner, grain: max(1, 4096 / dim)) { item in
            let o = item / inner, j = item % inner
            topKSlice(x + o * dim * inner + j, dim: dim, stride: inner, k: k, largest: largest,
                      values + o * k * inner + j, indices + o * k * inner + j)
        }
    }

    static func topKSlice(_ x: UnsafePointer<Float>, dim: Int, stride: Int, k: Int, largest: Bool,
                          _ values: UnsafeMutablePointer<Float>, _ indices: UnsafeMutablePointer<Int64>) {
        var order = Array(0..<dim)
        // `before(a, b)`: a comes first in the output.
        let before: (Int, Int) -> Bool = { a, b in
            let va = x[a * stride], vb = x[b * stride]
            if va.isNaN || vb.isNaN {
                if va.isNaN && vb.isNaN { return a < b }
                return largest ? va.isNaN : vb.isNaN
            }
            if va != vb { return largest ? va > vb : va < vb }
            return a < b
        }
        if k < dim / 8 {
            // Partial selection: keep the best k in a sorted prefix.
            var top: [Int] = []
            top.reserveCapacity(k + 1)
            for i in 0..<dim {
                if top.count == k, let last = top.last, !before(i, last) { continue }
                var lo = 0, hi = top.count
                while lo < hi { let mid = (lo + hi) / 2; if before(top[mid], i) { lo = mid + 1 } else { hi = mid } }
                top.insert(i, at: lo)
                if top.count > k { top.removeLast() }
            }
            order = top
        } else {
            order.sort(by: before)
        }
        for r in 0..<k {
            let i = order[r]
            values[r * stride] = x[i * stride]
            indices[r * stride] = Int64(i)
        }
    }
}

// MARK: - Tensor wrappers

extension ReduceKernels {
    /// `torch.argmax(x, dim)` (keepdim false) for a tensor of any rank.
    /// - Throws: `KernelArgumentError` when `dim` is out of range or the dimension is empty.
    public static func argmax(_ x: Tensor, dim: Int) throws -> IndexTensor {
        let d = try normalizedDim(dim, rank: x.rank, "argmax")
        let (o, n, i) = splitShape(x.shape, at: d)
        guard n > 0 else { throw KernelArgumentError("argmax: empty dimension \(d) of \(x.shape)") }
        var out = [Int64](repeating: 0, count: o * i)
        x.withUnsafeBufferPointer { xs in out.withUnsafeMutableBufferPointer { ys in
            guard let xb = xs.baseAddress, let yb = ys.baseAddress else { return }
            argmax(xb, outer: o, dim: n, inner: i, yb)
        } }
        var shape = x.shape
        if !shape.isEmpty { shape.remove(at: d) }
        return IndexTensor(shape: shape, values: out)
    }

    /// `F.normalize(x, p=2, dim, eps)` for a tensor of any rank.
    /// - Throws: `KernelArgumentError` when `dim` is out of range.
    public static func l2Normalize(_ x: Tensor, dim: Int, eps: Double = 1e-12) throws -> Tensor {
        let d = try normalizedDim(dim, rank: x.rank, "l2Normalize")
        let (o, n, i) = splitShape(x.shape, at: d)
        var y = Tensor(zeros: x.shape, layout: x.layout)
        x.withUnsafeBufferPointer { xs in y.withUnsafeMutableBufferPointer { ys in
            guard let xb = xs.baseAddress, let yb = ys.baseAddress else { return }
            l2Normalize(xb, outer: o, dim: n, inner: i, eps: eps, yb)
        } }
        return y
    }

    /// `torch.topk(x, k, dim, largest, sorted=True)` for a tensor of any rank: values and indices of
    /// `x`'s shape with `dim` replaced by `k`.
    /// - Throws: `KernelArgumentError` when `dim` is out of range or `k` is not in `0...size(dim)`.
    public static func topK(_ x: Tensor, k: Int, dim: Int = -1, largest: Bool = true) throws -> (values: Tensor, indices: IndexTensor) {
        let d = try normalizedDim(dim, rank: x.rank, "topK")
        let (o, n, i) = splitShape(x.shape, at: d)
        guard k >= 0, k <= n else { throw KernelArgumentError("topK: k = \(k) for a dimension of size \(n)") }
        var shape = x.shape
        if !shape.isEmpty { shape[d] = k }
        var vals = Tensor(zeros: shape)
        var idx = [Int64](repeating: 0, count: o * k * i)
        x.withUnsafeBufferPointer { xs in vals.withUnsafeMutableBufferPointer { vs in idx.withUnsafeMutableBufferPointer { ids in
            guard let xb = xs.baseAddress, let vb = vs.baseAddress, let ib = ids.baseAddress else { return }
            topK(xb, outer: o, dim: n, inner: i, k: k, largest: largest, values: vb, indices: ib)
        } } }
        return (vals, IndexTensor(shape: shape, values: idx))
    }
}
