/// Settings for ``ImageDecoder``.
public struct ImageDecodeOptions: Sendable, Equatable {
    /// The largest accepted pixel count (stored width x height), checked from the
    /// header before any pixel memory is allocated. Default 100 megapixels
    /// (an RGB8 decode then needs at most 300 MB). Must be positive.
    public var maxPixels: Int = 100_000_000
    /// Whether the EXIF orientation of a JPEG is applied so that the returned image
    /// is upright (default `true`). When `false`, the image comes back as stored
    /// and ``ImageInfo/orientation`` still reports the tag.
    public var applyOrientation: Bool = true

    /// Options with the given pixel limit and orientation handling.
    public init(maxPixels: Int = 100_000_000, applyOrientation: Bool = true) {
        self.maxPixels = maxPixels
        self.applyOrientation = applyOrientation
    }
}
