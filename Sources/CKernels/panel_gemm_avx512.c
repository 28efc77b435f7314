/* Row-major GEMM onto weights packed once in 32-column panels, AVX-512F (see CKernels.h, dk_panel_gemm).
 * C[r][j] = bias[j] + sum_k A[r][k] * B[k][j], B given as panels P[p][k][0..32) = B[k][32p + c] (zero past n).
 * Per panel, groups of up to 14 rows run the 14 x 32 register tile of gemm_tile_avx512.h, A read in place. The caller gives a block of rows small enough
 * for A's rows to stay in L2 while the panels stream past them; each C element sums k in increasing order,
 * starting from the bias, whatever the blocking. */
#include "CKernels.h"
#include "gemm_tile_avx512.h"
#include <immintrin.h>

#define NR 32
#define MR DK_TILE_MR

/* A(i, kk) = a[i * lda + kk]: activation rows read in place */
DK_GEMM_TILES(panel_tile, lda, 1)

__attribute__((target("avx512f")))
static void panel_gemm_512(const float *a, long lda, long rows, const float *panels, long n, long k,
                           const float *bias, float *c, long ldc) {
    long np = (n + NR - 1) / NR;
    for (long pj = 0; pj < np; pj++) {
        long j = pj * NR, w = n - j < NR ? n - j : NR;
        __mmask16 m0 = dk_tile_mask0(w), m1 = dk_tile_mask1(w);
        __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias + j) : _mm512_setzero_ps();
        __m512 b1 = bias ? _mm512_maskz_loadu_ps(m1, bias + j + 16) : _mm512_setzero_ps();
        const float *p = panels + pj * k * NR;
        for (long r = 0; r < rows; r += MR) {
            long mr = rows - r < MR ? rows - r : MR;
            panel_tile_table[mr](k, a + r * lda, lda, p, 0, b0, b1, 0, c + r * ldc + j, ldc, m0, m1);
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
