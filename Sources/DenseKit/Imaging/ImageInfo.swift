/// What an image header says, as reported by ``ImageDecoder/probe(path:)`` and the decoders.
///
/// Sizes are in pixels. `storedWidth`/`storedHeight` are the sizes in the file
/// (PNG IHDR, JPEG SOF); `width`/`height` are those of the upright image, which
/// differ from the stored ones for EXIF orientations 5 to 8 (swapped).
public struct ImageInfo: Sendable, Equatable {
    /// Container format (detected from the magic bytes).
    public let format: ImageFormat
    /// Stored colour model: `"gray"`, `"gray+alpha"`, `"rgb"`, `"rgba"`, `"palette"` (PNG);
    /// `"gray"`, `"ycbcr"`, `"rgb"`, `"cmyk"`, `"ycck"` (JPEG colour space as libjpeg reads it).
    public let colorType: String
    /// Bits per sample as stored: PNG 1, 2, 4, 8 or 16; JPEG the data precision (8).
    public let bitDepth: Int
    /// Stored components per pixel (PNG 1 to 4, palette 1; JPEG 1, 3 or 4).
    public let channels: Int
    /// `true` for Adam7-interlaced PNGs and progressive JPEGs.
    public let isInterlaced: Bool
    /// `true` for arithmetic-coded JPEGs (SOF9 to SOF11).
    public let isArithmeticCoded: Bool
    /// Width as stored in the file, in pixels.
    public let storedWidth: Int
    /// Height as stored in the file, in pixels.
    public let storedHeight: Int
    /// EXIF orientation 1 to 8 (JPEG APP1 IFD0 tag 0x0112); 1 when absent or invalid, always 1 for PNG.
    public let orientation: Int

    /// Width of the upright image in pixels (stored height for orientations 5 to 8).
    public var width: Int { orientation >= 5 ? storedHeight : storedWidth }
    /// Height of the upright image in pixels (stored width for orientations 5 to 8).
    public var height: Int { orientation >= 5 ? storedWidth : storedHeight }
    /// `storedWidth * storedHeight`, the number the pixel limit is checked against
    /// (`Int.max` if the product overflows).
    public var pixelCount: Int {
        let (p, overflow) = storedWidth.multipliedReportingOverflow(by: storedHeight)
        return overflow ? Int.max : p
    }

    /// Creates an info value. `orientation` outside 1...8 is stored as 1.
    public init(format: ImageFormat, colorType: String, bitDepth: Int, channels: Int,
                isInterlaced: Bool, isArithmeticCoded: Bool = false,
                storedWidth: Int, storedHeight: Int, orientation: Int = 1) {
        self.format = format
        self.colorType = colorType
        self.bitDepth = bitDepth
        self.channels = channels
        self.isInterlaced = isInterlaced
        self.isArithmeticCoded = isArithmeticCoded
        self.storedWidth = storedWidth
        self.storedHeight = storedHeight
        self.orientation = (1...8).contains(orientation) ? orientation : 1
    }
}
