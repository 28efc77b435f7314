import Foundation

/// The named VoVNet configurations: timm's `model_cfgs` (timm 1.0.31 `vovnet.py`) and the
/// detectron2 `_STAGE_SPECS` (spec `vovnet.md` sections 2 and 3.1).
///
/// timm presets return features `[1, 2, 3, 4]` with no key style fixed; set
/// `featuresOnly = false` and `numClasses = 1000` for the classifiers. detectron2 presets
/// (`V-19-dw-eSE`, ...) fix `key_style` detectron2 and eSE on every block.
public enum VoVNetPresets {
    /// Preset names, timm first.
    public static let names: [String] = [
        "vovnet39a", "vovnet57a", "ese_vovnet19b_slim_dw", "ese_vovnet19b_dw", "ese_vovnet19b_slim",
        "ese_vovnet19b", "ese_vovnet39b", "ese_vovnet57b", "ese_vovnet99b",
        "V-19-slim-dw-eSE", "V-19-dw-eSE", "V-19-slim-eSE", "V-19-eSE", "V-39-eSE", "V-57-eSE", "V-99-eSE",
    ]

    /// The preset's config.
    /// - Throws: `ModelConfigError.unknownPreset` listing the valid names.
    public static func config(named name: String) throws -> VoVNetConfig {
        let wide = (conv: [128, 160, 192, 224], out: [256, 512, 768, 1024])
        let slim = (conv: [64, 80, 96, 112], out: [112, 256, 384, 512])
        func timm(_ stem: [Int], _ w: (conv: [Int], out: [Int]), _ l: Int, _ b: [Int], res: Bool, dw: Bool, ese: Bool) -> VoVNetConfig {
            VoVNetConfig(stemChannels: stem, stageConvChannels: w.conv, stageOutChannels: w.out, layerPerBlock: l,
                         blockPerStage: b, residual: res, depthwise: dw, ese: ese)
        }
        func d2(_ stem: [Int], _ w: (conv: [Int], out: [Int]), _ l: Int, _ b: [Int], dw: Bool) -> VoVNetConfig {
            VoVNetConfig(stemChannels: stem, stageConvChannels: w.conv, stageOutChannels: w.out, layerPerBlock: l,
                         blockPerStage: b, residual: true, depthwise: dw, ese: true, attnAllBlocks: true, keyStyle: .detectron2)
        }
        switch name {
        case "vovnet39a": return timm([64, 64, 128], wide, 5, [1, 1, 2, 2], res: false, dw: false, ese: false)
        case "vovnet57a": return timm([64, 64, 128], wide, 5, [1, 1, 4, 3], res: false, dw: false, ese: false)
        case "ese_vovnet19b_slim_dw": return timm([64, 64, 64], slim, 3, [1, 1, 1, 1], res: true, dw: true, ese: true)
        case "ese_vovnet19b_dw": return timm([64, 64, 64], wide, 3, [1, 1, 1, 1], res: true, dw: true, ese: true)
        case "ese_vovnet19b_slim": return timm([64, 64, 128], slim, 3, [1, 1, 1, 1], res: true, dw: false, ese: true)
        case "ese_vovnet19b": return timm([64, 64, 128], wide, 3, [1, 1, 1, 1], res: true, dw: false, ese: true)
        case "ese_vovnet39b": return timm([64, 64, 128], wide, 5, [1, 1, 2, 2], res: true, dw: false, ese: true)
        case "ese_vovnet57b": return timm([64, 64, 128], wide, 5, [1, 1, 4, 3], res: true, dw: false, ese: true)
        case "ese_vovnet99b": return timm([64, 64, 128], wide, 5, [1, 3, 9, 3], res: true, dw: false, ese: true)
        case "V-19-slim-dw-eSE": return d2([64, 64, 64], slim, 3, [1, 1, 1, 1], dw: true)
        case "V-19-dw-eSE": return d2([64, 64, 64], wide, 3, [1, 1, 1, 1], dw: true)
        case "V-19-slim-eSE": return d2([64, 64, 128], slim, 3, [1, 1, 1, 1], dw: false)
        case "V-19-eSE": return d2([64, 64, 128], wide, 3, [1, 1, 1, 1], dw: false)
        case "V-39-eSE": return d2([64, 64, 128], wide, 5, [1, 1, 2, 2], dw: false)
        case "V-57-eSE": return d2([64, 64, 128], wide, 5, [1, 1, 4, 3], dw: false)
        case "V-99-eSE": return d2([64, 64, 128], wide, 5, [1, 3, 9, 3], dw: false)
        default: throw ModelConfigError.unknownPreset(model: "vovnet", name: name, known: names)
        }
    }
}
