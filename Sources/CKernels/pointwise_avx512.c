/* 1x1 stride-1 convolution of one image (and group) on weights packed once, AVX-512F (see CKernels.h,
 * dk_pointwise_conv). y[o][p] = act(bias[o] + sum_c W[o][c] x[c][p]).
 * Per block of 32 pixels the input columns x[0..cin)[p..p+32) are copied to a contiguous scratch (planes are
 * hw floats apart, often a multiple of 4 KB, which would make the strided reads collide in L1); then for every
 * panel of up to 14 output channels a 14 x 32 register tile (28 accumulators; per input channel two scratch
 * vectors and fourteen broadcast weights for 28 FMAs) starts from the bias, sums c in increasing order and
 * stores (ReLU applied, NaN kept). */
#include "CKernels.h"
#include <immintrin.h>

#define MR 14

#define POINTWISE_TILE(R)                                                                                         \
    __attribute__((target("avx512f")))                                                                            \
    static void pw_tile_##R(long cin, const float *wp, const float *xp, const float *bias, int relu,              \
                            float *y, long hw, __mmask16 m0, __mmask16 m1) {                                      \
        __m512 c0[R], c1[R];                                                                                      \
        for (int i = 0; i < R; i++) { c0[i] = c1[i] = _mm512_set1_ps(bias ? bias[i] : 0.0f); }                    \
        for (long c = 0; c < cin; c++, wp += MR, xp += 32) {                                                      \
            __m512 x0 = _mm512_load_ps(xp), x1 = _mm512_load_ps(xp + 16);                                         \
            _Pragma("GCC unroll 14")                                                                              \
            for (int i = 0; i < R; i++) {                                                                         \
                __m512 s = _mm512_set1_ps(wp[i]);                                                                 \
                c0[i] = _mm512_fmadd_ps(s, x0, c0[i]);                                                            \
                c1[i] = _mm512_fmadd_ps(s, x1, c1[i]);                                                            \
            }                                                                                                     \
        }                                                                                                         \
        __m512 z = _mm512_setzero_ps();                                                                           \
        for (int i = 0; i < R; i++) {                                                                             \
            __m512 v0 = relu ? _mm512_max_ps(z, c0[i]) : c0[i], v1 = relu ? _mm512_max_ps(z, c1[i]) : c1[i];     \
            _mm512_mask_storeu_ps(y + (long)i * hw, m0, v0);                                                      \
            _mm512_mask_storeu_ps(y + (long)i * hw + 16, m1, v1);                                                 \
        }                                                                                                         \
    }

POINTWISE_TILE(1) POINTWISE_TILE(2) POINTWISE_TILE(3) POINTWISE_TILE(4) POINTWISE_TILE(5) POINTWISE_TILE(6)
POINTWISE_TILE(7) POINTWISE_TILE(8) POINTWISE_TILE(9) POINTWISE_TILE(10) POINTWISE_TILE(11) POINTWISE_TILE(12)
POINTWISE_TILE(13) POINTWISE_TILE(14)

typedef void (*pw_tile_fn)(long, const float *, const float *, const float *, int, float *, long, __mmask16, __mmask16);

__attribute__((target("avx512f")))
static void pointwise_512(const float *x, long hw, long cin, const float *wp, long cout, const float *bias,
                          int relu, float *y, long p0, long p1, float *xpack) {
    static const pw_tile_fn tiles[MR + 1] = {0, pw_tile_1, pw_tile_2, pw_tile_3, pw_tile_4, pw_tile_5, pw_tile_6,
                                             pw_tile_7, pw_tile_8, pw_tile_9, pw_tile_10, pw_tile_11, pw_tile_12,
                                             pw_tile_13, pw_tile_14};
    long panels = (cout + MR - 1) / MR;
    for (long p = p0; p < p1; p += 32) {
        long w = p1 - p < 32 ? p1 - p : 32;
        __mmask16 m0 = (__mmask16)(w >= 16 ? 0xFFFFu : ((1u << w) - 1u));
        __mmask16 m1 = (__mmask16)(w >= 32 ? 0xFFFFu : (w > 16 ? ((1u << (w - 16)) - 1u) : 0u));
        for (long c = 0; c < cin; c++) {
            const float *src = x + c * hw + p;
            _mm512_store_ps(xpack + c * 32, _mm512_maskz_loadu_ps(m0, src));
            _mm512_store_ps(xpack + c * 32 + 16, _mm512_maskz_loadu_ps(m1, src + 16));
        }
        for (long q = 0; q < panels; q++) {
            long o = q * MR, mr = cout - o < MR ? cout - o : MR;
            tiles[mr](cin, wp + q * cin * MR, xpack, bias ? bias + o : 0, relu, y + o * hw + p, hw, m0, m1);
        }
    }
}

long dk_pointwise_panel_floats(long cout, long cin) { return ((cout + MR - 1) / MR) * cin * MR; }

int dk_pointwise_conv(const float *x, long hw, long cin, const float *wpanels, long cout, const float *bias,
                      int relu, float *y, long p0, long p1, float *xpack) {
    if (!dk_has_avx512()) return 0;
    if (hw < 1 || cin < 1 || cout < 1 || p0 < 0 || p1 > hw || p0 > p1) return 0;
    pointwise_512(x, hw, cin, wpanels, cout, bias, relu, y, p0, p1, xpack);
    return 1;
}
