import Foundation

/// An error in a model's configuration or in the weights given for it.
///
/// `description` is one line naming the model family and the field or tensor keys
/// (long key lists are cut after a few names, with the total count).
public enum ModelConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A config field is missing, of the wrong type or out of range.
    case invalidField(model: String, field: String, message: String)
    /// No preset of that name; `known` lists the valid names.
    case unknownPreset(model: String, name: String, known: [String])
    /// Tensors the model needs are absent from the weights.
    case missingWeights(model: String, keys: [String])
    /// Tensors in the weights that the model does not use (under the model's key prefix).
    case unexpectedWeights(model: String, keys: [String])
    /// Tensors whose stored shape differs from the one the config implies: `(key, expected, found)`.
    case weightShapes(model: String, mismatches: [String])
    /// The weights' naming cannot be recognised or contradicts the config.
    case keyStyle(model: String, message: String)

    /// One line naming the model family and the field or keys. Text taken from the file (a field's value, a key)
    /// has its control characters escaped (`\u{D}`), so the message stays one line whatever the file holds.
    public var description: String { WeightsError.clean(text, limit: 4096) }

    private var text: String {
        switch self {
        case let .invalidField(m, f, msg): return "\(m) config: field \"\(f)\": \(msg)"
        case let .unknownPreset(m, n, known): return "\(m): no preset named \"\(n)\" (known: \(known.joined(separator: ", ")))"
        case let .missingWeights(m, keys): return "\(m) weights: \(keys.count) missing tensor(s): \(Self.list(keys))"
        case let .unexpectedWeights(m, keys): return "\(m) weights: \(keys.count) unexpected tensor(s): \(Self.list(keys))"
        case let .weightShapes(m, mm): return "\(m) weights: \(mm.count) tensor(s) with the wrong shape: \(Self.list(mm))"
        case let .keyStyle(m, msg): return "\(m) weights: \(msg)"
        }
    }

    /// The first few entries, then `... (N more)`.
    static func list(_ items: [String], limit: Int = 6) -> String {
        let shown = items.prefix(limit).joined(separator: ", ")
        return items.count > limit ? shown + ", ... (\(items.count - limit) more)" : shown
    }
}
