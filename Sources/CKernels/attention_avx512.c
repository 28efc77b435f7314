/* Attention over keys/values read in place, AVX-512F (see CKernels.h). Sixteen queries per vector
 * (one lane each): scores [L][16] by FMAs with broadcast key elements (eight keys at a time),
 * softmax along L per lane (Cephes exp, as the GELU kernel), then the weighted sum of values in
 * chunks of 16 output dimensions kept in registers. */
#include "CKernels.h"
#include "avx512_math.h"
#include <immintrin.h>
#include <math.h>

#define MUL _mm512_mul_ps
#define ADD _mm512_add_ps
#define SUB _mm512_sub_ps
#define SET _mm512_set1_ps


__attribute__((target("avx512f")))
static void attention_rows_512(const float *base, const long *queryRows, long nq, const long *keyRows, long L,
                               long keyOffset, long valueOffset, int dq, int dv, float scale,
                               float *out, const long *outRows, float *scratch) {
    float *S = scratch;                    /* [L][16] */
    float *Qt = S + 16 * L;                /* [dq][16] */
    float *tmp = Qt + 16 * (long)dq;       /* [16] */
    for (long q0 = 0; q0 < nq; q0 += 16) {
        int nb = (int)(nq - q0 < 16 ? nq - q0 : 16);
        for (int lane = 0; lane < 16; lane++) {
            if (lane < nb) {
                const float *q = base + queryRows[q0 + lane];
                for (int d = 0; d < dq; d++) Qt[d * 16 + lane] = q[d] * scale;
            } else {
                for (int d = 0; d < dq; d++) Qt[d * 16 + lane] = 0.0f;
            }
        }
        __m512 mx = SET(-INFINITY);
        long u = 0;
        for (; u + 8 <= L; u += 8) {
            const float *k0 = base + keyRows[u] + keyOffset, *k1 = base + keyRows[u + 1] + keyOffset;
            const float *k2 = base + keyRows[u + 2] + keyOffset, *k3 = base + keyRows[u + 3] + keyOffset;
            const float *k4 = base + keyRows[u + 4] + keyOffset, *k5 = base + keyRows[u + 5] + keyOffset;
            const float *k6 = base + keyRows[u + 6] + keyOffset, *k7 = base + keyRows[u + 7] + keyOffset;
            __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
            for (int d = 0; d < dq; d++) {
                __m512 qd = _mm512_loadu_ps(Qt + d * 16);
                s0 = _mm512_fmadd_ps(SET(k0[d]), qd, s0);
                s1 = _mm512_fmadd_ps(SET(k1[d]), qd, s1);
                s2 = _mm512_fmadd_ps(SET(k2[d]), qd, s2);
                s3 = _mm512_fmadd_ps(SET(k3[d]), qd, s3);
                s4 = _mm512_fmadd_ps(SET(k4[d]), qd, s4);
                s5 = _mm512_fmadd_ps(SET(k5[d]), qd, s5);
                s6 = _mm512_fmadd_ps(SET(k6[d]), qd, s6);
                s7 = _mm512_fmadd_ps(SET(k7[d]), qd, s7);
            }
            _mm512_storeu_ps(S + (u + 0) * 16, s0); _mm512_storeu_ps(S + (u + 1) * 16, s1);
            _mm512_storeu_ps(S + (u + 2) * 16, s2); _mm512_storeu_ps(S + (u + 3) * 16, s3);
            _mm512_storeu_ps(S + (u + 4) * 16, s4); _mm512_storeu_ps(S + (u + 5) * 16, s5);
            _mm512_storeu_ps(S + (u + 6) * 16, s6); _mm512_storeu_ps(S + (u + 7) * 16, s7);
            mx = _mm512_max_ps(mx, _mm512_max_ps(_mm512_max_ps(_mm512_max_ps(s0, s1), _mm512_max_ps(s2, s3)),
                                                 _mm512_max_ps(_mm512_max_ps(s4, s5), _mm512_max_ps(s6, s7))));
        }
        for (; u < L; u++) {
            const float *k = base + keyRows[u] + keyOffset;
            __m512 s = _mm512_setzero_ps();
            for (int d = 0; d < dq; d++) s = _mm512_fmadd_ps(SET(k[d]), _mm512_loadu_ps(Qt + d * 16), s);
            _mm512_storeu_ps(S + u * 16, s);
            mx = _mm512_max_ps(mx, s);
        }
        __m512 sum = _mm512_setzero_ps();
        for (u = 0; u < L; u++) {
            __m512 e = dk_exp512(SUB(_mm512_loadu_ps(S + u * 16), mx));
            _mm512_storeu_ps(S + u * 16, e);
            sum = ADD(sum, e);
        }
        __m512 inv = _mm512_div_ps(SET(1.0f), sum);
        int d0 = 0;
        for (; d0 + 16 <= dv; d0 += 16) {
            __m512 a[16];
            for (int j = 0; j < 16; j++) a[j] = _mm512_setzero_ps();
            for (u = 0; u < L; u++) {
                __m512 p = _mm512_loadu_ps(S + u * 16);
                const float *v = base + keyRows[u] + valueOffset + d0;
                a[0] = _mm512_fmadd_ps(SET(v[0]), p, a[0]);   a[1] = _mm512_fmadd_ps(SET(v[1]), p, a[1]);
                a[2] = _mm512_fmadd_ps(SET(v[2]), p, a[2]);   a[3] = _mm512_fmadd_ps(SET(v[3]), p, a[3]);
                a[4] = _mm512_fmadd_ps(SET(v[4]), p, a[4]);   a[5] = _mm512_fmadd_ps(SET(v[5]), p, a[5]);
                a[6] = _mm512_fmadd_ps(SET(v[6]), p, a[6]);   a[7] = _mm512_fmadd_ps(SET(v[7]), p, a[7]);
                a[8] = _mm512_fmadd_ps(SET(v[8]), p, a[8]);   a[9] = _mm512_fmadd_ps(SET(v[9]), p, a[9]);
                a[10] = _mm512_fmadd_ps(SET(v[10]), p, a[10]); a[11] = _mm512_fmadd_ps(SET(v[11]), p, a[11]);
                a[12] = _mm512_fmadd_ps(SET(v[12]), p, a[12]); a[13] = _mm512_fmadd_ps(SET(v[13]), p, a[13]);
                a[14] = _mm512_fmadd_ps(SET(v[14]), p, a[14]); a[15] = _mm512_fmadd_ps(SET(v[15]), p, a[15]);
            }
            for (int j = 0; j < 16; j++) {
                _mm512_storeu_ps(tmp, MUL(a[j], inv));
                for (int lane = 0; lane < nb; lane++) out[outRows[q0 + lane] + d0 + j] = tmp[lane];
            }
        }
        for (; d0 < dv; d0++) {
            __m512 a = _mm512_setzero_ps();
            for (u = 0; u < L; u++) a = _mm512_fmadd_ps(SET(base[keyRows[u] + valueOffset + d0]), _mm512_loadu_ps(S + u * 16), a);
            _mm512_storeu_ps(tmp, MUL(a, inv));
            for (int lane = 0; lane < nb; lane++) out[outRows[q0 + lane] + d0] = tmp[lane];
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
