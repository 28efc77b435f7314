import XCTest
@testable import DenseKit

/// The arena planner: no two live buffers overlap, dead buffers are reused, concatenations are written in place.
final class GraphMemoryPlanTests: XCTestCase {
    func testPlannerNeverOverlapsLiveBuffersAndIsAligned() {
        var rng = SeededRandom(seed: 7)
        for _ in 0..<50 {
            var reqs: [MemoryPlanner.Request] = []
            for _ in 0..<(5 + Int(rng.next() % 40)) {
                let a = Int(rng.next() % 30), len = Int(rng.next() % 8)
                reqs.append(.init(bytes: 1 + Int(rng.next() % 5000), first: a, last: a + len))
            }
            let (off, total) = MemoryPlanner.plan(reqs)
            for i in reqs.indices {
                XCTAssertEqual(off[i] % 64, 0)
                XCTAssertLessThanOrEqual(off[i] + reqs[i].bytes, total)
                for j in reqs.indices where j > i {
                    let live = reqs[i].first <= reqs[j].last && reqs[j].first <= reqs[i].last
                    guard live else { continue }
                    let disjoint = off[i] + reqs[i].bytes <= off[j] || off[j] + reqs[j].bytes <= off[i]
                    XCTAssertTrue(disjoint, "buffers \(i) and \(j) overlap")
                }
            }
            XCTAssertGreaterThanOrEqual(total, MemoryPlanner.peakLiveBytes(reqs))
        }
    }

    func testChainReusesMemory() throws {
        // x -> a -> b -> c -> d: at most two buffers live at a time.
        var b = GraphBuilder()
        var h = b.input("x")
        for k in 0..<6 { h = b.add("n\(k)", GraphTestAffine(1, Float(k)), inputs: [h]) }
        b.output("y", h)
        let plan = try b.build().plan(inputShapes: ["x": [1, 16, 32, 32]])
        let one = 16 * 32 * 32 * 4
        XCTAssertEqual(plan.memory.sumActivationBytes, 7 * one)
        XCTAssertEqual(plan.memory.plannedActivationBytes, 2 * one)
        let y = try plan.run(["x": Tensor(zeros: [1, 16, 32, 32])])["y"]
        XCTAssertEqual(y?.scalars.first, 15)
    }

    /// Concat of [x, a(x), b(a)] with producers written in place, checked against a plain computation,
    /// for batch 1 (contiguous slices) and batch 2 (strided samples).
    func testConcatInPlaceMatchesCopies() throws {
        for batch in [1, 2] {
            var b = GraphBuilder()
            let x = b.input("x")
            let a = b.add("a", GraphTestChannelMix(3), inputs: [x])
            let c = b.add("c", GraphTestAffine(2, 1), inputs: [a])
            let cat = b.add("cat", Concat(axis: 1), inputs: [x, a, c, a])   // `a` twice: second is copied
            let y = b.add("out", GraphTestAffine(1, 0.5), inputs: [cat])
            b.output("y", y)
            b.output("a", a)
            let g = try b.build()
            let xt = GraphTestData.tensor([batch, 2, 5, 7])
            let plan = try g.plan(inputShapes: ["x": xt.shape])
            XCTAssertEqual(plan.memory.aliasedValueCount, 3)   // x, a, c
            let out = try plan.run(["x": xt])
            // Reference, value by value, with tensors.
            let at = try GraphTestData.runSingle(GraphTestChannelMix(3), xt)
            let ct = try GraphTestData.runSingle(GraphTestAffine(2, 1), at)
            XCTAssertEqual(out["a"]?.scalars, at.scalars)
            let y0 = try XCTUnwrap(out["y"])
            XCTAssertEqual(y0.shape, [batch, 11, 5, 7])
            for n in 0..<batch {
                for ch in 0..<11 {
                    for i in 0..<5 { for j in 0..<7 {
                        let want: Float
                        switch ch {
                        case 0..<2: want = xt[n, ch, i, j]
                        case 2..<5: want = at[n, ch - 2, i, j]
                        case 5..<8: want = ct[n, ch - 5, i, j]
                        default: want = at[n, ch - 8, i, j]
                        }
                        XCTAssertEqual(y0[n, ch, i, j], want + 0.5)
                    } }
                }
            }
        }
    }

    func testNestedConcatenations() throws {
        var b = GraphBuilder()
        let x = b.input("x")
        let p = b.add("p", GraphTestAffine(2), inputs: [x])
        let q = b.add("q", GraphTestAffine(3), inputs: [x])
        let inner = b.add("inner", Concat(), inputs: [p, q])
        let r = b.add("r", GraphTestAffine(4), inputs: [x])
        let outer = b.add("outer", Concat(), inputs: [r, inner])
        b.output("y", outer)
        let xt = Tensor(shape: [2, 1, 1, 2], values: [1, 2, 3, 4])
        let plan = try b.build().plan(inputShapes: ["x": xt.shape])
        XCTAssertEqual(plan.memory.aliasedValueCount, 4)  // p, q, inner, r
        let y = try plan.run(["x": xt])["y"]
        XCTAssertEqual(y?.scalars, [4, 8, 2, 4, 3, 6, 12, 16, 6, 8, 9, 12])
    }
}

extension GraphTestData {
    /// Runs one layer on one tensor through a one-node graph without aliasing.
    static func runSingle(_ layer: any GraphLayer, _ x: Tensor) throws -> Tensor {
        var b = GraphBuilder()
        b.output("y", b.add("n", layer, inputs: [b.input("x")]))
        return try XCTUnwrap(try b.build().run(x)["y"])
    }
}
