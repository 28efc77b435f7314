import Foundation

/// Errors of the BiFormer layers and model (`specs/biformer.md`).
public enum BiFormerError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The input tensor has the wrong rank or channel count: `(what, expected, got)`.
    case inputShape(String, String, [Int])
    /// Without auto-padding, a BRA feature map must be divisible by `n_win` (the reference asserts it).
    case notDivisible(height: Int, width: Int, nWin: Int)
    /// The classification model cannot take this image size; `valid` describes the sizes that work.
    case inputSize(height: Int, width: Int, valid: String)
    /// An option the released models never use (only `kv_downsample_mode "identity"`, `param_attention "qkvo"`,
    /// hard routing are supported).
    case unsupported(String)

    /// One line naming the problem.
    public var description: String {
        switch self {
        case let .inputShape(what, expected, got): return "biformer: \(what) must be \(expected), got \(got)"
        case let .notDivisible(h, w, s):
            return "biformer: BRA feature map \(h)x\(w) is not divisible by n_win \(s) (auto_pad is off)"
        case let .inputSize(h, w, valid):
            return "biformer: input size \(h)x\(w) is not accepted by this configuration; \(valid)"
        case let .unsupported(m): return "biformer: unsupported option: \(m)"
        }
    }
}

/// Reads BiFormer weights by their official state-dict key names, checking shapes and recording
/// which keys were used (so a model can report the unexpected ones).
final class BiFormerWeightReader {
    /// Keys read so far, shared by every scoped reader.
    final class Record { var keys: Set<String> = [] }
    let source: WeightSource
    let prefix: String
    let record: Record

    init(_ source: WeightSource, prefix: String = "", record: Record = Record()) {
        self.source = source; self.prefix = prefix; self.record = record
    }

    /// The tensor `prefix + key`, which must have `shape`.
    /// - Throws: `ModelConfigError.missingWeights` / `.weightShapes`.
    func read(_ key: String, _ shape: [Int]) throws -> Tensor {
        let full = prefix + key
        guard let s = source.shape(of: full) else { throw ModelConfigError.missingWeights(model: "biformer", keys: [full]) }
        guard s == shape else {
            throw ModelConfigError.weightShapes(model: "biformer", mismatches: ["\(full): expected \(shape), found \(s)"])
        }
        record.keys.insert(full)
        return try source.tensor(full)
    }

    /// Whether `prefix + key` exists.
    func contains(_ key: String) -> Bool { source.shape(of: prefix + key) != nil }

    /// A reader for the sub-module at `sub` (keys `prefix + sub + key`), sharing the record.
    func scoped(_ sub: String) -> BiFormerWeightReader { BiFormerWeightReader(source, prefix: prefix + sub, record: record) }
}

/// Layout helpers for the BiFormer layers (plain loops over contiguous tensors).
enum BiFormerLayout {
    /// `[N, C, H, W]` → `[N, H, W, C]`.
    static func toNHWC(_ x: Tensor) -> Tensor {
        let n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
        let y = Tensor(zeros: [n, h, w, c], layout: .nhwc)
        transpose(x.storage.pointer, y.storage.pointer, batch: n, rows: c, cols: h * w)
        return y
    }

    /// `[N, H, W, C]` → `[N, C, H, W]`.
    static func toNCHW(_ x: Tensor) -> Tensor {
        let n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3]
        let y = Tensor(zeros: [n, c, h, w], layout: .nchw)
        transpose(x.storage.pointer, y.storage.pointer, batch: n, rows: h * w, cols: c)
        return y
    }

    /// Per batch, `dst[col, row] = src[row, col]` for a `[rows, cols]` matrix.
    /// Tiled (CKernels `dk_transpose`), in bands of 32 source rows split over threads.
    static func transpose(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, batch: Int, rows: Int, cols: Int) {
        let bands = (rows + 31) / 32
        Threading.parallelFor(batch * bands) { bb in
            let b = bb / bands, r0 = (bb % bands) * 32, nr = min(32, rows - r0)
            // Band rows r0..<r0+nr of [rows, cols] -> columns r0..<r0+nr of [cols, rows].
            let s = src + (b * rows + r0) * cols
            let d = dst + b * rows * cols + r0
            for c0 in stride(from: 0, to: cols, by: 32) {
                let nc = min(32, cols - c0)
                for c in c0..<(c0 + nc) {
                    let dc = d + c * rows, sc = s + c
                    for r in 0..<nr { dc[r] = sc[r * cols] }
                }
            }
        }
    }

    /// `a += b` element-wise over `count` values.
    static func addInPlace(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
        Threading.parallelFor((count + 16383) / 16384) { chunk in
            let lo = chunk * 16384, hi = min(count, lo + 16384)
            for i in lo..<hi { a[i] += b[i] }
        }
    }

    /// A depthwise `k×k`, stride-1, padding `k/2` convolution with bias (PyTorch `Conv2d(C, C, k, groups=C)`).
    static func depthwise(channels: Int, kernel: Int, weight: Tensor, bias: Tensor) throws -> Conv2dOperator {
        let p = Conv2dParameters(inChannels: channels, outChannels: channels, kernelH: kernel, kernelW: kernel,
                                 padH: kernel / 2, padW: kernel / 2, groups: channels)
        return try Conv2dOperator(p, weight: weight, bias: bias)
    }
}
