import Foundation

/// An error from reading or writing a weights file.
///
/// `description` is one readable line that names the file and, where there is one,
/// the tensor; shape problems give the expected and the found shape. Names coming
/// from an untrusted file are escaped (control characters) and shortened, so the
/// line stays one line.
public enum WeightsError: Error, CustomStringConvertible, Sendable {
    /// The file could not be opened, mapped, written or renamed.
    case io(file: String, reason: String)
    /// The file as a whole is malformed (header length, header JSON, tensor table).
    case malformed(file: String, reason: String)
    /// One tensor's entry in the header is invalid (dtype, shape, offsets, overlap).
    case invalidTensor(file: String, tensor: String, reason: String)
    /// No tensor of that name in the file.
    case missingTensor(file: String, tensor: String)
    /// The tensor's dtype cannot be read as requested (for example `I64` as float).
    case unsupportedDType(file: String, tensor: String, dtype: SafeTensorsDType, wanted: String)
    /// The tensor's shape differs from the one the caller expected.
    case shapeMismatch(file: String, tensor: String, expected: [Int], found: [Int])
    /// A writer was given something it cannot store (duplicate or reserved name,
    /// a dtype that does not fit the tensor kind).
    case invalidArgument(tensor: String, reason: String)

    public var description: String {
        switch self {
        case let .io(file, reason):
            return "\(Self.clean(file)): \(reason)"
        case let .malformed(file, reason):
            return "\(Self.clean(file)): invalid safetensors file: \(reason)"
        case let .invalidTensor(file, tensor, reason):
            return "\(Self.clean(file)): tensor \"\(Self.clean(tensor))\": \(reason)"
        case let .missingTensor(file, tensor):
            return "\(Self.clean(file)): no tensor named \"\(Self.clean(tensor))\""
        case let .unsupportedDType(file, tensor, dtype, wanted):
            return "\(Self.clean(file)): tensor \"\(Self.clean(tensor))\" has dtype \(dtype.rawValue), cannot be read as \(wanted)"
        case let .shapeMismatch(file, tensor, expected, found):
            return "\(Self.clean(file)): tensor \"\(Self.clean(tensor))\": expected shape \(expected), found \(found)"
        case let .invalidArgument(tensor, reason):
            return "safetensors writer: tensor \"\(Self.clean(tensor))\": \(reason)"
        }
    }

    /// Escapes control characters and shortens very long text so a message stays one line.
    static func clean(_ s: String, limit: Int = 200) -> String {
        var out = ""
        var n = 0
        for scalar in s.unicodeScalars {
            if n >= limit { out += "..."; break }
            if scalar.value < 0x20 || scalar.value == 0x7F || scalar == "\u{2028}" || scalar == "\u{2029}" {
                out += String(format: "\\u{%X}", scalar.value)
            } else {
                out.unicodeScalars.append(scalar)
            }
            n += 1
        }
        return out
    }
}
