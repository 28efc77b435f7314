/* 1x1 stride-1 convolution of one image (and group) on weights packed once, AVX-512F (see CKernels.h,
 * dk_pointwise_conv). y[o][p] = act(bias[o] + sum_c W[o][c] x[c][p]).
 * Per block of 32 pixels the input columns x[0..cin)[p..p+32) are copied to a contiguous scratch (planes are
 * hw floats apart, often a multiple of 4 KB, which would make the strided reads collide in L1); then for every
 * panel of up to 14 output channels the 14 x 32 register tile of gemm_tile_avx512.h (the weights broadcast,
 * the scratch as the panel) starts from the bias, sums c in increasing order and stores (ReLU applied, NaN kept). */
#include "CKernels.h"
#include "gemm_tile_avx512.h"
#include <immintrin.h>

#define MR DK_TILE_MR

/* A(i, kk) = wp[kk * 14 + i]: a panel of 14 output channels' weights */
DK_GEMM_TILES(pw_tile, 1, MR)

/* Every 14-channel panel of wp (cout outputs over k inputs) over one packed block xpack[k][32] (w valid columns):
 * y[o*ldy + t] = act(bias[o] + sum_kk wp(o, kk) * xpack[kk][t]) for t < w. Shared with the direct convolution
 * (conv_direct_avx512.c), whose gathered columns have the same layout. */
__attribute__((target("avx512f")))
void dk_panels_over_block(long k, const float *wp, long cout, const float *bias, int relu, const float *xpack, long w,
                          float *y, long ldy) {
    long panels = (cout + MR - 1) / MR;
    const __m512 zero = _mm512_setzero_ps();
    __mmask16 m0 = dk_tile_mask0(w), m1 = dk_tile_mask1(w);
    for (long q = 0; q < panels; q++) {
        long o = q * MR, mr = cout - o < MR ? cout - o : MR;
        pw_tile_table[mr](k, wp + q * k * MR, 0, xpack, bias ? bias + o : 0, zero, zero, relu, y + o * ldy, ldy, m0, m1);
    }
}

__attribute__((target("avx512f")))
static void pointwise_512(const float *x, long hw, long cin, const float *wp, long cout, const float *bias,
                          int relu, float *y, long p0, long p1, float *xpack) {
    for (long p = p0; p < p1; p += 32) {
        long w = p1 - p < 32 ? p1 - p : 32;
        __mmask16 m0 = dk_tile_mask0(w), m1 = dk_tile_mask1(w);
        for (long c = 0; c < cin; c++) {
            const float *src = x + c * hw + p;
            _mm512_store_ps(xpack + c * 32, _mm512_maskz_loadu_ps(m0, src));
            _mm512_store_ps(xpack + c * 32 + 16, _mm512_maskz_loadu_ps(m1, src + 16));
        }
        dk_panels_over_block(cin, wp, cout, bias, relu, xpack, w, y + p, hw);
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
