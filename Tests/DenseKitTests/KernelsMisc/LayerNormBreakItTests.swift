import Foundation
import XCTest
@testable import DenseKit

/// Break-it probes of the AVX-512 layer norm (`dk_layernorm_rows` through `NormKernels.layerNorm` / `addLayerNorm`)
/// and of the in-place ViT blocks: every width 1...160 and a spread up to 1100, extreme magnitudes, denormals,
/// constant rows with eps 0, aliasing (y = x, residual = x), sentinels past the last row; and every ViT tap
/// recomputed from the taps before it (a tap that shared storage with a later in-place block would differ).
final class LayerNormBreakItTests: XCTestCase {
    override func tearDown() { KernelDispatch.allowVectorKernels = true }

    private var paths: [Bool] { KernelDispatch.avx512 ? [true, false] : [false] }

    private static let widths: [Int] = Array(1...160) + [191, 192, 193, 255, 256, 257, 383, 384, 385, 511, 512, 513,
                                                        767, 768, 769, 1023, 1024, 1025, 1099, 1100]

    /// float64 layer norm of one row (two-pass, one accumulator).
    private func reference(_ x: ArraySlice<Float>, _ w: [Float]?, _ b: [Float]?, eps: Double) -> [Double] {
        let n = Double(x.count)
        let mu = x.reduce(0.0) { $0 + Double($1) } / n
        let v = x.reduce(0.0) { $0 + (Double($1) - mu) * (Double($1) - mu) } / n
        let r = 1 / (v + eps).squareRoot()
        return x.indices.map { i in
            (Double(x[i]) - mu) * r * Double(w?[i - x.startIndex] ?? 1) + Double(b?[i - x.startIndex] ?? 0)
        }
    }

    /// Pointer-level layer norm / add-layer-norm into buffers with `pad` sentinels past the last row.
    private func run(_ x: [Float], residual: [Float]?, rows: Int, cols: Int, w: [Float]?, b: [Float]?, eps: Double,
                     inPlace: Bool, pad: Int = 19) -> (y: [Float], x: [Float]) {
        let sentinel = Float(bitPattern: 0x7FC0_1234)
        var xb = x + [Float](repeating: sentinel, count: pad)
        var yb = [Float](repeating: sentinel, count: rows * cols + pad)
        let rb = (residual ?? []) + [Float](repeating: sentinel, count: pad)
        xb.withUnsafeMutableBufferPointer { xp in yb.withUnsafeMutableBufferPointer { yp in rb.withUnsafeBufferPointer { rp in
            (w ?? []).withUnsafeBufferPointer { wp in (b ?? []).withUnsafeBufferPointer { bp in
                let out = inPlace ? xp.baseAddress! : yp.baseAddress!
                if residual != nil {
                    NormKernels.addLayerNorm(xp.baseAddress!, residual: rp.baseAddress!, rows: rows, cols: cols,
                                             weight: w == nil ? nil : wp.baseAddress, bias: b == nil ? nil : bp.baseAddress,
                                             eps: eps, out)
                } else {
                    NormKernels.layerNorm(xp.baseAddress!, rows: rows, cols: cols, weight: w == nil ? nil : wp.baseAddress,
                                          bias: b == nil ? nil : bp.baseAddress, eps: eps, out)
                }
            } }
        } } }
        let n = rows * cols
        for i in n..<(n + pad) {
            XCTAssertEqual(xb[i].bitPattern, sentinel.bitPattern, "x written past the end (cols \(cols))")
            XCTAssertEqual(yb[i].bitPattern, sentinel.bitPattern, "y written past the end (cols \(cols))")
        }
        return (inPlace ? Array(xb[0..<n]) : Array(yb[0..<n]), Array(xb[0..<n]))
    }

    func testEveryWidthAgainstFloat64AndSwiftRow() throws {
        var gen = KAGenerator(seed: 901)
        var checked = 0
        for (ci, cols) in Self.widths.enumerated() {
            let rows = 1 + ci % 3
            let x = (0..<(rows * cols)).map { _ in gen.next() * 3 + 0.5 }
            let res = (0..<(rows * cols)).map { _ in gen.next() }
            let w = (0..<cols).map { _ in gen.next() }, b = (0..<cols).map { _ in gen.next() }
            let hasW = ci % 4 < 2, hasB = ci % 2 == 0, withRes = ci % 3 != 1, inPlace = ci % 5 < 2
            let sum = withRes ? zip(x, res).map { $0 + $1 } : x
            var outs: [[Float]] = []
            for vector in paths {
                KernelDispatch.allowVectorKernels = vector
                let (y, xAfter) = run(x, residual: withRes ? res : nil, rows: rows, cols: cols, w: hasW ? w : nil,
                                      b: hasB ? b : nil, eps: 1e-6, inPlace: inPlace)
                if withRes && !inPlace { XCTAssertEqual(xAfter, sum, "x += residual bit for bit (cols \(cols))") }
                if !withRes && !inPlace { XCTAssertEqual(xAfter, x, "x untouched (cols \(cols))") }
                outs.append(y)
            }
            for r in 0..<rows {
                let ref = reference(sum[r * cols ..< (r + 1) * cols], hasW ? w : nil, hasB ? b : nil, eps: 1e-6)
                for out in outs {
                    for c in 0..<cols {
                        XCTAssertEqual(Double(out[r * cols + c]), ref[c], accuracy: 3e-6 * max(1, abs(ref[c])), "cols \(cols)")
                        checked += 1
                    }
                }
            }
            if outs.count == 2 {
                for (a, s) in zip(outs[0], outs[1]) {
                    XCTAssertEqual(a, s, accuracy: 1.2e-7 * max(1, abs(s)), "vector vs Swift, cols \(cols)")
                }
            }
        }
        XCTAssertGreaterThan(checked, 10_000)
    }

    func testResidualAliasingX() throws {
        var gen = KAGenerator(seed: 902)
        for cols in [1, 15, 16, 17, 33, 384, 385] {
            let x = (0..<(2 * cols)).map { _ in gen.next() }
            let twice = x.map { $0 + $0 }
            let expected = try NormKernels.layerNorm(Tensor(shape: [2, cols], values: twice), weight: nil, bias: nil, eps: 1e-5)
            for vector in paths {
                KernelDispatch.allowVectorKernels = vector
                var buf = x
                var y = [Float](repeating: 0, count: 2 * cols)
                buf.withUnsafeMutableBufferPointer { p in y.withUnsafeMutableBufferPointer { yp in
                    NormKernels.addLayerNorm(p.baseAddress!, residual: UnsafePointer(p.baseAddress!), rows: 2, cols: cols,
                                             weight: nil, bias: nil, eps: 1e-5, yp.baseAddress!)
                } }
                XCTAssertEqual(buf, twice, "cols \(cols) vector \(vector)")
                for (a, e) in zip(y, expected.scalars) { XCTAssertEqual(a, e, accuracy: 1.2e-7 * max(1, abs(e)), "cols \(cols)") }
            }
        }
    }

    func testExtremeMagnitudesDenormalsAndConstantRows() throws {
        var gen = KAGenerator(seed: 903)
        for cols in [1, 7, 16, 17, 31, 100, 385] {
            let cases: [(String, [Float], Double)] = [
                ("huge", (0..<cols).map { _ in gen.next() * 1e30 }, 1e-6),
                ("tiny", (0..<cols).map { _ in gen.next() * 1e-30 }, 0),
                ("denormal", (0..<cols).map { _ in gen.next() * Float.leastNormalMagnitude / 1000 }, 0),
                ("big mean", (0..<cols).map { _ in 1000 + gen.next() * 1e-3 }, 1e-12),
                ("constant eps 0", [Float](repeating: 3, count: cols), 0),
                ("constant", [Float](repeating: -7.25, count: cols), 1e-5),
                ("negative zero", [Float](repeating: -0.0, count: cols), 1e-5),
            ]
            for (name, x, eps) in cases {
                var outs: [[Float]] = []
                for vector in paths {
                    KernelDispatch.allowVectorKernels = vector
                    outs.append(run(x, residual: nil, rows: 1, cols: cols, w: nil, b: nil, eps: eps, inPlace: false).y)
                }
                let ref = reference(x[...], nil, nil, eps: eps)
                for out in outs {
                    for c in 0..<cols {
                        if ref[c].isNaN { XCTAssertTrue(out[c].isNaN, "\(name) cols \(cols)"); continue }
                        XCTAssertEqual(Double(out[c]), ref[c], accuracy: 3e-6 * max(1, abs(ref[c])), "\(name) cols \(cols)")
                    }
                }
                if outs.count == 2 {
                    XCTAssertEqual(outs[0].map(\.bitPattern), outs[1].map(\.bitPattern), "\(name) cols \(cols): vector vs Swift")
                }
            }
        }
    }

    /// Each ViT tap recomputed from the taps before it, outside the model: `clustered` from `feat_alpha`,
    /// `before_recon` from `clustered`, `y` / `cls` from `before_recon`; a tap sharing storage with the tokens a
    /// later in-place block mutates would not match. Also a block leaves a caller's copy of its input alone.
    func testViTTapsAreNotMutatedByLaterInPlaceBlocks() throws {
        let base = #"{"patch_size":16,"embed_dim":32,"depth":3,"num_heads":2,"mlp_ratio":4,"ln_eps":1e-6,"img_size":[64,96],"pos_embed_grid":[3,4]"#
        for (alpha, beta) in [(1, 2), (1, 3), (2, 3)] {
            let json = base + #","alpha":\#(alpha),"beta":\#(beta),"cluster_grid":[2,3],"window":3,"iters":2,"temperature":0.01,"recon_k":4,"recon_temperature":0.03}"#
            let c = try ViTConfig(json: try JSONValue.parse(json))
            let model = try ViT(config: c, weights: TokenClusterBenchTests.randomWeights(c, seed: 11 + UInt64(alpha * 3 + beta)))
            var g = TokenClusterBenchTests.Normal(state: 77)
            let image = Tensor(shape: [2, 3, 64, 96], values: (0..<(2 * 3 * 64 * 96)).map { _ in g.next() })
            let outs = try model.run(image)
            guard let cc = c.cluster, let fa = outs["feat_alpha"], let cl = outs["clustered"], let br = outs["before_recon"],
                  let y = outs["y"], let cls = outs["cls"] else { return XCTFail("missing outputs") }
            let gh = 4, gw = 6, n = gh * gw, m = cc.cellsH * cc.cellsW
            let clustering = try TokenClustering(grid: (gh, gw), cells: (cc.cellsH, cc.cellsW), window: cc.window,
                                                 iters: cc.iters, temperature: Float(cc.temperature), classToken: true)
            let recon = try TokenReconstruction(k: cc.reconK, temperature: Float(cc.reconTemperature), stabilized: cc.reconStabilized)
            XCTAssertEqual(try clustering(fa).centres.scalars, cl.scalars, "clustered (alpha \(alpha) beta \(beta))")
            var z = cl
            let keep = cl.scalars
            for i in alpha..<beta {
                let before = z, beforeScalars = z.scalars
                try model.blocks[i](&z)
                XCTAssertEqual(before.scalars, beforeScalars, "block \(i) wrote into a shared copy")
            }
            XCTAssertEqual(cl.scalars, keep, "the clustered tap changed under the blocks")
            if beta == c.depth { z = try NormKernels.layerNorm(z, weight: model.normW, bias: model.normB, eps: c.lnEps) }
            XCTAssertEqual(z.scalars, br.scalars, "before_recon (alpha \(alpha) beta \(beta))")
            let yr = try recon(feat: ViT.rows(fa, from: 1, count: n), centres: ViT.rows(cl, from: 1, count: m),
                               x: ViT.rows(br, from: 1, count: m)).y
            var x = ViT.withClass(br, yr)
            if beta < c.depth {
                for i in beta..<c.depth { try model.blocks[i](&x) }
                x = try NormKernels.layerNorm(x, weight: model.normW, bias: model.normB, eps: c.lnEps)
            }
            let fin = ViT.finish(x, gh: gh, gw: gw, into: [:])
            XCTAssertEqual(fin["y"]?.scalars, y.scalars, "y (alpha \(alpha) beta \(beta))")
            XCTAssertEqual(fin["cls"]?.scalars, cls.scalars, "cls (alpha \(alpha) beta \(beta))")
            // A second run gives the same outputs and leaves the first run's tensors alone.
            let snapshot = outs.mapValues(\.scalars)
            let again = try model.run(image)
            for (k, v) in outs {
                XCTAssertEqual(v.scalars, snapshot[k], "\(k) changed by a later run")
                XCTAssertEqual(again[k]?.scalars, snapshot[k], "\(k) differs between runs")
            }
        }
    }
}
