import Foundation

/// The memory one run of an `ExecutionPlan` needs: one 64-byte-aligned arena holding
/// every activation at its planned offset, plus the workspace, allocated once when the
/// context is made. Nothing is allocated while nodes run.
///
/// A context serves one call at a time. Make one per thread (`ExecutionPlan.makeContext()`)
/// to run a shared plan concurrently; reuse it for sequential calls.
public final class ExecutionContext {
    /// The plan this arena is laid out for.
    public let plan: ExecutionPlan
    private let arena: UnsafeMutablePointer<Float>
    private let buffers: [ValueBuffer]
    private let stepInputs: [[ValueBuffer]]
    private let stepOutputs: [[ValueBuffer]]
    private let workspace: UnsafeMutablePointer<Float>?

    /// Size of the arena in bytes.
    public var arenaBytes: Int { plan.arenaCount * 4 }

    init(plan: ExecutionPlan) {
        self.plan = plan
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(plan.arenaCount, 16) * 4, alignment: 64)
        let arena = raw.bindMemory(to: Float.self, capacity: max(plan.arenaCount, 16))
        self.arena = arena
        let buffers = plan.values.map { v -> ValueBuffer in
            let root = plan.values[v.root]
            return ValueBuffer(base: arena + root.arenaOffset + v.offsetInRoot, shape: v.shape, sampleStride: root.sampleCount)
        }
        self.buffers = buffers
        self.stepInputs = plan.steps.map { $0.inputs.map { buffers[$0] } }
        self.stepOutputs = plan.steps.map { $0.outputs.map { buffers[$0] } }
        self.workspace = plan.steps.contains(where: { $0.workspaceCount > 0 }) ? arena + plan.workspaceOffset : nil
    }

    deinit { UnsafeMutableRawPointer(arena).deallocate() }

    /// Copies the inputs in, runs every node in order, copies the outputs out.
    func execute(_ inputs: [String: Tensor], timings: UnsafeMutablePointer<UInt64>?) throws -> [String: Tensor] {
        // The plan's own copy of the graph's names and nodes (the graph itself may be gone; see ExecutionPlan.graph).
        let graph = (inputNames: plan.inputNames, nodes: plan.nodes, outputNames: plan.outputNames)
        for k in inputs.keys where !graph.inputNames.contains(k) {
            throw GraphError.inputMismatch(input: k, message: "the graph has no such input")
        }
        for (name, v) in zip(graph.inputNames, plan.inputValueIDs) {
            guard let t = inputs[name] else { throw GraphError.inputMismatch(input: name, message: "not given") }
            guard t.shape == plan.values[v].shape else {
                throw GraphError.inputMismatch(input: name, message: "shape \(ShapeText.of(t.shape)) differs from the planned \(ShapeText.of(plan.values[v].shape))")
            }
            let dst = buffers[v]
            t.withUnsafeBufferPointer { src in
                guard let s = src.baseAddress else { return }
                for n in 0..<dst.batch { dst.sample(n).update(from: s + n * dst.sampleCount, count: dst.sampleCount) }
            }
        }
        for (i, step) in plan.steps.enumerated() {
            let layer = graph.nodes[step.node].layer
            if let timings {
                let t0 = DispatchTime.now().uptimeNanoseconds
                layer.forward(inputs: stepInputs[i], outputs: stepOutputs[i], workspace: workspace)
                timings[i] = DispatchTime.now().uptimeNanoseconds - t0
            } else {
                layer.forward(inputs: stepInputs[i], outputs: stepOutputs[i], workspace: workspace)
            }
        }
        var result: [String: Tensor] = [:]
        for (name, v) in zip(graph.outputNames, plan.outputValueIDs) {
            let src = buffers[v]
            var t = Tensor(uninitialized: src.shape)   // every sample is copied below
            t.withUnsafeMutableBufferPointer { dst in
                guard let d = dst.baseAddress else { return }
                for n in 0..<src.batch { (d + n * src.sampleCount).update(from: src.sample(n), count: src.sampleCount) }
            }
            result[name] = t
        }
        return result
    }
}
