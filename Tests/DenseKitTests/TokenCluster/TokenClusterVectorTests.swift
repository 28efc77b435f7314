import XCTest
@testable import DenseKit

/// The AVX-512 token clustering / reconstruction kernels (`TokenClusterVector`, C `token_cluster_avx512.c`,
/// `token_recon_avx512.c`)
/// against the Swift loops of `TokenClusterKernels` they replace (spec `token-clustering.md` 2.4 and 3):
/// odd grids and windows cut at the borders, channel counts that are not multiples of 16, class tokens,
/// top-k with ties (also through the screened path of `dk_token_reconstruct`), keep-all, the stabilised
/// mode and the weights output.
final class TokenClusterVectorTests: XCTestCase {
    override func setUpWithError() throws {
        try XCTSkipUnless(KernelDispatch.avx512, "this CPU has no AVX-512: only the Swift kernels run")
    }

    override func tearDown() { KernelDispatch.allowVectorKernels = true }

    /// Runs `body` with the vector kernels, then with the Swift kernels.
    private func both<T>(_ body: () throws -> T) rethrows -> (vector: T, swift: T) {
        KernelDispatch.allowVectorKernels = true
        let v = try body()
        KernelDispatch.allowVectorKernels = false
        defer { KernelDispatch.allowVectorKernels = true }
        return (v, try body())
    }

    func testClusteringMatchesSwiftKernel() throws {
        var gen = KAGenerator(seed: 2022)
        // (H, W, h, w, window, iters, C, t, class token)
        let cases: [(Int, Int, Int, Int, Int, Int, Int, Float, Bool)] = [
            (32, 32, 16, 16, 5, 5, 64, 0.05, true), (9, 11, 4, 3, 3, 3, 5, 0.4, false), (12, 20, 5, 7, 3, 3, 20, 0.3, true),
            (10, 14, 4, 6, 1, 1, 16, 1.0, false), (46, 12, 14, 5, 3, 2, 33, 0.2, false), (16, 16, 8, 8, 7, 2, 48, 0.1, false),
            (8, 8, 4, 4, 3, 3, 16, 40, false), (7, 5, 7, 5, 3, 2, 130, 0.05, false), (6, 9, 1, 1, 3, 2, 17, 0.5, false),
        ]
        for (hh, ww, ch, cw, lambda, kappa, c, t, cls) in cases {
            let layer = try TokenClustering(grid: (hh, ww), cells: (ch, cw), window: lambda, iters: kappa, temperature: t, classToken: cls)
            let x = gen.tensor([2, hh * ww + (cls ? 1 : 0), c])
            let r = try both { try layer(x).centres.scalars }
            XCTAssertEqual(r.vector.count, r.swift.count)
            var worst: Float = 0
            for (a, b) in zip(r.vector, r.swift) { worst = max(worst, abs(a - b) / max(1, abs(b))) }
            XCTAssertLessThan(worst, 2e-5, "\(hh)x\(ww) -> \(ch)x\(cw) window \(lambda) C \(c) t \(t)")
        }
    }

    /// A dead centre (spec 2.4: every affinity underflows) becomes the zero vector in both.
    func testDeadCentreIsZero() throws {
        var values = [Float](repeating: 0, count: 8 * 8 * 2)
        for i in 0..<64 { values[2 * i] = i == 0 ? 100 : Float(i % 8) * 0.1; values[2 * i + 1] = Float(i / 8) * 0.1 }
        let layer = try TokenClustering(grid: (8, 8), cells: (4, 4), window: 3, iters: 3, temperature: 5, classToken: false)
        let r = try both { try layer(Tensor(shape: [1, 64, 2], values: values)).centres.scalars }
        for (a, b) in zip(r.vector, r.swift) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b))) }
    }

    func testReconstructionMatchesSwiftKernel() throws {
        var gen = KAGenerator(seed: 31)
        // (N, M, C, C2, k, t, stabilized)
        let cases: [(Int, Int, Int, Int, Int, Float, Bool)] = [
            (1024 / 4, 64, 96, 96, 20, 0.03, false), (60, 15, 37, 19, 3, 0.5, false), (60, 15, 37, 19, -1, 0.5, true),
            (33, 35, 16, 130, 35, 0.2, false), (40, 40, 48, 8, 1, 1.0, true), (17, 256, 24, 24, 20, 0.05, false),
            (50, 7, 3, 5, 6, 2.0, false),
        ]
        for (n, m, c, c2, k, t, stab) in cases {
            let layer = try TokenReconstruction(k: k, temperature: t, stabilized: stab)
            let feat = gen.tensor([2, n, c]), centres = gen.tensor([2, m, c]), x = gen.tensor([2, m, c2])
            let r = try both { try layer(feat: feat, centres: centres, x: x, withWeights: true) }
            for (a, b) in zip(r.vector.y.scalars, r.swift.y.scalars) {
                XCTAssertEqual(a, b, accuracy: 2e-5 * max(1, abs(b)), "N \(n) M \(m) C \(c) C2 \(c2) k \(k)")
            }
            let wv = r.vector.weights?.scalars ?? [], ws = r.swift.weights?.scalars ?? []
            XCTAssertEqual(wv.count, 2 * n * m)
            XCTAssertEqual(wv.count, ws.count)
            for (a, b) in zip(wv, ws) { XCTAssertEqual(a, b, accuracy: 2e-6, "weights N \(n) M \(m) k \(k)") }
            XCTAssertEqual(wv.map { $0 != 0 }, ws.map { $0 != 0 }, "kept sets N \(n) M \(m) k \(k)")
        }
    }

    /// A NaN in one token's features gives NaN for that token (the reference's `w * (w >= tau)`: NaN * 0 is NaN),
    /// in both kernels, instead of an all-zero row that looks valid; the other tokens are unaffected.
    func testReconstructionKeepsNaN() throws {
        var gen = KAGenerator(seed: 8)
        let layer = try TokenReconstruction(k: 3, temperature: 0.5, stabilized: false)
        var featValues = gen.tensor([1, 10, 8]).scalars
        featValues[2 * 8 + 5] = .nan
        let feat = Tensor(shape: [1, 10, 8], values: featValues)
        let centres = gen.tensor([1, 6, 8]), x = gen.tensor([1, 6, 4])
        let r = try both { try layer(feat: feat, centres: centres, x: x, withWeights: false) }
        for y in [r.vector.y.scalars, r.swift.y.scalars] {
            for tok in 0..<10 {
                let row = y[(tok * 4)..<(tok * 4 + 4)]
                if tok == 2 { XCTAssertTrue(row.allSatisfy(\.isNaN), "token 2: \(Array(row))") }
                else { XCTAssertTrue(row.allSatisfy(\.isFinite), "token \(tok): \(Array(row))") }
            }
        }
    }

    /// Integer-valued tokens and centres: many exact ties at the k-th weight, which the screened path
    /// (GEMM dot products, direct distances for the candidates only) must keep like the Swift loop.
    func testScreenedReconstructionKeepsTies() throws {
        var gen = KAGenerator(seed: 5)
        let n = 96, m = 64, c = 16
        func ints(_ count: Int) -> [Float] { (0..<count).map { _ in (gen.next() * 1.5).rounded() } }
        let feat = Tensor(shape: [1, n, c], values: ints(n * c)), centres = Tensor(shape: [1, m, c], values: ints(m * c))
        let x = gen.tensor([1, m, 24])
        for k in [1, 4, 9] {
            let layer = try TokenReconstruction(k: k, temperature: 0.2)
            let r = try both { try layer(feat: feat, centres: centres, x: x, withWeights: true) }
            let wv = r.vector.weights?.scalars ?? [], ws = r.swift.weights?.scalars ?? []
            XCTAssertEqual(wv.map { $0 != 0 }, ws.map { $0 != 0 }, "k \(k)")
            XCTAssertGreaterThan(wv.filter { $0 != 0 }.count, n * k, "ties keep more than k")
            for (a, b) in zip(r.vector.y.scalars, r.swift.y.scalars) { XCTAssertEqual(a, b, accuracy: 2e-5 * max(1, abs(b))) }
        }
    }

    /// Exact ties at the k-th weight keep every tied centre (spec 3, `>=`), and rows whose weights all
    /// underflow give zeros, in both kernels.
    func testReconstructionTiesAndUnderflow() throws {
        // Token 0 is equidistant from centres 0-3 (ties at k = 2); token 1 is far from every centre.
        let feat = Tensor(shape: [1, 2, 2], values: [0, 0, 400, 400])
        let centres = Tensor(shape: [1, 5, 2], values: [1, 0, 0, 1, -1, 0, 0, -1, 3, 3])
        let x = Tensor(shape: [1, 5, 1], values: [1, 2, 3, 4, 5])
        let layer = try TokenReconstruction(k: 2, temperature: 0.5)
        let r = try both { try layer(feat: feat, centres: centres, x: x, withWeights: true) }
        XCTAssertEqual(r.vector.weights?.scalars.prefix(5).filter { $0 > 0 }.count, 4)
        XCTAssertEqual(r.vector.y.scalars[1], 0)
        for (a, b) in zip(r.vector.y.scalars, r.swift.y.scalars) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }
}
