#include "measure.h"
#include "problem_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A kernel's entry: its name, or with `suffixed` a prefix that a dtype
 * (f16, bf16, f32) completes. Adding a kernel to the tuner is one line
 * here and a setup (problem_*.c) that fills the arguments and computes
 * the C reference. */
typedef struct {
  const char *name;
  int suffixed;
  xk_problem_setup setup;
} kind;

static const kind kinds[] = {
    {"gemm_", 1, xk_setup_gemm},
    {"gemm_st_f32_", 1, xk_setup_gemm_st},
    {"gemm_st_f16_", 1, xk_setup_gemm_st},
    {"gemm_sk_", 1, xk_setup_gemm_sk},
    {"gemm_skt_", 1, xk_setup_gemm_sk},
    {"vadd", 0, xk_setup_vadd},
    {"softmax", 0, xk_setup_softmax},
    {"sumsq_f32", 0, xk_setup_sumsq},
    {"rebuild_k", 0, xk_setup_rebuild_k},
    {"xkv_rows_", 1, xk_setup_rows},
    {"xkv_decode_lr_", 1, xk_setup_decode_lr},
    {"xkv_decode_exact_", 1, xk_setup_decode_exact},
    {"xkv_sr_rebuild_", 1, xk_setup_sr_rebuild},
    {"xkv_scores_exact_", 1, xk_setup_scores_exact},
    {"xkv_decode_combine", 0, xk_setup_combine},
};

static int suffix_dtype(const char *s, xkv_dtype *dt) {
  static const struct {
    const char *n;
    xkv_dtype dt;
  } t[] = {{"f16", XKV_F16}, {"bf16", XKV_BF16}, {"f32", XKV_F32}};
  for (size_t i = 0; i < sizeof t / sizeof *t; i++)
    if (!strcmp(s, t[i].n)) {
      *dt = t[i].dt;
      return 1;
    }
  return 0;
}

static const kind *kind_of(const char *name, xkv_dtype *dt) {
  *dt = XKV_F32;
  for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
    const kind *k = &kinds[i];
    size_t n = strlen(k->name);
    if (!k->suffixed ? !strcmp(name, k->name)
                     : !strncmp(name, k->name, n) && suffix_dtype(name + n, dt))
      return k;
  }
  return NULL;
}

int xk_problem_known(const char *kernel) {
  xkv_dtype dt;
  return kind_of(kernel, &dt) != NULL;
}

int xk_problem_make(const char *kernel, const char *const *names,
                    const int64_t *vals, int n, int units, xk_problem *p,
                    xk_diag *d) {
  memset(p, 0, sizeof *p);
  xk_problem_key k = {kernel, names, vals, n, XKV_F32, units};
  const kind *kd = kind_of(kernel, &k.dt);
  if (!kd)
    return xk_diag_set(d,
                       "kernel '%s': the tuner has no inputs for it (add its "
                       "setup to autotune/problem.c's table)",
                       kernel);
  int rc = kd->setup(p, &k, d);
  if (!rc && !p->out_elems && p->nouts)
    p->out_elems = p->nelem[p->outs[0]];
  if (!rc && p->c_ref && !p->out_elems)
    rc = xk_diag_set(d, "%s: its setup names no output", kernel);
  if (rc)
    xk_problem_free(p);
  return rc;
}

/* ---- helpers for the setups --------------------------------------------- */

static uint16_t f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u)
    return 0x7fc0;
  return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

static float bf16_to_f32(uint16_t h) {
  uint32_t x = (uint32_t)h << 16;
  float f;
  memcpy(&f, &x, 4);
  return f;
}

static size_t elem_size(xkv_dtype dt) {
  return dt == XKV_F16 || dt == XKV_BF16 ? 2 : 4;
}

static void put(void *b, xkv_dtype dt, size_t j, double v) {
  switch (dt) {
  case XKV_F16: {
    _Float16 h = (_Float16)v;
    memcpy((uint16_t *)b + j, &h, 2);
    break;
  }
  case XKV_BF16:
    ((uint16_t *)b)[j] = f32_to_bf16((float)v);
    break;
  case XKV_I32:
    ((int32_t *)b)[j] = (int32_t)v;
    break;
  default:
    ((float *)b)[j] = (float)v;
  }
}

static double get(const void *b, xkv_dtype dt, size_t j) {
  switch (dt) {
  case XKV_F16: {
    _Float16 h;
    memcpy(&h, (const uint16_t *)b + j, 2);
    return (double)h;
  }
  case XKV_BF16:
    return bf16_to_f32(((const uint16_t *)b)[j]);
  case XKV_I32:
    return ((const int32_t *)b)[j];
  default:
    return ((const float *)b)[j];
  }
}

double xk_pround(xkv_dtype dt, double x) {
  unsigned char b[4];
  put(b, dt, 0, x);
  return get(b, dt, 0);
}

double xk_ptol(xkv_dtype dt) {
  return dt == XKV_BF16 ? 3e-2 : dt == XKV_F16 ? 5e-3 : 1e-4;
}

int64_t xk_pkey(const xk_problem_key *k, const char *name, int64_t dflt) {
  for (int i = 0; i < k->n; i++)
    if (!strcmp(k->names[i], name))
      return k->vals[i];
  return dflt;
}

static void *alloc_arg(xk_problem *p, int i, size_t n, xkv_dtype dt) {
  size_t bytes = (n ? n : 1) * elem_size(dt);
  void *b = aligned_alloc(64, (bytes + 63) / 64 * 64);
  p->bufs[i] = b;
  p->nelem[i] = n;
  p->args[i] = xkv_arg_ptr(dt, b);
  if (p->nargs <= i)
    p->nargs = i + 1;
  return b;
}

void *xk_pbuf(xk_problem *p, int i, size_t n, xkv_dtype dt, float scale,
              uint64_t *seed) {
  void *b = alloc_arg(p, i, n, dt);
  for (size_t j = 0; b && j < n; j++) {
    *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
    put(b, dt, j, scale * (float)((int)((*seed >> 33) % 129) - 64) / 64.0f);
  }
  return b;
}

int32_t *xk_pbuf_i32(xk_problem *p, int i, size_t n) {
  return alloc_arg(p, i, n, XKV_I32);
}

void *xk_pout(xk_problem *p, int i, size_t n, xkv_dtype dt) {
  void *b = alloc_arg(p, i, n, dt);
  if (p->nouts < XK_PROBLEM_MAXOUT)
    p->outs[p->nouts++] = i;
  return b;
}

void xk_pi32(xk_problem *p, int i, int64_t v) {
  p->args[i] = xkv_arg_i32((int32_t)v);
  if (p->nargs <= i)
    p->nargs = i + 1;
}

void xk_pf32(xk_problem *p, int i, float v) {
  p->args[i] = xkv_arg_f32(v);
  if (p->nargs <= i)
    p->nargs = i + 1;
}

double xk_pget(const xk_problem *p, int i, size_t j) {
  return get(p->bufs[i], (xkv_dtype)p->args[i].dtype, j);
}

double *xk_pref(xk_problem *p) {
  if (!p->out_elems && p->nouts)
    p->out_elems = p->nelem[p->outs[0]];
  return p->c_ref = calloc(p->out_elems ? p->out_elems : 1, sizeof(double));
}

int xk_pcheck(const xk_problem *p, xk_diag *d) {
  for (int i = 0; i < p->nargs; i++)
    if (p->args[i].is_ptr && !p->bufs[i])
      return xk_diag_set(d, "out of memory for the inputs");
  return 0;
}

/* ---- running ------------------------------------------------------------ */

void xk_problem_poison(xk_problem *p) {
  for (int o = 0; o < p->nouts; o++) {
    int i = p->outs[o];
    for (size_t j = 0; j < p->nelem[i]; j++)
      put(p->bufs[i], (xkv_dtype)p->args[i].dtype, j,
          p->accumulates ? 0.0 : NAN);
  }
}

void xk_problem_output(const xk_problem *p, double *out) {
  if (p->view) {
    p->view(p, out);
    return;
  }
  for (size_t j = 0; j < p->out_elems; j++)
    out[j] = xk_pget(p, p->outs[0], j);
}

int xk_problem_reference(const xk_problem *p, const char *kernel,
                         const char *key, double *ref, xk_diag *d) {
  xk_problem_output(p, ref);
  double err = p->c_ref ? xk_rel_err(ref, p->c_ref, p->out_elems) : 0;
  if (err > p->tol)
    return xk_diag_set(d,
                       "%s %s: the default config differs from the C "
                       "reference (rel. error %.3g): no reference to tune "
                       "against",
                       kernel, key, err);
  return 0;
}

void xk_problem_free(xk_problem *p) {
  for (int i = 0; i < XK_PROBLEM_MAXARGS; i++)
    free(p->bufs[i]);
  free(p->c_ref);
  memset(p, 0, sizeof *p);
}
