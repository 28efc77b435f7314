import Foundation

/// Errors raised when a convolution is built or called with inconsistent shapes or parameters.
public enum ConvError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A parameter is out of range (for example a zero kernel size or a negative padding).
    case invalidParameter(String)
    /// A weight, bias or input tensor has the wrong shape.
    case shapeMismatch(String)

    /// A one-line message naming the problem.
    public var description: String {
        switch self {
        case .invalidParameter(let m): return "convolution: invalid parameter: \(m)"
        case .shapeMismatch(let m): return "convolution: shape mismatch: \(m)"
        }
    }
}

/// The hyper-parameters of a 2-D convolution, as `torch.nn.Conv2d` takes them, plus an
/// optional asymmetric zero pre-padding and a fused activation.
///
/// The computation is `activation(conv2d(F.pad(x, prePad), weight, bias, stride, padding, dilation, groups))`,
/// matching `torch.nn.functional.conv2d` after `torch.nn.functional.pad` (see the `conv2d`
/// section of `golden/ops/INDEX.md`). Activations are NCHW.
public struct Conv2dParameters: Sendable, Hashable {
    /// Input channels `C_in`.
    public var inChannels: Int
    /// Output channels `C_out`.
    public var outChannels: Int
    /// Kernel height `kH`.
    public var kernelH: Int
    /// Kernel width `kW`.
    public var kernelW: Int
    /// Vertical stride `sH` (>= 1).
    public var strideH = 1
    /// Horizontal stride `sW` (>= 1).
    public var strideW = 1
    /// Zero rows added above and below (PyTorch `padding[0]`).
    public var padH = 0
    /// Zero columns added left and right (PyTorch `padding[1]`).
    public var padW = 0
    /// Vertical spacing between kernel taps (>= 1).
    public var dilationH = 1
    /// Horizontal spacing between kernel taps (>= 1).
    public var dilationW = 1
    /// Channel groups; `groups == inChannels` is depthwise (`outChannels = m * inChannels`).
    public var groups = 1
    /// Extra zero padding `[left, right, top, bottom]` (F.pad order) applied before `padding`;
    /// used for asymmetric / TF-SAME padding. All entries >= 0.
    public var prePad: [Int] = [0, 0, 0, 0]
    /// Activation applied after the bias (fused epilogue).
    public var activation: Activation = .none

    /// Creates convolution parameters; the defaults are PyTorch's.
    public init(inChannels: Int, outChannels: Int, kernelH: Int, kernelW: Int,
                strideH: Int = 1, strideW: Int = 1, padH: Int = 0, padW: Int = 0,
                dilationH: Int = 1, dilationW: Int = 1, groups: Int = 1,
                prePad: [Int] = [0, 0, 0, 0], activation: Activation = .none) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelH = kernelH
        self.kernelW = kernelW
        self.strideH = strideH
        self.strideW = strideW
        self.padH = padH
        self.padW = padW
        self.dilationH = dilationH
        self.dilationW = dilationW
        self.groups = groups
        self.prePad = prePad
        self.activation = activation
    }

    /// Pre-padding on the left (0 when `prePad` is malformed; `validate()` reports that).
    var prePadLeft: Int { prePad.count == 4 ? prePad[0] : 0 }
    /// Pre-padding on the right.
    var prePadRight: Int { prePad.count == 4 ? prePad[1] : 0 }
    /// Pre-padding on top.
    var prePadTop: Int { prePad.count == 4 ? prePad[2] : 0 }
    /// Pre-padding at the bottom.
    var prePadBottom: Int { prePad.count == 4 ? prePad[3] : 0 }

    /// Total zero rows before input row 0 (`padH + top`).
    var effectivePadTop: Int { padH + prePadTop }
    /// Total zero columns before input column 0 (`padW + left`).
    var effectivePadLeft: Int { padW + prePadLeft }

    /// Input channels per group.
    var inChannelsPerGroup: Int { groups > 0 ? inChannels / groups : 0 }
    /// Output channels per group.
    var outChannelsPerGroup: Int { groups > 0 ? outChannels / groups : 0 }

    /// True for a depthwise convolution (each group reads one input channel).
    public var isDepthwise: Bool { groups > 1 && groups == inChannels }

    /// Output size for an input of `height x width`:
    /// `H_out = floor((H + top + bottom + 2*padH - dilationH*(kernelH-1) - 1) / strideH) + 1` (same for W).
    /// A result <= 0 means the input is too small for the kernel.
    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        let hp = height + prePadTop + prePadBottom + 2 * padH
        let wp = width + prePadLeft + prePadRight + 2 * padW
        let eh = dilationH * (kernelH - 1) + 1
        let ew = dilationW * (kernelW - 1) + 1
        func out(_ padded: Int, _ extent: Int, _ stride: Int) -> Int {
            guard stride > 0, padded >= extent else { return 0 }
            return (padded - extent) / stride + 1
        }
        return (out(hp, eh, strideH), out(wp, ew, strideW))
    }

    /// Checks that every parameter is in range.
    /// - Throws: `ConvError.invalidParameter` naming the first problem (non-positive channels,
    ///   kernel, stride, dilation or groups; negative padding; channels not divisible by `groups`;
    ///   `prePad` not of 4 non-negative entries).
    public func validate() throws {
        func check(_ ok: Bool, _ message: @autoclosure () -> String) throws {
            if !ok { throw ConvError.invalidParameter(message()) }
        }
        try check(inChannels > 0, "inChannels must be > 0 (got \(inChannels))")
        try check(outChannels > 0, "outChannels must be > 0 (got \(outChannels))")
        try check(kernelH > 0 && kernelW > 0, "kernel size must be > 0 (got \(kernelH)x\(kernelW))")
        try check(strideH > 0 && strideW > 0, "stride must be > 0 (got \(strideH)x\(strideW))")
        try check(dilationH > 0 && dilationW > 0, "dilation must be > 0 (got \(dilationH)x\(dilationW))")
        try check(padH >= 0 && padW >= 0, "padding must be >= 0 (got \(padH)x\(padW))")
        try check(groups > 0, "groups must be > 0 (got \(groups))")
        try check(inChannels % groups == 0, "inChannels \(inChannels) is not divisible by groups \(groups)")
        try check(outChannels % groups == 0, "outChannels \(outChannels) is not divisible by groups \(groups)")
        try check(prePad.count == 4, "prePad must have 4 entries [left, right, top, bottom] (got \(prePad.count))")
        try check(prePad.allSatisfy { $0 >= 0 }, "prePad entries must be >= 0 (got \(prePad))")
        let limit = 1 << 24
        try check([inChannels, outChannels, kernelH, kernelW, strideH, strideW, padH, padW, dilationH, dilationW].allSatisfy { $0 < limit }
                  && prePad.allSatisfy { $0 < limit }, "a parameter exceeds \(limit)")
    }

    /// Checks an input shape against these parameters.
    /// - Throws: `ConvError.shapeMismatch` if the shape is not `[N, inChannels, H, W]` or the
    ///   output would be empty.
    func checkInput(shape: [Int]) throws -> (batch: Int, height: Int, width: Int) {
        guard shape.count == 4 else {
            throw ConvError.shapeMismatch("input must be [N, C, H, W], got \(shape)")
        }
        guard shape[1] == inChannels else {
            throw ConvError.shapeMismatch("input has \(shape[1]) channels, the convolution expects \(inChannels)")
        }
        let o = outputSize(height: shape[2], width: shape[3])
        guard o.height > 0, o.width > 0 else {
            throw ConvError.shapeMismatch("input \(shape[2])x\(shape[3]) is too small for a \(kernelH)x\(kernelW) kernel (dilation \(dilationH)x\(dilationW), padding \(padH)x\(padW), prePad \(prePad))")
        }
        return (shape[0], shape[2], shape[3])
    }
}
