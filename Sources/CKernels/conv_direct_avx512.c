/* Direct convolution (any kernel, stride, dilation, padding; one group) of one image on weights packed once, AVX-512F
 * (see CKernels.h, dk_conv_direct). y[o][q] = act(bias[o] + sum_k W[o][k] col[k][q]) over output pixels q (flattened
 * oh * OW + ow), k = (c * kH + a) * kW + b, col[k][q] = x[c][oh*sH - padT + a*dH][ow*sW - padL + b*dW] (zero outside).
 * Per block of 32 output pixels the K x 32 columns are gathered into a contiguous scratch (row segments of the block
 * by vector loads: unit stride directly, stride 2 by an even-lane permute; other strides lane by lane), then every
 * panel of up to 14 output channels runs the 14 x 32 register tile of gemm_tile_avx512.h over k in increasing order
 * from the bias, as the 1x1 kernel does: an im2col that never leaves L2, with no GEMM call per block. */
#include "CKernels.h"
#include "gemm_tile_avx512.h"   /* dk_panels_over_block: the 1x1 kernel's panels over a packed block */
#include <immintrin.h>


typedef struct {
    const float *x;
    long cin, height, width, outW, kH, kW, sH, sW, dH, dW, padT, padL;
} direct_geometry;

static inline __mmask16 lanes(long lo, long hi) {
    /* bits [lo, hi) of 16, clamped */
    if (lo < 0) lo = 0;
    if (hi > 16) hi = 16;
    if (hi <= lo) return 0;
    unsigned m = (hi - lo >= 16) ? 0xFFFFu : ((1u << (hi - lo)) - 1u);
    return (__mmask16)(m << lo);
}

/* columns t0 .. t0+len of the block: output row oh, output columns ow0 .. ow0+len (len <= 32 - t0) */
__attribute__((target("avx512f")))
static void gather_segment(const direct_geometry *g, long oh, long ow0, long len, long t0, float *xpack) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    __mmask16 s0 = lanes(0, len), s1 = lanes(0, len - 16);
    long k = 0;
    for (long c = 0; c < g->cin; c++) {
        for (long a = 0; a < g->kH; a++) {
            long ih = oh * g->sH - g->padT + a * g->dH;
            int inside = ih >= 0 && ih < g->height;
            const float *row = inside ? g->x + (c * g->height + ih) * g->width : g->x;
            for (long b = 0; b < g->kW; b++, k++) {
                float *dst = xpack + k * 32 + t0;
                __m512 v0 = _mm512_setzero_ps(), v1 = _mm512_setzero_ps();
                if (inside) {
                    long iw0 = ow0 * g->sW - g->padL + b * g->dW;   /* input column of lane 0 */
                    if (g->sW == 1) {
                        /* lane t reads iw0 + t, valid while 0 <= iw0 + t < width */
                        v0 = _mm512_maskz_loadu_ps(lanes(-iw0, g->width - iw0), row + iw0);
                        v1 = _mm512_maskz_loadu_ps(lanes(-iw0 - 16, g->width - iw0 - 16), row + iw0 + 16);
                    } else if (g->sW == 2) {
                        /* lane t reads iw0 + 2t: the even lanes of 64 consecutive columns */
                        __m512 e0 = _mm512_maskz_loadu_ps(lanes(-iw0, g->width - iw0), row + iw0);
                        __m512 e1 = _mm512_maskz_loadu_ps(lanes(-iw0 - 16, g->width - iw0 - 16), row + iw0 + 16);
                        __m512 e2 = _mm512_maskz_loadu_ps(lanes(-iw0 - 32, g->width - iw0 - 32), row + iw0 + 32);
                        __m512 e3 = _mm512_maskz_loadu_ps(lanes(-iw0 - 48, g->width - iw0 - 48), row + iw0 + 48);
                        v0 = _mm512_permutex2var_ps(e0, even, e1);
                        v1 = _mm512_permutex2var_ps(e2, even, e3);
                    } else {
                        float tmp[32];
                        for (long t = 0; t < 32; t++) {
                            long iw = iw0 + t * g->sW;
                            tmp[t] = (t < len && iw >= 0 && iw < g->width) ? row[iw] : 0.0f;
                        }
                        v0 = _mm512_loadu_ps(tmp);
                        v1 = _mm512_loadu_ps(tmp + 16);
                    }
                }
                _mm512_mask_storeu_ps(dst, s0, v0);
                _mm512_mask_storeu_ps(dst + 16, s1, v1);
            }
        }
    }
}

__attribute__((target("avx512f")))
static void conv_direct_512(const direct_geometry *g, const float *wp, long cout, const float *bias, int relu,
                            float *y, long outPixels, long q0, long q1, float *xpack) {
    long kdim = g->cin * g->kH * g->kW;
    for (long q = q0; q < q1; q += 32) {
        long w = q1 - q < 32 ? q1 - q : 32;
        for (long t0 = 0; t0 < w;) {
            long oh = (q + t0) / g->outW, ow0 = (q + t0) % g->outW;
            long len = g->outW - ow0 < w - t0 ? g->outW - ow0 : w - t0;
            gather_segment(g, oh, ow0, len, t0, xpack);
            t0 += len;
        }
        if (w < 32) {
            /* lanes past the last pixel: defined values (the tile reads all 32; its stores are masked) */
            for (long k = 0; k < kdim; k++)
                for (long t = w; t < 32; t++) xpack[k * 32 + t] = 0.0f;
        }
        dk_panels_over_block(kdim, wp, cout, bias, relu, xpack, w, y + q, outPixels);
    }
}

int dk_conv_direct(const float *x, long cin, long height, long width, const float *wpanels, long cout,
                   const float *bias, int relu, float *y, long outH, long outW, long kH, long kW, long sH, long sW,
                   long dH, long dW, long padT, long padL, long q0, long q1, float *xpack) {
    if (!dk_has_avx512()) return 0;
    if (cin < 1 || height < 1 || width < 1 || cout < 1 || outH < 1 || outW < 1 || kH < 1 || kW < 1 || sH < 1 ||
        sW < 1 || dH < 1 || dW < 1 || padT < 0 || padL < 0 || q0 < 0 || q1 > outH * outW || q0 > q1)
        return 0;
    direct_geometry g = {x, cin, height, width, outW, kH, kW, sH, sW, dH, dW, padT, padL};
    conv_direct_512(&g, wpanels, cout, bias, relu, y, outH * outW, q0, q1, xpack);
    return 1;
}
