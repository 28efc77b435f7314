import Foundation

/// The fused per-pixel mask-transformer read-out (spec `polymax-head.md` section 6.5).
///
/// For every output pixel: bilinearly interpolate the K cluster logits from their four
/// low-resolution neighbours (PyTorch `F.interpolate(mode="bilinear")` rule, spec section 1),
/// take the softmax over the K clusters, and mix per-cluster values with those probabilities.
/// No `K x Ho x Wo` buffer is ever allocated: memory is the low-resolution logits, the outputs
/// and O(K + C) scratch per row.
public enum ReadoutKernels {
    /// Source index and weight of one output coordinate on one axis.
    struct AxisTap {
        var i0: Int
        var i1: Int
        var f: Float
    }

    /// The interpolation taps of an axis (PyTorch `area_pixel_compute_source_index`, float arithmetic).
    static func axisTaps(input nIn: Int, output nOut: Int, alignCorners: Bool) -> [AxisTap] {
        var taps = [AxisTap]()
        taps.reserveCapacity(nOut)
        if nIn == nOut {
            for d in 0..<nOut { taps.append(AxisTap(i0: d, i1: d, f: 0)) }
            return taps
        }
        let scale: Float
        if alignCorners {
            scale = nOut > 1 ? Float(nIn - 1) / Float(nOut - 1) : 0
        } else {
            scale = Float(nIn) / Float(nOut)
        }
        for d in 0..<nOut {
            var src: Float
            if alignCorners { src = scale * Float(d) } else { src = max(0, scale * (Float(d) + 0.5) - 0.5) }
            var i0 = Int(src)
            if i0 > nIn - 1 { i0 = nIn - 1 }
            let i1 = min(i0 + 1, nIn - 1)
            taps.append(AxisTap(i0: i0, i1: i1, f: src - Float(i0)))
        }
        return taps
    }

    /// Per-cluster values mixed by the read-out, and the output buffers (any may be nil).
    ///
    /// Layouts (one image): `logits [K, h, w]`; `classProbs [K, C]` (softmax over C+1 classes, void
    /// dropped); `clusterDepth [K]`; `clusterNormals [K, 3]` (unit); outputs `scores [C, Ho, Wo]`,
    /// `labels [Ho, Wo]`, `depth [Ho, Wo]`, `normals [3, Ho, Wo]`.
    public struct Buffers {
        /// Semantic scores `[C, Ho, Wo]`.
        public var scores: UnsafeMutablePointer<Float>?
        /// Semantic labels `[Ho, Wo]` (argmax over C, lowest index on ties).
        public var labels: UnsafeMutablePointer<Int64>?
        /// Depth `[Ho, Wo]`.
        public var depth: UnsafeMutablePointer<Float>?
        /// Unit normals `[3, Ho, Wo]`.
        public var normals: UnsafeMutablePointer<Float>?
        /// Output buffers; nil skips that output.
        public init(scores: UnsafeMutablePointer<Float>? = nil, labels: UnsafeMutablePointer<Int64>? = nil,
                    depth: UnsafeMutablePointer<Float>? = nil, normals: UnsafeMutablePointer<Float>? = nil) {
            self.scores = scores; self.labels = labels; self.depth = depth; self.normals = normals
        }
    }

    /// Runs the fused read-out of one image.
    /// - Parameters:
    ///   - logits: mask logits `[K, h, w]` (row-major).
    ///   - classProbs: `[K, C]` class probabilities per cluster (void already dropped), or nil (no semantic output).
    ///   - clusterDepth: `[K]` depth per cluster, or nil.
    ///   - clusterNormals: `[K, 3]` unit normal per cluster, or nil.
    ///   - outH, outW: output size; equal to `h, w` for a read-out at the logits' resolution.
    ///   - alignCorners: the bilinear resize's flag (ignored when the size is unchanged).
    ///   - out: output buffers; an output is written only when both its buffer and its per-cluster input exist.
    /// Rows are split over `Threading.parallelFor` (fixed partition, results independent of the thread count).
    public static func fused(logits: UnsafePointer<Float>, clusters k: Int, h: Int, w: Int, classes c: Int,
                             classProbs: UnsafePointer<Float>?, clusterDepth: UnsafePointer<Float>?,
                             clusterNormals: UnsafePointer<Float>?, outH: Int, outW: Int, alignCorners: Bool,
                             out: Buffers) {
        guard k > 0, h > 0, w > 0, outH > 0, outW > 0 else { return }
        let ty = axisTaps(input: h, output: outH, alignCorners: alignCorners)
        let tx = axisTaps(input: w, output: outW, alignCorners: alignCorners)
        let plane = h * w, outPlane = outH * outW
        let wantSem = classProbs != nil && (out.scores != nil || out.labels != nil)
        let wantDepth = clusterDepth != nil && out.depth != nil
        let wantNormals = clusterNormals != nil && out.normals != nil
        ty.withUnsafeBufferPointer { typ in
            tx.withUnsafeBufferPointer { txp in
                Threading.parallelFor(outH, grain: max(1, 4096 / max(1, outW))) { oy in
                    let e = UnsafeMutablePointer<Float>.allocate(capacity: k + max(c, 1))
                    defer { e.deallocate() }
                    let acc = e + k
                    let yt = typ[oy]
                    let r0 = logits + yt.i0 * w, r1 = logits + yt.i1 * w
                    let fy = yt.f, gy = 1 - fy
                    for ox in 0..<outW {
                        let xt = txp[ox]
                        let fx = xt.f, gx = 1 - fx
                        var mx = -Float.infinity
                        for j in 0..<k {
                            let o = j * plane
                            let v = gy * (gx * r0[o + xt.i0] + fx * r0[o + xt.i1]) + fy * (gx * r1[o + xt.i0] + fx * r1[o + xt.i1])
                            e[j] = v
                            if v > mx { mx = v }
                        }
                        var sum: Float = 0
                        for j in 0..<k { let v = expf(e[j] - mx); e[j] = v; sum += v }
                        let inv = 1 / sum
                        for j in 0..<k { e[j] *= inv }
                        let pix = oy * outW + ox
                        if wantSem, let pc = classProbs {
                            for q in 0..<c { acc[q] = 0 }
                            for j in 0..<k {
                                let pj = e[j], row = pc + j * c
                                for q in 0..<c { acc[q] += pj * row[q] }
                            }
                            var best = 0
                            var bv = acc[0]
                            for q in 0..<c {
                                out.scores?[q * outPlane + pix] = acc[q]
                                if acc[q] > bv { bv = acc[q]; best = q }
                            }
                            out.labels?[pix] = Int64(best)
                        }
                        if wantDepth, let dk = clusterDepth, let dp = out.depth {
                            var d: Float = 0
                            for j in 0..<k { d += e[j] * dk[j] }
                            dp[pix] = d
                        }
                        if wantNormals, let nk = clusterNormals, let np = out.normals {
                            var nx: Float = 0, ny: Float = 0, nz: Float = 0
                            for j in 0..<k {
                                let pj = e[j]
                                nx += pj * nk[3 * j]; ny += pj * nk[3 * j + 1]; nz += pj * nk[3 * j + 2]
                            }
                            let inv = 1 / max((nx * nx + ny * ny + nz * nz).squareRoot(), 1e-12)
                            np[pix] = nx * inv
                            np[outPlane + pix] = ny * inv
                            np[2 * outPlane + pix] = nz * inv
                        }
                    }
                }
            }
        }
    }
}
