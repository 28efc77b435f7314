import Foundation

/// The kind of a pixel-decoder block (spec 3.2).
public enum KMaXBlockType: String, Sendable, Hashable, Codable {
    /// Axial-attention block: filters `[2b, b, 4b]`.
    case axial
    /// Bottleneck block: filters `[b, b, 4b]`.
    case bottleneck
}

/// One `SingleBlock` of the pixel decoder (spec 3.2): `gelu(x)` first (also the shortcut's input), 1x1 ConvBN+GELU,
/// axial attention + GELU or 3x3 ConvBN+GELU, 1x1 ConvBN, plus the (projected) shortcut. Keys relative to the block.
struct KMaXSingleBlock: Sendable {
    let type: KMaXBlockType
    let cin: Int
    let filters: Int
    let conv1: KMaXPointwise
    let heightAxis: KMaXAxialAttention?
    let widthAxis: KMaXAxialAttention?
    let conv2: KMaXSpatialConv?
    let conv3: KMaXPointwise
    let shortcut: KMaXPointwise?

    /// Output width `4b`.
    var cout: Int { 4 * filters }

    static func load(_ r: KMaXWeightReader, _ prefix: String, type: KMaXBlockType, cin: Int, filters b: Int,
                     heads: Int, maxSpan: Int, eps: Double) throws -> KMaXSingleBlock {
        let p = prefix.isEmpty ? "" : prefix + "."
        let f0 = type == .axial ? 2 * b : b
        let conv1 = try KMaXPointwise.load(r, p + "_conv1_bn_act", cin: cin, cout: f0, activation: .gelu, eps: eps)
        var ha: KMaXAxialAttention? = nil, wa: KMaXAxialAttention? = nil, c2: KMaXSpatialConv? = nil
        switch type {
        case .axial:
            guard b % heads == 0 else { throw ModelConfigError.invalidField(model: "kmax", field: "dec_channels", message: "\(b) is not a multiple of num_heads \(heads)") }
            ha = try KMaXAxialAttention.load(r, p + "_attention._height_axis", cin: 2 * b, keyDepth: b, valueDepth: 2 * b,
                                             heads: heads, maxSpan: maxSpan, eps: eps)
            wa = try KMaXAxialAttention.load(r, p + "_attention._width_axis", cin: 2 * b, keyDepth: b, valueDepth: 2 * b,
                                             heads: heads, maxSpan: maxSpan, eps: eps)
        case .bottleneck:
            c2 = try KMaXSpatialConv.load(r, p + "_conv2_bn_act", cin: b, cout: b, kernel: 3, groups: 1, activation: .gelu, eps: eps)
        }
        let conv3 = try KMaXPointwise.load(r, p + "_conv3_bn", cin: f0, cout: 4 * b, activation: .none, eps: eps)
        let sc: KMaXPointwise? = cin != 4 * b
            ? try KMaXPointwise.load(r, p + "_shortcut", cin: cin, cout: 4 * b, activation: .none, eps: eps) : nil
        return KMaXSingleBlock(type: type, cin: cin, filters: b, conv1: conv1, heightAxis: ha, widthAxis: wa, conv2: c2, conv3: conv3, shortcut: sc)
    }

    /// Runs the block on `x [cin, h, w]`; returns `[4b, h, w]` and, when `withAttention` is set and the block is
    /// axial, the axial-attention output `[2b, h, w]` (before its GELU).
    /// - Parameters:
    ///   - inputIsActivated: `x` already is `gelu(input)` (the block's first op, e.g. fused into the previous block).
    ///   - activateOutput: return `gelu(output)` instead of the output (fused into the residual sum), for a next
    ///     block that starts with that GELU.
    func run(_ x: [Float], h: Int, w: Int, withAttention: Bool = false, inputIsActivated: Bool = false,
             activateOutput: Bool = false) throws -> (y: [Float], attention: [Float]?) {
        let n = h * w
        let g = inputIsActivated ? x : KMaXMath.gelu(x)
        var out = shortcut.map { $0(g, n: n) } ?? g              // the shortcut; conv3 accumulates onto it
        let y = conv1(g, n: n)
        let act: Activation = activateOutput ? .gelu : .none
        var attn: [Float]? = nil
        if let ha = heightAxis, let wa = widthAxis {
            // Both axes and conv3 on position-major maps: no transpose between the GEMMs.
            let a1 = try y.withUnsafeBufferPointer { p -> [Float] in
                guard let b = p.baseAddress else { return [] }
                return try ha.positionMajor(b, inputPositionMajor: false, h: h, w: w, alongHeight: true)
            }
            var a2 = try a1.withUnsafeBufferPointer { p -> [Float] in
                guard let b = p.baseAddress else { return [] }
                return try wa.positionMajor(b, inputPositionMajor: true, h: h, w: w, alongHeight: false)
            }
            if withAttention { attn = KMaXMath.transposed(a2, rows: n, cols: wa.valueDepth) }
            a2.withUnsafeMutableBufferPointer { p in
                guard let b = p.baseAddress else { return }
                KMaXMath.applyParallel(.gelu, b, count: p.count)
            }
            a2.withUnsafeBufferPointer { p in
                guard let b = p.baseAddress else { return }
                conv3.accumulate(onto: &out, b, n: n, inputPositionMajor: true, then: act)
            }
        } else {
            let y2 = conv2.map { $0(y, h: h, w: w) } ?? y
            y2.withUnsafeBufferPointer { p in
                guard let b = p.baseAddress else { return }
                conv3.accumulate(onto: &out, b, n: n, inputPositionMajor: false, then: act)
            }
        }
        return (out, attn)
    }
}
