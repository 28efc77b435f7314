import XCTest
@testable import DenseKit

/// Spec section 8 / ERRATA issue 6 benchmark: ViT-S/16 at 512x512 (random weights), plain vs
/// clustering after block 4 to 16x16 (window 5, 5 iterations, t 0.01) with reconstruction after
/// the final norm (k 20, t 0.03; and k 1). Only runs with `DENSEKIT_TC_BENCH=1`.
final class TokenClusterBenchTests: XCTestCase {
    struct Normal {
        var state: UInt64
        mutating func next() -> Float {
            func u(_ s: inout UInt64) -> Double {
                s = s &* 6364136223846793005 &+ 1442695040888963407
                return (Double(s >> 11) + 0.5) / Double(1 << 53)
            }
            let a = u(&state), b = u(&state)
            return Float((-2 * Foundation.log(a)).squareRoot() * Foundation.cos(2 * Double.pi * b))
        }
    }

    static func randomWeights(_ c: ViTConfig, seed: UInt64) -> TensorDictionary {
        var g = Normal(state: seed)
        var d = TensorDictionary()
        for (k, s) in ViT.expectedWeights(c) {
            let n = s.reduce(1, *)
            let isNorm = k.contains("norm")
            let vals: [Float]
            if isNorm && k.hasSuffix("weight") { vals = [Float](repeating: 1, count: n) }
            else if k.hasSuffix("bias") { vals = [Float](repeating: 0, count: n) }
            else { vals = (0..<n).map { _ in 0.02 * max(-2, min(2, g.next())) } }
            d[k] = Tensor(shape: s, values: vals)
        }
        return d
    }

    static func time(_ body: () throws -> Void) rethrows -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }

    static func relL2(_ a: Tensor, _ b: Tensor) -> (change: Double, ratio: Double) {
        let x = a.scalars, y = b.scalars
        var num = 0.0, na = 0.0, nb = 0.0
        for i in 0..<x.count { let d = Double(x[i] - y[i]); num += d * d; na += Double(x[i]) * Double(x[i]); nb += Double(y[i]) * Double(y[i]) }
        return ((num / nb).squareRoot(), (na / nb).squareRoot())
    }

    func testViTSmallBenchmark() throws {
        guard ProcessInfo.processInfo.environment["DENSEKIT_TC_BENCH"] == "1" else { throw XCTSkip("set DENSEKIT_TC_BENCH=1") }
        let base = #"{"embed_dim": 384, "depth": 12, "num_heads": 6, "img_size": [512, 512], "pos_embed_grid": [14, 14]"#
        let plainCfg = try ViTConfig(json: try JSONValue.parse(base + "}"))
        func clustered(_ k: Int) throws -> ViTConfig {
            try ViTConfig(json: try JSONValue.parse(base + #", "alpha": 4, "beta": 12, "cluster_grid": [16, 16], "window": 5, "iters": 5, "temperature": 0.01, "recon_k": \#(k), "recon_temperature": 0.03}"#))
        }
        let w = Self.randomWeights(plainCfg, seed: 7)
        var g = Normal(state: 11)
        let image = Tensor(shape: [1, 3, 512, 512], values: (0..<(3 * 512 * 512)).map { _ in g.next() })
        let plain = try ViT(config: plainCfg, weights: w)
        let c20 = try ViT(config: try clustered(20), weights: w)
        let c1 = try ViT(config: try clustered(1), weights: w)
        var yPlain = Tensor(zeros: [0]), y20 = Tensor(zeros: [0]), y1 = Tensor(zeros: [0])
        var tp = Double.infinity, t20 = Double.infinity, t1 = Double.infinity
        for _ in 0..<3 {
            tp = min(tp, try Self.time { yPlain = try plain.run(image)["y"] ?? yPlain })
            t20 = min(t20, try Self.time { y20 = try c20.run(image)["y"] ?? y20 })
            t1 = min(t1, try Self.time { y1 = try c1.run(image)["y"] ?? y1 })
        }
        let r20 = Self.relL2(y20, yPlain), r1 = Self.relL2(y1, yPlain)
        print(String(format: "TCBENCH plain %.3f s  clustered k=20 %.3f s (%.2fx)  k=1 %.3f s (%.2fx)", tp, t20, tp / t20, t1, tp / t1))
        print(String(format: "TCBENCH noise image: rel L2 change k=20 %.3f (|y| ratio %.2f)  k=1 %.3f (|y| ratio %.2f)", r20.change, r20.ratio, r1.change, r1.ratio))
        // A smooth image (neighbouring patches alike, as in natural images).
        let smooth = Tensor(shape: [1, 3, 512, 512]) { i in
            let ch = i / (512 * 512), y = (i / 512) % 512, x = i % 512
            return Float(Foundation.sin(0.021 * Double(x) + 0.9 * Double(ch)) + Foundation.cos(0.017 * Double(y) - 0.4 * Double(ch)) + 0.5 * Foundation.sin(0.006 * Double(x + y)))
        }
        let sp = try plain.run(smooth)["y"] ?? yPlain
        let s20 = Self.relL2(try c20.run(smooth)["y"] ?? y20, sp), s1 = Self.relL2(try c1.run(smooth)["y"] ?? y1, sp)
        print(String(format: "TCBENCH smooth image: rel L2 change k=20 %.3f (|y| ratio %.2f)  k=1 %.3f (|y| ratio %.2f)", s20.change, s20.ratio, s1.change, s1.ratio))

        // The layers alone (spec 8 anchors: 20.7 ms clustering, 4.9 ms reconstruction).
        let tokens = Tensor(shape: [1, 1024, 384], values: (0..<(1024 * 384)).map { _ in g.next() })
        let layer = try TokenClustering(grid: (32, 32), cells: (16, 16), window: 5, iters: 5, temperature: 0.01, classToken: false)
        var s = Tensor(zeros: [0]), tc = Double.infinity
        for _ in 0..<5 { tc = min(tc, try Self.time { s = try layer(tokens).centres }) }
        let recon = try TokenReconstruction(k: 20, temperature: 0.03)
        var tr = Double.infinity
        for _ in 0..<5 { tr = min(tr, try Self.time { _ = try recon(feat: tokens, centres: s, x: s) }) }
        print(String(format: "TCBENCH clustering layer %.2f ms  reconstruction %.2f ms", tc * 1e3, tr * 1e3))
    }
}
