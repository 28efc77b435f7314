/* Attention over keys/values read in place, AVX-512F (see CKernels.h). The keys are copied once, transposed
 * and zero-padded, to KT[dq][Lp] (Lp = L rounded up to 16), and the values to a contiguous V[L][dv]: per call
 * (dk_attention_rows), or once per head for several calls on blocks of queries (dk_attention_pack, then
 * dk_attention_packed). Per block of up to QB = 24 queries:
 *  - scores S[i][u] = scale*q_i . k_u by a 6-query x 64-key register tile (24 accumulators; per d six
 *    broadcast query elements and four key vectors for 24 FMAs);
 *  - softmax along u per query (max, exp by dk_exp512_fma, sum), the padding keys excluded;
 *  - out_i = (sum_u S[i][u] v_u) / sum_i by a 6-query x 64-dim tile (per key: four value vectors, six
 *    broadcast weights, 24 FMAs), keys in chunks of VCHUNK (outer loop; the tiles' sums are kept in
 *    A[QB][dv] between chunks, so a chunk of V is read from L1 by every query group), the division last.
 *    Each sum still runs over u in increasing order: the same bits as one pass over all keys. */
#include "CKernels.h"
#include "avx512_math.h"
#include <immintrin.h>
#include <math.h>

#define SET _mm512_set1_ps
#define FMA _mm512_fmadd_ps
/* queries per register tile (QR x 64 keys or dims: 4*QR accumulators) and per block (scores kept as S[QB][Lp]) */
#define QR 6
#define QB 24
/* keys per chunk of the value product: VCHUNK x dv floats of V (32 KB at dv 64) stay in L1 */
#define VCHUNK 128

static long round16(long n) { return (n + 15) & ~15L; }

long dk_attention_packed_floats(long L, int dq, int dv);
long dk_attention_query_scratch(long L, int dq, int dv);

long dk_attention_scratch(long L, int dq, int dv) {
    return dk_attention_packed_floats(L, dq, dv) + dk_attention_query_scratch(L, dq, dv);
}

/* Scores of queries [i0, i0 + ni) (ni <= QR) against keys [u0, u1) (a multiple of 16 wide): S[i][u], i
 * relative to the block. */
__attribute__((target("avx512f")))
static void scores_tile(const float *Q, int dq, const float *KT, long lp, float *S, int i0, int ni, long u0, long u1) {
    const float *q[QR];
    for (int i = 0; i < QR; i++) q[i] = Q + (long)(i0 + (i < ni ? i : ni - 1)) * dq;
    long u = u0;
    for (; u + 64 <= u1; u += 64) {
        __m512 a[QR][4];
#pragma GCC unroll 8
        for (int i = 0; i < QR; i++) { a[i][0] = a[i][1] = a[i][2] = a[i][3] = _mm512_setzero_ps(); }
        const float *kt = KT + u;
        for (int d = 0; d < dq; d++, kt += lp) {
            __m512 k0 = _mm512_loadu_ps(kt), k1 = _mm512_loadu_ps(kt + 16);
            __m512 k2 = _mm512_loadu_ps(kt + 32), k3 = _mm512_loadu_ps(kt + 48);
#pragma GCC unroll 8
            for (int i = 0; i < QR; i++) {
                __m512 b = SET(q[i][d]);
                a[i][0] = FMA(b, k0, a[i][0]); a[i][1] = FMA(b, k1, a[i][1]); a[i][2] = FMA(b, k2, a[i][2]); a[i][3] = FMA(b, k3, a[i][3]);
            }
        }
        for (int i = 0; i < ni; i++) {
            float *s = S + (long)(i0 + i) * lp + u;
            _mm512_storeu_ps(s, a[i][0]); _mm512_storeu_ps(s + 16, a[i][1]); _mm512_storeu_ps(s + 32, a[i][2]); _mm512_storeu_ps(s + 48, a[i][3]);
        }
    }
    for (; u < u1; u += 16) {
        __m512 a[QR];
#pragma GCC unroll 8
        for (int i = 0; i < QR; i++) a[i] = _mm512_setzero_ps();
        const float *kt = KT + u;
        for (int d = 0; d < dq; d++, kt += lp) {
            __m512 k = _mm512_loadu_ps(kt);
#pragma GCC unroll 8
            for (int i = 0; i < QR; i++) a[i] = FMA(SET(q[i][d]), k, a[i]);
        }
        for (int i = 0; i < ni; i++) _mm512_storeu_ps(S + (long)(i0 + i) * lp + u, a[i]);
    }
}

/* In place: S[i][0..L) = exp(S - max), the padding [L, lp) = 0; returns 1 / sum. */
__attribute__((target("avx512f")))
static float softmax_row(float *s, long L, long lp) {
    __m512 mx = SET(-INFINITY);
    long u = 0;
    for (; u + 16 <= L; u += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(s + u));
    __mmask16 tail = (__mmask16)((1u << (L - u)) - 1u);
    if (u < L) mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(SET(-INFINITY), tail, s + u));
    __m512 m = SET(_mm512_reduce_max_ps(mx));
    __m512 sum = _mm512_setzero_ps();
    for (u = 0; u + 16 <= L; u += 16) {
        __m512 e = dk_exp512_fma(_mm512_sub_ps(_mm512_loadu_ps(s + u), m));
        _mm512_storeu_ps(s + u, e);
        sum = _mm512_add_ps(sum, e);
    }
    if (u < L) {
        __m512 e = dk_exp512_fma(_mm512_sub_ps(_mm512_mask_loadu_ps(m, tail, s + u), m));
        e = _mm512_maskz_mov_ps(tail, e);
        _mm512_storeu_ps(s + u, e);
        sum = _mm512_add_ps(sum, e);
        u += 16;
    }
    for (; u < lp; u += 16) _mm512_storeu_ps(s + u, _mm512_setzero_ps());
    return 1.0f / _mm512_reduce_add_ps(sum);
}

/* Accumulates keys [u0, u1) of queries [i0, i0 + ni) of the block (ni <= QR), dims [d0, d0 + 16 * nv) (nv <= 4,
 * last vector masked by `last`) onto A[i][d] (row stride dv): A += S[i][u0..u1) V[u0..u1). */
__attribute__((target("avx512f")))
static void values_tile(const float *V, int dv, const float *S, long lp, int i0, int ni, int d0, int nv,
                        __mmask16 last, long u0, long u1, float *A) {
    __m512 acc[QR][4];
    const float *s[QR];
#pragma GCC unroll 8
    for (int i = 0; i < QR; i++) {
        s[i] = S + (long)(i0 + (i < ni ? i : ni - 1)) * lp;
        acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = _mm512_setzero_ps();
    }
    for (int i = 0; i < ni; i++)
        for (int j = 0; j < nv; j++) acc[i][j] = _mm512_maskz_loadu_ps(j == nv - 1 ? last : (__mmask16)0xFFFF, A + (long)(i0 + i) * dv + d0 + 16 * j);
    if (nv == 4 && last == (__mmask16)0xFFFF) {
        for (long u = u0; u < u1; u++) {
            const float *v = V + u * (long)dv + d0;
            __m512 v0 = _mm512_loadu_ps(v), v1 = _mm512_loadu_ps(v + 16), v2 = _mm512_loadu_ps(v + 32), v3 = _mm512_loadu_ps(v + 48);
#pragma GCC unroll 8
            for (int i = 0; i < QR; i++) {
                __m512 p = SET(s[i][u]);
                acc[i][0] = FMA(p, v0, acc[i][0]); acc[i][1] = FMA(p, v1, acc[i][1]); acc[i][2] = FMA(p, v2, acc[i][2]); acc[i][3] = FMA(p, v3, acc[i][3]);
            }
        }
    } else {
        for (long u = u0; u < u1; u++) {
            const float *v = V + u * (long)dv + d0;
            __m512 vv[4];
            for (int j = 0; j < 4; j++)
                vv[j] = j < nv ? (j == nv - 1 ? _mm512_maskz_loadu_ps(last, v + 16 * j) : _mm512_loadu_ps(v + 16 * j)) : _mm512_setzero_ps();
#pragma GCC unroll 8
            for (int i = 0; i < QR; i++) {
                __m512 p = SET(s[i][u]);
                for (int j = 0; j < 4; j++) acc[i][j] = FMA(p, vv[j], acc[i][j]);
            }
        }
    }
    for (int i = 0; i < ni; i++)
        for (int j = 0; j < nv; j++) _mm512_mask_storeu_ps(A + (long)(i0 + i) * dv + d0 + 16 * j, j == nv - 1 ? last : (__mmask16)0xFFFF, acc[i][j]);
}

/* KT[dq][lp] (zero past L) and V[L][dv] of keys keyRows[u] + keyOffset / + valueOffset, into `packed`. */
static void attention_pack(const float *base, const long *keyRows, long L, long keyOffset, long valueOffset,
                           int dq, int dv, float *packed) {
    long lp = round16(L);
    float *KT = packed, *V = packed + lp * (long)dq;
    for (long u = 0; u < L; u++) {
        const float *k = base + keyRows[u] + keyOffset;
        for (int d = 0; d < dq; d++) KT[(long)d * lp + u] = k[d];
    }
    for (int d = 0; d < dq; d++) for (long u = L; u < lp; u++) KT[(long)d * lp + u] = 0.0f;
    for (long u = 0; u < L; u++) {
        const float *v = base + keyRows[u] + valueOffset;
        for (int d = 0; d < dv; d++) V[u * (long)dv + d] = v[d];
    }
}

__attribute__((target("avx512f")))
static void attention_queries_512(const float *base, const long *queryRows, long nq, long L, int dq, int dv,
                                  float scale, const float *packed, float *out, const long *outRows, float *scratch) {
    long lp = round16(L);
    const float *KT = packed;               /* [dq][lp] */
    const float *V = KT + lp * (long)dq;    /* [L][dv] */
    float *S = scratch;                     /* [QB][lp] */
    float *Q = S + QB * lp;                 /* [QB][dq] */
    float *inv = Q + QB * (long)dq;         /* [QB] */
    float *A = inv + QB;                    /* [QB][dv] value accumulators */
    for (long q0 = 0; q0 < nq; q0 += QB) {
        int nb = (int)(nq - q0 < QB ? nq - q0 : QB);
        for (int i = 0; i < nb; i++) {
            const float *q = base + queryRows[q0 + i];
            for (int d = 0; d < dq; d++) Q[(long)i * dq + d] = q[d] * scale;
        }
        /* key tiles outside, query groups inside: a 64-key slice of KT (dq x 256 B) stays in L1 */
        for (long u0 = 0; u0 < lp; u0 += 64) {
            long u1 = u0 + 64 < lp ? u0 + 64 : lp;
            for (int i0 = 0; i0 < nb; i0 += QR) scores_tile(Q, dq, KT, lp, S, i0, nb - i0 < QR ? nb - i0 : QR, u0, u1);
        }
        for (int i = 0; i < nb; i++) inv[i] = softmax_row(S + (long)i * lp, L, lp);
        for (int i = 0; i < nb; i++) for (int d = 0; d < dv; d++) A[(long)i * dv + d] = 0.0f;
        /* key chunks outside (a chunk of V, VCHUNK x dv floats, stays in L1), query groups inside */
        for (long u0 = 0; u0 < L; u0 += VCHUNK) {
            long u1 = u0 + VCHUNK < L ? u0 + VCHUNK : L;
            for (int d0 = 0; d0 < dv; d0 += 64) {
                int rest = dv - d0 < 64 ? dv - d0 : 64;
                int nv = (rest + 15) / 16;
                int tail = rest - 16 * (nv - 1);
                __mmask16 last = (__mmask16)(tail == 16 ? 0xFFFFu : ((1u << tail) - 1u));
                for (int i0 = 0; i0 < nb; i0 += QR)
                    values_tile(V, dv, S, lp, i0, nb - i0 < QR ? nb - i0 : QR, d0, nv, last, u0, u1, A);
            }
        }
        for (int i = 0; i < nb; i++) {
            float *o = out + outRows[q0 + i];
            const float *a = A + (long)i * dv;
            for (int d = 0; d < dv; d++) o[d] = a[d] * inv[i];
        }
    }
}

long dk_attention_packed_floats(long L, int dq, int dv) {
    long lp = round16(L < 1 ? 1 : L);
    return lp * (long)dq + lp * (long)dv;
}

long dk_attention_query_scratch(long L, int dq, int dv) {
    long lp = round16(L < 1 ? 1 : L);
    return QB * lp + QB * (long)dq + QB * (long)dv + QB + 64;
}

int dk_attention_pack(const float *base, const long *keyRows, long L, long keyOffset, long valueOffset,
                      int dq, int dv, float *packed) {
    if (!dk_has_avx512()) return 0;
    if (L < 1 || dq < 1 || dv < 1) return 0;
    attention_pack(base, keyRows, L, keyOffset, valueOffset, dq, dv, packed);
    return 1;
}

int dk_attention_packed(const float *base, const long *queryRows, long nq, long L, int dq, int dv, float scale,
                        const float *packed, float *out, const long *outRows, float *scratch) {
    if (!dk_has_avx512()) return 0;
    if (nq < 0 || L < 1 || dq < 1 || dv < 1) return 0;
    attention_queries_512(base, queryRows, nq, L, dq, dv, scale, packed, out, outRows, scratch);
    return 1;
}

int dk_attention_rows(const float *base, const long *queryRows, long nq, const long *keyRows, long L,
                      long keyOffset, long valueOffset, int dq, int dv, float scale,
                      float *out, const long *outRows, float *scratch) {
    if (!dk_has_avx512()) return 0;
    if (nq < 0 || L < 1 || dq < 1 || dv < 1) return 0;
    attention_pack(base, keyRows, L, keyOffset, valueOffset, dq, dv, scratch);
    attention_queries_512(base, queryRows, nq, L, dq, dv, scale, scratch, out, outRows,
                          scratch + dk_attention_packed_floats(L, dq, dv));
    return 1;
}
