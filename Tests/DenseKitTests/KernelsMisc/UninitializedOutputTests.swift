import XCTest
@testable import DenseKit

/// Outputs allocated without zeroing (`Tensor(uninitialized:)`): every element must be written, nothing past the
/// end. Batch-n results against batch-1 runs, repeated runs, and the ViT transposes on NaN-prefilled buffers.
final class UninitializedOutputTests: XCTestCase {
    /// `ViT.embed` and `ViT.transposeOut` on buffers prefilled with NaN and followed by sentinels: every element
    /// written with the expected value, no write past the end (token and channel counts across the 32-wide tiles).
    func testViTEmbedAndTransposeWriteEveryElementAndNoMore() {
        let pad = 37, sentinel: Float = -12345
        for (b, n, c) in [(1, 1, 1), (2, 35, 40), (3, 64, 33), (2, 31, 65), (1, 0, 3), (2, 97, 7)] {
            let p = (0..<(b * c * n)).map { Float($0) * 0.5 + 1 }
            let cls = (0..<c).map { Float($0) - 100 }
            let pos = (0..<((1 + n) * c)).map { Float($0) * 0.25 }
            var x = [Float](repeating: .nan, count: b * (1 + n) * c) + [Float](repeating: sentinel, count: pad)
            x.withUnsafeMutableBufferPointer { xb in
                ViT.embed(p, cls: cls, pos: pos, batch: b, tokens: n, channels: c, xb.baseAddress!)
            }
            for bi in 0..<b {
                for k in 0..<c { XCTAssertEqual(x[bi * (1 + n) * c + k], cls[k] + pos[k], "embed cls \(b) \(n) \(c)") }
                for t in 0..<n { for k in 0..<c {
                    XCTAssertEqual(x[(bi * (1 + n) + 1 + t) * c + k], p[(bi * c + k) * n + t] + pos[(1 + t) * c + k], "embed \(b) \(n) \(c)")
                } }
            }
            XCTAssertEqual(Array(x[(b * (1 + n) * c)...]), [Float](repeating: sentinel, count: pad), "embed past the end \(b) \(n) \(c)")

            var y = [Float](repeating: .nan, count: b * c * n) + [Float](repeating: sentinel, count: pad)
            var cl = [Float](repeating: .nan, count: b * c) + [Float](repeating: sentinel, count: pad)
            let xs = Array(x[..<(b * (1 + n) * c)])
            y.withUnsafeMutableBufferPointer { yb in cl.withUnsafeMutableBufferPointer { cb in
                ViT.transposeOut(xs, batch: b, rows: 1 + n, tokens: n, channels: c, yb.baseAddress!, cb.baseAddress!)
            } }
            for bi in 0..<b {
                for k in 0..<c {
                    XCTAssertEqual(cl[bi * c + k], xs[bi * (1 + n) * c + k], "cls \(b) \(n) \(c)")
                    for t in 0..<n { XCTAssertEqual(y[(bi * c + k) * n + t], xs[(bi * (1 + n) + 1 + t) * c + k], "y \(b) \(n) \(c)") }
                }
            }
            XCTAssertEqual(Array(y[(b * c * n)...]), [Float](repeating: sentinel, count: pad), "y past the end \(b) \(n) \(c)")
            XCTAssertEqual(Array(cl[(b * c)...]), [Float](repeating: sentinel, count: pad), "cls past the end \(b) \(n) \(c)")
        }
    }

    /// A ViT (plain and clustered) whose token count (35) and width (40) are not multiples of the 32-wide tiles:
    /// every output of a batch-3 run equals the batch-1 runs of its images, and a second run the first.
    func testViTBatchThreeEqualsBatchOneRunsAndRepeats() throws {
        let base = #"{"patch_size":16,"embed_dim":40,"depth":2,"num_heads":2,"mlp_ratio":2,"ln_eps":1e-6,"img_size":[112,80],"pos_embed_grid":[7,5]"#
        for json in [base + "}", base + #","alpha":1,"beta":2,"cluster_grid":[2,2],"window":3,"iters":2,"temperature":0.01,"recon_k":3,"recon_temperature":0.03}"#] {
            let c = try ViTConfig(json: try JSONValue.parse(json))
            let model = try ViT(config: c, weights: TokenClusterBenchTests.randomWeights(c, seed: 5))
            let per = 3 * 112 * 80
            var g = TokenClusterBenchTests.Normal(state: 9)
            let all = (0..<(3 * per)).map { _ in g.next() }
            let outs = try model.run(Tensor(shape: [3, 3, 112, 80], values: all))
            XCTAssertEqual(outs["y"]?.shape, [3, 40, 7, 5])
            for i in 0..<3 {
                let one = try model.run(Tensor(shape: [1, 3, 112, 80], values: Array(all[(i * per)..<((i + 1) * per)])))
                for (k, v) in one {
                    let t = try XCTUnwrap(outs[k], k)
                    let m = v.count
                    XCTAssertEqual(t.count, 3 * m, k)
                    XCTAssertEqual(Array(t.scalars[(i * m)..<((i + 1) * m)]), v.scalars, "\(k) image \(i) (\(json.count))")
                }
            }
            let again = try model.run(Tensor(shape: [3, 3, 112, 80], values: all))
            for (k, v) in outs { XCTAssertEqual(again[k]?.scalars, v.scalars, "\(k) second run") }
            XCTAssertTrue(outs.values.allSatisfy { $0.scalars.allSatisfy(\.isFinite) })
        }
    }

    /// PolyMaX head at batch 2: every output (`PolyMaXHead.batched`) equals the batch-1 runs of its images, for
    /// both images; a second run gives the same bits.
    func testPolyMaXBatchTwoEqualsBatchOneRuns() throws {
        var c = PolyMaXHeadConfig()
        c.pixelDecoder.inChannels = [8, 16, 24, 32]
        c.pixelDecoder.decLayers = [1, 1, 1, 1]
        c.pixelDecoder.decChannels = [16, 16, 8, 8]
        c.numClusters = 6
        c.queryDim = 24
        c.transBaseFilters = 8
        c.ffnDim = 32
        c.predMidChannels = 16
        c.embedDim = 8
        c.numClasses = 5
        c.transDecLayers = [1, 1, 1]
        let head = try PolyMaXHead(config: c, weights: PolyMaXWeightLayout.randomWeights(config: c, seed: 4))
        func feat(_ ch: Int, _ h: Int, _ w: Int, _ seed: Int) -> Tensor {
            Tensor(shape: [2, ch, h, w]) { i in sinf(Float(i * 5 + seed)) }
        }
        let r = [feat(8, 17, 21, 1), feat(16, 9, 11, 2), feat(24, 5, 6, 3), feat(32, 3, 3, 4)]
        let o = try head.run(res2: r[0], res3: r[1], res4: r[2], res5: r[3])
        func fields(_ o: PolyMaXHeadOutput) -> [Tensor] {
            [o.maskLogits, o.classLogits, o.pixelEmbedding, o.clusterCenters, o.clusterEmbeddings]
        }
        func image(_ t: Tensor, _ i: Int) -> Tensor {
            let per = t.count / t.shape[0]
            return Tensor(shape: [1] + t.shape.dropFirst(), values: Array(t.scalars[(i * per)..<((i + 1) * per)]))
        }
        for i in 0..<2 {
            let one = try head.run(res2: image(r[0], i), res3: image(r[1], i), res4: image(r[2], i), res5: image(r[3], i))
            for (f, (full, single)) in zip(fields(o), fields(one)).enumerated() {
                XCTAssertEqual(full.shape, [2] + single.shape.dropFirst(), "field \(f)")
                XCTAssertEqual(image(full, i).scalars, single.scalars, "field \(f) image \(i)")
            }
            for (full, single) in zip(o.assignments, one.assignments) {
                let m = single.values.count
                XCTAssertEqual(Array(full.values[(i * m)..<((i + 1) * m)]), single.values, "assignments image \(i)")
            }
        }
        let again = try head.run(res2: r[0], res3: r[1], res4: r[2], res5: r[3])
        for (a, b) in zip(fields(o), fields(again)) { XCTAssertEqual(a.scalars, b.scalars) }
    }

    /// Graph outputs copied out of the arena into uninitialised tensors: an output that is the graph input, a
    /// concatenation (root of aliased slices), a strided slice of it and a plain value, at batch 3 and 0, two
    /// runs of one plan with different inputs (the second must not show the first's values).
    func testGraphOutputsInputsConcatAliasesAndRepeatedRuns() throws {
        var b = GraphBuilder()
        let x = b.input("x")
        let a = b.add("a", GraphTestChannelMix(3), inputs: [x])
        let c = b.add("c", GraphTestAffine(2, 1), inputs: [a])
        let cat = b.add("cat", Concat(axis: 1), inputs: [x, a, c])
        b.output("x", x)
        b.output("cat", cat)
        b.output("a", a)
        b.output("c", c)
        let g = try b.build()
        for batch in [3, 1] {
            let plan = try g.plan(inputShapes: ["x": [batch, 2, 5, 7]])
            for seed in [UInt64(1), 2] {
                let xt = GraphTestData.tensor([batch, 2, 5, 7], seed: seed)
                let out = try plan.run(["x": xt])
                let at = try GraphTestData.runSingle(GraphTestChannelMix(3), xt)
                let ct = try GraphTestData.runSingle(GraphTestAffine(2, 1), at)
                XCTAssertEqual(out["x"]?.scalars, xt.scalars)
                XCTAssertEqual(out["a"]?.scalars, at.scalars)
                XCTAssertEqual(out["c"]?.scalars, ct.scalars)
                let y = try XCTUnwrap(out["cat"])
                XCTAssertEqual(y.shape, [batch, 8, 5, 7])
                for n in 0..<batch { for ch in 0..<8 { for i in 0..<5 { for j in 0..<7 {
                    let want = ch < 2 ? xt[n, ch, i, j] : ch < 5 ? at[n, ch - 2, i, j] : ct[n, ch - 5, i, j]
                    XCTAssertEqual(y[n, ch, i, j], want, "batch \(batch) seed \(seed)")
                } } } }
            }
        }
    }

    /// `Tensor(shape:values:)` without zeroing: empty shapes and a 0-d tensor.
    func testTensorFromValuesEdgeShapes() {
        XCTAssertEqual(Tensor(shape: [0, 3], values: []).scalars, [])
        XCTAssertEqual(Tensor(shape: [], values: [4]).scalars, [4])
        XCTAssertEqual(Tensor(shape: [2, 0, 5], values: []).count, 0)
        XCTAssertEqual(Tensor(shape: [3], values: [1, 2, 3]).scalars, [1, 2, 3])
    }
}
