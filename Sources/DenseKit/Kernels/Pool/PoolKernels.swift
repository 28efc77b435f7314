import CKernels
/// Window geometry of a 2-D max or average pooling (PyTorch `max_pool2d` / `avg_pool2d` arguments).
///
/// Sizes follow `torch.nn.functional.max_pool2d` and `avg_pool2d`: symmetric implicit padding
/// `padH`/`padW` on both sides, `ceilMode` rounds the output size up, `countIncludePad` and
/// `divisorOverride` only matter to average pooling, dilation only to max pooling.
public struct Pool2dParameters: Sendable, Hashable {
    /// Window height and width.
    public var kernelH: Int, kernelW: Int
    /// Step between windows.
    public var strideH: Int, strideW: Int
    /// Implicit padding on each side (-inf for max pooling, zeros for average pooling).
    public var padH = 0, padW = 0
    /// Spacing between window taps (max pooling only; PyTorch's avg_pool2d has none).
    public var dilationH = 1, dilationW = 1
    /// Round the output size up (PyTorch `ceil_mode`).
    public var ceilMode = false
    /// Average pooling: whether padded positions count in the divisor (PyTorch `count_include_pad`).
    public var countIncludePad = true
    /// Average pooling: a fixed divisor replacing the window size (PyTorch `divisor_override`).
    public var divisorOverride: Int? = nil

    /// Creates pooling parameters; `strideH`/`strideW` are required (PyTorch's default stride is the kernel size).
    public init(kernelH: Int, kernelW: Int, strideH: Int, strideW: Int, padH: Int = 0, padW: Int = 0,
                dilationH: Int = 1, dilationW: Int = 1, ceilMode: Bool = false, countIncludePad: Bool = true,
                divisorOverride: Int? = nil) {
        self.kernelH = kernelH; self.kernelW = kernelW
        self.strideH = strideH; self.strideW = strideW
        self.padH = padH; self.padW = padW
        self.dilationH = dilationH; self.dilationW = dilationW
        self.ceilMode = ceilMode
        self.countIncludePad = countIncludePad
        self.divisorOverride = divisorOverride
    }

    /// Square window `kernel`, stride `stride` (default: the kernel), padding `padding`.
    public init(kernel: Int, stride: Int? = nil, padding: Int = 0, ceilMode: Bool = false, countIncludePad: Bool = true) {
        self.init(kernelH: kernel, kernelW: kernel, strideH: stride ?? kernel, strideW: stride ?? kernel,
                  padH: padding, padW: padding, ceilMode: ceilMode, countIncludePad: countIncludePad)
    }

    /// Whether the geometry is usable: positive kernel, stride and dilation, `0 <= pad <= kernel/2`
    /// (PyTorch's own check), a non-zero divisor override if any, and no value above 2^24.
    public var isValid: Bool {
        let limit = 1 << 24   // keeps every size product far from overflow
        return [kernelH, kernelW, strideH, strideW, padH, padW, dilationH, dilationW].allSatisfy { $0 <= limit }
            && kernelH > 0 && kernelW > 0 && strideH > 0 && strideW > 0 && dilationH > 0 && dilationW > 0
            && padH >= 0 && padW >= 0 && padH <= kernelH / 2 && padW <= kernelW / 2
            && (divisorOverride.map { $0 != 0 } ?? true)
    }

    /// Output size of one axis, PyTorch's `pooling_output_shape`: `floor` or `ceil` of
    /// `(in + 2*pad - dilation*(kernel-1) - 1) / stride` plus one; with `ceilMode`, a last window
    /// that would start at or beyond `in + pad` (inside the right/bottom padding) is dropped.
    /// Returns 0 when no window fits.
    public static func outputLength(input: Int, kernel: Int, stride: Int, pad: Int, dilation: Int, ceilMode: Bool) -> Int {
        guard stride > 0 else { return 0 }
        let span = input + 2 * pad - dilation * (kernel - 1) - 1 + (ceilMode ? stride - 1 : 0)
        if span < 0 { return 0 }
        var out = span / stride + 1
        if ceilMode && (out - 1) * stride >= input + pad { out -= 1 }
        return max(out, 0)
    }

    /// `(H_out, W_out)` for an `height x width` input, PyTorch's rule including the ceil-mode drop.
    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        (Pool2dParameters.outputLength(input: height, kernel: kernelH, stride: strideH, pad: padH,
                                       dilation: dilationH, ceilMode: ceilMode),
         Pool2dParameters.outputLength(input: width, kernel: kernelW, stride: strideW, pad: padW,
                                       dilation: dilationW, ceilMode: ceilMode))
    }

    /// The same geometry with dilation 1 (average pooling's output size).
    var undilated: Pool2dParameters {
        var q = self
        q.dilationH = 1; q.dilationW = 1
        return q
    }
}

/// Pooling kernels over NCHW float32 planes.
///
/// Every kernel reads `planes` contiguous `height x width` planes (`planes = N * C`) and writes
/// `planes` contiguous output planes; planes are independent and split over threads with a
/// fixed partition, so results do not depend on `Threading.threads`.
public enum PoolKernels {
    /// Max pooling, `torch.nn.functional.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)`.
    ///
    /// `y[p, i, j] = max over a < kH, b < kW of x[p, i*sH - pH + a*dH, j*sW - pW + b*dW]`, taps outside the
    /// input ignored (implicit -inf padding); a NaN in the window gives NaN, as in PyTorch. A window with no
    /// valid tap (impossible when `pad <= kernel/2`) gives -inf.
    /// - Parameters:
    ///   - x: `planes * height * width` values.
    ///   - y: `planes * H_out * W_out` values, sizes from `p.outputSize(height:width:)`.
    public static func maxPool2d(_ x: UnsafePointer<Float>, planes: Int, height: Int, width: Int,
                                 _ p: Pool2dParameters, _ y: UnsafeMutablePointer<Float>) {
        let (oh, ow) = p.outputSize(height: height, width: width)
        guard planes > 0, oh > 0, ow > 0 else { return }
        let inPlane = height * width, outPlane = oh * ow
        if p.dilationH == 1 && p.dilationW == 1 && KernelDispatch.avx512 {
            Threading.parallelFor(planes, grain: max(1, 16384 / max(inPlane, 1))) { plane in
                let tmp = UnsafeMutablePointer<Float>.allocate(capacity: width + 64)
                defer { tmp.deallocate() }
                _ = dk_maxpool_plane(x + plane * inPlane, y + plane * outPlane, tmp, height, width, oh, ow,
                                     Int32(p.kernelH), Int32(p.kernelW), Int32(p.strideH), Int32(p.strideW),
                                     Int32(p.padH), Int32(p.padW))
            }
            return
        }
        let cols = columnRanges(p, width: width, outWidth: ow)
        cols.withUnsafeBufferPointer { cr in
            Threading.parallelFor(planes, grain: max(1, 16384 / max(inPlane, 1))) { plane in
                maxPoolPlane(x + plane * inPlane, height: height, width: width, p, oh: oh, ow: ow, cols: cr,
                             y + plane * outPlane)
            }
        }
    }

    /// Average pooling, `torch.nn.functional.avg_pool2d(x, kernel, stride, padding, ceil_mode,
    /// count_include_pad, divisor_override)`, with PyTorch's divisor rule.
    ///
    /// For output `(i, j)`: `hs = i*sH - pH`, `he = min(hs + kH, H + pH)`, `pool = (he - hs) * (we - ws)`
    /// (same for columns), then the window is clipped to the input and
    /// `y = sum / (divisorOverride ?? (countIncludePad ? pool : clipped area))`. The part of a ceil-mode
    /// window beyond the padding never counts. Dilation is not used (PyTorch's avg_pool2d has none):
    /// the output size is `p.outputSize` with dilation 1, and callers pass `dilationH = dilationW = 1`.
    /// - Parameters:
    ///   - x: `planes * height * width` values.
    ///   - y: `planes * H_out * W_out` values.
    public static func avgPool2d(_ x: UnsafePointer<Float>, planes: Int, height: Int, width: Int,
                                 _ p: Pool2dParameters, _ y: UnsafeMutablePointer<Float>) {
        // Loop over the smaller of the two sizes so that a caller that sized `y` with a dilation
        // never gets writes past its buffer.
        let q = p.undilated
        let (oh1, ow1) = q.outputSize(height: height, width: width)
        let (oh2, ow2) = p.outputSize(height: height, width: width)
        let oh = min(oh1, oh2), ow = min(ow1, ow2)
        guard planes > 0, oh > 0, ow > 0 else { return }
        let inPlane = height * width, outPlane = oh * ow
        Threading.parallelFor(planes, grain: max(1, 16384 / max(inPlane, 1))) { plane in
            avgPoolPlane(x + plane * inPlane, height: height, width: width, q, oh: oh, ow: ow, y + plane * outPlane)
        }
    }

    /// Adaptive average pooling, `torch.nn.functional.adaptive_avg_pool2d(x, (outHeight, outWidth))`.
    ///
    /// Output row `i` averages input rows `floor(i*H/OH) ..< ceil((i+1)*H/OH)` (integer arithmetic), same for
    /// columns; windows overlap when `OH` does not divide `H`, and `OH > H` is allowed.
    /// - Parameters:
    ///   - x: `planes * height * width` values.
    ///   - y: `planes * outHeight * outWidth` values.
    public static func adaptiveAvgPool2d(_ x: UnsafePointer<Float>, planes: Int, height: Int, width: Int,
                                         outHeight: Int, outWidth: Int, _ y: UnsafeMutablePointer<Float>) {
        guard planes > 0, outHeight > 0, outWidth > 0, height > 0, width > 0 else { return }
        let inPlane = height * width, outPlane = outHeight * outWidth
        Threading.parallelFor(planes, grain: max(1, 16384 / max(inPlane, 1))) { plane in
            adaptivePlane(x + plane * inPlane, height: height, width: width, oh: outHeight, ow: outWidth,
                          y + plane * outPlane)
        }
    }

    // MARK: - Plane loops

    /// For each output column, the valid tap range `b in lo..<hi` (max pooling, dilation aware).
    static func columnRanges(_ p: Pool2dParameters, width: Int, outWidth: Int) -> [(start: Int, lo: Int, hi: Int)] {
        var r: [(start: Int, lo: Int, hi: Int)] = []
        r.reserveCapacity(outWidth)
        for j in 0..<outWidth {
            let ws = j * p.strideW - p.padW
            let (lo, hi) = validTaps(start: ws, kernel: p.kernelW, dilation: p.dilationW, size: width)
            r.append((ws, lo, hi))
        }
        return r
    }

    /// Taps `a` with `0 <= start + a*dilation < size`, as a half-open range `lo..<hi` (possibly empty).
    @inline(__always)
    static func validTaps(start: Int, kernel: Int, dilation: Int, size: Int) -> (Int, Int) {
        var lo = 0
        if start < 0 { lo = (-start + dilation - 1) / dilation }
        var hi = kernel
        // last valid a: start + a*d <= size - 1
        let lastPos = size - 1 - start
        if lastPos < 0 { return (0, 0) }
        hi = min(hi, lastPos / dilation + 1)
        return (lo, max(lo, hi))
    }

    /// Max pooling of one plane, separably: for each output row, the column-wise maximum over the
    /// window's valid rows (contiguous, vectorisable) into `tmp`, then the maximum over each window's
    /// valid columns. Max is exact, so this equals the window maximum (NaN propagates through both).
    static func maxPoolPlane(_ x: UnsafePointer<Float>, height: Int, width: Int, _ p: Pool2dParameters,
                             oh: Int, ow: Int, cols: UnsafeBufferPointer<(start: Int, lo: Int, hi: Int)>,
                             _ y: UnsafeMutablePointer<Float>) {
        let dW = p.dilationW, dH = p.dilationH
        let tmp = UnsafeMutablePointer<Float>.allocate(capacity: max(width, 1))
        defer { tmp.deallocate() }
        for i in 0..<oh {
            let hs = i * p.strideH - p.padH
            let (alo, ahi) = validTaps(start: hs, kernel: p.kernelH, dilation: dH, size: height)
            let yr = y + i * ow
            if ahi <= alo { yr.update(repeating: -.infinity, count: ow); continue }
            tmp.update(from: x + (hs + alo * dH) * width, count: width)
            var a = alo + 1
            while a < ahi {
                maxInto(tmp, x + (hs + a * dH) * width, count: width)
                a += 1
            }
            if dW == 1 && p.kernelW == 3 {
                for j in 0..<ow {
                    let c = cols[j]
                    if c.lo == 0 && c.hi == 3 {
                        let r = tmp + c.start
                        yr[j] = nanMax(nanMax(r[0], r[1]), r[2])
                    } else {
                        yr[j] = windowMax(tmp + c.start, lo: c.lo, hi: c.hi, dilation: 1)
                    }
                }
            } else {
                for j in 0..<ow {
                    let c = cols[j]
                    yr[j] = windowMax(tmp + c.start, lo: c.lo, hi: c.hi, dilation: dW)
                }
            }
        }
    }

    /// `a > b or a is NaN ? a : b`: PyTorch's max-pool update (NaN wins, the first of equal values stays).
    @inline(__always)
    static func nanMax(_ b: Float, _ a: Float) -> Float { (a > b || a != a) ? a : b }

    @inline(__always)
    static func maxInto(_ acc: UnsafeMutablePointer<Float>, _ r: UnsafePointer<Float>, count: Int) {
        for w in 0..<count { acc[w] = nanMax(acc[w], r[w]) }
    }

    @inline(__always)
    static func windowMax(_ r: UnsafePointer<Float>, lo: Int, hi: Int, dilation: Int) -> Float {
        var m = -Float.infinity
        var b = lo
        while b < hi { m = nanMax(m, r[b * dilation]); b += 1 }
        return m
    }

    /// Average pooling of one plane, separably: column sums over the clipped window rows into `tmp`,
    /// then row sums over the clipped window columns, divided by PyTorch's divisor.
    static func avgPoolPlane(_ x: UnsafePointer<Float>, height: Int, width: Int, _ p: Pool2dParameters,
                             oh: Int, ow: Int, _ y: UnsafeMutablePointer<Float>) {
        let tmp = UnsafeMutablePointer<Float>.allocate(capacity: max(width, 1))
        defer { tmp.deallocate() }
        for i in 0..<oh {
            var hs = i * p.strideH - p.padH
            var he = min(hs + p.kernelH, height + p.padH)
            let poolH = he - hs
            hs = max(hs, 0); he = min(he, height)
            let yr = y + i * ow
            if he > hs {
                tmp.update(from: x + hs * width, count: width)
                var h = hs + 1
                while h < he { addInto(tmp, x + h * width, count: width); h += 1 }
            } else {
                tmp.update(repeating: 0, count: width)
            }
            for j in 0..<ow {
                var ws = j * p.strideW - p.padW
                var we = min(ws + p.kernelW, width + p.padW)
                let poolW = we - ws
                ws = max(ws, 0); we = min(we, width)
                var sum: Float = 0
                var w = ws
                while w < we { sum += tmp[w]; w += 1 }
                let divisor: Int
                if let d = p.divisorOverride { divisor = d }
                else if p.countIncludePad { divisor = poolH * poolW }
                else { divisor = max(he - hs, 0) * max(we - ws, 0) }
                yr[j] = divisor != 0 ? sum / Float(divisor) : 0
            }
        }
    }

    @inline(__always)
    static func addInto(_ acc: UnsafeMutablePointer<Float>, _ r: UnsafePointer<Float>, count: Int) {
        for w in 0..<count { acc[w] += r[w] }
    }

    static func adaptivePlane(_ x: UnsafePointer<Float>, height: Int, width: Int, oh: Int, ow: Int,
                              _ y: UnsafeMutablePointer<Float>) {
        for i in 0..<oh {
            let hs = (i * height) / oh
            let he = ((i + 1) * height + oh - 1) / oh
            for j in 0..<ow {
                let ws = (j * width) / ow
                let we = ((j + 1) * width + ow - 1) / ow
                var sum: Float = 0
                for h in hs..<he {
                    let row = x + h * width
                    for w in ws..<we { sum += row[w] }
                }
                y[i * ow + j] = sum / Float((he - hs) * (we - ws))
            }
        }
    }
}

// MARK: - Tensor wrappers

extension PoolKernels {
    /// `max_pool2d` of an NCHW tensor (`[N, C, H, W]` -> `[N, C, H_out, W_out]`).
    /// - Throws: `KernelArgumentError` for another rank, invalid parameters or an empty output.
    public static func maxPool2d(_ x: Tensor, _ p: Pool2dParameters) throws -> Tensor {
        try x.requireRank(4, "maxPool2d")
        guard p.isValid else { throw KernelArgumentError("maxPool2d: invalid parameters \(p)") }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = p.outputSize(height: h, width: w)
        guard oh > 0, ow > 0 else { throw KernelArgumentError("maxPool2d: output size \(oh)x\(ow) for input \(h)x\(w)") }
        var y = Tensor(zeros: [n, c, oh, ow])
        x.withUnsafeBufferPointer { xs in
            y.withUnsafeMutableBufferPointer { ys in
                guard let xb = xs.baseAddress, let yb = ys.baseAddress else { return }
                maxPool2d(xb, planes: n * c, height: h, width: w, p, yb)
            }
        }
        return y
    }

    /// `avg_pool2d` of an NCHW tensor (`[N, C, H, W]` -> `[N, C, H_out, W_out]`).
    /// - Throws: `KernelArgumentError` for another rank, invalid parameters, a dilation other than 1
    ///   or an empty output.
    public static func avgPool2d(_ x: Tensor, _ p: Pool2dParameters) throws -> Tensor {
        try x.requireRank(4, "avgPool2d")
        guard p.isValid, p.dilationH == 1, p.dilationW == 1 else {
            throw KernelArgumentError("avgPool2d: invalid parameters \(p)")
        }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = p.outputSize(height: h, width: w)
        guard oh > 0, ow > 0 else { throw KernelArgumentError("avgPool2d: output size \(oh)x\(ow) for input \(h)x\(w)") }
        var y = Tensor(zeros: [n, c, oh, ow])
        x.withUnsafeBufferPointer { xs in
            y.withUnsafeMutableBufferPointer { ys in
                guard let xb = xs.baseAddress, let yb = ys.baseAddress else { return }
                avgPool2d(xb, planes: n * c, height: h, width: w, p, yb)
            }
        }
        return y
    }

    /// `adaptive_avg_pool2d` of an NCHW tensor (`[N, C, H, W]` -> `[N, C, outHeight, outWidth]`).
    /// - Throws: `KernelArgumentError` for another rank, an empty input or a non-positive output size.
    public static func adaptiveAvgPool2d(_ x: Tensor, outHeight: Int, outWidth: Int) throws -> Tensor {
        try x.requireRank(4, "adaptiveAvgPool2d")
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        guard outHeight > 0, outWidth > 0, h > 0, w > 0 else {
            throw KernelArgumentError("adaptiveAvgPool2d: \(h)x\(w) -> \(outHeight)x\(outWidth)")
        }
        var y = Tensor(zeros: [n, c, outHeight, outWidth])
        x.withUnsafeBufferPointer { xs in
            y.withUnsafeMutableBufferPointer { ys in
                guard let xb = xs.baseAddress, let yb = ys.baseAddress else { return }
                adaptiveAvgPool2d(xb, planes: n * c, height: h, width: w, outHeight: outHeight, outWidth: outWidth, yb)
            }
        }
        return y
    }
}
