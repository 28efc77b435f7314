import Foundation

/// Max pooling (`nn.MaxPool2d`), PyTorch's output-size rule including `ceil_mode`
/// (windows cut at the border take the max of the existing elements only).
///
/// Input `[N, C, H, W]`, output `[N, C, H_out, W_out]` from `Pool2dParameters.outputSize`.
/// VoVNet's inter-stage pool is `kernel 3, stride 2, padding 0, ceil_mode` (spec 1.6),
/// giving `floor(H / 2)`.
public final class MaxPool2d: GraphLayer {
    /// Window geometry.
    public let parameters: Pool2dParameters
    /// `max_pool2d`.
    public var opName: String { "max_pool2d" }

    /// Creates the layer.
    /// - Throws: `GraphError.invalidWeights` when the geometry is invalid (non-positive
    ///   kernel or stride, padding above half the kernel).
    public init(parameters: Pool2dParameters, name: String = "max_pool2d") throws {
        guard parameters.isValid else { throw GraphError.invalidWeights(layer: name, message: "invalid pooling geometry \(parameters)") }
        self.parameters = parameters
    }

    /// - Throws: `LayerShapeError` when the input is not 4-d or gives an empty output
    ///   (PyTorch also refuses a size-1 input to VoVNet's 3/2 pool).
    public func outputShapes(for s: [[Int]]) throws -> [[Int]] {
        let x = s[0]
        try LayerSupport.requireNCHW(x)
        let o = parameters.outputSize(height: x[2], width: x[3])
        guard o.height > 0, o.width > 0, x[2] > 0, x[3] > 0 else {
            throw LayerShapeError("input \(x[2])x\(x[3]) is too small for a \(parameters.kernelH)x\(parameters.kernelW) pool")
        }
        return [[x[0], x[1], o.height, o.width]]
    }

    /// One comparison per window tap.
    public func flops(for s: [[Int]]) -> Double {
        let x = s[0]
        let o = parameters.outputSize(height: x[2], width: x[3])
        return Double(x[0] * x[1] * o.height * o.width * parameters.kernelH * parameters.kernelW)
    }

    /// All planes at once for packed batches, sample by sample otherwise.
    public func forward(inputs: [ValueBuffer], outputs: [ValueBuffer], workspace: UnsafeMutablePointer<Float>?) {
        let x = inputs[0], y = outputs[0]
        let c = x.shape[1], h = x.shape[2], w = x.shape[3]
        if x.isContiguous && y.isContiguous {
            PoolKernels.maxPool2d(x.base, planes: x.batch * c, height: h, width: w, parameters, y.base)
        } else {
            for n in 0..<x.batch { PoolKernels.maxPool2d(x.sample(n), planes: c, height: h, width: w, parameters, y.sample(n)) }
        }
    }
}
