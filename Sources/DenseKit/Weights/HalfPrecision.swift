/// Exact conversions between float32 and the 16-bit float formats of safetensors,
/// done on bit patterns (no dependency on `Float16` availability).
enum HalfPrecision {
    /// IEEE 754 binary16 bits to float32, exact (subnormals, infinities, NaN payloads kept).
    @inline(__always)
    static func floatFromHalfBits(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exp = UInt32(h >> 10) & 0x1F
        let mant = UInt32(h & 0x3FF)
        if exp == 0 {
            // Zero or subnormal: mant * 2^-24, exact in float32.
            let magnitude = Float(mant) * 0x1p-24
            return sign != 0 ? -magnitude : magnitude
        }
        if exp == 0x1F {
            return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13))
        }
        return Float(bitPattern: sign | ((exp + 112) << 23) | (mant << 13))
    }

    /// Float32 to binary16 bits, rounding to nearest even; overflow gives infinity,
    /// NaN stays NaN (quiet, sign and high payload bits kept).
    static func halfBits(from f: Float) -> UInt16 {
        let x = f.bitPattern
        let sign = UInt16((x >> 16) & 0x8000)
        let exp = Int((x >> 23) & 0xFF)
        let mant = x & 0x7F_FFFF
        if exp == 0xFF {
            return mant == 0 ? sign | 0x7C00 : sign | 0x7E00 | UInt16(truncatingIfNeeded: mant >> 13)
        }
        if exp == 0 { return sign } // float32 subnormals are far below half's range
        let e = exp - 127 + 15
        if e >= 0x1F { return sign | 0x7C00 }
        if e <= 0 {
            // Half subnormal: value / 2^-24 = m * 2^(e - 14), m with its implicit bit.
            let m = mant | 0x80_0000
            let shift = 14 - e
            if shift >= 26 { return sign } // below half of the smallest subnormal
            let q = m >> UInt32(shift)
            let rem = m & ((1 << UInt32(shift)) - 1)
            let halfway = UInt32(1) << UInt32(shift - 1)
            var r = q
            if rem > halfway || (rem == halfway && (q & 1) == 1) { r += 1 }
            return sign | UInt16(truncatingIfNeeded: r)
        }
        var r = (UInt32(e) << 10) | (mant >> 13)
        let rem = mant & 0x1FFF
        if rem > 0x1000 || (rem == 0x1000 && (r & 1) == 1) { r += 1 } // may carry into infinity: correct
        return sign | UInt16(truncatingIfNeeded: r)
    }

    /// bfloat16 bits to float32 (exact: the high half of a float32).
    @inline(__always)
    static func floatFromBFloatBits(_ b: UInt16) -> Float {
        Float(bitPattern: UInt32(b) << 16)
    }

    /// Float32 to bfloat16 bits, rounding to nearest even; NaN stays a quiet NaN.
    static func bfloatBits(from f: Float) -> UInt16 {
        let x = f.bitPattern
        if (x & 0x7FFF_FFFF) > 0x7F80_0000 {
            return UInt16(truncatingIfNeeded: x >> 16) | 0x0040
        }
        let bias: UInt32 = 0x7FFF + ((x >> 16) & 1)
        return UInt16(truncatingIfNeeded: (x &+ bias) >> 16)
    }
}
