import Foundation

/// Builds a `Graph` from a JSON description and a `WeightSource`: the config route to a
/// graph, for networks that have no family builder (and for tests and tools).
///
/// ```json
/// {"inputs": ["x"],
///  "nodes": [
///    {"name": "conv1", "op": "conv2d", "inputs": ["x"],
///     "attrs": {"in_channels": 3, "out_channels": 8, "kernel_size": 3, "stride": 2, "padding": 1,
///               "batch_norm": true, "activation": "relu"}},
///    {"name": "pool", "op": "max_pool2d", "inputs": ["conv1"], "attrs": {"kernel_size": 3, "stride": 2, "ceil_mode": true}},
///    {"name": "cat", "op": "concat", "inputs": ["pool", "pool"]}],
///  "outputs": ["cat", {"name": "features", "value": "pool"}]}
/// ```
///
/// A node's `outputs` default to `[name]`; its weights are read under `weights` (default:
/// the node name) with PyTorch's leaf names, a conv's batch norm under `bn_weights` (default
/// `<weights>.bn`; timm's `ConvNormAct` is `"weights": "m.conv", "bn_weights": "m.bn"`). Ops and attrs (PyTorch snake_case):
///
/// | op | attrs (defaults) | weights under `<w>` |
/// | --- | --- | --- |
/// | `conv2d` | `in_channels`, `out_channels`, `kernel_size`, `stride` 1, `padding` 0, `dilation` 1, `groups` 1, `bias` false, `batch_norm` false, `bn_eps` 1e-5, `activation` "none" | `.weight`, `.bias`; BN `<bn_weights>.{weight,bias,running_mean,running_var}` |
/// | `max_pool2d` | `kernel_size`, `stride` (= kernel), `padding` 0, `dilation` 1, `ceil_mode` false | - |
/// | `adaptive_avg_pool2d` | `output_size` | - |
/// | `global_avg_pool` | `flatten` true | - |
/// | `ese` | - | `.fc.weight`, `.fc.bias` |
/// | `linear` | `bias` true, `activation` "none" | `.weight`, `.bias` |
/// | `concat` | `dim` 1 | - |
/// | `add` | `activation` "none" | - |
/// | `identity` | - | - |
///
/// Sizes given as one integer apply to both axes; `[h, w]` gives them separately.
/// BN is folded into the conv (float64, its own `bn_eps`); activations are `Activation` raw values.
public enum GraphConfig {
    /// Builds the graph.
    /// - Throws: `ModelConfigError.invalidField` naming the node and field, `.missingWeights` naming
    ///   the keys, `GraphError` for structural problems (unknown values, cycles) or inconsistent weights.
    public static func build(json: JSONValue, weights: any WeightSource) throws -> Graph {
        let root = try ConfigReader(json, model: "graph")
        guard let inputs = json["inputs"]?.array?.compactMap({ $0.string }), !inputs.isEmpty else {
            throw root.fail("inputs", "expected a non-empty array of value names")
        }
        guard let nodeList = json["nodes"]?.array else { throw root.fail("nodes", "expected an array of nodes") }
        var nodes: [GraphNode] = []
        for (i, n) in nodeList.enumerated() {
            let r = try ConfigReader(n, model: "graph node \(i)")
            let name = try r.string("name")
            let op = try r.string("op")
            guard let ins = n["inputs"]?.array?.compactMap({ $0.string }), !ins.isEmpty else {
                throw ModelConfigError.invalidField(model: "graph node \"\(name)\"", field: "inputs", message: "expected a non-empty array of value names")
            }
            let outs = n["outputs"]?.array?.compactMap { $0.string } ?? [name]
            let prefix = try r.string("weights", default: name)
            let bnPrefix = try r.string("bn_weights", default: prefix + ".bn")
            let layer = try makeLayer(op: op, attrs: n["attrs"] ?? .object([:]), node: name, prefix: prefix, bnPrefix: bnPrefix, weights: weights)
            nodes.append(GraphNode(name: name, layer: layer, inputs: ins, outputs: outs))
        }
        guard let outList = json["outputs"]?.array, !outList.isEmpty else { throw root.fail("outputs", "expected a non-empty array") }
        var outputs: [(name: String, value: String)] = []
        for o in outList {
            if let s = o.string { outputs.append((s, s)); continue }
            guard let n = o["name"]?.string, let v = o["value"]?.string else {
                throw root.fail("outputs", "entries are value names or {\"name\": ..., \"value\": ...}, got \(o.jsonText)")
            }
            outputs.append((n, v))
        }
        return try Graph(inputs: inputs, nodes: nodes, outputs: outputs)
    }

    /// One layer from its op name and attrs.
    static func makeLayer(op: String, attrs: JSONValue, node: String, prefix: String, bnPrefix: String,
                          weights: any WeightSource) throws -> any GraphLayer {
        let model = "graph node \"\(node)\""
        let a = try ConfigReader(attrs, model: model)
        func tensor(_ leaf: String, under base: String? = nil) throws -> Tensor {
            let key = (base ?? prefix) + "." + leaf
            guard weights.shape(of: key) != nil else { throw ModelConfigError.missingWeights(model: model, keys: [key]) }
            return try weights.tensor(key)
        }
        func pair(_ field: String, _ d: Int?) throws -> (Int, Int) {
            if let v = attrs[field], let i = v.int { return (i, i) }
            if attrs[field] != nil {
                let p = try a.ints(field, count: 2)
                return (p[0], p[1])
            }
            guard let d else { throw a.fail(field, "required") }
            return (d, d)
        }
        func activation() throws -> Activation {
            let s = try a.string("activation", default: "none")
            guard let act = Activation(rawValue: s) else {
                throw a.fail("activation", "\"\(s)\" is not one of \(Activation.allCases.map { $0.rawValue }.joined(separator: ", "))")
            }
            return act
        }
        switch op {
        case "conv2d":
            let k = try pair("kernel_size", nil), s = try pair("stride", 1), p = try pair("padding", 0), d = try pair("dilation", 1)
            let params = Conv2dParameters(inChannels: try a.int("in_channels"), outChannels: try a.int("out_channels"),
                                          kernelH: k.0, kernelW: k.1, strideH: s.0, strideW: s.1, padH: p.0, padW: p.1,
                                          dilationH: d.0, dilationW: d.1, groups: try a.int("groups", default: 1),
                                          activation: try activation())
            do { try params.validate() } catch { throw a.fail("conv2d", "\(error)") }
            let bias = try a.bool("bias", default: false) ? try tensor("bias") : nil
            if try a.bool("batch_norm", default: false) {
                let bn = try BatchNormParameters(gamma: try tensor("weight", under: bnPrefix), beta: try tensor("bias", under: bnPrefix),
                                                 runningMean: try tensor("running_mean", under: bnPrefix),
                                                 runningVar: try tensor("running_var", under: bnPrefix),
                                                 eps: try a.double("bn_eps", default: 1e-5), name: bnPrefix)
                return try Conv2d(parameters: params, weight: try tensor("weight"), bias: bias, batchNorm: bn, name: node)
            }
            return try Conv2d(parameters: params, weight: try tensor("weight"), bias: bias, name: node)
        case "max_pool2d":
            let k = try pair("kernel_size", nil), s = try pair("stride", k.0 == k.1 ? k.0 : nil), p = try pair("padding", 0), d = try pair("dilation", 1)
            let params = Pool2dParameters(kernelH: k.0, kernelW: k.1, strideH: s.0, strideW: s.1, padH: p.0, padW: p.1,
                                          dilationH: d.0, dilationW: d.1, ceilMode: try a.bool("ceil_mode", default: false))
            return try MaxPool2d(parameters: params, name: node)
        case "adaptive_avg_pool2d":
            let o = try pair("output_size", nil)
            return try AdaptiveAvgPool2d(outHeight: o.0, outWidth: o.1, name: node)
        case "global_avg_pool":
            return GlobalAvgPool(flatten: try a.bool("flatten", default: true))
        case "ese":
            return try EffectiveSE(fcWeight: try tensor("fc.weight"), fcBias: try tensor("fc.bias"), name: node)
        case "linear":
            let bias = try a.bool("bias", default: true) ? try tensor("bias") : nil
            return try Linear(weight: try tensor("weight"), bias: bias, activation: try activation(), name: node)
        case "concat":
            let dim = try a.int("dim", default: 1)
            guard dim >= 1 else { throw a.fail("dim", "must be >= 1 (the batch axis cannot be concatenated), got \(dim)") }
            return Concat(axis: dim)
        case "add":
            return Add(activation: try activation())
        case "identity":
            return Identity()
        default:
            throw ModelConfigError.invalidField(model: model, field: "op", message: "unknown op \"\(op)\" (known: conv2d, max_pool2d, adaptive_avg_pool2d, global_avg_pool, ese, linear, concat, add, identity)")
        }
    }
}
