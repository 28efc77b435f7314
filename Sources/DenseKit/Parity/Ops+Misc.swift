/// Parity handlers for the other `ops` targets (norms, activations, pools, resize,
/// softmax, indexing and shape ops).
enum OpsMiscParity {
    static let handlers: [String: ParityHandler] = [:]
}
