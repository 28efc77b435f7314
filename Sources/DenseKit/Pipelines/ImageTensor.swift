import Foundation

/// Turns decoded images into normalised NCHW input tensors.
public enum ImageTensor {
    /// ImageNet mean of R, G, B in 0...1 units (timm's `IMAGENET_DEFAULT_MEAN`).
    public static let imagenetMean: [Float] = [0.485, 0.456, 0.406]
    /// ImageNet standard deviation of R, G, B in 0...1 units (timm's `IMAGENET_DEFAULT_STD`).
    public static let imagenetStd: [Float] = [0.229, 0.224, 0.225]

    /// `[1, 3, height, width]` float32: the image scaled to 0...1, resized bilinearly
    /// (half-pixel centres, `align_corners=False`) to `height` x `width` when they differ,
    /// then normalised per channel as `(v - mean) / std`.
    public static func make(_ image: RGBImage, height: Int? = nil, width: Int? = nil,
                            mean: [Float] = imagenetMean, std: [Float] = imagenetStd) -> Tensor {
        let h0 = image.height, w0 = image.width
        var planar = Tensor(zeros: [1, 3, h0, w0])
        planar.withUnsafeMutableBufferPointer { dst in
            image.pixels.withUnsafeBufferPointer { src in
                let plane = h0 * w0
                for i in 0..<plane {
                    dst[i] = Float(src[3 * i]) / 255
                    dst[plane + i] = Float(src[3 * i + 1]) / 255
                    dst[2 * plane + i] = Float(src[3 * i + 2]) / 255
                }
            }
        }
        let h = max(1, height ?? h0), w = max(1, width ?? w0)
        var out: Tensor
        if h == h0 && w == w0 {
            out = planar
        } else {
            out = Tensor(zeros: [1, 3, h, w])
            out.withUnsafeMutableBufferPointer { dst in
                planar.withUnsafeBufferPointer { src in
                    ResizeKernels.bilinear(src.baseAddress!, planes: 3, inH: h0, inW: w0, outH: h, outW: w,
                                           alignCorners: false, scaleH: nil, scaleW: nil, dst.baseAddress!)
                }
            }
        }
        out.withUnsafeMutableBufferPointer { p in
            let plane = h * w
            for c in 0..<3 {
                let m = mean[c], s = std[c]
                for i in 0..<plane { p[c * plane + i] = (p[c * plane + i] - m) / s }
            }
        }
        return out
    }
}
