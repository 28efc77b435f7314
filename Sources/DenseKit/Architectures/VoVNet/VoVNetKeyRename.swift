import Foundation

/// Converts VoVNet tensor names between detectron2 (youngwanLEE/vovnet-detectron2,
/// spec `vovnet.md` 3.3) and timm (spec 1.8), with the table of spec 3.4.
///
/// Keys here carry no prefix (strip `backbone.bottom_up.` first). Shapes and layouts are
/// identical on both sides.
public enum VoVNetKeyRename {
    /// The timm name of a detectron2 key, or nil when the key is not a VoVNet backbone
    /// tensor (FPN, heads, malformed numbers...). `num_batches_tracked` maps too (BN models).
    public static func timmKey(fromDetectron2 key: String) -> String? {
        let parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 3 else { return nil }
        if parts[0] == "stem" {
            // stem.stem_<n>/<module>.<leaf>
            let (module, rest) = splitSlash(parts[1])
            guard let n = number(after: "stem_", in: module), (1...3).contains(n), let rest else { return nil }
            guard let leaf = leafToTimm(rest, parts[2...].joined(separator: ".")) else { return nil }
            return "stem.\(n - 1).\(leaf)"
        }
        // stage<s>.OSA<s>_<b>.<part>...
        guard let s = number(after: "stage", in: parts[0]), (2...5).contains(s) else { return nil }
        let osa = "OSA\(s)_"
        guard parts[1].hasPrefix(osa), let b = Int(parts[1].dropFirst(osa.count)), b >= 1 else { return nil }
        let block = "stages.\(s - 2).blocks.\(b - 1)."
        let tag = "OSA\(s)_\(b)"
        switch parts[2] {
        case "ese":
            guard parts.count == 5, parts[3] == "fc", ["weight", "bias"].contains(parts[4]) else { return nil }
            return block + "attn.fc." + parts[4]
        case "conv_reduction", "concat":
            guard parts.count >= 5 else { return nil }
            let (module, rest) = splitSlash(parts[3])
            let want = parts[2] == "concat" ? tag + "_concat" : tag + "_reduction_0"
            guard module == want, let rest, let leaf = leafToTimm(rest, parts[4...].joined(separator: ".")) else { return nil }
            return block + (parts[2] == "concat" ? "conv_concat." : "conv_reduction.") + leaf
        case "layers":
            guard parts.count >= 6, let l = Int(parts[3]), l >= 0 else { return nil }
            let (module, rest) = splitSlash(parts[4])
            guard module == "\(tag)_\(l)", let rest, let leaf = leafToTimm(rest, parts[5...].joined(separator: ".")) else { return nil }
            return block + "conv_mid.\(l)." + leaf
        default:
            return nil
        }
    }

    /// The detectron2 name of a timm key, or nil for tensors detectron2 does not have
    /// (`num_batches_tracked`, `head.*`) or keys that are not VoVNet tensors.
    /// - Parameter depthwise: whether the network is depthwise; a `bn` inside a separable
    ///   conv (`stem.1`, `stem.2`, `conv_mid.*`) becomes `pw_norm`, every other `bn` `norm`.
    public static func detectron2Key(fromTimm key: String, depthwise: Bool) -> String? {
        if key.hasSuffix(".num_batches_tracked") || key.hasPrefix("head.") { return nil }
        let parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 4 else { return nil }
        if parts[0] == "stem" {
            guard let k = Int(parts[1]), (0...2).contains(k) else { return nil }
            guard let leaf = leafToDetectron2(parts[2...].joined(separator: "."), separable: depthwise && k > 0) else { return nil }
            return "stem.stem_\(k + 1)/" + leaf
        }
        guard parts[0] == "stages", let i = Int(parts[1]), (0...3).contains(i), parts[2] == "blocks",
              let j = Int(parts[3]), j >= 0, parts.count >= 6 else { return nil }
        let s = i + 2, b = j + 1
        let stage = "stage\(s).OSA\(s)_\(b)."
        switch parts[4] {
        case "attn":
            guard parts.count == 7, parts[5] == "fc", ["weight", "bias"].contains(parts[6]) else { return nil }
            return stage + "ese.fc." + parts[6]
        case "conv_reduction", "conv_concat":
            guard let leaf = leafToDetectron2(parts[5...].joined(separator: "."), separable: false) else { return nil }
            return parts[4] == "conv_concat" ? stage + "concat.OSA\(s)_\(b)_concat/" + leaf
                                             : stage + "conv_reduction.OSA\(s)_\(b)_reduction_0/" + leaf
        case "conv_mid":
            guard parts.count >= 7, let l = Int(parts[5]), l >= 0,
                  let leaf = leafToDetectron2(parts[6...].joined(separator: "."), separable: depthwise) else { return nil }
            return stage + "layers.\(l).OSA\(s)_\(b)_\(l)/" + leaf
        default:
            return nil
        }
    }

    /// `conv.weight` -> same; `norm.<x>` / `pw_norm.<x>` -> `bn.<x>`; `dw_conv3x3.weight` -> `conv_dw.weight`;
    /// `pw_conv1x1.weight` -> `conv_pw.weight`. `first` is the text after the `/`, `rest` what follows its dot.
    static func leafToTimm(_ first: String, _ rest: String) -> String? {
        let norms: Set<String> = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
        switch first {
        case "conv": return rest == "weight" ? "conv.weight" : nil
        case "dw_conv3x3": return rest == "weight" ? "conv_dw.weight" : nil
        case "pw_conv1x1": return rest == "weight" ? "conv_pw.weight" : nil
        case "norm", "pw_norm": return norms.contains(rest) ? "bn." + rest : nil
        default: return nil
        }
    }

    /// The inverse of `leafToTimm` for a timm leaf such as `bn.running_var`.
    static func leafToDetectron2(_ leaf: String, separable: Bool) -> String? {
        switch leaf {
        case "conv.weight": return "conv.weight"
        case "conv_dw.weight": return "dw_conv3x3.weight"
        case "conv_pw.weight": return "pw_conv1x1.weight"
        case "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var":
            return (separable ? "pw_norm." : "norm.") + leaf.dropFirst(3)
        default: return nil
        }
    }

    /// `("stem_1", "conv")` for `stem_1/conv`; `(text, nil)` without a slash.
    static func splitSlash(_ s: String) -> (String, String?) {
        guard let i = s.firstIndex(of: "/") else { return (s, nil) }
        return (String(s[..<i]), String(s[s.index(after: i)...]))
    }

    /// The integer after `prefix` in `s` (`number(after: "stage", in: "stage3") == 3`).
    static func number(after prefix: String, in s: String) -> Int? {
        guard s.hasPrefix(prefix) else { return nil }
        return Int(s.dropFirst(prefix.count))
    }
}
