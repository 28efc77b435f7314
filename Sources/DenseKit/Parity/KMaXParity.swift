import Foundation

/// Parity handlers of the `kmax` family (`golden/kmax/INDEX.md`, spec `polymax-head.md`), keyed `kmax/<target>`.
///
/// - `kmax/readout`: `PolyMaXReadout` + the fused read-out kernel; inputs `mask_logits`, `class_logits`,
///   `cluster_embeddings`; outputs `sem_scores`, `sem_labels`, `depth`, `normals`, `cluster_depth`, `cluster_normals`.
enum KMaXParity {
    static let handlers: [String: ParityHandler] = [
        "kmax/readout": readout,
        "kmax/axial_block": axialBlock,
        "kmax/pixel_decoder": pixelDecoder,
        "kmax/kmax_layer": kmaxLayer,
        "kmax/kmax_head": kmaxHead,
    ]

    /// `[1, C, H, W]` as one image's map.
    static func single(_ t: Tensor, _ what: String) throws -> (data: [Float], c: Int, h: Int, w: Int) {
        guard t.rank == 4, t.shape[0] == 1 else { throw ParityError.unsupported("\(what) must be [1, C, H, W], got \(t.shape)") }
        return (t.scalars, t.shape[1], t.shape[2], t.shape[3])
    }

    static func checkUnused(_ r: KMaXWeightReader, _ gc: GoldenCase) throws {
        let extra = r.unexpected(under: [])
        if !extra.isEmpty { throw ModelConfigError.unexpectedWeights(model: "kmax \(gc.target)", keys: extra) }
    }

    /// `axial_block`: one axial `SingleBlock` (module keys), outputs `y` and `attn`.
    static func axialBlock(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let cfg = try ConfigReader(gc.attrs, model: "kmax axial_block")
        let x = try single(try gc.input("x"), "x")
        let type = KMaXBlockType(rawValue: try cfg.string("block_type", default: "axial")) ?? .axial
        let r = KMaXWeightReader(source: gc.params, model: "kmax axial_block")
        let blk = try KMaXSingleBlock.load(r, "", type: type, cin: try cfg.int("in_channels"), filters: try cfg.int("filters"),
                                           heads: try cfg.int("num_heads", default: 8), maxSpan: try cfg.int("max_span", default: 255),
                                           eps: try cfg.double("bn_eps", default: 1e-3))
        try checkUnused(r, gc)
        let (y, attn) = try blk.run(x.data, h: x.h, w: x.w, withAttention: true)
        var out: [String: ParityOutput] = ["y": .float(Tensor(shape: [1, blk.cout, x.h, x.w], values: y))]
        if let a = attn { out["attn"] = .float(Tensor(shape: [1, 2 * blk.filters, x.h, x.w], values: a)) }
        return out
    }

    /// `pixel_decoder`: module keys (no prefix); outputs `os32`, `os16`, `os8`, `os4`.
    static func pixelDecoder(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let cfg = try KMaXPixelDecoderConfig(json: gc.attrs)
        let dec = try KMaXPixelDecoder(config: cfg, weights: gc.params, prefix: "", checkUnexpected: true)
        let r = try dec.run(res2: try gc.input("res2"), res3: try gc.input("res3"), res4: try gc.input("res4"), res5: try gc.input("res5"))
        return r.mapValues { ParityOutput.float($0) }
    }

    /// `kmax_layer`: one decoder layer (module keys); all seven outputs.
    static func kmaxLayer(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let lc = try KMaXLayerConfig(json: gc.attrs)
        let h = lc.head
        let r = KMaXWeightReader(source: gc.params, model: "kmax kmax_layer")
        let layer = try KMaXTransformerLayer.load(r, "", pixelChannels: lc.pixelChannels, queryDim: h.queryDim, base: h.transBaseFilters,
                                                  heads: h.numHeads, ffnDim: h.ffnDim, midChannels: h.predMidChannels, embedDim: h.embedDim,
                                                  clusters: h.numClusters, numClasses: h.numClasses, voidPrior: h.voidPriorProb,
                                                  eps: h.pixelDecoder.bnEps)
        try checkUnused(r, gc)
        let x = try single(try gc.input("pixel"), "pixel")
        guard x.c == lc.pixelChannels else { throw ParityError.unsupported("pixel has \(x.c) channels, config \(lc.pixelChannels)") }
        let q = try gc.input("query")
        let k = h.numClusters, d = h.queryDim
        guard q.shape == [1, d, k] else { throw ParityError.unsupported("query must be [1, \(d), \(k)], got \(q.shape)") }
        let o = layer.run(query: q.scalars, pixel: x.data, h: x.h, w: x.w, withClassLogits: true)
        return [
            "query_out": .float(Tensor(shape: [1, d, k], values: o.query)),
            "assignment": .index(IndexTensor(shape: [1, x.h, x.w], values: o.assignment.map { Int64($0) })),
            "mask_logits": .float(Tensor(shape: [1, k, x.h, x.w], values: o.maskLogits)),
            "class_logits": .float(Tensor(shape: [1, k, h.numClasses + 1], values: o.classLogits ?? [])),
            "pixel_embedding": .float(Tensor(shape: [1, h.embedDim, x.h, x.w], values: o.pixelEmbedding)),
            "kmeans_update": .float(Tensor(shape: [1, d, k], values: o.kmeansUpdate)),
            "attn_update": .float(Tensor(shape: [1, d, k], values: o.attentionUpdate)),
        ]
    }

    /// `kmax_head`: the whole head (full keys); outputs the OS4 predictions, cluster tensors, `assignment_<i>`.
    static func kmaxHead(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let head = try PolyMaXHead(config: try PolyMaXHeadConfig(json: gc.attrs), weights: gc.params)
        let o = try head.run(res2: try gc.input("res2"), res3: try gc.input("res3"), res4: try gc.input("res4"), res5: try gc.input("res5"))
        var out: [String: ParityOutput] = [
            "mask_logits": .float(o.maskLogits), "class_logits": .float(o.classLogits), "pixel_embedding": .float(o.pixelEmbedding),
            "cluster_centers": .float(o.clusterCenters), "cluster_embeddings": .float(o.clusterEmbeddings),
        ]
        for (i, a) in o.assignments.enumerated() { out["assignment_\(i)"] = .index(a) }
        return out
    }

    /// Fraction of pixels whose assignment differs between `got` and the case's `output.<name>` (nil when absent).
    static func assignmentFlipFraction(_ gc: GoldenCase, output name: String, got: IndexTensor) -> Double? {
        guard let want = try? gc.file.indexTensor("output." + name), want.shape == got.shape, !want.values.isEmpty else { return nil }
        return Double(zip(want.values, got.values).filter { $0 != $1 }.count) / Double(want.values.count)
    }

    static func readout(_ gc: GoldenCase) throws -> [String: ParityOutput] {
        let cfg = try ConfigReader(gc.attrs, model: "kmax readout")
        let e = try gc.input("cluster_embeddings")
        guard e.rank == 3 else { throw ParityError.unsupported("\(gc.name): cluster_embeddings \(e.shape)") }
        let ro = try PolyMaXReadout(weights: gc.params, queryDim: e.shape[1],
                                    dMin: try cfg.double("d_min", default: 1e-3), dMax: try cfg.double("d_max", default: 10))
        var size: (height: Int, width: Int)? = nil
        if cfg.has("output_size") {
            let s = try cfg.ints("output_size", count: 2)
            size = (s[0], s[1])
        }
        let align = try cfg.bool("align_corners", default: false)
        let r = try ro.run(maskLogits: try gc.input("mask_logits"), classLogits: try gc.input("class_logits"),
                           clusterEmbeddings: e, outputSize: size, alignCorners: align, tasks: .all)
        var out: [String: ParityOutput] = [:]
        if let t = r.semanticScores { out["sem_scores"] = .float(t) }
        if let t = r.semanticLabels { out["sem_labels"] = .index(t) }
        if let t = r.depth { out["depth"] = .float(t) }
        if let t = r.normals { out["normals"] = .float(t) }
        if let t = r.clusterDepth { out["cluster_depth"] = .float(t) }
        if let t = r.clusterNormals { out["cluster_normals"] = .float(t) }
        return out
    }
}
