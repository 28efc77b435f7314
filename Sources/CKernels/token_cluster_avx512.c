/* Token clustering and token reconstruction (Liang et al., NeurIPS 2022; spec token-clustering.md
 * sections 2-3), AVX-512F (see CKernels.h).
 *  - squared distances sum_k (a_k - b_k)^2 directly (not the |a|^2 + |b|^2 - 2ab expansion; spec 5.9),
 *    by a 4 x 4 register tile of rows (eight loads, sixteen subtractions and sixteen FMAs per 16
 *    channels), each sum in 16 float32 lanes reduced at the end;
 *  - exp of non-positive arguments with gradual underflow (denormal results, 0 below about -103.97, as
 *    float32 expf; the dead-centre rule of spec 2.4 depends on it);
 *  - weighted sums of rows with 8 register accumulators per 128 channels (the centre update runs channel
 *    blocks outside and neighbouring centres inside, which share most of their tokens);
 *  - the reconstruction's k-th largest weight by bisection on the float bit patterns (weights are >= 0,
 *    so their bits order like the values): count(w >= u) >= k holds exactly up to the k-th largest. */
#include "CKernels.h"
#include "avx512_math.h"
#include <immintrin.h>
#include <math.h>

#define SET _mm512_set1_ps
#define FMA _mm512_fmadd_ps

/* e^x, 16 lanes, meant for x <= 0: Cephes' reduction and polynomial (as dk_exp512_fma) scaled by 2^n with
 * vscalefps, which rounds once into the denormal range; below -120 the result is 0. NaN stays NaN. */
__attribute__((target("avx512f")))
static inline __m512 tc_exp(__m512 x) {
    __m512 xc = _mm512_min_ps(_mm512_max_ps(x, SET(-120.0f)), SET(88.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, SET(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, SET(0.693359375f), xc);
    r = _mm512_fnmadd_ps(n, SET(-2.12194440e-4f), r);
    __m512 p = SET(1.9875691500e-4f);
    p = FMA(p, r, SET(1.3981999507e-3f));
    p = FMA(p, r, SET(8.3334519073e-3f));
    p = FMA(p, r, SET(4.1665795894e-2f));
    p = FMA(p, r, SET(1.6666665459e-1f));
    p = FMA(p, r, SET(5.0000001201e-1f));
    p = FMA(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, SET(1.0f)));
    __m512 y = _mm512_scalef_ps(p, n);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), y, x);
}

#define TC_ACC(acc, u, v) { __m512 d_ = _mm512_sub_ps(u, v); acc = FMA(d_, d_, acc); }

/* out[i * 4 + j] = sum_k (a[i][k] - b[j][k])^2 for four rows of A and four rows of B, c channels. */
__attribute__((target("avx512f")))
static void sqdist_4x4(const float *const *a, const float *const *b, long c, float *out) {
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
static void sqdist_block(const float *a, const long *aRows, long na, const float *b, const long *bRows, long nb,
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
static void weighted_rows(const float *x, const long *rows, const float *w, long count, long c, float *out) {
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

/* ------------------------------------------------------------------ clustering */

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

/* ------------------------------------------------------------------ reconstruction */

#define TR_BLOCK 16

long dk_token_reconstruct_scratch(long m) {
    /* longs 2m + TR_BLOCK, floats TR_BLOCK m + 2m, ints 2(m + 16), floats m + 16 */
    return 4 * m + 2 * TR_BLOCK + (long)TR_BLOCK * m + 2 * m + 2 * (m + 16) + (m + 16) + 64;
}

/* Bit pattern of the k-th largest of w[0..m) (values >= 0; 1 <= k <= m), duplicates counted. */
__attribute__((target("avx512f")))
static int kth_largest_bits(const float *w, long m, long k) {
    __m512i mx = _mm512_setzero_si512();
    long j = 0;
    for (; j + 16 <= m; j += 16) mx = _mm512_max_epi32(mx, _mm512_loadu_si512((const void *)(w + j)));
    __mmask16 tail = (__mmask16)((1u << (m - j)) - 1u);
    if (j < m) mx = _mm512_max_epi32(mx, _mm512_maskz_loadu_epi32(tail, w + j));
    /* Invariant: count(bits >= lo) >= k, count(bits >= hi) < k. */
    long lo = 0, hi = (long)_mm512_reduce_max_epi32(mx) + 1;
    while (hi - lo > 1) {
        long mid = lo + (hi - lo) / 2;
        __m512i u = _mm512_set1_epi32((int)mid);
        long cnt = 0;
        for (j = 0; j + 16 <= m; j += 16)
            cnt += __builtin_popcount(_mm512_cmpge_epi32_mask(_mm512_loadu_si512((const void *)(w + j)), u));
        if (j < m) cnt += __builtin_popcount(_mm512_mask_cmpge_epi32_mask(tail, _mm512_maskz_loadu_epi32(tail, w + j), u));
        if (cnt >= k) lo = mid; else hi = mid;
    }
    return (int)lo;
}

/* One token: row[0..m) holds its squared distances on entry and its normalised weights on exit; y = sum of
 * the kept weights times the rows of x. `keptRows` / `keptW` hold m entries each. */
__attribute__((target("avx512f")))
static void recon_row(float *row, long m, long k, float t, int stabilized, const float *x, long c2, float *y,
                      long *keptRows, float *keptW) {
    long j;
    __mmask16 tail = (__mmask16)((1u << (m % 16)) - 1u);
    long mfull = m - m % 16;
    float shift = 0;
    if (stabilized) {
        __m512 mn = SET(INFINITY);
        for (j = 0; j < mfull; j += 16) mn = _mm512_min_ps(mn, _mm512_loadu_ps(row + j));
        if (j < m) mn = _mm512_mask_min_ps(mn, tail, mn, _mm512_maskz_loadu_ps(tail, row + j));
        float dmin = _mm512_reduce_min_ps(mn);
        if (isfinite(dmin)) shift = dmin;
    }
    /* W = exp(-t * (D - shift)) */
    const __m512 nt_ = SET(-t), sh = SET(shift);
    for (j = 0; j < mfull; j += 16) {
        __m512 e = tc_exp(_mm512_mul_ps(nt_, _mm512_sub_ps(_mm512_loadu_ps(row + j), sh)));
        _mm512_storeu_ps(row + j, e);
    }
    if (j < m) _mm512_mask_storeu_ps(row + j, tail, tc_exp(_mm512_mul_ps(nt_, _mm512_sub_ps(_mm512_maskz_loadu_ps(tail, row + j), sh))));
    /* keep W >= tau, the k-th largest (ties keep more); a NaN is never kept */
    if (k >= 1 && k < m) {
        __m512 tau = _mm512_castsi512_ps(_mm512_set1_epi32(kth_largest_bits(row, m, k)));
        for (j = 0; j < mfull; j += 16) {
            __m512 v = _mm512_loadu_ps(row + j);
            _mm512_storeu_ps(row + j, _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, tau, _CMP_GE_OQ), v));
        }
        if (j < m) {
            __m512 v = _mm512_maskz_loadu_ps(tail, row + j);
            _mm512_mask_storeu_ps(row + j, tail, _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, tau, _CMP_GE_OQ), v));
        }
    }
    /* L2 norm in double, clamped at 1e-12 */
    __m512d ss = _mm512_setzero_pd();
    for (j = 0; j < m; j += 16) {
        __m512 v = j < mfull ? _mm512_loadu_ps(row + j) : _mm512_maskz_loadu_ps(tail, row + j);
        __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
        __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
        ss = _mm512_fmadd_pd(lo, lo, ss);
        ss = _mm512_fmadd_pd(hi, hi, ss);
    }
    float norm = (float)sqrt(_mm512_reduce_add_pd(ss));
    if (!(norm > 1e-12f)) norm = norm != norm ? norm : 1e-12f;
    const __m512 nv = SET(norm);
    long kept = 0;
    for (j = 0; j < m; j += 16) {
        __mmask16 mk = j < mfull ? (__mmask16)0xFFFF : tail;
        __m512 v = _mm512_div_ps(_mm512_maskz_loadu_ps(mk, row + j), nv);
        _mm512_mask_storeu_ps(row + j, mk, v);
        __mmask16 nz = _mm512_mask_cmp_ps_mask(mk, v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
        while (nz) {
            int b = __builtin_ctz(nz);
            nz &= (__mmask16)(nz - 1);
            keptRows[kept] = (j + b) * c2;
            keptW[kept] = row[j + b];
            kept++;
        }
    }
    weighted_rows(x, keptRows, keptW, kept, c2, y);
}

/* ||a||^2 over c floats, 16 lanes reduced at the end. */
__attribute__((target("avx512f")))
static float sqnorm(const float *a, long c) {
    __m512 acc = _mm512_setzero_ps();
    long k = 0;
    for (; k + 16 <= c; k += 16) { __m512 v = _mm512_loadu_ps(a + k); acc = FMA(v, v, acc); }
    if (k < c) { __m512 v = _mm512_maskz_loadu_ps((__mmask16)((1u << (c - k)) - 1u), a + k); acc = FMA(v, v, acc); }
    return _mm512_reduce_add_ps(acc);
}

/* Order-preserving int32 key of a float (NaN aside): negative values get their magnitude bits flipped. */
__attribute__((target("avx512f")))
static inline __m512i float_key(__m512 v) {
    __m512i b = _mm512_castps_si512(v);
    return _mm512_xor_si512(b, _mm512_and_si512(_mm512_srai_epi32(b, 31), _mm512_set1_epi32(0x7FFFFFFF)));
}

/* The k-th smallest (1 <= k <= m) of the keys of v[0..m), duplicates counted; keys are written to `keys`
 * (m + 16 ints) and may be reordered there. For k <= 32 and m >= 32 the two smallest keys per lane give an
 * upper bound with at least 32 keys at or below it, and only those keys enter the bisection. */
__attribute__((target("avx512f")))
static int kth_smallest_key(const float *v, long m, long k, int *keys) {
    const __m512i big = _mm512_set1_epi32(0x7FFFFFFF);
    __m512i m1 = big, m2 = big, mn = big;
    long j = 0;
    for (; j < m; j += 16) {
        __mmask16 mk = m - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (m - j)) - 1u);
        __m512i kv = _mm512_mask_mov_epi32(big, mk, float_key(_mm512_maskz_loadu_ps(mk, v + j)));
        _mm512_storeu_si512((void *)(keys + j), kv);
        m2 = _mm512_min_epi32(m2, _mm512_max_epi32(m1, kv));
        m1 = _mm512_min_epi32(m1, kv);
    }
    mn = m1;
    long lo = (long)_mm512_reduce_min_epi32(mn) - 1, hi;   /* count(<= lo) < k, count(<= hi) >= k */
    long cnt = m;
    if (k <= 32 && m >= 32) {
        hi = (long)_mm512_reduce_max_epi32(m2);
        __m512i u = _mm512_set1_epi32((int)hi);
        long w = 0;
        for (j = 0; j < m; j += 16) {
            __mmask16 mk = m - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (m - j)) - 1u);
            __m512i kv = _mm512_loadu_si512((const void *)(keys + j));
            __mmask16 le = _mm512_mask_cmple_epi32_mask(mk, kv, u);
            _mm512_mask_compressstoreu_epi32(keys + w, le, kv);
            w += __builtin_popcount(le);
        }
        cnt = w;
    } else {
        hi = 0x7FFFFFFF;
    }
    for (j = cnt; j < ((cnt + 15) & ~15L); j++) keys[j] = 0x7FFFFFFF;
    long cntPadded = (cnt + 15) & ~15L;
    while (hi - lo > 1) {
        long mid = lo + (hi - lo) / 2;
        __m512i u = _mm512_set1_epi32((int)mid);
        long c = 0;
        for (j = 0; j < cntPadded; j += 16)
            c += __builtin_popcount(_mm512_cmple_epi32_mask(_mm512_loadu_si512((const void *)(keys + j)), u));
        if (c >= k) hi = mid; else lo = mid;
    }
    return (int)hi;
}

/* out[j] = ||a - b_j||^2 for one row a and up to four rows b (as one row of sqdist_4x4: same operations in
 * the same order, so the same bits). */
__attribute__((target("avx512f")))
static void sqdist_1x4(const float *a, const float *const *b, long c, float *out) {
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

/* Scratch of one token's screened reconstruction (see refine_row). */
typedef struct {
    float *approx;   /* m + 16: approximate distances, then the candidates' exact distances / weights */
    int *keys;       /* m + 16 */
    int *cand;       /* m + 16: candidate centre indices */
    long *keptRows;  /* m */
    float *keptW;    /* m */
} refine_scratch;

/* One token by screening (1 <= k < m): approximate distances D~_j = |f|^2 + |s_j|^2 - 2 f.s_j from `dots`
 * (f.s_j, any float32 GEMM) and `sn` (|s_j|^2). With delta a bound on |D~ - D| for the direct distances D,
 * every centre of rank <= k by D, and every centre whose weight could tie with the k-th after rounding, has
 * D~ <= D~_(k) + 3 delta + eps; only those candidates get their direct distance (the same bits as the
 * unscreened path), their weights, the threshold and the product. All other weights are below the threshold,
 * hence 0 as in the unscreened path. Returns 0 (nothing written) when the screen does not apply: non-finite
 * values, too many candidates, or a k-th weight below FLT_MIN (denormal weights lose the order). */
__attribute__((target("avx512f")))
static int refine_row(const float *f, const float *dots, const float *sn, float smax, const float *centres, long m,
                      long c, long k, float t, int stabilized, const float *x, long c2, float *y, float *wrow,
                      refine_scratch *sc) {
    float fn = sqnorm(f, c);
    if (!isfinite(fn) || !isfinite(smax)) return 0;
    const __m512 two = SET(2.0f), fnv = SET(fn);
    long j;
    for (j = 0; j < m; j += 16) {
        __mmask16 mk = m - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (m - j)) - 1u);
        __m512 d = _mm512_fnmadd_ps(two, _mm512_maskz_loadu_ps(mk, dots + j), _mm512_add_ps(fnv, _mm512_maskz_loadu_ps(mk, sn + j)));
        _mm512_mask_storeu_ps(sc->approx + j, mk, d);
    }
    int kk = kth_smallest_key(sc->approx, m, k, sc->keys);
    int kb = kk < 0 ? (int)((unsigned)kk ^ 0x7FFFFFFFu) : kk;
    float dk;
    __builtin_memcpy(&dk, &kb, 4);
    float r = sqrtf(fn) + smax;
    float delta = (float)(c + 16) * 0x1p-22f * r * r;
    /* faithful mode: a k-th weight that surely underflows to a denormal or 0 takes the unscreened path anyway */
    if (!stabilized && t * (dk - 3.0f * delta) > 86.0f) return 0;
    float thr = dk + 3.0f * delta;
    thr += 0x1p-18f * (1.0f / t + 2.0f * fabsf(thr));
    if (!isfinite(thr)) return 0;
    const __m512 tv = SET(thr);
    long nc = 0;
    for (j = 0; j < m; j += 16) {
        __mmask16 mk = m - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (m - j)) - 1u);
        __mmask16 le = _mm512_mask_cmp_ps_mask(mk, _mm512_maskz_loadu_ps(mk, sc->approx + j), tv, _CMP_LE_OQ);
        __m512i idx = _mm512_add_epi32(_mm512_set1_epi32((int)j), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
        _mm512_mask_compressstoreu_epi32(sc->cand + nc, le, idx);
        nc += __builtin_popcount(le);
    }
    if (nc < k || 4 * nc > m) return 0;
    /* direct distances of the candidates, in approx[0 .. nc) */
    float *d = sc->approx, out[4];
    for (long q = 0; q < nc; q += 4) {
        long nq = nc - q < 4 ? nc - q : 4;
        const float *bp[4];
        for (int u = 0; u < 4; u++) bp[u] = centres + (long)sc->cand[q + (u < nq ? u : nq - 1)] * c;
        sqdist_1x4(f, bp, c, out);
        for (long u = 0; u < nq; u++) d[q + u] = out[u];
    }
    float shift = 0;
    if (stabilized) {
        float dmin = INFINITY;
        for (long q = 0; q < nc; q++) if (d[q] < dmin) dmin = d[q];
        if (isfinite(dmin)) shift = dmin;
    }
    const __m512 nt_ = SET(-t), sh = SET(shift);
    for (j = 0; j < nc; j += 16) {
        __mmask16 mk = nc - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (nc - j)) - 1u);
        _mm512_mask_storeu_ps(d + j, mk, tc_exp(_mm512_mul_ps(nt_, _mm512_sub_ps(_mm512_maskz_loadu_ps(mk, d + j), sh))));
    }
    int tb = kth_largest_bits(d, nc, k);
    float tau;
    __builtin_memcpy(&tau, &tb, 4);
    if (!(tau >= 0x1p-126f)) return 0;
    /* keep W >= tau, L2 norm in double, normalise */
    double ss = 0;
    for (long q = 0; q < nc; q++) { if (!(d[q] >= tau)) d[q] = 0; ss += (double)d[q] * (double)d[q]; }
    float norm = (float)sqrt(ss);
    if (!(norm > 1e-12f)) norm = norm != norm ? norm : 1e-12f;
    long kept = 0;
    if (wrow) for (j = 0; j < m; j++) wrow[j] = 0;
    for (long q = 0; q < nc; q++) {
        float w = d[q] / norm;
        if (wrow) wrow[sc->cand[q]] = w;
        if (w != 0) { sc->keptRows[kept] = (long)sc->cand[q] * c2; sc->keptW[kept] = w; kept++; }
    }
    weighted_rows(x, sc->keptRows, sc->keptW, kept, c2, y);
    return 1;
}

__attribute__((target("avx512f")))
static void reconstruct_512(const float *feat, long n0, long n1, const float *centres, long m, long c, const float *x,
                            long c2, long k, float t, int stabilized, const float *dots, float *y, float *weights,
                            float *scratch) {
    long *keptRows = (long *)(void *)scratch;                /* m */
    long *centreRows = keptRows + m;                         /* m */
    long *tokenRows = centreRows + m;                        /* TR_BLOCK */
    float *dist = (float *)(void *)(tokenRows + TR_BLOCK);   /* TR_BLOCK x m */
    float *keptW = dist + (long)TR_BLOCK * m;                /* m */
    float *sn = keptW + m;                                   /* m */
    int *keys = (int *)(void *)(sn + m);                     /* m + 16 */
    int *cand = keys + m + 16;                               /* m + 16 */
    float *approx = (float *)(void *)(cand + m + 16);        /* m + 16 */
    refine_scratch rs = { approx, keys, cand, keptRows, keptW };
    int screen = dots != 0 && k >= 1 && k < m;
    float smax = 0;
    if (screen) {
        float mx = 0;
        for (long j = 0; j < m; j++) { sn[j] = sqnorm(centres + j * c, c); mx = sn[j] > mx ? sn[j] : mx; }
        smax = sqrtf(mx);
    }
    for (long j = 0; j < m; j++) centreRows[j] = j * c;
    for (long b0 = n0; b0 < n1; b0 += TR_BLOCK) {
        long nb = n1 - b0 < TR_BLOCK ? n1 - b0 : TR_BLOCK, left = 0;
        for (long i = 0; i < nb; i++) {
            long n = b0 + i;
            if (screen && refine_row(feat + n * c, dots + n * m, sn, smax, centres, m, c, k, t, stabilized, x, c2,
                                     y + n * c2, weights ? weights + n * m : 0, &rs)) continue;
            tokenRows[left++] = n * c;
        }
        if (left == 0) continue;
        sqdist_block(feat, tokenRows, left, centres, centreRows, m, c, dist, m);
        for (long i = 0; i < left; i++) {
            long n = tokenRows[i] / c;
            float *row = dist + i * m;
            recon_row(row, m, k, t, stabilized, x, c2, y + n * c2, keptRows, keptW);
            if (weights) { float *wr = weights + n * m; for (long j = 0; j < m; j++) wr[j] = row[j]; }
        }
    }
}

int dk_token_reconstruct(const float *feat, long n0, long n1, const float *centres, long m, long c,
                         const float *x, long c2, long k, float t, int stabilized, const float *dots,
                         float *y, float *weights, float *scratch) {
    if (!dk_has_avx512()) return 0;
    if (n0 < 0 || n1 < n0 || m < 1 || c < 1 || c2 < 1 || k == 0 || k > m) return 0;
    reconstruct_512(feat, n0, n1, centres, m, c, x, c2, k, t, stabilized, dots, y, weights, scratch);
    return 1;
}
