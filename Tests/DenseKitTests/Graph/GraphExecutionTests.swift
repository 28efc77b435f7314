import XCTest
@testable import DenseKit

/// Running plans: concurrency on a shared plan, the profile, BN folding precision, layer maths.
final class GraphExecutionTests: XCTestCase {
    func convBlockGraph() throws -> Graph {
        var b = GraphBuilder()
        let x = b.input("x")
        let w1 = GraphTestData.tensor([8, 3, 3, 3], seed: 2)
        let p1 = Conv2dParameters(inChannels: 3, outChannels: 8, kernelH: 3, kernelW: 3, strideH: 2, strideW: 2, padH: 1, padW: 1, activation: .relu)
        let bn = try BatchNormParameters(gamma: GraphTestData.tensor([8], seed: 3), beta: GraphTestData.tensor([8], seed: 4),
                                         runningMean: GraphTestData.tensor([8], seed: 5),
                                         runningVar: Tensor(shape: [8]) { Float($0 + 1) * 0.3 }, eps: 1e-5)
        let c1 = b.add("conv1", try Conv2d(parameters: p1, weight: w1, bias: nil, batchNorm: bn), inputs: [x])
        let p2 = Conv2dParameters(inChannels: 8, outChannels: 8, kernelH: 3, kernelW: 3, padH: 1, padW: 1, groups: 8)
        let c2 = b.add("dw", try Conv2d(parameters: p2, weight: GraphTestData.tensor([8, 1, 3, 3], seed: 6), bias: nil), inputs: [c1])
        let cat = b.add("cat", Concat(), inputs: [c1, c2])
        let ese = b.add("ese", try EffectiveSE(fcWeight: GraphTestData.tensor([16, 16, 1, 1], seed: 8), fcBias: GraphTestData.tensor([16], seed: 9)), inputs: [cat])
        let pool = b.add("pool", try MaxPool2d(parameters: Pool2dParameters(kernelH: 3, kernelW: 3, strideH: 2, strideW: 2, ceilMode: true)), inputs: [ese])
        let gap = b.add("gap", GlobalAvgPool(), inputs: [pool])
        let fc = b.add("fc", try Linear(weight: GraphTestData.tensor([5, 16], seed: 10), bias: GraphTestData.tensor([5], seed: 11)), inputs: [gap])
        b.output("logits", fc)
        b.output("pool", pool)
        return try b.build()
    }

    func testSharedPlanServesConcurrentCalls() throws {
        let g = try convBlockGraph()
        let inputs = (0..<6).map { GraphTestData.tensor([1, 3, 21, 18], seed: UInt64(20 + $0)) }
        let want = try inputs.map { try g.run($0) }
        let plan = try g.plan(inputShapes: ["x": [1, 3, 21, 18]])
        var got = [[String: Tensor]?](repeating: nil, count: 24)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: 24) { i in
            let r = try? plan.run(["x": inputs[i % 6]])
            lock.lock(); got[i] = r; lock.unlock()
        }
        for i in 0..<24 {
            let r = try XCTUnwrap(got[i])
            XCTAssertEqual(r["logits"]?.scalars, want[i % 6]["logits"]?.scalars)
            XCTAssertEqual(r["pool"]?.scalars, want[i % 6]["pool"]?.scalars)
        }
        // A reused context gives the same results.
        let ctx = plan.makeContext()
        for k in 0..<6 { XCTAssertEqual(try plan.run(["x": inputs[k]], context: ctx)["logits"]?.scalars, want[k]["logits"]?.scalars) }
    }

    func testProfileReport() throws {
        let g = try convBlockGraph()
        let r = try g.profile(input: GraphTestData.tensor([1, 3, 21, 18]))
        XCTAssertEqual(r.entries.map { $0.node }, ["conv1", "dw", "cat", "ese", "pool", "gap", "fc"])
        XCTAssertEqual(r.entries[0].op, "conv2d")
        XCTAssertEqual(r.entries[1].op, "dwconv2d")
        XCTAssertEqual(r.entries[0].outputShape, [1, 8, 11, 9])
        XCTAssertEqual(r.entries[4].outputShape, [1, 16, 5, 4])
        XCTAssertEqual(r.entries[0].flops, 2 * 8 * 11 * 9 * 27)
        XCTAssertGreaterThan(r.totalMilliseconds, 0)
        XCTAssertLessThanOrEqual(r.memory.plannedActivationBytes, r.memory.sumActivationBytes)
        XCTAssertEqual(r.memory.aliasedValueCount, 2)
        let text = r.description
        XCTAssertTrue(text.contains("GFLOP/s") && text.contains("conv1") && text.contains("memory: planned activations"), text)
    }

    /// Folding in float64 stays within float32 rounding of the unfolded conv -> BN.
    func testBatchNormFoldingPrecision() throws {
        let cin = 6, cout = 5
        let w = GraphTestData.tensor([cout, cin, 3, 3], seed: 30)
        let gamma = GraphTestData.tensor([cout], seed: 31), beta = GraphTestData.tensor([cout], seed: 32)
        let mean = GraphTestData.tensor([cout], seed: 33)
        let varT = Tensor(shape: [cout]) { Float($0) * 0.25 + 0.01 }
        let eps = 1e-3
        let bn = try BatchNormParameters(gamma: gamma, beta: beta, runningMean: mean, runningVar: varT, eps: eps)
        let p = Conv2dParameters(inChannels: cin, outChannels: cout, kernelH: 3, kernelW: 3, padH: 1, padW: 1)
        let x = GraphTestData.tensor([1, cin, 9, 7], seed: 34)
        let folded = try GraphTestData.runSingle(try Conv2d(parameters: p, weight: w, bias: nil, batchNorm: bn), x)
        let plain = try GraphTestData.runSingle(try Conv2d(parameters: p, weight: w, bias: nil), x)
        var maxErr = 0.0
        for c in 0..<cout {
            let s = Double(gamma[c]) / (Double(varT[c]) + eps).squareRoot()
            for i in 0..<9 { for j in 0..<7 {
                let ref = (Double(plain[0, c, i, j]) - Double(mean[c])) * s + Double(beta[c])
                maxErr = max(maxErr, abs(ref - Double(folded[0, c, i, j])) / max(1, abs(ref)))
            } }
        }
        XCTAssertLessThan(maxErr, 2e-6)
        XCTAssertThrowsError(try BatchNormParameters(gamma: gamma, beta: Tensor(zeros: [4]), runningMean: mean, runningVar: varT, eps: 1e-5))
        let badVar = try BatchNormParameters(gamma: gamma, beta: beta, runningMean: mean, runningVar: Tensor(shape: [cout]) { _ in -1 }, eps: 1e-5)
        XCTAssertThrowsError(try WeightPreparation.foldBatchNorm(weight: w, bias: nil, bn: badVar))
    }

    /// eSE: mean, C->C fc with bias, relu6(z+3)/6 (saturating at exactly 0 and 1), multiply.
    func testEffectiveSEMatchesDefinition() throws {
        let c = 4
        // Gates: channel 0 saturates to 0 (z = -5), channel 1 to 1 (z = +4), others in between.
        let w = Tensor(zeros: [c, c, 1, 1])
        let bias = Tensor(shape: [c], values: [-5, 4, 0.5, -1])
        let x = GraphTestData.tensor([2, c, 3, 5], seed: 40)
        let y = try GraphTestData.runSingle(try EffectiveSE(fcWeight: w, fcBias: bias), x)
        let gates: [Float] = [0, 1, 3.5 / 6, 2.0 / 6]
        for n in 0..<2 { for ch in 0..<c { for i in 0..<3 { for j in 0..<5 {
            XCTAssertEqual(y[n, ch, i, j], x[n, ch, i, j] * gates[ch], accuracy: 1e-7)
        } } } }
        // A non-zero fc reads the channel means.
        var w2 = Tensor(zeros: [c, c, 1, 1]); w2[2, 0, 0, 0] = 1
        let y2 = try GraphTestData.runSingle(try EffectiveSE(fcWeight: w2, fcBias: Tensor(zeros: [c])), x)
        let mean0 = (0..<15).map { x[1, 0, $0 / 5, $0 % 5] }.reduce(0, +) / 15
        XCTAssertEqual(y2[1, 2, 1, 1], x[1, 2, 1, 1] * min(max(mean0 + 3, 0), 6) / 6, accuracy: 1e-6)
        XCTAssertThrowsError(try EffectiveSE(fcWeight: Tensor(zeros: [c, c + 1, 1, 1]), fcBias: bias))
    }

    func testCeilModeMaxPoolShapesAndValues() throws {
        let x = Tensor(shape: [1, 1, 4, 4]) { Float($0) }
        let pool = try MaxPool2d(parameters: VoVNetBuilder.stagePool)
        let y = try GraphTestData.runSingle(pool, x)
        XCTAssertEqual(y.shape, [1, 1, 2, 2])
        XCTAssertEqual(y.scalars, [10, 11, 14, 15])
        for h in 2...40 { XCTAssertEqual(try pool.outputShapes(for: [[1, 1, h, h]])[0][2], h / 2) }
        XCTAssertThrowsError(try pool.outputShapes(for: [[1, 1, 1, 5]]))
    }

    func testLinearAddIdentity() throws {
        let w = Tensor(shape: [2, 3], values: [1, 2, 3, -1, 0, 1])
        let lin = try Linear(weight: w, bias: Tensor(shape: [2], values: [0.5, -0.5]))
        let x = Tensor(shape: [2, 3], values: [1, 1, 1, 2, 0, -1])
        XCTAssertEqual(try GraphTestData.runSingle(lin, x).scalars, [6.5, -0.5, -0.5, -3.5])
        XCTAssertThrowsError(try Linear(weight: w, bias: Tensor(zeros: [3])))
        var b = GraphBuilder()
        let a = b.input("a"), c = b.input("c")
        b.output("s", b.add("sum", Add(activation: .relu), inputs: [a, c]))
        b.output("i", b.add("id", Identity(), inputs: [a]))
        let r = try b.build().run(["a": Tensor(shape: [1, 3], values: [1, -2, 3]), "c": Tensor(shape: [1, 3], values: [1, 1, -5])])
        XCTAssertEqual(r["s"]?.scalars, [2, 0, 0])
        XCTAssertEqual(r["i"]?.scalars, [1, -2, 3])
    }
}
