/// Padding modes of `ShapeKernels.pad`, PyTorch `F.pad`'s `mode`.
public enum PadMode: String, Sendable, Hashable, Codable {
    /// Fill with a constant value (`"constant"`).
    case constant
    /// Mirror without repeating the edge: `x[-k] -> x[k]`, `x[H-1+k] -> x[H-1-k]` (`"reflect"`; pad < size).
    case reflect
    /// Repeat the edge: the index is clamped to `[0, H-1]` (`"replicate"`).
    case replicate
}

/// Data-movement kernels: concatenation, padding, gather, pixel (un)shuffle.
///
/// All work on row-major float32 buffers; large kernels are split over planes or rows with a fixed
/// partition (results are exact copies, identical for any thread count).
public enum ShapeKernels {
    /// `torch.cat(parts, dim)`: each part is `[outer, size_k, inner]` row-major; the output is
    /// `[outer, sum_k size_k, inner]` with the parts in order along the middle dimension.
    /// - Parameters:
    ///   - parts: base address and middle size of every input.
    ///   - outer: product of the sizes before the concatenation dimension (equal for all parts).
    ///   - inner: product of the sizes after it.
    ///   - y: `outer * (sum of sizes) * inner` values.
    public static func concat(_ parts: [(pointer: UnsafePointer<Float>, size: Int)], outer: Int, inner: Int,
                              _ y: UnsafeMutablePointer<Float>) {
        let total = parts.reduce(0) { $0 + $1.size }
        guard outer > 0, inner > 0, total > 0 else { return }
        parts.withUnsafeBufferPointer { ps in
            Threading.parallelFor(outer, grain: max(1, 65536 / (total * inner))) { o in
                var dst = y + o * total * inner
                for p in ps {
                    let n = p.size * inner
                    dst.update(from: p.pointer + o * n, count: n)
                    dst += n
                }
            }
        }
    }

    /// `torch.nn.functional.pad` of the last two dimensions of `planes` contiguous `height x width` planes.
    ///
    /// Output planes are `(height + top + bottom) x (width + left + right)`. `.constant` fills with `value`
    /// and accepts negative amounts (cropping, as F.pad does); `.reflect` needs `0 <= pad < size` and
    /// `.replicate` `pad >= 0` (the `Tensor` wrapper checks; out-of-contract amounts here read clamped
    /// indices rather than outside the input).
    /// - Parameters:
    ///   - x: `planes * height * width` values.
    ///   - y: `planes * outHeight * outWidth` values.
    public static func pad(_ x: UnsafePointer<Float>, planes: Int, height: Int, width: Int,
                           top: Int, bottom: Int, left: Int, right: Int, mode: PadMode, value: Float = 0,
                           _ y: UnsafeMutablePointer<Float>) {
        let oh = height + top + bottom, ow = width + left + right
        guard planes > 0, oh > 0, ow > 0 else { return }
        if height <= 0 || width <= 0 {
            // Nothing to read: only a constant fill is meaningful.
            y.update(repeating: value, count: planes * oh * ow)
            return
        }
        let rows = (0..<oh).map { sourceIndex($0 - top, size: height, mode: mode) }
        let cols = (0..<ow).map { sourceIndex($0 - left, size: width, mode: mode) }
        rows.withUnsafeBufferPointer { rs in cols.withUnsafeBufferPointer { cs in
            Threading.parallelFor(planes, grain: max(1, 16384 / (oh * ow))) { p in
                let src = x + p * height * width, dst = y + p * oh * ow
                for i in 0..<oh {
                    let out = dst + i * ow
                    let r = rs[i]
                    if r < 0 { out.update(repeating: value, count: ow); continue }
                    let row = src + r * width
                    for j in 0..<ow { let c = cs[j]; out[j] = c < 0 ? value : row[c] }
                }
            }
        } }
    }

    /// Source index of padded position `i` (already shifted by the leading pad), or -1 for the constant fill.
    static func sourceIndex(_ i: Int, size: Int, mode: PadMode) -> Int {
        if i >= 0 && i < size { return i }
        switch mode {
        case .constant:
            return -1
        case .replicate:
            return min(max(i, 0), size - 1)
        case .reflect:
            if size == 1 { return 0 }
            // Mirror with period 2*(size-1); F.pad itself only allows pad < size (one reflection).
            let period = 2 * (size - 1)
            var m = i % period
            if m < 0 { m += period }
            return m < size ? m : period - m
        }
    }

    /// `torch.gather(x, dim, index)`: `y[i_0, .., i_d, .., i_n] = x[i_0, .., index[i_0, .., i_n], .., i_n]`.
    /// - Parameters:
    ///   - x: row-major tensor of shape `xShape`.
    ///   - index: row-major indices of shape `indexShape` (same rank, `indexShape[k] <= xShape[k]` for `k != dim`).
    ///   - dim: the indexed dimension, `0 <= dim < rank`.
    ///   - y: row-major output of shape `indexShape`.
    /// - Throws: `KernelArgumentError` on mismatched shapes or an index outside `0..<xShape[dim]`
    ///   (`y` may then be partly written).
    public static func gather(_ x: UnsafePointer<Float>, xShape: [Int], index: UnsafePointer<Int64>, indexShape: [Int],
                              dim: Int, _ y: UnsafeMutablePointer<Float>) throws {
        let rank = xShape.count
        guard indexShape.count == rank, dim >= 0, dim < rank else {
            throw KernelArgumentError("gather: index shape \(indexShape) for x \(xShape), dim \(dim)")
        }
        for k in 0..<rank where k != dim && indexShape[k] > xShape[k] {
            throw KernelArgumentError("gather: index shape \(indexShape) exceeds x \(xShape) at dim \(k)")
        }
        let count = indexShape.reduce(1, *)
        if count == 0 { return }
        var xStride = [Int](repeating: 1, count: rank)
        for k in stride(from: rank - 2, through: 0, by: -1) { xStride[k] = xStride[k + 1] * xShape[k + 1] }
        let last = rank - 1
        let rowLen = indexShape[last]
        let rows = count / rowLen
        let size = Int64(xShape[dim])
        var coord = [Int](repeating: 0, count: rank)   // coordinates of the current row's first element
        for r in 0..<rows {
            var base = 0
            for k in 0..<last where k != dim { base += coord[k] * xStride[k] }
            let ir = index + r * rowLen, yr = y + r * rowLen
            for j in 0..<rowLen {
                let v = ir[j]
                guard v >= 0 && v < size else { throw KernelArgumentError("gather: index \(v) out of range 0..<\(size)") }
                let off = dim == last ? base + Int(v) : base + Int(v) * xStride[dim] + j
                yr[j] = x[off]
            }
            // Advance the odometer over dims 0..<last.
            var k = last - 1
            while k >= 0 {
                coord[k] += 1
                if coord[k] < indexShape[k] { break }
                coord[k] = 0
                k -= 1
            }
        }
    }

    /// `torch.nn.functional.pixel_shuffle(x, r)`:
    /// `y[n, c, h*r + i, w*r + j] = x[n, c*r*r + i*r + j, h, w]`.
    /// - Parameters:
    ///   - x: `[n, channels, height, width]` with `channels = C * r * r`.
    ///   - factor: `r >= 1`, dividing `channels` (the caller checks).
    ///   - y: `[n, channels / (r*r), height * r, width * r]`.
    public static func pixelShuffle(_ x: UnsafePointer<Float>, n: Int, channels: Int, height: Int, width: Int,
                                    factor r: Int, _ y: UnsafeMutablePointer<Float>) {
        guard n > 0, r > 0, channels % (r * r) == 0, height > 0, width > 0 else { return }
        let c = channels / (r * r)
        let ow = width * r, plane = height * width
        Threading.parallelFor(n * c, grain: max(1, 16384 / (plane * r * r))) { nc in
            let src = x + nc * r * r * plane, dst = y + nc * r * r * plane
            for i in 0..<r {
                for j in 0..<r {
                    let s = src + (i * r + j) * plane
                    for h in 0..<height {
                        let srow = s + h * width, drow = dst + (h * r + i) * ow + j
                        for w in 0..<width { drow[w * r] = srow[w] }
                    }
                }
            }
        }
    }

    /// `torch.nn.functional.pixel_unshuffle(x, r)`:
    /// `y[n, c*r*r + i*r + j, h, w] = x[n, c, h*r + i, w*r + j]`.
    /// - Parameters:
    ///   - x: `[n, channels, height, width]`, `height` and `width` divisible by `r` (the caller checks).
    ///   - y: `[n, channels * r * r, height / r, width / r]`.
    public static func pixelUnshuffle(_ x: UnsafePointer<Float>, n: Int, channels: Int, height: Int, width: Int,
                                      factor r: Int, _ y: UnsafeMutablePointer<Float>) {
        guard n > 0, channels > 0, r > 0, height % r == 0, width % r == 0, height > 0, width > 0 else { return }
        let oh = height / r, ow = width / r, plane = oh * ow
        Threading.parallelFor(n * channels, grain: max(1, 16384 / (height * width))) { nc in
            let src = x + nc * height * width, dst = y + nc * r * r * plane
            for i in 0..<r {
                for j in 0..<r {
                    let d = dst + (i * r + j) * plane
                    for h in 0..<oh {
                        let srow = src + (h * r + i) * width + j, drow = d + h * ow
                        for w in 0..<ow { drow[w] = srow[w * r] }
                    }
                }
            }
        }
    }
}

// MARK: - Tensor wrappers

extension ShapeKernels {
    /// `torch.cat(tensors, dim)`.
    /// - Throws: `KernelArgumentError` for no tensors, different ranks, or sizes that differ outside `dim`.
    public static func concat(_ tensors: [Tensor], dim: Int) throws -> Tensor {
        guard let first = tensors.first else { throw KernelArgumentError("concat: no tensors") }
        let d = try normalizedDim(dim, rank: first.rank, "concat")
        for t in tensors {
            guard t.rank == first.rank,
                  zip(t.shape, first.shape).enumerated().allSatisfy({ $0.offset == d || $0.element.0 == $0.element.1 })
            else { throw KernelArgumentError("concat: shape \(t.shape) does not match \(first.shape) outside dim \(d)") }
        }
        var shape = first.shape
        shape[d] = tensors.reduce(0) { $0 + $1.shape[d] }
        let (outer, _, inner) = splitShape(shape, at: d)
        var y = Tensor(zeros: shape, layout: first.layout)
        // Keep every input alive and borrowed while the kernel runs.
        func withPointers(_ i: Int, _ acc: [(pointer: UnsafePointer<Float>, size: Int)],
                          _ body: ([(pointer: UnsafePointer<Float>, size: Int)]) -> Void) {
            if i == tensors.count { body(acc); return }
            tensors[i].withUnsafeBufferPointer { b in
                var next = acc
                if let base = b.baseAddress, b.count > 0 { next.append((base, tensors[i].shape[d])) }
                withPointers(i + 1, next, body)
            }
        }
        y.withUnsafeMutableBufferPointer { ys in
            guard let yb = ys.baseAddress else { return }
            withPointers(0, []) { parts in concat(parts, outer: outer, inner: inner, yb) }
        }
        return y
    }

    /// `F.pad(x, pads, mode, value)` with `pads` in F.pad order: `[left, right]` pads the last dimension,
    /// `[left, right, top, bottom]` the last two.
    /// - Throws: `KernelArgumentError` for another number of pad values, too small a rank, an empty
    ///   result, or amounts the mode does not allow (reflect: `0 <= pad < size`; replicate: `pad >= 0`).
    public static func pad(_ x: Tensor, _ pads: [Int], mode: PadMode = .constant, value: Float = 0) throws -> Tensor {
        guard pads.count == 2 || pads.count == 4 else {
            throw KernelArgumentError("pad: \(pads.count) pad values (2 or 4 supported)")
        }
        let dims = pads.count / 2
        guard x.rank >= dims else { throw KernelArgumentError("pad: rank \(x.rank) for \(pads.count) pad values") }
        let left = pads[0], right = pads[1]
        let top = dims == 2 ? pads[2] : 0, bottom = dims == 2 ? pads[3] : 0
        let w = x.shape[x.rank - 1]
        let h = dims == 2 ? x.shape[x.rank - 2] : 1
        switch mode {
        case .constant: break
        case .replicate:
            guard pads.allSatisfy({ $0 >= 0 }), h > 0, w > 0 else { throw KernelArgumentError("pad: replicate \(pads) for \(x.shape)") }
        case .reflect:
            guard pads.allSatisfy({ $0 >= 0 }), left < w, right < w, top < max(h, 1), bottom < max(h, 1) else {
                throw KernelArgumentError("pad: reflect \(pads) needs pads smaller than the sizes of \(x.shape)")
            }
        }
        let oh = h + top + bottom, ow = w + left + right
        guard oh >= 0, ow >= 0 else { throw KernelArgumentError("pad: \(pads) gives a negative size for \(x.shape)") }
        var shape = x.shape
        shape[x.rank - 1] = ow
        if dims == 2 { shape[x.rank - 2] = oh }
        var y = Tensor(zeros: shape, layout: x.layout)
        let leading = x.rank > dims ? x.shape[..<(x.rank - dims)].reduce(1, *) : 1
        x.withUnsafeBufferPointer { xs in y.withUnsafeMutableBufferPointer { ys in
            guard let yb = ys.baseAddress, ys.count > 0 else { return }
            guard let xb = xs.baseAddress, xs.count > 0 else { yb.update(repeating: value, count: ys.count); return }
            pad(xb, planes: leading, height: h, width: w, top: top, bottom: bottom,
                left: left, right: right, mode: mode, value: value, yb)
        } }
        return y
    }

    /// `torch.gather(x, dim, index)`.
    /// - Throws: `KernelArgumentError` on mismatched shapes or out-of-range indices.
    public static func gather(_ x: Tensor, dim: Int, index: IndexTensor) throws -> Tensor {
        let d = try normalizedDim(dim, rank: x.rank, "gather")
        var y = Tensor(zeros: index.shape)
        if y.count == 0 { return y }
        try x.withUnsafeBufferPointer { xs in try y.withUnsafeMutableBufferPointer { ys in
            try index.values.withUnsafeBufferPointer { ids in
                guard let xb = xs.baseAddress, let yb = ys.baseAddress, let ib = ids.baseAddress else { return }
                try gather(xb, xShape: x.shape, index: ib, indexShape: index.shape, dim: d, yb)
            }
        } }
        return y
    }

    /// `F.pixel_shuffle(x, r)`: `[N, C*r*r, H, W]` -> `[N, C, H*r, W*r]`.
    /// - Throws: `KernelArgumentError` for another rank or channels not divisible by `r*r`.
    public static func pixelShuffle(_ x: Tensor, factor r: Int) throws -> Tensor {
        try x.requireRank(4, "pixelShuffle")
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        guard r > 0, r <= 1 << 15, c % (r * r) == 0 else { throw KernelArgumentError("pixelShuffle: \(c) channels, factor \(r)") }
        var y = Tensor(zeros: [n, c / (r * r), h * r, w * r])
        x.withUnsafeBufferPointer { xs in y.withUnsafeMutableBufferPointer { ys in
            guard let xb = xs.baseAddress, let yb = ys.baseAddress else { return }
            pixelShuffle(xb, n: n, channels: c, height: h, width: w, factor: r, yb)
        } }
        return y
    }

    /// `F.pixel_unshuffle(x, r)`: `[N, C, H*r, W*r]` -> `[N, C*r*r, H, W]`.
    /// - Throws: `KernelArgumentError` for another rank or sizes not divisible by `r`.
    public static func pixelUnshuffle(_ x: Tensor, factor r: Int) throws -> Tensor {
        try x.requireRank(4, "pixelUnshuffle")
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        guard r > 0, r <= 1 << 15, h % r == 0, w % r == 0 else { throw KernelArgumentError("pixelUnshuffle: \(h)x\(w), factor \(r)") }
        var y = Tensor(zeros: [n, c * r * r, h / r, w / r])
        x.withUnsafeBufferPointer { xs in y.withUnsafeMutableBufferPointer { ys in
            guard let xb = xs.baseAddress, let yb = ys.baseAddress else { return }
            pixelUnshuffle(xb, n: n, channels: c, height: h, width: w, factor: r, yb)
        } }
        return y
    }
}
