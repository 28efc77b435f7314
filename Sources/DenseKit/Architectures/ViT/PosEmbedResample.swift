import Foundation

/// timm's `resample_abs_pos_embed` (spec `token-clustering.md` 4.1): the grid part of a position
/// embedding is resized with `F.interpolate(mode="bicubic", align_corners=False, antialias=True)`.
public enum PosEmbedResample {
    /// Per-axis taps of antialiased bicubic (Keys cubic, a = -0.5) from `inSize` to `outSize`:
    /// for each output index, the first input index and the normalised weights (cut at the borders,
    /// renormalised; no index clamping).
    static func taps(inSize n: Int, outSize no: Int) -> [(lo: Int, w: [Double])] {
        let scale = Float(n) / Float(no)
        let support: Float = scale >= 1 ? 2 * scale : 2
        let inv: Float = scale >= 1 ? 1 / scale : 1
        func cubic(_ x: Float) -> Double {
            let a = -0.5, t = Double(abs(x))
            if t < 1 { return ((a + 2) * t - (a + 3)) * t * t + 1 }
            if t < 2 { return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a }
            return 0
        }
        var out: [(Int, [Double])] = []
        for i in 0..<no {
            let center = scale * (Float(i) + 0.5)
            let lo = max(Int(center - support + 0.5), 0)
            let hi = min(Int(center + support + 0.5), n)
            var w: [Double] = []
            for j in lo..<max(lo, hi) { w.append(cubic((Float(j) - center + 0.5) * inv)) }
            let total = w.reduce(0, +)
            if total != 0 { w = w.map { $0 / total } }
            out.append((lo, w))
        }
        return out
    }

    /// Resizes `planes` maps of `inH x inW` (row-major, plane-major) to `outH x outW` with
    /// antialiased bicubic (width pass, then height pass). Identity when the sizes match.
    /// - Returns: `planes * outH * outW` values.
    public static func antialiasedBicubic(_ x: [Float], planes: Int, inH: Int, inW: Int, outH: Int, outW: Int) -> [Float] {
        if inH == outH && inW == outW { return x }
        let tw = taps(inSize: inW, outSize: outW), th = taps(inSize: inH, outSize: outH)
        var mid = [Double](repeating: 0, count: planes * inH * outW)
        for p in 0..<planes {
            for y in 0..<inH {
                let row = (p * inH + y) * inW
                for (ox, t) in tw.enumerated() {
                    var s = 0.0
                    for (q, w) in t.w.enumerated() { s += w * Double(x[row + t.lo + q]) }
                    mid[(p * inH + y) * outW + ox] = s
                }
            }
        }
        var out = [Float](repeating: 0, count: planes * outH * outW)
        for p in 0..<planes {
            for (oy, t) in th.enumerated() {
                for ox in 0..<outW {
                    var s = 0.0
                    for (q, w) in t.w.enumerated() { s += w * mid[(p * inH + t.lo + q) * outW + ox] }
                    out[(p * outH + oy) * outW + ox] = Float(s)
                }
            }
        }
        return out
    }

    /// Resamples a timm `pos_embed` `[1, 1 + gh0*gw0, C]` to `[1, 1 + gh*gw, C]`: the class entry is
    /// kept, the grid part resized as a `[C, gh0, gw0]` map.
    /// - Throws: `ModelConfigError.weightShapes` when the embedding does not hold `1 + gh0*gw0` rows.
    public static func resample(_ pos: Tensor, from src: (h: Int, w: Int), to dst: (h: Int, w: Int)) throws -> Tensor {
        guard pos.rank == 3, pos.shape[0] == 1, pos.shape[1] == 1 + src.h * src.w else {
            throw ModelConfigError.weightShapes(model: "vit", mismatches: ["pos_embed: expected [1, \(1 + src.h * src.w), C], found \(pos.shape)"])
        }
        if src.h == dst.h && src.w == dst.w { return pos }
        let c = pos.shape[2]
        let v = pos.scalars
        let n0 = src.h * src.w
        var planes = [Float](repeating: 0, count: c * n0)
        for t in 0..<n0 { for k in 0..<c { planes[k * n0 + t] = v[(1 + t) * c + k] } }
        let r = antialiasedBicubic(planes, planes: c, inH: src.h, inW: src.w, outH: dst.h, outW: dst.w)
        let n1 = dst.h * dst.w
        var out = [Float](repeating: 0, count: (1 + n1) * c)
        for k in 0..<c { out[k] = v[k] }
        for t in 0..<n1 { for k in 0..<c { out[(1 + t) * c + k] = r[k * n1 + t] } }
        return Tensor(shape: [1, 1 + n1, c], values: out, layout: .tokens)
    }
}
