import Foundation

/// A raw header entry before range and overlap checks.
struct RawTensorEntry {
    var name: String
    var dtype: SafeTensorsDType
    var shape: [Int]
    var begin: Int
    var end: Int
}

/// Parses a safetensors header (untrusted JSON) straight into tensor entries.
///
/// A small JSON parser with the header's schema built in: no generic tree is built,
/// duplicate keys are refused in every object (Foundation's parsers keep one
/// silently), nesting depth and tensor count are bounded, numbers must be exact
/// integers that fit in `Int`. Errors are `HeaderParseError` with a reason; the
/// caller adds the file name.
struct SafeTensorsHeaderParser {
    struct Failure: Error {
        var tensor: String?
        var reason: String
    }

    /// Largest rank accepted (PyTorch and NumPy 2 also stop at 64).
    static let maxRank = 64
    /// Deepest nesting accepted in values the schema does not use.
    static let maxDepth = 64

    private let bytes: [UInt8]
    private var pos = 0
    private let maxTensors: Int

    init(bytes: [UInt8], maxTensors: Int) {
        self.bytes = bytes
        self.maxTensors = maxTensors
    }

    /// Parses the whole header. Returns the metadata and the entries in header order.
    mutating func parse() throws -> (metadata: [String: String], entries: [RawTensorEntry]) {
        try validateUTF8()
        skipWhitespace()
        guard peek() == UInt8(ascii: "{") else {
            throw Failure(reason: "header is not a JSON object" + (pos < bytes.count ? " (starts with \(describe(bytes[pos])))" : " (empty)"))
        }
        pos += 1
        var metadata: [String: String] = [:]
        var sawMetadata = false
        var entries: [RawTensorEntry] = []
        var seen = Set<String>()
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            pos += 1
        } else {
            while true {
                skipWhitespace()
                let key = try parseString()
                guard seen.insert(key).inserted else {
                    throw Failure(tensor: key == "__metadata__" ? nil : key,
                                  reason: key == "__metadata__" ? "duplicate key \"__metadata__\" in the header" : "duplicate tensor name in the header")
                }
                try expect(UInt8(ascii: ":"))
                skipWhitespace()
                if key == "__metadata__" {
                    metadata = try parseMetadata()
                    sawMetadata = true
                } else {
                    guard entries.count < maxTensors else {
                        throw Failure(reason: "more than \(maxTensors) tensors in the header")
                    }
                    entries.append(try parseTensor(name: key))
                }
                skipWhitespace()
                if peek() == UInt8(ascii: ",") { pos += 1; continue }
                if peek() == UInt8(ascii: "}") { pos += 1; break }
                throw unexpected("',' or '}' after the entry \"\(WeightsError.clean(key))\"")
            }
        }
        skipWhitespace()
        guard pos == bytes.count else {
            throw Failure(reason: "unexpected \(describe(bytes[pos])) after the header object at byte \(pos)")
        }
        _ = sawMetadata
        return (metadata, entries)
    }

    // MARK: schema

    private mutating func parseMetadata() throws -> [String: String] {
        var result: [String: String] = [:]
        if peek() == UInt8(ascii: "n"), try parseLiteralNull() { return result }
        guard peek() == UInt8(ascii: "{") else { throw unexpected("an object of strings for \"__metadata__\"") }
        pos += 1
        skipWhitespace()
        if peek() == UInt8(ascii: "}") { pos += 1; return result }
        while true {
            skipWhitespace()
            let key = try parseString()
            try expect(UInt8(ascii: ":"))
            skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else {
                throw Failure(reason: "__metadata__ value for \"\(WeightsError.clean(key))\" is not a string")
            }
            let value = try parseString()
            guard result.updateValue(value, forKey: key) == nil else {
                throw Failure(reason: "duplicate key \"\(WeightsError.clean(key))\" in __metadata__")
            }
            skipWhitespace()
            if peek() == UInt8(ascii: ",") { pos += 1; continue }
            if peek() == UInt8(ascii: "}") { pos += 1; return result }
            throw unexpected("',' or '}' in __metadata__")
        }
    }

    private mutating func parseTensor(name: String) throws -> RawTensorEntry {
        guard peek() == UInt8(ascii: "{") else {
            throw Failure(tensor: name, reason: "entry is not a JSON object")
        }
        pos += 1
        var dtype: SafeTensorsDType?
        var shape: [Int]?
        var offsets: [Int]?
        var seen = Set<String>()
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            pos += 1
        } else {
            while true {
                skipWhitespace()
                let key = try parseString()
                guard seen.insert(key).inserted else {
                    throw Failure(tensor: name, reason: "duplicate key \"\(WeightsError.clean(key))\" in the entry")
                }
                try expect(UInt8(ascii: ":"))
                skipWhitespace()
                switch key {
                case "dtype":
                    guard peek() == UInt8(ascii: "\"") else { throw Failure(tensor: name, reason: "dtype is not a string") }
                    let s = try parseString()
                    guard let d = SafeTensorsDType(rawValue: s) else {
                        throw Failure(tensor: name, reason: "unknown dtype \"\(WeightsError.clean(s, limit: 20))\"")
                    }
                    dtype = d
                case "shape":
                    shape = try parseIntArray(tensor: name, what: "shape", maxCount: Self.maxRank)
                case "data_offsets":
                    offsets = try parseIntArray(tensor: name, what: "data_offsets", maxCount: 2)
                default:
                    try skipValue(depth: 1)
                }
                skipWhitespace()
                if peek() == UInt8(ascii: ",") { pos += 1; continue }
                if peek() == UInt8(ascii: "}") { pos += 1; break }
                throw unexpected("',' or '}' in the entry of \"\(WeightsError.clean(name))\"")
            }
        }
        guard let dtype else { throw Failure(tensor: name, reason: "entry has no dtype") }
        guard let shape else { throw Failure(tensor: name, reason: "entry has no shape") }
        guard let offsets else { throw Failure(tensor: name, reason: "entry has no data_offsets") }
        guard offsets.count == 2 else {
            throw Failure(tensor: name, reason: "data_offsets has \(offsets.count) values, expected [begin, end]")
        }
        return RawTensorEntry(name: name, dtype: dtype, shape: shape, begin: offsets[0], end: offsets[1])
    }

    private mutating func parseIntArray(tensor: String, what: String, maxCount: Int) throws -> [Int] {
        guard peek() == UInt8(ascii: "[") else { throw Failure(tensor: tensor, reason: "\(what) is not an array") }
        pos += 1
        var values: [Int] = []
        skipWhitespace()
        if peek() == UInt8(ascii: "]") { pos += 1; return values }
        while true {
            skipWhitespace()
            guard values.count < maxCount else {
                throw Failure(tensor: tensor, reason: "\(what) has more than \(maxCount) values")
            }
            values.append(try parseInteger(tensor: tensor, what: what))
            skipWhitespace()
            if peek() == UInt8(ascii: ",") { pos += 1; continue }
            if peek() == UInt8(ascii: "]") { pos += 1; return values }
            throw unexpected("',' or ']' in \(what) of \"\(WeightsError.clean(tensor))\"")
        }
    }

    /// An exact JSON integer (no fraction, no exponent) that fits in `Int`; may be negative.
    private mutating func parseInteger(tensor: String, what: String) throws -> Int {
        let start = pos
        var negative = false
        if peek() == UInt8(ascii: "-") { negative = true; pos += 1 }
        guard let first = peek(), isDigit(first) else {
            pos = start
            throw Failure(tensor: tensor, reason: "\(what) holds a value that is not an integer")
        }
        if first == UInt8(ascii: "0"), let next = peekAt(pos + 1), isDigit(next) {
            throw Failure(tensor: tensor, reason: "\(what) holds a number with a leading zero")
        }
        var value = 0
        var overflow = false
        while let c = peek(), isDigit(c) {
            let digit = Int(c - UInt8(ascii: "0"))
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = negative ? m.subtractingReportingOverflow(digit) : m.addingReportingOverflow(digit)
            if o1 || o2 { overflow = true } else { value = s }
            pos += 1
        }
        if let c = peek(), c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
            throw Failure(tensor: tensor, reason: "\(what) holds a number that is not an integer")
        }
        if overflow {
            throw Failure(tensor: tensor, reason: "\(what) holds an integer too large for 64 bits")
        }
        return value
    }

    // MARK: generic JSON

    /// Skips any JSON value, refusing nesting deeper than `maxDepth`.
    private mutating func skipValue(depth: Int) throws {
        guard depth <= Self.maxDepth else { throw Failure(reason: "header nests deeper than \(Self.maxDepth) levels") }
        skipWhitespace()
        guard let c = peek() else { throw unexpected("a value") }
        switch c {
        case UInt8(ascii: "{"):
            pos += 1
            var seen = Set<String>()
            skipWhitespace()
            if peek() == UInt8(ascii: "}") { pos += 1; return }
            while true {
                skipWhitespace()
                let key = try parseString()
                guard seen.insert(key).inserted else {
                    throw Failure(reason: "duplicate key \"\(WeightsError.clean(key))\" in a header object")
                }
                try expect(UInt8(ascii: ":"))
                try skipValue(depth: depth + 1)
                skipWhitespace()
                if peek() == UInt8(ascii: ",") { pos += 1; continue }
                if peek() == UInt8(ascii: "}") { pos += 1; return }
                throw unexpected("',' or '}'")
            }
        case UInt8(ascii: "["):
            pos += 1
            skipWhitespace()
            if peek() == UInt8(ascii: "]") { pos += 1; return }
            while true {
                try skipValue(depth: depth + 1)
                skipWhitespace()
                if peek() == UInt8(ascii: ",") { pos += 1; continue }
                if peek() == UInt8(ascii: "]") { pos += 1; return }
                throw unexpected("',' or ']'")
            }
        case UInt8(ascii: "\""):
            _ = try parseString()
        case UInt8(ascii: "t"): try expectLiteral("true")
        case UInt8(ascii: "f"): try expectLiteral("false")
        case UInt8(ascii: "n"): try expectLiteral("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try skipNumber()
        default:
            throw unexpected("a value")
        }
    }

    private mutating func skipNumber() throws {
        if peek() == UInt8(ascii: "-") { pos += 1 }
        guard let c = peek(), isDigit(c) else { throw unexpected("a digit") }
        if c == UInt8(ascii: "0") { pos += 1 } else { while let d = peek(), isDigit(d) { pos += 1 } }
        if peek() == UInt8(ascii: ".") {
            pos += 1
            guard let d = peek(), isDigit(d) else { throw unexpected("a digit after '.'") }
            while let d = peek(), isDigit(d) { pos += 1 }
        }
        if let e = peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            pos += 1
            if let s = peek(), s == UInt8(ascii: "+") || s == UInt8(ascii: "-") { pos += 1 }
            guard let d = peek(), isDigit(d) else { throw unexpected("a digit in the exponent") }
            while let d = peek(), isDigit(d) { pos += 1 }
        }
    }

    private mutating func parseLiteralNull() throws -> Bool {
        try expectLiteral("null")
        return true
    }

    private mutating func expectLiteral(_ word: StaticString) throws {
        let text = word.withUTF8Buffer { Array($0) }
        guard pos + text.count <= bytes.count, Array(bytes[pos..<pos + text.count]) == text else {
            throw unexpected("\(word)")
        }
        pos += text.count
    }

    /// A JSON string; escapes decoded, raw control characters and lone surrogates refused.
    private mutating func parseString() throws -> String {
        guard peek() == UInt8(ascii: "\"") else { throw unexpected("a string") }
        pos += 1
        var out: [UInt8] = []
        while true {
            guard let c = peek() else { throw Failure(reason: "header ends inside a string") }
            pos += 1
            switch c {
            case UInt8(ascii: "\""):
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard let e = peek() else { throw Failure(reason: "header ends inside a string") }
                pos += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try parseHex4()
                    if (0xD800...0xDBFF).contains(code) {
                        guard peek() == UInt8(ascii: "\\"), peekAt(pos + 1) == UInt8(ascii: "u") else {
                            throw Failure(reason: "lone surrogate \\u escape in a header string")
                        }
                        pos += 2
                        let low = try parseHex4()
                        guard (0xDC00...0xDFFF).contains(low) else {
                            throw Failure(reason: "invalid surrogate pair in a header string")
                        }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(code) {
                        throw Failure(reason: "lone surrogate \\u escape in a header string")
                    }
                    guard let scalar = Unicode.Scalar(code) else {
                        throw Failure(reason: "invalid \\u escape in a header string")
                    }
                    out.append(contentsOf: Array(String(Character(scalar)).utf8))
                default:
                    throw Failure(reason: "invalid escape \\\(describe(e)) in a header string")
                }
            default:
                guard c >= 0x20 else { throw Failure(reason: "raw control character in a header string at byte \(pos - 1)") }
                out.append(c)
            }
        }
    }

    private mutating func parseHex4() throws -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard let c = peek() else { throw Failure(reason: "header ends inside a \\u escape") }
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw Failure(reason: "invalid \\u escape in a header string")
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }

    // MARK: helpers

    private func validateUTF8() throws {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var offset = 0
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let s):
                offset += UTF8.width(s)
            case .emptyInput:
                return
            case .error:
                throw Failure(reason: "header is not valid UTF-8 (near byte \(offset))")
            }
        }
    }

    private func peek() -> UInt8? { pos < bytes.count ? bytes[pos] : nil }
    private func peekAt(_ i: Int) -> UInt8? { i >= 0 && i < bytes.count ? bytes[i] : nil }
    private func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    private mutating func skipWhitespace() {
        while let c = peek(), c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { pos += 1 }
    }

    private mutating func expect(_ c: UInt8) throws {
        skipWhitespace()
        guard peek() == c else { throw unexpected("'\(Character(Unicode.Scalar(c)))'") }
        pos += 1
    }

    private func describe(_ c: UInt8) -> String {
        (0x21...0x7E).contains(c) ? "'\(Character(Unicode.Scalar(c)))'" : String(format: "byte 0x%02X", c)
    }

    private func unexpected(_ what: String) -> Failure {
        if pos >= bytes.count { return Failure(reason: "header JSON ends early, expected \(what)") }
        return Failure(reason: "header JSON: expected \(what) at byte \(pos), found \(describe(bytes[pos]))")
    }
}
