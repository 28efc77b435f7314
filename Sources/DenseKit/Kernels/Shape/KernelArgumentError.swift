/// An argument of a tensor-level kernel wrapper that the kernel cannot accept: wrong rank,
/// mismatched sizes, an index out of range, an unsupported option.
///
/// The pointer-level kernels (`PoolKernels`, `NormKernels`, ...) trust their sizes; the
/// `Tensor` wrappers check them and throw this error instead of trapping.
public struct KernelArgumentError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What was wrong, e.g. `maxPool2d: expected a rank-4 NCHW tensor, got [3, 4]`.
    public let message: String

    /// Creates an error with a message.
    public init(_ message: String) { self.message = message }

    /// The message.
    public var description: String { message }
}

extension Tensor {
    /// Throws unless the tensor has rank `rank`. Used by the kernel wrappers.
    @usableFromInline
    func requireRank(_ rank: Int, _ op: String) throws {
        if shape.count != rank {
            throw KernelArgumentError("\(op): expected a rank-\(rank) tensor, got shape \(shape)")
        }
    }
}

/// Normalises a possibly negative dimension index (`-1` is the last) for a tensor of rank `rank`.
/// - Throws: `KernelArgumentError` when it is out of range.
@usableFromInline
func normalizedDim(_ dim: Int, rank: Int, _ op: String) throws -> Int {
    let d = dim < 0 ? dim + rank : dim
    if d < 0 || d >= max(rank, 1) {
        throw KernelArgumentError("\(op): dim \(dim) out of range for rank \(rank)")
    }
    return d
}

/// `(outer, size, inner)` of a row-major shape split at dimension `d`: the product of the
/// dimensions before `d`, `shape[d]`, and the product after `d`.
@usableFromInline
func splitShape(_ shape: [Int], at d: Int) -> (outer: Int, size: Int, inner: Int) {
    if shape.isEmpty { return (1, 1, 1) }
    let outer = shape[..<d].reduce(1, *)
    let inner = shape[(d + 1)...].reduce(1, *)
    return (outer, shape[d], inner)
}
