import ArgumentParser
import DenseKit
import Foundation

/// `densekit depth`: per-pixel depth of images with a full `polymax` model that has `readout.depth.*`.
struct DepthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "depth", abstract: "Estimate depth: 16-bit PNG in millimetres (or npy / pfm) and a colour-mapped PNG.",
        discussion: """
        Outputs per image: <name>.depth16.png (16-bit gray, value = depth x 1000, i.e. millimetres when the model's \
        units are metres, clamped to 0...65535), or <name>.depth.npy (float32 [H, W]) with --format npy, or \
        <name>.depth.pfm with --format pfm; always <name>.depth.png (colour map from min to max). \
        All at the original upright size. Two inputs with the same name stem (a/x.jpg, b/x.png) are refused before \
        anything runs. The default model is the first *.safetensors file (sorted) in Models/ with a depth read-out. \
        \(PipelineCLI.exitCodes)
        """)

    @Argument(help: "Images (PNG, JPEG) or folders of images.") var inputs: [String]
    @Option(name: .shortAndLong, help: "Model file (.safetensors, architecture polymax, with readout.depth.*).") var model: String?
    @Option(name: .shortAndLong, help: "Output folder (created when the first file is written).") var output: String = "."
    @Option(help: "turbo, viridis, inferno or gray.") var colormap: String = "turbo"
    @Option(help: "png16, npy or pfm (raw values).") var format: String = "png16"
    @Option(help: "Refuse images with more pixels (stored width x height) than this.") var maxPixels: Int = PipelineCLI.defaultMaxPixels
    @Option(help: PipelineCLI.maxMemoryHelp) var maxMemory: String?
    @Flag(help: "Print one JSON object per image (one per line).") var json = false
    @Flag(help: "Overwrite existing outputs.") var force = false

    func validate() throws {
        guard ["png16", "npy", "pfm"].contains(format) else { throw ValidationError("--format must be png16, npy or pfm") }
        guard PipelineOutputs.Colormap(rawValue: colormap) != nil else { throw ValidationError("--colormap must be turbo, viridis, inferno or gray") }
        guard maxPixels > 0 else { throw ValidationError("--max-pixels must be positive, got \(maxPixels)") }
        _ = try PipelineCLI.memoryLimit(maxMemory)
    }

    func run() throws {
        try runReportingErrors {
            let images = try PipelineCLI.images(inputs)
            try PipelineCLI.refuseDuplicateStems(images, outDir: output)
            let folder = try OutputFolder(output)
            let est = try PipelineCLI.loadModel(try PipelineCLI.modelPath(model, for: .depth)) { try DepthEstimator(modelPath: $0) }
            guard est.hasDepth else { throw PipelineError.unsupportedTask("this model has no depth read-out (no readout.depth.* weights)") }
            let cmap = PipelineOutputs.Colormap(rawValue: colormap) ?? .turbo
            defer { folder.removeIfUnused() }
            let failed = PipelineCLI.forEach(images) { path in
                let suffix = format == "png16" ? ".depth16.png" : format == "npy" ? ".depth.npy" : ".depth.pfm"
                let raw = PipelineCLI.output(path, output, suffix)
                let color = PipelineCLI.output(path, output, ".depth.png")
                try PipelineCLI.refuseExisting([raw, color], force: force)
                let image = try PipelineCLI.decode(path, maxPixels: maxPixels) { w, h in try est.checkImageSize(width: w, height: h, maxMemoryBytes: try PipelineCLI.memoryLimit(maxMemory)) }
                let d = try est.estimateDepth(image)
                let rawData: Data
                switch format {
                case "png16": rawData = try PipelineOutputs.depthPNG16(d)
                case "npy": rawData = try PipelineOutputs.npyFloat32(d.values, shape: [d.height, d.width])
                default: rawData = try PipelineOutputs.pfm(d.values, width: d.width, height: d.height)
                }
                let files = [(raw, rawData), (color, try PipelineOutputs.depthColorPNG(d, colormap: cmap))]
                try folder.writeAll(files, force: force)
                let st = d.statistics
                if json {
                    print("{\"image\": \(PipelineCLI.quote(path)), \"width\": \(d.width), \"height\": \(d.height), \"units\": \(PipelineCLI.quote(d.units)), "
                          + "\"min\": \(PipelineCLI.num(Double(st.min))), \"median\": \(PipelineCLI.num(Double(st.median))), \"max\": \(PipelineCLI.num(Double(st.max))), "
                          + "\"outputs\": [\(files.map { PipelineCLI.quote($0.0) }.joined(separator: ", "))]}")
                } else {
                    print(oneLine("\(path): \(d.width)x\(d.height) depth (\(d.units)) min \(PipelineCLI.num(Double(st.min))) median \(PipelineCLI.num(Double(st.median))) max \(PipelineCLI.num(Double(st.max))) -> \(files.map { $0.0 }.joined(separator: ", "))"))
                }
            }
            try PipelineCLI.finish(failed: failed, of: images.count)
        }
    }
}
