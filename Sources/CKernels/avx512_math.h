/* Shared AVX-512F helpers of the CKernels sources (internal header). */
#ifndef DENSEKIT_CKERNELS_AVX512_MATH_H
#define DENSEKIT_CKERNELS_AVX512_MATH_H
#include <immintrin.h>
#include <math.h>

/* e^x, 16 lanes: Cephes' expf (range reduction by ln 2 in two parts, degree-6 polynomial, about 2 ulp), with
 * plain multiplies and adds in the order of DenseKit's Swift `VectorMath.exp1`, so both give the same bits.
 * Saturates like it: +inf above 88.72283, 0 below -87.33654; NaN stays NaN. */
__attribute__((target("avx512f")))
static inline __m512 dk_exp512(__m512 x) {
    const __m512 hi = _mm512_set1_ps(88.72283f), lo = _mm512_set1_ps(-87.33654f), magic = _mm512_set1_ps(12582912.0f);
    __m512 xc = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
    __m512 t = _mm512_add_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)), magic);
    __m512 n = _mm512_sub_ps(t, magic);
    __m512 r = _mm512_sub_ps(xc, _mm512_mul_ps(n, _mm512_set1_ps(0.693359375f)));
    r = _mm512_sub_ps(r, _mm512_mul_ps(n, _mm512_set1_ps(-2.12194440e-4f)));
    __m512 z = _mm512_mul_ps(r, r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(p, z), r), _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_sub_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(0x4B400000)),
                                                   _mm512_set1_epi32(126)), 23);
    __m512 y = _mm512_mul_ps(_mm512_mul_ps(p, _mm512_castsi512_ps(e)), _mm512_set1_ps(2.0f));
    y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ), y, _mm512_set1_ps(INFINITY));
    y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), y, _mm512_setzero_ps());
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), y, x);
}

/* e^xc = p * 2^n (returns p, stores n) for |xc| <= ~88, with fused multiply-adds: Cephes' range reduction by ln 2
 * in two parts and its degree-6 polynomial. Shared by the FMA exps, which differ only in how they saturate. */
__attribute__((target("avx512f")))
static inline __m512 dk_exp512_fma_core(__m512 xc, __m512 *n) {
    *n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(*n, _mm512_set1_ps(0.693359375f), xc);
    r = _mm512_fnmadd_ps(*n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    return _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
}

/* e^x for x <= 0 (softmax numerators after the max is subtracted, GELU's erfc term), 16 lanes, with fused
 * multiply-adds: Cephes' range reduction and degree-6 polynomial (as dk_exp512), scaled by 2^n with vscalefps.
 * 0 below -87.33654; NaN stays NaN. Not bit-identical to `dk_exp512` (no Swift twin needs it). */
__attribute__((target("avx512f")))
static inline __m512 dk_exp512_fma(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-87.33654f);
    __m512 n, p = dk_exp512_fma_core(_mm512_max_ps(x, lo), &n);
    __m512 y = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ), _mm512_scalef_ps(p, n));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), y, x);
}

/* e^x, 16 lanes, meant for x <= 0, as dk_exp512_fma but keeping denormal results (as float32 expf does): the
 * 2^n scaling by vscalefps rounds once into the denormal range; below -120 the result is 0. NaN stays NaN. */
__attribute__((target("avx512f")))
static inline __m512 dk_exp512_fma_denormal(__m512 x) {
    __m512 xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-120.0f)), _mm512_set1_ps(88.0f));
    __m512 n, p = dk_exp512_fma_core(xc, &n);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), _mm512_scalef_ps(p, n), x);
}

#endif
