import ArgumentParser
import DenseKit
import Foundation

/// `densekit normals`: surface normals with a full `polymax` model that has `readout.normals.*`.
struct NormalsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "normals", abstract: "Estimate surface normals: RGB PNG ((n + 1) / 2 x 255) or npy.",
        discussion: """
        Outputs per image: <name>.normals.png (x, y, z mapped to R, G, B as (n + 1) / 2 x 255), or with --format npy \
        <name>.normals.npy (float32 [H, W, 3] unit vectors). Refuses models without readout.normals.* weights. \
        Two inputs with the same name stem (a/x.jpg, b/x.png) are refused before anything runs. \
        The default model is the first *.safetensors file (sorted) in Models/ with a normals read-out. \
        \(PipelineCLI.exitCodes)
        """)

    @Argument(help: "Images (PNG, JPEG) or folders of images.") var inputs: [String]
    @Option(name: .shortAndLong, help: "Model file (.safetensors, architecture polymax, with readout.normals.*).") var model: String?
    @Option(name: .shortAndLong, help: "Output folder (created when the first file is written).") var output: String = "."
    @Option(help: "png or npy.") var format: String = "png"
    @Option(help: "Refuse images with more pixels (stored width x height) than this.") var maxPixels: Int = PipelineCLI.defaultMaxPixels
    @Option(help: PipelineCLI.maxMemoryHelp) var maxMemory: String?
    @Flag(help: "Print one JSON object per image (one per line).") var json = false
    @Flag(help: "Overwrite existing outputs.") var force = false

    func validate() throws {
        guard ["png", "npy"].contains(format) else { throw ValidationError("--format must be png or npy") }
        guard maxPixels > 0 else { throw ValidationError("--max-pixels must be positive, got \(maxPixels)") }
        _ = try PipelineCLI.memoryLimit(maxMemory)
    }

    func run() throws {
        try runReportingErrors {
            let images = try PipelineCLI.images(inputs)
            try PipelineCLI.refuseDuplicateStems(images, outDir: output)
            let folder = try OutputFolder(output)
            let est = try PipelineCLI.loadModel(try PipelineCLI.modelPath(model, for: .normals)) { try DepthEstimator(modelPath: $0) }
            guard est.hasNormals else {
                throw PipelineError.unsupportedTask("this model has no surface-normal read-out (no readout.normals.* weights); use a model trained with normals")
            }
            defer { folder.removeIfUnused() }
            let failed = PipelineCLI.forEach(images) { path in
                let out = PipelineCLI.output(path, output, format == "png" ? ".normals.png" : ".normals.npy")
                try PipelineCLI.refuseExisting([out], force: force)
                let image = try PipelineCLI.decode(path, maxPixels: maxPixels) { w, h in try est.checkImageSize(width: w, height: h, maxMemoryBytes: try PipelineCLI.memoryLimit(maxMemory)) }
                let n = try est.estimateNormals(image)
                let data = format == "png" ? try PipelineOutputs.normalsPNG(n)
                    : try PipelineOutputs.npyFloat32(n.values, shape: [n.height, n.width, 3])
                try folder.writeAll([(out, data)], force: force)
                if json {
                    print("{\"image\": \(PipelineCLI.quote(path)), \"width\": \(n.width), \"height\": \(n.height), \"outputs\": [\(PipelineCLI.quote(out))]}")
                } else {
                    print(oneLine("\(path): \(n.width)x\(n.height) normals -> \(out)"))
                }
            }
            try PipelineCLI.finish(failed: failed, of: images.count)
        }
    }
}
