/* Attention over keys/values read in place, AVX-512F (see CKernels.h). Per call the keys are copied once,
 * transposed and zero-padded, to KT[dq][Lp] (Lp = L rounded up to 16), and the values to a contiguous
 * V[L][dv]. Per block of up to 16 queries:
 *  - scores S[i][u] = scale*q_i . k_u by a 4-query x 64-key register tile (16 accumulators; per d four
 *    broadcast query elements and four key vectors for sixteen FMAs);
 *  - softmax along u per query (max, exp by dk_exp512_fma, sum), the padding keys excluded;
 *  - out_i = (sum_u S[i][u] v_u) / sum_i by a 4-query x 64-dim tile (per key: four value vectors, four
 *    broadcast weights, sixteen FMAs), keys in chunks of VCHUNK (outer loop; the tiles' sums are kept in
 *    A[16][dv] between chunks, so a chunk of V is read from L1 by every query group), the division last.
 *    Each sum still runs over u in increasing order: the same bits as one pass over all keys. */
#include "CKernels.h"
#include "avx512_math.h"
#include <immintrin.h>
#include <math.h>

#define SET _mm512_set1_ps
#define FMA _mm512_fmadd_ps
/* keys per chunk of the value product: VCHUNK x dv floats of V (32 KB at dv 64) stay in L1 */
#define VCHUNK 128

static long round16(long n) { return (n + 15) & ~15L; }

long dk_attention_scratch(long L, int dq, int dv) {
    long lp = round16(L < 1 ? 1 : L);
    return lp * (long)dq + lp * (long)dv + 16 * lp + 16 * (long)dq + 16 * (long)dv + 64;
}

/* Scores of queries [i0, i0 + ni) (ni <= 4) against keys [u0, u1) (a multiple of 16 wide): S[i][u], i
 * relative to the block. */
__attribute__((target("avx512f")))
static void scores_tile(const float *Q, int dq, const float *KT, long lp, float *S, int i0, int ni, long u0, long u1) {
    const float *q0 = Q + (long)(i0 + 0) * dq, *q1 = Q + (long)(i0 + (ni > 1 ? 1 : 0)) * dq;
    const float *q2 = Q + (long)(i0 + (ni > 2 ? 2 : 0)) * dq, *q3 = Q + (long)(i0 + (ni > 3 ? 3 : 0)) * dq;
    long u = u0;
    for (; u + 64 <= u1; u += 64) {
        __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        __m512 a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        const float *kt = KT + u;
        for (int d = 0; d < dq; d++, kt += lp) {
            __m512 k0 = _mm512_loadu_ps(kt), k1 = _mm512_loadu_ps(kt + 16);
            __m512 k2 = _mm512_loadu_ps(kt + 32), k3 = _mm512_loadu_ps(kt + 48);
            __m512 b = SET(q0[d]);
            a00 = FMA(b, k0, a00); a01 = FMA(b, k1, a01); a02 = FMA(b, k2, a02); a03 = FMA(b, k3, a03);
            b = SET(q1[d]);
            a10 = FMA(b, k0, a10); a11 = FMA(b, k1, a11); a12 = FMA(b, k2, a12); a13 = FMA(b, k3, a13);
            b = SET(q2[d]);
            a20 = FMA(b, k0, a20); a21 = FMA(b, k1, a21); a22 = FMA(b, k2, a22); a23 = FMA(b, k3, a23);
            b = SET(q3[d]);
            a30 = FMA(b, k0, a30); a31 = FMA(b, k1, a31); a32 = FMA(b, k2, a32); a33 = FMA(b, k3, a33);
        }
        float *s0 = S + (long)(i0 + 0) * lp + u;
        _mm512_storeu_ps(s0, a00); _mm512_storeu_ps(s0 + 16, a01); _mm512_storeu_ps(s0 + 32, a02); _mm512_storeu_ps(s0 + 48, a03);
        if (ni > 1) { float *s = s0 + lp; _mm512_storeu_ps(s, a10); _mm512_storeu_ps(s + 16, a11); _mm512_storeu_ps(s + 32, a12); _mm512_storeu_ps(s + 48, a13); }
        if (ni > 2) { float *s = s0 + 2 * lp; _mm512_storeu_ps(s, a20); _mm512_storeu_ps(s + 16, a21); _mm512_storeu_ps(s + 32, a22); _mm512_storeu_ps(s + 48, a23); }
        if (ni > 3) { float *s = s0 + 3 * lp; _mm512_storeu_ps(s, a30); _mm512_storeu_ps(s + 16, a31); _mm512_storeu_ps(s + 32, a32); _mm512_storeu_ps(s + 48, a33); }
    }
    for (; u < u1; u += 16) {
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        const float *kt = KT + u;
        for (int d = 0; d < dq; d++, kt += lp) {
            __m512 k = _mm512_loadu_ps(kt);
            a0 = FMA(SET(q0[d]), k, a0); a1 = FMA(SET(q1[d]), k, a1);
            a2 = FMA(SET(q2[d]), k, a2); a3 = FMA(SET(q3[d]), k, a3);
        }
        float *s0 = S + (long)(i0 + 0) * lp + u;
        _mm512_storeu_ps(s0, a0);
        if (ni > 1) _mm512_storeu_ps(s0 + lp, a1);
        if (ni > 2) _mm512_storeu_ps(s0 + 2 * lp, a2);
        if (ni > 3) _mm512_storeu_ps(s0 + 3 * lp, a3);
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

/* Accumulates keys [u0, u1) of queries [i0, i0 + ni) of the block (ni <= 4), dims [d0, d0 + 16 * nv) (nv <= 4,
 * last vector masked by `last`) onto A[i][d] (row stride dv): A += S[i][u0..u1) V[u0..u1). */
__attribute__((target("avx512f")))
static void values_tile(const float *V, int dv, const float *S, long lp, int i0, int ni, int d0, int nv,
                        __mmask16 last, long u0, long u1, float *A) {
    __m512 acc[4][4];
    for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();
    for (int i = 0; i < ni; i++)
        for (int j = 0; j < nv; j++) acc[i][j] = _mm512_maskz_loadu_ps(j == nv - 1 ? last : (__mmask16)0xFFFF, A + (long)(i0 + i) * dv + d0 + 16 * j);
    const float *s0 = S + (long)i0 * lp, *s1 = S + (long)(i0 + (ni > 1 ? 1 : 0)) * lp;
    const float *s2 = S + (long)(i0 + (ni > 2 ? 2 : 0)) * lp, *s3 = S + (long)(i0 + (ni > 3 ? 3 : 0)) * lp;
    if (nv == 4 && last == (__mmask16)0xFFFF) {
        for (long u = u0; u < u1; u++) {
            const float *v = V + u * (long)dv + d0;
            __m512 v0 = _mm512_loadu_ps(v), v1 = _mm512_loadu_ps(v + 16), v2 = _mm512_loadu_ps(v + 32), v3 = _mm512_loadu_ps(v + 48);
            __m512 p = SET(s0[u]);
            acc[0][0] = FMA(p, v0, acc[0][0]); acc[0][1] = FMA(p, v1, acc[0][1]); acc[0][2] = FMA(p, v2, acc[0][2]); acc[0][3] = FMA(p, v3, acc[0][3]);
            p = SET(s1[u]);
            acc[1][0] = FMA(p, v0, acc[1][0]); acc[1][1] = FMA(p, v1, acc[1][1]); acc[1][2] = FMA(p, v2, acc[1][2]); acc[1][3] = FMA(p, v3, acc[1][3]);
            p = SET(s2[u]);
            acc[2][0] = FMA(p, v0, acc[2][0]); acc[2][1] = FMA(p, v1, acc[2][1]); acc[2][2] = FMA(p, v2, acc[2][2]); acc[2][3] = FMA(p, v3, acc[2][3]);
            p = SET(s3[u]);
            acc[3][0] = FMA(p, v0, acc[3][0]); acc[3][1] = FMA(p, v1, acc[3][1]); acc[3][2] = FMA(p, v2, acc[3][2]); acc[3][3] = FMA(p, v3, acc[3][3]);
        }
    } else {
        for (long u = u0; u < u1; u++) {
            const float *v = V + u * (long)dv + d0;
            __m512 vv[4];
            for (int j = 0; j < nv; j++)
                vv[j] = j == nv - 1 ? _mm512_maskz_loadu_ps(last, v + 16 * j) : _mm512_loadu_ps(v + 16 * j);
            __m512 p0 = SET(s0[u]), p1 = SET(s1[u]), p2 = SET(s2[u]), p3 = SET(s3[u]);
            for (int j = 0; j < nv; j++) {
                acc[0][j] = FMA(p0, vv[j], acc[0][j]); acc[1][j] = FMA(p1, vv[j], acc[1][j]);
                acc[2][j] = FMA(p2, vv[j], acc[2][j]); acc[3][j] = FMA(p3, vv[j], acc[3][j]);
            }
        }
    }
    for (int i = 0; i < ni; i++)
        for (int j = 0; j < nv; j++) _mm512_mask_storeu_ps(A + (long)(i0 + i) * dv + d0 + 16 * j, j == nv - 1 ? last : (__mmask16)0xFFFF, acc[i][j]);
}

__attribute__((target("avx512f")))
static void attention_rows_512(const float *base, const long *queryRows, long nq, const long *keyRows, long L,
                               long keyOffset, long valueOffset, int dq, int dv, float scale,
                               float *out, const long *outRows, float *scratch) {
    long lp = round16(L);
    float *KT = scratch;                    /* [dq][lp] */
    float *V = KT + lp * (long)dq;          /* [L][dv], contiguous copy of the values */
    float *S = V + lp * (long)dv;           /* [16][lp] */
    float *Q = S + 16 * lp;                 /* [16][dq] */
    float *inv = Q + 16 * (long)dq;         /* [16] */
    float *A = inv + 16;                    /* [16][dv] value accumulators */
    for (long u = 0; u < L; u++) {
        const float *k = base + keyRows[u] + keyOffset;
        for (int d = 0; d < dq; d++) KT[(long)d * lp + u] = k[d];
    }
    for (int d = 0; d < dq; d++) for (long u = L; u < lp; u++) KT[(long)d * lp + u] = 0.0f;
    for (long u = 0; u < L; u++) {
        const float *v = base + keyRows[u] + valueOffset;
        for (int d = 0; d < dv; d++) V[u * (long)dv + d] = v[d];
    }
    for (long q0 = 0; q0 < nq; q0 += 16) {
        int nb = (int)(nq - q0 < 16 ? nq - q0 : 16);
        for (int i = 0; i < nb; i++) {
            const float *q = base + queryRows[q0 + i];
            for (int d = 0; d < dq; d++) Q[(long)i * dq + d] = q[d] * scale;
        }
        /* key tiles outside, query groups inside: a 64-key slice of KT (dq x 256 B) stays in L1 */
        for (long u0 = 0; u0 < lp; u0 += 64) {
            long u1 = u0 + 64 < lp ? u0 + 64 : lp;
            for (int i0 = 0; i0 < nb; i0 += 4) scores_tile(Q, dq, KT, lp, S, i0, nb - i0 < 4 ? nb - i0 : 4, u0, u1);
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
                for (int i0 = 0; i0 < nb; i0 += 4)
                    values_tile(V, dv, S, lp, i0, nb - i0 < 4 ? nb - i0 : 4, d0, nv, last, u0, u1, A);
            }
        }
        for (int i = 0; i < nb; i++) {
            float *o = out + outRows[q0 + i];
            const float *a = A + (long)i * dv;
            for (int d = 0; d < dv; d++) o[d] = a[d] * inv[i];
        }
    }
}

int dk_attention_rows(const float *base, const long *queryRows, long nq, const long *keyRows, long L,
                      long keyOffset, long valueOffset, int dq, int dv, float scale,
                      float *out, const long *outRows, float *scratch) {
    if (!dk_has_avx512()) return 0;
    if (nq < 0 || L < 1 || dq < 1 || dv < 1) return 0;
    attention_rows_512(base, queryRows, nq, keyRows, L, keyOffset, valueOffset, dq, dv, scale, out, outRows, scratch);
    return 1;
}
