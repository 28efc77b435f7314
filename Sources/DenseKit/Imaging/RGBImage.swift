/// An 8-bit RGB image.
///
/// Layout: `pixels` holds `height * width * 3` bytes, interleaved R, G, B, rows
/// top to bottom, each row left to right (row-major, HWC). The byte of channel
/// `c` of pixel (x, y) is at `(y * width + x) * 3 + c`.
public struct RGBImage: Sendable, Equatable {
    /// Width in pixels.
    public let width: Int
    /// Height in pixels.
    public let height: Int
    /// RGB interleaved, row-major, `height * width * 3` bytes.
    /// (Mutating it to another length breaks the layout; the helpers below then
    /// only read the part that exists.)
    public var pixels: [UInt8]

    /// An image over existing pixels.
    /// - Throws: ``ImageError/invalidArgument(_:)`` when a side is not positive or
    ///   `pixels.count != width * height * 3`.
    public init(width: Int, height: Int, pixels: [UInt8]) throws {
        let count = try RGBImage.byteCount(width: width, height: height)
        guard pixels.count == count else {
            throw ImageError.invalidArgument("\(pixels.count) bytes for a \(width)x\(height) RGB image (need \(count))")
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// An image filled with one colour.
    /// - Throws: ``ImageError/invalidArgument(_:)`` when a side is not positive or the size overflows.
    public init(width: Int, height: Int, fill: (r: UInt8, g: UInt8, b: UInt8) = (0, 0, 0)) throws {
        let count = try RGBImage.byteCount(width: width, height: height)
        var p = [UInt8](repeating: fill.r, count: count)
        if fill.g != fill.r || fill.b != fill.r {
            var i = 0
            while i < count {
                p[i + 1] = fill.g
                p[i + 2] = fill.b
                i += 3
            }
        }
        self.width = width
        self.height = height
        self.pixels = p
    }

    /// Trusted internal initializer (sizes already checked by the caller).
    init(uncheckedWidth width: Int, height: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// `width * height * 3`, validated.
    static func byteCount(width: Int, height: Int) throws -> Int {
        guard width > 0, height > 0 else {
            throw ImageError.invalidArgument("image size \(width)x\(height) must be positive")
        }
        let (px, o1) = width.multipliedReportingOverflow(by: height)
        let (bytes, o2) = px.multipliedReportingOverflow(by: 3)
        guard !o1, !o2 else { throw ImageError.invalidArgument("image size \(width)x\(height) is too large") }
        return bytes
    }

    /// Number of pixels, `width * height`.
    public var pixelCount: Int { width * height }

    /// The pixel at column `x`, row `y` (0-based, from the top-left), or `nil` outside the image.
    public func pixel(x: Int, y: Int) -> (r: UInt8, g: UInt8, b: UInt8)? {
        guard x >= 0, x < width, y >= 0, y < height else { return nil }
        let i = (y * width + x) * 3
        guard i + 2 < pixels.count else { return nil }
        return (pixels[i], pixels[i + 1], pixels[i + 2])
    }

    /// Per-channel means `[r, g, b]` over all pixels, in float64 (0...255).
    public func channelMeans() -> [Double] {
        channelMeans(x: 0, y: 0, width: width, height: height)
    }

    /// Per-channel means `[r, g, b]` over the block of columns `x ..< x + width`
    /// and rows `y ..< y + height`, clipped to the image; `[0, 0, 0]` when the
    /// clipped block is empty. Sums are exact (integers), the division is float64.
    public func channelMeans(x: Int, y: Int, width w: Int, height h: Int) -> [Double] {
        let x0 = max(0, x), y0 = max(0, y)
        let x1 = min(width, x0 + max(0, min(w, width))), y1 = min(height, y0 + max(0, min(h, height)))
        guard x1 > x0, y1 > y0, pixels.count >= width * height * 3 else { return [0, 0, 0] }
        var s: (UInt64, UInt64, UInt64) = (0, 0, 0)
        pixels.withUnsafeBufferPointer { p in
            for row in y0..<y1 {
                var i = (row * width + x0) * 3
                let end = (row * width + x1) * 3
                while i < end {
                    s.0 += UInt64(p[i]); s.1 += UInt64(p[i + 1]); s.2 += UInt64(p[i + 2])
                    i += 3
                }
            }
        }
        let n = Double((x1 - x0) * (y1 - y0))
        return [Double(s.0) / n, Double(s.1) / n, Double(s.2) / n]
    }

    /// The image transformed by an EXIF orientation (1 identity, 2 mirror
    /// left-right, 3 rotate 180, 4 mirror top-bottom, 5 transpose, 6 rotate 90
    /// clockwise, 7 transverse, 8 rotate 90 counter-clockwise): the upright image
    /// of a stored image carrying that tag. 5 to 8 swap width and height.
    /// Values outside 1...8 give the image unchanged.
    public func applyingOrientation(_ orientation: Int) -> RGBImage {
        ImageOrientation.apply(orientation, to: self)
    }
}
