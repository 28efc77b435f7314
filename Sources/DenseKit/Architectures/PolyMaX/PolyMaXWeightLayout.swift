import Foundation

/// The tensors a `PolyMaXHead` reads, by name and shape (spec `polymax-head.md` section 8; keys of the kMaX
/// PyTorch port's `kMaXDeepLabHead.state_dict()`, `num_batches_tracked` omitted), and seeded random weights
/// with that layout (tests, benchmarks).
public enum PolyMaXWeightLayout {
    /// Every key the head reads for `config`, in load order, with its shape. Includes DenseKit's read-out keys
    /// `readout.depth.*` / `readout.normals.*` when `readout` is true.
    /// - Precondition-free: an invalid config yields the keys it describes (validate it first).
    public static func shapes(config: PolyMaXHeadConfig, readout: Bool = true) -> [(key: String, shape: [Int])] {
        var out: [(key: String, shape: [Int])] = []
        func bn(_ p: String, _ n: Int) {
            for s in ["weight", "bias", "running_mean", "running_var"] { out.append(("\(p).\(s)", [n])) }
        }
        func convbn(_ p: String, _ shape: [Int], bias: Bool = false, norm: Bool = true) {
            out.append(("\(p).conv.weight", shape))
            if bias { out.append(("\(p).conv.bias", [shape[0]])) }
            if norm { bn("\(p).norm", shape[0]) }
        }
        let pd = config.pixelDecoder
        let ic = pd.inChannels
        let cStage = [ic[3], ic[2], ic[1], ic[0]]
        let rows = 2 * pd.maxSpan - 1, h = pd.numHeads
        for i in 0..<4 {
            out.append(("pixel_decoder._in_norms.\(i).weight", [cStage[i]]))
            out.append(("pixel_decoder._in_norms.\(i).bias", [cStage[i]]))
        }
        for i in 0..<4 {
            let b = pd.decChannels[i]
            var cin = i == 0 ? cStage[0] : b
            for j in 0..<pd.decLayers[i] {
                let p = "pixel_decoder._stages.\(i)._blocks.\(j)."
                let f0 = pd.layerTypes[i] == .axial ? 2 * b : b
                convbn(p + "_conv1_bn_act", [f0, cin, 1, 1])
                if pd.layerTypes[i] == .axial {
                    for axis in ["_height_axis", "_width_axis"] {
                        let a = p + "_attention." + axis
                        out.append((a + ".qkv_transform.conv.weight", [4 * b, 2 * b, 1]))
                        out.append((a + "._query_rpe._embeddings.weight", [rows, b / h]))
                        out.append((a + "._key_rpe._embeddings.weight", [rows, b / h]))
                        out.append((a + "._value_rpe._embeddings.weight", [rows, 2 * b / h]))
                        bn(a + "._batch_norm_qkv", 4 * b)
                        bn(a + "._batch_norm_similarity", 3 * h)
                        bn(a + "._batch_norm_retrieved_output", 4 * b)
                    }
                } else {
                    convbn(p + "_conv2_bn_act", [b, b, 3, 3])
                }
                convbn(p + "_conv3_bn", [4 * b, f0, 1, 1])
                if cin != 4 * b { convbn(p + "_shortcut", [4 * b, cin, 1, 1]) }
                cin = 4 * b
            }
            if i < 3 {
                let bn1 = pd.decChannels[i + 1]
                if 4 * b != bn1 { convbn("pixel_decoder._resized_fuses.\(i)._conv_bn_low", [bn1, 4 * b, 1, 1]) }
                if cStage[i + 1] != bn1 { convbn("pixel_decoder._resized_fuses.\(i)._conv_bn_high", [bn1, cStage[i + 1], 1, 1]) }
            }
        }
        let d = config.queryDim, k = config.numClusters, t = config.transBaseFilters
        let m = config.predMidChannels, e = config.embedDim, c1 = config.numClasses + 1
        func predictor(_ p: String, cx: Int, dq: Int) {
            convbn(p + "._pixel_space_head_conv0bnact", [cx, 1, 5, 5])
            convbn(p + "._pixel_space_head_conv1bnact", [m, cx, 1, 1])
            convbn(p + "._pixel_space_head_last_convbn", [e, m, 1, 1], bias: true)
            convbn(p + "._transformer_mask_head", [e, dq, 1])
            convbn(p + "._transformer_class_head", [c1, dq, 1], bias: true, norm: false)
            bn(p + "._pixel_space_mask_batch_norm", 1)
        }
        out.append(("predictor._cluster_centers.weight", [d, k]))
        var n = 0
        for (stage, count) in config.transDecLayers.enumerated() {
            for _ in 0..<count {
                let p = "predictor._kmax_transformer_layers.\(n)."
                let cp = pd.outputChannels[stage]
                convbn(p + "_query_conv1_bn_act", [2 * t, d, 1])
                convbn(p + "_pixel_conv1_bn_act", [2 * t, cp, 1, 1])
                convbn(p + "_query_qkv_conv_bn", [4 * t, 2 * t, 1])
                convbn(p + "_pixel_v_conv_bn", [2 * t, 2 * t, 1, 1])
                bn(p + "_query_self_attention._batch_norm_similarity", config.numHeads)
                bn(p + "_query_self_attention._batch_norm_retrieved_value", 2 * t)
                convbn(p + "_query_conv3_bn", [d, 2 * t, 1])
                convbn(p + "_query_ffn_conv1_bn_act", [config.ffnDim, d, 1])
                convbn(p + "_query_ffn_conv2_bn", [d, config.ffnDim, 1])
                predictor(p + "_predcitor", cx: 2 * t, dq: 2 * t)
                bn(p + "_kmeans_query_batch_norm_retrieved_value", 2 * t)
                convbn(p + "_kmeans_query_conv3_bn", [d, 2 * t, 1])
                n += 1
            }
        }
        convbn("predictor._class_embedding_projection", [d, d, 1])
        convbn("predictor._mask_embedding_projection", [d, d, 1])
        predictor("predictor._predcitor", cx: pd.outputChannels[3], dq: d)
        if readout {
            out.append(("readout.depth.weight", [1, d]))
            out.append(("readout.depth.bias", [1]))
            out.append(("readout.normals.weight", [3, d]))
            out.append(("readout.normals.bias", [3]))
        }
        return out
    }

    /// Seeded random weights with the layout of `shapes(config:)`: conv / linear weights uniform with a
    /// fan-in scale, BN variances in [0.5, 1.5], other BN and LN parameters near their identity values.
    /// Deterministic for a given `seed`. Meant for tests and benchmarks, not for predictions.
    public static func randomWeights(config: PolyMaXHeadConfig, seed: UInt64 = 1, readout: Bool = true) -> TensorDictionary {
        var state = seed &+ 0x9E3779B97F4A7C15
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float((state >> 40) & 0xFFFFFF) / Float(1 << 24)   // [0, 1)
        }
        var dict = TensorDictionary()
        for (key, shape) in shapes(config: config, readout: readout) {
            let count = shape.reduce(1, *)
            let fanIn = max(1, shape.count > 1 ? shape.dropFirst().reduce(1, *) : 1)
            let values: [Float]
            if key.hasSuffix("running_var") {
                values = (0..<count).map { _ in 0.5 + next() }
            } else if key.hasSuffix("running_mean") || key.hasSuffix(".bias") {
                values = (0..<count).map { _ in (next() - 0.5) * 0.2 }
            } else if key.contains("norm") && key.hasSuffix(".weight") && shape.count == 1 {
                values = (0..<count).map { _ in 0.8 + 0.4 * next() }
            } else {
                let s = 2 * (3 / Float(fanIn)).squareRoot()
                values = (0..<count).map { _ in (next() - 0.5) * s }
            }
            dict[key] = Tensor(shape: shape, values: values)
        }
        return dict
    }
}
