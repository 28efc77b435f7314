import Foundation

/// Local-window kernels of the token clustering and token reconstruction layers
/// (Liang et al., NeurIPS 2022; spec `token-clustering.md`, sections 2 and 3).
///
/// All pointers address row-major float32 rows of `C` values. Symbols follow the paper:
/// lambda = window side (odd), kappa = iterations, t = temperature (logits `-t * D`).
/// The clustering works in the local-window form, O(N x lambda^2 x C) per iteration: each
/// token only ever touches the lambda x lambda centres around its home cell; no dense
/// centre-by-token matrix is formed.
public enum TokenClusterKernels {
    /// Home cell of token row (or column) `y` along an axis of `size` tokens split into `cells`
    /// cells, by the reference's legacy `nearest` rule (spec 2.2): identity when the sizes match,
    /// `y >> 1` at exactly 2x, otherwise `min(floor(Float(y) * (Float(cells) / Float(size))), cells - 1)`
    /// in float32 (not the exact integer floor).
    @inlinable
    public static func homeCell(_ y: Int, size: Int, cells: Int) -> Int {
        if size == cells { return y }
        if size == 2 * cells { return y >> 1 }
        let s = Float(cells) / Float(size)
        let v = Int((Float(y) * s).rounded(.down))
        return min(max(v, 0), cells - 1)
    }

    /// Adaptive-average-pooling bin `[lo, hi)` of cell `i` (spec 2.1):
    /// `[floor(i*size/cells), ceil((i+1)*size/cells))` in integer arithmetic.
    @inlinable
    public static func poolBin(_ i: Int, size: Int, cells: Int) -> (lo: Int, hi: Int) {
        let lo = (i * size) / cells
        let hi = ((i + 1) * size + cells - 1) / cells
        return (lo, hi)
    }

    /// Squared Euclidean distance of two rows of `c` values, accumulated in 8 float32 lanes
    /// (blocked order; spec 5.9).
    @inline(__always)
    static func squaredDistance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: Int) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        var i = 0
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        while i + 8 <= c {
            let d = ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                  - rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            acc += d * d
            i += 8
        }
        var s = acc.sum()
        while i < c { let d = a[i] - b[i]; s += d * d; i += 1 }
        return s
    }

    /// Initial centres S0: `adaptive_avg_pool2d` of the `[H, W, C]` token map to `h x w` (spec 2.1),
    /// summed in double. `x`: `[H*W, C]`; `s`: `[h*w, C]`, overwritten.
    static func adaptivePool(_ x: UnsafePointer<Float>, height: Int, width: Int, channels c: Int,
                             cellsH: Int, cellsW: Int, _ s: UnsafeMutablePointer<Float>) {
        let acc = UnsafeMutablePointer<Double>.allocate(capacity: c)
        defer { acc.deallocate() }
        for i in 0..<cellsH {
            let rb = poolBin(i, size: height, cells: cellsH)
            for j in 0..<cellsW {
                let cb = poolBin(j, size: width, cells: cellsW)
                acc.initialize(repeating: 0, count: c)
                for y in rb.lo..<rb.hi {
                    for xx in cb.lo..<cb.hi {
                        let row = x + (y * width + xx) * c
                        for k in 0..<c { acc[k] += Double(row[k]) }
                    }
                }
                let n = Double((rb.hi - rb.lo) * (cb.hi - cb.lo))
                let out = s + (i * cellsW + j) * c
                for k in 0..<c { out[k] = Float(acc[k] / n) }
            }
        }
    }

    /// Token clustering of one image (spec 2.1-2.4), local-window form. The iterations run in the AVX-512
    /// kernels (`TokenClusterVector.iterate`) where the CPU has them, else in the Swift loops below.
    ///
    /// - Parameters:
    ///   - x: patch tokens `[N, C]`, N = H*W row-major (no class token).
    ///   - centres: output `[M, C]`, M = h*w row-major over the cell grid.
    ///   - window: lambda (odd, >= 1); `iters`: kappa (>= 0); `temperature`: t (> 0).
    /// - Precondition: sizes already validated by the caller (`TokenClustering`).
    public static func cluster(_ x: UnsafePointer<Float>, height: Int, width: Int, channels c: Int,
                               cellsH: Int, cellsW: Int, window: Int, iters: Int, temperature: Float,
                               centres: UnsafeMutablePointer<Float>) {
        let m = cellsH * cellsW
        adaptivePool(x, height: height, width: width, channels: c, cellsH: cellsH, cellsW: cellsW, centres)
        if iters <= 0 { return }
        if TokenClusterVector.iterate(x, height: height, width: width, channels: c, cellsH: cellsH, cellsW: cellsW,
                                      window: window, iters: iters, temperature: temperature, centres: centres) { return }
        let n = height * width
        let r = (window - 1) / 2
        let slots = window * window
        let homeRow = (0..<height).map { homeCell($0, size: height, cells: cellsH) }
        let homeCol = (0..<width).map { homeCell($0, size: width, cells: cellsW) }
        // Tokens of home cell (hy, hx): rows rowStart[hy]..<rowStart[hy+1] x cols colStart[hx]..<colStart[hx+1]
        // (the home index is monotone in the position).
        var rowStart = [Int](repeating: height, count: cellsH + 1)
        var colStart = [Int](repeating: width, count: cellsW + 1)
        for y in stride(from: height - 1, through: 0, by: -1) { rowStart[homeRow[y]] = y }
        for xx in stride(from: width - 1, through: 0, by: -1) { colStart[homeCol[xx]] = xx }
        for i in stride(from: cellsH - 1, through: 0, by: -1) where rowStart[i] > rowStart[i + 1] { rowStart[i] = rowStart[i + 1] }
        for j in stride(from: cellsW - 1, through: 0, by: -1) where colStart[j] > colStart[j + 1] { colStart[j] = colStart[j + 1] }

        // Affinities A[n, slot], slot = (di + r) * lambda + (dj + r) for centre (hy + di, hx + dj).
        let aff = UnsafeMutablePointer<Float>.allocate(capacity: n * slots)
        defer { aff.deallocate() }
        let prev = UnsafeMutablePointer<Float>.allocate(capacity: m * c)
        defer { prev.deallocate() }
        let t = temperature
        for _ in 0..<iters {
            prev.update(from: centres, count: m * c)
            let sp = UnsafePointer(prev)
            // Pass 1 (per token): softmax over the candidate centres, max-subtracted.
            Threading.parallelFor(n, grain: 16) { tok in
                let y = tok / width, xx = tok % width
                let hy = homeRow[y], hx = homeCol[xx]
                let a = aff + tok * slots
                let xr = x + tok * c
                var best = -Float.infinity
                for di in -r...r {
                    for dj in -r...r {
                        let slot = (di + r) * window + (dj + r)
                        let i = hy + di, j = hx + dj
                        if i < 0 || i >= cellsH || j < 0 || j >= cellsW { a[slot] = -Float.infinity; continue }
                        let l = -t * squaredDistance(xr, sp + (i * cellsW + j) * c, c)
                        a[slot] = l
                        if l > best { best = l }
                    }
                }
                var sum: Float = 0
                for q in 0..<slots {
                    let e = a[q] == -Float.infinity ? 0 : expf(a[q] - best)
                    a[q] = e
                    sum += e
                }
                for q in 0..<slots { a[q] /= sum }
            }
            // Pass 2 (per centre): weighted mean over the tokens whose window contains it.
            Threading.parallelFor(m, grain: 1) { cm in
                let i = cm / cellsW, j = cm % cellsW
                let acc = UnsafeMutablePointer<Float>.allocate(capacity: c)
                defer { acc.deallocate() }
                acc.initialize(repeating: 0, count: c)
                var den = 0.0
                for hy in max(0, i - r)...min(cellsH - 1, i + r) {
                    for hx in max(0, j - r)...min(cellsW - 1, j + r) {
                        let slot = (i - hy + r) * window + (j - hx + r)
                        for y in rowStart[hy]..<rowStart[hy + 1] {
                            for xx in colStart[hx]..<colStart[hx + 1] {
                                let tok = y * width + xx
                                let w = aff[tok * slots + slot]
                                if w == 0 { continue }
                                den += Double(w)
                                axpy(w, x + tok * c, acc, c)
                            }
                        }
                    }
                }
                // Reference: numerator / clamp(denominator, min=1e-16); dead centres become 0.
                let d = max(Double(Float(den)), 1e-16)
                let out = centres + cm * c
                for k in 0..<c { out[k] = Float(Double(acc[k]) / d) }
            }
        }
    }

    /// Hard labels (spec 2.5): `labels[n] = argmin over ALL m of ||x_n - s_m||^2`, lowest m on ties.
    /// `x` `[N, C]`, `centres` `[M, C]`, `labels` `[N]`.
    public static func labels(_ x: UnsafePointer<Float>, tokens n: Int, centres: UnsafePointer<Float>, count m: Int,
                              channels c: Int, _ labels: UnsafeMutablePointer<Int64>) {
        Threading.parallelFor(n, grain: 8) { tok in
            let xr = x + tok * c
            var best = Float.infinity, arg = 0
            for cm in 0..<m {
                let d = squaredDistance(xr, centres + cm * c, c)
                if d < best { best = d; arg = cm }
            }
            labels[tok] = Int64(arg)
        }
    }

    /// Token reconstruction of one image (spec 3): the AVX-512 kernel (`TokenClusterVector.reconstruct`)
    /// where the CPU has it, else the Swift loop below.
    ///
    /// - Parameters:
    ///   - feat: F `[N, C]`, the tokens saved before clustering.
    ///   - centres: S `[M, C]`, the clustering output.
    ///   - x: X `[M, C2]`, the refined low-resolution tokens to spread back.
    ///   - k: kept centres per token (`>= 1` and `<= M`), or `-1` to keep all; ties at the k-th
    ///     largest weight keep more (`>=`).
    ///   - temperature: t in `exp(-t * D')`.
    ///   - stabilized: subtract each row's minimum distance before `exp` (not the reference; off by default).
    ///   - y: output `[N, C2]`; `weights`: optional output `[N, M]` (the L2-normalised weights).
    public static func reconstruct(feat: UnsafePointer<Float>, tokens n: Int, centres: UnsafePointer<Float>, count m: Int,
                                   channels c: Int, x: UnsafePointer<Float>, outChannels c2: Int, k: Int,
                                   temperature t: Float, stabilized: Bool,
                                   y: UnsafeMutablePointer<Float>, weights: UnsafeMutablePointer<Float>?) {
        if TokenClusterVector.reconstruct(feat: feat, tokens: n, centres: centres, count: m, channels: c, x: x,
                                          outChannels: c2, k: k, temperature: t, stabilized: stabilized,
                                          y: y, weights: weights) { return }
        Threading.parallelFor(n, grain: 4) { tok in
            let row = UnsafeMutablePointer<Float>.allocate(capacity: 2 * m)
            defer { row.deallocate() }
            let sorted = row + m
            let fr = feat + tok * c
            var dmin = Float.infinity
            for cm in 0..<m {
                let d = squaredDistance(fr, centres + cm * c, c)
                row[cm] = d
                if d < dmin { dmin = d }
            }
            let shift: Float = stabilized && dmin.isFinite ? dmin : 0
            for cm in 0..<m { row[cm] = expf(-t * (row[cm] - shift)) }
            if k >= 1 && k < m {
                sorted.update(from: row, count: m)
                let tau = kthLargest(sorted, count: m, k: k)
                // w * (w >= tau) as the reference: 0 below tau, but NaN stays NaN (and inf becomes NaN)
                for cm in 0..<m where !(row[cm] >= tau) { row[cm] *= 0 }
            }
            var ss = 0.0
            for cm in 0..<m { ss += Double(row[cm]) * Double(row[cm]) }
            let root = Float(ss.squareRoot())
            let norm = root.isNaN ? root : max(root, 1e-12)
            for cm in 0..<m { row[cm] /= norm }
            let yr = y + tok * c2
            yr.initialize(repeating: 0, count: c2)
            for cm in 0..<m {
                let w = row[cm]
                if w == 0 { continue }
                axpy(w, x + cm * c2, yr, c2)
            }
            if let wts = weights { (wts + tok * m).update(from: row, count: m) }
        }
    }

    /// `y += a * x` over `c` values.
    @inline(__always)
    static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ c: Int) {
        for k in 0..<c { y[k] += a * x[k] }
    }

    /// The k-th largest of `count` values (duplicates counted); may reorder `v`. Small k: a sorted
    /// insertion buffer of the k largest, kept in `v[0..<k]`; otherwise a full sort.
    static func kthLargest(_ v: UnsafeMutablePointer<Float>, count: Int, k: Int) -> Float {
        if k <= 32 {
            // v[0..<k] sorted descending, then insert the rest.
            var filled = 0
            for i in 0..<count {
                let e = v[i]
                if filled == k && !(e > v[k - 1]) { continue }
                var p = filled == k ? k - 1 : filled
                if filled < k { filled += 1 }
                while p > 0 && v[p - 1] < e { v[p] = v[p - 1]; p -= 1 }
                v[p] = e
            }
            return v[k - 1]
        }
        var buf = UnsafeMutableBufferPointer(start: v, count: count)
        buf.sort(by: >)
        return v[k - 1]
    }
}
