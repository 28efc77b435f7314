import ArgumentParser
import DenseKit

/// `--max-memory` of the commands that run models: the cap on one inference's memory (weights + activations,
/// estimated from the model config and the backbone's memory plan before anything is allocated).
extension PipelineCLI {
    static let maxMemoryHelp = ArgumentHelp(
        "Refuse an image whose inference would need more memory than this: bytes, or with K, M, G, T (powers of 1024), e.g. 4G. Default: 3/4 of the physical memory.",
        valueName: "size")

    /// The parsed cap; the default when `text` is nil.
    /// - Throws: `ValidationError` (a usage error, exit 64) for text that is not a positive size.
    static func memoryLimit(_ text: String?) throws -> Int {
        guard let text else { return MemorySize.defaultInferenceLimit }
        guard let bytes = MemorySize.parse(text) else {
            throw ValidationError("--max-memory must be a positive size such as 2048M or 8G, got \(text)")
        }
        return bytes
    }
}
