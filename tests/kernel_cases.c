/* Inputs, launch layout and plain C references for the kernels.xk kernels;
 * see kernel_cases.h. */
#include "kernel_cases.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const xk_case_kernels[] = {"vadd",     "softmax",   "gemm_f32",
                                       "gemm_f16", "rebuild_k", NULL};

/* Ragged on purpose: not multiples of any block size. */
static const int32_t vadd_sizes[][1] = {{1}, {1000}, {4133}};
static const int32_t softmax_sizes[][2] = {{1, 1}, {3, 200}, {4, 1000}};
static const int32_t gemm_sizes[][3] = {{1, 1, 1}, {37, 29, 45}, {70, 133, 67}};
static const int32_t rebuild_sizes[][1] = {{1}, {37}, {150}};
#define NSIZES(a) ((int)(sizeof a / sizeof *a))
#define ROPE_POSITIONS 64

static int setup_vadd(xk_case *c, const xk_func *f, int s, uint64_t *rs,
                      xk_diag *d) {
  int64_t blk;
  int32_t n = vadd_sizes[s][0];
  if (xk_case_const(f, "BLOCK", &blk, d))
    return -1;
  float *x = xk_case_buf(c, f, "X", XK_F32, (size_t)n, d);
  float *y = x ? xk_case_buf(c, f, "Y", XK_F32, (size_t)n, d) : NULL;
  double *ref;
  if (!y || !xk_case_output(c, f, "Z", XK_F32, n, 1e-6, &ref, d) ||
      xk_case_i32(c, f, "N", n, d))
    return -1;
  xk_case_fill_f32(x, (size_t)n, -1, 1, rs);
  xk_case_fill_f32(y, (size_t)n, -1, 1, rs);
  for (int32_t i = 0; i < n; i++)
    ref[i] = (double)(x[i] + y[i]);
  c->grid[0] = xk_case_cdiv(n, blk);
  snprintf(c->desc, sizeof c->desc, "N=%d", n);
  return 0;
}

static int setup_softmax(xk_case *c, const xk_func *f, int s, uint64_t *rs,
                         xk_diag *d) {
  int32_t m = softmax_sizes[s][0], n = softmax_sizes[s][1];
  float *x = xk_case_buf(c, f, "X", XK_F32, (size_t)m * n, d);
  double *ref;
  if (!x || !xk_case_output(c, f, "Y", XK_F32, (int64_t)m * n, 1e-4, &ref, d) ||
      xk_case_i32(c, f, "M", m, d) || xk_case_i32(c, f, "N", n, d))
    return -1;
  xk_case_fill_f32(x, (size_t)m * n, -8, 8, rs);
  xk_case_ref_softmax(x, m, n, n, ref);
  c->grid[0] = m;
  snprintf(c->desc, sizeof c->desc, "M=%d N=%d", m, n);
  return 0;
}

static int setup_gemm(xk_case *c, const xk_func *f, int s, int f16,
                      uint64_t *rs, xk_diag *d) {
  int32_t m = gemm_sizes[s][0], n = gemm_sizes[s][1], k = gemm_sizes[s][2];
  int64_t bm, bn;
  if (xk_case_const(f, "BLOCK_M", &bm, d) ||
      xk_case_const(f, "BLOCK_N", &bn, d))
    return -1;
  int dt = f16 ? XK_F16 : XK_F32;
  void *a = xk_case_buf(c, f, "A", dt, (size_t)m * k, d);
  void *b = a ? xk_case_buf(c, f, "B", dt, (size_t)k * n, d) : NULL;
  double *ref;
  if (!b ||
      !xk_case_output(c, f, "C", dt, (int64_t)m * n, f16 ? 2e-2 : 1e-4, &ref,
                      d) ||
      xk_case_i32(c, f, "M", m, d) || xk_case_i32(c, f, "N", n, d) ||
      xk_case_i32(c, f, "K", k, d))
    return -1;
  if (f16) {
    xk_case_fill_f16(a, (size_t)m * k, -1, 1, rs);
    xk_case_fill_f16(b, (size_t)k * n, -1, 1, rs);
  } else {
    xk_case_fill_f32(a, (size_t)m * k, -1, 1, rs);
    xk_case_fill_f32(b, (size_t)k * n, -1, 1, rs);
  }
#define ELT(p, i)                                                              \
  (f16 ? xk_f16_to_f32(((uint16_t *)(p))[i]) : ((float *)(p))[i])
  for (int32_t i = 0; i < m; i++)
    for (int32_t j = 0; j < n; j++) {
      double acc = 0;
      for (int32_t q = 0; q < k; q++)
        acc += (double)ELT(a, (size_t)i * k + q) * ELT(b, (size_t)q * n + j);
      ref[(size_t)i * n + j] = acc;
    }
#undef ELT
  c->grid[0] = xk_case_cdiv(m, bm);
  c->grid[1] = xk_case_cdiv(n, bn);
  snprintf(c->desc, sizeof c->desc, "M=%d N=%d K=%d", m, n, k);
  return 0;
}

static int setup_rebuild_k(xk_case *c, const xk_func *f, int s, uint64_t *rs,
                           xk_diag *d) {
  int32_t l = rebuild_sizes[s][0];
  int64_t r, dd, bn;
  if (xk_case_const(f, "R", &r, d) || xk_case_const(f, "D", &dd, d) ||
      xk_case_const(f, "BLOCK_N", &bn, d))
    return -1;
  if (dd % 2 || r <= 0)
    return xk_diag_set(d, "rebuild_k: D must be even and R positive");
  int64_t h = dd / 2, p = ROPE_POSITIONS;
  uint16_t *a = xk_case_buf(c, f, "A", XK_F16, (size_t)(l * r), d);
  uint16_t *b = a ? xk_case_buf(c, f, "B", XK_F16, (size_t)(r * dd), d) : NULL;
  int32_t *pos = b ? xk_case_buf(c, f, "pos", XK_I32, (size_t)l, d) : NULL;
  float *cs = pos ? xk_case_buf(c, f, "cos", XK_F32, (size_t)(p * h), d) : NULL;
  float *sn = cs ? xk_case_buf(c, f, "sin", XK_F32, (size_t)(p * h), d) : NULL;
  double *ref;
  if (!sn || !xk_case_output(c, f, "K", XK_F16, l * dd, 2e-2, &ref, d) ||
      xk_case_i32(c, f, "L", l, d))
    return -1;
  xk_case_fill_f16(a, (size_t)(l * r), -1, 1, rs);
  xk_case_fill_f16(b, (size_t)(r * dd), -0.25, 0.25, rs);
  for (int32_t i = 0; i < l; i++)
    pos[i] = (int32_t)(xk_case_urand(rs) * p);
  for (int64_t q = 0; q < p; q++)
    for (int64_t i = 0; i < h; i++) {
      double th = (double)q * pow(10000.0, -2.0 * (double)i / (double)dd);
      cs[q * h + i] = (float)cos(th);
      sn[q * h + i] = (float)sin(th);
    }
  double *k = malloc((size_t)dd * sizeof *k);
  if (!k)
    return xk_diag_set(d, "out of memory");
  for (int32_t n = 0; n < l; n++) {
    for (int64_t j = 0; j < dd; j++) {
      double acc = 0;
      for (int64_t q = 0; q < r; q++)
        acc +=
            (double)xk_f16_to_f32(a[n * r + q]) * xk_f16_to_f32(b[q * dd + j]);
      k[j] = acc;
    }
    for (int64_t i = 0; i < h; i++) {
      double co = cs[pos[n] * h + i], si = sn[pos[n] * h + i];
      ref[n * dd + 2 * i] = k[2 * i] * co - k[2 * i + 1] * si;
      ref[n * dd + 2 * i + 1] = k[2 * i] * si + k[2 * i + 1] * co;
    }
  }
  free(k);
  c->grid[0] = xk_case_cdiv(l, bn);
  snprintf(c->desc, sizeof c->desc, "L=%d", l);
  return 0;
}

static int setup_gemm_f32(xk_case *c, const xk_func *f, int s, uint64_t *rs,
                          xk_diag *d) {
  return setup_gemm(c, f, s, 0, rs, d);
}

static int setup_gemm_f16(xk_case *c, const xk_func *f, int s, uint64_t *rs,
                          xk_diag *d) {
  return setup_gemm(c, f, s, 1, rs, d);
}

static const xk_case_def defs[] = {
    {"vadd", NSIZES(vadd_sizes), setup_vadd},
    {"softmax", NSIZES(softmax_sizes), setup_softmax},
    {"gemm_f32", NSIZES(gemm_sizes), setup_gemm_f32},
    {"gemm_f16", NSIZES(gemm_sizes), setup_gemm_f16},
    {"rebuild_k", NSIZES(rebuild_sizes), setup_rebuild_k},
    {NULL, 0, NULL}};

int xk_case_nsizes(const char *kernel) {
  const xk_case_def *def = xk_case_find(defs, kernel);
  return def ? def->nsizes : 0;
}

int xk_case_setup(const char *kernel, const xk_func *f, int size_idx,
                  xk_case *c, xk_diag *d) {
  const xk_case_def *def = xk_case_find(defs, kernel);
  if (!def) {
    memset(c, 0, sizeof *c);
    return xk_diag_set(d, "no cases for kernel %s", kernel);
  }
  return xk_case_setup_def(def, f, size_idx, c, d);
}
