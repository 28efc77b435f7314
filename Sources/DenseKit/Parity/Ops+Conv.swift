/// Parity handlers for `ops` targets: conv2d, conv_transpose2d, linear, matmul,
/// scaled_dot_product_attention, multi_head_attention (`golden/ops/INDEX.md`).
///
/// Each handler maps the case's PyTorch snake_case attrs to the kernels' parameters and throws
/// `ParityError.unsupported` for an attr it does not know or a value it does not handle.
enum OpsConvParity {
    static let handlers: [String: ParityHandler] = [
        "ops/conv2d": conv2d,
        "ops/conv_transpose2d": convTranspose2d,
        "ops/linear": linear,
        "ops/matmul": matmul,
        "ops/scaled_dot_product_attention": sdpa,
        "ops/multi_head_attention": mha,
    ]

    // MARK: Attribute helpers

    /// Throws when the case has attrs outside `known`.
    static func checkKnown(_ gc: GoldenCase, _ known: Set<String>) throws {
        let keys = Set(gc.attrs.object?.keys.map { $0 } ?? [])
        let unknown = keys.subtracting(known)
        if !unknown.isEmpty {
            throw ParityError.unsupported("\(gc.name): attrs \(unknown.sorted()) are not handled by \(gc.target)")
        }
    }

    /// A `[H, W]` pair attr (a single int is accepted for both).
    static func pair(_ gc: GoldenCase, _ key: String, default d: (Int, Int)) throws -> (Int, Int) {
        guard let v = gc.attrs[key], !v.isNull else { return d }
        if let i = v.int { return (i, i) }
        guard let a = v.ints, a.count == 2 else {
            throw ParityError.unsupported("\(gc.name): attr \(key) = \(v.jsonText) is not an int pair")
        }
        return (a[0], a[1])
    }

    static func int(_ gc: GoldenCase, _ key: String, default d: Int?) throws -> Int {
        guard let v = gc.attrs[key], !v.isNull else {
            if let d { return d }
            throw ParityError.unsupported("\(gc.name): attr \(key) is required")
        }
        guard let i = v.int else { throw ParityError.unsupported("\(gc.name): attr \(key) = \(v.jsonText) is not an int") }
        return i
    }

    static func bool(_ gc: GoldenCase, _ key: String, default d: Bool) throws -> Bool {
        guard let v = gc.attrs[key], !v.isNull else { return d }
        guard let b = v.bool else { throw ParityError.unsupported("\(gc.name): attr \(key) = \(v.jsonText) is not a bool") }
        return b
    }

    /// The bias parameter when attr `bias` (default true) says it exists.
    static func optionalBias(_ gc: GoldenCase, key: String = "bias") throws -> Tensor? {
        let want = try bool(gc, "bias", default: true)
        if !want { return nil }
        guard gc.hasParam(key) else { throw ParityError.unsupported("\(gc.name): attr bias is true but param.\(key) is missing") }
        return try gc.param(key)
    }

    static func requireZero(_ gc: GoldenCase, _ key: String) throws {
        if let v = gc.attrs[key], !v.isNull {
            guard let d = v.double, d == 0 else {
                throw ParityError.unsupported("\(gc.name): \(key) = \(v.jsonText) (only 0 is supported)")
            }
        }
    }

    // MARK: Handlers

    static func conv2d(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        try checkKnown(gc, ["stride", "padding", "dilation", "groups", "bias", "pad", "activation"])
        let x = try gc.input("x")
        let w = try gc.param("weight")
        guard x.rank == 4, w.rank == 4 else {
            throw ParityError.unsupported("\(gc.name): conv2d needs x [N,C,H,W] and weight [O,I,kH,kW], got \(x.shape), \(w.shape)")
        }
        let stride = try pair(gc, "stride", default: (1, 1))
        let padding = try pair(gc, "padding", default: (0, 0))
        let dilation = try pair(gc, "dilation", default: (1, 1))
        let groups = try int(gc, "groups", default: 1)
        var prePad = [0, 0, 0, 0]
        if let v = gc.attrs["pad"], !v.isNull {
            guard let a = v.ints, a.count == 4 else {
                throw ParityError.unsupported("\(gc.name): attr pad = \(v.jsonText) is not [left, right, top, bottom]")
            }
            prePad = a
        }
        var act = Activation.none
        if let v = gc.attrs["activation"], !v.isNull {
            guard let s = v.string, let a = Activation(rawValue: s) else {
                throw ParityError.unsupported("\(gc.name): activation \(v.jsonText)")
            }
            act = a
        }
        let p = Conv2dParameters(inChannels: x.shape[1], outChannels: w.shape[0], kernelH: w.shape[2], kernelW: w.shape[3],
                                 strideH: stride.0, strideW: stride.1, padH: padding.0, padW: padding.1,
                                 dilationH: dilation.0, dilationW: dilation.1, groups: groups, prePad: prePad, activation: act)
        let op = try Conv2dOperator(p, weight: w, bias: try optionalBias(gc))
        return ["y": .float(try op.checkedCall(x))]
    }

    static func convTranspose2d(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        try checkKnown(gc, ["stride", "padding", "output_padding", "dilation", "groups", "bias"])
        let x = try gc.input("x")
        let w = try gc.param("weight")
        guard x.rank == 4, w.rank == 4 else {
            throw ParityError.unsupported("\(gc.name): conv_transpose2d needs x [N,C,H,W] and weight [I,O/g,kH,kW], got \(x.shape), \(w.shape)")
        }
        let stride = try pair(gc, "stride", default: (1, 1))
        let padding = try pair(gc, "padding", default: (0, 0))
        let outPad = try pair(gc, "output_padding", default: (0, 0))
        let dilation = try pair(gc, "dilation", default: (1, 1))
        let groups = try int(gc, "groups", default: 1)
        let p = ConvTranspose2dParameters(inChannels: w.shape[0], outChannels: w.shape[1] * groups,
                                          kernelH: w.shape[2], kernelW: w.shape[3],
                                          strideH: stride.0, strideW: stride.1, padH: padding.0, padW: padding.1,
                                          outputPaddingH: outPad.0, outputPaddingW: outPad.1,
                                          dilationH: dilation.0, dilationW: dilation.1, groups: groups)
        let op = try ConvTranspose2dOperator(p, weight: w, bias: try optionalBias(gc))
        return ["y": .float(try op(x))]
    }

    static func linear(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        try checkKnown(gc, ["bias"])
        let op = try LinearOperator(weight: try gc.param("weight"), bias: try optionalBias(gc))
        return ["y": .float(try op.checkedCall(try gc.input("x")))]
    }

    static func matmul(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        try checkKnown(gc, [])
        return ["y": .float(try MatMul.matmul(try gc.input("a"), try gc.input("b")))]
    }

    static func sdpa(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        try checkKnown(gc, ["is_causal", "scale", "dropout_p"])
        try requireZero(gc, "dropout_p")
        let causal = try bool(gc, "is_causal", default: false)
        var scale: Float? = nil
        if let v = gc.attrs["scale"], !v.isNull {
            guard let d = v.double else { throw ParityError.unsupported("\(gc.name): scale = \(v.jsonText)") }
            scale = Float(d)
        }
        var mask: Tensor? = nil
        if gc.presentInputs.contains("attn_mask") {
            if gc.dtype(of: "input.attn_mask") != .f32 {
                throw ParityError.unsupported("\(gc.name): only float attn_mask is supported")
            }
            mask = try gc.input("attn_mask")
        }
        let y = try Attention.scaledDotProductAttention(query: try gc.input("query"), key: try gc.input("key"),
                                                        value: try gc.input("value"), attnMask: mask,
                                                        isCausal: causal, scale: scale)
        return ["y": .float(y)]
    }

    static func mha(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        try checkKnown(gc, ["embed_dim", "num_heads", "batch_first", "bias", "dropout"])
        try requireZero(gc, "dropout")
        guard try bool(gc, "batch_first", default: true) else {
            throw ParityError.unsupported("\(gc.name): only batch_first=true is supported")
        }
        let e = try int(gc, "embed_dim", default: nil)
        let h = try int(gc, "num_heads", default: nil)
        let hasBias = try bool(gc, "bias", default: true)
        let m = try MultiHeadAttention(embedDim: e, numHeads: h,
                                       inProjWeight: try gc.param("in_proj_weight"),
                                       inProjBias: hasBias ? try gc.param("in_proj_bias") : nil,
                                       outProjWeight: try gc.param("out_proj.weight"),
                                       outProjBias: hasBias ? try gc.param("out_proj.bias") : nil)
        let q = try gc.input("query"), k = try gc.input("key"), v = try gc.input("value")
        return ["y": .float(try m(query: q, key: k, value: v))]
    }
}
