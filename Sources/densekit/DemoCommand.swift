import ArgumentParser
import DenseKit
import Foundation

/// `densekit demo`: what `make demo` runs. With a segmentation model in `Models/` it segments the sample
/// photo (as `densekit segment IMAGE -o OUTPUT --overlay --force` would) and prints the per-class summary;
/// without one it decodes the photo and describes it.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo", abstract: "Run DenseKit on the bundled sample photo.", shouldDisplay: false)

    @Option(help: "Image to use.") var image: String = "Samples/chelsea.png"
    @Option(help: "Output folder for the label map and overlay.") var output: String = "demo-output"

    func run() throws {
        try runReportingErrors {
            guard let model = try? ModelCapabilities.defaultModel(in: "Models", for: .segmentation) else {
                let report = try ImageReport(path: image, options: ImageDecodeOptions())
                print(report.text)
                print("(no segmentation model in Models/: nothing segmented)")
                return
            }
            let segmenter = try Segmenter(modelPath: model)
            let (photo, _) = try ImageDecoder.decode(path: image)
            let started = Date()
            let result = try segmenter.segment(photo)
            let seconds = Date().timeIntervalSince(started)
            let stem = URL(fileURLWithPath: image).deletingPathExtension().lastPathComponent
            let labels = output + "/" + stem + ".labels.png", overlay = output + "/" + stem + ".overlay.png"
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            try AtomicFile.write(try PipelineOutputs.labelPNG(result), to: labels, overwrite: true)
            try AtomicFile.write(try PipelineOutputs.overlayPNG(result, over: photo, alpha: 0.5), to: overlay, overwrite: true)
            print("model: \(model)")
            print("image: \(image) (\(photo.width)x\(photo.height)), segmented in \(String(format: "%.2f", seconds)) s")
            for (i, share) in result.classShares.enumerated() where share > 0.001 {
                let name = oneLine(result.classNames[i])
                print("  " + name.padding(toLength: max(14, name.count), withPad: " ", startingAt: 0) + String(format: " %5.1f %%", 100 * share))
            }
            print("wrote \(labels) and \(overlay)")
        }
    }
}
