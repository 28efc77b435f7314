/* Exact-form GELU with AVX-512F (see CKernels.h). Plain multiplies and adds (no FMA) in the
 * order of the Swift scalar formula, so the results are bit-identical to it. */
#include "CKernels.h"
#include "avx512_math.h"
#include <immintrin.h>
#include <math.h>

#define MUL _mm512_mul_ps
#define ADD _mm512_add_ps
#define SUB _mm512_sub_ps
#define SET _mm512_set1_ps


__attribute__((target("avx512f")))
static inline __m512 gelu512(__m512 x) {
    __m512 z = MUL(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u))),
                    SET(0.70710678118654752440f));
    __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(z), _mm512_set1_epi32(0x7FFFFFFF)));
    __m512 t = _mm512_div_ps(SET(1.0f), ADD(SET(1.0f), MUL(SET(0.5f), a)));
    __m512 q = SET(0.17087277f);
    q = ADD(MUL(q, t), SET(-0.82215223f));
    q = ADD(MUL(q, t), SET(1.48851587f));
    q = ADD(MUL(q, t), SET(-1.13520398f));
    q = ADD(MUL(q, t), SET(0.27886807f));
    q = ADD(MUL(q, t), SET(-0.18628806f));
    q = ADD(MUL(q, t), SET(0.09678418f));
    q = ADD(MUL(q, t), SET(0.37409196f));
    q = ADD(MUL(q, t), SET(1.00002368f));
    q = ADD(MUL(q, t), SET(-1.26551223f));
    __m512 r = MUL(t, dk_exp512(SUB(q, MUL(a, a))));
    __m512 erfc = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ), r, SUB(SET(2.0f), r));
    __m512 y = MUL(MUL(SET(0.5f), x), erfc);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), y, x);
}

__attribute__((target("avx512f")))
static void gelu_512(const float *x, float *y, long count) {
    long i = 0;
    for (; i + 16 <= count; i += 16) _mm512_storeu_ps(y + i, gelu512(_mm512_loadu_ps(x + i)));
    if (i < count) {
        __mmask16 m = (__mmask16)((1u << (count - i)) - 1u);
        _mm512_mask_storeu_ps(y + i, m, gelu512(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

int dk_gelu(const float *x, float *y, long count) {
    if (!dk_has_avx512()) return 0;
    if (count > 0) gelu_512(x, y, count);
    return 1;
}
