import Foundation
import CKernels

/// BiFormer's stage-4 full attention, `AttentionLePE` (`specs/biformer.md` §2; reference
/// `models/_common.py`), used by blocks with `topk == -2`.
///
/// Input and output **NHWC** `[N, H, W, C]`. Always 8 heads (head width C/8), scale
/// `(C/8) ** -0.5` applied after `q·kᵀ`, qkv linear **without bias**, and LePE (depthwise k×k) on
/// the attention **input**: `y = proj(softmax(q kᵀ·scale) v + lepe(x))`.
/// Weights (relative keys): `qkv.weight [3C, C]`, `lepe.weight [C, 1, k, k]`, `lepe.bias`,
/// `proj.weight [C, C]`, `proj.bias`.
public final class AttentionLePE: @unchecked Sendable {
    /// Channels C.
    public let dim: Int
    /// Heads (8 in the reference, whatever the config says).
    public let heads: Int
    let qkv: LinearOperator
    let proj: LinearOperator
    let lepe: Conv2dOperator

    /// Builds the layer from weights under `prefix` (e.g. `stages.3.0.attn.`).
    /// - Throws: `ModelConfigError` for missing / mis-shaped weights, or when 8 does not divide `dim`.
    public convenience init(dim: Int, sideDWConv: Int = 5, weights: WeightSource, prefix: String = "") throws {
        try self.init(dim: dim, sideDWConv: sideDWConv, reader: BiFormerWeightReader(weights, prefix: prefix))
    }

    init(dim: Int, sideDWConv: Int, reader r: BiFormerWeightReader) throws {
        guard dim > 0, dim % 8 == 0 else {
            throw ModelConfigError.invalidField(model: "biformer", field: "dim", message: "stage-4 attention needs dim divisible by 8, got \(dim)")
        }
        guard sideDWConv > 0, sideDWConv % 2 == 1 else {
            throw ModelConfigError.invalidField(model: "biformer", field: "side_dwconv", message: "must be a positive odd kernel size")
        }
        self.dim = dim
        heads = 8
        qkv = try LinearOperator(weight: try r.read("qkv.weight", [3 * dim, dim]), bias: nil)
        proj = try LinearOperator(weight: try r.read("proj.weight", [dim, dim]), bias: try r.read("proj.bias", [dim]))
        lepe = try BiFormerLayout.depthwise(channels: dim, kernel: sideDWConv,
                                             weight: try r.read("lepe.weight", [dim, 1, sideDWConv, sideDWConv]),
                                             bias: try r.read("lepe.bias", [dim]))
    }

    /// Runs the layer on `x` NHWC `[N, H, W, C]`, returning NHWC `[N, H, W, C]`.
    /// - Throws: `BiFormerError.inputShape` when `x` is not `[N, H, W, C]`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard x.rank == 4, x.shape[3] == dim else { throw BiFormerError.inputShape("attention input", "NHWC [N, H, W, \(dim)]", x.shape) }
        let n = x.shape[0], h = x.shape[1], w = x.shape[2], c = dim, L = h * w
        if n == 0 || L == 0 { return Tensor(zeros: x.shape, layout: .nhwc) }
        let t = Tensor(zeros: [n, L, 3 * c])
        qkv.forward(input: x.storage.pointer, rows: n * L, output: t.storage.pointer)
        let o = Tensor(zeros: [n, h, w, c], layout: .nhwc)
        let d = c / heads
        let scale = 1 / Float(Double(d).squareRoot())
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: L * L)
        defer { scores.deallocate() }
        let tp = t.storage.pointer, op = o.storage.pointer
        for b in 0..<n {
            let base = tp + b * L * 3 * c
            for hd in 0..<heads {
                BLAS.sgemm(transB: true, m: L, n: L, k: d, alpha: 1, a: base + hd * d, lda: 3 * c,
                           b: base + c + hd * d, ldb: 3 * c, c: scores, ldc: L)
                AttentionLePE.softmaxRows(scores, rows: L, cols: L, scale: scale)
                BLAS.sgemm(m: L, n: d, k: L, a: scores, lda: L, b: base + 2 * c + hd * d, ldb: 3 * c,
                           c: op + b * L * c + hd * d, ldc: c)
            }
        }
        let le = try lepe.checkedCall(BiFormerLayout.toNCHW(x))
        BRAPad.addNCHW(le.storage.pointer, intoNHWC: op, n: n, hw: L, c: c)
        let y = Tensor(zeros: [n, h, w, c], layout: .nhwc)
        proj.forward(input: op, rows: n * L, output: y.storage.pointer)
        return y
    }

    /// Row softmax of `x · scale` in place (the reference scales `q·kᵀ` then softmaxes).
    static func softmaxRows(_ p: UnsafeMutablePointer<Float>, rows: Int, cols: Int, scale: Float) {
        if KernelDispatch.avx512 {
            // AVX-512 rows (CKernels): Cephes exp, within a few ulp of the loop below.
            let chunk = max(1, 4096 / max(1, cols))
            Threading.parallelFor((rows + chunk - 1) / chunk) { c in
                let r0 = c * chunk
                _ = dk_softmax_rows(p + r0 * cols, min(chunk, rows - r0), cols, scale)
            }
            return
        }
        Threading.parallelFor(rows, grain: max(1, 4096 / max(1, cols))) { r in
            let row = p + r * cols
            var mx = -Float.infinity
            for j in 0..<cols { let v = row[j] * scale; row[j] = v; if v > mx { mx = v } }
            var s: Float = 0
            for j in 0..<cols { let e = expf(row[j] - mx); row[j] = e; s += e }
            let inv = 1 / s
            for j in 0..<cols { row[j] *= inv }
        }
    }
}
