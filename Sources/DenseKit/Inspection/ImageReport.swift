import Foundation

/// What `densekit inspect` reports about an image: format, colour type, bit depth,
/// stored size, EXIF orientation, upright size and the per-channel mean of the
/// decoded upright RGB8 image.
public struct ImageReport: Sendable {
    /// Path of the file.
    public let path: String
    /// Header facts.
    public let info: ImageInfo
    /// Mean of R, G and B over all pixels of the upright RGB8 image (0...255).
    public let meanRGB: [Double]

    /// Decodes the image and summarises it.
    /// - Throws: `ImageError` for unreadable, corrupt or oversized images.
    public init(path: String, options: ImageDecodeOptions) throws {
        let (image, info) = try ImageDecoder.decode(path: path, options: options)
        self.path = path
        self.info = info
        meanRGB = image.channelMeans()
    }

    private func fmt(_ x: Double) -> String { String(format: "%.4f", x) }

    /// Human-readable lines.
    public var text: String {
        """
        file: \(path)
        format: \(info.format.rawValue)
        colour type: \(info.colorType)
        bit depth: \(info.bitDepth)
        stored size: \(info.storedWidth)x\(info.storedHeight)
        orientation: \(info.orientation)
        upright size: \(info.width)x\(info.height)
        mean rgb: \(meanRGB.map(fmt).joined(separator: " "))
        """
    }

    /// One JSON object with the keys `file`, `format`, `color_type`, `bit_depth`,
    /// `stored_width`, `stored_height`, `orientation`, `width`, `height`, `mean_rgb`.
    public var jsonText: String {
        let obj: JSONValue = .object([
            "file": .string(path),
            "format": .string(info.format.rawValue),
            "color_type": .string(info.colorType),
            "bit_depth": .number(Double(info.bitDepth)),
            "stored_width": .number(Double(info.storedWidth)),
            "stored_height": .number(Double(info.storedHeight)),
            "orientation": .number(Double(info.orientation)),
            "width": .number(Double(info.width)),
            "height": .number(Double(info.height)),
            "mean_rgb": .array(meanRGB.map { .number(($0 * 10000).rounded() / 10000) }),
        ])
        return obj.jsonText
    }
}
