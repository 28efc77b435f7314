import Foundation

/// An error found while building, planning or running a layer graph.
///
/// `description` is one line naming the node (and value) concerned, for example
/// `graph: node "stages.1.blocks.0.conv_mid.0" (conv2d): expects 16 input channels, got 12 (inputs [1, 12, 8, 8])`.
/// Thrown by `GraphBuilder.build()`, `Graph.plan(inputShapes:)`, `Graph.run(_:)` and
/// `ExecutionPlan.run(_:context:)`.
public enum GraphError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Two nodes share a name.
    case duplicateNode(String)
    /// A value is produced twice (by two nodes, or by a node and as a graph input).
    case duplicateValue(value: String, node: String)
    /// A node reads a value that no node produces and that is not a graph input.
    case unknownValue(node: String, value: String)
    /// A graph output names a value that does not exist.
    case unknownOutput(output: String, value: String)
    /// The nodes form a cycle; the names of the nodes involved.
    case cycle([String])
    /// A node has the wrong number of inputs or outputs for its layer.
    case arity(node: String, op: String, message: String)
    /// A layer rejected its input shapes (shape inference, before anything runs).
    case invalidShape(node: String, op: String, message: String)
    /// A graph input was not given, or was given with another shape than planned.
    case inputMismatch(input: String, message: String)
    /// The graph has no outputs, or an output name is used twice.
    case invalidOutputs(String)
    /// A planned buffer is too large to address.
    case tooLarge(value: String, elements: String)
    /// A layer's weights are inconsistent (shapes that do not match each other, a
    /// non-positive variance...); `layer` names the layer or weight prefix.
    case invalidWeights(layer: String, message: String)

    /// One line naming the node, value or input concerned.
    public var description: String {
        switch self {
        case .duplicateNode(let n): return "graph: two nodes are named \"\(n)\""
        case .duplicateValue(let v, let n): return "graph: node \"\(n)\" produces value \"\(v)\", which already exists"
        case .unknownValue(let n, let v): return "graph: node \"\(n)\" reads value \"\(v)\", which no node produces and is not a graph input"
        case .unknownOutput(let o, let v): return "graph: output \"\(o)\" names value \"\(v)\", which does not exist"
        case .cycle(let ns): return "graph: the nodes \(ns.prefix(8).map { "\"\($0)\"" }.joined(separator: ", "))\(ns.count > 8 ? ", ..." : "") form a cycle"
        case .arity(let n, let op, let m): return "graph: node \"\(n)\" (\(op)): \(m)"
        case .invalidShape(let n, let op, let m): return "graph: node \"\(n)\" (\(op)): \(m)"
        case .inputMismatch(let i, let m): return "graph: input \"\(i)\": \(m)"
        case .invalidOutputs(let m): return "graph: \(m)"
        case .tooLarge(let v, let e): return "graph: value \"\(v)\" is too large (\(e) elements)"
        case .invalidWeights(let l, let m): return "graph: weights of \"\(l)\": \(m)"
        }
    }
}

/// A layer's objection to its input shapes, thrown by `GraphLayer.outputShapes(for:)`.
/// The graph turns it into `GraphError.invalidShape` with the node's name.
public struct LayerShapeError: Error, CustomStringConvertible, Sendable {
    /// What is wrong, one line (for example `expects 16 input channels, got 12`).
    public let message: String
    /// Creates the error.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}
