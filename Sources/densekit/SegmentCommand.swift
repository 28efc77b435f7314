import ArgumentParser
import DenseKit
import Foundation

/// `densekit segment`: semantic segmentation of images with a full `polymax` model.
struct SegmentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment", abstract: "Segment images: indexed label PNG (pixel value = class index), optional overlay.",
        discussion: """
        Outputs per image in the output folder: <name>.labels.png (palette PNG, pixel value = class index, \
        colours from the model) or, with --format npy, <name>.scores.npy (float32 [C, H, W] class scores); \
        with --overlay, <name>.overlay.png (palette blended over the photo). All at the original upright size. \
        Two inputs with the same name stem (a/x.jpg, b/x.png) are refused before anything runs. \
        The default model is the first *.safetensors file (sorted) in Models/ whose task is segmentation or multitask. \
        \(PipelineCLI.exitCodes)
        """)

    @Argument(help: "Images (PNG, JPEG) or folders of images.") var inputs: [String]
    @Option(name: .shortAndLong, help: "Model file (.safetensors, architecture polymax).") var model: String?
    @Option(name: .shortAndLong, help: "Output folder (created when the first file is written).") var output: String = "."
    @Flag(help: "Also write <name>.overlay.png.") var overlay = false
    @Option(help: "Overlay opacity of the class colours, 0...1.") var alpha: Double = 0.5
    @Option(help: "png (indexed label map) or npy (float32 class scores).") var format: String = "png"
    @Option(help: "Refuse images with more pixels (stored width x height) than this.") var maxPixels: Int = PipelineCLI.defaultMaxPixels
    @Option(help: PipelineCLI.maxMemoryHelp) var maxMemory: String?
    @Flag(help: "Print one JSON object per image (one per line).") var json = false
    @Flag(help: "Overwrite existing outputs.") var force = false

    func validate() throws {
        guard ["png", "npy"].contains(format) else { throw ValidationError("--format must be png or npy") }
        guard (0...1).contains(alpha) else { throw ValidationError("--alpha must be in 0...1") }
        guard maxPixels > 0 else { throw ValidationError("--max-pixels must be positive, got \(maxPixels)") }
        _ = try PipelineCLI.memoryLimit(maxMemory)
    }

    func run() throws {
        try runReportingErrors {
            let images = try PipelineCLI.images(inputs)
            try PipelineCLI.refuseDuplicateStems(images, outDir: output)
            let folder = try OutputFolder(output)
            let seg = try PipelineCLI.loadModel(try PipelineCLI.modelPath(model, for: .segmentation)) { try Segmenter(modelPath: $0) }
            if format == "png" && seg.classNames.count > 256 {
                throw ValidationFailure("this model has \(seg.classNames.count) classes; an indexed PNG holds at most 256: use --format npy")
            }
            defer { folder.removeIfUnused() }
            let failed = PipelineCLI.forEach(images) { path in
                let main = PipelineCLI.output(path, output, format == "png" ? ".labels.png" : ".scores.npy")
                let over = PipelineCLI.output(path, output, ".overlay.png")
                let outs = overlay ? [main, over] : [main]
                try PipelineCLI.refuseExisting(outs, force: force)
                let image = try PipelineCLI.decode(path, maxPixels: maxPixels) { w, h in try seg.checkImageSize(width: w, height: h, maxMemoryBytes: try PipelineCLI.memoryLimit(maxMemory)) }
                let r = try seg.segment(image, includeScores: format == "npy")
                var files: [(String, Data)] = []
                if format == "png" {
                    files.append((main, try PipelineOutputs.labelPNG(r)))
                } else {
                    guard let s = r.scores else { throw ValidationFailure("no class scores computed") }
                    files.append((main, try PipelineOutputs.npyFloat32(s.scalars, shape: s.shape)))
                }
                if overlay { files.append((over, try PipelineOutputs.overlayPNG(r, over: image, alpha: alpha))) }
                try folder.writeAll(files, force: force)
                let shares = r.classShares.enumerated().filter { $0.element > 0 }.sorted { $0.element > $1.element }
                if json {
                    let cls = shares.map { "{\"class\": \($0.offset), \"name\": \(PipelineCLI.quote(r.classNames[$0.offset])), \"share\": \(PipelineCLI.num($0.element))}" }
                    let outsJ = files.map { PipelineCLI.quote($0.0) }.joined(separator: ", ")
                    print("{\"image\": \(PipelineCLI.quote(path)), \"width\": \(r.width), \"height\": \(r.height), \"outputs\": [\(outsJ)], \"classes\": [\(cls.joined(separator: ", "))]}")
                } else {
                    print(oneLine("\(path): \(r.width)x\(r.height) -> \(files.map { $0.0 }.joined(separator: ", "))"))
                    for s in shares {
                        let name = oneLine(r.classNames[s.offset])
                        print("  " + name.padding(toLength: max(24, name.count), withPad: " ", startingAt: 0) + String(format: " %6.2f %%", s.element * 100))
                    }
                }
            }
            try PipelineCLI.finish(failed: failed, of: images.count)
        }
    }
}
