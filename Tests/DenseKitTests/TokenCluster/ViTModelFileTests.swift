import XCTest
@testable import DenseKit

/// ViT as a DenseKit model file (`densekit.architecture` = `vit`), as `tools/convert.py --timm vit_small_patch16_224`
/// writes it: loading through `ModelFile.load` gives exactly the direct API's outputs, plain and with clustering.
final class ViTModelFileTests: XCTestCase {
    static let plainJSON = #"{"patch_size":16,"embed_dim":32,"depth":3,"num_heads":2,"mlp_ratio":4,"ln_eps":1e-6,"img_size":[64,96],"pos_embed_grid":[3,4]"#
    static let clusterJSON = #","alpha":1,"beta":3,"cluster_grid":[2,3],"window":3,"iters":2,"temperature":0.01,"recon_k":4,"recon_temperature":0.03"#

    func roundTrip(_ json: String, seed: UInt64, names: [String], entries: Int) throws {
        let c = try ViTConfig(json: try JSONValue.parse(json))
        let weights = TokenClusterBenchTests.randomWeights(c, seed: seed)
        var w = SafeTensorsWriter()
        for k in weights.keys.sorted() { try w.add(k, try weights.tensor(k)) }
        w.metadata = ["densekit.format": "1", "densekit.architecture": "vit", "densekit.config": json]
        let path = NSTemporaryDirectory() + "vit-modelfile-\(getpid())-\(seed).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try w.write(to: path)
        let model = try ModelFile.load(path: path)
        XCTAssertEqual(model.architecture, "vit")
        XCTAssertEqual(model.inputChannels, 3)
        XCTAssertEqual(model.outputNames, names)
        var g = TokenClusterBenchTests.Normal(state: seed + 5)
        let x = Tensor(shape: [1, 3, 64, 96], values: (0..<(3 * 64 * 96)).map { _ in g.next() })
        let got = try model.run(x)
        let want = try ViT(config: c, weights: weights).run(x)
        XCTAssertEqual(Set(got.keys), Set(names))
        for n in names {
            XCTAssertEqual(got[n]?.shape, want[n]?.shape, n)
            XCTAssertEqual(got[n]?.scalars, want[n]?.scalars, n)
        }
        XCTAssertEqual(got["y"]?.shape, [1, 32, 4, 6])
        let report = try model.profile(input: x, warmup: 0)
        XCTAssertEqual(report.entries.count, entries)
        XCTAssertGreaterThan(report.totalFlops, 0)
        XCTAssertEqual(report.entries.last?.outputShape, [1, 32, 4, 6])
        // A bad config names the field.
        w.metadata["densekit.config"] = json.replacingOccurrences(of: #""num_heads":2"#, with: #""num_heads":3"#)
        try w.write(to: path)
        XCTAssertThrowsError(try ModelFile.load(path: path)) { e in XCTAssertTrue("\(e)".contains("num_heads"), "\(e)") }
    }

    func testPlainViTModelFile() throws {
        // pos_embed, patch_embed, embed, 3 blocks, norm, output
        try roundTrip(Self.plainJSON + "}", seed: 3, names: ["y", "cls"], entries: 3 + 3 + 2)
    }

    func testClusteredViTModelFile() throws {
        // pos_embed, patch_embed, embed, block 0, clustering, blocks 1-2, norm, reconstruction, output
        try roundTrip(Self.plainJSON + Self.clusterJSON + "}", seed: 4,
                      names: ["y", "cls", "feat_alpha", "clustered", "before_recon"], entries: 3 + 1 + 1 + 2 + 1 + 1 + 1)
    }

    func testArchitectureListed() {
        XCTAssertTrue(ModelFile.architectures.contains("vit"))
    }
}
