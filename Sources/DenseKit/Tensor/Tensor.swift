import Foundation

/// Memory layout of a 4-d activation tensor, or of a token sequence.
///
/// DenseKit follows PyTorch: activations are `NCHW` unless a layer says otherwise.
public enum TensorLayout: String, Sendable, Hashable, Codable {
    /// `[N, C, H, W]`, W fastest (PyTorch's default).
    case nchw
    /// `[N, H, W, C]`, C fastest (channels-last; BiFormer's attention blocks).
    case nhwc
    /// `[B, N, C]` token-major sequences (ViT, attention).
    case tokens
    /// Any other rank or meaning: a plain row-major array.
    case plain
}

/// A float32 tensor: a shape, a layout and row-major storage.
///
/// `Tensor` is a value type with copy-on-write storage: copies share memory until one
/// of them is mutated. Storage is 64-byte aligned. Element `i` of a row-major array
/// with shape `[d0, d1, ..., dk]` sits at the usual linear offset.
public struct Tensor: Sendable {
    /// The dimensions, outermost first (for example `[N, C, H, W]`).
    public private(set) var shape: [Int]
    /// What the dimensions mean; does not change the memory order of `shape`.
    public var layout: TensorLayout
    @usableFromInline var storage: TensorStorage

    /// Number of elements (the product of `shape`; 1 for a 0-d tensor).
    public var count: Int { storage.count }
    /// Number of dimensions.
    public var rank: Int { shape.count }

    /// A zero-filled tensor.
    /// - Parameters:
    ///   - shape: dimensions, each >= 0.
    ///   - layout: defaults to `.nchw` for rank 4 and `.plain` otherwise.
    public init(zeros shape: [Int], layout: TensorLayout? = nil) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.layout = layout ?? (shape.count == 4 ? .nchw : .plain)
        self.storage = TensorStorage(count: shape.reduce(1, *))
    }

    /// A tensor whose elements are NOT initialised: for kernel outputs that are fully overwritten before they are
    /// read (saves the zeroing pass of `init(zeros:)`). Internal: never hand one out before every element is written.
    init(uninitialized shape: [Int], layout: TensorLayout? = nil) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.layout = layout ?? (shape.count == 4 ? .nchw : .plain)
        self.storage = TensorStorage(count: shape.reduce(1, *), zeroed: false)
    }

    /// A tensor holding a copy of `values` (row-major) with the given shape.
    /// - Precondition: `values.count` equals the product of `shape`.
    public init(shape: [Int], values: [Float], layout: TensorLayout? = nil) {
        self.init(uninitialized: shape, layout: layout)   // every element is copied from `values` below
        precondition(values.count == count, "\(values.count) values for shape \(shape)")
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { storage.pointer.update(from: base, count: src.count) }
        }
    }

    /// A tensor of the given shape whose elements are produced by `body(i)` for linear index `i`.
    public init(shape: [Int], layout: TensorLayout? = nil, generator body: (Int) -> Float) {
        self.init(zeros: shape, layout: layout)
        let p = storage.pointer
        for i in 0..<count { p[i] = body(i) }
    }

    init(shape: [Int], layout: TensorLayout, storage: TensorStorage) {
        self.shape = shape
        self.layout = layout
        self.storage = storage
    }

    /// The elements as a Swift array (row-major copy).
    public var scalars: [Float] {
        Array(UnsafeBufferPointer(start: storage.pointer, count: count))
    }

    /// Element at a multi-dimensional index (slow; for tests and tools).
    public subscript(_ index: Int...) -> Float {
        get { storage.pointer[linearIndex(index)] }
        set { makeUnique(); storage.pointer[linearIndex(index)] = newValue }
    }

    func linearIndex(_ index: [Int]) -> Int {
        precondition(index.count == shape.count, "index rank \(index.count) for shape \(shape)")
        var off = 0
        for (i, d) in zip(index, shape) {
            precondition(i >= 0 && i < d, "index \(index) out of bounds for shape \(shape)")
            off = off * d + i
        }
        return off
    }

    /// Returns the same elements under a new shape with the same element count.
    /// - Precondition: the products agree.
    public func reshaped(_ newShape: [Int], layout: TensorLayout? = nil) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        return Tensor(shape: newShape, layout: layout ?? (newShape.count == 4 ? .nchw : .plain), storage: storage)
    }

    /// Read-only access to the contiguous elements.
    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer, count: storage.count))
    }

    /// Mutable access to the contiguous elements (copies first if the storage is shared).
    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        makeUnique()
        return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: storage.count))
    }

    @inlinable
    mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) || storage.readOnly {
            storage = storage.copy()
        }
    }
}

/// A tensor of 64-bit integers (indices, labels, cluster assignments), row-major.
public struct IndexTensor: Sendable, Equatable {
    /// The dimensions, outermost first.
    public var shape: [Int]
    /// The elements, row-major; `values.count` is the product of `shape`.
    public var values: [Int64]

    /// Creates an index tensor. - Precondition: `values.count` equals the product of `shape`.
    public init(shape: [Int], values: [Int64]) {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values for shape \(shape)")
        self.shape = shape
        self.values = values
    }
}
