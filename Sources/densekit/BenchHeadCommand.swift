import ArgumentParser
import DenseKit
import Foundation

/// `densekit bench head`: latency of the PolyMaX / kMaX head alone (spec `polymax-head.md` section 10) on
/// backbone features; figures, never pass/fail. `tools/bench_kmax.py` runs it next to the PyTorch head.
struct BenchHead: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "head", abstract: "Median latency of the PolyMaX/kMaX head (pixel decoder + k-means decoder + predictor).")
    @Option(help: "Head config JSON file (kmax_head attrs); default: the R50 COCO defaults (K 128, C 133).") var config: String?
    @Option(help: "Head weights (.safetensors, pixel_decoder.* and predictor.*); default: random weights.") var weights: String?
    @Option(help: "Backbone features res2..res5 (.safetensors, [1, C, H, W] each); default: synthetic features of --size.") var input: String?
    @Option(help: "Image size HxW whose stride 4..32 features are synthesised (ceil division).") var size: String = "512x512"
    @Option(help: "Timed runs (median reported).") var repeats: Int = 5
    @Option(help: "Untimed runs first.") var warmup: Int = 1
    @Option(help: "Threads for DenseKit kernels and OpenBLAS.") var threads: Int?
    @Flag(help: "Print one JSON object.") var json = false
    @Option(help: "Write the head outputs of the last run (mask_logits, class_logits, ...) to this safetensors file.") var saveOutputs: String?

    func validate() throws {
        try validateThreads(threads)
        _ = try parseSize(size)
        guard (1...100_000).contains(repeats) else { throw ValidationError("--repeats must be from 1 to 100000, got \(repeats)") }
        guard (0...100_000).contains(warmup) else { throw ValidationError("--warmup must be from 0 to 100000, got \(warmup)") }
    }

    func run() throws {
        try runReportingErrors {
            try BLAS.ensureLoaded()
            if let threads { Threading.threads = threads }
            var cfg = PolyMaXHeadConfig()
            if let config {
                let text = try String(contentsOfFile: config, encoding: .utf8)
                cfg = try PolyMaXHeadConfig(json: try JSONValue.parse(text))
            }
            let feats = try features(cfg)
            let source: any WeightSource = try weights.map { try SafeTensorsWeights(path: $0) }
                ?? PolyMaXWeightLayout.randomWeights(config: cfg, seed: 5, readout: false)
            let head = try PolyMaXHead(config: cfg, weights: source)
            var last: PolyMaXHeadOutput? = nil
            for _ in 0..<warmup { last = try head.run(res2: feats[0], res3: feats[1], res4: feats[2], res5: feats[3]) }
            var times: [Double] = []
            for _ in 0..<repeats {
                let t0 = DispatchTime.now().uptimeNanoseconds
                last = try head.run(res2: feats[0], res3: feats[1], res4: feats[2], res5: feats[3])
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            }
            times.sort()
            let median = times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
            if let saveOutputs, let out = last {
                var w = SafeTensorsWriter()
                try w.add("mask_logits", out.maskLogits)
                try w.add("class_logits", out.classLogits)
                try w.add("pixel_embedding", out.pixelEmbedding)
                try w.add("cluster_centers", out.clusterCenters)
                try w.add("cluster_embeddings", out.clusterEmbeddings)
                for (i, a) in out.assignments.enumerated() { try w.add("assignment_\(i)", a) }
                try w.write(to: saveOutputs)
            }
            if json {
                let obj: JSONValue = .object([
                    "threads": .number(Double(Threading.threads)),
                    "features": .array(feats.map { .array($0.shape.map { .number(Double($0)) }) }),
                    "median_ms": .number(median), "min_ms": .number(times.first ?? 0), "max_ms": .number(times.last ?? 0),
                    "runs": .number(Double(times.count)),
                ])
                print(obj.jsonText)
            } else {
                print(BLAS.summary())
                print("kmax head features \(feats.map { $0.shape }) threads \(Threading.threads)")
                print(String(format: "median %.2f ms  min %.2f  max %.2f  (%d runs)", median, times.first ?? 0, times.last ?? 0, times.count))
            }
        }
    }

    /// res2..res5 from `--input`, or synthetic ones of `--size` (values `sin(i mod 9973)`).
    func features(_ cfg: PolyMaXHeadConfig) throws -> [Tensor] {
        let names = ["res2", "res3", "res4", "res5"]
        if let input {
            let file = try SafeTensorsFile(path: input)
            return try names.map { try file.floatTensor($0) }
        }
        let (h, w) = try parseSize(size)
        // parseSize caps the sides at 8192; refuse feature sets above 1 GB before allocating them.
        let floats = (0..<4).reduce(0) { acc, i in
            let s = 4 << i
            return acc + cfg.pixelDecoder.inChannels[i] * ((h + s - 1) / s) * ((w + s - 1) / s)
        }
        guard floats <= 1 << 28 else { throw ValidationError("--size \(size): the synthetic features would need \(floats / (1 << 18)) MB") }
        return (0..<4).map { i in
            let s = 4 << i
            return Tensor(shape: [1, cfg.pixelDecoder.inChannels[i], (h + s - 1) / s, (w + s - 1) / s]) { j in sinf(Float(j % 9973)) }
        }
    }
}
