import XCTest
@testable import DenseKit

/// Runs every golden `biformer` case (`../shared/golden/biformer`, spec `biformer.md`) through the parity runner.
final class BiFormerGoldenTests: XCTestCase {
    /// `<repo>/../shared/golden/biformer`, found from this file's path.
    static var folder: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url = url.deletingLastPathComponent() }   // BiFormer, DenseKitTests, Tests, repo
        return url.deletingLastPathComponent().appendingPathComponent("shared/golden/biformer").path
    }

    func assertPass(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let path = (Self.folder as NSString).appendingPathComponent(name + ".safetensors")
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("golden case not found at \(path)") }
        let r = ParityRunner.run(casePath: path)
        XCTAssertEqual(r.status, .pass, r.line, file: file, line: line)
    }

    func testBRAw7k4h2() throws { try assertPass("bra_w7_k4_h2") }
    func testBRANonSquareQK12Batch2() throws { try assertPass("bra_w4_k3_h3_qk12_b2") }
    func testBRAAutoPad() throws { try assertPass("bra_w8_k5_h4_pad") }
    func testBRAFullyPaddedRegions() throws { try assertPass("bra_w8_k6_h2_pad_fullpadregions") }
    func testBRAOneTokenRegions() throws { try assertPass("bra_w7_k16_1x1regions") }
    func testBlockBRAAutoPad() throws { try assertPass("block_bra_w8_k4_pad") }
    func testBlockAttentionLePE() throws { try assertPass("block_attnlepe") }
    func testClassificationReduced() throws { try assertPass("biformer_cls_reduced_112") }
    func testDenseReduced() throws { try assertPass("biformer_dense_reduced_200x264") }

    /// Every case in the folder passes (covers cases added later).
    func testAllCasesInFolder() throws {
        guard FileManager.default.fileExists(atPath: Self.folder) else { throw XCTSkip("golden cases not found") }
        for f in try ParityRunner.findCases(in: Self.folder) {
            let r = ParityRunner.run(casePath: f)
            XCTAssertEqual(r.status, .pass, r.line)
        }
    }
}

/// Config and input-size rules of the BiFormer backbone (spec §5, §5.1).
final class BiFormerConfigTests: XCTestCase {
    func testClassificationAcceptedSides() throws {
        let c = try BiFormerConfig.preset("tiny", variant: .classification)
        for s in [109, 110, 111, 112, 221, 224, 333, 336] { XCTAssertTrue(c.accepts(side: s), "\(s)") }
        for s in [108, 113, 116, 220, 225] { XCTAssertFalse(c.accepts(side: s), "\(s)") }
    }

    func testDenseAcceptsAnySide() throws {
        let c = try BiFormerConfig.preset("small", variant: .dense)
        XCTAssertEqual(c.nWin, 8)
        XCTAssertTrue(c.autoPad)
        for s in [1, 13, 200, 683] { XCTAssertTrue(c.accepts(side: s)) }
    }

    func testRejectedSizeNamesValidSizes() throws {
        let c = try BiFormerConfig.preset("tiny", variant: .classification)
        XCTAssertThrowsError(try c.checkInputSize(height: 225, width: 224)) { e in
            let d = "\(e)"
            XCTAssertTrue(d.contains("221–224"), d)
            XCTAssertTrue(d.contains("333–336"), d)
        }
        XCTAssertNoThrow(try c.checkInputSize(height: 224, width: 112))
    }

    func testPresets() throws {
        XCTAssertEqual(try BiFormerConfig.preset("base").embedDim, [96, 192, 384, 768])
        XCTAssertEqual(try BiFormerConfig.preset("small").depth, [4, 4, 18, 4])
        XCTAssertThrowsError(try BiFormerConfig.preset("huge"))
        XCTAssertEqual(BiFormerConfig.stageSizes(200), [50, 25, 13, 7])
    }
}
