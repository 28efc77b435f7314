import Foundation
import CKernels

/// Geometry of Bi-level Routing Attention on a (padded) NHWC grid.
///
/// The fused projection buffer is `[batch, height, width, 2·qkDim + valueDim]` (NHWC rows, channels
/// q, k, v in that order); regions are `regionsPerSide × regionsPerSide` blocks of
/// `regionHeight × regionWidth` pixels, indexed row-major (`p = j·S + i`), tokens inside a region
/// row-major. Source: `specs/biformer.md` §1.3, reference `ops/bra_legacy.py`.
public struct RoutedAttentionGeometry: Sendable, Equatable {
    /// Batch size N.
    public var batch: Int
    /// Padded height H (a multiple of `regionsPerSide`).
    public var height: Int
    /// Padded width W (a multiple of `regionsPerSide`).
    public var width: Int
    /// S, regions per side (`n_win`).
    public var regionsPerSide: Int
    /// Total q/k width over all heads (`qk_dim`).
    public var qkDim: Int
    /// Total v width over all heads (`dim`, C).
    public var valueDim: Int
    /// Number of heads m.
    public var heads: Int
    /// Routed regions per query region (`topk`).
    public var topk: Int

    /// Creates a geometry; call `validate()` before running kernels on it.
    public init(batch: Int, height: Int, width: Int, regionsPerSide: Int, qkDim: Int, valueDim: Int, heads: Int, topk: Int) {
        self.batch = batch; self.height = height; self.width = width; self.regionsPerSide = regionsPerSide
        self.qkDim = qkDim; self.valueDim = valueDim; self.heads = heads; self.topk = topk
    }

    /// P = S², the number of regions.
    public var regions: Int { regionsPerSide * regionsPerSide }
    /// Region height h = H / S.
    public var regionHeight: Int { height / regionsPerSide }
    /// Region width w = W / S.
    public var regionWidth: Int { width / regionsPerSide }
    /// Channels of one row of the fused projection buffer: `2·qkDim + valueDim`.
    public var rowStride: Int { 2 * qkDim + valueDim }

    /// Checks divisibility and ranges.
    /// - Throws: `KernelArgumentError` naming the violated condition.
    public func validate() throws {
        guard batch >= 0, height > 0, width > 0, regionsPerSide > 0 else {
            throw KernelArgumentError("routed attention: bad geometry \(batch)x\(height)x\(width), n_win \(regionsPerSide)")
        }
        guard height % regionsPerSide == 0, width % regionsPerSide == 0 else {
            throw KernelArgumentError("routed attention: \(height)x\(width) is not divisible by n_win \(regionsPerSide)")
        }
        guard heads > 0, qkDim % heads == 0, valueDim % heads == 0, qkDim > 0, valueDim > 0 else {
            throw KernelArgumentError("routed attention: \(heads) heads do not divide qk_dim \(qkDim) and dim \(valueDim)")
        }
        guard topk >= 1, topk <= regions else {
            throw KernelArgumentError("routed attention: topk \(topk) must be in 1...\(regions) (n_win² regions)")
        }
    }
}

/// Gather-free Bi-level Routing Attention kernels (`specs/biformer.md` §1.4–1.6, reference
/// `ops/bra_legacy.py` `TopkRouting` / `KVGather` / the attention of `BiLevelRoutingAttention`).
///
/// The routed keys and values are read **in place** from the fused NHWC projection buffer
/// through per-region row offsets; nothing is gathered or copied.
public enum RoutedAttention {
    /// Region means of q and k and the top-k routing (§1.4, §1.5).
    ///
    /// - Parameters:
    ///   - qkv: fused projection `[N, H, W, 2·qkDim + valueDim]` NHWC.
    ///   - scale: the routing scale (`qk_dim ** -0.5`); positive, so it cannot change the order.
    ///   - routing: `[N, P, topk]` output, region indices in descending affinity order (ties: lower
    ///     index first; exact ties only occur between regions with identical contents).
    /// - Precondition: `g.validate()` passed.
    static func route(qkv: UnsafePointer<Float>, geometry g: RoutedAttentionGeometry, scale: Double,
                      routing: UnsafeMutablePointer<Int>) {
        let P = g.regions, cq = g.qkDim
        let qWin = UnsafeMutablePointer<Double>.allocate(capacity: max(1, g.batch * P * cq))
        let kWin = UnsafeMutablePointer<Double>.allocate(capacity: max(1, g.batch * P * cq))
        defer { qWin.deallocate(); kWin.deallocate() }
        Threading.parallelFor(g.batch * P) { np in
            regionMean(qkv: qkv, geometry: g, batchRegion: np, q: qWin + np * cq, k: kWin + np * cq)
        }
        Threading.parallelFor(g.batch * P) { np in
            let n = np / P
            topK(query: qWin + np * cq, keys: kWin + n * P * cq, regions: P, width: cq, scale: scale,
                 k: g.topk, out: routing + np * g.topk)
        }
    }

    /// Plain means (divide by h·w) of the q and k channels of region `batchRegion` (= n·P + p).
    static func regionMean(qkv: UnsafePointer<Float>, geometry g: RoutedAttentionGeometry, batchRegion: Int,
                           q: UnsafeMutablePointer<Double>, k: UnsafeMutablePointer<Double>) {
        let P = g.regions, S = g.regionsPerSide, rh = g.regionHeight, rw = g.regionWidth, rs = g.rowStride, cq = g.qkDim
        let n = batchRegion / P, p = batchRegion % P, j = p / S, i = p % S
        for c in 0..<cq { q[c] = 0; k[c] = 0 }
        for r in 0..<rh {
            for c in 0..<rw {
                let row = qkv + ((n * g.height + j * rh + r) * g.width + i * rw + c) * rs
                for d in 0..<cq { q[d] += Double(row[d]); k[d] += Double(row[cq + d]) }
            }
        }
        let inv = 1.0 / Double(rh * rw)
        for d in 0..<cq { q[d] *= inv; k[d] *= inv }
    }

    /// Affinity of one query region against all P key regions, then the `k` best indices,
    /// descending (torch.topk sorted; equal scores keep the lower index first).
    static func topK(query: UnsafePointer<Double>, keys: UnsafePointer<Double>, regions P: Int, width: Int,
                     scale: Double, k: Int, out: UnsafeMutablePointer<Int>) {
        var scores = [Double](repeating: 0, count: P)
        for pp in 0..<P {
            var s = 0.0
            let kr = keys + pp * width
            for d in 0..<width { s += (query[d] * scale) * kr[d] }
            scores[pp] = s
        }
        let order = (0..<P).sorted { a, b in scores[a] > scores[b] || (scores[a] == scores[b] && a < b) }
        for t in 0..<k { out[t] = order[t] }
    }

    /// Token attention over the routed regions (§1.6), written head-major into `output`.
    ///
    /// For each (batch, query region, head) the queries of the region attend, with softmax over
    /// all `topk·h·w` routed tokens and no mask, to keys/values read in place from `qkv`.
    /// Work is split with `Threading.parallelFor` over (batch, region, head) (fixed partition).
    /// - Parameters:
    ///   - qkv: `[N, H, W, 2·qkDim + valueDim]` NHWC.
    ///   - routing: `[N, P, topk]` region indices.
    ///   - scale: multiplies q before the dot products (`qk_dim ** -0.5` in BiFormer).
    ///   - output: `[N, H, W, valueDim]` NHWC; every element is overwritten.
    /// - Precondition: `g.validate()` passed and every routing index is in `0..<P`.
    static func attend(qkv: UnsafePointer<Float>, geometry g: RoutedAttentionGeometry, routing: UnsafePointer<Int>,
                       scale: Float, output: UnsafeMutablePointer<Float>) {
        let P = g.regions, m = g.heads
        Threading.parallelFor(g.batch * P * m) { item in
            let np = item / m, head = item % m
            attendRegionHead(qkv: qkv, geometry: g, batchRegion: np, head: head,
                             routing: routing + np * g.topk, scale: scale, output: output)
        }
    }

    /// One (batch, region, head) work item of `attend`.
    static func attendRegionHead(qkv: UnsafePointer<Float>, geometry g: RoutedAttentionGeometry, batchRegion: Int, head: Int,
                                 routing: UnsafePointer<Int>, scale: Float, output: UnsafeMutablePointer<Float>) {
        let P = g.regions, S = g.regionsPerSide, rh = g.regionHeight, rw = g.regionWidth, rs = g.rowStride
        let hw = rh * rw, L = g.topk * hw
        let dq = g.qkDim / g.heads, dv = g.valueDim / g.heads, C = g.valueDim
        let n = batchRegion / P, p = batchRegion % P, j = p / S, i = p % S
        let keyRows = UnsafeMutablePointer<Int>.allocate(capacity: L)
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: L)
        let qs = UnsafeMutablePointer<Float>.allocate(capacity: dq)
        let acc = UnsafeMutablePointer<Float>.allocate(capacity: dv)
        defer { keyRows.deallocate(); scores.deallocate(); qs.deallocate(); acc.deallocate() }
        for s in 0..<g.topk {
            let rp = routing[s], jr = rp / S, ir = rp % S
            for r in 0..<rh {
                for c in 0..<rw { keyRows[s * hw + r * rw + c] = ((n * g.height + jr * rh + r) * g.width + ir * rw + c) * rs }
            }
        }
        if KernelDispatch.avx512 {
            // AVX-512: sixteen queries per vector, keys and values still read in place (CKernels).
            let queryRows = UnsafeMutablePointer<Int>.allocate(capacity: 2 * hw)
            let outRows = queryRows + hw
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: dk_attention_scratch(L, Int32(dq), Int32(dv)))
            defer { queryRows.deallocate(); scratch.deallocate() }
            for r in 0..<rh {
                for c in 0..<rw {
                    let tok = (n * g.height + j * rh + r) * g.width + i * rw + c
                    queryRows[r * rw + c] = tok * rs + head * dq
                    outRows[r * rw + c] = tok * C + head * dv
                }
            }
            if dk_attention_rows(qkv, queryRows, hw, keyRows, L, g.qkDim + head * dq, 2 * g.qkDim + head * dv,
                                 Int32(dq), Int32(dv), scale, output, outRows, scratch) != 0 {
                return
            }
        }
        let kBase = qkv + g.qkDim + head * dq
        let vBase = qkv + 2 * g.qkDim + head * dv
        for r in 0..<rh {
            for c in 0..<rw {
                let tok = (n * g.height + j * rh + r) * g.width + i * rw + c
                let q = qkv + tok * rs + head * dq
                for d in 0..<dq { qs[d] = q[d] * scale }
                var mx = -Float.infinity
                for u in 0..<L {
                    let s = dot(qs, kBase + keyRows[u], dq)
                    scores[u] = s
                    if s > mx { mx = s }
                }
                var sum: Float = 0
                for u in 0..<L { let e = expf(scores[u] - mx); scores[u] = e; sum += e }
                for d in 0..<dv { acc[d] = 0 }
                for u in 0..<L {
                    let w = scores[u], v = vBase + keyRows[u]
                    for d in 0..<dv { acc[d] += w * v[d] }
                }
                let inv = 1 / sum
                let out = output + tok * C + head * dv
                for d in 0..<dv { out[d] = acc[d] * inv }
            }
        }
    }

    /// Dot product of two contiguous float vectors (4 partial sums).
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
        var d = 0
        while d + 4 <= n {
            s0 += a[d] * b[d]; s1 += a[d + 1] * b[d + 1]; s2 += a[d + 2] * b[d + 2]; s3 += a[d + 3] * b[d + 3]
            d += 4
        }
        while d < n { s0 += a[d] * b[d]; d += 1 }
        return (s0 + s1) + (s2 + s3)
    }
}
