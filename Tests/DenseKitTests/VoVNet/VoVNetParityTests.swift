import XCTest
@testable import DenseKit

/// Every golden case of `shared/golden/vovnet` passes through the parity runner.
final class VoVNetParityTests: XCTestCase {
    /// `<repo>/../shared/golden/vovnet`, found from this file's path.
    static var folder: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }   // VoVNet, DenseKitTests, Tests, repo
        return url.deletingLastPathComponent().appendingPathComponent("shared/golden/vovnet").path
    }

    func testEveryGoldenCasePasses() throws {
        guard FileManager.default.fileExists(atPath: Self.folder) else { throw XCTSkip("golden cases not found at \(Self.folder)") }
        let results = try ParityRunner.run(folder: Self.folder)
        XCTAssertGreaterThanOrEqual(results.count, 12)
        for r in results {
            print(r.line)
            XCTAssertEqual(r.status, .pass, r.line)
        }
        let targets = Set(try ParityRunner.findCases(in: Self.folder).map { try GoldenCase(path: $0).target })
        XCTAssertEqual(targets, ["vovnet", "osa_block"])
    }

    /// The detectron2 case, renamed to timm keys, gives the same outputs (attn_all_blocks keeps the extra eSEs).
    func testDetectron2CaseRenamedToTimmStillPasses() throws {
        let path = Self.folder + "/d2_v39_ese_every_block_64x64.safetensors"
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("case not found") }
        let gc = try GoldenCase(path: path)
        var config = try VoVNetConfig(json: gc.attrs)
        let params = gc.params
        var timm = TensorDictionary()
        for k in params.keys {
            let t = try XCTUnwrap(VoVNetKeyRename.timmKey(fromDetectron2: k), k)
            timm[t] = try params.tensor(k)
            XCTAssertEqual(VoVNetKeyRename.detectron2Key(fromTimm: t, depthwise: config.depthwise), k)
        }
        config.keyStyle = .timm
        config.keyPrefix = nil
        let net = try VoVNet(config: config, weights: timm)
        let out = try net.run(try gc.input("x"))
        for name in gc.outputs.keys {
            let want = try gc.file.floatTensor("output." + name)
            let got = try XCTUnwrap(out[name])
            XCTAssertEqual(got.shape, want.shape)
            XCTAssertLessThan(GraphTestData.maxAbsDiff(got, want), 2e-4, name)
        }
    }
}
