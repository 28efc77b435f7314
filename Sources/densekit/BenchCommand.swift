import ArgumentParser
import DenseKit
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `densekit bench conv` and `densekit bench model <file>`: figures, never pass/fail.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks (figures, never pass/fail).",
        subcommands: [BenchConv.self, BenchModel.self, BenchHead.self])
}

/// Latency and peak memory of a whole model.
struct BenchModel: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "model", abstract: "Median latency and peak memory of a model.")
    @Argument(help: "A DenseKit model file (.safetensors).") var model: String
    @Option(help: "Input size HxW.") var size: String = "512x512"
    @Option(help: "Timed runs (median reported).") var repeats: Int = 10
    @Option(help: "Untimed runs first.") var warmup: Int = 2
    @Option(help: PipelineCLI.maxMemoryHelp) var maxMemory: String?
    @Option(help: "Threads for DenseKit kernels and OpenBLAS.") var threads: Int?
    @Flag(help: "Print one JSON object.") var json = false
    @Option(help: "Write the input and outputs of the last run to this safetensors file.") var saveOutputs: String?
    @Option(name: .customLong("input"), help: "Read the input tensor `x` from this safetensors file instead of a synthetic one.") var inputFile: String?

    func validate() throws {
        try validateThreads(threads)
        _ = try parseSize(size)
        guard (1...100_000).contains(repeats) else { throw ValidationError("--repeats must be from 1 to 100000, got \(repeats)") }
        guard (0...100_000).contains(warmup) else { throw ValidationError("--warmup must be from 0 to 100000, got \(warmup)") }
        _ = try PipelineCLI.memoryLimit(maxMemory)
    }

    func run() throws {
        try runReportingErrors {
            try BLAS.ensureLoaded()
            if let threads { Threading.threads = threads }
            let net = try ModelFile.load(path: model)
            let input: Tensor
            let limit = try PipelineCLI.memoryLimit(maxMemory)
            if let inputFile {
                let file = try SafeTensorsFile(path: inputFile)
                if let shape = file.info("x")?.shape { try InferenceMemory.check(net, inputShape: shape, limitBytes: limit) }
                input = try file.floatTensor("x")
            } else {
                let (h, w) = try parseSize(size)
                try InferenceMemory.check(net, inputShape: [1, net.inputChannels, h, w], limitBytes: limit)
                input = try makeInput(image: nil, size: size, channels: net.inputChannels)
            }
            var outputs: [String: Tensor] = [:]
            for _ in 0..<max(0, warmup) { outputs = try net.run(input) }
            var times: [Double] = []
            for _ in 0..<max(1, repeats) {
                let t0 = DispatchTime.now().uptimeNanoseconds
                outputs = try net.run(input)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            }
            times.sort()
            let median = times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
            var usage = rusage()
            getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
            let peakMB = Double(usage.ru_maxrss) / 1024
            if let saveOutputs {
                var w = SafeTensorsWriter()
                try w.add("x", input)
                for (k, v) in outputs { try w.add(k, v) }
                try w.write(to: saveOutputs)
            }
            if json {
                let obj: JSONValue = .object([
                    "model": .string(model),
                    "input": .array(input.shape.map { .number(Double($0)) }),
                    "threads": .number(Double(Threading.threads)),
                    "median_ms": .number(median), "min_ms": .number(times.first ?? 0), "max_ms": .number(times.last ?? 0),
                    "peak_rss_mb": .number(peakMB),
                    "outputs": .object(outputs.mapValues { .array($0.shape.map { .number(Double($0)) }) }),
                ])
                print(obj.jsonText)
            } else {
                print(BLAS.summary())
                print("model \(model) input \(input.shape) threads \(Threading.threads)")
                print(String(format: "median %.2f ms  min %.2f  max %.2f  (%d runs)  peak RSS %.1f MB", median, times.first ?? 0, times.last ?? 0, times.count, peakMB))
            }
        }
    }
}
