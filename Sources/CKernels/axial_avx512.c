/* kMaX axial attention of one sequence, all heads, AVX-512F (see CKernels.h, dk_axial_sequence).
 * Logits row by row, vectorised over key positions m (16 lanes): the keys are first gathered
 * transposed ([d][m], zero-padded to a multiple of 16), the query/key relative tables are stored
 * transposed ([d][rows]) so that R[l, m..m+15] is one unaligned load. Softmax per row (Cephes exp,
 * as the other kernels), then the retrieval vectorised over value channels (64 per pass). */
#include "CKernels.h"
#include "avx512_math.h"
#include <immintrin.h>
#include <math.h>

static inline __mmask16 tail_mask(long n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u); }

__attribute__((target("avx512f")))
static void axial_sequence_512(const dk_axial_geometry *g, const float *qkv, const float *tq, const float *tk,
                               const float *tv, const float *simScale, const float *simShift,
                               const float *retScale, const float *retShift, float *out, float *scratch) {
    const long L = g->length, Lp = (L + 15) / 16 * 16, rows = g->tableRows, ps = g->posStride;
    const int heads = g->heads, dk = g->dk, dv = g->dv;
    const long vd = (long)heads * dv;
    float *kT = scratch;                  /* [dk][Lp] keys, transposed */
    float *kA = kT + (long)dk * Lp;       /* [dk][Lp] a2 * keys */
    float *S = kA + (long)dk * Lp;        /* [Lp] one logit row */
    for (int head = 0; head < heads; head++) {
        const float a0 = simScale[head], a1 = simScale[heads + head], a2 = simScale[2 * heads + head];
        const float c = simShift[head] + simShift[heads + head] + simShift[2 * heads + head];
        const float *kbase = qkv + g->keyOffset + (long)head * dk;
        for (int d = 0; d < dk; d++) {
            float *kr = kT + (long)d * Lp, *ar = kA + (long)d * Lp;
            for (long m = 0; m < L; m++) { float v = kbase[m * ps + d]; kr[m] = v; ar[m] = a2 * v; }
            for (long m = L; m < Lp; m++) { kr[m] = 0.0f; ar[m] = 0.0f; }
        }
        const float *vbase = qkv + g->valueOffset + (long)head * dv;
        for (long l = 0; l < L; l++) {
            const float *q = qkv + l * ps + (long)head * dk;
            const long off = g->span - 1 - l;            /* R[l, m] = table[off + m] */
            __m512 mx = _mm512_set1_ps(-INFINITY);
            for (long m0 = 0; m0 < L; m0 += 64) {
                /* up to four 16-lane chunks of key positions kept in registers over d */
                __mmask16 k0 = tail_mask(L - m0), k1 = m0 + 16 < L ? tail_mask(L - m0 - 16) : 0;
                __mmask16 k2 = m0 + 32 < L ? tail_mask(L - m0 - 32) : 0, k3 = m0 + 48 < L ? tail_mask(L - m0 - 48) : 0;
                __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
                for (int d = 0; d < dk; d++) {
                    const __m512 qa = _mm512_set1_ps(a0 * q[d]), qb = _mm512_set1_ps(a1 * q[d]);
                    const float *kr = kT + (long)d * Lp + m0, *ar = kA + (long)d * Lp + m0;
                    const float *qr = tq + (long)d * rows + off + m0, *rr = tk + (long)d * rows + off + m0;
                    s0 = _mm512_fmadd_ps(qa, _mm512_loadu_ps(kr), s0);
                    s0 = _mm512_fmadd_ps(qb, _mm512_maskz_loadu_ps(k0, qr), s0);
                    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(ar), _mm512_maskz_loadu_ps(k0, rr), s0);
                    if (k1) {
                        s1 = _mm512_fmadd_ps(qa, _mm512_loadu_ps(kr + 16), s1);
                        s1 = _mm512_fmadd_ps(qb, _mm512_maskz_loadu_ps(k1, qr + 16), s1);
                        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(ar + 16), _mm512_maskz_loadu_ps(k1, rr + 16), s1);
                    }
                    if (k2) {
                        s2 = _mm512_fmadd_ps(qa, _mm512_loadu_ps(kr + 32), s2);
                        s2 = _mm512_fmadd_ps(qb, _mm512_maskz_loadu_ps(k2, qr + 32), s2);
                        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(ar + 32), _mm512_maskz_loadu_ps(k2, rr + 32), s2);
                    }
                    if (k3) {
                        s3 = _mm512_fmadd_ps(qa, _mm512_loadu_ps(kr + 48), s3);
                        s3 = _mm512_fmadd_ps(qb, _mm512_maskz_loadu_ps(k3, qr + 48), s3);
                        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(ar + 48), _mm512_maskz_loadu_ps(k3, rr + 48), s3);
                    }
                }
                const __m512 cv = _mm512_set1_ps(c), ninf = _mm512_set1_ps(-INFINITY);
                s0 = _mm512_mask_blend_ps(k0, ninf, _mm512_add_ps(s0, cv));
                _mm512_storeu_ps(S + m0, s0); mx = _mm512_max_ps(mx, s0);
                if (k1) { s1 = _mm512_mask_blend_ps(k1, ninf, _mm512_add_ps(s1, cv)); _mm512_storeu_ps(S + m0 + 16, s1); mx = _mm512_max_ps(mx, s1); }
                if (k2) { s2 = _mm512_mask_blend_ps(k2, ninf, _mm512_add_ps(s2, cv)); _mm512_storeu_ps(S + m0 + 32, s2); mx = _mm512_max_ps(mx, s2); }
                if (k3) { s3 = _mm512_mask_blend_ps(k3, ninf, _mm512_add_ps(s3, cv)); _mm512_storeu_ps(S + m0 + 48, s3); mx = _mm512_max_ps(mx, s3); }
            }
            const __m512 mv = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
            __m512 sum = _mm512_setzero_ps();
            for (long m0 = 0; m0 < L; m0 += 16) {
                __mmask16 k = tail_mask(L - m0);
                __m512 e = _mm512_maskz_mov_ps(k, dk_exp512(_mm512_sub_ps(_mm512_loadu_ps(S + m0), mv)));
                _mm512_storeu_ps(S + m0, e);
                sum = _mm512_add_ps(sum, e);
            }
            const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
            for (long m0 = 0; m0 < L; m0 += 16) _mm512_storeu_ps(S + m0, _mm512_mul_ps(_mm512_loadu_ps(S + m0), inv));
            /* retrieval: content (values) and relative (value table rows off + m), 64 channels per pass */
            const float *rv = tv + off * dv;
            float *o = out + l * g->outPosStride + (long)head * dv;
            for (int d0 = 0; d0 < dv; d0 += 64) {
                __mmask16 k0 = tail_mask(dv - d0), k1 = d0 + 16 < dv ? tail_mask(dv - d0 - 16) : 0;
                __mmask16 k2 = d0 + 32 < dv ? tail_mask(dv - d0 - 32) : 0, k3 = d0 + 48 < dv ? tail_mask(dv - d0 - 48) : 0;
                __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, r0 = c0, r1 = c0, r2 = c0, r3 = c0;
                for (long m = 0; m < L; m++) {
                    const __m512 p = _mm512_set1_ps(S[m]);
                    const float *v = vbase + m * ps + d0, *t = rv + m * dv + d0;
                    c0 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(k0, v), c0);
                    r0 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(k0, t), r0);
                    if (k1) {
                        c1 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(k1, v + 16), c1);
                        r1 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(k1, t + 16), r1);
                    }
                    if (k2) {
                        c2 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(k2, v + 32), c2);
                        r2 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(k2, t + 32), r2);
                    }
                    if (k3) {
                        c3 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(k3, v + 48), c3);
                        r3 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(k3, t + 48), r3);
                    }
                }
                __m512 cs[4] = {c0, c1, c2, c3}, rs[4] = {r0, r1, r2, r3};
                __mmask16 ks[4] = {k0, k1, k2, k3};
                for (int j = 0; j < 4 && ks[j]; j++) {
                    const long ch = (long)head * dv + d0 + 16 * j;
                    __m512 y1 = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(ks[j], retScale + ch), cs[j]),
                                              _mm512_maskz_loadu_ps(ks[j], retShift + ch));
                    __m512 y2 = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(ks[j], retScale + vd + ch), rs[j]),
                                              _mm512_maskz_loadu_ps(ks[j], retShift + vd + ch));
                    _mm512_mask_storeu_ps(o + d0 + 16 * j, ks[j], _mm512_add_ps(y1, y2));
                }
            }
        }
    }
}

int dk_axial_sequence(const dk_axial_geometry *g, const float *qkv, const float *queryTable, const float *keyTable,
                      const float *valueTable, const float *simScale, const float *simShift,
                      const float *retScale, const float *retShift, float *out, float *scratch) {
    if (!dk_has_avx512()) return 0;
    if (g->length < 1 || g->heads < 1 || g->dk < 1 || g->dv < 1 || g->length > g->span
        || g->tableRows != 2 * g->span - 1) return 0;
    axial_sequence_512(g, qkv, queryTable, keyTable, valueTable, simScale, simShift, retScale, retShift, out, scratch);
    return 1;
}
