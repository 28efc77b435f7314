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
                    let row = src + rs[i] * inW, out = dst + i * outW
                    for j in 0..<outW { out[j] = row[cs[j]] }
                }
            }
        } }
    }

    /// Bilinear resize, `F.interpolate(x, size|scale_factor, mode="bilinear", align_corners)` (no antialias).
    ///
    /// Per axis: `s = r * dst` (align_corners) or `max(r * (dst + 0.5) - 0.5, 0)`, `i0 = min(floor(s), H-1)`,
    /// `lambda = clamp(s - i0, 0, 1)`, taps `(i0, min(i0+1, H-1))` with weights `(1-lambda, lambda)`, all in
    /// float32; an axis whose size does not change is copied. `y = wH0*(wW0*x00 + wW1*x01) + wH1*(...)`.
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
        aw.i0.withUnsafeBufferPointer { c0 in aw.i1.withUnsafeBufferPointer { c1 in
            aw.w0.withUnsafeBufferPointer { v0 in aw.w1.withUnsafeBufferPointer { v1 in
                Threading.parallelFor(planes, grain: max(1, 16384 / (outH * outW))) { p in
                    bilinearPlane(x + p * inH * inW, inW: inW, outH: outH, outW: outW, rows: ah, copyW: aw.copy,
                                  c0: c0, c1: c1, v0: v0, v1: v1, y + p * outH * outW)
                }
            } }
        } }
    }

    static func bilinearPlane(_ x: UnsafePointer<Float>, inW: Int, outH: Int, outW: Int, rows: LinearAxis, copyW: Bool,
                              c0: UnsafeBufferPointer<Int>, c1: UnsafeBufferPointer<Int>,
                              v0: UnsafeBufferPointer<Float>, v1: UnsafeBufferPointer<Float>,
                              _ y: UnsafeMutablePointer<Float>) {
        for i in 0..<outH {
            let ra = x + rows.i0[i] * inW, rb = x + rows.i1[i] * inW
            let out = y + i * outW
            if rows.copy {
                if copyW { out.update(from: ra, count: outW) }
                else { for j in 0..<outW { out[j] = v0[j] * ra[c0[j]] + v1[j] * ra[c1[j]] } }
                continue
            }
            let h0 = rows.w0[i], h1 = rows.w1[i]
            if copyW {
                for j in 0..<outW { out[j] = h0 * ra[j] + h1 * rb[j] }
            } else {
                for j in 0..<outW {
                    let ta = v0[j] * ra[c0[j]] + v1[j] * ra[c1[j]]
                    let tb = v0[j] * rb[c0[j]] + v1[j] * rb[c1[j]]
                    out[j] = h0 * ta + h1 * tb
                }
            }
        }
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
        ah.idx.withUnsafeBufferPointer { ri in ah.w.withUnsafeBufferPointer { rw in
            aw.idx.withUnsafeBufferPointer { ci in aw.w.withUnsafeBufferPointer { cw in
                Threading.parallelFor(planes, grain: max(1, 16384 / (outH * outW))) { p in
                    bicubicPlane(x + p * inH * inW, inW: inW, outH: outH, outW: outW, ri: ri, rw: rw, ci: ci, cw: cw,
                                 y + p * outH * outW)
                }
            } }
        } }
    }

    static func bicubicPlane(_ x: UnsafePointer<Float>, inW: Int, outH: Int, outW: Int,
                             ri: UnsafeBufferPointer<Int>, rw: UnsafeBufferPointer<Float>,
                             ci: UnsafeBufferPointer<Int>, cw: UnsafeBufferPointer<Float>,
                             _ y: UnsafeMutablePointer<Float>) {
        for i in 0..<outH {
            let r0 = x + ri[4 * i] * inW, r1 = x + ri[4 * i + 1] * inW
            let r2 = x + ri[4 * i + 2] * inW, r3 = x + ri[4 * i + 3] * inW
            let h0 = rw[4 * i], h1 = rw[4 * i + 1], h2 = rw[4 * i + 2], h3 = rw[4 * i + 3]
            let out = y + i * outW
            for j in 0..<outW {
                let k0 = ci[4 * j], k1 = ci[4 * j + 1], k2 = ci[4 * j + 2], k3 = ci[4 * j + 3]
                let w0 = cw[4 * j], w1 = cw[4 * j + 1], w2 = cw[4 * j + 2], w3 = cw[4 * j + 3]
                let t0 = r0[k0] * w0 + r0[k1] * w1 + r0[k2] * w2 + r0[k3] * w3
                let t1 = r1[k0] * w0 + r1[k1] * w1 + r1[k2] * w2 + r1[k3] * w3
                let t2 = r2[k0] * w0 + r2[k1] * w1 + r2[k2] * w2 + r2[k3] * w3
                let t3 = r3[k0] * w0 + r3[k1] * w1 + r3[k2] * w2 + r3[k3] * w3
                out[j] = t0 * h0 + t1 * h1 + t2 * h2 + t3 * h3
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
