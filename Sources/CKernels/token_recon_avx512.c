/* Token reconstruction (Liang et al., NeurIPS 2022; spec token-clustering.md 3), AVX-512F (see CKernels.h):
 * blocks of 16 tokens against all centres by the 4 x 4 distance tile, vector exp, the k-th largest weight by
 * bisection on the float bit patterns (weights are >= 0, so their bits order like the values:
 * count(w >= u) >= k holds exactly up to the k-th largest), L2 norm in double, the sparse product over the
 * kept centres. With GEMM dot products a token first screens the centres (refine_row). Helpers in
 * token_cluster_avx512.h. */
#include "CKernels.h"
#include "token_cluster_avx512.h"

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
    /* W * (W >= tau), tau the k-th largest (ties keep more), as the reference: a weight below tau becomes 0,
     * but a NaN or infinite one becomes NaN (NaN * 0, inf * 0), so a NaN input gives a NaN output */
    if (k >= 1 && k < m) {
        __m512 tau = _mm512_castsi512_ps(_mm512_set1_epi32(kth_largest_bits(row, m, k)));
        const __m512 zero = _mm512_setzero_ps();
        for (j = 0; j < mfull; j += 16) {
            __m512 v = _mm512_loadu_ps(row + j);
            _mm512_storeu_ps(row + j, _mm512_mask_mov_ps(_mm512_mul_ps(v, zero), _mm512_cmp_ps_mask(v, tau, _CMP_GE_OQ), v));
        }
        if (j < m) {
            __m512 v = _mm512_maskz_loadu_ps(tail, row + j);
            _mm512_mask_storeu_ps(row + j, tail, _mm512_mask_mov_ps(_mm512_mul_ps(v, zero), _mm512_cmp_ps_mask(v, tau, _CMP_GE_OQ), v));
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
