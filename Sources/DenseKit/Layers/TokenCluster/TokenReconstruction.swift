import Foundation

/// Token reconstruction layer (Liang et al., NeurIPS 2022; spec `token-clustering.md` section 3),
/// plain-ViT variant of the reference (`mmseg/ops/reconstruction.py`).
///
/// From F `[B, N, C]` (tokens saved before clustering), S `[B, M, C]` (centres as the clustering
/// produced them) and X `[B, M, C2]` (refined cluster tokens), per token n:
/// `W[n, m] = exp(-t * ||f_n - s_m||^2)` over all M centres, keep entries `>=` the k-th largest
/// (ties keep more than k; k = -1 keeps all), divide the row by its L2 norm (clamped at 1e-12;
/// the weights do NOT sum to 1), `y_n = sum_m W^[n, m] x_m` -> Y `[B, N, C2]` (no class token).
/// Cost O(N x M x C) distances + O(N x k' x C2) sparse product.
public struct TokenReconstruction: Sendable, Equatable {
    /// Kept centres per token (`>= 1`), or -1 for all.
    public var k: Int
    /// t in `exp(-t * squared distance)`.
    public var temperature: Float
    /// Subtract each row's smallest distance before `exp` (spec 3, "Underflow"). Off by default:
    /// the reference (faithful mode) underflows to a zero row once `t * min_m D'` exceeds ~104; the
    /// stabilised mode agrees with it (to rounding) while `t * min_m D'` stays below ~80 and keeps
    /// the nearest centres beyond that instead of returning zeros.
    public var stabilized: Bool

    /// Creates the layer.
    /// - Throws: `TokenClusterError` when `k` is 0 or below -1 or `temperature` is not finite and > 0.
    public init(k: Int, temperature: Float, stabilized: Bool = false) throws {
        guard k >= 1 || k == -1 else { throw TokenClusterError("k must be >= 1 or -1, got \(k)") }
        guard temperature > 0, temperature.isFinite else { throw TokenClusterError("temperature must be > 0, got \(temperature)") }
        self.k = k; self.temperature = temperature; self.stabilized = stabilized
    }

    /// Reads the golden `token_reconstruction` attrs: `k` (20), `temperature` (required),
    /// `stabilized` (false; not a reference attribute).
    /// - Throws: `ModelConfigError.invalidField` / `TokenClusterError`.
    public init(json: JSONValue) throws {
        let r = try ConfigReader(json, model: "token_reconstruction")
        try self.init(k: try r.int("k", default: 20), temperature: Float(try r.double("temperature")),
                      stabilized: try r.bool("stabilized", default: false))
    }

    /// Spreads `x` `[B, M, C2]` back to the N tokens of `feat` `[B, N, C]` through `centres` `[B, M, C]`.
    /// - Parameter withWeights: also return the normalised weights `[B, N, M]`.
    /// - Returns: `y` `[B, N, C2]` and the weights or nil.
    /// - Throws: `TokenClusterError` on mismatched shapes or `k > M`.
    public func callAsFunction(feat: Tensor, centres: Tensor, x: Tensor, withWeights: Bool = false) throws -> (y: Tensor, weights: Tensor?) {
        guard feat.rank == 3, centres.rank == 3, x.rank == 3 else {
            throw TokenClusterError("reconstruction needs rank-3 tensors, got feat \(feat.shape), centres \(centres.shape), x \(x.shape)")
        }
        let b = feat.shape[0], n = feat.shape[1], c = feat.shape[2]
        let m = centres.shape[1], c2 = x.shape[2]
        guard centres.shape[0] == b, centres.shape[2] == c, x.shape[0] == b, x.shape[1] == m, m >= 1, c >= 1 else {
            throw TokenClusterError("shapes do not fit: feat \(feat.shape), centres \(centres.shape), x \(x.shape)")
        }
        guard k <= m else { throw TokenClusterError("k = \(k) exceeds the \(m) centres") }
        var y = Tensor(zeros: [b, n, c2], layout: .tokens)
        var w: Tensor? = withWeights ? Tensor(zeros: [b, n, m], layout: .tokens) : nil
        var wbuf = w ?? Tensor(zeros: [0])
        feat.withUnsafeBufferPointer { fb in centres.withUnsafeBufferPointer { sb in x.withUnsafeBufferPointer { xb in
            y.withUnsafeMutableBufferPointer { yb in wbuf.withUnsafeMutableBufferPointer { wb in
                guard let fp = fb.baseAddress, let sp = sb.baseAddress, let xp = xb.baseAddress, let yp = yb.baseAddress else { return }
                for bi in 0..<b {
                    TokenClusterKernels.reconstruct(feat: fp + bi * n * c, tokens: n, centres: sp + bi * m * c, count: m,
                                                    channels: c, x: xp + bi * m * c2, outChannels: c2, k: k,
                                                    temperature: temperature, stabilized: stabilized,
                                                    y: yp + bi * n * c2,
                                                    weights: withWeights ? wb.baseAddress.map { $0 + bi * n * m } : nil)
                }
            } }
        } } }
        if withWeights { w = wbuf }
        return (y, w)
    }
}
