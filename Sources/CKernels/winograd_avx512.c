/* Winograd F(2x2, 3x3) transforms with AVX-512F, 16 tiles of one tile row per vector (see CKernels.h).
 * B^T = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]], A^T = [[1,1,1,0],[0,1,-1,-1]]. */
#include "CKernels.h"
#include <immintrin.h>

__attribute__((target("avx512f")))
static void wino_input_512(const float *x, long C, long H, long W, long padT, long padL,
                           long TW, long t0, long count, long c0, long c1, float *v) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const long plane = C * count;
    for (long c = c0; c < c1; c++) {
        const float *xc = x + c * H * W;
        long t = t0;
        while (t < t0 + count) {
            long ty = t / TW, tx = t % TW;
            long n = TW - tx;                       /* tiles left in this tile row */
            if (n > t0 + count - t) n = t0 + count - t;
            if (n > 16) n = 16;
            __mmask16 tm = (__mmask16)(n == 16 ? 0xFFFFu : ((1u << n) - 1u));
            __m512 d[4][4];
            for (int i = 0; i < 4; i++) {
                long r = 2 * ty - padT + i;
                if (r < 0 || r >= H) {
                    for (int j = 0; j < 4; j++) d[i][j] = _mm512_setzero_ps();
                    continue;
                }
                const float *row = xc + r * W;
                for (int j = 0; j < 4; j++) {
                    long base = 2 * tx - padL + j;  /* column of tile k: base + 2k, k < n */
                    /* lanes 0..31 hold columns base .. base+31; keep the valid ones (0 <= col < W, k < n). */
                    __m512i colLo = _mm512_add_epi32(_mm512_set1_epi32((int)base), lane);
                    __m512i colHi = _mm512_add_epi32(colLo, _mm512_set1_epi32(16));
                    __mmask16 mlo = _mm512_cmpge_epi32_mask(colLo, _mm512_setzero_si512())
                                  & _mm512_cmplt_epi32_mask(colLo, _mm512_set1_epi32((int)W))
                                  & _mm512_cmplt_epi32_mask(lane, _mm512_set1_epi32((int)(2 * n - 1)));
                    __mmask16 mhi = _mm512_cmpge_epi32_mask(colHi, _mm512_setzero_si512())
                                  & _mm512_cmplt_epi32_mask(colHi, _mm512_set1_epi32((int)W))
                                  & _mm512_cmplt_epi32_mask(_mm512_add_epi32(lane, _mm512_set1_epi32(16)),
                                                            _mm512_set1_epi32((int)(2 * n - 1)));
                    __m512 lo = _mm512_maskz_loadu_ps(mlo, row + base);
                    __m512 hi = _mm512_maskz_loadu_ps(mhi, row + base + 16);
                    d[i][j] = _mm512_permutex2var_ps(lo, even, hi);
                }
            }
            /* B^T d (rows), then (.) B (columns). */
            __m512 tt[4][4];
            for (int j = 0; j < 4; j++) {
                tt[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
                tt[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
                tt[2][j] = _mm512_sub_ps(d[2][j], d[1][j]);
                tt[3][j] = _mm512_sub_ps(d[1][j], d[3][j]);
            }
            float *dst = v + c * count + (t - t0);
            for (int i = 0; i < 4; i++) {
                _mm512_mask_storeu_ps(dst + (i * 4 + 0) * plane, tm, _mm512_sub_ps(tt[i][0], tt[i][2]));
                _mm512_mask_storeu_ps(dst + (i * 4 + 1) * plane, tm, _mm512_add_ps(tt[i][1], tt[i][2]));
                _mm512_mask_storeu_ps(dst + (i * 4 + 2) * plane, tm, _mm512_sub_ps(tt[i][2], tt[i][1]));
                _mm512_mask_storeu_ps(dst + (i * 4 + 3) * plane, tm, _mm512_sub_ps(tt[i][1], tt[i][3]));
            }
            t += n;
        }
    }
}

__attribute__((target("avx512f")))
static void wino_output_512(const float *m, long O, long TW, long t0, long count, long o0, long o1,
                            const float *bias, int relu, float *y, long OH, long OW) {
    const __m512i ilo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i ihi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 zero = _mm512_setzero_ps();
    const long plane = O * count;
    for (long o = o0; o < o1; o++) {
        const __m512 b = _mm512_set1_ps(bias ? bias[o] : 0.0f);
        float *yo = y + o * OH * OW;
        long t = t0;
        while (t < t0 + count) {
            long ty = t / TW, tx = t % TW;
            long n = TW - tx;
            if (n > t0 + count - t) n = t0 + count - t;
            if (n > 16) n = 16;
            __mmask16 tm = (__mmask16)(n == 16 ? 0xFFFFu : ((1u << n) - 1u));
            const float *src = m + o * count + (t - t0);
            __m512 mm[4][4];
            for (int k = 0; k < 16; k++) mm[k / 4][k % 4] = _mm512_maskz_loadu_ps(tm, src + k * plane);
            __m512 s[2][4];
            for (int j = 0; j < 4; j++) {
                s[0][j] = _mm512_add_ps(_mm512_add_ps(mm[0][j], mm[1][j]), mm[2][j]);
                s[1][j] = _mm512_sub_ps(_mm512_sub_ps(mm[1][j], mm[2][j]), mm[3][j]);
            }
            for (int i = 0; i < 2; i++) {
                long r = 2 * ty + i;
                if (r >= OH) break;
                __m512 y0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s[i][0], s[i][1]), s[i][2]), b);
                __m512 y1 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s[i][1], s[i][2]), s[i][3]), b);
                if (relu) { y0 = _mm512_max_ps(zero, y0); y1 = _mm512_max_ps(zero, y1); }
                /* interleave: columns 2tx + 2k + {0, 1} */
                __m512 a = _mm512_permutex2var_ps(y0, ilo, y1), c = _mm512_permutex2var_ps(y0, ihi, y1);
                long col = 2 * tx;
                long valid = OW - col;              /* columns that exist from col on */
                if (valid > 2 * n) valid = 2 * n;
                __mmask16 ma = _mm512_cmplt_epi32_mask(lane, _mm512_set1_epi32((int)(valid < 16 ? valid : 16)));
                __mmask16 mc = _mm512_cmplt_epi32_mask(lane, _mm512_set1_epi32((int)(valid > 16 ? valid - 16 : 0)));
                _mm512_mask_storeu_ps(yo + r * OW + col, ma, a);
                _mm512_mask_storeu_ps(yo + r * OW + col + 16, mc, c);
            }
            t += n;
        }
    }
}

int dk_winograd_input(const float *x, long channels, long height, long width, long padT, long padL,
                      long tilesW, long t0, long count, long c0, long c1, float *v) {
    if (!dk_has_avx512()) return 0;
    if (tilesW <= 0 || count <= 0 || c1 <= c0) return 1;
    wino_input_512(x, channels, height, width, padT, padL, tilesW, t0, count, c0, c1, v);
    return 1;
}

int dk_winograd_output(const float *m, long outChannels, long tilesW, long t0, long count, long o0, long o1,
                       const float *bias, int relu, float *y, long outH, long outW) {
    if (!dk_has_avx512()) return 0;
    if (tilesW <= 0 || count <= 0 || o1 <= o0) return 1;
    wino_output_512(m, outChannels, tilesW, t0, count, o0, o1, bias, relu, y, outH, outW);
    return 1;
}
