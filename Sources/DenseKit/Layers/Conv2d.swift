import Foundation

/// 2-D convolution layer with an optional folded batch norm and a fused activation
/// (`act(bn(conv2d(x, W) + b))`, computed as one `Conv2dOperator` with prepared weights).
///
/// Input `[N, C_in, H, W]`, output `[N, C_out, H_out, W_out]` (NCHW), sizes from
/// `Conv2dParameters.outputSize`. Weights are `[C_out, C_in/groups, kH, kW]` as PyTorch
/// stores them; the operator packs them at construction, so a layer is ready to run
/// and immutable afterwards.
public final class Conv2d: GraphLayer {
    /// The convolution's parameters (including the fused activation).
    public let parameters: Conv2dParameters
    private let op: Conv2dOperator

    /// `conv2d`, or `dwconv2d` for a depthwise convolution.
    public var opName: String { parameters.isDepthwise ? "dwconv2d" : "conv2d" }

    /// A convolution with the given weight and optional bias.
    /// - Throws: `GraphError.invalidWeights` (naming `name`) when the parameters are out of
    ///   range or the tensors have the wrong shapes.
    public init(parameters: Conv2dParameters, weight: Tensor, bias: Tensor?, name: String = "conv2d") throws {
        do { self.op = try Conv2dOperator(parameters, weight: weight, bias: bias) } catch {
            throw GraphError.invalidWeights(layer: name, message: "\(error)")
        }
        self.parameters = parameters
    }

    /// A convolution followed by an inference batch norm (folded in float64 with the norm's
    /// own eps, see `WeightPreparation.foldBatchNorm`) and the activation in `parameters`.
    /// - Parameters:
    ///   - weight: `[C_out, C_in/groups, kH, kW]`; `bias`: the conv's own bias or nil.
    ///   - batchNorm: the norm over `C_out`.
    /// - Throws: `GraphError.invalidWeights` for inconsistent shapes or a non-positive variance.
    public convenience init(parameters: Conv2dParameters, weight: Tensor, bias: Tensor?, batchNorm: BatchNormParameters,
                            name: String = "conv2d") throws {
        let folded = try WeightPreparation.foldBatchNorm(weight: weight, bias: bias, bn: batchNorm, name: name)
        try self.init(parameters: parameters, weight: folded.weight, bias: folded.bias, name: name)
    }

    /// - Throws: `LayerShapeError` when the input is not `[N, C_in, H, W]` or is too small.
    public func outputShapes(for s: [[Int]]) throws -> [[Int]] {
        let x = s[0]
        try LayerSupport.requireNCHW(x)
        let p = parameters
        guard x[1] == p.inChannels else { throw LayerShapeError("expects \(p.inChannels) input channels, got \(x[1])") }
        let o = p.outputSize(height: x[2], width: x[3])
        guard o.height > 0, o.width > 0 else {
            throw LayerShapeError("input \(x[2])x\(x[3]) is too small for a \(p.kernelH)x\(p.kernelW) kernel with stride \(p.strideH)x\(p.strideW) and padding \(p.padH)x\(p.padW)")
        }
        return [[x[0], p.outChannels, o.height, o.width]]
    }

    /// The operator's im2col tile (0 for 1x1 and depthwise convolutions).
    public func workspaceCount(for s: [[Int]]) -> Int {
        let x = s[0]
        return max(op.workspaceCount(batch: x[0], height: x[2], width: x[3]), op.workspaceCount(batch: 1, height: x[2], width: x[3]))
    }

    /// `2 * N * C_out * H_out * W_out * C_in/groups * kH * kW`.
    public func flops(for s: [[Int]]) -> Double { op.flops(batch: s[0][0], height: s[0][2], width: s[0][3]) }

    /// One operator call for packed batches, one per sample for strided views.
    public func forward(inputs: [ValueBuffer], outputs: [ValueBuffer], workspace: UnsafeMutablePointer<Float>?) {
        let x = inputs[0], y = outputs[0]
        let h = x.shape[2], w = x.shape[3]
        if x.isContiguous && y.isContiguous {
            op.forward(input: x.base, batch: x.batch, height: h, width: w, output: y.base, workspace: workspace)
        } else {
            for n in 0..<x.batch {
                op.forward(input: x.sample(n), batch: 1, height: h, width: w, output: y.sample(n), workspace: workspace)
            }
        }
    }
}
