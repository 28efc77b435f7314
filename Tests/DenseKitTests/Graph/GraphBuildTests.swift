import XCTest
@testable import DenseKit

/// Graph construction: ordering, validation errors that name the node, shape inference.
final class GraphBuildTests: XCTestCase {
    func testNodesAddedOutOfOrderRunInTopologicalOrder() throws {
        let b2 = GraphNode(name: "b", layer: GraphTestAffine(2), inputs: ["a"], outputs: ["b"])
        let a1 = GraphNode(name: "a", layer: GraphTestAffine(1, 1), inputs: ["x"], outputs: ["a"])
        let g = try Graph(inputs: ["x"], nodes: [b2, a1], outputs: [("y", "b")])
        XCTAssertEqual(g.nodes.map { $0.name }, ["a", "b"])
        let y = try g.run(Tensor(shape: [1, 3], values: [0, 1, 2]))
        XCTAssertEqual(y["y"]?.scalars, [2, 4, 6])
    }

    func testStructuralErrors() {
        func err(_ body: () throws -> Graph) -> GraphError? {
            do { _ = try body(); return nil } catch { return error as? GraphError }
        }
        let l = GraphTestAffine(1)
        XCTAssertEqual(err { try Graph(inputs: ["x"], nodes: [GraphNode(name: "n", layer: l, inputs: ["nope"], outputs: ["y"])], outputs: [("y", "y")]) },
                       .unknownValue(node: "n", value: "nope"))
        XCTAssertEqual(err { try Graph(inputs: ["x"], nodes: [GraphNode(name: "n", layer: l, inputs: ["x"], outputs: ["y"]),
                                                               GraphNode(name: "n", layer: l, inputs: ["x"], outputs: ["z"])], outputs: [("y", "y")]) },
                       .duplicateNode("n"))
        XCTAssertEqual(err { try Graph(inputs: ["x"], nodes: [GraphNode(name: "n", layer: l, inputs: ["x"], outputs: ["x"])], outputs: [("y", "x")]) },
                       .duplicateValue(value: "x", node: "n"))
        XCTAssertEqual(err { try Graph(inputs: ["x"], nodes: [GraphNode(name: "p", layer: l, inputs: ["q"], outputs: ["p"]),
                                                               GraphNode(name: "q", layer: l, inputs: ["p"], outputs: ["q"])], outputs: [("y", "p")]) },
                       .cycle(["p", "q"]))
        XCTAssertEqual(err { try Graph(inputs: ["x"], nodes: [], outputs: [("y", "zz")]) }, .unknownOutput(output: "y", value: "zz"))
        XCTAssertEqual(err { try Graph(inputs: ["x"], nodes: [], outputs: []) }, .invalidOutputs("the graph has no outputs"))
        let d = GraphError.cycle(["p", "q"]).description
        XCTAssertTrue(d.contains("\"p\"") && !d.contains("\n"), d)
    }

    func testShapeErrorNamesTheNodeBeforeAnythingRuns() throws {
        var b = GraphBuilder()
        let x = b.input("x")
        let p = Conv2dParameters(inChannels: 4, outChannels: 8, kernelH: 3, kernelW: 3, padH: 1, padW: 1)
        let conv = try Conv2d(parameters: p, weight: Tensor(zeros: [8, 4, 3, 3]), bias: nil)
        let h = b.add("stage.conv_a", GraphTestChannelMix(3), inputs: [x])
        b.output("y", b.add("stage.conv_b", conv, inputs: [h]))
        let g = try b.build()
        XCTAssertThrowsError(try g.plan(inputShapes: ["x": [1, 4, 8, 8]])) { e in
            guard case .invalidShape(let node, let op, let msg)? = e as? GraphError else { return XCTFail("\(e)") }
            XCTAssertEqual(node, "stage.conv_b")
            XCTAssertEqual(op, "conv2d")
            XCTAssertTrue(msg.contains("expects 4 input channels, got 3"), msg)
            XCTAssertTrue("\(e)".contains("stage.conv_b"))
        }
        XCTAssertThrowsError(try g.run(["y": Tensor(zeros: [1, 4, 8, 8])]))   // not an input
        XCTAssertThrowsError(try g.plan(inputShapes: [:]))                     // x missing
    }

    func testArityErrorAndInputShapeMismatchAtRun() throws {
        var b = GraphBuilder()
        let x = b.input("x")
        b.output("y", b.add("add", Add(), inputs: [x, x]))
        b.output("z", b.add("aff", GraphTestAffine(1), inputs: [x, x]))
        let g = try b.build()
        XCTAssertThrowsError(try g.plan(inputShapes: ["x": [1, 2]])) { e in
            XCTAssertEqual(e as? GraphError, .arity(node: "aff", op: "affine", message: "takes 1 input(s), got 2"))
        }
        var b2 = GraphBuilder()
        let x2 = b2.input("x")
        b2.output("y", b2.add("add", Add(), inputs: [x2, x2]))
        let plan = try b2.build().plan(inputShapes: ["x": [1, 2]])
        XCTAssertThrowsError(try plan.run(["x": Tensor(zeros: [1, 3])])) { e in
            guard case .inputMismatch(let i, _)? = e as? GraphError else { return XCTFail("\(e)") }
            XCTAssertEqual(i, "x")
        }
        XCTAssertEqual(try plan.run(["x": Tensor(shape: [1, 2], values: [1, 2])])["y"]?.scalars, [2, 4])
    }

    func testPlanCacheReturnsTheSamePlanPerShape() throws {
        var b = GraphBuilder()
        b.output("y", b.add("a", GraphTestAffine(2), inputs: [b.input("x")]))
        let g = try b.build()
        let p1 = try g.plan(inputShapes: ["x": [1, 4]])
        let p2 = try g.plan(inputShapes: ["x": [1, 4]])
        let p3 = try g.plan(inputShapes: ["x": [2, 4]])
        XCTAssertTrue(p1 === p2)
        XCTAssertFalse(p1 === p3)
        XCTAssertEqual(p3.outputShapes, [[2, 4]])
    }
}
