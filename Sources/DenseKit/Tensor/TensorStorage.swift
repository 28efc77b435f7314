import Foundation

/// Owner of a float32 buffer: 64-byte aligned heap memory, or a read-only view into
/// memory owned by someone else (a memory-mapped weights file), kept alive by `owner`.
@usableFromInline
final class TensorStorage: @unchecked Sendable {
    /// Alignment of every heap allocation, in bytes (one cache line, an AVX-512 register).
    static let alignment = 64

    @usableFromInline let pointer: UnsafeMutablePointer<Float>
    @usableFromInline let count: Int
    /// True when the memory belongs to `owner` and must never be written.
    @usableFromInline let readOnly: Bool
    private let owner: AnyObject?
    private let ownsMemory: Bool

    /// Aligned heap storage for `count` floats, zero-filled unless `zeroed` is false (then the caller writes
    /// every element before anything reads it: a kernel output that is fully overwritten needs no zeroing pass).
    @usableFromInline
    init(count: Int, zeroed: Bool = true) {
        precondition(count >= 0)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride,
                                                   alignment: TensorStorage.alignment)
        if zeroed {
            raw.initializeMemory(as: Float.self, repeating: 0, count: max(count, 1))
        } else {
            raw.bindMemory(to: Float.self, capacity: max(count, 1))
        }
        self.pointer = raw.assumingMemoryBound(to: Float.self)
        self.count = count
        self.readOnly = false
        self.owner = nil
        self.ownsMemory = true
    }

    /// A read-only view of `count` floats at `pointer`, kept valid by `owner`.
    init(borrowing pointer: UnsafePointer<Float>, count: Int, owner: AnyObject) {
        self.pointer = UnsafeMutablePointer(mutating: pointer)
        self.count = count
        self.readOnly = true
        self.owner = owner
        self.ownsMemory = false
    }

    @usableFromInline
    func copy() -> TensorStorage {
        let s = TensorStorage(count: count)
        s.pointer.update(from: pointer, count: count)
        return s
    }

    deinit {
        if ownsMemory { UnsafeMutableRawPointer(pointer).deallocate() }
    }
}
