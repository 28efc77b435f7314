import Foundation

/// Deterministic random VoVNet weights under timm names, for tests, benchmarks and
/// profiling without a checkpoint.
///
/// Conv weights are He-normal (`std = sqrt(2 / fan_in)`), BN weight in [0.5, 1.5], bias and
/// running mean in [-0.1, 0.1], running var in [0.5, 1.5], eSE fc weights `N(0, 1/C)` and
/// bias in [-0.5, 0.5], head `N(0, 1/C)`. Activations stay O(1) through the network.
public enum VoVNetRandomWeights {
    /// Weights for every tensor of `VoVNetKeys.expected(config)`.
    public static func make(_ config: VoVNetConfig, seed: UInt64 = 0) -> TensorDictionary {
        make(VoVNetKeys.expected(config), seed: seed)
    }

    /// Weights for the given tensor list.
    public static func make(_ specs: [VoVNetTensorSpec], seed: UInt64 = 0) -> TensorDictionary {
        var rng = SeededRandom(seed: seed)
        var d = TensorDictionary()
        for s in specs {
            let n = s.shape.reduce(1, *)
            let fanIn = s.shape.dropFirst().reduce(1, *)
            let values: [Float]
            let k = s.key
            if k.hasSuffix("bn.weight") || k.hasSuffix("bn.running_var") {
                values = (0..<n).map { _ in Float(0.5 + rng.uniform()) }
            } else if k.hasSuffix("bn.bias") || k.hasSuffix("bn.running_mean") {
                values = (0..<n).map { _ in Float(0.2 * rng.uniform() - 0.1) }
            } else if k.hasSuffix("fc.bias") {
                values = (0..<n).map { _ in Float(rng.uniform() - 0.5) }
            } else if k.hasSuffix("fc.weight") {
                let std = 1 / Double(max(fanIn, 1)).squareRoot()
                values = (0..<n).map { _ in Float(std * rng.normal()) }
            } else {
                let std = (2 / Double(max(fanIn, 1))).squareRoot()
                values = (0..<n).map { _ in Float(std * rng.normal()) }
            }
            d[k] = Tensor(shape: s.shape, values: values)
        }
        return d
    }
}

/// SeededRandom: a small, fast, seedable generator (Steele, Lea, Flood 2014).
struct SeededRandom {
    private var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    mutating func uniform() -> Double { Double(next() >> 11) * (1.0 / 9007199254740992.0) }

    /// Standard normal (Box-Muller).
    mutating func normal() -> Double {
        let u1 = max(uniform(), 1e-300), u2 = uniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}
