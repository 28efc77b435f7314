import Foundation
import XCTest
@testable import DenseKit

/// Break-it checks of the work-item cuts: the panel GEMM's row blocks x column runs (`LinearOperator`), the 1x1 and
/// direct convolutions' pixel blocks x channel runs (`Conv2dOperator.PointwiseCut`, `forEachPanelItem`) and
/// `KMaXPointwise.channelMajor`. Every output value is checked against a float64 reference (outputs pre-filled with a
/// sentinel, so an unwritten value shows), the padding columns of strided rows must stay untouched, every activation
/// runs on each path, NaN inputs propagate, and 1, 2, 3 and 7 threads give the same bits.
final class WorkCutBreakTests: XCTestCase {
    override func tearDown() { KernelDispatch.allowVectorKernels = true; Threading.threads = 2 }

    static let sentinel: Float = 3.0e38
    static let threadCounts = [1, 2, 3, 7]

    /// Mismatches of `got` against `want` (NaN must match NaN; else within `tol * (1 + |want|)`).
    func mismatches(_ got: [Float], _ want: [Float], tol: Float) -> (count: Int, first: Int) {
        var bad = 0, first = -1
        for i in 0..<want.count {
            let ok = want[i].isNaN ? got[i].isNaN : (!got[i].isNaN && abs(got[i] - want[i]) <= tol * (1 + abs(want[i])))
            if !ok { bad += 1; if first < 0 { first = i } }
        }
        return (bad, first)
    }

    // MARK: - Linear

    func checkLinear(rows: Int, inF: Int, outF: Int, act: Activation, bias withBias: Bool, nanRow: Int?,
                     padded: Bool = true, rng: inout KAGenerator, reference: Bool = true) throws {
        let w = rng.tensor([outF, inF]), b = withBias ? rng.tensor([outF]) : nil
        let op = try LinearOperator(weight: w, bias: b, activation: act)
        let ldx = inF + (padded ? 2 : 0), ldy = outF + (padded ? 3 : 0)   // unpadded: the contiguous activation branch
        var x = (0..<max(1, rows * ldx)).map { _ in rng.next() }
        if let r = nanRow, r < rows { x[r * ldx + inF / 2] = .nan }
        let label = "rows \(rows) in \(inF) out \(outF) \(act) bias \(withBias) padded \(padded) nan \(nanRow.map(String.init) ?? "-")"
        func run() -> [Float] {
            var y = [Float](repeating: WorkCutBreakTests.sentinel, count: max(1, rows * ldy))
            x.withUnsafeBufferPointer { xb in y.withUnsafeMutableBufferPointer { yb in
                op.forward(input: xb.baseAddress!, rows: rows, inputStride: ldx, output: yb.baseAddress!, outputStride: ldy)
            } }
            var padding = 0
            for r in 0..<rows { for j in outF..<ldy where y[r * ldy + j].bitPattern != WorkCutBreakTests.sentinel.bitPattern { padding += 1 } }
            XCTAssertEqual(padding, 0, "\(label): padding columns written")
            return (0..<rows * outF).map { y[($0 / outF) * ldy + $0 % outF] }
        }
        Threading.threads = 2
        let two = run()
        if reference {
            var want = [Float](repeating: 0, count: rows * outF)
            let ws = w.scalars
            for r in 0..<rows { for j in 0..<outF {
                var s = Double(b?[j] ?? 0)
                for i in 0..<inF { s += Double(x[r * ldx + i]) * Double(ws[j * inF + i]) }
                want[r * outF + j] = act.apply(Float(s))
            } }
            let m = mismatches(two, want, tol: inF > 100 ? 1e-4 : 2e-5)
            XCTAssertEqual(m.count, 0, "\(label): first at \(m.first): \(m.first >= 0 ? "\(two[m.first]) vs \(want[m.first])" : "")")
        } else {
            KernelDispatch.allowVectorKernels = false
            let blas = run()
            KernelDispatch.allowVectorKernels = true
            let m = mismatches(two, blas, tol: 1e-4)
            XCTAssertEqual(m.count, 0, "\(label) vs BLAS: first at \(m.first)")
        }
        for t in WorkCutBreakTests.threadCounts where t != 2 {
            Threading.threads = t
            XCTAssertEqual(run().map(\.bitPattern), two.map(\.bitPattern), "\(label): \(t) vs 2 threads")
        }
    }

    /// Row counts around the 56-row block and the 14-row tile, out features around the 32-column panel (1000: many
    /// panels, column runs of several panels), in features 1/5/1536, every activation, with and without bias, NaN rows.
    func testLinearColumnRunsEdges() throws {
        guard KernelDispatch.avx512 else { throw XCTSkip("panel GEMM needs AVX-512") }
        var rng = KAGenerator(seed: 1301)
        let acts = Activation.allCases
        var i = 0
        for rows in [0, 1, 13, 14, 15, 55, 56, 57, 447, 448, 449] {
            for outF in [1, 31, 32, 33, 65, 1000] {
                for inF in [1, 5] {
                    i += 1
                    try checkLinear(rows: rows, inF: inF, outF: outF, act: acts[i % acts.count], bias: i % 3 != 0,
                                    nanRow: i % 4 == 0 ? rows / 2 : nil, padded: (i / 2) % 2 == 0, rng: &rng)
                }
            }
        }
        for (rows, outF) in [(1, 1000), (15, 65), (57, 33), (113, 97)] {
            i += 1
            try checkLinear(rows: rows, inF: 1536, outF: outF, act: acts[i % acts.count], bias: true, nanRow: rows > 1 ? 1 : nil, rng: &rng)
        }
        try checkLinear(rows: 449, inF: 1536, outF: 1000, act: .gelu, bias: true, nanRow: 400, rng: &rng, reference: false)
    }

    /// Every activation on one column-run-cut shape (3 row blocks x 6 column runs of 32 columns, last one partial).
    func testLinearEveryActivationOnColumnRuns() throws {
        guard KernelDispatch.avx512 else { throw XCTSkip("panel GEMM needs AVX-512") }
        var rng = KAGenerator(seed: 1303)
        for act in Activation.allCases {
            for padded in [false, true] {
                try checkLinear(rows: 150, inF: 9, outF: 175, act: act, bias: true, nanRow: 149, padded: padded, rng: &rng)
            }
        }
    }

    // MARK: - Convolutions (1x1 and direct)

    func checkConv(_ p: Conv2dParameters, batch: Int, h: Int, w wd: Int, expect: Conv2dOperator.Path, nan: Bool,
                   rng: inout KAGenerator, file: StaticString = #filePath, line: UInt = #line) throws {
        let w = rng.tensor([p.outChannels, p.inChannelsPerGroup, p.kernelH, p.kernelW])
        let bias = rng.next() > -0.5 ? rng.tensor([p.outChannels]) : nil
        let op = try Conv2dOperator(p, weight: w, bias: bias)
        XCTAssertEqual(op.path, expect, "\(p)", file: file, line: line)
        var xs = rng.tensor([batch, p.inChannels, h, wd]).scalars
        if nan { xs[xs.count / 2] = .nan }
        let x = Tensor(shape: [batch, p.inChannels, h, wd], values: xs)
        let want = referenceConv2d(x, w, bias, p).scalars
        let need = op.workspaceCount(batch: batch, height: h, width: wd)
        let label = "\(p) batch \(batch) \(h)x\(wd) bias \(bias != nil) nan \(nan)"
        func run() -> [Float] {
            var y = [Float](repeating: WorkCutBreakTests.sentinel, count: want.count)
            let ws = UnsafeMutablePointer<Float>.allocate(capacity: max(1, need))
            defer { ws.deallocate() }
            xs.withUnsafeBufferPointer { xb in y.withUnsafeMutableBufferPointer { yb in
                op.forward(input: xb.baseAddress!, batch: batch, height: h, width: wd, output: yb.baseAddress!, workspace: ws)
            } }
            return y
        }
        Threading.threads = 2
        let two = run()
        let m = mismatches(two, want, tol: 2e-5)
        XCTAssertEqual(m.count, 0, "\(label): \(m.count) wrong, first at \(m.first): \(m.first >= 0 ? "\(two[m.first]) vs \(want[m.first])" : "")",
                       file: file, line: line)
        for t in WorkCutBreakTests.threadCounts where t != 2 {
            Threading.threads = t
            XCTAssertEqual(run().map(\.bitPattern), two.map(\.bitPattern), "\(label): \(t) vs 2 threads", file: file, line: line)
        }
    }

    /// 1x1 convolutions with few pixels (so the channel runs cut in) and channel counts around the 14-channel panel,
    /// groups, batch 2, every activation, NaN inputs.
    func testPointwiseChannelRunsEdges() throws {
        guard KernelDispatch.avx512 else { throw XCTSkip("1x1 panels need AVX-512") }
        var rng = KAGenerator(seed: 1307)
        let acts = Activation.allCases
        var i = 0
        for (h, wd) in [(1, 1), (1, 13), (3, 5), (4, 8), (5, 7), (8, 8), (1, 64)] {
            for cout in [1, 13, 14, 15, 29, 200, 1000] {
                for (cin, groups, batch) in [(1, 1, 1), (13, 1, 2), (30, 2, 1)] where cout % groups == 0 {
                    i += 1
                    let p = Conv2dParameters(inChannels: cin, outChannels: cout, kernelH: 1, kernelW: 1, groups: groups,
                                             activation: acts[i % acts.count])
                    try checkConv(p, batch: batch, h: h, w: wd, expect: .pointwise, nan: i % 5 == 0, rng: &rng)
                }
            }
        }
        // groups > 1 with per-group channels around the panel; many channels, few pixels
        for (cin, cout, groups, h, wd) in [(28, 58, 2, 3, 3), (45, 45, 3, 2, 7), (8, 1000, 4, 1, 3), (200, 200, 1, 2, 2)] {
            for act in [Activation.gelu, .hardSwish] {
                let p = Conv2dParameters(inChannels: cin, outChannels: cout, kernelH: 1, kernelW: 1, groups: groups, activation: act)
                try checkConv(p, batch: 2, h: h, w: wd, expect: .pointwise, nan: true, rng: &rng)
            }
        }
    }

    /// Strided convolutions with tiny outputs (1..12 pixels) and many output channels on the direct kernel: channel
    /// runs, groups, batch 2, every activation, NaN inputs.
    func testDirectChannelRunsEdges() throws {
        guard KernelDispatch.avx512 else { throw XCTSkip("direct kernel needs AVX-512") }
        var rng = KAGenerator(seed: 1311)
        let acts = Activation.allCases
        var i = 0
        for (h, wd, k, s, pad) in [(2, 2, 3, 2, 1), (3, 7, 3, 2, 0), (5, 5, 3, 2, 1), (4, 9, 2, 2, 0), (7, 3, 1, 3, 0), (1, 1, 3, 2, 1)] {
            for cout in [1, 13, 14, 15, 29, 200, 1000] {
                for (cin, groups, batch) in [(3, 1, 1), (4, 2, 2)] where cout % groups == 0 {
                    i += 1
                    let p = Conv2dParameters(inChannels: cin, outChannels: cout, kernelH: k, kernelW: k, strideH: s, strideW: s,
                                             padH: pad, padW: pad, groups: groups, activation: acts[i % acts.count])
                    try checkConv(p, batch: batch, h: h, w: wd, expect: .direct, nan: i % 4 == 0, rng: &rng)
                }
            }
        }
    }

    /// Every activation on the 1x1 and the direct path at one channel-run-cut shape each.
    func testConvEveryActivationOnChannelRuns() throws {
        guard KernelDispatch.avx512 else { throw XCTSkip("needs AVX-512") }
        var rng = KAGenerator(seed: 1313)
        for act in Activation.allCases {
            let pw = Conv2dParameters(inChannels: 6, outChannels: 71, kernelH: 1, kernelW: 1, activation: act)
            try checkConv(pw, batch: 1, h: 5, w: 9, expect: .pointwise, nan: true, rng: &rng)
            let d = Conv2dParameters(inChannels: 5, outChannels: 71, kernelH: 3, kernelW: 3, strideH: 2, strideW: 2, padH: 1, padW: 1,
                                     activation: act)
            try checkConv(d, batch: 1, h: 9, w: 11, expect: .direct, nan: true, rng: &rng)
        }
    }

    // MARK: - kMaX 1x1

    /// `KMaXPointwise.channelMajor` with few pixels and channel counts around the panel, every activation.
    func testKMaXChannelMajorChannelRuns() {
        guard KernelDispatch.avx512 else { return }
        var rng = KAGenerator(seed: 1317)
        let acts = Activation.allCases
        var i = 0
        for n in [1, 2, 13, 31, 32, 33, 64] {
            for cout in [1, 13, 14, 15, 29, 200, 1000] {
                for cin in [1, 15] {
                    i += 1
                    let act = acts[i % acts.count]
                    let w = (0..<(cin * cout)).map { _ in rng.next() }, b = (0..<cout).map { _ in rng.next() }
                    let conv = KMaXPointwise(cin: cin, cout: cout, weight: w, bias: b, activation: act)
                    XCTAssertFalse(conv.panels.isEmpty)
                    var x = (0..<(cin * n)).map { _ in rng.next() }
                    if i % 3 == 0 { x[x.count / 2] = .nan }
                    var want = [Float](repeating: 0, count: cout * n)
                    for o in 0..<cout { for p in 0..<n {
                        var s = Double(b[o])
                        for c in 0..<cin { s += Double(w[o * cin + c]) * Double(x[c * n + p]) }
                        want[o * n + p] = act.apply(Float(s))
                    } }
                    // leave garbage in freed memory, so an unwritten value would likely show
                    for _ in 0..<2 { var junk = [Float](repeating: WorkCutBreakTests.sentinel, count: cout * n); junk[0] = 1; _ = junk }
                    Threading.threads = 2
                    let two = conv(x, n: n)
                    let m = mismatches(two, want, tol: 2e-5)
                    XCTAssertEqual(m.count, 0, "cin \(cin) cout \(cout) n \(n) \(act): first at \(m.first)")
                    for t in WorkCutBreakTests.threadCounts where t != 2 {
                        Threading.threads = t
                        XCTAssertEqual(conv(x, n: n).map(\.bitPattern), two.map(\.bitPattern), "cin \(cin) cout \(cout) n \(n) \(act): \(t) threads")
                    }
                }
            }
        }
    }

    // MARK: - The cut itself

    /// `PointwiseCut` covers every (plane, pixel, channel) exactly once with whole 14-channel panels per run, for
    /// sizes around every boundary.
    func testPointwiseCutCoversEverythingOnce() {
        for planes in [1, 2, 17] {
            for pixels in [1, 31, 32, 33, 255, 256, 257, 511, 512, 513, 4097, 16_385] {
                for outChannels in [1, 13, 14, 15, 28, 29, 200] {
                    let cut = Conv2dOperator.PointwiseCut(pixels: pixels, outChannels: outChannels, planes: planes)
                    var seen = [UInt8](repeating: 0, count: planes * pixels * outChannels)
                    var bad = 0
                    for i in 0..<cut.count {
                        let it = cut.item(i)
                        if it.o0 % 14 != 0 || it.channels < 1 || it.p0 % 32 != 0 || it.p1 <= it.p0 || it.plane >= planes { bad += 1; continue }
                        for o in it.o0..<(it.o0 + it.channels) { for q in it.p0..<it.p1 {
                            seen[(it.plane * outChannels + o) * pixels + q] &+= 1
                        } }
                    }
                    XCTAssertEqual(bad, 0, "planes \(planes) pixels \(pixels) out \(outChannels): malformed items")
                    XCTAssertTrue(seen.allSatisfy { $0 == 1 }, "planes \(planes) pixels \(pixels) out \(outChannels): not covered exactly once")
                }
            }
        }
    }
}
