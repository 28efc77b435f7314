import Foundation

/// Where one value (activation) lives while a plan runs.
///
/// The value has shape `shape` (`shape[0]` is the batch `N`); sample `n` holds
/// `sampleCount` contiguous floats starting at `base + n * sampleStride`. For a value
/// that owns its buffer `sampleStride == sampleCount`; for a value written straight
/// into a channel slice of a concatenation, `sampleStride` is the concatenation's
/// per-sample size (NCHW channel slices of one sample are contiguous).
public struct ValueBuffer {
    /// First float of sample 0.
    public let base: UnsafeMutablePointer<Float>
    /// The value's shape, batch first.
    public let shape: [Int]
    /// Floats between the starts of two consecutive samples.
    public let sampleStride: Int
    /// Floats in one sample (the product of `shape[1...]`).
    public let sampleCount: Int

    /// Creates a view. - Precondition: `shape` has rank >= 1.
    public init(base: UnsafeMutablePointer<Float>, shape: [Int], sampleStride: Int) {
        self.base = base
        self.shape = shape
        self.sampleCount = shape.dropFirst().reduce(1, *)
        self.sampleStride = sampleStride
    }

    /// Batch size `shape[0]`.
    @inline(__always) public var batch: Int { shape[0] }
    /// True when all samples are packed back to back (`N * sampleCount` contiguous floats).
    @inline(__always) public var isContiguous: Bool { shape[0] <= 1 || sampleStride == sampleCount }
    /// Start of sample `n`.
    @inline(__always) public func sample(_ n: Int) -> UnsafeMutablePointer<Float> { base + n * sampleStride }
}

/// A typed layer that a `Graph` node runs.
///
/// A layer owns its prepared parameters (packed, BN-folded at construction) and is
/// immutable afterwards, so one instance may run on several threads at once. It
/// declares its output shapes from its input shapes before anything runs
/// (`outputShapes(for:)`), asks for scratch memory (`workspaceCount(for:)`), and
/// computes with `forward`, which must not allocate activation memory: every input,
/// output and the workspace are planned by the `ExecutionPlan`.
///
/// Outputs may be strided per sample (`ValueBuffer.sampleStride`), because the plan
/// writes producers straight into a concatenation's channel slice; inputs may be
/// strided for the same reason. A layer must never write its inputs.
public protocol GraphLayer: Sendable {
    /// Short operation name used in errors and profiles (`conv2d`, `max_pool2d`, ...).
    var opName: String { get }
    /// Number of inputs the layer takes (`nil`: any number >= 1).
    var inputCount: Int? { get }
    /// Output shapes for the given input shapes (each batch first).
    /// - Throws: `LayerShapeError` when the inputs do not fit the layer.
    func outputShapes(for inputShapes: [[Int]]) throws -> [[Int]]
    /// Scratch floats `forward` needs for these input shapes (0 if none).
    func workspaceCount(for inputShapes: [[Int]]) -> Int
    /// Floating-point operations (a multiply-add counts 2) for these input shapes.
    func flops(for inputShapes: [[Int]]) -> Double
    /// Computes the outputs. Shapes are the ones `outputShapes(for:)` returned;
    /// `workspace` holds at least `workspaceCount(for:)` floats (nil when 0).
    func forward(inputs: [ValueBuffer], outputs: [ValueBuffer], workspace: UnsafeMutablePointer<Float>?)
}

extension GraphLayer {
    /// Default: one input.
    public var inputCount: Int? { 1 }
    /// Default: no scratch memory.
    public func workspaceCount(for inputShapes: [[Int]]) -> Int { 0 }
    /// Default: not counted.
    public func flops(for inputShapes: [[Int]]) -> Double { 0 }
}

/// Shape helpers shared by layers.
enum ShapeText {
    /// `[1, 3, 64, 64]`.
    static func of(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ", ") + "]" }
    /// `[1, 3, 64, 64], [1, 8, 64, 64]`.
    static func of(_ ss: [[Int]]) -> String { ss.map(of).joined(separator: ", ") }
}
