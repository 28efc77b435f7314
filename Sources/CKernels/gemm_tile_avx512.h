/* The 14 x 32 register tile of DenseKit's GEMMs on packed operands, AVX-512F (internal header; used by
 * panel_gemm_avx512.c for linear layers and pointwise_avx512.c for 1x1 convolutions / Winograd products).
 *
 * DK_GEMM_TILES(PREFIX, AS, KS) defines PREFIX_1 .. PREFIX_14 and the table PREFIX_table[R] of them: for R rows,
 *   C[i][0..32) = act(init_i + sum_{kk < k} A(i, kk) * P[kk][0..32)),  i < R,
 * where A(i, kk) = a[i * (AS) + kk * (KS)] is broadcast (AS and KS are expressions, so a constant stride compiles
 * to immediate offsets; `lda` names the function's argument), P is a contiguous panel [k][32] (64-byte aligned),
 * init_i is rowBias[i] in every lane when rowBias is not NULL, else the column vectors (b0, b1); act is max(0, y)
 * with NaN kept when relu is 1. Stores are masked by (m0, m1) for a partial panel. Per k: two panel vectors and
 * R broadcasts for 2R FMAs (28 accumulators at R = 14); each sum runs over kk in increasing order. */
#ifndef DENSEKIT_CKERNELS_GEMM_TILE_AVX512_H
#define DENSEKIT_CKERNELS_GEMM_TILE_AVX512_H
#include <immintrin.h>

#define DK_TILE_MR 14

typedef void (*dk_gemm_tile_fn)(long k, const float *a, long lda, const float *p, const float *rowBias,
                                __m512 b0, __m512 b1, int relu, float *c, long ldc, __mmask16 m0, __mmask16 m1);

#define DK_GEMM_TILE(NAME, R, AS, KS)                                                                             \
    __attribute__((target("avx512f")))                                                                            \
    static void NAME(long k, const float *a, long lda, const float *p, const float *rowBias, __m512 b0,           \
                     __m512 b1, int relu, float *c, long ldc, __mmask16 m0, __mmask16 m1) {                       \
        (void)lda;                                                                                                \
        __m512 c0[R], c1[R];                                                                                      \
        for (int i = 0; i < R; i++) {                                                                             \
            c0[i] = rowBias ? _mm512_set1_ps(rowBias[i]) : b0;                                                    \
            c1[i] = rowBias ? _mm512_set1_ps(rowBias[i]) : b1;                                                    \
        }                                                                                                         \
        for (long kk = 0; kk < k; kk++, p += 32) {                                                                \
            __m512 x0 = _mm512_load_ps(p), x1 = _mm512_load_ps(p + 16);                                           \
            _Pragma("GCC unroll 14")                                                                              \
            for (int i = 0; i < R; i++) {                                                                         \
                __m512 s = _mm512_set1_ps(a[(long)i * (AS) + kk * (KS)]);                                         \
                c0[i] = _mm512_fmadd_ps(s, x0, c0[i]);                                                            \
                c1[i] = _mm512_fmadd_ps(s, x1, c1[i]);                                                            \
            }                                                                                                     \
        }                                                                                                         \
        __m512 z = _mm512_setzero_ps();                                                                           \
        for (int i = 0; i < R; i++) {                                                                             \
            __m512 v0 = relu ? _mm512_max_ps(z, c0[i]) : c0[i], v1 = relu ? _mm512_max_ps(z, c1[i]) : c1[i];     \
            _mm512_mask_storeu_ps(c + (long)i * ldc, m0, v0);                                                     \
            _mm512_mask_storeu_ps(c + (long)i * ldc + 16, m1, v1);                                                \
        }                                                                                                         \
    }

#define DK_GEMM_TILES(PREFIX, AS, KS)                                                                             \
    DK_GEMM_TILE(PREFIX##_1, 1, AS, KS) DK_GEMM_TILE(PREFIX##_2, 2, AS, KS) DK_GEMM_TILE(PREFIX##_3, 3, AS, KS)   \
    DK_GEMM_TILE(PREFIX##_4, 4, AS, KS) DK_GEMM_TILE(PREFIX##_5, 5, AS, KS) DK_GEMM_TILE(PREFIX##_6, 6, AS, KS)   \
    DK_GEMM_TILE(PREFIX##_7, 7, AS, KS) DK_GEMM_TILE(PREFIX##_8, 8, AS, KS) DK_GEMM_TILE(PREFIX##_9, 9, AS, KS)   \
    DK_GEMM_TILE(PREFIX##_10, 10, AS, KS) DK_GEMM_TILE(PREFIX##_11, 11, AS, KS)                                   \
    DK_GEMM_TILE(PREFIX##_12, 12, AS, KS) DK_GEMM_TILE(PREFIX##_13, 13, AS, KS)                                   \
    DK_GEMM_TILE(PREFIX##_14, 14, AS, KS)                                                                         \
    static const dk_gemm_tile_fn PREFIX##_table[DK_TILE_MR + 1] = {                                               \
        0, PREFIX##_1, PREFIX##_2, PREFIX##_3, PREFIX##_4, PREFIX##_5, PREFIX##_6, PREFIX##_7, PREFIX##_8,        \
        PREFIX##_9, PREFIX##_10, PREFIX##_11, PREFIX##_12, PREFIX##_13, PREFIX##_14};

/* Masks of a panel of w <= 32 valid columns: lanes 0..15 and 16..31. */
static inline __mmask16 dk_tile_mask0(long w) { return (__mmask16)(w >= 16 ? 0xFFFFu : ((1u << w) - 1u)); }
static inline __mmask16 dk_tile_mask1(long w) {
    return (__mmask16)(w >= 32 ? 0xFFFFu : (w > 16 ? ((1u << (w - 16)) - 1u) : 0u));
}

/* Every 14-channel panel of `wp` (`cout` outputs over `k` inputs, dk_pointwise_conv's panel layout) over one packed
 * block `xpack[k][32]` of which `w` columns are valid: y[o*ldy + t] = act(bias[o] + sum_kk W[o][kk] xpack[kk][t]),
 * t < w, k in increasing order from the bias (NULL: zero), act ReLU when relu is 1 (NaN kept). Defined in
 * pointwise_avx512.c; used by the 1x1 kernel and the direct convolution. AVX-512F only. */
void dk_panels_over_block(long k, const float *wp, long cout, const float *bias, int relu, const float *xpack, long w,
                          float *y, long ldy);

#endif
