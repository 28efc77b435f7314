import Foundation

/// Where the image sits inside the letterboxed network input (all sizes in pixels, top-left anchored:
/// the padding is bottom/right).
public struct LetterboxGeometry: Sendable, Equatable {
    /// Original (upright) image height.
    public var originalHeight: Int
    /// Original (upright) image width.
    public var originalWidth: Int
    /// Height of the scaled image inside the input (rows `0..<resizedHeight` hold image content).
    public var resizedHeight: Int
    /// Width of the scaled image inside the input.
    public var resizedWidth: Int
    /// Network input height (content plus padding).
    public var paddedHeight: Int
    /// Network input width.
    public var paddedWidth: Int

    /// The geometry `preprocess` gives for an `height x width` image.
    /// - Throws: `ImageError.invalidArgument` for a non-positive size.
    public init(height: Int, width: Int, preprocess: PolyMaXPreprocess) throws {
        guard height > 0, width > 0 else { throw ImageError.invalidArgument("image size \(width)x\(height) must be positive") }
        originalHeight = height; originalWidth = width
        switch preprocess.sizing {
        case .multiple(let m):
            resizedHeight = height; resizedWidth = width
            paddedHeight = (height + m - 1) / m * m
            paddedWidth = (width + m - 1) / m * m
        case .fixed(let ph, let pw):
            let s = min(Double(ph) / Double(height), Double(pw) / Double(width))
            resizedHeight = min(ph, max(1, Int((Double(height) * s).rounded())))
            resizedWidth = min(pw, max(1, Int((Double(width) * s).rounded())))
            paddedHeight = ph; paddedWidth = pw
        }
    }

    /// The content region on a feature map of `h x w` computed from the padded input (e.g. the stride-4 mask
    /// logits): `round(resized * h / padded)` rows and columns (at least 1, at most `h`, `w`), from the top-left.
    public func contentRegion(featureHeight h: Int, featureWidth w: Int) -> (height: Int, width: Int) {
        let ch = Int((Double(resizedHeight) * Double(h) / Double(paddedHeight)).rounded())
        let cw = Int((Double(resizedWidth) * Double(w) / Double(paddedWidth)).rounded())
        return (min(h, max(1, ch)), min(w, max(1, cw)))
    }
}

extension ImageTensor {
    /// The letterboxed network input `[1, 3, paddedHeight, paddedWidth]` (NCHW float32) and its geometry:
    /// the image scaled to `resized` size (bilinear, half-pixel centres) when the rule scales, normalised
    /// `(v/255 - mean) / std` per channel, planes in `preprocess`'s channel order, padding (bottom/right)
    /// filled with `preprocess.padValue`.
    /// - Throws: `ImageError.invalidArgument` for an empty image.
    public static func letterbox(_ image: RGBImage, preprocess: PolyMaXPreprocess) throws -> (tensor: Tensor, geometry: LetterboxGeometry) {
        let g = try LetterboxGeometry(height: image.height, width: image.width, preprocess: preprocess)
        let mean: [Float] = preprocess.bgr ? Array(preprocess.mean.reversed()) : preprocess.mean
        let std: [Float] = preprocess.bgr ? Array(preprocess.std.reversed()) : preprocess.std
        // `make` normalises in RGB order; the planes are swapped afterwards for BGR.
        let content = make(image, height: g.resizedHeight, width: g.resizedWidth, mean: mean, std: std)
        let ph = g.paddedHeight, pw = g.paddedWidth, rh = g.resizedHeight, rw = g.resizedWidth
        var out = Tensor(zeros: [1, 3, ph, pw])
        out.withUnsafeMutableBufferPointer { dst in
            content.withUnsafeBufferPointer { src in
                for c in 0..<3 {
                    let sc = preprocess.bgr ? 2 - c : c
                    for y in 0..<ph {
                        let row = (c * ph + y) * pw
                        if y < rh {
                            let srow = (sc * rh + y) * rw
                            for x in 0..<rw { dst[row + x] = src[srow + x] }
                            for x in rw..<pw { dst[row + x] = preprocess.padValue }
                        } else {
                            for x in 0..<pw { dst[row + x] = preprocess.padValue }
                        }
                    }
                }
            }
        }
        return (out, g)
    }
}
