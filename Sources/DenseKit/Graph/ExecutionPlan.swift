import Foundation

/// A graph compiled for fixed input shapes: every value's shape, the activation arena
/// layout (offsets from lifetimes), the workspace, and the per-node work.
///
/// Compiling runs shape inference on every node (errors name the node) and plans memory:
/// each value lives from the step that writes it to the last step that reads it; values
/// that feed a channel concatenation are written straight into their slice of the
/// concatenation (one buffer, no copy); buffers are then placed in one arena, 64-byte
/// aligned, greedy by size with best fit, so buffers alive at the same time never
/// overlap. Per-node scratch (`GraphLayer.workspaceCount`) is one region after the
/// activations, sized for the hungriest node.
///
/// A plan is immutable and `Sendable`. `run(_:context:)` uses an `ExecutionContext`
/// (the arena, allocated once); without one, each call allocates its own, so one plan
/// serves concurrent calls.
public final class ExecutionPlan: Sendable {
    struct Value: Sendable {
        let name: String
        let shape: [Int]
        let sampleCount: Int
        /// Buffer owner (itself unless aliased into a concatenation).
        var root: Int
        /// Float offset of this value's data inside one sample of its root.
        var offsetInRoot: Int
        /// Float offset of the root's buffer in the arena (meaningful for roots).
        var arenaOffset: Int
        var first: Int
        var last: Int
    }

    struct Step: Sendable {
        let node: Int
        let inputs: [Int]
        let outputs: [Int]
        let workspaceCount: Int
        let flops: Double
    }

    /// The graph this plan runs. A plan made and cached by ``Graph/plan(inputShapes:)`` refers to its graph weakly
    /// (graph and plan cache would otherwise keep each other, and the graph's weights, alive forever) and holds the
    /// nodes it runs itself; once that graph is gone this returns an equivalent graph of the same nodes.
    public var graph: Graph {
        if let g = strongGraph ?? weakGraph.graph { return g }
        return Graph(validatedInputs: inputNames, nodes: nodes, outputNames: outputNames, outputValues: outputValues)
    }
    private let strongGraph: Graph?
    private let weakGraph: WeakGraphReference
    /// The graph's input names, nodes (execution order), output names and output values, as planned.
    let inputNames: [String]
    let nodes: [GraphNode]
    let outputNames: [String]
    let outputValues: [String]
    /// The input shapes the plan was compiled for.
    public let inputShapes: [String: [Int]]
    let values: [Value]
    let steps: [Step]
    let inputValueIDs: [Int]
    let outputValueIDs: [Int]
    /// Float offset of the workspace region in the arena.
    let workspaceOffset: Int
    /// Floats in the arena (activations + workspace).
    let arenaCount: Int
    /// Memory figures of this plan.
    public let memory: MemoryPlanSummary

    /// Shape-checks and plans `graph` for `inputShapes`.
    /// - Throws: `GraphError.inputMismatch` for a missing or unexpected input or a negative
    ///   dimension; `.arity` / `.invalidShape` naming the node whose layer rejects its
    ///   inputs; `.tooLarge` when a size overflows.
    public convenience init(graph: Graph, inputShapes: [String: [Int]]) throws {
        try self.init(graph: graph, inputShapes: inputShapes, retainingGraph: true)
    }

    /// As the public initialiser; `retainingGraph: false` (plans cached by the graph itself) keeps only a weak
    /// reference to `graph`.
    init(graph: Graph, inputShapes: [String: [Int]], retainingGraph: Bool) throws {
        self.strongGraph = retainingGraph ? graph : nil
        self.weakGraph = WeakGraphReference(graph)
        self.inputNames = graph.inputNames
        self.nodes = graph.nodes
        self.outputNames = graph.outputNames
        self.outputValues = graph.outputValues
        self.inputShapes = inputShapes
        for k in inputShapes.keys where !graph.inputNames.contains(k) {
            throw GraphError.inputMismatch(input: k, message: "the graph has no such input (inputs: \(graph.inputNames.joined(separator: ", ")))")
        }
        var values: [Value] = []
        var id: [String: Int] = [:]
        let lastStep = graph.nodes.count + 1
        func addValue(_ name: String, _ shape: [Int], step: Int) throws -> Int {
            var count = 1
            for d in shape.dropFirst() {
                let (m, o) = count.multipliedReportingOverflow(by: d)
                if o || m > (1 << 40) { throw GraphError.tooLarge(value: name, elements: ShapeText.of(shape)) }
                count = m
            }
            let (total, o) = count.multipliedReportingOverflow(by: max(shape.first ?? 1, 1))
            if o || total > (1 << 40) { throw GraphError.tooLarge(value: name, elements: ShapeText.of(shape)) }
            let v = values.count
            values.append(Value(name: name, shape: shape, sampleCount: count, root: v, offsetInRoot: 0,
                                arenaOffset: 0, first: step, last: step))
            id[name] = v
            return v
        }
        var inputIDs: [Int] = []
        for name in graph.inputNames {
            guard let s = inputShapes[name] else { throw GraphError.inputMismatch(input: name, message: "not given") }
            guard !s.isEmpty, s.allSatisfy({ $0 >= 0 }) else {
                throw GraphError.inputMismatch(input: name, message: "shape \(ShapeText.of(s)) must have rank >= 1 and no negative dimension")
            }
            inputIDs.append(try addValue(name, s, step: 0))
        }
        // Shape inference, in execution order.
        var steps: [Step] = []
        for (k, node) in graph.nodes.enumerated() {
            let layer = node.layer
            if let n = layer.inputCount, n != node.inputs.count {
                throw GraphError.arity(node: node.name, op: layer.opName, message: "takes \(n) input(s), got \(node.inputs.count)")
            }
            if node.inputs.isEmpty { throw GraphError.arity(node: node.name, op: layer.opName, message: "has no inputs") }
            // Topological order guarantees every input exists.
            let ins = node.inputs.map { id[$0] ?? 0 }
            let inShapes = ins.map { values[$0].shape }
            let outShapes: [[Int]]
            do { outShapes = try layer.outputShapes(for: inShapes) } catch let e as LayerShapeError {
                throw GraphError.invalidShape(node: node.name, op: layer.opName, message: "\(e.message) (inputs \(ShapeText.of(inShapes)))")
            }
            guard outShapes.count == node.outputs.count else {
                throw GraphError.arity(node: node.name, op: layer.opName, message: "produces \(outShapes.count) output(s), the node names \(node.outputs.count)")
            }
            var outs: [Int] = []
            for (name, s) in zip(node.outputs, outShapes) {
                guard !s.isEmpty, s.allSatisfy({ $0 >= 0 }) else {
                    throw GraphError.invalidShape(node: node.name, op: layer.opName, message: "invalid output shape \(ShapeText.of(s)) for inputs \(ShapeText.of(inShapes))")
                }
                outs.append(try addValue(name, s, step: k + 1))
            }
            for v in ins { values[v].last = max(values[v].last, k + 1) }
            steps.append(Step(node: k, inputs: ins, outputs: outs, workspaceCount: max(0, layer.workspaceCount(for: inShapes)),
                              flops: layer.flops(for: inShapes)))
        }
        let outputIDs = graph.outputValues.map { id[$0] ?? 0 }
        for v in outputIDs { values[v].last = lastStep }

        ConcatAliasing.apply(steps: steps, nodes: graph.nodes, values: &values)

        // Lifetimes of roots cover all their members.
        var rootFirst = values.map { $0.first }
        var rootLast = values.map { $0.last }
        for v in values.indices where values[v].root != v {
            let r = values[v].root
            rootFirst[r] = min(rootFirst[r], values[v].first)
            rootLast[r] = max(rootLast[r], values[v].last)
        }
        let roots = values.indices.filter { values[$0].root == $0 }
        let requests = roots.map { r in
            MemoryPlanner.Request(bytes: values[r].sampleCount * max(values[r].shape[0], 1) * 4, first: rootFirst[r], last: rootLast[r])
        }
        let (offsets, activationBytes) = MemoryPlanner.plan(requests)
        for (r, off) in zip(roots, offsets) { values[r].arenaOffset = off / 4 }

        let workspace = steps.map { $0.workspaceCount }.max() ?? 0
        let wsBytes = (workspace * 4 + 63) / 64 * 64
        self.values = values
        self.steps = steps
        self.inputValueIDs = inputIDs
        self.outputValueIDs = outputIDs
        self.workspaceOffset = activationBytes / 4
        self.arenaCount = (activationBytes + wsBytes) / 4
        let sum = values.reduce(0) { $0 + $1.sampleCount * max($1.shape[0], 1) * 4 }
        self.memory = MemoryPlanSummary(plannedActivationBytes: activationBytes, sumActivationBytes: sum,
                                        peakLiveBytes: MemoryPlanner.peakLiveBytes(requests),
                                        workspaceBytes: wsBytes, valueCount: values.count, bufferCount: roots.count,
                                        aliasedValueCount: values.count - roots.count)
    }

    /// The shape of a value (graph input, node output), or nil if the graph has none of that name.
    public func shape(of value: String) -> [Int]? { values.first(where: { $0.name == value })?.shape }

    /// Output shapes, in the graph's output order.
    public var outputShapes: [[Int]] { outputValueIDs.map { values[$0].shape } }

    /// Total floating-point operations of one run (sum of the layers' counts).
    public var flops: Double { steps.reduce(0) { $0 + $1.flops } }

    /// A fresh arena for this plan (allocated once; reuse it for many sequential runs).
    public func makeContext() -> ExecutionContext { ExecutionContext(plan: self) }

    /// Runs the plan.
    /// - Parameters:
    ///   - inputs: every graph input, with exactly the planned shape.
    ///   - context: an arena from `makeContext()` to reuse (never shared by concurrent
    ///     calls); nil allocates one for this call.
    /// - Returns: `output name -> tensor`, fresh tensors.
    /// - Throws: `GraphError.inputMismatch` for a missing input or another shape.
    public func run(_ inputs: [String: Tensor], context: ExecutionContext? = nil) throws -> [String: Tensor] {
        let ctx = context ?? makeContext()
        return try ctx.execute(inputs, timings: nil)
    }

    /// Measures every node: `warmup` untimed runs (first-touch of the arena, caches), then
    /// one timed run, all on one arena.
    /// - Returns: per-node op, output shape, time and GFLOP/s, plus the memory figures.
    /// - Throws: as `run(_:context:)`.
    public func profile(_ inputs: [String: Tensor], warmup: Int = 1) throws -> ProfileReport {
        let ctx = makeContext()
        for _ in 0..<max(0, warmup) { _ = try ctx.execute(inputs, timings: nil) }
        var ns = [UInt64](repeating: 0, count: steps.count)
        let t0 = DispatchTime.now().uptimeNanoseconds
        _ = try ctx.execute(inputs, timings: &ns)
        let total = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
        let entries = steps.enumerated().map { (i, s) -> ProfileReport.Entry in
            let node = nodes[s.node]
            return ProfileReport.Entry(node: node.name, op: node.layer.opName,
                                       outputShape: s.outputs.first.map { values[$0].shape } ?? [],
                                       milliseconds: Double(ns[i]) / 1e6, flops: s.flops)
        }
        return ProfileReport(entries: entries, totalMilliseconds: total, memory: memory)
    }
}

/// Memory figures of an `ExecutionPlan`, in bytes.
public struct MemoryPlanSummary: Sendable, Equatable, CustomStringConvertible {
    /// Size of the activation part of the arena (all values, placed by lifetime).
    public let plannedActivationBytes: Int
    /// What the activations would take with one buffer each (sum over all values, including inputs).
    public let sumActivationBytes: Int
    /// Largest total of buffers alive at one step (lower bound of `plannedActivationBytes`).
    public let peakLiveBytes: Int
    /// Scratch region shared by all nodes (largest single need).
    public let workspaceBytes: Int
    /// Number of values (graph inputs and node outputs).
    public let valueCount: Int
    /// Number of distinct buffers placed (values minus those written into a concatenation).
    public let bufferCount: Int
    /// Values written straight into a concatenation's slice (copies avoided).
    public let aliasedValueCount: Int

    /// Whole arena: activations plus workspace.
    public var arenaBytes: Int { plannedActivationBytes + workspaceBytes }

    /// `planned activations X MiB of Y MiB summed (Z%), peak live W MiB, workspace V MiB, ...`.
    public var description: String {
        func mib(_ b: Int) -> String { String(format: "%.2f MiB", Double(b) / 1048576) }
        let pct = sumActivationBytes > 0 ? 100 * Double(plannedActivationBytes) / Double(sumActivationBytes) : 0
        return "planned activations \(mib(plannedActivationBytes)) of \(mib(sumActivationBytes)) summed (\(String(format: "%.1f", pct))%), "
            + "peak live \(mib(peakLiveBytes)), workspace \(mib(workspaceBytes)), arena \(mib(arenaBytes)); "
            + "\(valueCount) values in \(bufferCount) buffers (\(aliasedValueCount) written in place into concatenations)"
    }
}

/// A weak reference to a graph (thread-safe: the Swift runtime reads and clears weak references atomically).
final class WeakGraphReference: @unchecked Sendable {
    weak var graph: Graph?
    init(_ graph: Graph) { self.graph = graph }
}
