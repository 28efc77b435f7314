import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Convolution throughput against a plain GEMM of the same size (issue 3, item 6).
///
/// For each layer (batch 1, NCHW) the benchmark times `Conv2dOperator.forward` (im2col + GEMM,
/// direct 1x1 GEMM or the depthwise kernel, with its bias epilogue) and a plain `BLAS.sgemm`
/// with the convolution's GEMM sizes: `M = C_out/groups`, `N = H_out*W_out`,
/// `K = C_in/groups * kH * kW`, called once per group. Both report GFLOP/s of the same
/// `2*M*N*K*groups` flops; `ratio = convGflops / gemmGflops` (target >= 0.8 for 3x3 convolutions
/// with >= 64 channels at 128x128). `densekit bench conv` prints these rows.
public enum ConvBenchmark {
    /// One benchmarked layer. Times are medians over the repeats, in milliseconds.
    public struct Row: Sendable {
        /// Layer description, e.g. `3x3 64->64 128x128`.
        public var name: String
        /// GEMM rows (`C_out/groups`).
        public var m: Int
        /// GEMM columns (`H_out*W_out`).
        public var n: Int
        /// GEMM depth (`C_in/groups*kH*kW`).
        public var k: Int
        /// Median time of one convolution forward.
        public var convMs: Double
        /// Median time of the equivalent plain GEMM(s).
        public var gemmMs: Double
        /// Convolution throughput.
        public var convGflops: Double
        /// Plain GEMM throughput.
        public var gemmGflops: Double
        /// `convGflops / gemmGflops`.
        public var ratio: Double
        /// Fastest convolution run (ms); with `gemmMinMs`, less sensitive to a busy machine than the medians.
        public var convMinMs: Double = 0
        /// Fastest GEMM run (ms).
        public var gemmMinMs: Double = 0
        /// `gemmMinMs / convMinMs`.
        public var minRatio: Double { convMinMs > 0 ? gemmMinMs / convMinMs : 0 }

        /// One aligned text line.
        public var line: String {
            name.padding(toLength: max(26, name.count), withPad: " ", startingAt: 0)
                + String(format: " M=%4d N=%6d K=%5d  conv %8.3f ms %7.1f GFLOP/s  gemm %8.3f ms %7.1f GFLOP/s  ratio %5.2f  (min: conv %.3f gemm %.3f ratio %.2f)",
                         m, n, k, convMs, convGflops, gemmMs, gemmGflops, ratio, convMinMs, gemmMinMs, minRatio)
        }
    }

    /// A layer to measure.
    public struct Layer: Sendable {
        /// Display name.
        public var name: String
        /// The convolution.
        public var parameters: Conv2dParameters
        /// Input height and width.
        public var height: Int, width: Int

        /// Creates a layer description.
        public init(name: String, parameters: Conv2dParameters, height: Int, width: Int) {
            self.name = name; self.parameters = parameters; self.height = height; self.width = width
        }
    }

    /// The default layers: 3x3 64/128/256 channels at 128x128, a 1x1 256->256, a 3x3 stride 2,
    /// a 3x3 128->128 with ReLU, and depthwise 3x3 (stride 1 and 2) and 5x5 with 256 channels.
    public static var defaultLayers: [Layer] {
        func conv(_ name: String, _ cin: Int, _ cout: Int, _ k: Int, stride: Int = 1, groups: Int = 1,
                  act: Activation = .none, size: Int = 128) -> Layer {
            Layer(name: name, parameters: Conv2dParameters(inChannels: cin, outChannels: cout, kernelH: k, kernelW: k,
                                                           strideH: stride, strideW: stride, padH: k / 2, padW: k / 2,
                                                           groups: groups, activation: act),
                  height: size, width: size)
        }
        return [
            conv("3x3 64->64 128x128", 64, 64, 3),
            conv("3x3 128->128 128x128", 128, 128, 3),
            conv("3x3 256->256 128x128", 256, 256, 3),
            conv("3x3 128->128 relu 128x128", 128, 128, 3, act: .relu),
            conv("3x3 s2 128->256 128x128", 128, 256, 3, stride: 2),
            conv("1x1 256->256 128x128", 256, 256, 1),
            conv("dw3x3 256 128x128", 256, 256, 3, groups: 256),
            conv("dw3x3 s2 256 128x128", 256, 256, 3, stride: 2, groups: 256),
            conv("dw5x5 256 128x128", 256, 256, 5, groups: 256),
        ]
    }

    /// Runs the default layers.
    /// - Parameter repeats: timed runs per measurement (after one warm-up; convolution and GEMM
    ///   alternate); the median is reported.
    public static func run(repeats: Int = 10) -> [Row] {
        run(layers: defaultLayers, repeats: repeats)
    }

    /// Runs the given layers (invalid layers are skipped).
    public static func run(layers: [Layer], repeats: Int = 10) -> [Row] {
        layers.compactMap { measure($0, repeats: max(1, repeats)) }
    }

    /// Deterministic values in [-1, 1).
    static func fill(_ p: UnsafeMutablePointer<Float>, count: Int, seed: UInt64) {
        var s = seed &* 6364136223846793005 &+ 1442695040888963407
        for i in 0..<count {
            s = s &* 6364136223846793005 &+ 1442695040888963407
            p[i] = Float(Int32(truncatingIfNeeded: s >> 32)) / Float(Int32.max)
        }
    }

    static func nowSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        if s.isEmpty { return 0 }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// Median wall times (ms) of `a` and `b`, run alternately (after one warm-up each) so that
    /// both see the same machine load.
    static func timeInterleaved(repeats: Int, _ a: () -> Void, _ b: () -> Void) -> (Double, Double, Double, Double) {
        a(); b()
        var ta: [Double] = [], tb: [Double] = []
        for _ in 0..<repeats {
            var t = nowSeconds()
            a()
            ta.append(nowSeconds() - t)
            t = nowSeconds()
            b()
            tb.append(nowSeconds() - t)
        }
        return (median(ta) * 1000, median(tb) * 1000, (ta.min() ?? 0) * 1000, (tb.min() ?? 0) * 1000)
    }

    static func measure(_ layer: Layer, repeats: Int) -> Row? {
        let p = layer.parameters
        guard (try? p.validate()) != nil else { return nil }
        let o = p.outputSize(height: layer.height, width: layer.width)
        guard o.height > 0, o.width > 0 else { return nil }
        let wShape = [p.outChannels, p.inChannels / p.groups, p.kernelH, p.kernelW]
        var w = Tensor(zeros: wShape)
        w.withUnsafeMutableBufferPointer { b in if let base = b.baseAddress { fill(base, count: b.count, seed: 1) } }
        var bias = Tensor(zeros: [p.outChannels])
        bias.withUnsafeMutableBufferPointer { b in if let base = b.baseAddress { fill(base, count: b.count, seed: 2) } }
        guard let op = try? Conv2dOperator(p, weight: w, bias: bias) else { return nil }
        let inCount = p.inChannels * layer.height * layer.width
        let outCount = p.outChannels * o.height * o.width
        let m = p.outChannels / p.groups, n = o.height * o.width, k = p.inChannels / p.groups * p.kernelH * p.kernelW
        let x = UnsafeMutablePointer<Float>.allocate(capacity: inCount)
        let y = UnsafeMutablePointer<Float>.allocate(capacity: outCount)
        let wsCount = max(1, op.workspaceCount(batch: 1, height: layer.height, width: layer.width))
        let ws = UnsafeMutablePointer<Float>.allocate(capacity: wsCount)
        // Plain GEMM operands: A [M, K] per group, B [K, N], C [M, N] per group.
        let a = UnsafeMutablePointer<Float>.allocate(capacity: m * k * p.groups)
        let b = UnsafeMutablePointer<Float>.allocate(capacity: k * n)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: m * n * p.groups)
        defer { x.deallocate(); y.deallocate(); ws.deallocate(); a.deallocate(); b.deallocate(); c.deallocate() }
        fill(x, count: inCount, seed: 3)
        fill(a, count: m * k * p.groups, seed: 4)
        fill(b, count: k * n, seed: 5)
        ws.initialize(repeating: 0, count: wsCount)
        c.initialize(repeating: 0, count: m * n * p.groups)
        let (convMs, gemmMs, convMin, gemmMin) = timeInterleaved(repeats: repeats, {
            op.forward(input: x, batch: 1, height: layer.height, width: layer.width, output: y, workspace: ws)
        }, {
            for g in 0..<p.groups {
                BLAS.sgemm(m: m, n: n, k: k, a: a + g * m * k, lda: k, b: b, ldb: n, c: c + g * m * n, ldc: n)
            }
        })
        let flops = op.flops(batch: 1, height: layer.height, width: layer.width)
        let cg = convMs > 0 ? flops / (convMs * 1e6) : 0
        let gg = gemmMs > 0 ? flops / (gemmMs * 1e6) : 0
        return Row(name: layer.name, m: m, n: n, k: k, convMs: convMs, gemmMs: gemmMs,
                   convGflops: cg, gemmGflops: gg, ratio: gg > 0 ? cg / gg : 0, convMinMs: convMin, gemmMinMs: gemmMin)
    }
}
