import ArgumentParser
import DenseKit
import Foundation

/// `densekit inspect <image> [--json]`: format, colour type, bit depth, sizes, EXIF
/// orientation and the per-channel mean of the decoded upright RGB8 image.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Decode an image and describe it.")

    @Argument(help: "A PNG or JPEG file (the format is read from its bytes).") var path: String
    @Flag(help: "Print one JSON object.") var json = false
    @Option(help: "Refuse images with more pixels (stored width x height) than this.") var maxPixels: Int = 100_000_000

    func validate() throws {
        guard maxPixels > 0 else { throw ValidationError("--max-pixels must be positive, got \(maxPixels)") }
    }

    func run() throws {
        try runReportingErrors {
            var opts = ImageDecodeOptions()
            opts.maxPixels = maxPixels
            let report = try ImageReport(path: path, options: opts)
            print(json ? report.jsonText : report.text)
        }
    }
}
