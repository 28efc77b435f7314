/// Parity handlers for `ops` targets: conv2d, conv_transpose2d, linear, matmul,
/// scaled_dot_product_attention, multi_head_attention.
enum OpsConvParity {
    static let handlers: [String: ParityHandler] = [:]
}
