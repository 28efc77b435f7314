import XCTest
@testable import DenseKit

/// Graphs from a JSON description: the same OSA-like block as the Swift builder, and config errors.
final class GraphConfigTests: XCTestCase {
    func testJSONGraphMatchesTheVoVNetBlockBuilder() throws {
        let spec = VoVNetBlockSpec(inChannels: 6, midChannels: 4, outChannels: 6, layers: 2, residual: true, depthwise: false, ese: true)
        let w = VoVNetRandomWeights.make(VoVNetKeys.block("", spec), seed: 21)
        let text = """
        {"inputs": ["x"],
         "nodes": [
          {"name": "conv_mid.0", "weights": "conv_mid.0.conv", "bn_weights": "conv_mid.0.bn", "op": "conv2d", "inputs": ["x"], "attrs": {"in_channels": 6, "out_channels": 4, "kernel_size": 3, "padding": 1, "batch_norm": true, "activation": "relu"}},
          {"name": "conv_mid.1", "weights": "conv_mid.1.conv", "bn_weights": "conv_mid.1.bn", "op": "conv2d", "inputs": ["conv_mid.0"], "attrs": {"in_channels": 4, "out_channels": 4, "kernel_size": [3, 3], "padding": [1, 1], "batch_norm": true, "activation": "relu"}},
          {"name": "cat", "op": "concat", "inputs": ["x", "conv_mid.0", "conv_mid.1"]},
          {"name": "conv_concat", "weights": "conv_concat.conv", "bn_weights": "conv_concat.bn", "op": "conv2d", "inputs": ["cat"], "attrs": {"in_channels": 14, "out_channels": 6, "kernel_size": 1, "batch_norm": true, "activation": "relu"}},
          {"name": "attn", "op": "ese", "inputs": ["conv_concat"]},
          {"name": "res", "op": "add", "inputs": ["attn", "x"]},
          {"name": "pool", "op": "max_pool2d", "inputs": ["res"], "attrs": {"kernel_size": 3, "stride": 2, "ceil_mode": true}},
          {"name": "gap", "op": "global_avg_pool", "inputs": ["pool"]}],
         "outputs": [{"name": "y", "value": "res"}, "pool", "gap"]}
        """
        let g = try GraphConfig.build(json: try JSONValue.parse(text), weights: w)
        XCTAssertEqual(g.outputNames, ["y", "pool", "gap"])
        let ref = try VoVNetBuilder.buildBlock(spec: spec, weights: w)
        let x = GraphTestData.tensor([1, 6, 9, 10], seed: 22)
        let a = try g.run(x), b = try ref.run(x)
        XCTAssertEqual(a["y"]?.scalars, b["y"]?.scalars)
        XCTAssertEqual(a["pool"]?.shape, [1, 6, 4, 5])
        XCTAssertEqual(a["gap"]?.shape, [1, 6])
    }

    func testConfigErrorsNameNodeAndField() throws {
        func err(_ nodes: String, weights: TensorDictionary = TensorDictionary()) -> String {
            let text = #"{"inputs": ["x"], "nodes": [\#(nodes)], "outputs": ["n"]}"#
            do { _ = try GraphConfig.build(json: try JSONValue.parse(text), weights: weights); return "" } catch { return "\(error)" }
        }
        XCTAssertTrue(err(#"{"name": "n", "op": "warp", "inputs": ["x"]}"#).contains("unknown op \"warp\""))
        XCTAssertTrue(err(#"{"name": "n", "op": "conv2d", "inputs": ["x"], "attrs": {"in_channels": 2, "out_channels": 2, "kernel_size": 1}}"#)
                        .contains("missing tensor(s): n.weight"))
        XCTAssertTrue(err(#"{"name": "n", "op": "max_pool2d", "inputs": ["x"], "attrs": {}}"#).contains("\"kernel_size\": required"))
        XCTAssertTrue(err(#"{"name": "n", "op": "add", "inputs": ["x"], "attrs": {"activation": "swish9"}}"#).contains("activation"))
        XCTAssertTrue(err(#"{"name": "n", "op": "identity", "inputs": ["q"]}"#).contains("reads value \"q\""))
        XCTAssertEqual(err(#"{"name": "n", "op": "identity", "inputs": ["x"]}"#), "")
    }
}
