/// The fused epilogue of the GEMM convolutions and of `LinearOperator`: `y = act(y + bias)`.
enum ConvEpilogue {
    /// Applies `act(y + bias[o])` in place to `count` values starting at `offset` of each of
    /// `channels` planes of `planeStride` floats (channel `o`'s plane starts at `o * planeStride`).
    /// Channels are split over threads with a fixed partition.
    static func apply(output: UnsafeMutablePointer<Float>, channels: Int, planeStride: Int,
                      offset: Int, count: Int, bias: UnsafePointer<Float>?, activation: Activation) {
        if bias == nil && activation == .none { return }
        if count <= 0 || channels <= 0 { return }
        let grain = max(1, 16_384 / count)
        Threading.parallelFor(channels, grain: grain) { o in
            applyPlane(output + o * planeStride + offset, count: count, bias: bias?[o] ?? 0, activation: activation)
        }
    }

    /// `act(p[i] + bias)` for `count` contiguous values.
    @inline(__always)
    static func applyPlane(_ p: UnsafeMutablePointer<Float>, count: Int, bias: Float, activation: Activation) {
        switch activation {
        case .none:
            if bias != 0 { addBias(p, count: count, bias: bias) }
        case .relu:
            let b = SIMD8<Float>(repeating: bias), z = SIMD8<Float>(repeating: 0)
            var i = 0
            while i + 8 <= count {
                let v = load8(p + i) + b
                store8(v.replacing(with: z, where: v .< z), p + i)
                i += 8
            }
            while i < count { let v = p[i] + bias; p[i] = v > 0 || v.isNaN ? v : 0; i += 1 }   // NaN kept
        case .relu6:
            let b = SIMD8<Float>(repeating: bias), z = SIMD8<Float>(repeating: 0), six = SIMD8<Float>(repeating: 6)
            var i = 0
            while i + 8 <= count {
                var v = load8(p + i) + b
                v = v.replacing(with: z, where: v .< z)
                v = v.replacing(with: six, where: v .> six)
                store8(v, p + i)
                i += 8
            }
            while i < count { p[i] = min(max(p[i] + bias, 0), 6); i += 1 }
        default:
            if bias != 0 { addBias(p, count: count, bias: bias) }
            activation.apply(p, count: count)
        }
    }

    @inline(__always)
    static func addBias(_ p: UnsafeMutablePointer<Float>, count: Int, bias: Float) {
        let b = SIMD8<Float>(repeating: bias)
        var i = 0
        while i + 8 <= count { store8(load8(p + i) + b, p + i); i += 8 }
        while i < count { p[i] += bias; i += 1 }
    }

    @inline(__always)
    static func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inline(__always)
    static func load8(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inline(__always)
    static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
    }
}
