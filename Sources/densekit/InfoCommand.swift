import ArgumentParser
import DenseKit
import Foundation

/// `densekit info <model.safetensors>`: metadata, tensor count, parameters, dtypes, size.
struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Describe a model or weights file (safetensors).")

    @Argument(help: "A .safetensors file.") var path: String
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        try runReportingErrors {
            let file = try SafeTensorsFile(path: path)
            let summary = WeightsSummary(file: file)
            print(json ? summary.jsonText : summary.text)
        }
    }
}
