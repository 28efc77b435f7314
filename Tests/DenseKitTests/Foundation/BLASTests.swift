import XCTest
@testable import DenseKit

/// OpenBLAS loading, the summary line, and the reference GEMM used when OpenBLAS is absent.
final class BLASTests: XCTestCase {
    func testSummaryLineNamesVersionCoreAndThreads() throws {
        try BLAS.ensureLoaded()
        let line = BLAS.summary()
        XCTAssertTrue(line.hasPrefix("blas: OpenBLAS "), line)
        XCTAssertTrue(line.contains(" core "), line)
        XCTAssertTrue(line.contains(" threads "), line)
    }

    func testSgemmMatchesReferenceForAllTransposes() throws {
        try BLAS.ensureLoaded()
        var rng = SystemRandomNumberGenerator()
        for (m, n, k) in [(1, 1, 1), (7, 5, 3), (33, 17, 65), (64, 128, 9)] {
            for ta in [false, true] {
                for tb in [false, true] {
                    let a = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
                    let b = (0..<(k * n)).map { _ in Float.random(in: -1...1, using: &rng) }
                    let lda = ta ? m : k, ldb = tb ? k : n
                    var c1 = [Float](repeating: 0.5, count: m * n), c2 = c1
                    BLAS.sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 1.5, a: a, lda: lda, b: b, ldb: ldb,
                               beta: 0.25, c: &c1, ldc: n)
                    BLAS.referenceSgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 1.5, a: a, lda: lda, b: b, ldb: ldb,
                                        beta: 0.25, c: &c2, ldc: n)
                    for i in 0..<(m * n) { XCTAssertEqual(c1[i], c2[i], accuracy: 1e-4, "m\(m) n\(n) k\(k) ta\(ta) tb\(tb)") }
                }
            }
        }
    }

    /// Products large enough to be split into slabs over DenseKit's threads (rows when C is tall, columns when
    /// wide, every transpose): the same values as the reference and the same bits with one thread or two.
    func testSplitSgemmMatchesReferenceAndOneThread() throws {
        try BLAS.ensureLoaded()
        let saved = Threading.threads
        defer { Threading.threads = saved }
        var rng = SystemRandomNumberGenerator()
        for (m, n, k) in [(301, 97, 130), (90, 333, 128), (257, 257, 64)] {
            for ta in [false, true] {
                for tb in [false, true] {
                    let a = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
                    let b = (0..<(k * n)).map { _ in Float.random(in: -1...1, using: &rng) }
                    let lda = ta ? m : k, ldb = tb ? k : n
                    var c1 = [Float](repeating: 0.5, count: m * n), c2 = c1, c3 = c1
                    Threading.threads = 2
                    BLAS.sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 1.5, a: a, lda: lda, b: b, ldb: ldb,
                               beta: 0.25, c: &c1, ldc: n)
                    Threading.threads = 1
                    BLAS.sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 1.5, a: a, lda: lda, b: b, ldb: ldb,
                               beta: 0.25, c: &c3, ldc: n)
                    BLAS.referenceSgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 1.5, a: a, lda: lda, b: b, ldb: ldb,
                                        beta: 0.25, c: &c2, ldc: n)
                    for i in 0..<(m * n) { XCTAssertEqual(c1[i], c2[i], accuracy: 1e-3, "m\(m) n\(n) k\(k) ta\(ta) tb\(tb)") }
                    XCTAssertEqual(c1, c3, "split and unsplit differ: m\(m) n\(n) k\(k) ta\(ta) tb\(tb)")
                }
            }
        }
    }

    func testPreferredCoreTypeIsKnownName() {
        if let core = BLAS.preferredCoreType() {
            XCTAssertTrue(["SkylakeX", "Haswell"].contains(core))
        }
    }
}
