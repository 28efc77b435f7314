import XCTest
@testable import DenseKit

/// Key lists, parameter counts (spec tables 2 and 3.1) and the detectron2 rename table.
final class VoVNetKeysTests: XCTestCase {
    func testTimmPresetCountsMatchTheSpec() throws {
        // preset: (params with 1000-class head, backbone params, state_dict entries)
        let table: [String: (Int, Int, Int)] = [
            "vovnet39a": (22_600_296, 21_575_296, 236), "vovnet57a": (36_640_296, 35_615_296, 344),
            "ese_vovnet19b_slim_dw": (1_897_752, 1_384_752, 156), "ese_vovnet19b_dw": (6_543_080, 5_518_080, 162),
            "ese_vovnet19b_slim": (3_166_136, 2_653_136, 124), "ese_vovnet19b": (11_205_416, 10_180_416, 124),
            "ese_vovnet39b": (24_568_936, 23_543_936, 244), "ese_vovnet57b": (38_608_936, 37_583_936, 352),
            "ese_vovnet99b": (63_199_272, 62_174_272, 604),
        ]
        for (name, (withHead, backbone, entries)) in table {
            var c = try VoVNetPresets.config(named: name)
            XCTAssertEqual(VoVNetKeys.parameterCount(VoVNetKeys.expected(c)), backbone, name)
            c.featuresOnly = false
            c.numClasses = 1000
            let specs = VoVNetKeys.expected(c)
            XCTAssertEqual(VoVNetKeys.parameterCount(specs), withHead, name)
            XCTAssertEqual(specs.count + VoVNetKeys.batchNormCount(specs), entries, name)
        }
    }

    func testDetectron2PresetCountsAndRoundTrip() throws {
        let table: [String: (Int, Int)] = [
            "V-19-slim-dw-eSE": (1_384_752, 132), "V-19-dw-eSE": (5_518_080, 137), "V-19-slim-eSE": (2_653_136, 103),
            "V-19-eSE": (10_180_416, 103), "V-39-eSE": (25_184_128, 207), "V-57-eSE": (41_454_912, 303), "V-99-eSE": (69_523_520, 527),
        ]
        for (name, (params, entries)) in table {
            let c = try VoVNetPresets.config(named: name)
            let specs = VoVNetKeys.expected(c)
            XCTAssertEqual(VoVNetKeys.parameterCount(specs), params, name)
            var d2 = Set<String>()
            for s in specs {
                let k = try XCTUnwrap(VoVNetKeyRename.detectron2Key(fromTimm: s.key, depthwise: c.depthwise), s.key)
                XCTAssertEqual(VoVNetKeyRename.timmKey(fromDetectron2: k), s.key)
                d2.insert(k)
            }
            XCTAssertEqual(d2.count, entries, name)
        }
    }

    func testRenameTableExamples() {
        let pairs: [(String, String, Bool)] = [
            ("stem.stem_1/conv.weight", "stem.0.conv.weight", true),
            ("stem.stem_1/norm.running_var", "stem.0.bn.running_var", true),
            ("stem.stem_3/dw_conv3x3.weight", "stem.2.conv_dw.weight", true),
            ("stem.stem_2/pw_conv1x1.weight", "stem.1.conv_pw.weight", true),
            ("stem.stem_2/pw_norm.bias", "stem.1.bn.bias", true),
            ("stem.stem_2/norm.bias", "stem.1.bn.bias", false),
            ("stage2.OSA2_1.conv_reduction.OSA2_1_reduction_0/conv.weight", "stages.0.blocks.0.conv_reduction.conv.weight", true),
            ("stage2.OSA2_1.conv_reduction.OSA2_1_reduction_0/norm.weight", "stages.0.blocks.0.conv_reduction.bn.weight", true),
            ("stage4.OSA4_2.layers.3.OSA4_2_3/norm.running_var", "stages.2.blocks.1.conv_mid.3.bn.running_var", false),
            ("stage3.OSA3_1.layers.0.OSA3_1_0/dw_conv3x3.weight", "stages.1.blocks.0.conv_mid.0.conv_dw.weight", true),
            ("stage3.OSA3_1.layers.2.OSA3_1_2/pw_norm.running_mean", "stages.1.blocks.0.conv_mid.2.bn.running_mean", true),
            ("stage5.OSA5_3.concat.OSA5_3_concat/conv.weight", "stages.3.blocks.2.conv_concat.conv.weight", false),
            ("stage5.OSA5_3.concat.OSA5_3_concat/norm.bias", "stages.3.blocks.2.conv_concat.bn.bias", true),
            ("stage4.OSA4_1.ese.fc.bias", "stages.2.blocks.0.attn.fc.bias", false),
        ]
        for (d2, timm, dw) in pairs {
            XCTAssertEqual(VoVNetKeyRename.timmKey(fromDetectron2: d2), timm, d2)
            XCTAssertEqual(VoVNetKeyRename.detectron2Key(fromTimm: timm, depthwise: dw), d2, timm)
        }
        for bad in ["fpn_lateral2.weight", "stage2.OSA3_1.ese.fc.bias", "stage4.OSA4_2.layers.3.OSA4_2_4/conv.weight",
                    "stage6.OSA6_1.ese.fc.bias", "stem.stem_4/conv.weight", "stage2.OSA2_1.concat.OSA2_1_concat/relu.weight"] {
            XCTAssertNil(VoVNetKeyRename.timmKey(fromDetectron2: bad), bad)
        }
        XCTAssertNil(VoVNetKeyRename.detectron2Key(fromTimm: "stem.0.bn.num_batches_tracked", depthwise: false))
        XCTAssertNil(VoVNetKeyRename.detectron2Key(fromTimm: "head.fc.weight", depthwise: false))
    }

    func testSpecialisedBlocksFollowTheConfig() throws {
        let c = try VoVNetPresets.config(named: "ese_vovnet39b")
        let b = c.blocks
        XCTAssertEqual(b.map { $0.count }, [1, 1, 2, 2])
        XCTAssertEqual(b[2].map { $0.residual }, [false, true])
        XCTAssertEqual(b[2].map { $0.ese }, [false, true])
        XCTAssertEqual(b[2][0].inChannels, 512)
        XCTAssertEqual(b[2][1].inChannels, 768)
        let dw = try VoVNetPresets.config(named: "ese_vovnet19b_dw").blocks
        XCTAssertEqual(dw.map { $0[0].hasReduction }, [true, true, true, true])       // 64->128, 256->160, ...
        let slim = try VoVNetPresets.config(named: "ese_vovnet19b_slim_dw").blocks
        XCTAssertEqual(slim.map { $0[0].hasReduction }, [false, true, true, true])    // stage 0: 64 == 64
        let d2 = try VoVNetPresets.config(named: "V-39-eSE").blocks
        XCTAssertEqual(d2[3].map { $0.ese }, [true, true])
    }
}
