/* AVX-512F kernels (see CKernels.h). Each is compiled for avx512f by attribute and only
 * called after dk_has_avx512() said yes. */
#include "CKernels.h"
#include <immintrin.h>
#include <math.h>

int dk_has_avx512(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") ? 1 : 0;
    }
    return cached;
}

/* ------------------------------------------------------------------ depthwise */

static inline float dw_border(const float *src, const float *w, float bias, long width,
                              long ih0, int aLo, int aHi, long iw0, int kW) {
    float acc = bias;
    for (int a = aLo; a < aHi; a++) {
        const float *in = src + (ih0 + a) * width;
        for (int b = 0; b < kW; b++) {
            long iw = iw0 + b;
            if (iw >= 0 && iw < width) acc += w[a * kW + b] * in[iw];
        }
    }
    return acc;
}

static inline float relu1(float v) { return (0.0f > v) ? 0.0f : v; }

__attribute__((target("avx512f")))
static void dw_plane_512(const float *src, float *dst, const float *w, float bias, int relu,
                         long height, long width, long outH, long outW,
                         int kH, int kW, int s, int padT, int padL) {
    long cLo = padL <= 0 ? 0 : (padL + s - 1) / s;
    long lastNum = width - 1 + padL - (kW - 1);          /* ow*s <= lastNum keeps every tap inside */
    long cHi = lastNum < 0 ? 0 : lastNum / s + 1;
    if (cHi > outW) cHi = outW;
    if (cLo > outW) cLo = outW;
    if (cHi < cLo) cHi = cLo;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512 zero = _mm512_setzero_ps();
    __m512 wv[64];
    for (int i = 0; i < kH * kW && i < 64; i++) wv[i] = _mm512_set1_ps(w[i]);
    for (long oh = 0; oh < outH; oh++) {
        long ih0 = oh * s - padT;
        int aLo = 0, aHi = kH;
        while (aLo < kH && ih0 + aLo < 0) aLo++;
        while (aHi > aLo && ih0 + aHi - 1 >= height) aHi--;
        float *row = dst + oh * outW;
        long ow = 0;
        for (; ow < cLo; ow++) {
            float v = dw_border(src, w, bias, width, ih0, aLo, aHi, ow * s - padL, kW);
            row[ow] = relu ? relu1(v) : v;
        }
        for (; ow < cHi; ow += 16) {
            long n = cHi - ow;
            if (n > 16) n = 16;
            __mmask16 m = (__mmask16)(n == 16 ? 0xFFFFu : ((1u << n) - 1u));
            __m512 acc = _mm512_set1_ps(bias);
            if (s == 1) {
                for (int a = aLo; a < aHi; a++) {
                    const float *in = src + (ih0 + a) * width + ow - padL;
                    for (int b = 0; b < kW; b++)
                        acc = _mm512_fmadd_ps(wv[a * kW + b], _mm512_maskz_loadu_ps(m, in + b), acc);
                }
            } else {
                /* stride 2: lanes 0 .. 2(n-1) of 32 consecutive floats, even ones kept. */
                long need = 2 * n - 1;
                __mmask16 mlo = (__mmask16)(need >= 16 ? 0xFFFFu : ((1u << need) - 1u));
                long nh = need - 16;
                __mmask16 mhi = (__mmask16)(nh <= 0 ? 0u : ((1u << nh) - 1u));
                for (int a = aLo; a < aHi; a++) {
                    const float *in = src + (ih0 + a) * width + 2 * ow - padL;
                    for (int b = 0; b < kW; b++) {
                        __m512 lo = _mm512_maskz_loadu_ps(mlo, in + b);
                        __m512 hi = _mm512_maskz_loadu_ps(mhi, in + b + 16);
                        acc = _mm512_fmadd_ps(wv[a * kW + b], _mm512_permutex2var_ps(lo, even, hi), acc);
                    }
                }
            }
            if (relu) acc = _mm512_max_ps(zero, acc);
            _mm512_mask_storeu_ps(row + ow, m, acc);
        }
        if (ow < cHi) ow = cHi;
        if (ow > cHi) ow = cHi;
        for (; ow < outW; ow++) {
            float v = dw_border(src, w, bias, width, ih0, aLo, aHi, ow * s - padL, kW);
            row[ow] = relu ? relu1(v) : v;
        }
    }
}

int dk_depthwise_plane(const float *src, float *dst, const float *w, float bias, int relu,
                       long height, long width, long outH, long outW,
                       int kH, int kW, int stride, int padT, int padL) {
    if (!dk_has_avx512()) return 0;
    if (stride != 1 && stride != 2) return 0;
    if (kW < 1 || kW > 8 || kH < 1 || kH > 8 || padT < 0 || padL < 0) return 0;
    if (height <= 0 || width <= 0 || outH <= 0 || outW <= 0) return 0;
    dw_plane_512(src, dst, w, bias, relu, height, width, outH, outW, kH, kW, stride, padT, padL);
    return 1;
}

/* ------------------------------------------------------------------ max pool */

/* nanMax(acc, v): v when v > acc or v is NaN, else acc (the first of equal values stays). */
static inline float nan_max(float acc, float v) { return (v > acc || v != v) ? v : acc; }

__attribute__((target("avx512f")))
static inline __m512 nan_max512(__m512 acc, __m512 v) {
    __mmask16 isnan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    return _mm512_mask_blend_ps(isnan, _mm512_max_ps(v, acc), v);
}

__attribute__((target("avx512f")))
static void maxpool_plane_512(const float *src, float *dst, float *tmp, long height, long width,
                              long outH, long outW, int kH, int kW, int sH, int sW, int padH, int padW) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    /* interior output columns: the whole window [j*sW - padW, j*sW - padW + kW) inside [0, width) */
    long jLo = padW <= 0 ? 0 : (padW + sW - 1) / sW;
    long lastNum = width - kW + padW;
    long jHi = lastNum < 0 ? 0 : lastNum / sW + 1;
    if (jHi > outW) jHi = outW;
    if (jLo > outW) jLo = outW;
    if (jHi < jLo) jHi = jLo;
    for (long i = 0; i < outH; i++) {
        long hs = i * sH - padH;
        int aLo = 0, aHi = kH;
        while (aLo < kH && hs + aLo < 0) aLo++;
        while (aHi > aLo && hs + aHi - 1 >= height) aHi--;
        float *yr = dst + i * outW;
        if (aHi <= aLo) {
            for (long j = 0; j < outW; j++) yr[j] = -INFINITY;
            continue;
        }
        /* vertical max of the valid rows into tmp */
        const float *r0 = src + (hs + aLo) * width;
        long x = 0;
        for (; x + 16 <= width; x += 16) {
            __m512 acc = _mm512_loadu_ps(r0 + x);
            for (int a = aLo + 1; a < aHi; a++) acc = nan_max512(acc, _mm512_loadu_ps(src + (hs + a) * width + x));
            _mm512_storeu_ps(tmp + x, acc);
        }
        for (; x < width; x++) {
            float acc = r0[x];
            for (int a = aLo + 1; a < aHi; a++) acc = nan_max(acc, src[(hs + a) * width + x]);
            tmp[x] = acc;
        }
        /* horizontal */
        long j = 0;
        for (; j < jLo; j++) {
            long ws = j * sW - padW;
            float m = -INFINITY;
            for (int b = 0; b < kW; b++) { long c = ws + b; if (c >= 0 && c < width) m = nan_max(m, tmp[c]); }
            yr[j] = m;
        }
        if (kW == 3 && sW == 2) {
            for (; j + 16 <= jHi; j += 16) {
                const float *t = tmp + 2 * j - padW;   /* reads t[0 .. 32]; t[32] <= width - 1 */
                __m512 lo = _mm512_loadu_ps(t), hi = _mm512_loadu_ps(t + 16);
                __m512 lo2 = _mm512_loadu_ps(t + 2), hi2 = _mm512_maskz_loadu_ps((__mmask16)0x7FFF, t + 18);
                __m512 m = _mm512_permutex2var_ps(lo, even, hi);
                m = nan_max512(m, _mm512_permutex2var_ps(lo, odd, hi));
                m = nan_max512(m, _mm512_permutex2var_ps(lo2, even, hi2));
                _mm512_storeu_ps(yr + j, m);
            }
        } else if (sW == 1) {
            for (; j + 16 <= jHi; j += 16) {
                const float *t = tmp + j - padW;
                __m512 m = _mm512_loadu_ps(t);
                for (int b = 1; b < kW; b++) m = nan_max512(m, _mm512_loadu_ps(t + b));
                _mm512_storeu_ps(yr + j, m);
            }
        }
        for (; j < jHi; j++) {
            const float *t = tmp + j * sW - padW;
            float m = t[0];
            for (int b = 1; b < kW; b++) m = nan_max(m, t[b]);
            yr[j] = m;
        }
        for (; j < outW; j++) {
            long ws = j * sW - padW;
            float m = -INFINITY;
            for (int b = 0; b < kW; b++) { long c = ws + b; if (c >= 0 && c < width) m = nan_max(m, tmp[c]); }
            yr[j] = m;
        }
    }
}

int dk_maxpool_plane(const float *src, float *dst, float *tmp, long height, long width,
                     long outH, long outW, int kH, int kW, int strideH, int strideW,
                     int padH, int padW) {
    if (!dk_has_avx512()) return 0;
    if (kH < 1 || kW < 1 || strideH < 1 || strideW < 1 || padH < 0 || padW < 0) return 0;
    if (height <= 0 || width <= 0 || outH <= 0 || outW <= 0) return 0;
    maxpool_plane_512(src, dst, tmp, height, width, outH, outW, kH, kW, strideH, strideW, padH, padW);
    return 1;
}
