import CImageCodecs
import Foundation

/// Decodes PNG and JPEG files into upright RGB8 images.
///
/// The decode rule (exact, the one `shared/data/README.md` states):
/// - output RGB, 8 bits per channel, upright (JPEG EXIF orientation applied);
/// - alpha dropped, not composited; 16-bit samples reduced by `v >> 8`; gray of
///   1/2/4 bits scaled by 255/(2^b - 1); gray replicated to three channels;
///   palettes expanded through PLTE with tRNS ignored; no gamma or colour management;
/// - JPEG decoded with libjpeg-turbo's defaults (ISLOW IDCT, fancy upsampling);
///   4-component (CMYK, YCCK) as `R = (C*K + 127) / 255` (likewise G from M, B from Y)
///   on the values libjpeg delivers;
/// - corrupt data is refused: CRC errors (IHDR, IDAT), truncation, and every libjpeg
///   warning (e.g. "Premature end of JPEG file") are errors.
///
/// The format is detected from the first bytes, never from the file name. The pixel
/// count is checked from the header before any pixel memory is allocated.
/// All functions are thread-safe.
public enum ImageDecoder {
    /// Decodes the file at `path`.
    /// - Returns: the upright RGB8 image (`height * width * 3` bytes, see ``RGBImage``)
    ///   and the header info (stored and upright sizes, orientation, colour type).
    /// - Throws: ``ImageError``: `.unreadableFile`, `.unknownFormat`, `.corruptData`,
    ///   `.tooLarge` (stored width x height above `options.maxPixels`), `.invalidArgument`
    ///   (non-positive `maxPixels`).
    public static func decode(path: String, options: ImageDecodeOptions = ImageDecodeOptions()) throws
        -> (image: RGBImage, info: ImageInfo) {
        try decode(data: ImageFileReader.read(path), name: path, options: options)
    }

    /// Decodes in-memory PNG or JPEG bytes. `name` is used in error messages only.
    /// - Throws: as ``decode(path:options:)`` (never `.unreadableFile`).
    public static func decode(data: Data, name: String, options: ImageDecodeOptions = ImageDecodeOptions()) throws
        -> (image: RGBImage, info: ImageInfo) {
        let info = try probe(data: data, name: name)
        try checkLimit(info, name: name, maxPixels: options.maxPixels)
        let byteCount = info.pixelCount * 3 // <= 3 * maxPixels, no overflow
        let r = CodecBridge.decodeRGB8(data, maxPixels: options.maxPixels, byteCount: byteCount)
        guard let (pixels, cinfo) = r.value else { throw error(status: r.status, message: r.message, name: name) }
        let decodedInfo = CodecBridge.imageInfo(cinfo)
        guard decodedInfo.storedWidth == info.storedWidth, decodedInfo.storedHeight == info.storedHeight else {
            throw ImageError.corruptData(path: name, reason: "header changed between probe and decode")
        }
        let stored = RGBImage(uncheckedWidth: info.storedWidth, height: info.storedHeight, pixels: pixels)
        let image = options.applyOrientation ? stored.applyingOrientation(info.orientation) : stored
        return (image, decodedInfo)
    }

    /// Reads the header of the file at `path` (format, sizes, colour type,
    /// EXIF orientation) without decoding pixels. No pixel limit is applied.
    /// - Throws: ``ImageError``: `.unreadableFile`, `.unknownFormat`, `.corruptData`.
    public static func probe(path: String) throws -> ImageInfo {
        try probe(data: ImageFileReader.read(path), name: path)
    }

    /// Reads the header of in-memory PNG or JPEG bytes; `name` is used in error messages.
    /// - Throws: ``ImageError``: `.unknownFormat`, `.corruptData`.
    public static func probe(data: Data, name: String) throws -> ImageInfo {
        if data.isEmpty { throw ImageError.corruptData(path: name, reason: "file is empty (0 bytes)") }
        guard ImageFormat.detect(data) != nil else { throw ImageError.unknownFormat(path: name) }
        let r = CodecBridge.probe(data)
        guard let c = r.value else { throw error(status: r.status, message: r.message, name: name) }
        return CodecBridge.imageInfo(c)
    }

    /// Decodes a gray or palette PNG into its stored sample values, unscaled
    /// (16-bit depth maps, 8-bit label maps, palette indices). Row-major
    /// `height * width` samples; no orientation (PNG has none).
    /// - Throws: ``ImageError``: as ``decode(path:options:)``, plus `.unsupported`
    ///   for JPEGs and for PNG colour types other than gray and palette.
    public static func decodeGray(path: String, options: ImageDecodeOptions = ImageDecodeOptions()) throws
        -> GrayImage {
        try decodeGray(data: ImageFileReader.read(path), name: path, options: options)
    }

    /// In-memory form of ``decodeGray(path:options:)``; `name` is used in error messages.
    public static func decodeGray(data: Data, name: String, options: ImageDecodeOptions = ImageDecodeOptions()) throws
        -> GrayImage {
        let info = try probe(data: data, name: name)
        guard info.format == .png, info.colorType == "gray" || info.colorType == "palette" else {
            throw ImageError.unsupported(
                path: name, reason: "\(info.format.rawValue) \(info.colorType) image; expected a gray or palette PNG")
        }
        try checkLimit(info, name: name, maxPixels: options.maxPixels)
        let r = CodecBridge.decodeSamples(data, maxPixels: options.maxPixels, count: info.pixelCount)
        guard let (values, cinfo) = r.value else { throw error(status: r.status, message: r.message, name: name) }
        return GrayImage(uncheckedWidth: Int(cinfo.width), height: Int(cinfo.height),
                         bitDepth: Int(cinfo.bit_depth), values: values)
    }

    // MARK: - helpers

    static func checkLimit(_ info: ImageInfo, name: String, maxPixels: Int) throws {
        guard maxPixels > 0 else {
            throw ImageError.invalidArgument("maxPixels must be positive (is \(maxPixels))")
        }
        guard info.storedWidth > 0, info.storedHeight > 0 else {
            throw ImageError.corruptData(path: name, reason: "image has zero width or height")
        }
        if info.pixelCount > maxPixels {
            throw ImageError.tooLarge(path: name, width: info.storedWidth, height: info.storedHeight, limit: maxPixels)
        }
    }

    static func error(status: Int32, message: String, name: String) -> ImageError {
        switch status {
        case Int32(DK_ERR_UNKNOWN_FORMAT): return .unknownFormat(path: name)
        case Int32(DK_ERR_TOO_LARGE):
            return .corruptData(path: name, reason: message.isEmpty ? "image too large" : message)
        case Int32(DK_ERR_UNSUPPORTED): return .unsupported(path: name, reason: message)
        case Int32(DK_ERR_NOMEM): return .corruptData(path: name, reason: "out of memory: \(message)")
        case Int32(DK_ERR_ARGUMENT): return .invalidArgument(message)
        default: return .corruptData(path: name, reason: message.isEmpty ? "decode failed" : message)
        }
    }
}
