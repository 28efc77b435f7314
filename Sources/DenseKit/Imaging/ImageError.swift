import Foundation

/// Errors of image decoding, encoding and writing.
///
/// `description` is one readable line that names the file (as the caller spelled
/// its path, or the `name` given with in-memory data), for example
/// `cannot decode photos/x.png: PNG IDAT: CRC error` or
/// `image.png: 100000x100000 pixels exceeds the limit of 100000000 pixels`.
public enum ImageError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The file could not be read (missing, a folder, no permission, I/O error).
    case unreadableFile(path: String, reason: String)
    /// The data starts with neither a PNG nor a JPEG signature.
    case unknownFormat(path: String)
    /// The codec refused the data (truncated, bad CRC, bad Huffman table, empty file, ...).
    case corruptData(path: String, reason: String)
    /// The header announces more pixels (width x height, as stored) than the configured limit.
    case tooLarge(path: String, width: Int, height: Int, limit: Int)
    /// A valid image of a kind the requested operation does not handle
    /// (for example an RGB PNG given to ``ImageDecoder/decodeGray(path:options:)``).
    case unsupported(path: String, reason: String)
    /// Arguments that describe no valid image (sizes, buffer lengths, palette, limits).
    case invalidArgument(String)
    /// The output file exists and overwriting was not allowed.
    case outputExists(path: String)
    /// The output could not be written (missing folder, no permission, disk full, ...).
    case unwritableOutput(path: String, reason: String)

    /// One line naming the file and the problem.
    public var description: String {
        switch self {
        case let .unreadableFile(path, reason):
            return "cannot read \(path): \(reason)"
        case let .unknownFormat(path):
            return "cannot decode \(path): unknown image format (not a PNG or JPEG signature)"
        case let .corruptData(path, reason):
            return "cannot decode \(path): \(reason)"
        case let .tooLarge(path, width, height, limit):
            return "\(path): \(width)x\(height) pixels exceeds the limit of \(limit) pixels"
        case let .unsupported(path, reason):
            return "cannot decode \(path): \(reason)"
        case let .invalidArgument(reason):
            return "invalid image argument: \(reason)"
        case let .outputExists(path):
            return "cannot write \(path): the file exists (overwrite was not allowed)"
        case let .unwritableOutput(path, reason):
            return "cannot write \(path): \(reason)"
        }
    }
}

extension ImageError: LocalizedError {
    /// Same as ``description``.
    public var errorDescription: String? { description }
}
