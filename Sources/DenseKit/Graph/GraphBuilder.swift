import Foundation

/// Builds a `Graph` from Swift code: declare inputs, add nodes, name outputs.
///
/// ```swift
/// var b = GraphBuilder()
/// let x = b.input("x")
/// let y = b.add("conv", conv, inputs: [x])          // output value named "conv"
/// b.output("y", y)
/// let graph = try b.build()
/// ```
/// Nothing is checked until `build()`, which validates names and order
/// (see `Graph.init(inputs:nodes:outputs:)`).
public struct GraphBuilder {
    private(set) var inputs: [String] = []
    private(set) var nodes: [GraphNode] = []
    private(set) var outputs: [(name: String, value: String)] = []

    /// An empty builder.
    public init() {}

    /// Declares a graph input value and returns its name.
    @discardableResult
    public mutating func input(_ name: String) -> String {
        inputs.append(name)
        return name
    }

    /// Adds a single-output node; the output value is named `output` (default: the node name).
    /// - Returns: the output value's name.
    @discardableResult
    public mutating func add(_ name: String, _ layer: any GraphLayer, inputs: [String], output: String? = nil) -> String {
        let out = output ?? name
        nodes.append(GraphNode(name: name, layer: layer, inputs: inputs, outputs: [out]))
        return out
    }

    /// Adds a node with several outputs, named explicitly.
    /// - Returns: the output value names.
    @discardableResult
    public mutating func add(_ name: String, _ layer: any GraphLayer, inputs: [String], outputs: [String]) -> [String] {
        nodes.append(GraphNode(name: name, layer: layer, inputs: inputs, outputs: outputs))
        return outputs
    }

    /// Marks `value` as a graph output called `name` (outputs are returned in declaration order).
    public mutating func output(_ name: String, _ value: String) {
        outputs.append((name, value))
    }

    /// The validated, topologically ordered graph.
    /// - Throws: `GraphError` (duplicate or unknown names, cycles, no outputs).
    public func build() throws -> Graph {
        try Graph(inputs: inputs, nodes: nodes, outputs: outputs)
    }
}
