/// Geometry of one convolution call: input and output plane sizes and the window rule.
///
/// Input pixel read by output `(oh, ow)` and tap `(a, b)`:
/// `ih = oh*strideH - padTop + a*dilationH`, `iw = ow*strideW - padLeft + b*dilationW`,
/// zero outside `[0, height) x [0, width)`. `padTop`/`padLeft` include the pre-padding.
struct ConvGeometry {
    var height: Int, width: Int
    var outH: Int, outW: Int
    var kernelH: Int, kernelW: Int
    var strideH: Int, strideW: Int
    var dilationH: Int, dilationW: Int
    var padTop: Int, padLeft: Int

    init(_ p: Conv2dParameters, height: Int, width: Int) {
        let o = p.outputSize(height: height, width: width)
        self.height = height; self.width = width
        self.outH = o.height; self.outW = o.width
        self.kernelH = p.kernelH; self.kernelW = p.kernelW
        self.strideH = p.strideH; self.strideW = p.strideW
        self.dilationH = p.dilationH; self.dilationW = p.dilationW
        self.padTop = p.effectivePadTop; self.padLeft = p.effectivePadLeft
    }

    var outPixels: Int { outH * outW }
    var inPixels: Int { height * width }
    var taps: Int { kernelH * kernelW }

    /// The output columns `[lo, hi)` whose tap at kernel column `b` lands inside the input.
    @inline(__always)
    func validColumns(tapColumn b: Int) -> (lo: Int, hi: Int) {
        // iw = ow*sW - padLeft + b*dW must lie in [0, width).
        let off = padLeft - b * dilationW              // iw = ow*sW - off
        let lo = off <= 0 ? 0 : (off + strideW - 1) / strideW
        let lastNum = width - 1 + off                  // ow*sW <= lastNum
        let hi = lastNum < 0 ? 0 : lastNum / strideW + 1
        return (max(0, min(lo, outW)), max(0, min(hi, outW)))
    }

    /// The output rows `[lo, hi)` whose tap at kernel row `a` lands inside the input.
    @inline(__always)
    func validRows(tapRow a: Int) -> (lo: Int, hi: Int) {
        let off = padTop - a * dilationH
        let lo = off <= 0 ? 0 : (off + strideH - 1) / strideH
        let lastNum = height - 1 + off
        let hi = lastNum < 0 ? 0 : lastNum / strideH + 1
        return (max(0, min(lo, outH)), max(0, min(hi, outH)))
    }
}

/// The bias written into `channels` output planes (`count` floats at `offset` of each plane of
/// `planeStride` floats) before a GEMM accumulates onto them.
struct BiasPrefill {
    var output: UnsafeMutablePointer<Float>
    var channels: Int
    var planeStride: Int
    var offset: Int
    var count: Int
    var bias: UnsafePointer<Float>

    @inline(__always)
    func fill(channel o: Int) {
        (output + o * planeStride + offset).update(repeating: bias[o], count: count)
    }

    /// Fills every channel, split over threads.
    func fillAll() {
        Threading.parallelFor(channels, grain: max(1, 32_768 / max(1, count))) { o in fill(channel: o) }
    }
}

/// im2col over a range of output pixels, for the GEMM convolution.
enum Im2col {
    /// Fills the column matrix `col` (`channels * kernelH * kernelW` rows, `count` columns,
    /// row-major, leading dimension `count`) for output pixels `[pixel0, pixel0 + count)` of
    /// the output plane (linear index `oh * outW + ow`). Row `(c * kernelH + a) * kernelW + b`
    /// holds input channel `c` at tap `(a, b)`, matching the PyTorch weight layout
    /// `[C_out, C_in/groups, kH, kW]` flattened per output channel.
    ///
    /// Rows are split over threads with a partition fixed by the sizes alone. When `prefill` is
    /// given, the same parallel pass also writes the bias into the GEMM's output tile (so the GEMM
    /// can accumulate onto it with beta = 1 and no separate bias pass is needed).
    /// - Parameter input: the first of `channels` consecutive `height x width` planes.
    static func fill(input: UnsafePointer<Float>, channels: Int, geometry g: ConvGeometry,
                     pixel0: Int, count: Int, col: UnsafeMutablePointer<Float>, prefill: BiasPrefill? = nil) {
        let rows = channels * g.taps
        let extra = prefill?.channels ?? 0
        // Aim for at least ~32K floats of work per chunk.
        let grain = max(1, 32_768 / max(count, 1))
        Threading.parallelFor(rows + extra, grain: grain) { r in
            if r < rows {
                fillRow(input: input, row: r, geometry: g, pixel0: pixel0, count: count, dst: col + r * count)
            } else if let f = prefill {
                f.fill(channel: r - rows)
            }
        }
    }

    /// One row of the column matrix (one channel and tap) for the pixel range.
    @inline(__always)
    static func fillRow(input: UnsafePointer<Float>, row r: Int, geometry g: ConvGeometry,
                        pixel0: Int, count: Int, dst: UnsafeMutablePointer<Float>) {
        let taps = g.taps
        let c = r / taps
        let t = r - c * taps
        let a = t / g.kernelW
        let b = t - a * g.kernelW
        let plane = input + c * g.inPixels
        let (colLo, colHi) = g.validColumns(tapColumn: b)
        let (rowLo, rowHi) = g.validRows(tapRow: a)
        let sW = g.strideW
        let colOffset = b * g.dilationW - g.padLeft
        var p = pixel0
        let end = pixel0 + count
        var d = dst
        while p < end {
            let oh = p / g.outW
            let ow0 = p - oh * g.outW
            let ow1 = min(g.outW, ow0 + (end - p))
            let n = ow1 - ow0
            if oh < rowLo || oh >= rowHi {
                d.update(repeating: 0, count: n)
            } else {
                let ih = oh * g.strideH - g.padTop + a * g.dilationH
                let src = plane + ih * g.width
                let lo = min(max(colLo, ow0), ow1)
                let hi = max(min(colHi, ow1), lo)
                if lo > ow0 { d.update(repeating: 0, count: lo - ow0) }
                if hi > lo {
                    let s0 = src + (lo * sW + colOffset)
                    let dd = d + (lo - ow0)
                    if sW == 1 {
                        dd.update(from: s0, count: hi - lo)
                    } else {
                        copyStrided(s0, stride: sW, to: dd, count: hi - lo)
                    }
                }
                if ow1 > hi { (d + (hi - ow0)).update(repeating: 0, count: ow1 - hi) }
            }
            d += n
            p += n
        }
    }

    @inline(__always)
    static func copyStrided(_ src: UnsafePointer<Float>, stride: Int, to dst: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        if stride == 2 {
            // 16 outputs from one 32-float load while the load stays within the needed range
            // (its last float, src[2i + 31], must not pass src[2 * (count - 1)]).
            while i &+ 16 < count {
                let v = UnsafeRawPointer(src + 2 &* i).loadUnaligned(as: SIMD32<Float>.self).evenHalf
                UnsafeMutableRawPointer(dst + i).storeBytes(of: v, as: SIMD16<Float>.self)
                i &+= 16
            }
            if i < count && count > 16 {
                // Last 16 outputs (overlapping the previous block): load one float earlier, which
                // is still inside the source range, and keep the odd lanes.
                let j = count &- 16
                let v = UnsafeRawPointer(src + (2 &* j &- 1)).loadUnaligned(as: SIMD32<Float>.self).oddHalf
                UnsafeMutableRawPointer(dst + j).storeBytes(of: v, as: SIMD16<Float>.self)
                i = count
            }
            while i < count { dst[i] = src[2 &* i]; i &+= 1 }
        } else {
            while i < count { dst[i] = src[i &* stride]; i &+= 1 }
        }
    }
}
