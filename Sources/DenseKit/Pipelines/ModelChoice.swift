import Foundation

/// What a dense-prediction model file can do, read from its header alone (metadata and tensor names; no weight
/// is loaded), and the choice of a default model from a folder such as `Models/`.
public struct ModelCapabilities: Sendable, Equatable {
    /// What a caller wants a model for.
    public enum Use: String, Sendable, CaseIterable {
        /// Semantic segmentation: a `polymax` model whose `task` is `segmentation` or `multitask`.
        case segmentation
        /// Depth: a `polymax` model with `readout.depth.*` weights.
        case depth
        /// Surface normals: a `polymax` model with `readout.normals.*` weights.
        case normals
    }

    /// The file.
    public var path: String
    /// The model's `task` (from `densekit.config`).
    public var task: PolyMaXTask
    /// Whether the file holds `readout.depth.weight`.
    public var hasDepth: Bool
    /// Whether the file holds `readout.normals.weight`.
    public var hasNormals: Bool

    /// Reads the header of the safetensors file at `path`.
    /// - Throws: `WeightsError` for an unreadable or damaged file; `ModelConfigError` when it is not a full
    ///   `polymax` model or its config is invalid.
    public init(path: String) throws {
        let file = try SafeTensorsFile(path: path)
        let json = try ModelFile.polyMaXConfigJSON(file, path: path)
        let config = try PolyMaXModelConfig(json: json)
        self.path = path
        task = config.task
        hasDepth = file.contains("readout.depth.weight")
        hasNormals = file.contains("readout.normals.weight")
    }

    /// Whether the model serves `use` (see ``Use``).
    public func serves(_ use: Use) -> Bool {
        switch use {
        case .segmentation: return task == .segmentation || task == .multitask
        case .depth: return hasDepth
        case .normals: return hasNormals
        }
    }

    /// The first `*.safetensors` file of `folder` (names sorted, not recursive) that serves `use`. Files that
    /// cannot be read or are not `polymax` models are passed over.
    /// - Returns: `folder/<name>`.
    /// - Throws: `PipelineError.noSuitableModel`, one line listing what each file in the folder is (or why it
    ///   could not be read), when none fits or the folder holds none.
    public static func defaultModel(in folder: String, for use: Use) throws -> String {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
            .filter { $0.hasSuffix(".safetensors") }.sorted()
        var seen: [String] = []
        for n in names {
            let path = (folder as NSString).appendingPathComponent(n)
            do {
                let c = try ModelCapabilities(path: path)
                if c.serves(use) { return path }
                var can = [c.task.rawValue]
                if c.hasDepth { can.append("depth read-out") }
                if c.hasNormals { can.append("normals read-out") }
                seen.append("\(n): \(can.joined(separator: ", "))")
            } catch {
                seen.append("\(n): not usable (\(error))")
            }
        }
        let want: String
        switch use {
        case .segmentation: want = "segmentation model (task segmentation or multitask)"
        case .depth: want = "model with a depth read-out (readout.depth.* weights)"
        case .normals: want = "model with a surface-normal read-out (readout.normals.* weights)"
        }
        let found = seen.isEmpty ? "it holds no .safetensors file" : "it holds " + seen.joined(separator: "; ")
        throw PipelineError.noSuitableModel("\(folder)/ has no \(want): \(found)")
    }
}
