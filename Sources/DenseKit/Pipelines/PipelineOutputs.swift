import Foundation

/// File encodings of pipeline results (bytes only; write them with ``AtomicFile/write(_:to:overwrite:)``,
/// which is atomic).
public enum PipelineOutputs {
    /// A NumPy `.npy` (format 1.0) of little-endian float32 values, C order.
    /// - Parameters: `shape` (product = `values.count`).
    /// - Throws: `ImageError.invalidArgument` when the shape does not match the count.
    public static func npyFloat32(_ values: [Float], shape: [Int]) throws -> Data {
        guard shape.reduce(1, *) == values.count, shape.allSatisfy({ $0 >= 0 }) else {
            throw ImageError.invalidArgument("npy: shape \(shape) does not hold \(values.count) values")
        }
        let dims = shape.count == 1 ? "\(shape[0])," : shape.map(String.init).joined(separator: ", ")
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var d = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let n = UInt16(header.utf8.count)
        d.append(contentsOf: [UInt8(n & 0xff), UInt8(n >> 8)])
        d.append(contentsOf: Array(header.utf8))
        var le = values.map { $0.bitPattern.littleEndian }
        d.append(Data(bytes: &le, count: le.count * 4))
        return d
    }

    /// A grayscale PFM (`Pf`, little-endian: scale -1, rows bottom-to-top as the format says) of `height x width`
    /// row-major values (top row first).
    /// - Throws: `ImageError.invalidArgument` when the count does not match.
    public static func pfm(_ values: [Float], width: Int, height: Int) throws -> Data {
        guard width > 0, height > 0, values.count == width * height else {
            throw ImageError.invalidArgument("pfm: \(values.count) values for \(width)x\(height)")
        }
        var d = Data("Pf\n\(width) \(height)\n-1.0\n".utf8)
        var rows: [UInt32] = []
        rows.reserveCapacity(values.count)
        for y in stride(from: height - 1, through: 0, by: -1) {
            for x in 0..<width { rows.append(values[y * width + x].bitPattern.littleEndian) }
        }
        d.append(Data(bytes: &rows, count: rows.count * 4))
        return d
    }

    /// The label map as an indexed (palette) PNG: pixel value = class index, colours = the model palette.
    /// - Throws: `ImageError.invalidArgument` with more than 256 classes or a label outside the palette.
    public static func labelPNG(_ r: SegmentationResult) throws -> Data {
        guard r.palette.count <= 256 else { throw ImageError.invalidArgument("an indexed PNG holds at most 256 classes (model has \(r.palette.count)); use --format npy") }
        let idx = r.labels.map { UInt8(clamping: $0) }
        return try PNGEncoder.encodePalette(width: r.width, height: r.height, indices: idx, palette: r.palette)
    }

    /// The palette colours blended over the photo: `out = (1 - alpha) * photo + alpha * colour`, RGB8 PNG.
    /// - Throws: `ImageError.invalidArgument` when the image and result sizes differ or `alpha` is outside 0...1.
    public static func overlayPNG(_ r: SegmentationResult, over image: RGBImage, alpha: Double) throws -> Data {
        guard image.width == r.width, image.height == r.height else {
            throw ImageError.invalidArgument("overlay: image \(image.width)x\(image.height) and labels \(r.width)x\(r.height) differ")
        }
        guard (0...1).contains(alpha) else { throw ImageError.invalidArgument("overlay alpha must be in 0...1, got \(alpha)") }
        var px = image.pixels
        let a = Float(alpha)
        for i in 0..<r.labels.count {
            let l = Int(r.labels[i])
            guard l >= 0, l < r.palette.count else { continue }
            for c in 0..<3 {
                let v = (1 - a) * Float(px[3 * i + c]) + a * Float(r.palette[l][c])
                px[3 * i + c] = UInt8(max(0, min(255, v.rounded())))
            }
        }
        return try PNGEncoder.encodeRGB8(width: r.width, height: r.height, pixels: px)
    }

    /// Depth as a 16-bit gray PNG in MILLIMETRES (value = round(depth x 1000), clamped to 0...65535, so 1 unit =
    /// 1 mm and the range is 0...65.535 m; relative depth is scaled the same way).
    /// - Throws: `ImageError.invalidArgument` for an empty map.
    public static func depthPNG16(_ d: DepthMap) throws -> Data {
        let v = d.values.map { x -> UInt16 in
            guard x.isFinite else { return 0 }
            return UInt16(max(0, min(65535, (x * 1000).rounded())))
        }
        return try PNGEncoder.encodeGray16(width: d.width, height: d.height, values: v)
    }

    /// Colour maps for depth pictures.
    public enum Colormap: String, Sendable, CaseIterable {
        /// Google's Turbo.
        case turbo
        /// Matplotlib's viridis.
        case viridis
        /// Matplotlib's inferno.
        case inferno
        /// Gray (near = dark).
        case gray

        /// Control points (evenly spaced, RGB 0...255), linearly interpolated.
        var stops: [[Float]] {
            switch self {
            case .turbo: return [[48, 18, 59], [70, 107, 227], [40, 187, 236], [49, 242, 153], [162, 252, 60],
                                 [237, 208, 58], [251, 128, 34], [208, 47, 5], [122, 4, 3]]
            case .viridis: return [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
                                   [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]]
            case .inferno: return [[0, 0, 4], [31, 12, 72], [85, 15, 109], [136, 34, 106], [186, 54, 85],
                                   [227, 89, 51], [249, 140, 10], [249, 201, 50], [252, 255, 164]]
            case .gray: return [[0, 0, 0], [255, 255, 255]]
            }
        }

        /// The colour at `t` in 0...1.
        public func color(_ t: Float) -> (UInt8, UInt8, UInt8) {
            let s = stops
            let x = max(0, min(1, t.isFinite ? t : 0)) * Float(s.count - 1)
            let i = min(Int(x), s.count - 2), f = x - Float(i)
            func ch(_ c: Int) -> UInt8 { UInt8(max(0, min(255, (s[i][c] * (1 - f) + s[i + 1][c] * f).rounded()))) }
            return (ch(0), ch(1), ch(2))
        }
    }

    /// Depth as a colour-mapped RGB8 PNG, normalised from the map's min (t = 0) to its max (t = 1).
    /// - Throws: `ImageError.invalidArgument` for an empty map.
    public static func depthColorPNG(_ d: DepthMap, colormap: Colormap) throws -> Data {
        let st = d.statistics
        let span = st.max - st.min
        var px = [UInt8](repeating: 0, count: 3 * d.values.count)
        for (i, v) in d.values.enumerated() {
            let (r, g, b) = colormap.color(span > 0 ? (v - st.min) / span : 0)
            px[3 * i] = r; px[3 * i + 1] = g; px[3 * i + 2] = b
        }
        return try PNGEncoder.encodeRGB8(width: d.width, height: d.height, pixels: px)
    }

    /// Normals as an RGB8 PNG: `channel = round((n + 1) / 2 x 255)` for x, y, z.
    /// - Throws: `ImageError.invalidArgument` for an empty map.
    public static func normalsPNG(_ n: NormalMap) throws -> Data {
        let px = n.values.map { v in UInt8(max(0, min(255, ((v + 1) * 127.5).rounded()))) }
        return try PNGEncoder.encodeRGB8(width: n.width, height: n.height, pixels: px)
    }
}
