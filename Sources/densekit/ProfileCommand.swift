import ArgumentParser
import DenseKit
import Foundation

/// Largest height or width accepted by `--size` (the input alone is then 768 MiB).
let maxInputSide = 8192

/// Parses `HxW` or `N` (square) into (height, width), each in 1...`maxInputSide`.
func parseSize(_ s: String) throws -> (height: Int, width: Int) {
    let parts = s.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
    var hw: (Int, Int)? = nil
    if parts.count == 1, let n = parts[0] { hw = (n, n) }
    if parts.count == 2, let h = parts[0], let w = parts[1] { hw = (h, w) }
    guard let (h, w) = hw, (1...maxInputSide).contains(h), (1...maxInputSide).contains(w) else {
        throw ValidationError("size must be HxW or N with integers from 1 to \(maxInputSide), got '\(s)'")
    }
    return (h, w)
}

/// Checks a `--threads` value (1...1024).
func validateThreads(_ t: Int?) throws {
    if let t, !(1...1024).contains(t) { throw ValidationError("--threads must be from 1 to 1024, got \(t)") }
}

/// Builds the input tensor: the image (resized to `size` if given) or a fixed
/// pseudo-random tensor of `size` (default 512x512).
func makeInput(image: String?, size: String?, channels: Int) throws -> Tensor {
    let hw = try size.map(parseSize)
    if let image {
        let (img, _) = try ImageDecoder.decode(path: image)
        return ImageTensor.make(img, height: hw?.height, width: hw?.width)
    }
    let (h, w) = hw ?? (512, 512)
    var state: UInt64 = 0x9E3779B97F4A7C15
    return Tensor(shape: [1, channels, h, w]) { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: state >> 11) % 2000) / 1000 - 1
    }
}

/// `densekit profile <model> [image]`: per node op, output shape, milliseconds and
/// GFLOP/s, and the planned activation memory against the sum of all activations.
struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile", abstract: "Time every node of a model and show its memory plan.")

    @Argument(help: "A DenseKit model file (.safetensors).") var model: String
    @Argument(help: "A photo to run on (default: a synthetic input).") var image: String?
    @Option(help: "Input size HxW (the photo is resized to it; default 512x512 without a photo).") var size: String?
    @Option(help: "Threads for DenseKit kernels and OpenBLAS.") var threads: Int?
    @Option(help: "Untimed runs first.") var warmup: Int = 1
    @Option(help: PipelineCLI.maxMemoryHelp) var maxMemory: String?

    func validate() throws {
        try validateThreads(threads)
        if let size { _ = try parseSize(size) }
        _ = try PipelineCLI.memoryLimit(maxMemory)
    }

    func run() throws {
        try runReportingErrors {
            try BLAS.ensureLoaded()
            if let threads { Threading.threads = threads }
            let net = try ModelFile.load(path: model)
            // The input's size, from --size or the photo's header, is checked against the memory cap before the
            // photo is decoded or any tensor exists.
            let hw = try size.map(parseSize) ?? (try image.map { p in let i = try ImageDecoder.probe(path: p); return (i.height, i.width) } ?? (512, 512))
            try InferenceMemory.check(net, inputShape: [1, net.inputChannels, hw.0, hw.1], limitBytes: try PipelineCLI.memoryLimit(maxMemory))
            let input = try makeInput(image: image, size: size, channels: net.inputChannels)
            let report = try net.profile(input: input, warmup: max(0, warmup))
            print(report.description)
        }
    }
}
