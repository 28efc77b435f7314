/* Row softmax, AVX-512F (see CKernels.h). */
#include "CKernels.h"
#include "avx512_math.h"
#include <immintrin.h>
#include <math.h>

#define MUL _mm512_mul_ps
#define ADD _mm512_add_ps
#define SUB _mm512_sub_ps
#define SET _mm512_set1_ps


__attribute__((target("avx512f")))
static void softmax_rows_512(float *x, long rows, long cols, float scale) {
    const __m512 sc = SET(scale);
    for (long r = 0; r < rows; r++) {
        float *row = x + r * cols;
        __m512 mx = SET(-INFINITY);
        __mmask16 nanSeen = 0;
        long j = 0;
        for (; j + 16 <= cols; j += 16) {
            __m512 v = MUL(_mm512_loadu_ps(row + j), sc);
            nanSeen |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
            _mm512_storeu_ps(row + j, v);
            mx = _mm512_max_ps(mx, v);
        }
        float m = _mm512_reduce_max_ps(mx);
        for (; j < cols; j++) {
            float v = row[j] * scale;
            row[j] = v;
            if (v != v) nanSeen = 1;
            if (v > m) m = v;
        }
        if (nanSeen) {
            for (j = 0; j < cols; j++) row[j] = NAN;
            continue;
        }
        __m512 mv = SET(m), sum = _mm512_setzero_ps();
        for (j = 0; j + 16 <= cols; j += 16) {
            __m512 e = dk_exp512(SUB(_mm512_loadu_ps(row + j), mv));
            _mm512_storeu_ps(row + j, e);
            sum = ADD(sum, e);
        }
        if (j < cols) {
            __mmask16 k = (__mmask16)((1u << (cols - j)) - 1u);
            __m512 e = dk_exp512(SUB(_mm512_maskz_loadu_ps(k, row + j), mv));
            e = _mm512_maskz_mov_ps(k, e);
            _mm512_mask_storeu_ps(row + j, k, e);
            sum = ADD(sum, e);
        }
        __m512 inv = SET(1.0f / _mm512_reduce_add_ps(sum));
        for (j = 0; j + 16 <= cols; j += 16) _mm512_storeu_ps(row + j, MUL(_mm512_loadu_ps(row + j), inv));
        if (j < cols) {
            __mmask16 k = (__mmask16)((1u << (cols - j)) - 1u);
            _mm512_mask_storeu_ps(row + j, k, MUL(_mm512_maskz_loadu_ps(k, row + j), inv));
        }
    }
}

int dk_softmax_rows(float *x, long rows, long cols, float scale) {
    if (!dk_has_avx512()) return 0;
    if (rows > 0 && cols > 0) softmax_rows_512(x, rows, cols, scale);
    return 1;
}
