/// A single-channel image of stored sample values (for example a 16-bit depth
/// map in millimetres, or an 8-bit label map of class indices).
///
/// Layout: `values` holds `height * width` samples, row-major (rows top to
/// bottom). Values are exactly as stored, never scaled: 0...65535 for 16-bit,
/// 0...255 for 8-bit, 0...2^b-1 for b = 1, 2, 4 bits, and palette indices for
/// palette PNGs.
public struct GrayImage: Sendable, Equatable {
    /// Width in pixels.
    public let width: Int
    /// Height in pixels.
    public let height: Int
    /// Bits per stored sample (1, 2, 4, 8 or 16).
    public let bitDepth: Int
    /// Samples, row-major, `height * width`.
    public var values: [UInt16]

    /// A gray image over existing samples.
    /// - Throws: ``ImageError/invalidArgument(_:)`` when a side is not positive,
    ///   `bitDepth` is not 1, 2, 4, 8 or 16, `values.count != width * height`, or a
    ///   value does not fit in `bitDepth` bits.
    public init(width: Int, height: Int, bitDepth: Int = 16, values: [UInt16]) throws {
        guard width > 0, height > 0 else {
            throw ImageError.invalidArgument("image size \(width)x\(height) must be positive")
        }
        let (n, overflow) = width.multipliedReportingOverflow(by: height)
        guard !overflow, values.count == n else {
            throw ImageError.invalidArgument("\(values.count) samples for a \(width)x\(height) gray image")
        }
        guard [1, 2, 4, 8, 16].contains(bitDepth) else {
            throw ImageError.invalidArgument("bit depth \(bitDepth) is not 1, 2, 4, 8 or 16")
        }
        if bitDepth < 16 {
            let maxValue = UInt16((1 << bitDepth) - 1)
            if let bad = values.first(where: { $0 > maxValue }) {
                throw ImageError.invalidArgument("sample \(bad) does not fit in \(bitDepth) bits")
            }
        }
        self.width = width
        self.height = height
        self.bitDepth = bitDepth
        self.values = values
    }

    /// Trusted internal initializer (sizes already checked by the caller).
    init(uncheckedWidth width: Int, height: Int, bitDepth: Int, values: [UInt16]) {
        self.width = width
        self.height = height
        self.bitDepth = bitDepth
        self.values = values
    }

    /// The sample at column `x`, row `y`, or `nil` outside the image.
    public func value(x: Int, y: Int) -> UInt16? {
        guard x >= 0, x < width, y >= 0, y < height else { return nil }
        let i = y * width + x
        return i < values.count ? values[i] : nil
    }
}
