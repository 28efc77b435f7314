/* Row layer normalisation with an optional residual added first, AVX-512F (see CKernels.h). Sums in double,
 * eight lanes per accumulator; the affine step is the Swift reference's operation sequence in double
 * (((x - mu) * rstd) * w) + b, no fused multiply-add, rounded once to float. */
#include "CKernels.h"
#include <immintrin.h>
#include <math.h>

/* The two double halves of 16 floats. */
#define LO(v) _mm512_cvtps_pd(_mm512_castps512_ps256(v))
#define HI(v) _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))

__attribute__((target("avx512f")))
static void layernorm_row_512(const float *in, const float *res, float *x, long cols, const float *w, const float *b,
                              double eps, float *y) {
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    long j = 0;
    /* pass 1: x = in + res (float), sum in double; z: the normalised rows (x, or in without res) */
    const float *z = res ? x : in;
    for (; j < cols; j += 16) {
        __mmask16 k = cols - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (cols - j)) - 1u);
        __m512 v = _mm512_maskz_loadu_ps(k, in + j);
        if (res) { v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, res + j)); _mm512_mask_storeu_ps(x + j, k, v); }
        s0 = _mm512_add_pd(s0, LO(v));
        s1 = _mm512_add_pd(s1, HI(v));
    }
    double mu = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) / (double)cols;
    __m512d m = _mm512_set1_pd(mu);
    s0 = _mm512_setzero_pd(); s1 = _mm512_setzero_pd();
    /* pass 2: sum of squared deviations (masked-off lanes contribute 0) */
    for (j = 0; j < cols; j += 16) {
        long n = cols - j;
        __mmask16 k = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
        __m512 v = _mm512_maskz_loadu_ps(k, z + j);
        __m512d d0 = _mm512_maskz_sub_pd((__mmask8)k, LO(v), m);
        __m512d d1 = _mm512_maskz_sub_pd((__mmask8)(k >> 8), HI(v), m);
        s0 = _mm512_add_pd(s0, _mm512_mul_pd(d0, d0));
        s1 = _mm512_add_pd(s1, _mm512_mul_pd(d1, d1));
    }
    double var = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) / (double)cols;
    __m512d r = _mm512_set1_pd(1.0 / sqrt(var + eps));
    /* pass 3: affine */
    for (j = 0; j < cols; j += 16) {
        long n = cols - j;
        __mmask16 k = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
        __m512 v = _mm512_maskz_loadu_ps(k, z + j);
        __m512d t0 = _mm512_mul_pd(_mm512_sub_pd(LO(v), m), r), t1 = _mm512_mul_pd(_mm512_sub_pd(HI(v), m), r);
        if (w) {
            __m512 wv = _mm512_maskz_loadu_ps(k, w + j);
            t0 = _mm512_mul_pd(t0, LO(wv)); t1 = _mm512_mul_pd(t1, HI(wv));
        }
        if (b) {
            __m512 bv = _mm512_maskz_loadu_ps(k, b + j);
            t0 = _mm512_add_pd(t0, LO(bv)); t1 = _mm512_add_pd(t1, HI(bv));
        }
        __m512 o = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(_mm512_cvtpd_ps(t0))),
                                                       _mm256_castps_pd(_mm512_cvtpd_ps(t1)), 1));
        _mm512_mask_storeu_ps(y + j, k, o);
    }
}

int dk_layernorm_rows(const float *x, const float *residual, float *sum, long rows, long cols, const float *weight,
                      const float *bias, double eps, float *y) {
    if (!dk_has_avx512()) return 0;
    if (rows < 0 || cols < 1 || (residual && !sum)) return 0;
    for (long i = 0; i < rows; i++)
        layernorm_row_512(x + i * cols, residual ? residual + i * cols : 0, residual ? sum + i * cols : 0, cols,
                          weight, bias, eps, y + i * cols);
    return 1;
}
