/* Inputs, launch layout and plain C references for the Triton tutorial
 * kernels of tests/tutorial/tutorial.xk; see tutorial_cases.h. Sizes are
 * ragged (no multiple of any block size) and small enough for sim. */
#include "tutorial_cases.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NSIZES(a) ((int)(sizeof a / sizeof *a))

/* {M, N}; softmax keeps a whole row in one tile, so N <= 125 fits every
 * BLOCK_N of its tune space; M = 67 > PROGRAMS makes programs loop */
static const int32_t softmax_sizes[][2] = {{1, 1}, {5, 77}, {67, 125}};
static const int32_t norm_sizes[][2] = {{1, 1}, {3, 200}, {4, 1100}};
/* {M, N, K}; M = 300 gives 10 block rows at BLOCK_M 32: a full GROUP_M
 * group of 8 and a ragged one of 2 */
static const int32_t matmul_sizes[][3] = {
    {1, 1, 1}, {37, 29, 45}, {70, 133, 67}, {300, 70, 20}};
static const int32_t attention_sizes[] = {1, 37, 100}; /* N_CTX */
static const int32_t rows_sizes[][2] = {{1, 1}, {5, 100}, {19, 300}};
static const int32_t tile_sizes[][2] = {{1, 1}, {37, 29}, {70, 133}};
#define ATTN_HEADS 2

static int64_t const_or(const xk_func *f, const char *name, xk_diag *d) {
  int64_t v;
  return xk_case_const(f, name, &v, d) ? -1 : v;
}

static int setup_softmax(xk_case *c, const xk_func *f, int s, uint64_t *rs,
                         xk_diag *d) {
  int32_t m = softmax_sizes[s][0], n = softmax_sizes[s][1], ldx = n + 3;
  int64_t bn = const_or(f, "BLOCK_N", d), np = const_or(f, "PROGRAMS", d);
  if (bn < 0 || np < 0)
    return -1;
  if (n > bn)
    return xk_diag_set(d, "tut_softmax: N=%d > BLOCK_N=%lld", n, (long long)bn);
  float *x = xk_case_buf(c, f, "X", XK_F32, (size_t)m * ldx, d);
  double *ref;
  if (!x || !xk_case_output(c, f, "Y", XK_F32, (int64_t)m * n, 1e-5, &ref, d) ||
      xk_case_i32(c, f, "x_stride", ldx, d) ||
      xk_case_i32(c, f, "y_stride", n, d) || xk_case_i32(c, f, "M", m, d) ||
      xk_case_i32(c, f, "N", n, d))
    return -1;
  xk_case_fill_f32(x, (size_t)m * ldx, -8, 8, rs);
  xk_case_ref_softmax(x, m, n, ldx, ref);
  c->grid[0] = m < np ? m : (int32_t)np;
  snprintf(c->desc, sizeof c->desc, "M=%d N=%d", m, n);
  return 0;
}

static int setup_layer_norm(xk_case *c, const xk_func *f, int s, uint64_t *rs,
                            xk_diag *d) {
  int32_t m = norm_sizes[s][0], n = norm_sizes[s][1];
  const float eps = 1e-5f;
  float *x = xk_case_buf(c, f, "X", XK_F32, (size_t)m * n, d);
  float *w = x ? xk_case_buf(c, f, "W", XK_F32, (size_t)n, d) : NULL;
  float *b = w ? xk_case_buf(c, f, "B", XK_F32, (size_t)n, d) : NULL;
  double *ry, *rmean, *rrstd;
  if (!b || !xk_case_output(c, f, "Y", XK_F32, (int64_t)m * n, 1e-5, &ry, d) ||
      !xk_case_output(c, f, "Mean", XK_F32, m, 1e-5, &rmean, d) ||
      !xk_case_output(c, f, "Rstd", XK_F32, m, 1e-4, &rrstd, d) ||
      xk_case_i32(c, f, "stride", n, d) || xk_case_i32(c, f, "M", m, d) ||
      xk_case_i32(c, f, "N", n, d) || xk_case_f32(c, f, "eps", eps, d))
    return -1;
  /* an offset mean, so that centring matters */
  xk_case_fill_f32(x, (size_t)m * n, -1.5, 2.5, rs);
  xk_case_fill_f32(w, (size_t)n, 0.5, 1.5, rs);
  xk_case_fill_f32(b, (size_t)n, -0.5, 0.5, rs);
  for (int32_t r = 0; r < m; r++) {
    const float *xr = x + (size_t)r * n;
    double mean = 0, var = 0;
    for (int32_t j = 0; j < n; j++)
      mean += xr[j];
    mean /= n;
    for (int32_t j = 0; j < n; j++)
      var += (xr[j] - mean) * (xr[j] - mean);
    double rstd = 1 / sqrt(var / n + eps);
    rmean[r] = mean;
    rrstd[r] = rstd;
    for (int32_t j = 0; j < n; j++)
      ry[(size_t)r * n + j] = (xr[j] - mean) * rstd * w[j] + b[j];
  }
  c->grid[0] = m;
  snprintf(c->desc, sizeof c->desc, "M=%d N=%d", m, n);
  return 0;
}

static int setup_rms_norm(xk_case *c, const xk_func *f, int s, uint64_t *rs,
                          xk_diag *d) {
  int32_t m = norm_sizes[s][0], n = norm_sizes[s][1];
  const float eps = 1e-6f;
  uint16_t *x = xk_case_buf(c, f, "X", XK_F16, (size_t)m * n, d);
  float *w = x ? xk_case_buf(c, f, "W", XK_F32, (size_t)n, d) : NULL;
  double *ref;
  if (!w || !xk_case_output(c, f, "Y", XK_F16, (int64_t)m * n, 1e-2, &ref, d) ||
      xk_case_i32(c, f, "stride", n, d) || xk_case_i32(c, f, "M", m, d) ||
      xk_case_i32(c, f, "N", n, d) || xk_case_f32(c, f, "eps", eps, d))
    return -1;
  xk_case_fill_f16(x, (size_t)m * n, -2, 2, rs);
  xk_case_fill_f32(w, (size_t)n, 0.5, 1.5, rs);
  for (int32_t r = 0; r < m; r++) {
    const uint16_t *xr = x + (size_t)r * n;
    double ss = 0;
    for (int32_t j = 0; j < n; j++)
      ss += (double)xk_f16_to_f32(xr[j]) * xk_f16_to_f32(xr[j]);
    double rrms = 1 / sqrt(ss / n + eps);
    for (int32_t j = 0; j < n; j++)
      ref[(size_t)r * n + j] = xk_f16_to_f32(xr[j]) * rrms * w[j];
  }
  c->grid[0] = m;
  snprintf(c->desc, sizeof c->desc, "M=%d N=%d", m, n);
  return 0;
}

static int setup_matmul(xk_case *c, const xk_func *f, int s, uint64_t *rs,
                        xk_diag *d) {
  int32_t m = matmul_sizes[s][0], n = matmul_sizes[s][1],
          k = matmul_sizes[s][2];
  int64_t bm = const_or(f, "BLOCK_M", d), bn = const_or(f, "BLOCK_N", d);
  int64_t act = const_or(f, "ACTIVATION", d);
  if (bm < 0 || bn < 0 || act < 0)
    return -1;
  /* A row-major, B column-major (a transposed view), C row-major */
  uint16_t *a = xk_case_buf(c, f, "A", XK_F16, (size_t)m * k, d);
  uint16_t *b = a ? xk_case_buf(c, f, "B", XK_F16, (size_t)k * n, d) : NULL;
  float *bias = b ? xk_case_buf(c, f, "bias", XK_F32, (size_t)n, d) : NULL;
  double *ref;
  if (!bias ||
      !xk_case_output(c, f, "C", XK_F16, (int64_t)m * n, 2e-2, &ref, d) ||
      xk_case_i32(c, f, "M", m, d) || xk_case_i32(c, f, "N", n, d) ||
      xk_case_i32(c, f, "K", k, d) || xk_case_i32(c, f, "sam", k, d) ||
      xk_case_i32(c, f, "sak", 1, d) || xk_case_i32(c, f, "sbk", 1, d) ||
      xk_case_i32(c, f, "sbn", k, d) || xk_case_i32(c, f, "scm", n, d) ||
      xk_case_i32(c, f, "scn", 1, d))
    return -1;
  xk_case_fill_f16(a, (size_t)m * k, -1, 1, rs);
  xk_case_fill_f16(b, (size_t)k * n, -1, 1, rs);
  xk_case_fill_f32(bias, (size_t)n, -1, 1, rs);
  for (int32_t i = 0; i < m; i++)
    for (int32_t j = 0; j < n; j++) {
      double acc = bias[j];
      for (int32_t q = 0; q < k; q++)
        acc += (double)xk_f16_to_f32(a[(size_t)i * k + q]) *
               xk_f16_to_f32(b[(size_t)j * k + q]);
      ref[(size_t)i * n + j] = act == 1 && acc < 0 ? 0.01 * acc : acc;
    }
  c->grid[0] = xk_case_cdiv(m, bm) * xk_case_cdiv(n, bn);
  snprintf(c->desc, sizeof c->desc, "M=%d N=%d K=%d", m, n, k);
  return 0;
}

static int setup_attention(xk_case *c, const xk_func *f, int s, uint64_t *rs,
                           xk_diag *d) {
  int32_t l = attention_sizes[s], zh = ATTN_HEADS;
  int64_t hd = const_or(f, "HEAD_DIM", d), bm = const_or(f, "BLOCK_M", d);
  if (hd < 0 || bm < 0)
    return -1;
  size_t n = (size_t)zh * l * hd;
  float scale = (float)(1 / sqrt((double)hd));
  uint16_t *q = xk_case_buf(c, f, "Q", XK_F16, n, d);
  uint16_t *k = q ? xk_case_buf(c, f, "K", XK_F16, n, d) : NULL;
  uint16_t *v = k ? xk_case_buf(c, f, "V", XK_F16, n, d) : NULL;
  double *ref;
  if (!v || !xk_case_output(c, f, "O", XK_F16, (int64_t)n, 2e-2, &ref, d) ||
      xk_case_f32(c, f, "sm_scale", scale, d) ||
      xk_case_i32(c, f, "ZH", zh, d) || xk_case_i32(c, f, "N_CTX", l, d))
    return -1;
  xk_case_fill_f16(q, n, -2, 2, rs);
  xk_case_fill_f16(k, n, -2, 2, rs);
  xk_case_fill_f16(v, n, -1, 1, rs);
  double *p = malloc((size_t)l * sizeof *p);
  if (!p)
    return xk_diag_set(d, "out of memory");
  for (int32_t h = 0; h < zh; h++)
    for (int32_t i = 0; i < l; i++) {
      size_t base = (size_t)h * l * hd;
      const uint16_t *qi = q + base + (size_t)i * hd;
      double mx = -INFINITY, sum = 0;
      for (int32_t j = 0; j <= i; j++) { /* causal: keys up to the query */
        double dot = 0;
        for (int64_t e = 0; e < hd; e++)
          dot += (double)xk_f16_to_f32(qi[e]) *
                 xk_f16_to_f32(k[base + (size_t)j * hd + e]);
        p[j] = dot * scale;
        mx = fmax(mx, p[j]);
      }
      for (int32_t j = 0; j <= i; j++)
        sum += p[j] = exp(p[j] - mx);
      for (int64_t e = 0; e < hd; e++) {
        double o = 0;
        for (int32_t j = 0; j <= i; j++)
          o += p[j] * xk_f16_to_f32(v[base + (size_t)j * hd + e]);
        ref[base + (size_t)i * hd + e] = o / sum;
      }
    }
  free(p);
  c->grid[0] = xk_case_cdiv(l, bm);
  c->grid[1] = zh;
  snprintf(c->desc, sizeof c->desc, "ZH=%d N_CTX=%d", zh, l);
  return 0;
}

static int setup_argmax(xk_case *c, const xk_func *f, int s, uint64_t *rs,
                        xk_diag *d) {
  int32_t m = rows_sizes[s][0], n = rows_sizes[s][1], ld = n + 2;
  int64_t bm = const_or(f, "BLOCK_M", d);
  if (bm < 0)
    return -1;
  float *x = xk_case_buf(c, f, "X", XK_F32, (size_t)m * ld, d);
  double *ref;
  if (!x || !xk_case_output(c, f, "out", XK_I32, m, 0, &ref, d) ||
      xk_case_i32(c, f, "stride", ld, d) || xk_case_i32(c, f, "M", m, d) ||
      xk_case_i32(c, f, "N", n, d))
    return -1;
  /* eight distinct values: every row has ties, within and across blocks */
  for (size_t i = 0; i < (size_t)m * ld; i++)
    x[i] = (float)floor(xk_case_urand(rs) * 8) - 4;
  for (int32_t r = 0; r < m; r++) {
    int32_t best = 0;
    for (int32_t j = 1; j < n; j++)
      if (x[(size_t)r * ld + j] > x[(size_t)r * ld + best])
        best = j;
    ref[r] = best;
  }
  c->grid[0] = xk_case_cdiv(m, bm);
  snprintf(c->desc, sizeof c->desc, "M=%d N=%d", m, n);
  return 0;
}

static int setup_cumsum(xk_case *c, const xk_func *f, int s, uint64_t *rs,
                        xk_diag *d) {
  int32_t m = rows_sizes[s][0], n = rows_sizes[s][1];
  int64_t bm = const_or(f, "BLOCK_M", d);
  if (bm < 0)
    return -1;
  float *x = xk_case_buf(c, f, "X", XK_F32, (size_t)m * n, d);
  double *ref;
  if (!x || !xk_case_output(c, f, "Y", XK_F32, (int64_t)m * n, 1e-5, &ref, d) ||
      xk_case_i32(c, f, "stride", n, d) || xk_case_i32(c, f, "M", m, d) ||
      xk_case_i32(c, f, "N", n, d))
    return -1;
  xk_case_fill_f32(x, (size_t)m * n, -1, 1, rs);
  for (int32_t r = 0; r < m; r++) {
    double acc = 0;
    for (int32_t j = 0; j < n; j++)
      ref[(size_t)r * n + j] = acc += x[(size_t)r * n + j];
  }
  c->grid[0] = xk_case_cdiv(m, bm);
  snprintf(c->desc, sizeof c->desc, "M=%d N=%d", m, n);
  return 0;
}

static int setup_axpy_2d(xk_case *c, const xk_func *f, int s, uint64_t *rs,
                         xk_diag *d) {
  int32_t m = tile_sizes[s][0], n = tile_sizes[s][1], ldy = n + 5;
  int64_t bm = const_or(f, "BLOCK_M", d), bn = const_or(f, "BLOCK_N", d);
  const float alpha = 0.75f;
  if (bm < 0 || bn < 0)
    return -1;
  /* X is a transposed view (column-major), Y has padded rows */
  float *x = xk_case_buf(c, f, "X", XK_F32, (size_t)m * n, d);
  float *y = x ? xk_case_buf(c, f, "Y", XK_F32, (size_t)m * ldy, d) : NULL;
  double *ref;
  if (!y || !xk_case_output(c, f, "Z", XK_F32, (int64_t)m * n, 1e-6, &ref, d) ||
      xk_case_f32(c, f, "alpha", alpha, d) || xk_case_i32(c, f, "M", m, d) ||
      xk_case_i32(c, f, "N", n, d) || xk_case_i32(c, f, "sxm", 1, d) ||
      xk_case_i32(c, f, "sxn", m, d) || xk_case_i32(c, f, "sym", ldy, d) ||
      xk_case_i32(c, f, "syn", 1, d) || xk_case_i32(c, f, "szm", n, d) ||
      xk_case_i32(c, f, "szn", 1, d))
    return -1;
  xk_case_fill_f32(x, (size_t)m * n, -1, 1, rs);
  xk_case_fill_f32(y, (size_t)m * ldy, -1, 1, rs);
  for (int32_t i = 0; i < m; i++)
    for (int32_t j = 0; j < n; j++)
      ref[(size_t)i * n + j] =
          (double)(x[(size_t)j * m + i] * alpha + y[(size_t)i * ldy + j]);
  c->grid[0] = xk_case_cdiv(m, bm);
  c->grid[1] = xk_case_cdiv(n, bn);
  snprintf(c->desc, sizeof c->desc, "M=%d N=%d", m, n);
  return 0;
}

static int setup_transpose(xk_case *c, const xk_func *f, int s, uint64_t *rs,
                           xk_diag *d) {
  int32_t m = tile_sizes[s][0], n = tile_sizes[s][1], ldx = n + 2;
  int64_t bm = const_or(f, "BLOCK_M", d), bn = const_or(f, "BLOCK_N", d);
  if (bm < 0 || bn < 0)
    return -1;
  float *x = xk_case_buf(c, f, "X", XK_F32, (size_t)m * ldx, d);
  double *ref;
  if (!x || !xk_case_output(c, f, "Y", XK_F32, (int64_t)n * m, 1e-7, &ref, d) ||
      xk_case_i32(c, f, "M", m, d) || xk_case_i32(c, f, "N", n, d) ||
      xk_case_i32(c, f, "ldx", ldx, d) || xk_case_i32(c, f, "ldy", m, d))
    return -1;
  xk_case_fill_f32(x, (size_t)m * ldx, -1, 1, rs);
  for (int32_t i = 0; i < m; i++)
    for (int32_t j = 0; j < n; j++)
      ref[(size_t)j * m + i] = x[(size_t)i * ldx + j];
  c->grid[0] = xk_case_cdiv(m, bm);
  c->grid[1] = xk_case_cdiv(n, bn);
  snprintf(c->desc, sizeof c->desc, "M=%d N=%d", m, n);
  return 0;
}

const xk_case_def xk_tutorial_cases[] = {
    {"tut_softmax", NSIZES(softmax_sizes), setup_softmax},
    {"tut_layer_norm", NSIZES(norm_sizes), setup_layer_norm},
    {"tut_rms_norm", NSIZES(norm_sizes), setup_rms_norm},
    {"tut_matmul", NSIZES(matmul_sizes), setup_matmul},
    {"tut_attention", NSIZES(attention_sizes), setup_attention},
    {"tut_argmax", NSIZES(rows_sizes), setup_argmax},
    {"tut_cumsum", NSIZES(rows_sizes), setup_cumsum},
    {"tut_axpy_2d", NSIZES(tile_sizes), setup_axpy_2d},
    {"tut_transpose", NSIZES(tile_sizes), setup_transpose},
    {NULL, 0, NULL}};
