/* Inputs, launch layout and plain C references for the kernels.xk kernels;
 * see kernel_cases.h. */
#include "kernel_cases.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* bytes after every buffer that a correct kernel never writes */
#define GUARD 64
#define GUARD_BYTE 0xA5

const char *const xk_case_kernels[] = {"vadd",     "softmax",   "gemm_f32",
                                       "gemm_f16", "rebuild_k", NULL};

/* Ragged on purpose: not multiples of any block size. */
static const int32_t vadd_sizes[][1] = {{1}, {1000}, {4133}};
static const int32_t softmax_sizes[][2] = {{1, 1}, {3, 200}, {4, 1000}};
static const int32_t gemm_sizes[][3] = {{1, 1, 1}, {37, 29, 45}, {70, 133, 67}};
static const int32_t rebuild_sizes[][1] = {{1}, {37}, {150}};
#define NSIZES(a) ((int)(sizeof a / sizeof *a))
#define ROPE_POSITIONS 64

uint16_t xk_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
  uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u)
    return sign | 0x7e00; /* NaN */
  if (ax >= 0x477ff000u)
    return sign | 0x7c00; /* >= 65520 rounds to infinity */
  if (ax < 0x38800000u) { /* below 2^-14: a subnormal half */
    float a;
    memcpy(&a, &ax, 4);
    return sign | (uint16_t)lrintf(a * 16777216.0f); /* exact * 2^24 */
  }
  uint32_t r = ax - (112u << 23); /* rebias 127 -> 15 */
  r += 0xfffu + ((r >> 13) & 1u);
  return sign | (uint16_t)(r >> 13);
}

float xk_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f,
           m = h & 0x3ff, bits;
  if (e == 0) {
    float v = ldexpf((float)m, -24);
    return sign ? -v : v;
  }
  if (e == 31)
    bits = sign | 0x7f800000u | (m << 13);
  else
    bits = sign | ((e + 112) << 23) | (m << 13);
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t xk_f32_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if (isnan(f))
    return (uint16_t)((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

float xk_bf16_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* splitmix64: deterministic across platforms */
static double urand(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (double)(z >> 11) / 9007199254740992.0;
}

static int get_const(const xk_func *f, const char *name, int64_t *v,
                     xk_diag *d) {
  for (int i = 0; i < f->nconsts; i++)
    if (!strcmp(f->consts[i].name, name)) {
      *v = f->consts[i].value;
      return 0;
    }
  return xk_diag_set(d, "kernel %s has no constexpr %s", f->name, name);
}

static int find_arg(const xk_func *f, const char *name, xk_diag *d) {
  for (int i = 0; i < f->nargs; i++)
    if (!strcmp(f->args[i].name, name))
      return i;
  return xk_diag_set(d, "kernel %s has no argument %s", f->name, name);
}

/* A pointer argument: buffer of n elements of dtype elem, guard filled. */
static void *add_buf(xk_case *c, const xk_func *f, const char *name, int elem,
                     size_t n, xk_diag *d) {
  int i = find_arg(f, name, d);
  if (i < 0)
    return NULL;
  xk_type t = f->args[i].type;
  if (t.dtype != XK_PTR || t.elem != elem || i >= XK_CASE_MAXARGS) {
    xk_diag_set(d, "kernel %s: argument %s should be ptr<%s>", f->name, name,
                xk_dtype_name(elem));
    return NULL;
  }
  size_t bytes = n * (size_t)(xk_dtype_bits(elem) / 8);
  char *p = malloc(bytes + GUARD);
  if (!p) {
    xk_diag_set(d, "out of memory");
    return NULL;
  }
  memset(p + bytes, GUARD_BYTE, GUARD);
  c->buf[i] = p;
  c->bytes[i] = bytes;
  c->ptrval[i] = p;
  c->args[i] = &c->ptrval[i];
  return p;
}

static int add_i32(xk_case *c, const xk_func *f, const char *name, int32_t v,
                   xk_diag *d) {
  int i = find_arg(f, name, d);
  if (i < 0)
    return -1;
  if (f->args[i].type.dtype != XK_I32 || f->args[i].type.rank ||
      i >= XK_CASE_MAXARGS)
    return xk_diag_set(d, "kernel %s: argument %s should be i32", f->name,
                       name);
  c->ival[i] = v;
  c->args[i] = &c->ival[i];
  return 0;
}

static int cdiv(int64_t a, int64_t b) {
  return (int)((a + b - 1) / b);
}

static void fill_f32(float *p, size_t n, double lo, double hi, uint64_t *s) {
  for (size_t i = 0; i < n; i++)
    p[i] = (float)(lo + (hi - lo) * urand(s));
}

/* f16 inputs; the reference reads them back, so it sees the rounded values */
static void fill_f16(uint16_t *p, size_t n, double lo, double hi, uint64_t *s) {
  for (size_t i = 0; i < n; i++)
    p[i] = xk_f32_to_f16((float)(lo + (hi - lo) * urand(s)));
}

static int output(xk_case *c, const xk_func *f, const char *name, int f16,
                  int64_t n, double tol, xk_diag *d) {
  void *p = add_buf(c, f, name, f16 ? XK_F16 : XK_F32, (size_t)n, d);
  if (!p)
    return -1;
  memset(p, 0xff, c->bytes[find_arg(f, name, d)]); /* NaN: unwritten shows */
  c->out_arg = find_arg(f, name, d);
  c->out_f16 = f16;
  c->tol = tol;
  c->nref = n;
  c->ref = calloc((size_t)n, sizeof *c->ref);
  return c->ref ? 0 : xk_diag_set(d, "out of memory");
}

static int setup_vadd(xk_case *c, const xk_func *f, int s, uint64_t *rs,
                      xk_diag *d) {
  int64_t blk;
  int32_t n = vadd_sizes[s][0];
  if (get_const(f, "BLOCK", &blk, d))
    return -1;
  float *x = add_buf(c, f, "X", XK_F32, (size_t)n, d);
  float *y = x ? add_buf(c, f, "Y", XK_F32, (size_t)n, d) : NULL;
  if (!y || output(c, f, "Z", 0, n, 1e-6, d) || add_i32(c, f, "N", n, d))
    return -1;
  fill_f32(x, (size_t)n, -1, 1, rs);
  fill_f32(y, (size_t)n, -1, 1, rs);
  for (int32_t i = 0; i < n; i++)
    c->ref[i] = (double)(x[i] + y[i]);
  c->grid[0] = cdiv(n, blk);
  snprintf(c->desc, sizeof c->desc, "N=%d", n);
  return 0;
}

static int setup_softmax(xk_case *c, const xk_func *f, int s, uint64_t *rs,
                         xk_diag *d) {
  int32_t m = softmax_sizes[s][0], n = softmax_sizes[s][1];
  float *x = add_buf(c, f, "X", XK_F32, (size_t)m * n, d);
  if (!x || output(c, f, "Y", 0, (int64_t)m * n, 1e-4, d) ||
      add_i32(c, f, "M", m, d) || add_i32(c, f, "N", n, d))
    return -1;
  fill_f32(x, (size_t)m * n, -8, 8, rs);
  for (int32_t r = 0; r < m; r++) {
    const float *xr = x + (size_t)r * n;
    double mx = -INFINITY, sum = 0;
    for (int32_t j = 0; j < n; j++)
      mx = fmax(mx, xr[j]);
    for (int32_t j = 0; j < n; j++)
      sum += exp(xr[j] - mx);
    for (int32_t j = 0; j < n; j++)
      c->ref[(size_t)r * n + j] = exp(xr[j] - mx) / sum;
  }
  c->grid[0] = m;
  snprintf(c->desc, sizeof c->desc, "M=%d N=%d", m, n);
  return 0;
}

static int setup_gemm(xk_case *c, const xk_func *f, int s, int f16,
                      uint64_t *rs, xk_diag *d) {
  int32_t m = gemm_sizes[s][0], n = gemm_sizes[s][1], k = gemm_sizes[s][2];
  int64_t bm, bn;
  if (get_const(f, "BLOCK_M", &bm, d) || get_const(f, "BLOCK_N", &bn, d))
    return -1;
  int dt = f16 ? XK_F16 : XK_F32;
  void *a = add_buf(c, f, "A", dt, (size_t)m * k, d);
  void *b = a ? add_buf(c, f, "B", dt, (size_t)k * n, d) : NULL;
  if (!b || output(c, f, "C", f16, (int64_t)m * n, f16 ? 2e-2 : 1e-4, d) ||
      add_i32(c, f, "M", m, d) || add_i32(c, f, "N", n, d) ||
      add_i32(c, f, "K", k, d))
    return -1;
  if (f16) {
    fill_f16(a, (size_t)m * k, -1, 1, rs);
    fill_f16(b, (size_t)k * n, -1, 1, rs);
  } else {
    fill_f32(a, (size_t)m * k, -1, 1, rs);
    fill_f32(b, (size_t)k * n, -1, 1, rs);
  }
#define ELT(p, i)                                                              \
  (f16 ? xk_f16_to_f32(((uint16_t *)(p))[i]) : ((float *)(p))[i])
  for (int32_t i = 0; i < m; i++)
    for (int32_t j = 0; j < n; j++) {
      double acc = 0;
      for (int32_t q = 0; q < k; q++)
        acc += (double)ELT(a, (size_t)i * k + q) * ELT(b, (size_t)q * n + j);
      c->ref[(size_t)i * n + j] = acc;
    }
#undef ELT
  c->grid[0] = cdiv(m, bm);
  c->grid[1] = cdiv(n, bn);
  snprintf(c->desc, sizeof c->desc, "M=%d N=%d K=%d", m, n, k);
  return 0;
}

static int setup_rebuild_k(xk_case *c, const xk_func *f, int s, uint64_t *rs,
                           xk_diag *d) {
  int32_t l = rebuild_sizes[s][0];
  int64_t r, dd, bn;
  if (get_const(f, "R", &r, d) || get_const(f, "D", &dd, d) ||
      get_const(f, "BLOCK_N", &bn, d))
    return -1;
  if (dd % 2 || r <= 0)
    return xk_diag_set(d, "rebuild_k: D must be even and R positive");
  int64_t h = dd / 2, p = ROPE_POSITIONS;
  uint16_t *a = add_buf(c, f, "A", XK_F16, (size_t)(l * r), d);
  uint16_t *b = a ? add_buf(c, f, "B", XK_F16, (size_t)(r * dd), d) : NULL;
  int32_t *pos = b ? add_buf(c, f, "pos", XK_I32, (size_t)l, d) : NULL;
  float *cs = pos ? add_buf(c, f, "cos", XK_F32, (size_t)(p * h), d) : NULL;
  float *sn = cs ? add_buf(c, f, "sin", XK_F32, (size_t)(p * h), d) : NULL;
  if (!sn || output(c, f, "K", 1, l * dd, 2e-2, d) || add_i32(c, f, "L", l, d))
    return -1;
  fill_f16(a, (size_t)(l * r), -1, 1, rs);
  fill_f16(b, (size_t)(r * dd), -0.25, 0.25, rs);
  for (int32_t i = 0; i < l; i++)
    pos[i] = (int32_t)(urand(rs) * p);
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
      c->ref[n * dd + 2 * i] = k[2 * i] * co - k[2 * i + 1] * si;
      c->ref[n * dd + 2 * i + 1] = k[2 * i] * si + k[2 * i + 1] * co;
    }
  }
  free(k);
  c->grid[0] = cdiv(l, bn);
  snprintf(c->desc, sizeof c->desc, "L=%d", l);
  return 0;
}

int xk_case_nsizes(const char *kernel) {
  if (!strcmp(kernel, "vadd"))
    return NSIZES(vadd_sizes);
  if (!strcmp(kernel, "softmax"))
    return NSIZES(softmax_sizes);
  if (!strcmp(kernel, "gemm_f32") || !strcmp(kernel, "gemm_f16"))
    return NSIZES(gemm_sizes);
  if (!strcmp(kernel, "rebuild_k"))
    return NSIZES(rebuild_sizes);
  return 0;
}

int xk_case_setup(const char *kernel, const xk_func *f, int size_idx,
                  xk_case *c, xk_diag *d) {
  memset(c, 0, sizeof *c);
  if (size_idx < 0 || size_idx >= xk_case_nsizes(kernel))
    return xk_diag_set(d, "no case %d for kernel %s", size_idx, kernel);
  if (f->nargs > XK_CASE_MAXARGS)
    return xk_diag_set(d, "kernel %s has too many arguments", kernel);
  snprintf(c->kernel, sizeof c->kernel, "%s", kernel);
  c->nargs = f->nargs;
  c->grid[0] = c->grid[1] = c->grid[2] = 1;
  c->out_arg = -1;
  uint64_t rs = 0x5eed0000ull + (uint64_t)size_idx * 7919u;
  int rc;
  if (!strcmp(kernel, "vadd"))
    rc = setup_vadd(c, f, size_idx, &rs, d);
  else if (!strcmp(kernel, "softmax"))
    rc = setup_softmax(c, f, size_idx, &rs, d);
  else if (!strcmp(kernel, "gemm_f32") || !strcmp(kernel, "gemm_f16"))
    rc = setup_gemm(c, f, size_idx, kernel[6] == '1', &rs, d);
  else
    rc = setup_rebuild_k(c, f, size_idx, &rs, d);
  for (int i = 0; !rc && i < c->nargs; i++)
    if (!c->args[i])
      rc = xk_diag_set(d, "kernel %s: the case does not know argument %s",
                       kernel, f->args[i].name);
  if (rc) {
    xk_case_free(c);
    return -1;
  }
  /* append the specialization so failures say which variant it was */
  size_t len = strlen(c->desc);
  for (int i = 0; i < f->nconsts && len < sizeof c->desc; i++)
    len += (size_t)snprintf(c->desc + len, sizeof c->desc - len, " %s=%lld",
                            f->consts[i].name, (long long)f->consts[i].value);
  return 0;
}

void xk_case_run_host(xk_case *c, xk_host_fn fn) {
  int32_t pid[3];
  for (pid[2] = 0; pid[2] < c->grid[2]; pid[2]++)
    for (pid[1] = 0; pid[1] < c->grid[1]; pid[1]++)
      for (pid[0] = 0; pid[0] < c->grid[0]; pid[0]++)
        fn(c->args, pid, c->grid);
}

int xk_case_check(xk_case *c, double *err, xk_diag *d) {
  *err = INFINITY;
  for (int i = 0; i < c->nargs; i++) {
    const unsigned char *g = (const unsigned char *)c->buf[i] + c->bytes[i];
    for (int k = 0; c->buf[i] && k < GUARD; k++)
      if (g[k] != GUARD_BYTE)
        return xk_diag_set(d, "%s %s: written past the end of argument %d",
                           c->kernel, c->desc, i);
  }
  if (c->out_arg < 0)
    return xk_diag_set(d, "%s: no output", c->kernel);
  double scale = 0, e = 0;
  int64_t worst = 0;
  for (int64_t i = 0; i < c->nref; i++)
    scale = fmax(scale, fabs(c->ref[i]));
  if (scale == 0)
    scale = 1;
  for (int64_t i = 0; i < c->nref; i++) {
    double o = c->out_f16
                   ? xk_f16_to_f32(((const uint16_t *)c->buf[c->out_arg])[i])
                   : ((const float *)c->buf[c->out_arg])[i];
    double ei = fabs(o - c->ref[i]) / scale;
    if (!(ei <= e)) { /* NaN counts as the worst */
      e = isnan(ei) ? INFINITY : ei;
      worst = i;
      if (isnan(ei))
        break;
    }
  }
  *err = e;
  if (!(e < c->tol)) {
    double o =
        c->out_f16
            ? xk_f16_to_f32(((const uint16_t *)c->buf[c->out_arg])[worst])
            : ((const float *)c->buf[c->out_arg])[worst];
    return xk_diag_set(d,
                       "%s %s: rel err %.3g >= %.3g (element %lld: got %.6g, "
                       "want %.6g)",
                       c->kernel, c->desc, e, c->tol, (long long)worst, o,
                       c->ref[worst]);
  }
  return 0;
}

void xk_case_free(xk_case *c) {
  for (int i = 0; i < XK_CASE_MAXARGS; i++)
    free(c->buf[i]);
  free(c->ref);
  memset(c, 0, sizeof *c);
}
