/// A value produced by a parity handler for one output of a case.
public enum ParityOutput: @unchecked Sendable {
    case float(Tensor)
    case index(IndexTensor)
}

/// Computes a golden case's outputs with DenseKit: `output name -> value`.
public typealias ParityHandler = (GoldenCase) throws -> [String: ParityOutput]

/// Maps `family/target` to the DenseKit code that computes it. Each family adds its
/// handlers in its own file (`Parity/Ops+*.swift`, `Parity/VoVNetParity.swift`, ...).
enum ParityRegistry {
    static let handlers: [String: ParityHandler] = {
        var h: [String: ParityHandler] = [:]
        for part in [OpsConvParity.handlers, OpsMiscParity.handlers, ModelParity.handlers, KMaXParity.handlers, TokenClusterParity.handlers, BiFormerParity.handlers] {
            h.merge(part) { a, _ in a }
        }
        return h
    }()

    static func handler(family: String, target: String) -> ParityHandler? {
        handlers["\(family)/\(target)"]
    }
}
