#ifndef DENSEKIT_CKERNELS_H
#define DENSEKIT_CKERNELS_H

/* DenseKit's hand-vectorised inner loops, compiled per function for the instruction sets
 * they need (`__attribute__((target(...)))`, no build flags) and chosen at run time:
 * every entry returns 0 without touching memory when this CPU lacks the instructions or the
 * geometry is not one it handles, and the Swift kernels then run instead. Layouts are
 * PyTorch's (NCHW planes, row-major). */

#ifdef __cplusplus
extern "C" {
#endif

/** 1 when this CPU runs the AVX-512F kernels below, else 0. */
int dk_has_avx512(void);

/**
 * One plane of a depthwise convolution: `dst[oh, ow] = act(bias + sum_{a,b} w[a*kW+b] *
 * src[oh*stride - padT + a, ow*stride - padL + b])`, taps outside the input count as zero.
 * `src` is `height x width`, `dst` is `outH x outW`, `w` is `kH x kW`; `relu` 1 applies
 * `max(0, y)` with NaN kept. Handles stride 1 or 2 (both axes), dilation 1, kW <= 8.
 * Returns 1 when done, 0 when not handled (nothing written).
 */
int dk_depthwise_plane(const float *src, float *dst, const float *w, float bias, int relu,
                       long height, long width, long outH, long outW,
                       int kH, int kW, int stride, int padT, int padL);

/**
 * One plane of max pooling with PyTorch's rule (a NaN in the window gives NaN; taps outside
 * the input are skipped): `dst[i, j] = max over valid (a, b) of src[i*strideH - padH + a,
 * j*strideW - padW + b]`, for dilation 1. `tmp` holds at least `width + 64` floats.
 * A window with no valid tap gives -inf. Returns 1 when done, 0 when not handled.
 */
int dk_maxpool_plane(const float *src, float *dst, float *tmp, long height, long width,
                     long outH, long outW, int kH, int kW, int strideH, int strideW,
                     int padH, int padW);

/**
 * Row-major GEMM onto weights packed once (linear layers): `c[r*ldc + j] = bias[j] + sum_k a[r*lda + kk] *
 * B[kk][j]` for `r < rows`, `j < n`, where B (`k x n`) is given as `ceil(n/32)` panels of `k x 32` floats,
 * `panels[(p*k + kk)*32 + t] = B[kk][32p + t]` (zero past column n), 64-byte aligned. `bias` may be NULL
 * (zero). Each element sums kk in increasing order from the bias. Returns 1 when done, 0 when this CPU lacks
 * AVX-512 or the sizes are invalid (nothing written).
 */
int dk_panel_gemm(const float *a, long lda, long rows, const float *panels, long n, long k,
                  const float *bias, float *c, long ldc);

/** Floats of the panels `dk_panel_gemm` reads for a `k x n` B. */
long dk_panel_floats(long n, long k);

/**
 * 1x1 stride-1 convolution of one image (or group) for output pixels `[p0, p1)`: `y[o*hw + p] = act(bias[o] +
 * sum_c W[o][c] * x[c*hw + p])` for `o < cout`, with the weights packed once as panels of 14 output channels,
 * `wpanels[(q*cin + c)*14 + i] = W[14q + i][c]` (zero past cout), 64-byte aligned. `bias` may be NULL (zero);
 * `relu` 1 applies max(0, y) with NaN kept. `xpack` is scratch of `cin * 32` floats, 64-byte aligned. Each
 * element sums c in increasing order from the bias. Returns 1 when done, 0 when this CPU lacks AVX-512 or the
 * sizes are invalid (nothing written).
 */
int dk_pointwise_conv(const float *x, long hw, long cin, const float *wpanels, long cout, const float *bias,
                      int relu, float *y, long p0, long p1, float *xpack);

/**
 * Direct convolution of one image (one group) for output pixels `[q0, q1)` (flattened `oh * outW + ow`):
 * `y[o*outH*outW + q] = act(bias[o] + sum_k W[o][k] * col[k][q])`, `k = (c*kH + a)*kW + b` over `cin x kH x kW`,
 * `col[k][q] = x[c][oh*sH - padT + a*dH][ow*sW - padL + b*dW]` (zero outside the `height x width` planes). The
 * weights are packed as `dk_pointwise_conv`'s panels with `cin*kH*kW` inputs (PyTorch's `[cout, cin, kH, kW]`
 * flattened per output channel). `xpack` is scratch of `cin*kH*kW*32` floats, 64-byte aligned. Each element sums k
 * in increasing order from the bias; `relu` 1 applies max(0, y) with NaN kept. Returns 1 when done, 0 when this
 * CPU lacks AVX-512 or the sizes are invalid (nothing written).
 */
int dk_conv_direct(const float *x, long cin, long height, long width, const float *wpanels, long cout,
                   const float *bias, int relu, float *y, long outH, long outW, long kH, long kW, long sH, long sW,
                   long dH, long dW, long padT, long padL, long q0, long q1, float *xpack);

/** Floats of the weight panels `dk_pointwise_conv` reads for `cout x cin` weights. */
long dk_pointwise_panel_floats(long cout, long cin);

/**
 * `y[i] = gelu(x[i])`, exact (erf) form, for `count` values (`x == y` allowed), with fused multiply-adds and a
 * Newton-refined reciprocal: the erfc formula of DenseKit's Swift `VectorMath.gelu1` (Numerical Recipes' erfcc),
 * relative error below 2e-7 of the true GELU (max(1, |gelu|) scale), NaN kept, but NOT bit-identical to the
 * Swift formula (which has no fused multiply-adds; this kernel is about 1.7x faster than an AVX-512 copy of it).
 * Returns 1 when done, 0 when this CPU lacks AVX-512 (nothing written).
 */
int dk_gelu_fma(const float *x, float *y, long count);

/**
 * Attention of `nq` queries over `L` keys/values read in place (Bi-level Routing Attention's token
 * attention for one region and head; any attention whose rows sit at arbitrary offsets):
 * `out[outRows[i] + d] = sum_u softmax_u(scale * q_i . k_u) v_u[d]` for `d < dv`, where
 * `q_i = base + queryRows[i]` (`dq` floats), `k_u = base + keyRows[u] + keyOffset` (`dq` floats),
 * `v_u = base + keyRows[u] + valueOffset` (`dv` floats). The softmax runs over all `L` keys (no mask).
 * `scratch` holds at least `dk_attention_scratch(L, dq, dv)` floats. Returns 1 when done, 0 when this CPU
 * lacks AVX-512 or a size is out of range (nothing written).
 */
int dk_attention_rows(const float *base, const long *queryRows, long nq, const long *keyRows, long L,
                      long keyOffset, long valueOffset, int dq, int dv, float scale,
                      float *out, const long *outRows, float *scratch);

/** Floats of scratch `dk_attention_rows` needs for `L` keys of `dq` (query/key) and `dv` (value) floats. */
long dk_attention_scratch(long L, int dq, int dv);

/**
 * The same attention in two steps, so that several threads can share one head's keys and values:
 * `dk_attention_pack` copies the keys (transposed, zero-padded) and values of `keyRows` (as in
 * `dk_attention_rows`) into `packed` (`dk_attention_packed_floats(L, dq, dv)` floats); `dk_attention_packed`
 * then computes the queries `queryRows` against them (`scratch`: `dk_attention_query_scratch(L, dq, dv)`
 * floats per concurrent call). Same results, bit for bit, as `dk_attention_rows`. Each returns 1 when done, 0
 * when this CPU lacks AVX-512 or a size is out of range (nothing written).
 */
int dk_attention_pack(const float *base, const long *keyRows, long L, long keyOffset, long valueOffset,
                      int dq, int dv, float *packed);
int dk_attention_packed(const float *base, const long *queryRows, long nq, long L, int dq, int dv, float scale,
                        const float *packed, float *out, const long *outRows, float *scratch);
/** Floats of one head's packed keys and values (`dk_attention_pack`). */
long dk_attention_packed_floats(long L, int dq, int dv);
/** Floats of scratch of one `dk_attention_packed` call. */
long dk_attention_query_scratch(long L, int dq, int dv);

/**
 * In-place row softmax of `x * scale` for `rows` rows of `cols` floats (row stride `cols`): the max,
 * Cephes exp of the shifted values (as the other kernels), then division by the row sum. A NaN in a
 * row gives NaN there. Returns 1 when done, 0 when this CPU lacks AVX-512 (nothing written).
 */
int dk_softmax_rows(float *x, long rows, long cols, float scale);

/**
 * Layer normalisation of `rows` rows of `cols` floats (row stride `cols`): `y = (z - mu) / sqrt(var + eps) *
 * weight + bias` per row of `z`, `weight` / `bias` `cols` floats or NULL. Without `residual` (NULL), `z = x`; with
 * it (same layout), `z = x + residual` (float) is first written to `sum` (which may equal `x`). Mean and variance
 * are summed in double, the affine step in double as DenseKit's Swift `NormKernels.layerNormRow` (no fused
 * multiply-add); `y` may equal `x` or `sum`. Returns 1 when done, 0 when this CPU lacks AVX-512, `cols < 1` or
 * `residual` comes without `sum` (nothing written).
 */
int dk_layernorm_rows(const float *x, const float *residual, float *sum, long rows, long cols, const float *weight,
                      const float *bias, double eps, float *y);

/**
 * Winograd F(2x2, 3x3) input transform (Lavin & Gray 2016): for the output tiles `t0 ..< t0 + count`
 * (row-major over a `tilesH x tilesW` grid of 2x2 output blocks) and channels `c0 ..< c1` of the plane
 * stack `x` (`channels x height x width`), reads the 4x4 input patch at rows `2*ty - padT + i`, columns
 * `2*tx - padL + j` (zero outside) and writes `V = B^T d B` to `v[(xi*4 + nu) * channels * count + c * count
 * + (t - t0)]`. Returns 1 when done, 0 when this CPU lacks AVX-512 (nothing written).
 */
int dk_winograd_input(const float *x, long channels, long height, long width, long padT, long padL,
                      long tilesW, long t0, long count, long c0, long c1, float *v);

/**
 * Winograd F(2x2, 3x3) output transform: from `m[(xi*4 + nu) * outChannels * count + o * count + (t - t0)]`
 * (the 16 GEMM products) computes `Y = A^T M A + bias[o]` (ReLU when `relu` is 1, NaN kept) for output
 * channels `o0 ..< o1` and writes the 2x2 blocks that fall inside the `outH x outW` planes of `y`.
 * Returns 1 when done, 0 when this CPU lacks AVX-512 (nothing written).
 */
int dk_winograd_output(const float *m, long outChannels, long tilesW, long t0, long count, long o0, long o1,
                       const float *bias, int relu, float *y, long outH, long outW);

/** Geometry of one axial attention (kMaX `AxialAttention`, spec polymax-head.md 3.3) on a position-major
 * map: position `l` of the sequence holds its `q` (heads x dk), `k` (heads x dk), `v` (heads x dv) channels
 * at `qkv + l * posStride` (q at 0, k at `keyOffset`, v at `valueOffset`, head-major). */
typedef struct {
    long length;        /* L, positions of the sequence (1 ... span) */
    long posStride;     /* floats between consecutive positions in qkv */
    long outPosStride;  /* floats between consecutive positions in out */
    long keyOffset;     /* channel of the first key value (heads * dk) */
    long valueOffset;   /* channel of the first value (2 * heads * dk) */
    long span;          /* max span: relative table row of (l, m) is m - l + span - 1 */
    long tableRows;     /* 2 * span - 1 */
    int heads, dk, dv;  /* heads; key and value depth per head */
} dk_axial_geometry;

/**
 * One sequence of a kMaX axial attention, all heads: for every head and query position `l`,
 * `logit[m] = a0 q_l.k_m + a1 q_l.Rq[l,m] + a2 k_m.Rk[l,m] + (b0 + b1 + b2)` with `(a_t, b_t) =
 * (simScale, simShift)[t * heads + head]` and `R[l, m] = table row m - l + span - 1`; softmax over `m`
 * (Cephes exp); `o1 = sum_m w v_m`, `o2 = sum_m w Rv[l,m]`; writes
 * `out[l * outPosStride + ch] = (retScale[ch] o1 + retShift[ch]) + (retScale[vd+ch] o2 + retShift[vd+ch])`,
 * `ch = head * dv + d`, `vd = heads * dv`. `queryTable`, `keyTable` are transposed (`[d][tableRows]`),
 * `valueTable` is `[tableRows][dv]`. `scratch` holds `2 * dk * Lp + Lp` floats, `Lp = L` rounded up to 16.
 * Returns 1 when done, 0 when this CPU lacks AVX-512 or the geometry is invalid (nothing written).
 */
int dk_axial_sequence(const dk_axial_geometry *g, const float *qkv, const float *queryTable, const float *keyTable,
                      const float *valueTable, const float *simScale, const float *simShift,
                      const float *retScale, const float *retShift, float *out, float *scratch);

/**
 * Soft assignment of the tokens of one home cell in the token clustering layer (spec token-clustering.md
 * 2.3-2.4): for token rows `x + tokenRows[i]` (i < nt) and candidate centres `centres + centreRows[j]`
 * (j < nc; the window around the home cell), `c` floats each, writes
 * `aff[i * nc + j] = softmax_j(-t * ||x_i - s_j||^2)` (direct squared distance in float32 lanes; the
 * per-token maximum subtracted; exp with gradual underflow as float32 expf).
 * Returns 1 when done, 0 when this CPU lacks AVX-512 or a size is out of range (nothing written).
 */
int dk_token_cluster_affinity(const float *x, const long *tokenRows, long nt, const float *centres,
                              const long *centreRows, long nc, long c, float t, float *aff);

/**
 * Centre update of the token clustering layer (spec 2.4) for centres `m0 ..< m1`: centre m is fed by the pairs
 * `i` in `pairStart[m] ..< pairStart[m + 1]`, token row `x + pairRows[i]`, weight `w_i = aff[pairAff[i]]`;
 * `centres[m * c + k] = (sum_i w_i x[pairRows[i] + k]) / max(den, 1e-16)` with `den = sum w_i` in double
 * rounded to float (a centre with no weight becomes the zero vector), k < c. Each channel sums the even and
 * the odd pairs in order, then adds the two. Returns 1 when done, 0 when this CPU lacks AVX-512 (nothing
 * written).
 */
int dk_token_cluster_update(const float *x, const long *pairStart, const long *pairRows, const float *aff,
                            const long *pairAff, long m0, long m1, long c, float *centres);

/** Floats of scratch `dk_token_reconstruct` needs for `m` centres (one thread's share). */
long dk_token_reconstruct_scratch(long m);

/**
 * Token reconstruction (spec token-clustering.md 3) of tokens `n0 ..< n1`: `feat` [N, c] and `centres`
 * [m, c] row-major, `x` [m, c2]; per token `W[j] = exp(-t * (||f - s_j||^2 - shift))` (direct squared
 * distances; shift = the row's smallest distance when `stabilized` is 1, else 0), entries below the k-th
 * largest set to 0 when `1 <= k < m` (ties at the k-th value are kept; k = -1 or k = m keeps all), the row
 * divided by `max(||W||_2, 1e-12)` (norm summed in double), `y[n] = sum_j W[j] x[j]` ([N, c2]); `weights`
 * ([N, m], or NULL) receives the normalised row.
 * `dots` ([N, m], `dots[n * m + j] = f_n . s_j` from any float32 GEMM, or NULL) lets a token with
 * `1 <= k < m` screen the centres: only those that can reach the k-th weight (by an error bound on
 * `|f|^2 + |s|^2 - 2 f.s`) get their direct distance; the result is the same as without `dots` (to the
 * rounding of the norm), and a token falls back to all direct distances where the screen does not apply.
 * `scratch` holds `dk_token_reconstruct_scratch(m)` floats (16-byte aligned). Returns 1 when done, 0 when
 * this CPU lacks AVX-512 or an argument is out of range (nothing written).
 */
int dk_token_reconstruct(const float *feat, long n0, long n1, const float *centres, long m, long c,
                         const float *x, long c2, long k, float t, int stabilized, const float *dots,
                         float *y, float *weights, float *scratch);

#ifdef __cplusplus
}
#endif
#endif
