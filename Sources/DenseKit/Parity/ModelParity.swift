/// Parity handlers for whole architectures and their blocks (`vovnet`, `biformer`,
/// `tokencluster`, `kmax` families).
enum ModelParity {
    static let handlers: [String: ParityHandler] = [:]
}
