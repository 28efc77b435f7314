import CKernels

/// 3x3 stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms for
/// Convolutional Neural Networks", CVPR 2016): per 2x2 output block, `Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A`,
/// 16 multiplies instead of 36. The element-wise products over all channels become 16 GEMMs
/// `M[ξν] = U[ξν] · V[ξν]` (`[C_out, C_in] x [C_in, tiles]`): DenseKit's 1x1 kernel `dk_pointwise_conv` over
/// `U` packed once in 14-channel panels (work items of 32-tile blocks of one ξν, taken by whichever thread is
/// free) when one `U[ξν]` fits `Conv2dOperator.pointwisePanelBound`, else `BLAS.sgemm`; the input and output
/// transforms are AVX-512 kernels (`CKernels`), so this path exists only on CPUs that have it.
///
/// Weights are transformed once at load, in float64: `U[ξν][o][c] = (G g[o][c] G^T)[ξ][ν]`,
/// `G = [[1,0,0],[1/2,1/2,1/2],[1/2,-1/2,1/2],[0,0,1]]`. Tiles are processed in chunks so that the
/// transformed input and the products fit a workspace of about 4M floats whatever the image size.
/// Results differ from direct convolution by rounding only (a few ulp of the sums).
enum WinogradConv {
    /// Whether `p` can run here: groups 1, 3x3, stride 1, dilation 1, symmetric padding, at least 16 channels in
    /// and out (below that the transforms cost more than they save), AVX-512 present.
    static func applies(_ p: Conv2dParameters) -> Bool {
        KernelDispatch.avx512 && p.groups == 1 && p.kernelH == 3 && p.kernelW == 3 && p.strideH == 1 && p.strideW == 1
            && p.dilationH == 1 && p.dilationW == 1 && p.prePad.allSatisfy({ $0 == 0 }) && p.padH <= 2 && p.padW <= 2
            && p.inChannels >= 16 && p.outChannels >= 16
    }

    /// Whether the 16 products run on `dk_pointwise_conv` (one `U[ξν]` within the 1x1 kernel's weight bound).
    static func usesPanels(cout: Int, cin: Int) -> Bool {
        cout * cin * 4 <= Conv2dOperator.pointwisePanelBound
    }

    /// Floats of one `U[ξν]` as stored: 14-channel panels (`usesPanels`) or `[C_out, C_in]`.
    static func matrixFloats(cout: Int, cin: Int) -> Int {
        usesPanels(cout: cout, cin: cin) ? dk_pointwise_panel_floats(cout, cin) : cout * cin
    }

    /// `U` for the 16 products from PyTorch's `[C_out, C_in, 3, 3]` (freshly allocated, 64-byte aligned): per ξν,
    /// `[C_out, C_in]` row-major, or 14-output-channel panels `[(o/14)][c][o%14]` (zero past C_out) when
    /// `usesPanels`.
    static func transformWeights(_ w: Tensor, cout: Int, cin: Int) -> UnsafeMutablePointer<Float> {
        let per = matrixFloats(cout: cout, cin: cin), panels = usesPanels(cout: cout, cin: cin)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: 16 * per * 4, alignment: 64)
        let u = raw.bindMemory(to: Float.self, capacity: 16 * per)
        u.initialize(repeating: 0, count: 16 * per)
        let g: [[Double]] = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
        let s = w.scalars
        for o in 0..<cout {
            for c in 0..<cin {
                let k = (o * cin + c) * 9
                var gg = [[Double]](repeating: [0, 0, 0], count: 4)   // G g   [4][3]
                for i in 0..<4 { for j in 0..<3 { var a = 0.0; for t in 0..<3 { a += g[i][t] * Double(s[k + t * 3 + j]) }; gg[i][j] = a } }
                for i in 0..<4 {
                    for j in 0..<4 {
                        var a = 0.0
                        for t in 0..<3 { a += gg[i][t] * g[j][t] }
                        let base = (i * 4 + j) * per
                        u[base + (panels ? Conv2dOperator.pointwisePanelIndex(out: o, in: c, inChannels: cin) : o * cin + c)] = Float(a)
                    }
                }
            }
        }
        return u
    }

    /// Output tiles per chunk for these widths.
    static func chunkTiles(tiles: Int, cin: Int, cout: Int) -> Int {
        min(tiles, max(64, (1 << 22) / (16 * (cin + cout))))
    }

    /// Scratch floats for one forward: transformed input and products of one chunk.
    static func workspaceCount(_ p: Conv2dParameters, outH: Int, outW: Int) -> Int {
        let tiles = ((outH + 1) / 2) * ((outW + 1) / 2)
        return 16 * (p.inChannels + p.outChannels) * chunkTiles(tiles: tiles, cin: p.inChannels, cout: p.outChannels)
    }

    /// `M[k] = U[k] · V[k]` for the 16 ξν of one chunk of `tiles` tiles (`V[k]` `[C_in, tiles]`, `M[k]`
    /// `[C_out, tiles]`, both row-major).
    static func products(u: UnsafePointer<Float>, v: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
                         cin: Int, cout: Int, tiles: Int) {
        let per = matrixFloats(cout: cout, cin: cin)
        guard usesPanels(cout: cout, cin: cin) else {
            for k in 0..<16 {
                BLAS.sgemm(m: cout, n: tiles, k: cin, a: u + k * per, lda: cin,
                           b: v + k * cin * tiles, ldb: tiles, c: m + k * cout * tiles, ldc: tiles)
            }
            return
        }
        let blocks = (tiles + 31) / 32
        let perItem = max(1, min(16, blocks / 2))
        let itemsPerProduct = (blocks + perItem - 1) / perItem
        Threading.dynamicFor(16 * itemsPerProduct) { item in
            let k = item / itemsPerProduct, t0 = (item % itemsPerProduct) * perItem * 32
            Conv2dOperator.pointwiseItem(x: v + k * cin * tiles, hw: tiles, cin: cin, panels: u + k * per, cout: cout,
                                         bias: nil, relu: false, y: m + k * cout * tiles, p0: t0, p1: min(tiles, t0 + perItem * 32))
        }
    }

    /// Runs the convolution for `batch` images (see `Conv2dOperator.forward`); `workspace` holds
    /// `workspaceCount` floats. Bias and ReLU are fused into the output transform; other activations run after.
    static func forward(_ p: Conv2dParameters, g: ConvGeometry, batch: Int, input: UnsafePointer<Float>,
                        u: UnsafePointer<Float>, bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
                        workspace: UnsafeMutablePointer<Float>) {
        let cin = p.inChannels, cout = p.outChannels
        let th = (g.outH + 1) / 2, tw = (g.outW + 1) / 2, tiles = th * tw
        let chunk = chunkTiles(tiles: tiles, cin: cin, cout: cout)
        let relu: Int32 = p.activation == .relu ? 1 : 0
        for n in 0..<batch {
            let x = input + n * cin * g.inPixels
            let y = output + n * cout * g.outPixels
            var t0 = 0
            while t0 < tiles {
                let cnt = min(chunk, tiles - t0)
                let v = workspace, m = workspace + 16 * cin * cnt
                let cb = max(1, (cin + 15) / 16)
                Threading.parallelFor((cin + cb - 1) / cb) { part in
                    let c0 = part * cb
                    _ = dk_winograd_input(x, cin, g.height, g.width, g.padTop, g.padLeft, tw, t0, cnt, c0, min(cin, c0 + cb), v)
                }
                products(u: u, v: v, m: m, cin: cin, cout: cout, tiles: cnt)
                let ob = max(1, (cout + 15) / 16)
                Threading.parallelFor((cout + ob - 1) / ob) { part in
                    let o0 = part * ob
                    _ = dk_winograd_output(m, cout, tw, t0, cnt, o0, min(cout, o0 + ob), bias, relu, y, g.outH, g.outW)
                }
                t0 += cnt
            }
        }
        if p.activation != .none && p.activation != .relu {
            ConvEpilogue.apply(output: output, channels: batch * cout, planeStride: g.outPixels, offset: 0,
                               count: g.outPixels, bias: nil, activation: p.activation)
        }
    }
}
