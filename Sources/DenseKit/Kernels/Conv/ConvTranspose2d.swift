import Foundation

/// The hyper-parameters of a 2-D transposed convolution, as `torch.nn.ConvTranspose2d` takes them.
///
/// `H_out = (H - 1)*strideH - 2*padH + dilationH*(kernelH - 1) + outputPaddingH + 1` (same for W).
/// Matches `torch.nn.functional.conv_transpose2d` (`conv_transpose2d` in `golden/ops/INDEX.md`).
public struct ConvTranspose2dParameters: Sendable, Hashable {
    /// Input channels `C_in`.
    public var inChannels: Int
    /// Output channels `C_out`.
    public var outChannels: Int
    /// Kernel height.
    public var kernelH: Int
    /// Kernel width.
    public var kernelW: Int
    /// Vertical stride (>= 1).
    public var strideH = 1
    /// Horizontal stride (>= 1).
    public var strideW = 1
    /// Rows cropped from the top and the bottom of the full result.
    public var padH = 0
    /// Columns cropped from the left and the right of the full result.
    public var padW = 0
    /// Extra rows at the bottom (< max(strideH, dilationH)).
    public var outputPaddingH = 0
    /// Extra columns at the right (< max(strideW, dilationW)).
    public var outputPaddingW = 0
    /// Vertical tap spacing (>= 1).
    public var dilationH = 1
    /// Horizontal tap spacing (>= 1).
    public var dilationW = 1
    /// Channel groups.
    public var groups = 1
    /// Activation applied after the bias.
    public var activation: Activation = .none

    /// Creates the parameters; the defaults are PyTorch's.
    public init(inChannels: Int, outChannels: Int, kernelH: Int, kernelW: Int,
                strideH: Int = 1, strideW: Int = 1, padH: Int = 0, padW: Int = 0,
                outputPaddingH: Int = 0, outputPaddingW: Int = 0,
                dilationH: Int = 1, dilationW: Int = 1, groups: Int = 1, activation: Activation = .none) {
        self.inChannels = inChannels; self.outChannels = outChannels
        self.kernelH = kernelH; self.kernelW = kernelW
        self.strideH = strideH; self.strideW = strideW
        self.padH = padH; self.padW = padW
        self.outputPaddingH = outputPaddingH; self.outputPaddingW = outputPaddingW
        self.dilationH = dilationH; self.dilationW = dilationW
        self.groups = groups; self.activation = activation
    }

    /// Output size for an input of `height x width` (<= 0 when the padding crops everything).
    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        ((height - 1) * strideH - 2 * padH + dilationH * (kernelH - 1) + outputPaddingH + 1,
         (width - 1) * strideW - 2 * padW + dilationW * (kernelW - 1) + outputPaddingW + 1)
    }

    /// Checks that every parameter is in range.
    /// - Throws: `ConvError.invalidParameter` naming the first problem.
    public func validate() throws {
        func check(_ ok: Bool, _ message: @autoclosure () -> String) throws {
            if !ok { throw ConvError.invalidParameter(message()) }
        }
        try check(inChannels > 0 && outChannels > 0, "channels must be > 0 (got \(inChannels) -> \(outChannels))")
        try check(kernelH > 0 && kernelW > 0, "kernel size must be > 0 (got \(kernelH)x\(kernelW))")
        try check(strideH > 0 && strideW > 0, "stride must be > 0 (got \(strideH)x\(strideW))")
        try check(dilationH > 0 && dilationW > 0, "dilation must be > 0 (got \(dilationH)x\(dilationW))")
        try check(padH >= 0 && padW >= 0, "padding must be >= 0 (got \(padH)x\(padW))")
        try check(outputPaddingH >= 0 && outputPaddingW >= 0, "output_padding must be >= 0")
        try check(outputPaddingH < max(strideH, dilationH) && outputPaddingW < max(strideW, dilationW),
                  "output_padding \(outputPaddingH)x\(outputPaddingW) must be smaller than max(stride, dilation)")
        try check(groups > 0, "groups must be > 0")
        try check(inChannels % groups == 0, "inChannels \(inChannels) is not divisible by groups \(groups)")
        try check(outChannels % groups == 0, "outChannels \(outChannels) is not divisible by groups \(groups)")
        let limit = 1 << 24
        try check([inChannels, outChannels, kernelH, kernelW, strideH, strideW, padH, padW, dilationH, dilationW].allSatisfy { $0 < limit },
                  "a parameter exceeds \(limit)")
    }
}

/// A 2-D transposed convolution with packed weights, matching `torch.nn.functional.conv_transpose2d`
/// (followed by the optional activation).
///
/// Computed as a GEMM and a col2im scatter: for each image, group and tile of input pixels,
/// `col[C_out/g * kH * kW, pixels] = W_g^T * X_g`, then every column row `(o, a, b)` is added to
/// output channel `o` at `(h*sH + a*dH - pH, w*sW + b*dW - pW)`. Output channels are split over
/// threads (each owns its plane, fixed order), so results do not depend on the thread count.
/// The column buffer is tiled over input pixels and never exceeds `colBound` floats (unless a
/// single pixel needs more). `forward` is reentrant.
public final class ConvTranspose2dOperator: @unchecked Sendable {
    /// The parameters (validated).
    public let parameters: ConvTranspose2dParameters
    /// Upper bound, in floats, of the column buffer (default 8M floats = 32 MB); tests lower it.
    nonisolated(unsafe) static var colBound: Int = 8 << 20

    /// Per group, `[C_out/g * kH * kW, C_in/g]` row-major: the weight transposed for a plain GEMM.
    let packedWeight: UnsafeMutablePointer<Float>
    let packedBias: UnsafeMutablePointer<Float>?

    /// Creates the operator and packs the weights.
    /// - Parameters:
    ///   - weight: `[C_in, C_out/groups, kH, kW]` (PyTorch's `ConvTranspose2d.weight`, input channels first).
    ///   - bias: `[C_out]` or nil.
    /// - Throws: `ConvError` for out-of-range parameters or wrong shapes.
    public init(_ p: ConvTranspose2dParameters, weight: Tensor, bias: Tensor?) throws {
        try p.validate()
        let coutG = p.outChannels / p.groups, cinG = p.inChannels / p.groups
        let expected = [p.inChannels, coutG, p.kernelH, p.kernelW]
        guard weight.shape == expected else {
            throw ConvError.shapeMismatch("transposed-conv weight has shape \(weight.shape), expected \(expected) ([C_in, C_out/groups, kH, kW])")
        }
        if let b = bias, b.shape != [p.outChannels] {
            throw ConvError.shapeMismatch("bias has shape \(b.shape), expected [\(p.outChannels)]")
        }
        parameters = p
        let rowsG = coutG * p.kernelH * p.kernelW
        let total = p.groups * rowsG * cinG
        let pw = UnsafeMutablePointer<Float>.allocate(capacity: max(1, total))
        weight.withUnsafeBufferPointer { w in
            for g in 0..<p.groups {
                let dst = pw + g * rowsG * cinG
                for c in 0..<cinG {
                    let src = (g * cinG + c) * rowsG
                    for r in 0..<rowsG { dst[r * cinG + c] = w[src + r] }
                }
            }
        }
        packedWeight = pw
        packedBias = bias.map { Conv2dOperator.allocateCopy($0) }
    }

    deinit {
        packedWeight.deallocate()
        packedBias?.deallocate()
    }

    var rowsPerGroup: Int { parameters.outChannels / parameters.groups * parameters.kernelH * parameters.kernelW }

    func tilePixels(inPixels: Int) -> Int {
        let tile = max(1, max(1, ConvTranspose2dOperator.colBound) / max(1, rowsPerGroup))
        return max(1, min(tile, inPixels))
    }

    /// Floats of scratch one `forward` needs (the column tile).
    public func workspaceCount(batch: Int, height: Int, width: Int) -> Int {
        rowsPerGroup * tilePixels(inPixels: height * width)
    }

    /// Output shape `[batch, C_out, H_out, W_out]`.
    public func outputShape(batch: Int, height: Int, width: Int) -> [Int] {
        let o = parameters.outputSize(height: height, width: width)
        return [batch, parameters.outChannels, o.height, o.width]
    }

    /// Runs the transposed convolution.
    /// - Parameters:
    ///   - input: `[batch, C_in, height, width]` NCHW.
    ///   - output: `[batch, C_out, H_out, W_out]`, fully overwritten.
    ///   - workspace: `workspaceCount(...)` floats, or nil to allocate.
    public func forward(input: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
                        output: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>?) {
        let p = parameters
        let o = p.outputSize(height: height, width: width)
        if o.height <= 0 || o.width <= 0 || batch <= 0 { return }
        if let ws = workspace {
            run(input, batch, height, width, o.height, o.width, output, ws)
        } else {
            let need = workspaceCount(batch: batch, height: height, width: width)
            let ws = UnsafeMutablePointer<Float>.allocate(capacity: max(1, need))
            defer { ws.deallocate() }
            run(input, batch, height, width, o.height, o.width, output, ws)
        }
    }

    private func run(_ input: UnsafePointer<Float>, _ batch: Int, _ h: Int, _ w: Int, _ oh: Int, _ ow: Int,
                     _ output: UnsafeMutablePointer<Float>, _ col: UnsafeMutablePointer<Float>) {
        let p = parameters
        let cinG = p.inChannels / p.groups, coutG = p.outChannels / p.groups
        let inPx = h * w, outPx = oh * ow
        let rowsG = rowsPerGroup
        let tile = tilePixels(inPixels: inPx)
        let taps = p.kernelH * p.kernelW
        // Start from the bias (or zero).
        let biasPtr = packedBias
        Threading.parallelFor(batch * p.outChannels, grain: max(1, 16_384 / max(1, outPx))) { i in
            let b = biasPtr?[i % p.outChannels] ?? 0
            (output + i * outPx).update(repeating: b, count: outPx)
        }
        for n in 0..<batch {
            var q0 = 0
            while q0 < inPx {
                let cnt = min(tile, inPx - q0)
                for g in 0..<p.groups {
                    let x = input + (n * p.inChannels + g * cinG) * inPx + q0
                    BLAS.sgemm(m: rowsG, n: cnt, k: cinG, a: packedWeight + g * rowsG * cinG, lda: cinG,
                               b: x, ldb: inPx, c: col, ldc: cnt)
                    let yg = output + (n * p.outChannels + g * coutG) * outPx
                    Threading.parallelFor(coutG, grain: max(1, 16_384 / max(1, cnt * taps))) { oc in
                        ConvTranspose2dOperator.scatter(col: col + oc * taps * cnt, count: cnt, pixel0: q0,
                                                        inW: w, outH: oh, outW: ow, p: p, dst: yg + oc * outPx)
                    }
                }
                q0 += cnt
            }
        }
        if p.activation != .none {
            Threading.parallelFor(batch * p.outChannels, grain: max(1, 16_384 / max(1, outPx))) { i in
                p.activation.apply(output + i * outPx, count: outPx)
            }
        }
    }

    /// Adds the `kH*kW` column rows of one output channel (each `count` input pixels starting
    /// at linear input pixel `pixel0`) into that channel's output plane.
    @inline(__always)
    static func scatter(col: UnsafePointer<Float>, count: Int, pixel0: Int, inW: Int, outH: Int, outW: Int,
                        p: ConvTranspose2dParameters, dst: UnsafeMutablePointer<Float>) {
        for a in 0..<p.kernelH {
            for b in 0..<p.kernelW {
                let row = col + (a * p.kernelW + b) * count
                let colOff = b * p.dilationW - p.padW
                // Input columns whose output column lies in [0, outW).
                let wLo = colOff >= 0 ? 0 : (-colOff + p.strideW - 1) / p.strideW
                let wHiNum = outW - 1 - colOff
                let wHi = wHiNum < 0 ? 0 : wHiNum / p.strideW + 1      // exclusive
                var q = pixel0
                let end = pixel0 + count
                while q < end {
                    let hIn = q / inW
                    let w0 = q - hIn * inW
                    let w1 = min(inW, w0 + (end - q))
                    let oy = hIn * p.strideH + a * p.dilationH - p.padH
                    if oy >= 0 && oy < outH {
                        let lo = max(w0, wLo), hi = min(w1, wHi)
                        if lo < hi {
                            let src = row + (q - pixel0) - w0
                            let drow = dst + oy * outW + colOff
                            let s = p.strideW
                            for x in lo..<hi { drow[x * s] += src[x] }
                        }
                    }
                    q += w1 - w0
                }
            }
        }
    }

    /// Convenience: `[N, C_in, H, W]` -> `[N, C_out, H_out, W_out]`.
    /// - Throws: `ConvError.shapeMismatch` when the input does not fit.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard x.rank == 4, x.shape[1] == parameters.inChannels else {
            throw ConvError.shapeMismatch("transposed-conv input must be [N, \(parameters.inChannels), H, W], got \(x.shape)")
        }
        let n = x.shape[0], h = x.shape[2], w = x.shape[3]
        let shape = outputShape(batch: n, height: h, width: w)
        guard shape[2] > 0, shape[3] > 0 else {
            throw ConvError.shapeMismatch("transposed-conv output would be empty for input \(h)x\(w)")
        }
        var y = Tensor(zeros: shape)
        if n == 0 || h == 0 || w == 0 { return y }
        x.withUnsafeBufferPointer { xb in
            y.withUnsafeMutableBufferPointer { yb in
                guard let xp = xb.baseAddress, let yp = yb.baseAddress else { return }
                forward(input: xp, batch: n, height: h, width: w, output: yp, workspace: nil)
            }
        }
        return y
    }
}
