import Foundation

/// One node of a `Graph`: a layer applied to named input values, producing named output values.
///
/// Value names are plain strings, unique in the graph; a value is produced once (by one
/// node or as a graph input) and may be read by any number of nodes.
public struct GraphNode: Sendable {
    /// Unique node name (timm-like module path, e.g. `stages.1.blocks.0.conv_concat`).
    public let name: String
    /// The layer the node runs.
    public let layer: any GraphLayer
    /// Names of the values read, in the layer's input order.
    public let inputs: [String]
    /// Names of the values produced, in the layer's output order.
    public let outputs: [String]

    /// Creates a node.
    public init(name: String, layer: any GraphLayer, inputs: [String], outputs: [String]) {
        self.name = name
        self.layer = layer
        self.inputs = inputs
        self.outputs = outputs
    }
}
