import CKernels
import Foundation

/// A 2-D convolution with its weights packed once, matching
/// `act(torch.nn.functional.conv2d(F.pad(x, prePad), weight, bias, stride, padding, dilation, groups))`.
///
/// Activations are NCHW float32. The operator picks one of four kernels at init:
/// - **1x1, stride 1, no padding**: one `BLAS.sgemm` per image and group on the input itself
///   (`Y[C_out/g, H*W] = W[C_out/g, C_in/g] * X[C_in/g, H*W]`), no im2col.
/// - **depthwise** (`groups == C_in`, `C_out = m * C_in`): a direct SIMD kernel (`DepthwiseConv`).
/// - **kernels taller than the vertical stride** (3x3 / 5x5 / 7x7 at stride 1 or 2, 3x1 ...): a
///   *row-shift* im2col (`RowShiftPlan`). The column matrix holds only the `C_in/g * kW`
///   horizontal taps of a window of input rows (one window per input-row phase modulo the
///   stride), and kernel row `a` is one GEMM whose B is that window shifted by a whole number of
///   rows: `Y[:, tile] += W_a * col[:, shift_a * W_out ...]`. The column buffer is
///   `kH / phases` times smaller than a full im2col (3x for a 3x3 at stride 1), so it stays in cache.
/// - **everything else** (kernel rows no taller than the stride, e.g. 1x1 stride 2, 3x3 stride 3):
///   im2col + `BLAS.sgemm`, tiled over output pixels. The row-shift kernel also falls back to it,
///   with its weights unpacked for the call, when one output row's window exceeds the bound.
///
/// Both im2col kernels are tiled over the output so that the column buffer never exceeds
/// `Conv2dOperator.im2colBound` floats whatever the image size. Each tile's GEMMs write
/// straight into the output (leading dimension `H_out*W_out`): the bias is written into the
/// output tile in the same parallel pass as the im2col and the GEMM accumulates onto it
/// (beta = 1); the activation then runs on that tile while it is still in cache.
///
/// `forward` keeps no mutable state: one operator may be used from several threads at once
/// (OpenBLAS calls are serialised by `BLAS.sgemm`). Results do not depend on
/// `Threading.threads`: our loops use fixed partitions and OpenBLAS never splits the K sum.
public final class Conv2dOperator: @unchecked Sendable {
    /// The convolution's parameters (validated).
    public let parameters: Conv2dParameters

    /// Upper bound, in floats, of the im2col buffer of one forward (default 8M floats = 32 MB).
    /// Internal so that tests can lower it; read when `workspaceCount`/`forward` run.
    nonisolated(unsafe) static var im2colBound: Int = 8 << 20
    /// Preferred im2col tile size in floats (cache-friendly); never above `im2colBound`.
    nonisolated(unsafe) static var im2colTarget: Int = 1 << 19
    /// Preferred row-shift column tile size in floats; never above `im2colBound`.
    nonisolated(unsafe) static var rowShiftTarget: Int = 1 << 20
    /// Smallest GEMM N (output pixels per tile) the tilers aim for, bound permitting.
    nonisolated(unsafe) static var minTileColumns: Int = 2048

    enum Path { case pointwise, depthwise, im2col, rowShift, winograd, direct }
    let path: Path
    /// How kernel rows map onto input-row phases, for `.rowShift`.
    let rowShiftPlan: RowShiftPlan?
    /// Weights. `.rowShift`: per group and kernel row `a`, `[C_out/g, C_in/g * kW]`
    /// (index `((g*kH + a)*C_out/g + o)*(C_in/g*kW) + c*kW + b`). Other paths:
    /// `[C_out, C_in/groups * kH * kW]`, PyTorch's layout. Contiguous and 64-byte aligned.
    let packedWeight: UnsafeMutablePointer<Float>
    /// Bias `[C_out]` or nil.
    let packedBias: UnsafeMutablePointer<Float>?
    /// `.pointwise` on DenseKit's own kernel (`dk_pointwise_conv`, the CPU has AVX-512 and one group's weights fit
    /// `pointwisePanelBound` bytes, so they stay in L2 while the pixels stream past), and always `.direct`
    /// (`dk_conv_direct`): `packedWeight` then holds, per group, panels of 14 output channels over the
    /// `C_in/g * kH * kW` inputs (`[ceil(C_out/g/14)][C_in/g*kH*kW][14]`) instead of PyTorch's layout.
    let pointwisePanels: Bool
    /// Largest weight matrix of one group, in bytes, that the 1x1 and direct kernels take (larger ones go to
    /// `BLAS.sgemm`, which blocks the weights for the cache).
    static let pointwisePanelBound = 1 << 20

    /// Creates the operator and packs the weights.
    /// - Parameters:
    ///   - p: the parameters; validated here.
    ///   - weight: `[C_out, C_in/groups, kH, kW]` (PyTorch's `Conv2d.weight`).
    ///   - bias: `[C_out]` or nil.
    /// - Throws: `ConvError` when a parameter is out of range or a tensor has the wrong shape.
    public init(_ p: Conv2dParameters, weight: Tensor, bias: Tensor?) throws {
        try p.validate()
        let expected = [p.outChannels, p.inChannels / p.groups, p.kernelH, p.kernelW]
        guard weight.shape == expected else {
            throw ConvError.shapeMismatch("weight has shape \(weight.shape), expected \(expected) ([C_out, C_in/groups, kH, kW])")
        }
        if let b = bias, b.shape != [p.outChannels] {
            throw ConvError.shapeMismatch("bias has shape \(b.shape), expected [\(p.outChannels)]")
        }
        self.parameters = p
        let plan = RowShiftPlan(p)
        if p.isDepthwise {
            path = .depthwise
        } else if p.kernelH == 1 && p.kernelW == 1 && p.strideH == 1 && p.strideW == 1
                    && p.padH == 0 && p.padW == 0 && p.prePad.allSatisfy({ $0 == 0 }) {
            path = .pointwise
        } else if WinogradConv.applies(p) {
            path = .winograd
        } else if Conv2dOperator.directApplies(p) {
            path = .direct
        } else if plan.phases.count < p.kernelH {
            path = .rowShift
        } else {
            path = .im2col
        }
        rowShiftPlan = path == .rowShift ? plan : nil
        // The direct kernel reads nothing but the panels (its weight bound is part of `directApplies`).
        let panels = (path == .pointwise && dk_has_avx512() != 0
            && p.inChannelsPerGroup * p.outChannelsPerGroup * 4 <= Conv2dOperator.pointwisePanelBound) || path == .direct
        pointwisePanels = panels
        if panels {
            packedWeight = Conv2dOperator.pointwisePack(weight, p)
        } else if path == .rowShift {
            packedWeight = Conv2dOperator.rowShiftPack(weight, p)
        } else if path == .winograd {
            packedWeight = WinogradConv.transformWeights(weight, cout: p.outChannels, cin: p.inChannels)
        } else {
            packedWeight = Conv2dOperator.allocateCopy(weight)
        }
        packedBias = bias.map { Conv2dOperator.allocateCopy($0) }
    }

    deinit {
        packedWeight.deallocate()
        packedBias?.deallocate()
    }

    /// Repacks `[C_out, C_in/g, kH, kW]` into per-group, per-kernel-row matrices `[C_out/g, C_in/g * kW]`.
    static func rowShiftPack(_ t: Tensor, _ p: Conv2dParameters) -> UnsafeMutablePointer<Float> {
        let cinG = p.inChannelsPerGroup, coutG = p.outChannelsPerGroup, kH = p.kernelH, kW = p.kernelW
        let kp = cinG * kW
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, t.count) * MemoryLayout<Float>.stride, alignment: 64)
        let dst = raw.bindMemory(to: Float.self, capacity: max(1, t.count))
        t.withUnsafeBufferPointer { w in
            for o in 0..<p.outChannels {
                let g = o / coutG, ol = o - g * coutG
                for c in 0..<cinG {
                    for a in 0..<kH {
                        for b in 0..<kW {
                            dst[((g * kH + a) * coutG + ol) * kp + c * kW + b] = w[((o * cinG + c) * kH + a) * kW + b]
                        }
                    }
                }
            }
        }
        return dst
    }

    /// Index, within one matrix's panels, of weight `[o][c]` of a `cout x cin` matrix in `dk_pointwise_conv`'s
    /// layout: panels of 14 output channels, `[(o / 14)][c][o % 14]`.
    @inline(__always)
    static func pointwisePanelIndex(out o: Int, in c: Int, inChannels cin: Int) -> Int {
        (o / 14) * cin * 14 + c * 14 + o % 14
    }

    /// `dk_pointwise_conv` for pixels `[p0, p1)` of one `cin x hw` input, with its column scratch (`cin x 32`
    /// floats, 64-byte aligned) allocated for the call: the work item of the 1x1 path and of Winograd's products.
    static func pointwiseItem(x: UnsafePointer<Float>, hw: Int, cin: Int, panels: UnsafePointer<Float>, cout: Int,
                              bias: UnsafePointer<Float>?, relu: Bool, y: UnsafeMutablePointer<Float>, p0: Int, p1: Int) {
        let xpack = UnsafeMutableRawPointer.allocate(byteCount: cin * 32 * MemoryLayout<Float>.stride, alignment: 64)
            .bindMemory(to: Float.self, capacity: cin * 32)
        defer { xpack.deallocate() }
        _ = dk_pointwise_conv(x, hw, cin, panels, cout, bias, relu ? 1 : 0, y, p0, p1, xpack)
    }

    /// Repacks weights `[C_out, C_in/g, kH, kW]` into per-group panels of 14 output channels over the
    /// `C_in/g * kH * kW` inputs (`dk_pointwise_conv`'s and `dk_conv_direct`'s layout, zero past the group's last
    /// channel), 64-byte aligned.
    static func pointwisePack(_ t: Tensor, _ p: Conv2dParameters) -> UnsafeMutablePointer<Float> {
        let cinG = p.inChannelsPerGroup * p.kernelH * p.kernelW, coutG = p.outChannelsPerGroup   // inputs per output
        let per = dk_pointwise_panel_floats(coutG, cinG), n = max(1, per * p.groups)
        let dst = UnsafeMutableRawPointer.allocate(byteCount: n * MemoryLayout<Float>.stride, alignment: 64)
            .bindMemory(to: Float.self, capacity: n)
        t.withUnsafeBufferPointer { w in
            guard let base = w.baseAddress else { dst.initialize(repeating: 0, count: n); return }
            for g in 0..<p.groups { packPanels(base + g * coutG * cinG, cout: coutG, inputs: cinG, into: dst + g * per) }
        }
        return dst
    }

    /// Writes `dk_pointwise_conv`'s panels of one row-major `cout x inputs` matrix `w` into `dst`
    /// (`dk_pointwise_panel_floats(cout, inputs)` floats, zero past the last output).
    static func packPanels(_ w: UnsafePointer<Float>, cout: Int, inputs: Int, into dst: UnsafeMutablePointer<Float>) {
        dst.initialize(repeating: 0, count: dk_pointwise_panel_floats(cout, inputs))
        for o in 0..<cout {
            for c in 0..<inputs { dst[pointwisePanelIndex(out: o, in: c, inChannels: inputs)] = w[o * inputs + c] }
        }
    }

    /// The PyTorch-layout weights, rebuilt from the row-shift packing (used when an image is too
    /// wide for the row-shift tiles) or from the 14-channel panels of the 1x1 and direct paths (when the vector
    /// kernels are switched off).
    func standardWeights() -> UnsafeMutablePointer<Float> {
        let p = parameters
        let cinG = p.inChannelsPerGroup, coutG = p.outChannelsPerGroup, kH = p.kernelH, kW = p.kernelW
        let kp = cinG * kW
        let n = p.outChannels * cinG * kH * kW
        let dst = UnsafeMutablePointer<Float>.allocate(capacity: max(1, n))
        if pointwisePanels {
            let k = cinG * kH * kW, per = dk_pointwise_panel_floats(coutG, k)
            for o in 0..<p.outChannels {
                let g = o / coutG, ol = o - g * coutG
                for c in 0..<k {
                    dst[o * k + c] = packedWeight[g * per + Conv2dOperator.pointwisePanelIndex(out: ol, in: c, inChannels: k)]
                }
            }
            return dst
        }
        for o in 0..<p.outChannels {
            let g = o / coutG, ol = o - g * coutG
            for c in 0..<cinG {
                for a in 0..<kH {
                    for b in 0..<kW {
                        dst[((o * cinG + c) * kH + a) * kW + b] = packedWeight[((g * kH + a) * coutG + ol) * kp + c * kW + b]
                    }
                }
            }
        }
        return dst
    }

    static func allocateCopy(_ t: Tensor) -> UnsafeMutablePointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, t.count) * MemoryLayout<Float>.stride, alignment: 64)
        let p = raw.bindMemory(to: Float.self, capacity: max(1, t.count))
        t.withUnsafeBufferPointer { src in
            if let base = src.baseAddress, src.count > 0 { p.initialize(from: base, count: src.count) }
        }
        return p
    }

    /// Rows of the column matrix for one group: `C_in/groups * kH * kW` (the GEMM's K).
    var gemmK: Int { parameters.inChannelsPerGroup * parameters.kernelH * parameters.kernelW }

    /// Output pixels per im2col tile for an output plane of `outPixels` pixels.
    func tilePixels(outPixels: Int) -> Int {
        let k = max(1, gemmK)
        let bound = max(1, Conv2dOperator.im2colBound)
        let target = min(bound, max(1, Conv2dOperator.im2colTarget))
        var tile = max(1, target / k)
        // Keep the GEMM's N large unless the hard bound says otherwise.
        tile = max(tile, min(Conv2dOperator.minTileColumns, bound / k))
        tile = max(1, min(tile, outPixels))
        // Balance the tiles so the last one is not a sliver.
        let tiles = (outPixels + tile - 1) / tile
        return (outPixels + tiles - 1) / tiles
    }

    /// Floats of scratch one `forward` needs for an input of `batch x C_in x height x width`:
    /// the column tile (at most `max(im2colBound, K)` floats), 0 for the 1x1 and depthwise kernels.
    public func workspaceCount(batch: Int, height: Int, width: Int) -> Int {
        let o = parameters.outputSize(height: height, width: width)
        let px = o.height * o.width
        if px <= 0 { return 0 }
        switch path {
        case .pointwise, .depthwise, .direct: return 0   // direct: scratch per work item (its fallback allocates its own)
        case .rowShift:
            if let plan = rowShiftPlan, let rows = plan.tileRows(outH: o.height, outW: o.width) {
                return plan.columnFloats(rows: rows, outW: o.width)
            }
            return gemmK * tilePixels(outPixels: px)
        case .im2col:
            return gemmK * tilePixels(outPixels: px)
        case .winograd:
            return WinogradConv.workspaceCount(parameters, outH: o.height, outW: o.width)
        }
    }

    /// Output shape `[batch, C_out, H_out, W_out]` for an input of `height x width`.
    public func outputShape(batch: Int, height: Int, width: Int) -> [Int] {
        let o = parameters.outputSize(height: height, width: width)
        return [batch, parameters.outChannels, o.height, o.width]
    }

    /// Multiply-adds times two for one forward: `2 * N * C_out * H_out * W_out * (C_in/groups) * kH * kW`.
    public func flops(batch: Int, height: Int, width: Int) -> Double {
        let o = parameters.outputSize(height: height, width: width)
        return 2 * Double(batch) * Double(parameters.outChannels) * Double(o.height * o.width) * Double(gemmK)
    }

    /// Runs the convolution.
    /// - Parameters:
    ///   - input: `[batch, C_in, height, width]`, NCHW contiguous.
    ///   - output: `[batch, C_out, H_out, W_out]` (see `outputShape`); fully overwritten.
    ///   - workspace: at least `workspaceCount(batch:height:width:)` floats, or nil to let the
    ///     call allocate it.
    /// The caller guarantees the sizes (`H_out`, `W_out` > 0); `checkedCall` validates a tensor first.
    public func forward(input: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
                        output: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>?) {
        let p = parameters
        let g = ConvGeometry(p, height: height, width: width)
        if g.outH <= 0 || g.outW <= 0 || batch <= 0 { return }
        switch path {
        case .depthwise:
            DepthwiseConv.forward(input: input, batch: batch, channels: p.inChannels, multiplier: p.outChannels / p.inChannels,
                                  geometry: g, weight: packedWeight, bias: packedBias, activation: p.activation, output: output)
        case .pointwise:
            if pointwisePanels && KernelDispatch.avx512 {
                forwardPointwisePanels(input: input, batch: batch, g: g, output: output)
            } else if pointwisePanels {
                let w = standardWeights()
                defer { w.deallocate() }
                forwardPointwise(input: input, batch: batch, g: g, weight: w, output: output)
            } else {
                forwardPointwise(input: input, batch: batch, g: g, weight: packedWeight, output: output)
            }
        case .winograd:
            let need = workspaceCount(batch: batch, height: height, width: width)
            let owned = workspace == nil ? UnsafeMutablePointer<Float>.allocate(capacity: max(1, need)) : nil
            defer { owned?.deallocate() }
            guard let ws = workspace ?? owned else { return }
            WinogradConv.forward(p, g: g, batch: batch, input: input, u: packedWeight, bias: packedBias.map { UnsafePointer($0) },
                                 output: output, workspace: ws)
        case .direct where KernelDispatch.avx512:
            forwardDirect(input: input, batch: batch, g: g, output: output)
        case .im2col, .rowShift, .direct:
            // The direct path's fallback (vector kernels switched off, tests) takes its own columns: the direct path
            // asks for no workspace.
            let need = path == .direct ? gemmK * tilePixels(outPixels: g.outPixels)
                                       : workspaceCount(batch: batch, height: height, width: width)
            let given = path == .direct ? nil : workspace
            let owned = given == nil ? UnsafeMutablePointer<Float>.allocate(capacity: max(1, need)) : nil
            defer { owned?.deallocate() }
            guard let col = given ?? owned else { return }
            if path == .rowShift, let plan = rowShiftPlan, let rows = plan.tileRows(outH: g.outH, outW: g.outW) {
                forwardRowShift(input: input, batch: batch, g: g, plan: plan, tileRows: rows, output: output, col: col)
            } else if path == .rowShift || path == .direct {
                let w = standardWeights()
                defer { w.deallocate() }
                forwardIm2col(input: input, batch: batch, g: g, weight: w, output: output, col: col)
            } else {
                forwardIm2col(input: input, batch: batch, g: g, weight: packedWeight, output: output, col: col)
            }
        }
    }

    /// 1x1 stride-1 unpadded: the input planes are the GEMM's B directly. The bias is written
    /// into the output first and the GEMM accumulates onto it; with an activation the pixels are
    /// split into column tiles so that each tile's activation runs while it is still in cache.
    private func forwardPointwise(input: UnsafePointer<Float>, batch: Int, g: ConvGeometry, weight: UnsafePointer<Float>,
                                  output: UnsafeMutablePointer<Float>) {
        let p = parameters
        let cinG = p.inChannelsPerGroup, coutG = p.outChannelsPerGroup
        let hw = g.inPixels
        let biasPtr = packedBias.map { UnsafePointer($0) }
        var tile = hw
        if p.activation != .none {
            tile = max(Conv2dOperator.minTileColumns, (Conv2dOperator.im2colTarget / 2) / max(1, p.outChannels))
            tile = max(1, min(tile, hw))
            let tiles = (hw + tile - 1) / tile
            tile = (hw + tiles - 1) / tiles
        }
        for n in 0..<batch {
            var p0 = 0
            while p0 < hw {
                let cnt = min(tile, hw - p0)
                if let b = biasPtr {
                    BiasPrefill(output: output + n * p.outChannels * hw, channels: p.outChannels, planeStride: hw,
                                offset: p0, count: cnt, bias: b).fillAll()
                }
                for grp in 0..<p.groups {
                    let x = input + (n * p.inChannels + grp * cinG) * hw + p0
                    let y = output + (n * p.outChannels + grp * coutG) * hw + p0
                    BLAS.sgemm(m: coutG, n: cnt, k: cinG, a: weight + grp * coutG * cinG, lda: cinG,
                               b: x, ldb: hw, beta: biasPtr == nil ? 0 : 1, c: y, ldc: hw)
                }
                ConvEpilogue.apply(output: output + n * p.outChannels * hw, channels: p.outChannels, planeStride: hw,
                                   offset: p0, count: cnt, bias: nil, activation: p.activation)
                p0 += cnt
            }
        }
    }

    /// False keeps new operators off the direct path (tests of the row-shift and im2col paths).
    nonisolated(unsafe) static var allowDirect = true

    /// Whether a convolution that is neither depthwise, 1x1 nor Winograd runs on the direct kernel
    /// (`dk_conv_direct`): the CPU has AVX-512 and the convolution is strided (stems, downsampling; stride-1
    /// convolutions stay on the row-shift GEMMs), with one item's gathered columns (`C_in/g * kH * kW * 32` floats)
    /// within L2 and `C_in/g * C_out/g * 4` bytes within `pointwisePanelBound` (the 1x1 path's bound; larger ones stay on
    /// the GEMMs).
    static func directApplies(_ p: Conv2dParameters) -> Bool {
        allowDirect && dk_has_avx512() != 0 && (p.strideH > 1 || p.strideW > 1)
            && p.inChannelsPerGroup * p.kernelH * p.kernelW * 32 * 4 <= 512 * 1024
            && p.inChannelsPerGroup * p.outChannelsPerGroup * 4 <= pointwisePanelBound
    }

    /// The direct path: each work item (`PointwiseCut`) gathers its blocks' columns into scratch and runs its
    /// 14-channel weight panels over them from the bias (`dk_conv_direct`).
    private func forwardDirect(input: UnsafePointer<Float>, batch: Int, g: ConvGeometry, output: UnsafeMutablePointer<Float>) {
        let k = parameters.inChannelsPerGroup * parameters.kernelH * parameters.kernelW
        let relu: Int32 = parameters.activation == .relu ? 1 : 0
        forEachPanelItem(input: input, batch: batch, inPixels: g.inPixels, outPixels: g.outPixels, inputsPerOutput: k,
                         output: output) { x, w, b, y, channels, q0, q1 in
            let xpack = UnsafeMutableRawPointer.allocate(byteCount: k * 32 * MemoryLayout<Float>.stride, alignment: 64)
                .bindMemory(to: Float.self, capacity: k * 32)
            defer { xpack.deallocate() }
            _ = dk_conv_direct(x, parameters.inChannelsPerGroup, g.height, g.width, w, channels, b, relu, y, g.outH, g.outW,
                               g.kernelH, g.kernelW, g.strideH, g.strideW, g.dilationH, g.dilationW, g.padTop, g.padLeft,
                               q0, q1, xpack)
        }
    }

    /// Runs the 14-channel-panel kernels' work items (`PointwiseCut`) on whichever thread is free: `run(x, weights,
    /// bias, y, channels, p0, p1)` gets the item's input plane group, its run of weight panels and bias, its output
    /// channels' planes, and its output pixels `[p0, p1)`; the kernel fuses ReLU, other activations run here on the
    /// item's pixels right after, in cache.
    private func forEachPanelItem(input: UnsafePointer<Float>, batch: Int, inPixels: Int, outPixels: Int, inputsPerOutput k: Int,
                                  output: UnsafeMutablePointer<Float>,
                                  _ run: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>?,
                                          UnsafeMutablePointer<Float>, Int, Int, Int) -> Void) {
        let p = parameters
        let cinG = p.inChannelsPerGroup, coutG = p.outChannelsPerGroup, groups = p.groups
        let cut = PointwiseCut(pixels: outPixels, outChannels: coutG, planes: batch * groups)
        let panelFloats = dk_pointwise_panel_floats(coutG, k)
        let weight = UnsafePointer(packedWeight), bias = packedBias.map { UnsafePointer($0) }
        Conv2dOperator.runPanelItems(cut, outPixels: outPixels, activation: p.activation) { plane, p0, p1, o0, channels in
            let grp = plane % groups, n = plane / groups
            let y = output + (n * p.outChannels + grp * coutG + o0) * outPixels
            run(input + (n * p.inChannels + grp * cinG) * inPixels, weight + grp * panelFloats + o0 * k,
                bias.map { $0 + grp * coutG + o0 }, y, channels, p0, p1)
            return y
        }
    }

    /// Runs `cut`'s work items on whichever thread is free (`Threading.dynamicFor`): `run(plane, p0, p1, o0,
    /// channels)` computes one item (from the bias, ReLU fused) and returns the output row of its first channel
    /// (rows `outPixels` apart); any other `activation` then runs on the item's pixels `[p0, p1)` of each of its
    /// channels, in cache. Shared by the 1x1 and direct paths and `KMaXPointwise`.
    static func runPanelItems(_ cut: PointwiseCut, outPixels: Int, activation act: Activation,
                              _ run: (_ plane: Int, _ p0: Int, _ p1: Int, _ o0: Int, _ channels: Int) -> UnsafeMutablePointer<Float>) {
        Threading.dynamicFor(cut.count) { i in
            let (plane, p0, p1, o0, channels) = cut.item(i)
            let y = run(plane, p0, p1, o0, channels)
            if act != .none && act != .relu {
                for o in 0..<channels { ConvEpilogue.applyPlane(y + o * outPixels + p0, count: p1 - p0, bias: 0, activation: act) }
            }
        }
    }

    /// How the 1x1 and direct kernels' work on `planes` planes (images x groups) of `pixels` output pixels and
    /// `outChannels` outputs is cut into work items: per plane, `pixelItems` runs of up to `blocksPerItem` blocks of 32
    /// pixels, each times `runs` runs of `runChannels` output channels (whole 14-channel panels; one run unless the
    /// pixels give fewer than `Threading.minItems` items). Fixed by the sizes alone, never the thread count.
    struct PointwiseCut {
        let pixels: Int, outChannels: Int, planes: Int
        let blocksPerItem: Int, pixelItems: Int, runChannels: Int, runs: Int

        init(pixels: Int, outChannels: Int, planes: Int) {
            self.pixels = pixels
            self.outChannels = outChannels
            self.planes = planes
            let blocks = (pixels + 31) / 32
            blocksPerItem = max(1, min(16, blocks / 8))
            pixelItems = (blocks + blocksPerItem - 1) / blocksPerItem
            runChannels = Threading.panelsPerRun(panels: (outChannels + 13) / 14, items: planes * pixelItems) * 14
            runs = (outChannels + runChannels - 1) / runChannels
        }

        /// Number of work items.
        var count: Int { planes * pixelItems * runs }

        /// Work item `i` (`0..<count`): its plane, pixels `[p0, p1)` and output channels `[o0, o0 + channels)`.
        func item(_ i: Int) -> (plane: Int, p0: Int, p1: Int, o0: Int, channels: Int) {
            let run = i % runs, rest = i / runs
            let p0 = (rest % pixelItems) * blocksPerItem * 32, o0 = run * runChannels
            return (rest / pixelItems, p0, min(pixels, p0 + blocksPerItem * 32), o0, min(runChannels, outChannels - o0))
        }
    }

    /// 1x1 stride-1 unpadded on the weight panels (`dk_pointwise_conv`): work items of up to 16 blocks of 32
    /// pixels of one image and group (and, when a small image gives fewer than `Threading.minItems` items,
    /// runs of whole 14-channel panels; `PointwiseCut`), each computed from the bias, taken by whichever thread is
    /// free. The cut depends on the sizes only.
    private func forwardPointwisePanels(input: UnsafePointer<Float>, batch: Int, g: ConvGeometry,
                                        output: UnsafeMutablePointer<Float>) {
        let cinG = parameters.inChannelsPerGroup, hw = g.inPixels, relu = parameters.activation == .relu
        forEachPanelItem(input: input, batch: batch, inPixels: hw, outPixels: hw, inputsPerOutput: cinG,
                         output: output) { x, w, b, y, channels, p0, p1 in
            Conv2dOperator.pointwiseItem(x: x, hw: hw, cin: cinG, panels: w, cout: channels, bias: b, relu: relu,
                                         y: y, p0: p0, p1: p1)
        }
    }

    /// im2col + GEMM, tiled over output pixels.
    private func forwardIm2col(input: UnsafePointer<Float>, batch: Int, g: ConvGeometry, weight: UnsafePointer<Float>,
                               output: UnsafeMutablePointer<Float>, col: UnsafeMutablePointer<Float>) {
        let p = parameters
        let cinG = p.inChannelsPerGroup, coutG = p.outChannelsPerGroup
        let k = gemmK
        let px = g.outPixels
        let tile = tilePixels(outPixels: px)
        let biasPtr = packedBias.map { UnsafePointer($0) }
        for n in 0..<batch {
            var p0 = 0
            while p0 < px {
                let cnt = min(tile, px - p0)
                for grp in 0..<p.groups {
                    let x = input + (n * p.inChannels + grp * cinG) * g.inPixels
                    let y = output + (n * p.outChannels + grp * coutG) * px + p0
                    let prefill = biasPtr.map {
                        BiasPrefill(output: y, channels: coutG, planeStride: px, offset: 0, count: cnt, bias: $0 + grp * coutG)
                    }
                    Im2col.fill(input: x, channels: cinG, geometry: g, pixel0: p0, count: cnt, col: col, prefill: prefill)
                    BLAS.sgemm(m: coutG, n: cnt, k: k, a: weight + grp * coutG * k, lda: k,
                               b: col, ldb: cnt, beta: biasPtr == nil ? 0 : 1, c: y, ldc: px)
                }
                ConvEpilogue.apply(output: output + n * p.outChannels * px, channels: p.outChannels, planeStride: px,
                                   offset: p0, count: cnt, bias: nil, activation: p.activation)
                p0 += cnt
            }
        }
    }

    /// Convenience: runs the convolution on a `[N, C_in, H, W]` tensor and returns `[N, C_out, H_out, W_out]`.
    /// Allocates the output and the workspace.
    /// - Precondition: the input shape fits the parameters (use `checkedCall` for a throwing variant).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        do { return try checkedCall(x) } catch {
            preconditionFailure("\(error)")
        }
    }

    /// Runs the convolution on a `[N, C_in, H, W]` tensor, returning `[N, C_out, H_out, W_out]`.
    /// - Throws: `ConvError.shapeMismatch` when the input does not fit the parameters.
    public func checkedCall(_ x: Tensor) throws -> Tensor {
        let (n, h, w) = try parameters.checkInput(shape: x.shape)
        var y = Tensor(zeros: outputShape(batch: n, height: h, width: w))
        if n == 0 { return y }
        let need = workspaceCount(batch: n, height: h, width: w)
        let ws = UnsafeMutablePointer<Float>.allocate(capacity: max(1, need))
        defer { ws.deallocate() }
        x.withUnsafeBufferPointer { xb in
            y.withUnsafeMutableBufferPointer { yb in
                guard let xp = xb.baseAddress, let yp = yb.baseAddress else { return }
                forward(input: xp, batch: n, height: h, width: w, output: yp, workspace: ws)
            }
        }
        return y
    }
}
