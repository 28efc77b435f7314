/* Row-major GEMM onto weights packed once in 32-column panels, AVX-512F (see CKernels.h, dk_panel_gemm).
 * C[r][j] = bias[j] + sum_k A[r][k] * B[k][j], B given as panels P[p][k][0..32) = B[k][32p + c] (zero past n).
 * Per panel, groups of up to 14 rows run a 14 x 32 register tile (28 accumulators; per k two panel vectors and
 * fourteen broadcast A elements for 28 FMAs), A read in place. The caller gives a block of rows small enough
 * for A's rows to stay in L2 while the panels stream past them; each C element sums k in increasing order,
 * starting from the bias, whatever the blocking. */
#include "CKernels.h"
#include <immintrin.h>

#define NR 32
#define MR 14

#define PANEL_TILE(R)                                                                                             \
    __attribute__((target("avx512f")))                                                                            \
    static void tile_##R(long k, const float *a, long lda, const float *p, __m512 b0, __m512 b1,                  \
                         float *c, long ldc, __mmask16 m0, __mmask16 m1) {                                        \
        __m512 c0[R], c1[R];                                                                                      \
        const float *ar[R];                                                                                       \
        for (int i = 0; i < R; i++) { c0[i] = b0; c1[i] = b1; ar[i] = a + (long)i * lda; }                        \
        for (long kk = 0; kk < k; kk++, p += NR) {                                                                \
            __m512 x0 = _mm512_load_ps(p), x1 = _mm512_load_ps(p + 16);                                           \
            _Pragma("GCC unroll 14")                                                                              \
            for (int i = 0; i < R; i++) {                                                                         \
                __m512 s = _mm512_set1_ps(ar[i][kk]);                                                             \
                c0[i] = _mm512_fmadd_ps(s, x0, c0[i]);                                                            \
                c1[i] = _mm512_fmadd_ps(s, x1, c1[i]);                                                            \
            }                                                                                                     \
        }                                                                                                         \
        for (int i = 0; i < R; i++) {                                                                             \
            _mm512_mask_storeu_ps(c + (long)i * ldc, m0, c0[i]);                                                  \
            _mm512_mask_storeu_ps(c + (long)i * ldc + 16, m1, c1[i]);                                             \
        }                                                                                                         \
    }

PANEL_TILE(1) PANEL_TILE(2) PANEL_TILE(3) PANEL_TILE(4) PANEL_TILE(5) PANEL_TILE(6) PANEL_TILE(7)
PANEL_TILE(8) PANEL_TILE(9) PANEL_TILE(10) PANEL_TILE(11) PANEL_TILE(12) PANEL_TILE(13) PANEL_TILE(14)

typedef void (*tile_fn)(long, const float *, long, const float *, __m512, __m512, float *, long, __mmask16, __mmask16);

__attribute__((target("avx512f")))
static void panel_gemm_512(const float *a, long lda, long rows, const float *panels, long n, long k,
                           const float *bias, float *c, long ldc) {
    static const tile_fn tiles[MR + 1] = {0, tile_1, tile_2, tile_3, tile_4, tile_5, tile_6, tile_7,
                                          tile_8, tile_9, tile_10, tile_11, tile_12, tile_13, tile_14};
    long np = (n + NR - 1) / NR;
    for (long pj = 0; pj < np; pj++) {
        long j = pj * NR, w = n - j < NR ? n - j : NR;
        __mmask16 m0 = (__mmask16)(w >= 16 ? 0xFFFFu : ((1u << w) - 1u));
        __mmask16 m1 = (__mmask16)(w >= 32 ? 0xFFFFu : (w > 16 ? ((1u << (w - 16)) - 1u) : 0u));
        __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias + j) : _mm512_setzero_ps();
        __m512 b1 = bias ? _mm512_maskz_loadu_ps(m1, bias + j + 16) : _mm512_setzero_ps();
        const float *p = panels + pj * k * NR;
        for (long r = 0; r < rows; r += MR) {
            long mr = rows - r < MR ? rows - r : MR;
            tiles[mr](k, a + r * lda, lda, p, b0, b1, c + r * ldc + j, ldc, m0, m1);
        }
    }
}

long dk_panel_floats(long n, long k) { return ((n + NR - 1) / NR) * k * NR; }

int dk_panel_gemm(const float *a, long lda, long rows, const float *panels, long n, long k,
                  const float *bias, float *c, long ldc) {
    if (!dk_has_avx512()) return 0;
    if (rows < 0 || n < 1 || k < 1 || lda < k || ldc < n) return 0;
    panel_gemm_512(a, lda, rows, panels, n, k, bias, c, ldc);
    return 1;
}
