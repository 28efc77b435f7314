import Foundation

/// A checked mapping from the timm keys a VoVNet needs to the keys of a weight source
/// (spec `vovnet.md` section 4: prefixes, features-only names, detectron2 names).
///
/// `resolve` validates the whole key set before anything is built: every needed tensor
/// present, nothing unexpected under the model's prefix, every shape as the config
/// implies. `num_batches_tracked` is ignored, and so are `head.*` tensors when only
/// features are wanted, and keys outside the prefix (FPN, detection heads...).
public struct VoVNetWeights {
    /// The source read.
    public let source: any WeightSource
    /// Key naming found or given.
    public let style: VoVNetKeyStyle
    /// Prefix found or given (text before every backbone key).
    public let prefix: String
    /// timm key -> source key.
    let map: [String: String]

    /// Detects the key style: detectron2 names (`stem.stem_1/`, `/conv.weight`, `OSA<s>_<b>`)
    /// or timm names (`stem.0.conv.weight`, `stem_0.`, `stages.<i>.blocks.`).
    /// - Throws: `ModelConfigError.keyStyle` when neither is found.
    public static func detectStyle(_ keys: [String]) throws -> VoVNetKeyStyle {
        if keys.contains(where: { $0.contains("stem.stem_1/") || $0.contains("/conv.weight") || $0.contains(".OSA") }) {
            return .detectron2
        }
        if keys.contains(where: { $0.hasSuffix("stem.0.conv.weight") || $0.hasSuffix("stem_0.conv.weight") || $0.contains("stages.0.blocks.") }) {
            return .timm
        }
        throw ModelConfigError.keyStyle(model: "vovnet", message: "no VoVNet stem found (looked for \"stem.0.conv.weight\" and \"stem.stem_1/conv.weight\") among \(keys.count) tensors")
    }

    /// The text in front of the stem's first conv weight (`backbone.bottom_up.`, `module.`, or empty).
    /// - Throws: `ModelConfigError.keyStyle` when the anchor is absent or found under several prefixes.
    public static func detectPrefix(_ keys: [String], style: VoVNetKeyStyle) throws -> String {
        let anchors = style == .timm ? ["stem.0.conv.weight", "stem_0.conv.weight"] : ["stem.stem_1/conv.weight"]
        var found: [String] = []
        for k in keys {
            for a in anchors where k.hasSuffix(a) {
                let p = String(k.dropLast(a.count))
                if p.isEmpty || p.hasSuffix(".") || p.hasSuffix("_") { found.append(p) }
            }
        }
        let unique = Array(Set(found)).sorted()
        guard let p = unique.first else {
            throw ModelConfigError.keyStyle(model: "vovnet", message: "no \(anchors.joined(separator: " or ")) key found, cannot locate the backbone (\(style.rawValue) names)")
        }
        guard unique.count == 1 else {
            throw ModelConfigError.keyStyle(model: "vovnet", message: "the stem appears under several prefixes (\(unique.map { "\"\($0)\"" }.joined(separator: ", "))); set key_prefix")
        }
        return p
    }

    /// The timm key of a timm-style key without prefix: `stem_<k>.` / `stages_<k>.` (features-only
    /// models) become `stem.<k>.` / `stages.<k>.`.
    static func normalizeTimm(_ key: String) -> String {
        for (from, to) in [("stem_", "stem."), ("stages_", "stages.")] where key.hasPrefix(from) {
            let rest = key.dropFirst(from.count)
            let digits = rest.prefix(while: { $0.isNumber })
            if !digits.isEmpty, rest.dropFirst(digits.count).hasPrefix(".") { return to + rest }
        }
        return key
    }

    /// Maps and validates `source` against `expected`.
    /// - Parameters:
    ///   - expected: the tensors needed, under timm names (`VoVNetKeys.expected` or `.block`).
    ///   - style, prefix: nil to detect.
    ///   - ignoreHead: skip `head.*` tensors (features-only models loading a classifier checkpoint).
    ///   - depthwise: the network's depthwise flag (only to spell missing detectron2 keys).
    /// - Throws: `ModelConfigError.keyStyle`, `.missingWeights`, `.unexpectedWeights`, `.weightShapes`,
    ///   each naming the keys concerned (source names).
    public static func resolve(source: any WeightSource, expected: [VoVNetTensorSpec], style: VoVNetKeyStyle? = nil,
                               prefix: String? = nil, ignoreHead: Bool = false, depthwise: Bool = false) throws -> VoVNetWeights {
        let keys = source.keys
        let style = try style ?? detectStyle(keys)
        let prefix = try prefix ?? detectPrefix(keys, style: style)
        let needed = Dictionary(expected.map { ($0.key, $0.shape) }, uniquingKeysWith: { a, _ in a })
        var map: [String: String] = [:]
        var unexpected: [String] = []
        for k in keys where k.hasPrefix(prefix) {
            let rel = String(k.dropFirst(prefix.count))
            if rel.hasSuffix("num_batches_tracked") { continue }
            let canonical: String?
            switch style {
            case .timm: canonical = normalizeTimm(rel)
            case .detectron2: canonical = VoVNetKeyRename.timmKey(fromDetectron2: rel)
            }
            guard let c = canonical else { unexpected.append(k); continue }
            if ignoreHead && c.hasPrefix("head.") && needed[c] == nil { continue }
            guard needed[c] != nil, map[c] == nil else { unexpected.append(k); continue }
            map[c] = k
        }
        func sourceName(_ timmKey: String) -> String {
            switch style {
            case .timm: return prefix + timmKey
            case .detectron2: return prefix + (VoVNetKeyRename.detectron2Key(fromTimm: timmKey, depthwise: depthwise) ?? timmKey)
            }
        }
        let missing = expected.filter { map[$0.key] == nil }.map { sourceName($0.key) }
        if !missing.isEmpty { throw ModelConfigError.missingWeights(model: "vovnet", keys: missing) }
        if !unexpected.isEmpty { throw ModelConfigError.unexpectedWeights(model: "vovnet", keys: unexpected) }
        var wrong: [String] = []
        for e in expected {
            guard let k = map[e.key] else { continue }
            let found = source.shape(of: k) ?? []
            if found != e.shape { wrong.append("\(k) expected \(ShapeText.of(e.shape)) found \(ShapeText.of(found))") }
        }
        if !wrong.isEmpty { throw ModelConfigError.weightShapes(model: "vovnet", mismatches: wrong) }
        return VoVNetWeights(source: source, style: style, prefix: prefix, map: map)
    }

    /// The tensor stored for a timm key.
    /// - Throws: `ModelConfigError.missingWeights` if the key was not resolved, or the source's error.
    public func tensor(_ timmKey: String) throws -> Tensor {
        guard let k = map[timmKey] else { throw ModelConfigError.missingWeights(model: "vovnet", keys: [prefix + timmKey]) }
        return try source.tensor(k)
    }

    /// The batch norm `<module>bn.*` (module ends with a dot) with the given eps.
    /// - Throws: as `tensor(_:)`, or `GraphError.invalidWeights` for inconsistent sizes.
    func batchNorm(_ module: String, eps: Double) throws -> BatchNormParameters {
        try BatchNormParameters(gamma: try tensor(module + "bn.weight"), beta: try tensor(module + "bn.bias"),
                                runningMean: try tensor(module + "bn.running_mean"), runningVar: try tensor(module + "bn.running_var"),
                                eps: eps, name: module + "bn")
    }
}
