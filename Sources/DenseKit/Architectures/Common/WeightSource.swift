import Foundation

/// Named float tensors a model builder reads its weights from (a safetensors file, a
/// golden case's `param.*` tensors, an in-memory dictionary).
///
/// Keys are the checkpoint's own names (for example timm state_dict keys such as
/// `stages.0.blocks.0.conv_mid.0.conv.weight`). Builders first check the whole key set
/// (missing, unexpected, wrong shape) through `shape(of:)`, then read with `tensor(_:)`.
public protocol WeightSource {
    /// Every key, in the source's order.
    var keys: [String] { get }
    /// The stored shape of `key`, or nil if there is no such key.
    func shape(of key: String) -> [Int]?
    /// The tensor `key` as float32.
    /// - Throws: `WeightsError` (or `ModelConfigError.missingWeights`) if absent or not a float tensor.
    func tensor(_ key: String) throws -> Tensor
}

/// An in-memory `WeightSource`: tensors by name, in insertion order.
public struct TensorDictionary: WeightSource, Sendable {
    private var order: [String] = []
    private var storage: [String: Tensor] = [:]

    /// An empty dictionary.
    public init() {}

    /// A dictionary holding `tensors` (keys sorted, for a stable order).
    public init(_ tensors: [String: Tensor]) {
        for k in tensors.keys.sorted() { self[k] = tensors[k] }
    }

    /// Reads or replaces a tensor; assigning nil removes it.
    public subscript(key: String) -> Tensor? {
        get { storage[key] }
        set {
            if let v = newValue {
                if storage[key] == nil { order.append(key) }
                storage[key] = v
            } else if storage.removeValue(forKey: key) != nil {
                order.removeAll { $0 == key }
            }
        }
    }

    /// Every key, in insertion order.
    public var keys: [String] { order }
    /// Number of tensors.
    public var count: Int { order.count }
    /// The shape of `key`, nil if absent.
    public func shape(of key: String) -> [Int]? { storage[key]?.shape }
    /// The tensor `key`. - Throws: `ModelConfigError.missingWeights` if absent.
    public func tensor(_ key: String) throws -> Tensor {
        guard let t = storage[key] else { throw ModelConfigError.missingWeights(model: "weights", keys: [key]) }
        return t
    }
    /// All entries as a plain dictionary.
    public var dictionary: [String: Tensor] { storage }
}

/// The tensors of a safetensors file whose names start with `prefix`, with the prefix
/// removed (`prefix: "param."` reads a golden case's parameters). Integer tensors
/// (`num_batches_tracked`) are listed but cannot be read as float.
public struct SafeTensorsWeights: WeightSource, @unchecked Sendable {
    /// The file read.
    public let file: SafeTensorsFile
    /// Prefix stripped from the file's tensor names.
    public let prefix: String
    private let names: [String]

    /// A view of `file`'s tensors under `prefix`.
    public init(file: SafeTensorsFile, prefix: String = "") {
        self.file = file
        self.prefix = prefix
        self.names = file.tensorNames.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
    }

    /// Opens `path` and views all its tensors.
    /// - Throws: `WeightsError` for an unreadable or invalid file.
    public init(path: String) throws {
        self.init(file: try SafeTensorsFile(path: path))
    }

    /// Keys under the prefix, prefix removed.
    public var keys: [String] { names }
    /// The stored shape, nil if absent.
    public func shape(of key: String) -> [Int]? { file.info(prefix + key)?.shape }
    /// The tensor as float32 (F16/BF16 converted). - Throws: `WeightsError`.
    public func tensor(_ key: String) throws -> Tensor { try file.floatTensor(prefix + key) }
}

extension ParamStore: WeightSource {
    /// The stored shape of `key` (under the store's prefix), nil if absent.
    public func shape(of key: String) -> [Int]? { file.info(prefix + key)?.shape }
    /// The tensor `key` as float32. - Throws: `WeightsError`.
    public func tensor(_ key: String) throws -> Tensor { try tensor(key, shape: nil) }
}
