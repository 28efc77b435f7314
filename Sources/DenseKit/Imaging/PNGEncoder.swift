import CImageCodecs
import Foundation

/// Encodes PNG files (libpng, zlib level 6, no interlacing) and writes them atomically.
///
/// All pixel buffers are row-major, rows top to bottom. Encoders return the
/// complete PNG file as `Data`; ``write(_:to:overwrite:)`` puts it on disk.
public enum PNGEncoder {
    /// An 8-bit RGB PNG (colour type 2).
    /// - Parameter pixels: `height * width * 3` bytes, R G B interleaved.
    /// - Throws: ``ImageError/invalidArgument(_:)`` for non-positive sides or a wrong buffer length.
    public static func encodeRGB8(width: Int, height: Int, pixels: [UInt8]) throws -> Data {
        let (w, h) = try dimensions(width, height)
        return try pixels.withUnsafeBytes { try encode(Int32(DK_PNG_RGB8), w, h, $0, palette: []) }
    }

    /// An 8-bit RGB PNG of `image`.
    /// - Throws: ``ImageError/invalidArgument(_:)`` when `image.pixels` has the wrong length.
    public static func encode(_ image: RGBImage) throws -> Data {
        try encodeRGB8(width: image.width, height: image.height, pixels: image.pixels)
    }

    /// An 8-bit grayscale PNG (colour type 0).
    /// - Parameter pixels: `height * width` bytes.
    /// - Throws: ``ImageError/invalidArgument(_:)`` for non-positive sides or a wrong buffer length.
    public static func encodeGray8(width: Int, height: Int, pixels: [UInt8]) throws -> Data {
        let (w, h) = try dimensions(width, height)
        return try pixels.withUnsafeBytes { try encode(Int32(DK_PNG_GRAY8), w, h, $0, palette: []) }
    }

    /// A 16-bit grayscale PNG (colour type 0, big-endian samples in the file as PNG
    /// requires), e.g. a depth map in millimetres.
    /// - Parameter values: `height * width` samples, 0...65535.
    /// - Throws: ``ImageError/invalidArgument(_:)`` for non-positive sides or a wrong buffer length.
    public static func encodeGray16(width: Int, height: Int, values: [UInt16]) throws -> Data {
        let (w, h) = try dimensions(width, height)
        return try values.withUnsafeBytes { try encode(Int32(DK_PNG_GRAY16), w, h, $0, palette: []) }
    }

    /// An 8-bit palette PNG (colour type 3), e.g. a colour-coded label map.
    /// - Parameters:
    ///   - indices: `height * width` palette indices, each `< palette.count`.
    ///   - palette: 1...256 entries `(r, g, b)`; no transparency (tRNS) is written.
    /// - Throws: ``ImageError/invalidArgument(_:)`` for non-positive sides, a wrong buffer
    ///   length, an empty or oversized palette, or an index outside the palette.
    public static func encodePalette(width: Int, height: Int, indices: [UInt8],
                                     palette: [(UInt8, UInt8, UInt8)]) throws -> Data {
        let (w, h) = try dimensions(width, height)
        guard (1...256).contains(palette.count) else {
            throw ImageError.invalidArgument("a PNG palette has 1 to 256 entries (got \(palette.count))")
        }
        let flat = palette.flatMap { [$0.0, $0.1, $0.2] }
        return try indices.withUnsafeBytes { try encode(Int32(DK_PNG_PALETTE8), w, h, $0, palette: flat) }
    }

    /// As the tuple-palette `encodePalette(width:height:indices:palette:)`,
    /// with the palette given as `[[r, g, b]]`.
    /// - Throws: ``ImageError/invalidArgument(_:)`` also when an entry does not have 3 values.
    public static func encodePalette(width: Int, height: Int, indices: [UInt8], palette: [[UInt8]]) throws -> Data {
        var triples: [(UInt8, UInt8, UInt8)] = []
        triples.reserveCapacity(palette.count)
        for (i, e) in palette.enumerated() {
            guard e.count == 3 else {
                throw ImageError.invalidArgument("palette entry \(i) has \(e.count) values, expected 3 (r, g, b)")
            }
            triples.append((e[0], e[1], e[2]))
        }
        return try encodePalette(width: width, height: height, indices: indices, palette: triples)
    }

    /// Writes `data` (any bytes, not only PNG) to `path` atomically, exactly as ``AtomicFile/write(_:to:overwrite:)``
    /// (the neutral name to use for other formats): a temporary file is written and synced in
    /// the same folder, then renamed over the target, so readers see either the old
    /// file or the complete new one, and a failure leaves no partial or temporary file.
    /// - Parameters:
    ///   - overwrite: when `false`, an existing target is never replaced (checked
    ///     before writing, and again atomically when the file is put in place).
    /// - Throws: ``ImageError/outputExists(path:)`` when the target exists and
    ///   `overwrite` is false; ``ImageError/unwritableOutput(path:reason:)`` when the
    ///   folder is missing or not writable, the target is a folder, or writing fails.
    public static func write(_ data: Data, to path: String, overwrite: Bool) throws {
        try AtomicFileWriter.write(data, to: path, overwrite: overwrite)
    }

    // MARK: - helpers

    static func dimensions(_ width: Int, _ height: Int) throws -> (UInt32, UInt32) {
        guard width > 0, height > 0, width <= Int(Int32.max), height <= Int(Int32.max) else {
            throw ImageError.invalidArgument("PNG size \(width)x\(height): each side must be 1...2147483647")
        }
        return (UInt32(width), UInt32(height))
    }

    static func encode(_ kind: Int32, _ w: UInt32, _ h: UInt32, _ bytes: UnsafeRawBufferPointer,
                       palette: [UInt8]) throws -> Data {
        let r = CodecBridge.encodePNG(kind: kind, width: w, height: h, bytes: bytes, palette: palette)
        guard let data = r.value else {
            if r.status == Int32(DK_ERR_NOMEM) { throw ImageError.invalidArgument("PNG encode: out of memory") }
            throw ImageError.invalidArgument(r.message)
        }
        return data
    }
}
