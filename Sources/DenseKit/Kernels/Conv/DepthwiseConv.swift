import CKernels
/// Direct depthwise convolution (`groups == C_in`, `C_out = m * C_in`, output channel `o`
/// reads input channel `o / m`), without im2col.
///
/// Each output plane is computed by one thread (planes are split over threads with a fixed
/// partition, so results do not depend on the thread count). Inside a plane, every output row
/// is built in registers: an interior fast path keeps 16 output columns in a `SIMD16<Float>`
/// accumulator over all kernel taps (strides 1 and 2, contiguous loads, with the stride-2
/// even lanes taken from a `SIMD32` load), and a scalar border path handles the columns whose
/// window leaves the input. Bias and activation are applied to the row while it is in L1.
/// 3x3 and 5x5 kernels get unrolled specialisations; other sizes, dilations and strides use
/// the same code with run-time sizes. On CPUs with AVX-512 the planes with dilation 1, equal
/// strides 1 or 2 and kernels up to 8x8 run in `dk_depthwise_plane` (CKernels: 16 columns
/// per FMA vector, masked loads at the ends, the same tap order) instead.
enum DepthwiseConv {
    /// Computes the convolution for `batch` images.
    /// - Parameters:
    ///   - input: `[batch, channels, height, width]`.
    ///   - weight: `[channels * multiplier, kernelH * kernelW]` (PyTorch's layout flattened).
    ///   - bias: `[channels * multiplier]` or nil.
    ///   - output: `[batch, channels * multiplier, outH, outW]`.
    static func forward(input: UnsafePointer<Float>, batch: Int, channels: Int, multiplier: Int,
                        geometry g: ConvGeometry, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                        activation: Activation, output: UnsafeMutablePointer<Float>) {
        let outChannels = channels * multiplier
        let planes = batch * outChannels
        let grain = max(1, 8_192 / max(1, g.outPixels * g.taps))
        Threading.parallelFor(planes, grain: grain) { idx in
            let n = idx / outChannels
            let o = idx - n * outChannels
            let c = o / multiplier
            let src = input + (n * channels + c) * g.inPixels
            let dst = output + idx * g.outPixels
            plane(src: src, dst: dst, w: weight + o * g.taps, bias: bias?[o] ?? 0, activation: activation, g: g)
        }
    }

    /// One output plane; dispatches to an unrolled specialisation when one exists.
    static func plane(src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>, w: UnsafePointer<Float>,
                      bias: Float, activation: Activation, g: ConvGeometry) {
        let unit = g.dilationH == 1 && g.dilationW == 1 && g.strideH == g.strideW
        if unit && KernelDispatch.avx512 && g.kernelH <= 8 && g.kernelW <= 8 && g.padTop >= 0 && g.padLeft >= 0 {
            // AVX-512 kernel when the CPU has it (CKernels); ReLU fused, other activations after.
            let relu: Int32 = activation == .relu ? 1 : 0
            if dk_depthwise_plane(src, dst, w, bias, relu, g.height, g.width, g.outH, g.outW,
                                  Int32(g.kernelH), Int32(g.kernelW), Int32(g.strideW),
                                  Int32(g.padTop), Int32(g.padLeft)) != 0 {
                if activation != .none && activation != .relu {
                    ConvEpilogue.applyPlane(dst, count: g.outPixels, bias: 0, activation: activation)
                }
                return
            }
        }
        switch (g.kernelH, g.kernelW, g.strideW, unit) {
        case (3, 3, 1, true): plane3x3s1(src, dst, w, bias, activation, g)
        case (3, 3, 2, true): plane3x3s2(src, dst, w, bias, activation, g)
        case (5, 5, 1, true): plane5x5s1(src, dst, w, bias, activation, g)
        case (5, 5, 2, true): plane5x5s2(src, dst, w, bias, activation, g)
        default: planeImpl(src, dst, w, bias, activation, g, kH: g.kernelH, kW: g.kernelW, sW: g.strideW)
        }
    }

    // Separate non-inlined entry points so that each gets its own copy of `planeImpl` with
    // constant sizes (fully unrolled taps).
    @inline(never) static func plane3x3s1(_ s: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, _ w: UnsafePointer<Float>,
                                          _ b: Float, _ a: Activation, _ g: ConvGeometry) {
        planeImpl(s, d, w, b, a, g, kH: 3, kW: 3, sW: 1)
    }
    @inline(never) static func plane3x3s2(_ s: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, _ w: UnsafePointer<Float>,
                                          _ b: Float, _ a: Activation, _ g: ConvGeometry) {
        planeImpl(s, d, w, b, a, g, kH: 3, kW: 3, sW: 2)
    }
    @inline(never) static func plane5x5s1(_ s: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, _ w: UnsafePointer<Float>,
                                          _ b: Float, _ a: Activation, _ g: ConvGeometry) {
        planeImpl(s, d, w, b, a, g, kH: 5, kW: 5, sW: 1)
    }
    @inline(never) static func plane5x5s2(_ s: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, _ w: UnsafePointer<Float>,
                                          _ b: Float, _ a: Activation, _ g: ConvGeometry) {
        planeImpl(s, d, w, b, a, g, kH: 5, kW: 5, sW: 2)
    }

    @inline(__always)
    static func planeImpl(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ w: UnsafePointer<Float>,
                          _ bias: Float, _ activation: Activation, _ g: ConvGeometry,
                          kH: Int, kW: Int, sW: Int) {
        let dW = g.dilationW, dH = g.dilationH, width = g.width, padLeft = g.padLeft
        // Interior columns: every tap column inside the input.
        let first = g.validColumns(tapColumn: 0)
        let last = g.validColumns(tapColumn: kW - 1)
        let cLo = max(first.lo, last.lo)
        let cHi = max(cLo, min(first.hi, last.hi))
        // Last input column a 16-lane block starting at `ow` reads, relative to ow*sW.
        let span = (sW == 1 ? 15 : 31) &+ (kW &- 1) &* dW &- padLeft
        let vector = sW <= 2 && cHi - cLo >= 16
        for oh in 0..<g.outH {
            let row = dst + (oh &* g.outW)
            let ihBase = oh &* g.strideH &- g.padTop
            // Kernel rows inside the input for this output row.
            var aLo = 0
            while aLo < kH && ihBase &+ aLo &* dH < 0 { aLo &+= 1 }
            var aHi = kH
            while aHi > aLo && ihBase &+ (aHi &- 1) &* dH >= g.height { aHi &-= 1 }
            let base = src + (ihBase &* width &- padLeft)
            // Left border.
            var ow = 0
            while ow < cLo { row[ow] = borderPixel(src, w, bias, g, ow: ow, ihBase: ihBase, aLo: aLo, aHi: aHi, kW: kW); ow &+= 1 }
            if vector {
                // Interior, 16 columns at a time; the last block overlaps the previous one instead
                // of falling back to scalar code (it recomputes identical values). Each block is
                // stored only after the next one is computed: input and output planes often share
                // their address bits 0-11, and loads right after a store to the same 4K offset stall.
                var pending = SIMD16<Float>()
                var pendingAt = -1
                while ow < cHi {
                    var start = ow
                    if start &+ 16 > cHi { start = cHi &- 16 }
                    let acc: SIMD16<Float>
                    if sW == 1 || start &* 2 &+ span <= width &- 1 {
                        acc = block(base, w, bias, start, aLo, aHi, kW, sW, dW, dH, width, shifted: false)
                    } else if start &* 2 &- padLeft &- 1 >= 0 {
                        // Stride 2 near the right edge: load one float earlier and take the odd lanes.
                        acc = block(base, w, bias, start, aLo, aHi, kW, sW, dW, dH, width, shifted: true)
                    } else {
                        break
                    }
                    if pendingAt >= 0 { UnsafeMutableRawPointer(row + pendingAt).storeBytes(of: pending, as: SIMD16<Float>.self) }
                    pending = acc
                    pendingAt = start
                    ow = start &+ 16
                }
                if pendingAt >= 0 { UnsafeMutableRawPointer(row + pendingAt).storeBytes(of: pending, as: SIMD16<Float>.self) }
            }
            // Interior remainder (scalar, no bounds checks needed).
            while ow < cHi {
                var acc = bias
                var a = aLo
                while a < aHi {
                    let inRow = base + (a &* dH &* width &+ ow &* sW)
                    let wRow = w + (a &* kW)
                    for b in 0..<kW { acc += wRow[b] * inRow[b &* dW] }
                    a &+= 1
                }
                row[ow] = acc
                ow &+= 1
            }
            // Right border.
            while ow < g.outW { row[ow] = borderPixel(src, w, bias, g, ow: ow, ihBase: ihBase, aLo: aLo, aHi: aHi, kW: kW); ow &+= 1 }
            ConvEpilogue.applyPlane(row, count: g.outW, bias: 0, activation: activation)
        }
    }

    /// 16 interior output columns starting at `ow`, accumulated over all valid taps in registers (returned).
    /// `base` points at input row `ihBase`, column `-padLeft`. For stride 2, `shifted` loads
    /// 32 floats starting one earlier and keeps the odd lanes (so the read never passes the
    /// last tap column).
    @inline(__always)
    static func block(_ base: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                      _ bias: Float, _ ow: Int, _ aLo: Int, _ aHi: Int, _ kW: Int, _ sW: Int, _ dW: Int, _ dH: Int,
                      _ width: Int, shifted: Bool) -> SIMD16<Float> {
        var acc = SIMD16<Float>(repeating: bias)
        var a = aLo
        while a < aHi {
            let inRow = base + (a &* dH &* width &+ ow &* sW)
            let wRow = w + (a &* kW)
            var b = 0
            while b < kW {
                let p = inRow + (b &* dW)
                let v: SIMD16<Float>
                if sW == 1 {
                    v = UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
                } else if shifted {
                    v = UnsafeRawPointer(p - 1).loadUnaligned(as: SIMD32<Float>.self).oddHalf
                } else {
                    v = UnsafeRawPointer(p).loadUnaligned(as: SIMD32<Float>.self).evenHalf
                }
                acc += wRow[b] * v
                b &+= 1
            }
            a &+= 1
        }
        return acc
    }

    /// One output pixel with per-tap column checks (window partly outside the input).
    @inline(__always)
    static func borderPixel(_ src: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ bias: Float, _ g: ConvGeometry,
                            ow: Int, ihBase: Int, aLo: Int, aHi: Int, kW: Int) -> Float {
        var acc = bias
        let iwBase = ow * g.strideW - g.padLeft
        var a = aLo
        while a < aHi {
            let inRow = src + (ihBase + a * g.dilationH) * g.width
            for b in 0..<kW {
                let iw = iwBase + b * g.dilationW
                if iw >= 0 && iw < g.width { acc += w[a * kW + b] * inRow[iw] }
            }
            a += 1
        }
        return acc
    }
}
