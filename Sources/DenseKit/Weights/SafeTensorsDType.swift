import Foundation

/// Element type of a tensor in a safetensors file, spelled as in the header (`"F32"`).
///
/// Only `f32`, `f16` and `bf16` convert to `Tensor` (float32); `i64` and `i32`
/// convert to `IndexTensor`. The others can be listed and skipped.
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL", f64 = "F64"

    /// Size of one element, in bytes.
    public var byteSize: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }
}

/// One tensor's entry in a safetensors header, validated.
public struct SafeTensorInfo: Sendable, Equatable {
    /// The tensor's name (its key in the header).
    public let name: String
    /// Element type.
    public let dtype: SafeTensorsDType
    /// Dimensions, outermost first; `[]` for a 0-d tensor (one element).
    public let shape: [Int]
    /// Bytes of the tensor, relative to the start of the data section
    /// (the byte after the header). Its length is `elementCount * dtype.byteSize`.
    public let byteRange: Range<Int>

    /// Number of elements (product of `shape`; 1 for a 0-d tensor).
    public var elementCount: Int { byteRange.count / dtype.byteSize }
}
