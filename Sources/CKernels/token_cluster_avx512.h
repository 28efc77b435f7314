/* Shared AVX-512F helpers of the token clustering / reconstruction kernels (internal header):
 *  - squared distances sum_k (a_k - b_k)^2 directly (not the |a|^2 + |b|^2 - 2ab expansion; spec
 *    token-clustering.md 5.9), by a 4 x 4 register tile of rows (eight loads, sixteen subtractions and
 *    sixteen FMAs per 16 channels), each sum in 16 float32 lanes reduced at the end; a 1 x 4 tile with the
 *    same operations in the same order (same bits);
 *  - exp of non-positive arguments with gradual underflow (denormal results, 0 below about -103.97, as
 *    float32 expf; the dead-centre rule of spec 2.4 depends on it);
 *  - weighted sums of rows with 8 register accumulators per 128 channels. */
#ifndef DENSEKIT_CKERNELS_TOKEN_CLUSTER_AVX512_H
#define DENSEKIT_CKERNELS_TOKEN_CLUSTER_AVX512_H
#include <immintrin.h>
#include "avx512_math.h"
#include <math.h>

#define SET _mm512_set1_ps
#define FMA _mm512_fmadd_ps

/* e^x for x <= 0 keeping denormal results (avx512_math.h). */
#define tc_exp dk_exp512_fma_denormal

#define TC_ACC(acc, u, v) { __m512 d_ = _mm512_sub_ps(u, v); acc = FMA(d_, d_, acc); }

/* out[i * 4 + j] = sum_k (a[i][k] - b[j][k])^2 for four rows of A and four rows of B, c channels. */
__attribute__((target("avx512f")))
static inline void sqdist_4x4(const float *const *a, const float *const *b, long c, float *out) {
    __m512 s00 = _mm512_setzero_ps(), s01 = s00, s02 = s00, s03 = s00, s10 = s00, s11 = s00, s12 = s00, s13 = s00;
    __m512 s20 = s00, s21 = s00, s22 = s00, s23 = s00, s30 = s00, s31 = s00, s32 = s00, s33 = s00;
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *b0 = b[0], *b1 = b[1], *b2 = b[2], *b3 = b[3];
    long k = 0;
    for (; k + 16 <= c; k += 16) {
        __m512 y0 = _mm512_loadu_ps(b0 + k), y1 = _mm512_loadu_ps(b1 + k), y2 = _mm512_loadu_ps(b2 + k), y3 = _mm512_loadu_ps(b3 + k);
        __m512 x = _mm512_loadu_ps(a0 + k);
        TC_ACC(s00, x, y0) TC_ACC(s01, x, y1) TC_ACC(s02, x, y2) TC_ACC(s03, x, y3)
        x = _mm512_loadu_ps(a1 + k);
        TC_ACC(s10, x, y0) TC_ACC(s11, x, y1) TC_ACC(s12, x, y2) TC_ACC(s13, x, y3)
        x = _mm512_loadu_ps(a2 + k);
        TC_ACC(s20, x, y0) TC_ACC(s21, x, y1) TC_ACC(s22, x, y2) TC_ACC(s23, x, y3)
        x = _mm512_loadu_ps(a3 + k);
        TC_ACC(s30, x, y0) TC_ACC(s31, x, y1) TC_ACC(s32, x, y2) TC_ACC(s33, x, y3)
    }
    if (k < c) {
        __mmask16 t = (__mmask16)((1u << (c - k)) - 1u);
        __m512 y0 = _mm512_maskz_loadu_ps(t, b0 + k), y1 = _mm512_maskz_loadu_ps(t, b1 + k);
        __m512 y2 = _mm512_maskz_loadu_ps(t, b2 + k), y3 = _mm512_maskz_loadu_ps(t, b3 + k);
        __m512 x = _mm512_maskz_loadu_ps(t, a0 + k);
        TC_ACC(s00, x, y0) TC_ACC(s01, x, y1) TC_ACC(s02, x, y2) TC_ACC(s03, x, y3)
        x = _mm512_maskz_loadu_ps(t, a1 + k);
        TC_ACC(s10, x, y0) TC_ACC(s11, x, y1) TC_ACC(s12, x, y2) TC_ACC(s13, x, y3)
        x = _mm512_maskz_loadu_ps(t, a2 + k);
        TC_ACC(s20, x, y0) TC_ACC(s21, x, y1) TC_ACC(s22, x, y2) TC_ACC(s23, x, y3)
        x = _mm512_maskz_loadu_ps(t, a3 + k);
        TC_ACC(s30, x, y0) TC_ACC(s31, x, y1) TC_ACC(s32, x, y2) TC_ACC(s33, x, y3)
    }
    out[0] = _mm512_reduce_add_ps(s00); out[1] = _mm512_reduce_add_ps(s01);
    out[2] = _mm512_reduce_add_ps(s02); out[3] = _mm512_reduce_add_ps(s03);
    out[4] = _mm512_reduce_add_ps(s10); out[5] = _mm512_reduce_add_ps(s11);
    out[6] = _mm512_reduce_add_ps(s12); out[7] = _mm512_reduce_add_ps(s13);
    out[8] = _mm512_reduce_add_ps(s20); out[9] = _mm512_reduce_add_ps(s21);
    out[10] = _mm512_reduce_add_ps(s22); out[11] = _mm512_reduce_add_ps(s23);
    out[12] = _mm512_reduce_add_ps(s30); out[13] = _mm512_reduce_add_ps(s31);
    out[14] = _mm512_reduce_add_ps(s32); out[15] = _mm512_reduce_add_ps(s33);
}

/* d[i * ldd + j] = ||a_i - b_j||^2, a_i = a + aRows[i], b_j = b + bRows[j] (c floats each). Quads of B rows
 * outside, quads of A rows inside (a B quad is reused from L1 by every A quad); partial quads repeat a row
 * and drop its results. */
__attribute__((target("avx512f")))
static inline void sqdist_block(const float *a, const long *aRows, long na, const float *b, const long *bRows, long nb,
                         long c, float *d, long ldd) {
    float out[16];
    for (long j0 = 0; j0 < nb; j0 += 4) {
        long nj = nb - j0 < 4 ? nb - j0 : 4;
        const float *bp[4];
        for (int q = 0; q < 4; q++) bp[q] = b + bRows[j0 + (q < nj ? q : nj - 1)];
        for (long i0 = 0; i0 < na; i0 += 4) {
            long ni = na - i0 < 4 ? na - i0 : 4;
            const float *ap[4];
            for (int q = 0; q < 4; q++) ap[q] = a + aRows[i0 + (q < ni ? q : ni - 1)];
            sqdist_4x4(ap, bp, c, out);
            for (long i = 0; i < ni; i++)
                for (long j = 0; j < nj; j++) d[(i0 + i) * ldd + j0 + j] = out[i * 4 + j];
        }
    }
}

/* out[k] = sum over i with w[i] != 0 of w[i] * x[rows[i] + k], k < c; each channel sums in list order. */
__attribute__((target("avx512f")))
static inline void weighted_rows(const float *x, const long *rows, const float *w, long count, long c, float *out) {
    long k = 0;
    for (; k + 128 <= c; k += 128) {
        __m512 o0 = _mm512_setzero_ps(), o1 = o0, o2 = o0, o3 = o0, o4 = o0, o5 = o0, o6 = o0, o7 = o0;
        for (long i = 0; i < count; i++) {
            if (w[i] == 0) continue;
            __m512 v = SET(w[i]);
            const float *r = x + rows[i] + k;
            o0 = FMA(v, _mm512_loadu_ps(r), o0);       o1 = FMA(v, _mm512_loadu_ps(r + 16), o1);
            o2 = FMA(v, _mm512_loadu_ps(r + 32), o2);  o3 = FMA(v, _mm512_loadu_ps(r + 48), o3);
            o4 = FMA(v, _mm512_loadu_ps(r + 64), o4);  o5 = FMA(v, _mm512_loadu_ps(r + 80), o5);
            o6 = FMA(v, _mm512_loadu_ps(r + 96), o6);  o7 = FMA(v, _mm512_loadu_ps(r + 112), o7);
        }
        float *o = out + k;
        _mm512_storeu_ps(o, o0);       _mm512_storeu_ps(o + 16, o1);  _mm512_storeu_ps(o + 32, o2);
        _mm512_storeu_ps(o + 48, o3);  _mm512_storeu_ps(o + 64, o4);  _mm512_storeu_ps(o + 80, o5);
        _mm512_storeu_ps(o + 96, o6);  _mm512_storeu_ps(o + 112, o7);
    }
    for (; k < c; k += 16) {
        __mmask16 t = c - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (c - k)) - 1u);
        __m512 o0 = _mm512_setzero_ps();
        for (long i = 0; i < count; i++) {
            if (w[i] == 0) continue;
            o0 = FMA(SET(w[i]), _mm512_maskz_loadu_ps(t, x + rows[i] + k), o0);
        }
        _mm512_mask_storeu_ps(out + k, t, o0);
    }
}

/* out[j] = ||a - b_j||^2 for one row a and up to four rows b (as one row of sqdist_4x4: same operations in
 * the same order, so the same bits). */
__attribute__((target("avx512f")))
static inline void sqdist_1x4(const float *a, const float *const *b, long c, float *out) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    const float *b0 = b[0], *b1 = b[1], *b2 = b[2], *b3 = b[3];
    long k = 0;
    for (; k + 16 <= c; k += 16) {
        __m512 y0 = _mm512_loadu_ps(b0 + k), y1 = _mm512_loadu_ps(b1 + k), y2 = _mm512_loadu_ps(b2 + k), y3 = _mm512_loadu_ps(b3 + k);
        __m512 x = _mm512_loadu_ps(a + k);
        TC_ACC(s0, x, y0) TC_ACC(s1, x, y1) TC_ACC(s2, x, y2) TC_ACC(s3, x, y3)
    }
    if (k < c) {
        __mmask16 t = (__mmask16)((1u << (c - k)) - 1u);
        __m512 y0 = _mm512_maskz_loadu_ps(t, b0 + k), y1 = _mm512_maskz_loadu_ps(t, b1 + k);
        __m512 y2 = _mm512_maskz_loadu_ps(t, b2 + k), y3 = _mm512_maskz_loadu_ps(t, b3 + k);
        __m512 x = _mm512_maskz_loadu_ps(t, a + k);
        TC_ACC(s0, x, y0) TC_ACC(s1, x, y1) TC_ACC(s2, x, y2) TC_ACC(s3, x, y3)
    }
    out[0] = _mm512_reduce_add_ps(s0); out[1] = _mm512_reduce_add_ps(s1);
    out[2] = _mm512_reduce_add_ps(s2); out[3] = _mm512_reduce_add_ps(s3);
}

#endif
