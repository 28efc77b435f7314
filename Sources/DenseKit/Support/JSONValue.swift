import Foundation

/// A parsed JSON value (model configs, golden-case attributes).
///
/// Accessors return nil rather than trapping when the value has another type, so
/// configs from untrusted files can be validated field by field.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses UTF-8 JSON text.
    /// - Throws: `JSONValueError.invalid` with the parser's message.
    public static func parse(_ text: String) throws -> JSONValue {
        guard let data = text.data(using: .utf8) else { throw JSONValueError.invalid("not UTF-8") }
        return try parse(data)
    }

    /// Parses UTF-8 JSON bytes (fragments allowed).
    /// - Throws: `JSONValueError.invalid` with the parser's message.
    public static func parse(_ data: Data) throws -> JSONValue {
        let obj: Any
        do {
            obj = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw JSONValueError.invalid(error.localizedDescription)
        }
        return try JSONValue(any: obj)
    }

    init(any: Any) throws {
        switch any {
        case is NSNull: self = .null
        case let n as NSNumber:
            // Booleans arrive as a distinct NSNumber subclass (CFBoolean) on every platform.
            if String(describing: type(of: n)).contains("Boolean") { self = .bool(n.boolValue) } else { self = .number(n.doubleValue) }
        case let s as String: self = .string(s)
        case let a as [Any]: self = .array(try a.map { try JSONValue(any: $0) })
        case let d as [String: Any]:
            var o: [String: JSONValue] = [:]
            for (k, v) in d { o[k] = try JSONValue(any: v) }
            self = .object(o)
        default: throw JSONValueError.invalid("unsupported JSON value \(type(of: any))")
        }
    }

    /// Member of an object, nil otherwise.
    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }
    /// The object's members, nil if not an object.
    public var object: [String: JSONValue]? { if case .object(let o) = self { return o }; return nil }
    /// The array's elements, nil if not an array.
    public var array: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    /// The number as a Double.
    public var double: Double? { if case .number(let d) = self { return d }; return nil }
    /// The number as an Int, nil if it is not integral or out of range.
    public var int: Int? {
        guard case .number(let d) = self, d.rounded() == d, abs(d) < 9.0e15 else { return nil }
        return Int(d)
    }
    /// The Bool value.
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    /// The String value.
    public var string: String? { if case .string(let s) = self { return s }; return nil }
    /// True for JSON null.
    public var isNull: Bool { if case .null = self { return true }; return false }
    /// An array of integers (nil if any element is not an integer).
    public var ints: [Int]? { array.flatMap { a in let r = a.compactMap { $0.int }; return r.count == a.count ? r : nil } }
    /// An array of numbers.
    public var doubles: [Double]? { array.flatMap { a in let r = a.compactMap { $0.double }; return r.count == a.count ? r : nil } }

    /// `s` as a JSON string literal (quotes, backslashes and control characters escaped).
    public static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    /// Serialises back to compact JSON text (keys sorted).
    public var jsonText: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let d):
            if d.rounded() == d && abs(d) < 1e15 { return String(Int(d)) }
            return "\(d)"
        case .string(let s): return JSONValue.quote(s)
        case .array(let a): return "[" + a.map { $0.jsonText }.joined(separator: ",") + "]"
        case .object(let o):
            return "{" + o.keys.sorted().map { k in JSONValue.string(k).jsonText + ":" + o[k]!.jsonText }.joined(separator: ",") + "}"
        }
    }
}

/// Error parsing JSON text.
public enum JSONValueError: Error, CustomStringConvertible, Sendable {
    case invalid(String)
    public var description: String {
        switch self { case .invalid(let m): return "invalid JSON: \(WeightsError.clean(m, limit: 400))" }   // the parser may quote input
    }
}
