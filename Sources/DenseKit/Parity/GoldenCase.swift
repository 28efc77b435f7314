import Foundation

/// Per-output tolerance of a golden case: `|got - want| <= atol + rtol * |want|`, or exact equality.
public enum GoldenTolerance: Sendable, Equatable {
    case close(atol: Double, rtol: Double)
    case exact
}

/// One reference case (`golden/<family>/<case>.safetensors`, format in `golden/README.md`):
/// inputs `input.<name>`, parameters `param.<key>`, expected outputs `output.<name>`, and the
/// `case` JSON in the metadata (family, target, attrs, inputs, outputs with tolerances).
public struct GoldenCase: @unchecked Sendable {
    /// File stem, e.g. `conv2d_k3_p1`.
    public let name: String
    /// Path of the case file.
    public let path: String
    /// `ops`, `vovnet`, `biformer`, `tokencluster` or `kmax`.
    public let family: String
    /// The op or model, e.g. `conv2d` or `vovnet`.
    public let target: String
    /// The target's attributes or model config (PyTorch snake_case keys).
    public let attrs: JSONValue
    /// Declared input names, in order.
    public let inputNames: [String]
    /// Expected outputs and their tolerances.
    public let outputs: [String: GoldenTolerance]
    /// The whole `case` object.
    public let meta: JSONValue
    /// The underlying file.
    public let file: SafeTensorsFile

    /// Opens a case file.
    /// - Throws: `WeightsError` for a damaged file, `ParityError.badCase` when the metadata is missing or malformed.
    public init(path: String) throws {
        let file = try SafeTensorsFile(path: path)
        self.file = file
        self.path = path
        self.name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        guard let text = file.metadata["case"] else { throw ParityError.badCase(path, "no `case` metadata") }
        let meta: JSONValue
        do { meta = try JSONValue.parse(text) } catch { throw ParityError.badCase(path, "\(error)") }
        guard let family = meta["family"]?.string, let target = meta["target"]?.string else {
            throw ParityError.badCase(path, "`case` lacks family or target")
        }
        self.meta = meta
        self.family = family
        self.target = target
        self.attrs = meta["attrs"] ?? .object([:])
        self.inputNames = meta["inputs"]?.array?.compactMap { $0.string } ?? []
        var outs: [String: GoldenTolerance] = [:]
        for (k, v) in meta["outputs"]?.object ?? [:] {
            if v["exact"]?.bool == true { outs[k] = .exact }
            else { outs[k] = .close(atol: v["atol"]?.double ?? 1e-5, rtol: v["rtol"]?.double ?? 1e-5) }
        }
        self.outputs = outs
    }

    /// The float input `input.<name>`.
    public func input(_ name: String) throws -> Tensor { try file.floatTensor("input." + name) }
    /// The integer input `input.<name>` (I64).
    public func indexInput(_ name: String) throws -> IndexTensor { try file.indexTensor("input." + name) }
    /// The parameter `param.<key>`.
    public func param(_ key: String) throws -> Tensor { try file.floatTensor("param." + key) }
    /// Whether `param.<key>` exists.
    public func hasParam(_ key: String) -> Bool { file.contains("param." + key) }
    /// All parameter keys (without the `param.` prefix).
    public var paramKeys: [String] { file.tensorNames.filter { $0.hasPrefix("param.") }.map { String($0.dropFirst(6)) } }
    /// All input names present in the file (without the `input.` prefix).
    public var presentInputs: [String] { file.tensorNames.filter { $0.hasPrefix("input.") }.map { String($0.dropFirst(6)) } }
    /// dtype of a stored tensor.
    public func dtype(of tensorName: String) -> SafeTensorsDType? { file.info(tensorName)?.dtype }

    /// A weights provider over `param.*`, for model builders.
    public var params: ParamStore { ParamStore(file: file, prefix: "param.") }
}

/// Named float parameters read from a safetensors file under a key prefix.
public struct ParamStore: @unchecked Sendable {
    /// The file read.
    public let file: SafeTensorsFile
    /// Prefix added to every key (e.g. `param.`).
    public let prefix: String

    /// Creates a store over `file`, prefixing keys with `prefix`.
    public init(file: SafeTensorsFile, prefix: String = "") { self.file = file; self.prefix = prefix }

    /// The tensor for `key`. - Throws: `WeightsError` if missing, of the wrong dtype, or (when given) of another shape.
    public func tensor(_ key: String, shape: [Int]? = nil) throws -> Tensor {
        if let s = shape { return try file.floatTensor(prefix + key, expectedShape: s) }
        return try file.floatTensor(prefix + key)
    }
    /// Whether `key` exists.
    public func contains(_ key: String) -> Bool { file.contains(prefix + key) }
    /// All keys under the prefix (prefix removed).
    public var keys: [String] { file.tensorNames.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) } }
}
