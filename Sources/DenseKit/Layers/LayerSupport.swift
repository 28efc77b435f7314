import Foundation

/// Small loops shared by the layers (chunking for `Threading.parallelFor`, shape checks).
enum LayerSupport {
    /// Floats per parallel chunk of an element-wise loop (large enough to amortise dispatch).
    static let chunk = 1 << 14

    /// Calls `body(n, lo, hi)` over `[lo, hi)` ranges covering `0..<count` of every sample
    /// `n` in `0..<batch`, in parallel. The partition depends on the sizes only.
    @inline(__always)
    static func forEachChunk(batch: Int, count: Int, _ body: (Int, Int, Int) -> Void) {
        let per = max(1, (count + chunk - 1) / chunk)
        Threading.parallelFor(batch * per) { i in
            let n = i / per, c = i % per
            let lo = c * chunk, hi = min(count, lo + chunk)
            if lo < hi { body(n, lo, hi) }
        }
    }

    /// Throws unless `shape` has rank 4 (`[N, C, H, W]`).
    static func requireNCHW(_ shape: [Int], _ what: String = "input") throws {
        guard shape.count == 4 else { throw LayerShapeError("expects a 4-d NCHW \(what), got \(ShapeText.of(shape))") }
    }

    /// Mean over `spatial` contiguous floats of each of `channels` planes at `src`, accumulated in float64.
    static func planeMeans(_ src: UnsafePointer<Float>, channels: Int, spatial: Int, into out: UnsafeMutablePointer<Double>) {
        let inv = spatial > 0 ? 1.0 / Double(spatial) : 0
        Threading.parallelFor(channels, grain: max(1, 4096 / max(spatial, 1))) { c in
            let p = src + c * spatial
            var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
            var i = 0
            while i + 4 <= spatial {
                s0 += Double(p[i]); s1 += Double(p[i + 1]); s2 += Double(p[i + 2]); s3 += Double(p[i + 3])
                i += 4
            }
            while i < spatial { s0 += Double(p[i]); i += 1 }
            out[c] = (s0 + s1 + s2 + s3) * inv
        }
    }
}
