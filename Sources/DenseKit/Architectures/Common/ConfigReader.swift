import Foundation

/// Reads typed fields of a model config (`JSONValue` object, PyTorch snake_case keys)
/// with defaults, throwing `ModelConfigError.invalidField` that names the field.
public struct ConfigReader {
    /// The model family, used in errors (`vovnet`).
    public let model: String
    /// The config object.
    public let object: [String: JSONValue]

    /// Wraps `json`. - Throws: `ModelConfigError.invalidField` (field `<root>`) if it is not an object.
    public init(_ json: JSONValue, model: String) throws {
        guard let o = json.object else { throw ModelConfigError.invalidField(model: model, field: "<root>", message: "the config is not a JSON object") }
        self.object = o
        self.model = model
    }

    func fail(_ field: String, _ message: String) -> ModelConfigError {
        .invalidField(model: model, field: field, message: message)
    }

    /// Whether the field is present and not null.
    public func has(_ field: String) -> Bool { object[field].map { !$0.isNull } ?? false }

    /// An integer field (`default` when absent). - Throws if not an integer.
    public func int(_ field: String, default d: Int? = nil) throws -> Int {
        guard let v = object[field], !v.isNull else {
            if let d { return d }
            throw fail(field, "required")
        }
        guard let i = v.int else { throw fail(field, "expected an integer, got \(v.jsonText)") }
        return i
    }

    /// An integer array field, optionally of exactly `count` entries. - Throws if malformed.
    public func ints(_ field: String, count: Int? = nil, default d: [Int]? = nil) throws -> [Int] {
        guard let v = object[field], !v.isNull else {
            if let d { return d }
            throw fail(field, "required")
        }
        guard let a = v.ints else { throw fail(field, "expected an array of integers, got \(v.jsonText)") }
        if let count, a.count != count { throw fail(field, "expected \(count) entries, got \(a.count)") }
        return a
    }

    /// A boolean field. - Throws if not a boolean.
    public func bool(_ field: String, default d: Bool? = nil) throws -> Bool {
        guard let v = object[field], !v.isNull else {
            if let d { return d }
            throw fail(field, "required")
        }
        guard let b = v.bool else { throw fail(field, "expected true or false, got \(v.jsonText)") }
        return b
    }

    /// A string field. - Throws if not a string.
    public func string(_ field: String, default d: String? = nil) throws -> String {
        guard let v = object[field], !v.isNull else {
            if let d { return d }
            throw fail(field, "required")
        }
        guard let s = v.string else { throw fail(field, "expected a string, got \(v.jsonText)") }
        return s
    }

    /// A number field. - Throws if not a number.
    public func double(_ field: String, default d: Double? = nil) throws -> Double {
        guard let v = object[field], !v.isNull else {
            if let d { return d }
            throw fail(field, "required")
        }
        guard let x = v.double else { throw fail(field, "expected a number, got \(v.jsonText)") }
        return x
    }
}
