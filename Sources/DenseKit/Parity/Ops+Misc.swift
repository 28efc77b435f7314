/// Parity handlers for the other `ops` targets (norms, activations, pools, resize,
/// softmax, indexing and shape ops).
///
/// Each handler reads the case's inputs, parameters and attrs (`golden/ops/INDEX.md`) and calls the
/// tensor-level kernel wrappers; anything the kernels do not handle throws `ParityError.unsupported`.
enum OpsMiscParity {
    static let handlers: [String: ParityHandler] = {
        var h: [String: ParityHandler] = [:]
        func add(_ target: String, _ f: @escaping ParityHandler) {
            h["ops/" + target] = { gc in
                do { return try f(gc) } catch let e as KernelArgumentError {
                    throw ParityError.unsupported("\(gc.name): \(e.message)")
                }
            }
        }
        add("batch_norm", batchNorm)
        add("layer_norm", layerNorm)
        add("layer_norm2d", layerNorm2d)
        add("group_norm", groupNorm)
        for (target, act) in [("relu", Activation.relu), ("relu6", .relu6), ("silu", .silu), ("sigmoid", .sigmoid),
                              ("hardsigmoid", .hardSigmoid), ("hardswish", .hardSwish)] {
            add(target) { gc in ["y": .float(ElementwiseKernels.activation(act, try gc.input("x")))] }
        }
        add("gelu", gelu)
        add("prelu", prelu)
        add("leaky_relu", leakyRelu)
        add("max_pool2d", maxPool2d)
        add("avg_pool2d", avgPool2d)
        add("adaptive_avg_pool2d", adaptiveAvgPool2d)
        add("interpolate", interpolate)
        add("softmax") { gc in ["y": .float(try SoftmaxKernels.softmax(try gc.input("x"), dim: try int(gc, "dim")))] }
        add("log_softmax") { gc in ["y": .float(try SoftmaxKernels.logSoftmax(try gc.input("x"), dim: try int(gc, "dim")))] }
        add("top_k", topK)
        add("gather", gather)
        add("concat", concat)
        add("pad", pad)
        add("pixel_shuffle") { gc in
            ["y": .float(try ShapeKernels.pixelShuffle(try gc.input("x"), factor: try int(gc, "upscale_factor")))]
        }
        add("pixel_unshuffle") { gc in
            ["y": .float(try ShapeKernels.pixelUnshuffle(try gc.input("x"), factor: try int(gc, "downscale_factor")))]
        }
        add("l2_normalize", l2Normalize)
        add("argmax", argmax)
        return h
    }()

    // MARK: Attribute helpers

    static func int(_ gc: GoldenCase, _ key: String, default d: Int? = nil) throws -> Int {
        if let v = gc.attrs[key], !v.isNull {
            guard let i = v.int else { throw ParityError.unsupported("\(gc.name): attr \(key) is not an integer") }
            return i
        }
        if let d { return d }
        throw ParityError.unsupported("\(gc.name): attr \(key) missing")
    }

    static func double(_ gc: GoldenCase, _ key: String, default d: Double) throws -> Double {
        guard let v = gc.attrs[key], !v.isNull else { return d }
        guard let x = v.double else { throw ParityError.unsupported("\(gc.name): attr \(key) is not a number") }
        return x
    }

    static func bool(_ gc: GoldenCase, _ key: String, default d: Bool) throws -> Bool {
        guard let v = gc.attrs[key], !v.isNull else { return d }
        guard let b = v.bool else { throw ParityError.unsupported("\(gc.name): attr \(key) is not a bool") }
        return b
    }

    /// A `[H, W]` pair (an int is accepted as a square pair).
    static func pair(_ gc: GoldenCase, _ key: String, default d: (Int, Int)? = nil) throws -> (Int, Int) {
        if let v = gc.attrs[key], !v.isNull {
            if let i = v.int { return (i, i) }
            if let a = v.ints, a.count == 2 { return (a[0], a[1]) }
            throw ParityError.unsupported("\(gc.name): attr \(key) is not an int pair")
        }
        if let d { return d }
        throw ParityError.unsupported("\(gc.name): attr \(key) missing")
    }

    static func optionalParam(_ gc: GoldenCase, _ key: String) throws -> Tensor? {
        gc.hasParam(key) ? try gc.param(key) : nil
    }

    // MARK: Norms

    static func batchNorm(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let y = try NormKernels.batchNorm(try gc.input("x"), mean: try gc.param("running_mean"),
                                          variance: try gc.param("running_var"), weight: try optionalParam(gc, "weight"),
                                          bias: try optionalParam(gc, "bias"), eps: try double(gc, "eps", default: 1e-5))
        return ["y": .float(y)]
    }

    static func layerNorm(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let x = try gc.input("x")
        // normalized_shape may cover several trailing dimensions: normalise over their product.
        let ns = gc.attrs["normalized_shape"]?.ints ?? [x.shape.last ?? 0]
        guard !ns.isEmpty, ns.count <= x.rank, Array(x.shape.suffix(ns.count)) == ns else {
            throw ParityError.unsupported("\(gc.name): normalized_shape \(ns) for input \(x.shape)")
        }
        let cols = ns.reduce(1, *)
        let flat = x.reshaped(Array(x.shape.dropLast(ns.count)) + [cols])
        let w = try optionalParam(gc, "weight"), b = try optionalParam(gc, "bias")
        let y = try NormKernels.layerNorm(flat, weight: w, bias: b, eps: try double(gc, "eps", default: 1e-5))
        return ["y": .float(y.reshaped(x.shape, layout: x.layout))]
    }

    static func layerNorm2d(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let y = try NormKernels.layerNorm2d(try gc.input("x"), weight: try optionalParam(gc, "weight"),
                                            bias: try optionalParam(gc, "bias"), eps: try double(gc, "eps", default: 1e-6))
        return ["y": .float(y)]
    }

    static func groupNorm(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let y = try NormKernels.groupNorm(try gc.input("x"), groups: try int(gc, "num_groups"),
                                          weight: try optionalParam(gc, "weight"), bias: try optionalParam(gc, "bias"),
                                          eps: try double(gc, "eps", default: 1e-5))
        return ["y": .float(y)]
    }

    // MARK: Activations

    static func gelu(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let approx = gc.attrs["approximate"]?.string ?? "none"
        let act: Activation
        switch approx {
        case "none": act = .gelu
        case "tanh": act = .geluTanh
        default: throw ParityError.unsupported("\(gc.name): gelu approximate=\(approx)")
        }
        return ["y": .float(ElementwiseKernels.activation(act, try gc.input("x")))]
    }

    static func prelu(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        ["y": .float(try ElementwiseKernels.prelu(try gc.input("x"), weight: try gc.param("weight")))]
    }

    static func leakyRelu(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let slope = try double(gc, "negative_slope", default: 0.01)
        return ["y": .float(ElementwiseKernels.leakyRelu(try gc.input("x"), slope: Float(slope)))]
    }

    // MARK: Pools

    static func poolParameters(_ gc: GoldenCase, dilation: Bool) throws -> Pool2dParameters {
        let k = try pair(gc, "kernel_size")
        let s = try pair(gc, "stride", default: k)
        let p = try pair(gc, "padding", default: (0, 0))
        let d = dilation ? try pair(gc, "dilation", default: (1, 1)) : (1, 1)
        var divisor: Int? = nil
        if let v = gc.attrs["divisor_override"], !v.isNull {
            guard let i = v.int, i != 0 else { throw ParityError.unsupported("\(gc.name): divisor_override \(v.jsonText)") }
            divisor = i
        }
        let params = Pool2dParameters(kernelH: k.0, kernelW: k.1, strideH: s.0, strideW: s.1, padH: p.0, padW: p.1,
                                      dilationH: d.0, dilationW: d.1, ceilMode: try bool(gc, "ceil_mode", default: false),
                                      countIncludePad: try bool(gc, "count_include_pad", default: true),
                                      divisorOverride: divisor)
        guard params.isValid else { throw ParityError.unsupported("\(gc.name): invalid pooling parameters \(params)") }
        return params
    }

    static func maxPool2d(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        ["y": .float(try PoolKernels.maxPool2d(try gc.input("x"), try poolParameters(gc, dilation: true)))]
    }

    static func avgPool2d(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        ["y": .float(try PoolKernels.avgPool2d(try gc.input("x"), try poolParameters(gc, dilation: false)))]
    }

    static func adaptiveAvgPool2d(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let o = try pair(gc, "output_size")
        return ["y": .float(try PoolKernels.adaptiveAvgPool2d(try gc.input("x"), outHeight: o.0, outWidth: o.1))]
    }

    // MARK: Resize

    static func interpolate(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let modeName = gc.attrs["mode"]?.string ?? "nearest"
        guard let mode = InterpolationMode(rawValue: modeName) else {
            throw ParityError.unsupported("\(gc.name): interpolate mode \(modeName)")
        }
        if try bool(gc, "antialias", default: false) { throw ParityError.unsupported("\(gc.name): antialias") }
        if let r = gc.attrs["recompute_scale_factor"], !r.isNull, r.bool != false {
            throw ParityError.unsupported("\(gc.name): recompute_scale_factor \(r.jsonText)")
        }
        var size: (height: Int, width: Int)? = nil
        var scale: (height: Double, width: Double)? = nil
        if let v = gc.attrs["size"], !v.isNull {
            if let i = v.int { size = (i, i) }
            else if let a = v.ints, a.count == 2 { size = (a[0], a[1]) }
            else { throw ParityError.unsupported("\(gc.name): size \(v.jsonText)") }
        }
        if let v = gc.attrs["scale_factor"], !v.isNull {
            if let d = v.double { scale = (d, d) }
            else if let a = v.doubles, a.count == 2 { scale = (a[0], a[1]) }
            else { throw ParityError.unsupported("\(gc.name): scale_factor \(v.jsonText)") }
        }
        let ac = try bool(gc, "align_corners", default: false)
        return ["y": .float(try ResizeKernels.interpolate(try gc.input("x"), mode: mode, size: size, scaleFactor: scale,
                                                           alignCorners: ac))]
    }

    // MARK: Reductions

    static func topK(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let r = try ReduceKernels.topK(try gc.input("x"), k: try int(gc, "k"), dim: try int(gc, "dim", default: -1),
                                       largest: try bool(gc, "largest", default: true))
        return ["values": .float(r.values), "indices": .index(r.indices)]
    }

    static func l2Normalize(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let p = try double(gc, "p", default: 2)
        guard p == 2 else { throw ParityError.unsupported("\(gc.name): p = \(p)") }
        return ["y": .float(try ReduceKernels.l2Normalize(try gc.input("x"), dim: try int(gc, "dim", default: 1),
                                                          eps: try double(gc, "eps", default: 1e-12)))]
    }

    static func argmax(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let x = try gc.input("x")
        let dim = try int(gc, "dim", default: 1)
        var y = try ReduceKernels.argmax(x, dim: dim)
        if try bool(gc, "keepdim", default: false) {
            var shape = x.shape
            shape[try normalizedDim(dim, rank: x.rank, "argmax")] = 1
            y = IndexTensor(shape: shape, values: y.values)
        }
        return ["y": .index(y)]
    }

    // MARK: Shape ops

    static func gather(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        ["y": .float(try ShapeKernels.gather(try gc.input("x"), dim: try int(gc, "dim"), index: try gc.indexInput("index")))]
    }

    static func concat(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        var names = gc.inputNames.isEmpty ? gc.presentInputs : gc.inputNames
        names = names.filter { $0.first == "x" && Int($0.dropFirst()) != nil }
        names.sort { (Int($0.dropFirst()) ?? 0) < (Int($1.dropFirst()) ?? 0) }
        guard !names.isEmpty else { throw ParityError.unsupported("\(gc.name): no x0, x1, ... inputs") }
        let xs = try names.map { try gc.input($0) }
        return ["y": .float(try ShapeKernels.concat(xs, dim: try int(gc, "dim", default: 1)))]
    }

    static func pad(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        guard let pads = gc.attrs["pad"]?.ints else { throw ParityError.unsupported("\(gc.name): attr pad missing") }
        let modeName = gc.attrs["mode"]?.string ?? "constant"
        guard let mode = PadMode(rawValue: modeName) else { throw ParityError.unsupported("\(gc.name): pad mode \(modeName)") }
        let value = try double(gc, "value", default: 0)
        return ["y": .float(try ShapeKernels.pad(try gc.input("x"), pads, mode: mode, value: Float(value)))]
    }
}
