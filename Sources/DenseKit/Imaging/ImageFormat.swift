import Foundation

/// An image container format DenseKit can decode.
///
/// The format of input data is always detected from its first bytes (the PNG
/// signature or the JPEG SOI marker), never from a file name.
public enum ImageFormat: String, Sendable, Hashable, Codable {
    /// PNG (any colour type and bit depth, interlaced or not).
    case png
    /// JPEG / JFIF / EXIF (baseline, progressive, arithmetic-coded; gray, YCbCr, RGB, CMYK, YCCK).
    case jpeg

    /// The format announced by the first bytes of `data`, or `nil` when they are neither
    /// the 8-byte PNG signature nor the JPEG start-of-image marker `FF D8 FF`.
    public static func detect(_ data: Data) -> ImageFormat? {
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        if data.count >= 8, data.prefix(8).elementsEqual(png) { return .png }
        if data.count >= 3, data.prefix(3).elementsEqual([0xFF, 0xD8, 0xFF]) { return .jpeg }
        return nil
    }
}
