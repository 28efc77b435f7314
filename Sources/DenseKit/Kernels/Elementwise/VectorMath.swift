import CKernels

/// Vectorised float32 transcendental functions for the element-wise kernels.
///
/// `exp1` is Cephes' `expf` (range reduction by ln 2 in two parts, degree-6 polynomial; about 2 ulp),
/// written without branches or calls so that loops over it vectorise. Results saturate like the libm functions the scalar formulas use:
/// `exp` gives +inf above 88.72 and 0 below -87.3 (denormal results are flushed to 0), NaN stays NaN.
/// Each element's result depends on its value alone, so results do not depend on chunking or thread count.
@usableFromInline
enum VectorMath {
    /// `e^x` of one value, branch-free (so loops over it vectorise): Cephes' `expf`.
    @inline(__always)
    static func exp1(_ x: Float) -> Float {
        let hi: Float = 88.72283, lo: Float = -87.33654
        let xc = min(max(x, lo), hi)
        // n = round(x / ln 2) by the 1.5 * 2^23 trick: the low mantissa bits of t hold n.
        let t = xc * 1.44269504088896341 + 12582912
        let n = t - 12582912
        var r = xc - n * 0.693359375
        r = r - n * -2.12194440e-4
        let z = r * r
        var p: Float = 1.9875691500e-4
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        p = p * z + r + 1
        // 2^(n-1) from the exponent bits (n-1 in -127...127), then * 2.
        let e = (t.bitPattern &- 0x4B40_0000 &+ 126) &<< 23
        var y = p * Float(bitPattern: e) * 2
        y = x > hi ? .infinity : y
        y = x < lo ? 0 : y
        return x != x ? x : y
    }

    /// `1 / (1 + e^-x)` (exactly 0 / 1 when saturated, never NaN for non-NaN input).
    @inline(__always)
    static func sigmoid1(_ x: Float) -> Float { 1 / (1 + exp1(-x)) }

    /// `x / (1 + e^-x)` (SiLU): -0 for large negative x.
    @inline(__always)
    static func silu1(_ x: Float) -> Float { x / (1 + exp1(-x)) }

    /// GELU, tanh form: `0.5 x (1 + tanh(u)) = x * sigmoid(2u)`, `u = sqrt(2/pi) (x + 0.044715 x^3)`;
    /// the sigmoid form has no cancellation for negative x.
    @inline(__always)
    static func geluTanh1(_ x: Float) -> Float {
        let u = 0.79788456080286535588 * (x + 0.044715 * x * x * x)
        return x / (1 + exp1(-2 * u))
    }

    /// GELU, erf form: `0.5 x (1 + erf(x / sqrt 2)) = 0.5 x erfc(-x / sqrt 2)`, with erfc from the
    /// Chebyshev fit of Numerical Recipes (`erfcc`, fractional error < 1.2e-7 everywhere).
    @inline(__always)
    static func gelu1(_ x: Float) -> Float {
        let z = -x * 0.70710678118654752440
        let a = z < 0 ? -z : z
        let t = 1 / (1 + 0.5 * a)
        var q: Float = 0.17087277
        q = q * t + -0.82215223
        q = q * t + 1.48851587
        q = q * t + -1.13520398
        q = q * t + 0.27886807
        q = q * t + -0.18628806
        q = q * t + 0.09678418
        q = q * t + 0.37409196
        q = q * t + 1.00002368
        q = q * t + -1.26551223
        let r = t * exp1(q - a * a)
        let erfc = z < 0 ? 2 - r : r
        let y = 0.5 * x * erfc
        return x != x ? x : y
    }

    /// `y[i] = act(x[i])` for the four smooth activations (one loop each, so each vectorises).
    static func apply(_ act: Activation, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        switch act {
        case .gelu:
            // AVX-512 with fused multiply-adds where the CPU has it: the same erfc formula, relative error below
            // 2e-7, not bit-identical to this loop (about 1.7x faster than an AVX-512 copy without FMAs).
            if KernelDispatch.avx512 && dk_gelu_fma(x, y, count) != 0 { return }
            for i in 0..<count { y[i] = gelu1(x[i]) }
        case .geluTanh: for i in 0..<count { y[i] = geluTanh1(x[i]) }
        case .silu: for i in 0..<count { y[i] = silu1(x[i]) }
        case .sigmoid: for i in 0..<count { y[i] = sigmoid1(x[i]) }
        default: for i in 0..<count { y[i] = act.apply(x[i]) }
        }
    }

    /// `y[j] = e^(x[j] - m[j])` for `count` values.
    @inline(__always)
    static func expDiff(_ x: UnsafePointer<Float>, _ m: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        for j in 0..<count { y[j] = exp1(x[j] - m[j]) }
    }

    /// `y[i] = e^(x[i] - shift)` for `count` values; returns their sum in Double.
    @inline(__always)
    static func expShifted(_ x: UnsafePointer<Float>, shift: Float, _ y: UnsafeMutablePointer<Float>, count: Int) -> Double {
        for i in 0..<count { y[i] = exp1(x[i] - shift) }
        var s = 0.0
        for i in 0..<count { s += Double(y[i]) }
        return s
    }
}
