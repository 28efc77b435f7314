/* Token clustering (Liang et al., NeurIPS 2022; spec token-clustering.md 2.4), AVX-512F (see CKernels.h):
 * the soft assignment of one home cell's tokens to its candidate window (direct distances by the 4 x 4 tile,
 * max-subtracted softmax), and the centre means (channel blocks outside, neighbouring centres inside, which
 * share most of their tokens). Helpers in token_cluster_avx512.h. */
#include "CKernels.h"
#include "token_cluster_avx512.h"

__attribute__((target("avx512f")))
static void cluster_affinity_512(const float *x, const long *tokenRows, long nt, const float *centres,
                                 const long *centreRows, long nc, long c, float t, float *aff) {
    sqdist_block(x, tokenRows, nt, centres, centreRows, nc, c, aff, nc);
    const __m512 nt_ = SET(-t);
    for (long i = 0; i < nt; i++) {
        float *row = aff + i * nc;
        __m512 mx = SET(-INFINITY);
        long j = 0;
        for (; j + 16 <= nc; j += 16) {
            __m512 l = _mm512_mul_ps(nt_, _mm512_loadu_ps(row + j));
            _mm512_storeu_ps(row + j, l);
            mx = _mm512_max_ps(mx, l);
        }
        __mmask16 tail = (__mmask16)((1u << (nc - j)) - 1u);
        if (j < nc) {
            __m512 l = _mm512_mul_ps(nt_, _mm512_maskz_loadu_ps(tail, row + j));
            _mm512_mask_storeu_ps(row + j, tail, l);
            mx = _mm512_mask_max_ps(mx, tail, mx, l);
        }
        __m512 m = SET(_mm512_reduce_max_ps(mx));
        __m512 sum = _mm512_setzero_ps();
        for (j = 0; j + 16 <= nc; j += 16) {
            __m512 e = tc_exp(_mm512_sub_ps(_mm512_loadu_ps(row + j), m));
            _mm512_storeu_ps(row + j, e);
            sum = _mm512_add_ps(sum, e);
        }
        if (j < nc) {
            __m512 e = tc_exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, row + j), m));
            _mm512_mask_storeu_ps(row + j, tail, e);
            sum = _mm512_mask_add_ps(sum, tail, sum, e);
        }
        __m512 s = SET(_mm512_reduce_add_ps(sum));
        for (j = 0; j + 16 <= nc; j += 16) _mm512_storeu_ps(row + j, _mm512_div_ps(_mm512_loadu_ps(row + j), s));
        if (j < nc) _mm512_mask_storeu_ps(row + j, tail, _mm512_div_ps(_mm512_maskz_loadu_ps(tail, row + j), s));
    }
}

int dk_token_cluster_affinity(const float *x, const long *tokenRows, long nt, const float *centres,
                              const long *centreRows, long nc, long c, float t, float *aff) {
    if (!dk_has_avx512()) return 0;
    if (nt < 0 || nc < 1 || c < 1) return 0;
    cluster_affinity_512(x, tokenRows, nt, centres, centreRows, nc, c, t, aff);
    return 1;
}

/* Weighted means of centres m0 ..< m1 (spec 2.4). Channels in blocks of 64 outside, centres inside: the
 * next centre of a cell row shares most of its tokens with this one, and their 64-channel slices (256 bytes a
 * token) are still in L1. Even and odd pairs of a centre sum into two accumulator sets (eight independent
 * FMA chains), added at the end. */
__attribute__((target("avx512f")))
static void cluster_update_512(const float *x, const long *pairStart, const long *pairRows, const float *aff,
                               const long *pairAff, long m0, long m1, long c, float *centres) {
    for (long k = 0; k < c; k += 64) {
        long left = c - k;
        __mmask16 t0 = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1u);
        __mmask16 t1 = left >= 32 ? 0xFFFF : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1u);
        __mmask16 t2 = left >= 48 ? 0xFFFF : left <= 32 ? 0 : (__mmask16)((1u << (left - 32)) - 1u);
        __mmask16 t3 = left >= 64 ? 0xFFFF : left <= 48 ? 0 : (__mmask16)((1u << (left - 48)) - 1u);
        for (long cm = m0; cm < m1; cm++) {
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            long i = pairStart[cm], e = pairStart[cm + 1];
            if (left >= 64) {
                for (; i + 2 <= e; i += 2) {
                    __m512 v = SET(aff[pairAff[i]]), u = SET(aff[pairAff[i + 1]]);
                    const float *r = x + pairRows[i] + k, *q = x + pairRows[i + 1] + k;
                    a0 = FMA(v, _mm512_loadu_ps(r), a0);       a1 = FMA(v, _mm512_loadu_ps(r + 16), a1);
                    a2 = FMA(v, _mm512_loadu_ps(r + 32), a2);  a3 = FMA(v, _mm512_loadu_ps(r + 48), a3);
                    b0 = FMA(u, _mm512_loadu_ps(q), b0);       b1 = FMA(u, _mm512_loadu_ps(q + 16), b1);
                    b2 = FMA(u, _mm512_loadu_ps(q + 32), b2);  b3 = FMA(u, _mm512_loadu_ps(q + 48), b3);
                }
                if (i < e) {
                    __m512 v = SET(aff[pairAff[i]]);
                    const float *r = x + pairRows[i] + k;
                    a0 = FMA(v, _mm512_loadu_ps(r), a0);       a1 = FMA(v, _mm512_loadu_ps(r + 16), a1);
                    a2 = FMA(v, _mm512_loadu_ps(r + 32), a2);  a3 = FMA(v, _mm512_loadu_ps(r + 48), a3);
                }
            } else {
                for (; i < e; i++) {
                    __m512 v = SET(aff[pairAff[i]]);
                    const float *r = x + pairRows[i] + k;
                    a0 = FMA(v, _mm512_maskz_loadu_ps(t0, r), a0);       a1 = FMA(v, _mm512_maskz_loadu_ps(t1, r + 16), a1);
                    a2 = FMA(v, _mm512_maskz_loadu_ps(t2, r + 32), a2);  a3 = FMA(v, _mm512_maskz_loadu_ps(t3, r + 48), a3);
                }
            }
            float *o = centres + cm * c + k;
            _mm512_mask_storeu_ps(o, t0, _mm512_add_ps(a0, b0));       _mm512_mask_storeu_ps(o + 16, t1, _mm512_add_ps(a1, b1));
            _mm512_mask_storeu_ps(o + 32, t2, _mm512_add_ps(a2, b2));  _mm512_mask_storeu_ps(o + 48, t3, _mm512_add_ps(a3, b3));
        }
    }
    /* Reference: numerator / clamp(denominator, min = 1e-16); a dead centre becomes the zero vector. */
    for (long cm = m0; cm < m1; cm++) {
        double den = 0;
        for (long i = pairStart[cm]; i < pairStart[cm + 1]; i++) den += (double)aff[pairAff[i]];
        float dv = (float)den;
        __m512 d = SET(dv > 1e-16f ? dv : 1e-16f);
        float *centre = centres + cm * c;
        long k = 0;
        for (; k + 16 <= c; k += 16) _mm512_storeu_ps(centre + k, _mm512_div_ps(_mm512_loadu_ps(centre + k), d));
        if (k < c) {
            __mmask16 t = (__mmask16)((1u << (c - k)) - 1u);
            _mm512_mask_storeu_ps(centre + k, t, _mm512_div_ps(_mm512_maskz_loadu_ps(t, centre + k), d));
        }
    }
}

int dk_token_cluster_update(const float *x, const long *pairStart, const long *pairRows, const float *aff,
                            const long *pairAff, long m0, long m1, long c, float *centres) {
    if (!dk_has_avx512()) return 0;
    if (m0 < 0 || m1 < m0 || c < 1) return 0;
    cluster_update_512(x, pairStart, pairRows, aff, pairAff, m0, m1, c, centres);
    return 1;
}
