/// EXIF orientation transforms on RGB8 images (internal; see
/// ``RGBImage/applyingOrientation(_:)``).
enum ImageOrientation {
    /// Upright image from a stored one. Upright pixel (row i, column j) comes from
    /// stored pixel index `base + i * stepRow + j * stepCol` (in pixels), where for a
    /// stored W x H image:
    ///   1: s[i][j]           2: s[i][W-1-j]        3: s[H-1-i][W-1-j]   4: s[H-1-i][j]
    ///   5: s[j][i]           6: s[H-1-j][i]        7: s[H-1-j][W-1-i]   8: s[j][W-1-i]
    static func apply(_ orientation: Int, to image: RGBImage) -> RGBImage {
        let w = image.width, h = image.height
        guard (2...8).contains(orientation), w > 0, h > 0, image.pixels.count == w * h * 3 else {
            return image
        }
        let base: Int, stepRow: Int, stepCol: Int
        switch orientation {
        case 2: (base, stepRow, stepCol) = (w - 1, w, -1)
        case 3: (base, stepRow, stepCol) = ((h - 1) * w + w - 1, -w, -1)
        case 4: (base, stepRow, stepCol) = ((h - 1) * w, -w, 1)
        case 5: (base, stepRow, stepCol) = (0, 1, w)
        case 6: (base, stepRow, stepCol) = ((h - 1) * w, 1, -w)
        case 7: (base, stepRow, stepCol) = ((h - 1) * w + w - 1, -1, -w)
        default: (base, stepRow, stepCol) = (w - 1, -1, w) // 8
        }
        let swap = orientation >= 5
        let outW = swap ? h : w, outH = swap ? w : h
        var out = [UInt8](repeating: 0, count: w * h * 3)
        image.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                var d = 0
                for i in 0..<outH {
                    var s = base + i * stepRow
                    for _ in 0..<outW {
                        let k = s * 3
                        dst[d] = src[k]
                        dst[d + 1] = src[k + 1]
                        dst[d + 2] = src[k + 2]
                        d += 3
                        s += stepCol
                    }
                }
            }
        }
        return RGBImage(uncheckedWidth: outW, height: outH, pixels: out)
    }
}
