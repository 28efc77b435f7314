import Foundation
import XCTest
@testable import DenseKit

/// Runs every golden `ops` case of the conv / GEMM / attention targets through the parity runner.
final class ConvGoldenTests: XCTestCase {
    static let targets = ["conv2d", "conv_transpose2d", "linear", "matmul", "scaled_dot_product_attention", "multi_head_attention"]

    /// `<repo>/../shared/golden/ops`, found from this file's path.
    static var opsFolder: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }   // KernelsConv, DenseKitTests, Tests, repo
        return url.deletingLastPathComponent().appendingPathComponent("shared/golden/ops").path
    }

    func caseFiles() throws -> [(String, String)] {
        let folder = Self.opsFolder
        guard FileManager.default.fileExists(atPath: folder) else { throw XCTSkip("golden cases not found at \(folder)") }
        var out: [(String, String)] = []
        for f in try ParityRunner.findCases(in: folder) {
            guard let gc = try? GoldenCase(path: f) else { continue }
            if Self.targets.contains(gc.target) { out.append((gc.target, f)) }
        }
        return out
    }

    func testAllGoldenCasesPass() throws {
        let files = try caseFiles()
        XCTAssertGreaterThanOrEqual(files.count, 50, "expected the conv/linear/attention golden cases")
        var seen = Set<String>()
        for (target, f) in files {
            seen.insert(target)
            let r = ParityRunner.run(casePath: f)
            print(r.line)
            XCTAssertEqual(r.status, .pass, r.line)
        }
        XCTAssertEqual(seen, Set(Self.targets), "every target has cases")
    }

    /// The same cases with one thread give bit-identical outputs.
    func testGoldenCasesSingleThreadIdentical() throws {
        let files = try caseFiles().filter { $0.0 == "conv2d" || $0.0 == "conv_transpose2d" }
        let saved = Threading.threads
        defer { Threading.threads = saved }
        for (_, f) in files {
            let gc = try GoldenCase(path: f)
            guard let h = ParityRegistry.handler(family: gc.family, target: gc.target) else { return XCTFail("no handler") }
            Threading.threads = 1
            guard case .float(let a)? = try h(gc)["y"] else { return XCTFail("no y") }
            Threading.threads = 2
            guard case .float(let b)? = try h(gc)["y"] else { return XCTFail("no y") }
            assertBitIdentical(a, b, gc.name)
        }
    }

    /// mha_self through the fused q/k/v projection (the same tensor passed three times).
    func testMHASelfFusedProjection() throws {
        let path = Self.opsFolder + "/mha_self.safetensors"
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("mha_self not found") }
        let gc = try GoldenCase(path: path)
        let m = try MultiHeadAttention(embedDim: 24, numHeads: 4, inProjWeight: try gc.param("in_proj_weight"),
                                       inProjBias: try gc.param("in_proj_bias"), outProjWeight: try gc.param("out_proj.weight"),
                                       outProjBias: try gc.param("out_proj.bias"))
        let x = try gc.input("query")
        let y = try m(x)
        let want = try gc.file.floatTensor("output.y")
        XCTAssertEqual(y.shape, want.shape)
        for (g, w) in zip(y.scalars, want.scalars) { XCTAssertEqual(g, w, accuracy: 1e-5 + 1e-5 * abs(w)) }
    }
}
