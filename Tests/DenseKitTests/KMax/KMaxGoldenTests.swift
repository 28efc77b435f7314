import XCTest
@testable import DenseKit

/// Runs every golden `kmax` case (`../shared/golden/kmax`, spec `polymax-head.md`) through the parity runner.
final class KMaxGoldenTests: XCTestCase {
    /// `<repo>/../shared/golden/kmax`, found from this file's path.
    static var folder: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url = url.deletingLastPathComponent() }   // KMax, DenseKitTests, Tests, repo
        return url.deletingLastPathComponent().appendingPathComponent("shared/golden/kmax").path
    }

    func cases(_ prefix: String) throws -> [String] {
        let folder = Self.folder
        guard FileManager.default.fileExists(atPath: folder) else { throw XCTSkip("golden cases not found at \(folder)") }
        let files = try ParityRunner.findCases(in: folder).filter {
            URL(fileURLWithPath: $0).lastPathComponent.hasPrefix(prefix)
        }
        if files.isEmpty { throw XCTSkip("no \(prefix) cases in \(folder)") }
        return files
    }

    func assertAllPass(_ prefix: String, file: StaticString = #filePath, line: UInt = #line) throws {
        for f in try cases(prefix) {
            let r = ParityRunner.run(casePath: f)
            XCTAssertEqual(r.status, .pass, r.line, file: file, line: line)
        }
    }

    func testReadoutCases() throws { try assertAllPass("readout") }
    func testKMaXLayerCases() throws { try assertAllPass("kmax_layer") }
    func testAxialBlockCases() throws { try assertAllPass("axial_block") }
    func testPixelDecoderCases() throws { try assertAllPass("pixel_decoder") }
    func testHeadCases() throws { try assertAllPass("kmax_head") }

    /// The hard assignments of every layer match exactly, and the flip fraction between consecutive layers on
    /// the same stride is reported (and agrees with the reference's own).
    func testHeadAssignmentFlips() throws {
        for f in try cases("kmax_head") {
            let gc = try GoldenCase(path: f)
            let head = try PolyMaXHead(config: try PolyMaXHeadConfig(json: gc.attrs), weights: gc.params)
            let o = try head.run(res2: try gc.input("res2"), res3: try gc.input("res3"), res4: try gc.input("res4"), res5: try gc.input("res5"))
            XCTAssertEqual(o.assignments.count, head.config.totalDecoderLayers)
            for (i, a) in o.assignments.enumerated() {
                let frac = KMaXParity.assignmentFlipFraction(gc, output: "assignment_\(i)", got: a)
                XCTAssertEqual(frac, 0, "layer \(i): fraction of assignment flips vs reference")
            }
            for i in 1..<o.assignments.count {
                let want0 = try gc.file.indexTensor("output.assignment_\(i - 1)"), want1 = try gc.file.indexTensor("output.assignment_\(i)")
                if want0.shape == want1.shape {
                    let ref = Double(zip(want0.values, want1.values).filter { $0 != $1 }.count) / Double(want1.values.count)
                    XCTAssertEqual(o.assignmentFlips[i] ?? -1, ref, accuracy: 1e-12, "layer \(i) flips")
                } else {
                    XCTAssertNil(o.assignmentFlips[i])
                }
            }
        }
    }
}

/// Config parsing and validation of the head, and weight-error reporting.
final class KMaxConfigTests: XCTestCase {
    func testDefaultsAndDictInChannels() throws {
        let json = try JSONValue.parse("""
        {"in_channels": {"res2": 96, "res3": 192, "res4": 384, "res5": 768}, "num_classes": 40}
        """)
        let c = try PolyMaXHeadConfig(json: json)
        XCTAssertEqual(c.pixelDecoder.inChannels, [96, 192, 384, 768])
        XCTAssertEqual(c.pixelDecoder.outputChannels, [2048, 1024, 512, 256])
        XCTAssertEqual(c.numClusters, 128)
        XCTAssertEqual(c.totalDecoderLayers, 6)
        XCTAssertEqual(c.numClasses, 40)
    }

    func testInvalidConfigsAreRefused() throws {
        for text in [#"{"dec_layers": [1, 5, 1]}"#, #"{"layer_types": ["axial", "conv", "bottleneck", "bottleneck"]}"#,
                     #"{"num_clusters": 0}"#, #"{"void_prior_prob": 1.0}"#, #"{"in_channels": {"res2": 16}}"#,
                     #"{"trans_base_filters": 12}"#, #"{"d_min": 5, "d_max": 1}"#, #"{"value_expansion": 4}"#] {
            XCTAssertThrowsError(try PolyMaXHeadConfig(json: try JSONValue.parse(text)), text) { e in
                XCTAssertTrue(e is ModelConfigError, "\(text): \(e)")
            }
        }
    }

    func testMissingWeightsAreReported() throws {
        var c = PolyMaXHeadConfig()
        c.pixelDecoder.inChannels = [8, 8, 8, 8]
        c.pixelDecoder.decChannels = [8, 8, 8, 8]
        XCTAssertThrowsError(try PolyMaXHead(config: c, weights: TensorDictionary())) { e in
            guard case ModelConfigError.missingWeights(_, let keys) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(keys.first, "pixel_decoder._in_norms.0.weight")
        }
    }

    func testReadoutRefusesMissingNormals() throws {
        let ro = try PolyMaXReadout(weights: TensorDictionary(), queryDim: 4)
        XCTAssertFalse(ro.hasNormals)
        let ml = Tensor(zeros: [1, 2, 3, 3])
        XCTAssertThrowsError(try ro.run(maskLogits: ml, classLogits: nil, clusterEmbeddings: Tensor(zeros: [1, 4, 2]), tasks: .normals))
    }
}
