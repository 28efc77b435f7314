import Foundation

/// Decides which values are written straight into a channel concatenation's output.
///
/// For a `ConcatenatingLayer` with `concatAxis == 1`, input `i` of output `O` occupies
/// channels `[c_i, c_i + C_i)` of every sample of `O`, a contiguous run of floats. If the
/// input does not already live inside another concatenation, it becomes a member of
/// `O`'s buffer at that offset: its producer (a node, or the copy of a graph input)
/// writes there, and the concatenation skips it. A value can belong to one concatenation
/// only; a second concatenation of the same value copies it, as does a repeated input.
/// Concatenations of concatenations nest (offsets add up).
enum ConcatAliasing {
    static func apply(steps: [ExecutionPlan.Step], nodes: [GraphNode], values: inout [ExecutionPlan.Value]) {
        for step in steps {
            guard let cat = nodes[step.node].layer as? any ConcatenatingLayer, cat.concatAxis == 1,
                  step.outputs.count == 1 else { continue }
            let o = step.outputs[0]
            let outShape = values[o].shape
            guard outShape.count >= 2 else { continue }
            let inner = outShape.dropFirst(2).reduce(1, *)
            var channel = 0
            for v in step.inputs {
                let s = values[v].shape
                defer { channel += s.count >= 2 ? s[1] : 0 }
                guard v != o, values[v].root == v, s.count == outShape.count, s[0] == outShape[0] else { continue }
                values[v].root = o
                values[v].offsetInRoot = channel * inner
            }
        }
        // Resolve chains (a concatenation written into a later one) to the final owner.
        for v in values.indices {
            var r = values[v].root
            var off = values[v].offsetInRoot
            while values[r].root != r {
                off += values[r].offsetInRoot
                r = values[r].root
            }
            if r != v {
                values[v].root = r
                values[v].offsetInRoot = off
            }
        }
    }
}
