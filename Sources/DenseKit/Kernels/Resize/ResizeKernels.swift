#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Interpolation modes of `torch.nn.functional.interpolate` supported by `ResizeKernels`.
public enum InterpolationMode: String, Sendable, Hashable, Codable {
    /// Legacy PyTorch `"nearest"` (not `"nearest-exact"`).
    case nearest
    /// `"bilinear"`, no antialiasing.
    case bilinear
    /// `"bicubic"` with `A = -0.75`, no antialiasing.
    case bicubic
}

/// 2-D resampling of NCHW planes with `torch.nn.functional.interpolate`'s exact index arithmetic.
///
/// Every kernel reads `planes` contiguous `inH x inW` planes and writes `planes` contiguous
/// `outH x outW` planes. `scaleH` / `scaleW` are the scale FACTORS given to `interpolate`
/// (`scale_factor`, output/input); pass nil when the output size was given with `size`. PyTorch then
/// resamples with the ratio `float32(1 / scale)`, which is not `inH / outH` when `inH * scale` is not
/// an integer. Source coordinates are computed in float32 exactly as PyTorch's CPU kernels do
/// (`area_pixel_compute_source_index`, `nearest_idx`). Planes are split over threads with a fixed
/// partition; each output value is computed the same way for any thread count.
public enum ResizeKernels {
    /// `OH = floor(H * scale)` computed in Double, as `F.interpolate` does for `scale_factor`.
    public static func outputSize(input: Int, scale: Double) -> Int {
        let v = (Double(input) * scale).rounded(.down)
        return v.isFinite && v >= 0 && v < 1e15 ? Int(v) : 0
    }

    /// PyTorch's `compute_scales_value<float>`: `float32(1 / scale)` when a positive scale factor was
    /// given, else `float32(in) / float32(out)`.
    static func scalesValue(input: Int, output: Int, scale: Double?) -> Float {
        if let s = scale, s > 0 { return Float(1.0 / s) }
        return Float(input) / Float(output)
    }

    /// PyTorch's `area_pixel_compute_scale<float>`: `(in-1)/(out-1)` with align_corners (0 when
    /// `out == 1`), else `scalesValue`.
    static func areaPixelScale(input: Int, output: Int, alignCorners: Bool, scale: Double?) -> Float {
        if alignCorners { return output > 1 ? Float(input - 1) / Float(output - 1) : 0 }
        return scalesValue(input: input, output: output, scale: scale)
    }

    /// PyTorch's `area_pixel_compute_source_index<float>`.
    @inline(__always)
    static func sourceIndex(ratio r: Float, dst: Int, alignCorners: Bool, cubic: Bool) -> Float {
        if alignCorners { return r * Float(dst) }
        let s = r * (Float(dst) + 0.5) - 0.5
        return (!cubic && s < 0) ? 0 : s
    }

    /// PyTorch's `guard_index_and_lambda`: `i = min(floor(s), size-1)`, `lambda = clamp(s - i, 0, 1)`.
    @inline(__always)
    static func guardIndex(_ s: Float, size: Int) -> (Int, Float) {
        let f = s.rounded(.down)
        let i = f.isFinite ? min(Int(f), size - 1) : (f > 0 ? size - 1 : 0)
        let lam = min(max(s - Float(i), 0), 1)
        return (i, lam)
    }

    // MARK: Axis tables

    /// Source index of every output position along one axis for legacy nearest (`nearest_idx`).
    static func nearestAxis(input: Int, output: Int, scale: Double?) -> [Int] {
        if output == input { return Array(0..<output) }
        if output == 2 * input { return (0..<output).map { $0 >> 1 } }
        let r = scalesValue(input: input, output: output, scale: scale)
        return (0..<output).map { d in
            let f = (Float(d) * r).rounded(.down)
            return max(0, min(f.isFinite ? Int(f) : input - 1, input - 1))
        }
    }

    /// Two-tap linear table of one axis; `copy` when the axis keeps its size (PyTorch skips it).
    struct LinearAxis {
        var i0: [Int] = [], i1: [Int] = [], w0: [Float] = [], w1: [Float] = []
        var copy = false

        init(input: Int, output: Int, alignCorners: Bool, scale: Double?) {
            if input == output { copy = true; i0 = Array(0..<output); i1 = i0; w0 = .init(repeating: 1, count: output); w1 = .init(repeating: 0, count: output); return }
            let r = areaPixelScale(input: input, output: output, alignCorners: alignCorners, scale: scale)
            for d in 0..<output {
                let s = sourceIndex(ratio: r, dst: d, alignCorners: alignCorners, cubic: false)
                let (i, lam) = guardIndex(s, size: input)
                let ii = max(i, 0)
                i0.append(ii)
                i1.append(ii < input - 1 ? ii + 1 : ii)
                w0.append(1 - lam)
                w1.append(lam)
            }
        }
    }

    /// Four-tap cubic table of one axis (indices clamped to the input, no copy rule).
    struct CubicAxis {
        var idx: [Int] = []      // 4 per output position
        var w: [Float] = []      // 4 per output position

        init(input: Int, output: Int, alignCorners: Bool, scale: Double?) {
            let r = areaPixelScale(input: input, output: output, alignCorners: alignCorners, scale: scale)
            idx.reserveCapacity(4 * output); w.reserveCapacity(4 * output)
            for d in 0..<output {
                let s = sourceIndex(ratio: r, dst: d, alignCorners: alignCorners, cubic: true)
                let (i, t) = guardIndex(s, size: input)
                let c = ResizeKernels.cubicCoefficients(t)
                for k in 0..<4 {
                    idx.append(max(min(i - 1 + k, input - 1), 0))
                    w.append(c[k])
                }
            }
        }
    }

    /// PyTorch's `get_cubic_upsample_coefficients` with `A = -0.75` for fraction `t` (float32).
    static func cubicCoefficients(_ t: Float) -> [Float] {
        let a: Float = -0.75
        func conv1(_ x: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }
        func conv2(_ x: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
        let x2: Float = 1 - t
        return [conv2(t + 1), conv1(t), conv1(x2), conv2(x2 + 1)]
    }

    // MARK: Kernels

    /// Legacy nearest resize, `F.interpolate(x, size|scale_factor, mode="nearest")`.
    ///
    /// Per axis: `OH == H` copies, `OH == 2H` reads `dst >> 1`, otherwise
    /// `src = min(floor(float32(dst) * r), H - 1)` in float32 with `r = scalesValue`.
    /// - Parameters:
    ///   - x: `planes * inH * inW` values.
    ///   - scaleH, scaleW: the scale factors given to interpolate, or nil when `size` was given.
    ///   - y: `planes * outH * outW` values.
    public static func nearest(_ x: UnsafePointer<Float>, planes: Int, inH: Int, inW: Int, outH: Int, outW: Int,
                               scaleH: Double?, scaleW: Double?, _ y: UnsafeMutablePointer<Float>) {
        guard planes > 0, inH > 0, inW > 0, outH > 0, outW > 0 else { return }
        let rows = nearestAxis(input: inH, output: outH, scale: scaleH)
        let cols = nearestAxis(input: inW, output: outW, scale: scaleW)
        rows.withUnsafeBufferPointer { rs in cols.withUnsafeBufferPointer { cs in
            Threading.parallelFor(planes, grain: max(1, 16384 / (outH * outW))) { p in
                let src = x + p * inH * inW, dst = y + p * outH * outW
                for i in 0..<outH {
                    let out = dst + i * outW
                    if i > 0 && rs[i] == rs[i - 1] { out.update(from: out - outW, count: outW); continue }
                    let row = src + rs[i] * inW
                    if outW == inW { out.update(from: row, count: outW); continue }
                    for j in 0..<outW { out[j] = row[cs[j]] }
                }
            }
        } }
    }

    /// Bilinear resize, `F.interpolate(x, size|scale_factor, mode="bilinear", align_corners)` (no antialias).
    ///
    /// Per axis: `s = r * dst` (align_corners) or `max(r * (dst + 0.5) - 0.5, 0)`, `i0 = min(floor(s), H-1)`,
    /// `lambda = clamp(s - i0, 0, 1)`, taps `(i0, min(i0+1, H-1))` with weights `(1-lambda, lambda)`, all in
    /// float32; an axis whose size does not change is copied. `y = wH0*(wW0*x00 + wW1*x01) + wH1*(...)`
    /// (the horizontal pass first, as PyTorch's separable kernel).
    /// - Parameters:
    ///   - x: `planes * inH * inW` values.
    ///   - scaleH, scaleW: scale factors given to interpolate, or nil when `size` was given (ignored with
    ///     align_corners).
    ///   - y: `planes * outH * outW` values.
    public static func bilinear(_ x: UnsafePointer<Float>, planes: Int, inH: Int, inW: Int, outH: Int, outW: Int,
                                alignCorners: Bool, scaleH: Double?, scaleW: Double?, _ y: UnsafeMutablePointer<Float>) {
        guard planes > 0, inH > 0, inW > 0, outH > 0, outW > 0 else { return }
        let ah = LinearAxis(input: inH, output: outH, alignCorners: alignCorners, scale: scaleH)
        let aw = LinearAxis(input: inW, output: outW, alignCorners: alignCorners, scale: scaleW)
        let rows = SeparableTaps(linear: ah), cols = SeparableTaps(linear: aw)
        separable(x, planes: planes, inH: inH, inW: inW, outH: outH, outW: outW, rows: rows, cols: cols, y)
    }

    /// Bicubic resize, `F.interpolate(x, size|scale_factor, mode="bicubic", align_corners)` (no antialias).
    ///
    /// Per axis: `s = r * dst` (align_corners) or `r * (dst + 0.5) - 0.5` (not clamped at 0),
    /// `i = min(floor(s), H-1)`, `t = clamp(s - i, 0, 1)`, taps `i-1 ... i+2` clamped to `[0, H-1]`, weights from
    /// the cubic convolution with `A = -0.75`; no copy rule for unchanged sizes, no clamping of the result.
    /// - Parameters:
    ///   - x: `planes * inH * inW` values.
    ///   - scaleH, scaleW: scale factors given to interpolate, or nil when `size` was given.
    ///   - y: `planes * outH * outW` values.
    public static func bicubic(_ x: UnsafePointer<Float>, planes: Int, inH: Int, inW: Int, outH: Int, outW: Int,
                               alignCorners: Bool, scaleH: Double?, scaleW: Double?, _ y: UnsafeMutablePointer<Float>) {
        guard planes > 0, inH > 0, inW > 0, outH > 0, outW > 0 else { return }
        let ah = CubicAxis(input: inH, output: outH, alignCorners: alignCorners, scale: scaleH)
        let aw = CubicAxis(input: inW, output: outW, alignCorners: alignCorners, scale: scaleW)
        separable(x, planes: planes, inH: inH, inW: inW, outH: outH, outW: outW,
                  rows: SeparableTaps(cubic: ah), cols: SeparableTaps(cubic: aw), y)
    }

    /// Taps of one axis: `taps` source indices and weights per output position, or a copy.
    struct SeparableTaps {
        var taps: Int
        var idx: [Int]
        var w: [Float]
        var copy: Bool

        init(linear a: LinearAxis) {
            copy = a.copy
            taps = copy ? 1 : 2
            idx = []; w = []
            idx.reserveCapacity(taps * a.i0.count); w.reserveCapacity(taps * a.i0.count)
            for d in 0..<a.i0.count {
                if copy { idx.append(a.i0[d]); w.append(1); continue }
                idx.append(a.i0[d]); idx.append(a.i1[d])
                w.append(a.w0[d]); w.append(a.w1[d])
            }
        }

        init(cubic a: CubicAxis) { taps = 4; idx = a.idx; w = a.w; copy = false }
    }

    /// Separable resampling: the horizontal pass of every input row that some output row needs, into a
    /// per-plane buffer (`inH x outW`), then the vertical combination of those rows (contiguous loops).
    /// Each value is computed with the same float32 operations in the same order as PyTorch's
    /// `interpolate<2>`: `sum_a wH[a] * (sum_b wW[b] * x[.., .])`, each sum left to right.
    static func separable(_ x: UnsafePointer<Float>, planes: Int, inH: Int, inW: Int, outH: Int, outW: Int,
                          rows: SeparableTaps, cols: SeparableTaps, _ y: UnsafeMutablePointer<Float>) {
        var needed = [Bool](repeating: false, count: inH)
        for i in rows.idx { needed[i] = true }
        needed.withUnsafeBufferPointer { nd in
            rows.idx.withUnsafeBufferPointer { ri in rows.w.withUnsafeBufferPointer { rw in
                cols.idx.withUnsafeBufferPointer { ci in cols.w.withUnsafeBufferPointer { cw in
                    guard let rib = ri.baseAddress, let rwb = rw.baseAddress else { return }
                    Threading.parallelFor(planes, grain: max(1, 16384 / (outH * outW))) { p in
                        let tmp = UnsafeMutablePointer<Float>.allocate(capacity: cols.copy ? 1 : inH * outW)
                        defer { tmp.deallocate() }
                        let src = x + p * inH * inW
                        // Horizontal pass (skipped when the width is unchanged: rows are read in place).
                        if !cols.copy {
                            for h in 0..<inH where nd[h] {
                                horizontal(src + h * inW, taps: cols.taps, idx: ci, w: cw, count: outW, tmp + h * outW)
                            }
                        }
                        let base: UnsafePointer<Float> = cols.copy ? src : UnsafePointer(tmp)
                        let dst = y + p * outH * outW
                        for i in 0..<outH {
                            vertical(base, rowLength: outW, taps: rows.taps, idx: rib + i * rows.taps,
                                     w: rwb + i * rows.taps, copy: rows.copy, dst + i * outW)
                        }
                    }
                } }
            } }
        }
    }

    /// One row: `out[j] = sum_k w[j*taps + k] * row[idx[j*taps + k]]`, left to right.
    @inline(__always)
    static func horizontal(_ row: UnsafePointer<Float>, taps: Int, idx: UnsafeBufferPointer<Int>, w: UnsafeBufferPointer<Float>,
                           count: Int, _ out: UnsafeMutablePointer<Float>) {
        switch taps {
        case 2:
            for j in 0..<count {
                out[j] = w[2 * j] * row[idx[2 * j]] + w[2 * j + 1] * row[idx[2 * j + 1]]
            }
        case 4:
            for j in 0..<count {
                let k = 4 * j
                out[j] = row[idx[k]] * w[k] + row[idx[k + 1]] * w[k + 1] + row[idx[k + 2]] * w[k + 2] + row[idx[k + 3]] * w[k + 3]
            }
        default:
            for j in 0..<count {
                var s: Float = 0
                for k in 0..<taps { s += w[j * taps + k] * row[idx[j * taps + k]] }
                out[j] = s
            }
        }
    }

    /// One output row from `taps` horizontally resampled rows of `base` (`rowLength` apart).
    @inline(__always)
    static func vertical(_ base: UnsafePointer<Float>, rowLength n: Int, taps: Int, idx: UnsafePointer<Int>,
                         w: UnsafePointer<Float>, copy: Bool, _ out: UnsafeMutablePointer<Float>) {
        if copy { out.update(from: base + idx[0] * n, count: n); return }
        switch taps {
        case 2:
            let a = base + idx[0] * n, b = base + idx[1] * n
            let h0 = w[0], h1 = w[1]
            for j in 0..<n { out[j] = h0 * a[j] + h1 * b[j] }
        case 4:
            let a = base + idx[0] * n, b = base + idx[1] * n, c = base + idx[2] * n, d = base + idx[3] * n
            let h0 = w[0], h1 = w[1], h2 = w[2], h3 = w[3]
            for j in 0..<n { out[j] = a[j] * h0 + b[j] * h1 + c[j] * h2 + d[j] * h3 }
        default:
            for j in 0..<n {
                var s: Float = 0
                for k in 0..<taps { s += w[k] * base[idx[k] * n + j] }
                out[j] = s
            }
        }
    }
}

// MARK: - Tensor wrapper

extension ResizeKernels {
    /// `F.interpolate(x, size=size, scale_factor=scaleFactor, mode=mode, align_corners=alignCorners)` for an
    /// `[N, C, H, W]` tensor, with `recompute_scale_factor=None` and no antialiasing.
    ///
    /// Exactly one of `size` / `scaleFactor` must be given; with `scaleFactor` the output size is
    /// `floor(H * fH)` and the ratio `float32(1 / fH)` (see the type's notes). `alignCorners` is ignored for
    /// nearest.
    /// - Throws: `KernelArgumentError` for another rank, both or neither of size / scale, or an empty output.
    public static func interpolate(_ x: Tensor, mode: InterpolationMode, size: (height: Int, width: Int)? = nil,
                                   scaleFactor: (height: Double, width: Double)? = nil,
                                   alignCorners: Bool = false) throws -> Tensor {
        try x.requireRank(4, "interpolate")
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let oh: Int, ow: Int
        var sh: Double? = nil, sw: Double? = nil
        switch (size, scaleFactor) {
        case let (s?, nil): (oh, ow) = (s.height, s.width)
        case let (nil, f?):
            guard f.height > 0, f.width > 0 else { throw KernelArgumentError("interpolate: scale factor \(f)") }
            (oh, ow) = (outputSize(input: h, scale: f.height), outputSize(input: w, scale: f.width))
            (sh, sw) = (f.height, f.width)
        default: throw KernelArgumentError("interpolate: give exactly one of size and scale_factor")
        }
        guard oh > 0, ow > 0, h > 0, w > 0 else { throw KernelArgumentError("interpolate: \(h)x\(w) -> \(oh)x\(ow)") }
        var y = Tensor(zeros: [n, c, oh, ow])
        x.withUnsafeBufferPointer { xs in y.withUnsafeMutableBufferPointer { ys in
            guard let xb = xs.baseAddress, let yb = ys.baseAddress else { return }
            switch mode {
            case .nearest:
                nearest(xb, planes: n * c, inH: h, inW: w, outH: oh, outW: ow, scaleH: sh, scaleW: sw, yb)
            case .bilinear:
                bilinear(xb, planes: n * c, inH: h, inW: w, outH: oh, outW: ow, alignCorners: alignCorners,
                         scaleH: sh, scaleW: sw, yb)
            case .bicubic:
                bicubic(xb, planes: n * c, inH: h, inW: w, outH: oh, outW: ow, alignCorners: alignCorners,
                        scaleH: sh, scaleW: sw, yb)
            }
        } }
        return y
    }
}
