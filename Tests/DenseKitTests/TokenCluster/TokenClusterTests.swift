import XCTest
@testable import DenseKit

/// Golden cases of `shared/golden/tokencluster`, plus unit checks of the clustering and
/// reconstruction layers and the ViT config.
final class TokenClusterParityTests: XCTestCase {
    /// `<repo>/../shared/golden/tokencluster`, found from this file's path.
    static var folder: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }   // TokenCluster, DenseKitTests, Tests, repo
        return url.deletingLastPathComponent().appendingPathComponent("shared/golden/tokencluster").path
    }

    func testEveryGoldenCasePasses() throws {
        guard FileManager.default.fileExists(atPath: Self.folder) else { throw XCTSkip("golden cases not found at \(Self.folder)") }
        let results = try ParityRunner.run(folder: Self.folder)
        XCTAssertGreaterThanOrEqual(results.count, 12)
        for r in results {
            print(r.line)
            XCTAssertEqual(r.status, .pass, r.line)
        }
    }
}

final class TokenClusterUnitTests: XCTestCase {
    /// Spec 2.2: the float32 nearest rule gives one less than the integer floor at these sizes.
    func testHomeCellFloatRule() {
        XCTAssertEqual(TokenClusterKernels.homeCell(23, size: 46, cells: 14), 6)
        XCTAssertEqual(TokenClusterKernels.homeCell(41, size: 82, cells: 2), 0)
        XCTAssertEqual(TokenClusterKernels.homeCell(69, size: 92, cells: 80), 59)
        XCTAssertEqual((0..<12).map { TokenClusterKernels.homeCell($0, size: 12, cells: 5) }, [0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4])
        XCTAssertEqual(TokenClusterKernels.homeCell(7, size: 16, cells: 8), 3)
    }

    /// Spec 2.1: H = 12, h = 5 bins.
    func testPoolBins() {
        let bins = (0..<5).map { TokenClusterKernels.poolBin($0, size: 12, cells: 5) }
        XCTAssertEqual(bins.map { $0.lo }, [0, 2, 4, 7, 9])
        XCTAssertEqual(bins.map { $0.hi }, [3, 5, 8, 10, 12])
    }

    /// Dense masked reference (the official formulation, in double) against the local-window kernel.
    func testLocalWindowMatchesDenseReference() throws {
        let hh = 9, ww = 11, c = 5, ch = 4, cw = 3, lambda = 3, kappa = 3
        let t: Double = 0.4
        var rng = SystemRandomNumberGenerator()
        let xs = (0..<(hh * ww * c)).map { _ in Float.random(in: -1...1, using: &rng) }
        let layer = try TokenClustering(grid: (hh, ww), cells: (ch, cw), window: lambda, iters: kappa, temperature: Float(t), classToken: false)
        let got = try layer(Tensor(shape: [1, hh * ww, c], values: xs), withLabels: true)
        // Dense reference.
        let n = hh * ww, m = ch * cw, r = (lambda - 1) / 2
        var s = [Double](repeating: 0, count: m * c)
        for i in 0..<ch { for j in 0..<cw {
            let rb = TokenClusterKernels.poolBin(i, size: hh, cells: ch), cb = TokenClusterKernels.poolBin(j, size: ww, cells: cw)
            for y in rb.lo..<rb.hi { for x in cb.lo..<cb.hi { for k in 0..<c { s[(i * cw + j) * c + k] += Double(xs[(y * ww + x) * c + k]) } } }
            for k in 0..<c { s[(i * cw + j) * c + k] /= Double((rb.hi - rb.lo) * (cb.hi - cb.lo)) }
        } }
        for _ in 0..<kappa {
            var num = [Double](repeating: 0, count: m * c), den = [Double](repeating: 0, count: m)
            for tok in 0..<n {
                let hy = TokenClusterKernels.homeCell(tok / ww, size: hh, cells: ch), hx = TokenClusterKernels.homeCell(tok % ww, size: ww, cells: cw)
                var logits = [Double](repeating: -.infinity, count: m)
                for cm in 0..<m where abs(cm / cw - hy) <= r && abs(cm % cw - hx) <= r {
                    var d = 0.0
                    for k in 0..<c { let e = Double(xs[tok * c + k]) - s[cm * c + k]; d += e * e }
                    logits[cm] = -t * d
                }
                let mx = logits.max() ?? 0
                let ex = logits.map { $0 == -.infinity ? 0 : Foundation.exp($0 - mx) }
                let sum = ex.reduce(0, +)
                for cm in 0..<m { let a = ex[cm] / sum; den[cm] += a; for k in 0..<c { num[cm * c + k] += a * Double(xs[tok * c + k]) } }
            }
            for cm in 0..<m { for k in 0..<c { s[cm * c + k] = num[cm * c + k] / max(den[cm], 1e-16) } }
        }
        let g = got.centres.scalars
        for i in 0..<(m * c) { XCTAssertEqual(Double(g[i]), s[i], accuracy: 1e-5) }
        XCTAssertEqual(got.labels?.shape, [1, n])
    }

    /// The stabilised reconstruction equals the faithful one when nothing underflows, and keeps the
    /// nearest centres where the faithful one returns zeros.
    func testStabilizedReconstruction() throws {
        let feat = Tensor(shape: [1, 2, 2], values: [0, 0, 100, 100])
        let centres = Tensor(shape: [1, 3, 2], values: [0, 1, 1, 0, 2, 2])
        let x = Tensor(shape: [1, 3, 1], values: [1, 2, 4])
        let faithful = try TokenReconstruction(k: 2, temperature: 0.5)
        let stable = try TokenReconstruction(k: 2, temperature: 0.5, stabilized: true)
        let a = try faithful(feat: feat, centres: centres, x: x).y.scalars
        let b = try stable(feat: feat, centres: centres, x: x).y.scalars
        XCTAssertEqual(a[0], b[0], accuracy: 1e-6)
        XCTAssertEqual(a[0], Float(3 / 2.0.squareRoot()), accuracy: 1e-5)   // two equal weights: sqrt(2) x mean
        XCTAssertEqual(a[1], 0)                                             // all weights underflow
        XCTAssertEqual(b[1], 4, accuracy: 1e-5)                             // nearest centre (2, 2)
    }

    func testInvalidArgumentsThrow() {
        XCTAssertThrowsError(try TokenClustering(grid: (4, 4), cells: (5, 2), window: 3, iters: 1, temperature: 1, classToken: false))
        XCTAssertThrowsError(try TokenClustering(grid: (4, 4), cells: (2, 2), window: 2, iters: 1, temperature: 1, classToken: false))
        XCTAssertThrowsError(try TokenReconstruction(k: 0, temperature: 1))
        let layer = try? TokenReconstruction(k: 5, temperature: 1)
        XCTAssertThrowsError(try layer?(feat: Tensor(zeros: [1, 4, 2]), centres: Tensor(zeros: [1, 3, 2]), x: Tensor(zeros: [1, 3, 2])))
        let bad: JSONValue? = try? JSONValue.parse(#"{"embed_dim": 32, "depth": 4, "num_heads": 2, "img_size": [96, 128], "alpha": 3, "beta": 3, "cluster_grid": [3, 5], "temperature": 0.1}"#)
        XCTAssertThrowsError(try ViTConfig(json: bad ?? .null))
        let good: JSONValue? = try? JSONValue.parse(#"{"embed_dim": 32, "depth": 4, "num_heads": 2, "img_size": [96, 128], "alpha": 1, "cluster_location": 0, "beta": 3, "cluster_grid": [3, 5], "temperature": 0.1, "recon_k": 4}"#)
        XCTAssertNoThrow(try ViTConfig(json: good ?? .null))
        XCTAssertThrowsError(try ViT(config: try ViTConfig(json: good ?? .null), weights: TensorDictionary()))
    }
}
