import ArgumentParser
import DenseKit
import Foundation

/// `densekit demo`: what `make demo` runs until the default model lands: decode the
/// sample photo and describe it.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo", abstract: "Run DenseKit on the bundled sample photo.", shouldDisplay: false)

    @Option(help: "Image to use.") var image: String = "Samples/chelsea.png"

    func run() throws {
        try runReportingErrors {
            let report = try ImageReport(path: image, options: ImageDecodeOptions())
            print(report.text)
        }
    }
}
