#include "problem.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Above this many multiply-adds a C reference takes longer than tuning. */
#define C_REF_MAX_MACS (1LL << 27)

static uint16_t to_f16(float f) {
  /* inputs are small multiples of 1/64 in [-1, 1]: exact in f16 */
  uint32_t x;
  memcpy(&x, &f, 4);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
  uint32_t ax = x & 0x7fffffffu;
  if (ax == 0)
    return sign;
  int e = (int)(ax >> 23) - 127 + 15;
  return sign | (uint16_t)(e << 10) | (uint16_t)((ax >> 13) & 0x3ff);
}

static float from_f16(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f,
           m = h & 0x3ff;
  if (e == 0) {
    float v = ldexpf((float)m, -24);
    return sign ? -v : v;
  }
  uint32_t bits = e == 31 ? sign | 0x7f800000u | (m << 13)
                          : sign | ((e + 112) << 23) | (m << 13);
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

static float rnd(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((int)((*s >> 33) % 129) - 64) / 64.0f;
}

static void *buf(xk_problem *p, int i, size_t n, int f16, uint64_t *s) {
  size_t bytes = (n ? n : 1) * (f16 ? 2 : 4);
  void *b = aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!b)
    return NULL;
  for (size_t j = 0; j < n; j++)
    if (f16)
      ((uint16_t *)b)[j] = to_f16(rnd(s));
    else
      ((float *)b)[j] = rnd(s);
  p->bufs[i] = b;
  p->args[i] = xkv_arg_ptr(f16 ? XKV_F16 : XKV_F32, b);
  return b;
}

static int64_t key(const char *const *names, const int64_t *vals, int n,
                   const char *want, int64_t dflt) {
  for (int i = 0; i < n; i++)
    if (!strcmp(names[i], want))
      return vals[i];
  return dflt;
}

static double elem(const void *b, int f16, size_t i) {
  return f16 ? from_f16(((const uint16_t *)b)[i]) : ((const float *)b)[i];
}

static int gemm(xk_problem *p, int f16, int64_t M, int64_t N, int64_t K,
                xk_diag *d) {
  uint64_t s = 1;
  if (!buf(p, 0, (size_t)(M * K), f16, &s) ||
      !buf(p, 1, (size_t)(K * N), f16, &s) ||
      !buf(p, 2, (size_t)(M * N), f16, &s))
    return xk_diag_set(d, "out of memory");
  p->args[3] = xkv_arg_i32((int32_t)M);
  p->args[4] = xkv_arg_i32((int32_t)N);
  p->args[5] = xkv_arg_i32((int32_t)K);
  p->nargs = 6;
  p->out = 2;
  p->out_elems = (size_t)(M * N);
  p->out_f16 = f16;
  p->tol = f16 ? 4e-3 : 1e-4;
  p->flops = 2.0 * (double)M * N * K;
  if (M * N * K > C_REF_MAX_MACS)
    return 0;
  if (!(p->c_ref = calloc(p->out_elems, sizeof *p->c_ref)))
    return xk_diag_set(d, "out of memory");
  for (int64_t i = 0; i < M; i++)
    for (int64_t k = 0; k < K; k++) {
      double a = elem(p->bufs[0], f16, (size_t)(i * K + k));
      for (int64_t j = 0; j < N; j++)
        p->c_ref[i * N + j] += a * elem(p->bufs[1], f16, (size_t)(k * N + j));
    }
  return 0;
}

/* gemm_st_<b>_<c> as a plain row-major C = A B with beta 0 */
static int gemm_st(xk_problem *p, int b16, int c16, int64_t M, int64_t N,
                   int64_t K, xk_diag *d) {
  uint64_t s = 2;
  if (!buf(p, 0, (size_t)(M * K), 0, &s) ||
      !buf(p, 1, (size_t)(K * N), b16, &s) ||
      !buf(p, 2, (size_t)(M * N), c16, &s))
    return xk_diag_set(d, "out of memory");
  int32_t v[] = {(int32_t)M, (int32_t)N, (int32_t)K, (int32_t)K,
                 1,          (int32_t)N, 1,          (int32_t)N};
  for (int i = 0; i < 8; i++)
    p->args[3 + i] = xkv_arg_i32(v[i]);
  p->args[11] = xkv_arg_f32(0.0f);
  p->nargs = 12;
  p->out = 2;
  p->out_elems = (size_t)(M * N);
  p->out_f16 = c16;
  p->tol = c16 ? 4e-3 : 1e-4;
  p->flops = 2.0 * (double)M * N * K;
  return 0;
}

int xk_problem_make(const xk_kernel_spec *spec, const char *const *names,
                    const int64_t *vals, int n, xk_problem *p, xk_diag *d) {
  memset(p, 0, sizeof *p);
  const char *k = spec->name;
  int64_t M = key(names, vals, n, "M", 0), N = key(names, vals, n, "N", 0);
  int64_t K = key(names, vals, n, "K", 0);
  int rc;
  uint64_t s = 3;
  if (!strcmp(k, "gemm_f32") || !strcmp(k, "gemm_f16")) {
    rc = M > 0 && N > 0 && K > 0 ? gemm(p, !strcmp(k, "gemm_f16"), M, N, K, d)
                                 : xk_diag_set(d, "%s needs keys M, N, K", k);
  } else if (!strncmp(k, "gemm_st_", 8)) {
    int b16 = !strncmp(k + 8, "f16", 3);
    const char *ct = strchr(k + 8, '_');
    int c16 = ct && !strcmp(ct + 1, "f16");
    if (strstr(k + 8, "bf16"))
      rc = xk_diag_set(d, "%s: bf16 operands are not set up by the tuner", k);
    else
      rc = M > 0 && N > 0 && K > 0 ? gemm_st(p, b16, c16, M, N, K, d)
                                   : xk_diag_set(d, "%s needs keys M, N, K", k);
  } else if (!strcmp(k, "vadd") && N > 0) {
    rc = buf(p, 0, (size_t)N, 0, &s) && buf(p, 1, (size_t)N, 0, &s) &&
                 buf(p, 2, (size_t)N, 0, &s)
             ? 0
             : xk_diag_set(d, "out of memory");
    p->args[3] = xkv_arg_i32((int32_t)N);
    p->nargs = 4;
    p->out = 2;
    p->out_elems = (size_t)N;
    p->tol = 1e-6;
  } else if (!strcmp(k, "softmax") && N > 0) {
    int64_t rows = 256;
    rc = buf(p, 0, (size_t)(rows * N), 0, &s) &&
                 buf(p, 1, (size_t)(rows * N), 0, &s)
             ? 0
             : xk_diag_set(d, "out of memory");
    p->args[2] = xkv_arg_i32((int32_t)rows);
    p->args[3] = xkv_arg_i32((int32_t)N);
    p->nargs = 4;
    p->out = 1;
    p->out_elems = (size_t)(rows * N);
    p->tol = 1e-5;
  } else if (!strcmp(k, "sumsq_f32") && N > 0) {
    rc = buf(p, 0, (size_t)N, 0, &s) && buf(p, 1, 1, 0, &s)
             ? 0
             : xk_diag_set(d, "out of memory");
    p->args[2] = xkv_arg_i32((int32_t)N);
    p->nargs = 3;
    p->out = 1;
    p->out_elems = 1;
    p->accumulates = 1;
    p->tol = 1e-5;
  } else {
    rc = xk_diag_set(d,
                     "kernel '%s': the tuner has no inputs for it (it sets "
                     "up gemm_f32/f16, gemm_st_f32_{f32,f16}, vadd, softmax, "
                     "sumsq_f32) or its key is incomplete",
                     k);
  }
  if (rc)
    xk_problem_free(p);
  return rc;
}

void xk_problem_poison(xk_problem *p) {
  void *o = p->bufs[p->out];
  for (size_t i = 0; i < p->out_elems; i++)
    if (p->out_f16)
      ((uint16_t *)o)[i] = p->accumulates ? 0 : 0x7e00;
    else
      ((float *)o)[i] = p->accumulates ? 0.0f : NAN;
}

void xk_problem_output(const xk_problem *p, double *out) {
  for (size_t i = 0; i < p->out_elems; i++)
    out[i] = elem(p->bufs[p->out], p->out_f16, i);
}

void xk_problem_free(xk_problem *p) {
  for (int i = 0; i < XK_PROBLEM_MAXARGS; i++)
    free(p->bufs[i]);
  free(p->c_ref);
  memset(p, 0, sizeof *p);
}
