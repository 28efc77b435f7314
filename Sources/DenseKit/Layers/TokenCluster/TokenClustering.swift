import Foundation

/// An invalid argument of a token clustering / reconstruction layer (one line naming it).
public struct TokenClusterError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What is wrong.
    public let message: String
    /// Creates the error.
    public init(_ message: String) { self.message = message }
    /// One line: `token cluster: <message>`.
    public var description: String { "token cluster: \(message)" }
}

/// Token clustering layer (Liang et al., NeurIPS 2022; spec `token-clustering.md` section 2),
/// plain-ViT variant of the reference (`mmseg/ops/cluster.py`).
///
/// Input patch tokens X `[B, N, C]` on an H x W grid (N = H*W, row-major), or `[B, 1+N, C]` with a
/// class token at row 0 (kept aside, copied unchanged). Output centres S `[B, M, C]`
/// (`[B, 1+M, C]` with the class token), M = h*w, and optionally hard labels `[B, N]` (int64).
/// Centres start as the adaptive average pool of the token map (2.1); each token softly
/// assigns itself to the centres within a lambda x lambda window around its home cell (2.2-2.3;
/// float32 nearest rule), kappa times (2.4, temperature t, denominator clamped at 1e-16).
/// Cost O(kappa x N x lambda^2 x C) (local-window form; labels add O(N x M x C) when requested).
public struct TokenClustering: Sendable, Equatable {
    /// Token grid height H and width W.
    public var gridH: Int, gridW: Int
    /// Cell grid h x w (M = h*w centres).
    public var cellsH: Int, cellsW: Int
    /// lambda: odd side of the candidate window, in cells.
    public var window: Int
    /// kappa: soft k-means iterations (0 = adaptive pooling only).
    public var iters: Int
    /// t: logits are `-t * squared distance`.
    public var temperature: Float
    /// Whether row 0 of the input is a class token that passes through.
    public var classToken: Bool

    /// Creates and validates the layer (spec 1).
    /// - Throws: `TokenClusterError` when `1 <= h <= H`, `1 <= w <= W`, odd `window >= 1`, `iters >= 0`
    ///   or `temperature > 0` (finite) does not hold.
    public init(grid: (height: Int, width: Int), cells: (height: Int, width: Int), window: Int, iters: Int,
                temperature: Float, classToken: Bool) throws {
        guard grid.height >= 1, grid.width >= 1 else { throw TokenClusterError("grid must be >= 1x1, got \(grid.height)x\(grid.width)") }
        guard cells.height >= 1, cells.height <= grid.height, cells.width >= 1, cells.width <= grid.width else {
            throw TokenClusterError("cluster_grid \(cells.height)x\(cells.width) must lie in 1x1 ... \(grid.height)x\(grid.width)")
        }
        guard window >= 1, window % 2 == 1 else { throw TokenClusterError("window must be odd and >= 1, got \(window)") }
        guard iters >= 0 else { throw TokenClusterError("iters must be >= 0, got \(iters)") }
        guard temperature > 0, temperature.isFinite else { throw TokenClusterError("temperature must be > 0, got \(temperature)") }
        gridH = grid.height; gridW = grid.width
        cellsH = cells.height; cellsW = cells.width
        self.window = window; self.iters = iters; self.temperature = temperature; self.classToken = classToken
    }

    /// Reads the golden `token_clustering` attrs: `grid`, `cluster_grid`, `window` (5), `iters` (5),
    /// `temperature` (required), `cls_token` (false).
    /// - Throws: `ModelConfigError.invalidField` / `TokenClusterError`.
    public init(json: JSONValue) throws {
        let r = try ConfigReader(json, model: "token_clustering")
        let g = try r.ints("grid", count: 2)
        let cg = try r.ints("cluster_grid", count: 2)
        try self.init(grid: (g[0], g[1]), cells: (cg[0], cg[1]), window: try r.int("window", default: 5),
                      iters: try r.int("iters", default: 5), temperature: Float(try r.double("temperature")),
                      classToken: try r.bool("cls_token", default: false))
    }

    /// Number of centres M = h*w.
    public var centreCount: Int { cellsH * cellsW }
    /// Number of patch tokens N = H*W.
    public var tokenCount: Int { gridH * gridW }

    /// Clusters `x` `[B, N, C]` (or `[B, 1+N, C]` with a class token).
    /// - Parameter withLabels: also compute the hard labels `[B, N]` (O(N x M x C)).
    /// - Returns: centres `[B, M, C]` (or `[B, 1+M, C]`), labels or nil.
    /// - Throws: `TokenClusterError` when the shape does not fit.
    public func callAsFunction(_ x: Tensor, withLabels: Bool = false) throws -> (centres: Tensor, labels: IndexTensor?) {
        let off = classToken ? 1 : 0
        let n = tokenCount, m = centreCount
        guard x.rank == 3, x.shape[1] == n + off, x.shape[2] >= 1 else {
            throw TokenClusterError("input must be [B, \(n + off), C], got \(x.shape)")
        }
        let b = x.shape[0], c = x.shape[2]
        var out = Tensor(zeros: [b, m + off, c], layout: .tokens)
        var labels = withLabels ? [Int64](repeating: 0, count: b * n) : []
        x.withUnsafeBufferPointer { xb in
            out.withUnsafeMutableBufferPointer { ob in
                guard let xp = xb.baseAddress, let op = ob.baseAddress else { return }
                for bi in 0..<b {
                    let src = xp + bi * (n + off) * c
                    let dst = op + bi * (m + off) * c
                    if off == 1 { dst.update(from: src, count: c) }
                    TokenClusterKernels.cluster(src + off * c, height: gridH, width: gridW, channels: c,
                                                cellsH: cellsH, cellsW: cellsW, window: window, iters: iters,
                                                temperature: temperature, centres: dst + off * c)
                    if withLabels {
                        labels.withUnsafeMutableBufferPointer { lb in
                            guard let lp = lb.baseAddress else { return }
                            TokenClusterKernels.labels(src + off * c, tokens: n, centres: dst + off * c, count: m,
                                                       channels: c, lp + bi * n)
                        }
                    }
                }
            }
        }
        return (out, withLabels ? IndexTensor(shape: [b, n], values: labels) : nil)
    }
}
