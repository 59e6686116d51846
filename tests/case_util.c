/* Buffers, arguments, the host launch and the check of a test case; see
 * case_util.h. */
#include "case_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GUARD_BYTE 0xA5

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

double xk_case_urand(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (double)(z >> 11) / 9007199254740992.0;
}

int xk_case_const(const xk_func *f, const char *name, int64_t *v, xk_diag *d) {
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
      return i < XK_CASE_MAXARGS
                 ? i
                 : xk_diag_set(d, "kernel %s: argument %s is past %d", f->name,
                               name, XK_CASE_MAXARGS);
  return xk_diag_set(d, "kernel %s has no argument %s", f->name, name);
}

void *xk_case_buf(xk_case *c, const xk_func *f, const char *name, int elem,
                  size_t n, xk_diag *d) {
  int i = find_arg(f, name, d);
  if (i < 0)
    return NULL;
  xk_type t = f->args[i].type;
  if (t.dtype != XK_PTR || t.elem != elem) {
    xk_diag_set(d, "kernel %s: argument %s should be ptr<%s>", f->name, name,
                xk_dtype_name(elem));
    return NULL;
  }
  size_t bytes = n * (size_t)(xk_dtype_bits(elem) / 8);
  char *p = malloc(bytes + XK_CASE_GUARD);
  if (!p) {
    xk_diag_set(d, "out of memory");
    return NULL;
  }
  memset(p + bytes, GUARD_BYTE, XK_CASE_GUARD);
  c->buf[i] = p;
  c->bytes[i] = bytes;
  c->ptrval[i] = p;
  c->args[i] = &c->ptrval[i];
  return p;
}

/* argument `name` as a scalar of dtype dt, or -1 + d */
static int scalar_arg(const xk_func *f, const char *name, int dt, xk_diag *d) {
  int i = find_arg(f, name, d);
  if (i < 0)
    return -1;
  if (f->args[i].type.dtype != dt || f->args[i].type.rank)
    return xk_diag_set(d, "kernel %s: argument %s should be %s", f->name, name,
                       xk_dtype_name(dt));
  return i;
}

int xk_case_i32(xk_case *c, const xk_func *f, const char *name, int32_t v,
                xk_diag *d) {
  int i = scalar_arg(f, name, XK_I32, d);
  if (i < 0)
    return -1;
  c->ival[i] = v;
  c->args[i] = &c->ival[i];
  return 0;
}

int xk_case_f32(xk_case *c, const xk_func *f, const char *name, float v,
                xk_diag *d) {
  int i = scalar_arg(f, name, XK_F32, d);
  if (i < 0)
    return -1;
  c->fval[i] = v;
  c->args[i] = &c->fval[i];
  return 0;
}

void *xk_case_output(xk_case *c, const xk_func *f, const char *name, int dtype,
                     int64_t n, double tol, double **ref, xk_diag *d) {
  if (c->nout >= XK_CASE_MAXOUT) {
    xk_diag_set(d, "kernel %s: more than %d outputs", f->name, XK_CASE_MAXOUT);
    return NULL;
  }
  void *p = xk_case_buf(c, f, name, dtype, (size_t)n, d);
  if (!p)
    return NULL;
  xk_case_out *o = &c->out[c->nout];
  o->arg = find_arg(f, name, d);
  memset(p, 0xff, c->bytes[o->arg]);
  o->dtype = dtype;
  o->tol = tol;
  o->n = n;
  o->ref = calloc((size_t)(n ? n : 1), sizeof *o->ref);
  if (!o->ref) {
    xk_diag_set(d, "out of memory");
    return NULL;
  }
  c->nout++;
  *ref = o->ref;
  return p;
}

int xk_case_cdiv(int64_t a, int64_t b) {
  return (int)((a + b - 1) / b);
}

void xk_case_fill_f32(float *p, size_t n, double lo, double hi, uint64_t *s) {
  for (size_t i = 0; i < n; i++)
    p[i] = (float)(lo + (hi - lo) * xk_case_urand(s));
}

void xk_case_fill_f16(uint16_t *p, size_t n, double lo, double hi,
                      uint64_t *s) {
  for (size_t i = 0; i < n; i++)
    p[i] = xk_f32_to_f16((float)(lo + (hi - lo) * xk_case_urand(s)));
}

const xk_case_def *xk_case_find(const xk_case_def *defs, const char *kernel) {
  for (; defs->kernel; defs++)
    if (!strcmp(defs->kernel, kernel))
      return defs;
  return NULL;
}

int xk_case_setup_def(const xk_case_def *def, const xk_func *f, int size_idx,
                      xk_case *c, xk_diag *d) {
  memset(c, 0, sizeof *c);
  if (!def || size_idx < 0 || size_idx >= def->nsizes)
    return xk_diag_set(d, "no case %d for kernel %s", size_idx, f->name);
  if (f->nargs > XK_CASE_MAXARGS)
    return xk_diag_set(d, "kernel %s has too many arguments", f->name);
  snprintf(c->kernel, sizeof c->kernel, "%s", def->kernel);
  c->nargs = f->nargs;
  c->grid[0] = c->grid[1] = c->grid[2] = 1;
  uint64_t rs = 0x5eed0000ull + (uint64_t)size_idx * 7919u;
  int rc = def->setup(c, f, size_idx, &rs, d);
  for (int i = 0; !rc && i < c->nargs; i++)
    if (!c->args[i])
      rc = xk_diag_set(d, "kernel %s: the case does not know argument %s",
                       def->kernel, f->args[i].name);
  if (!rc && !c->nout)
    rc = xk_diag_set(d, "kernel %s: the case has no output", def->kernel);
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

static double out_elem(const xk_case *c, const xk_case_out *o, int64_t i) {
  const void *p = c->buf[o->arg];
  switch (o->dtype) {
  case XK_F16:
    return xk_f16_to_f32(((const uint16_t *)p)[i]);
  case XK_I32:
    return ((const int32_t *)p)[i];
  default:
    return ((const float *)p)[i];
  }
}

/* Checks output o; its error goes to *err. */
static int check_out(xk_case *c, const xk_case_out *o, double *err,
                     xk_diag *d) {
  double scale = 0, e = 0;
  int64_t worst = 0;
  for (int64_t i = 0; i < o->n; i++)
    scale = fmax(scale, fabs(o->ref[i]));
  if (scale == 0 || o->dtype == XK_I32)
    scale = 1;
  for (int64_t i = 0; i < o->n; i++) {
    double ei = fabs(out_elem(c, o, i) - o->ref[i]) / scale;
    if (!(ei <= e)) { /* NaN counts as the worst */
      e = isnan(ei) ? INFINITY : ei;
      worst = i;
      if (isnan(ei))
        break;
    }
  }
  *err = e;
  if (o->dtype == XK_I32 ? e == 0 : e < o->tol)
    return 0;
  return xk_diag_set(d,
                     "%s %s: argument %d: rel err %.3g >= %.3g (element %lld: "
                     "got %.6g, want %.6g)",
                     c->kernel, c->desc, o->arg, e, o->tol, (long long)worst,
                     out_elem(c, o, worst), o->ref[worst]);
}

int xk_case_check(xk_case *c, double *err, xk_diag *d) {
  *err = INFINITY;
  for (int i = 0; i < c->nargs; i++) {
    const unsigned char *g = (const unsigned char *)c->buf[i] + c->bytes[i];
    for (int k = 0; c->buf[i] && k < XK_CASE_GUARD; k++)
      if (g[k] != GUARD_BYTE)
        return xk_diag_set(d, "%s %s: written past the end of argument %d",
                           c->kernel, c->desc, i);
  }
  if (!c->nout)
    return xk_diag_set(d, "%s: no output", c->kernel);
  double worst = 0;
  for (int k = 0; k < c->nout; k++) {
    double e;
    int rc = check_out(c, &c->out[k], &e, d);
    worst = fmax(worst, e);
    if (rc) {
      *err = worst;
      return -1;
    }
  }
  *err = worst;
  return 0;
}

void xk_case_free(xk_case *c) {
  for (int i = 0; i < XK_CASE_MAXARGS; i++)
    free(c->buf[i]);
  for (int k = 0; k < c->nout; k++)
    free(c->out[k].ref);
  memset(c, 0, sizeof *c);
}

void xk_case_ref_softmax(const float *x, int32_t m, int32_t n, int32_t ldx,
                         double *ref) {
  for (int32_t r = 0; r < m; r++) {
    const float *xr = x + (size_t)r * ldx;
    double mx = -INFINITY, sum = 0;
    for (int32_t j = 0; j < n; j++)
      mx = fmax(mx, xr[j]);
    for (int32_t j = 0; j < n; j++)
      sum += exp(xr[j] - mx);
    for (int32_t j = 0; j < n; j++)
      ref[(size_t)r * n + j] = exp(xr[j] - mx) / sum;
  }
}
