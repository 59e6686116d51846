/* xKV decode attention through the sim target; see xkv_dsim.h. */
#include "xkv_dsim.h"

#include "kernel_cases.h"
#include "xkv_ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int build(xk_dsl *dsl, const char *name, const xk_constexpr *over,
                 int nover, const char *target, xkv_dsim_kernel *k,
                 xk_diag *d) {
  memset(k, 0, sizeof *k);
  int i = xk_dsl_find(dsl, name);
  if (i < 0)
    return xk_diag_set(d, "xkv_dsim: no kernel %s", name);
  if (xk_compile_ir(dsl, i, over, nover, &k->f, d))
    return -1;
  LLVMTargetMachineRef tm;
  LLVMModuleRef m;
  xk_host_fn fn;
  if (xk_target_machine(target, &tm, d))
    goto fail;
  int rc = xk_compile_llvm(k->f, target, tm, k->f->name, 1, &m, &k->info, d);
  LLVMDisposeTargetMachine(tm);
  if (rc)
    goto fail;
  if (xk_jit_new(&k->jit, d)) {
    LLVMDisposeModule(m);
    goto fail;
  }
  if (xk_jit_add(k->jit, m, d) || xk_jit_lookup(k->jit, k->f->name, &fn, d))
    goto fail;
  if (strcmp(target, "sim"))
    k->host = fn;
  else
    k->fn = (xk_sim_fn)(void (*)(void))fn;
  return 0;
fail:
  xkv_dsim_kernel_free(k);
  return -1;
}

int xkv_dsim_kernel_build(xk_dsl *dsl, const char *name,
                          const xk_constexpr *over, int nover,
                          xkv_dsim_kernel *k, xk_diag *d) {
  return build(dsl, name, over, nover, "sim", k, d);
}

int xkv_dsim_kernel_build_host(xk_dsl *dsl, const char *name,
                               const xk_constexpr *over, int nover,
                               xkv_dsim_kernel *k, xk_diag *d) {
  return build(dsl, name, over, nover, "host", k, d);
}

void xkv_dsim_kernel_free(xkv_dsim_kernel *k) {
  xk_jit_free(k->jit);
  xk_func_free(k->f);
  memset(k, 0, sizeof *k);
}

int64_t xkv_dsim_const(const xkv_dsim_kernel *k, const char *name) {
  for (int i = 0; i < k->f->nconsts; i++)
    if (!strcmp(k->f->consts[i].name, name))
      return k->f->consts[i].value;
  return -1;
}

static void store(const xkv_dsim *p, void *buf, size_t i, float x) {
  if (p->s.dt == XKV_DSIM_F32)
    ((float *)buf)[i] = x;
  else
    ((uint16_t *)buf)[i] =
        p->s.dt == XKV_DSIM_F16 ? xk_f32_to_f16(x) : xk_f32_to_bf16(x);
}

static float fetch(const xkv_dsim *p, const void *buf, size_t i) {
  if (p->s.dt == XKV_DSIM_F32)
    return ((const float *)buf)[i];
  uint16_t h = ((const uint16_t *)buf)[i];
  return p->s.dt == XKV_DSIM_F16 ? xk_f16_to_f32(h) : xk_bf16_to_f32(h);
}

/* n random N(0, sd^2) values stored in buf */
static void gauss_fill(const xkv_dsim *p, void *buf, size_t n, double sd,
                       uint64_t *rng) {
  for (size_t i = 0; i < n; i++)
    store(p, buf, i, (float)(sd * xkv_ref_gauss(rng)));
}

/* rows 0..L-1 of out [., hkv, d] = A [L, r] B [hkv, r, d] from the stored
 * factors */
static void lowrank(const xkv_dsim *p, const void *a, const void *b, int r,
                    float *out) {
  const xkv_dsim_shape *s = &p->s;
  for (int n = 0; n < s->L; n++)
    for (int h = 0; h < s->hkv; h++)
      for (int e = 0; e < s->d; e++) {
        double acc = 0;
        for (int j = 0; j < r; j++)
          acc += (double)fetch(p, a, (size_t)n * r + j) *
                 fetch(p, b, ((size_t)h * r + j) * s->d + e);
        out[((size_t)n * s->hkv + h) * s->d + e] = (float)acc;
      }
}

/* zeroed, 128-byte aligned like a device allocation: sector counts depend
 * on the alignment */
static void *zalloc(size_t n) {
  n = (n + 127) / 128 * 128;
  void *p = aligned_alloc(128, n ? n : 128);
  return p ? memset(p, 0, n) : NULL;
}

int xkv_dsim_init(xkv_dsim *p, const xkv_dsim_shape *s, xk_diag *d) {
  memset(p, 0, sizeof *p);
  p->s = *s;
  if (s->ldo < s->ns_lr + s->ns_ex || s->d % 2 || s->hkv <= 0 || s->g <= 0)
    return xk_diag_set(d, "xkv_dsim: bad shape (ldo %d < %d splits, or d %d)",
                       s->ldo, s->ns_lr + s->ns_ex, s->d);
  p->esz = s->dt == XKV_DSIM_F32 ? 4 : 2;
  size_t hq = (size_t)s->hkv * s->g, D = (size_t)s->d, L = (size_t)s->L;
  size_t T = (size_t)s->tail, rows = (L + T) * s->hkv * D;
  p->ak = zalloc(L * s->rk * p->esz);
  p->av = zalloc(L * s->rv * p->esz);
  p->bk = zalloc((size_t)s->hkv * s->rk * D * p->esz);
  p->bv = zalloc((size_t)s->hkv * s->rv * D * p->esz);
  p->kx = zalloc(T * s->hkv * D * p->esz);
  p->vx = zalloc(T * s->hkv * D * p->esz);
  p->q = zalloc(hq * D * 4);
  p->cos = zalloc(L * D / 2 * 4);
  p->sin = zalloc(L * D / 2 * 4);
  p->S = zalloc(hq * L * 4);
  p->O = zalloc(hq * s->ldo * D * 4);
  p->M = zalloc(hq * s->ldo * 4);
  p->Lsum = zalloc(hq * s->ldo * 4);
  p->out = zalloc(hq * D * 4);
  p->qpre = zalloc(hq * D * 4);
  p->kpre = zalloc(rows * 4);
  p->vpre = zalloc(rows * 4);
  if (!p->ak || !p->av || !p->bk || !p->bv || !p->kx || !p->vx || !p->q ||
      !p->cos || !p->sin || !p->S || !p->O || !p->M || !p->Lsum || !p->out ||
      !p->qpre || !p->kpre || !p->vpre) {
    xkv_dsim_free(p);
    return xk_diag_set(d, "xkv_dsim: out of memory");
  }
  uint64_t rng = s->seed;
  /* K = A B ~ N(0, 1) per element: A ~ N(0, 1), B ~ N(0, 1/r) */
  gauss_fill(p, p->ak, L * s->rk, 1.0, &rng);
  gauss_fill(p, p->bk, (size_t)s->hkv * s->rk * D, 1.0 / sqrt(s->rk), &rng);
  gauss_fill(p, p->av, L * s->rv, 1.0, &rng);
  gauss_fill(p, p->bv, (size_t)s->hkv * s->rv * D, 1.0 / sqrt(s->rv), &rng);
  lowrank(p, p->ak, p->bk, s->rk, p->kpre);
  lowrank(p, p->av, p->bv, s->rv, p->vpre);
  /* the tail: keys stored after RoPE at their positions */
  float *row = zalloc(D * 4);
  if (!row) {
    xkv_dsim_free(p);
    return xk_diag_set(d, "xkv_dsim: out of memory");
  }
  for (size_t t = 0; t < T; t++)
    for (size_t h = 0; h < (size_t)s->hkv; h++) {
      size_t at = (t * s->hkv + h) * D, ref = L * s->hkv * D + at;
      for (size_t e = 0; e < D; e++)
        row[e] = (float)xkv_ref_gauss(&rng);
      xkv_ref_rope(row, s->d, (int)(L + t), s->theta);
      for (size_t e = 0; e < D; e++) {
        store(p, p->kx, at + e, row[e]);
        store(p, p->vx, at + e, (float)xkv_ref_gauss(&rng));
        p->vpre[ref + e] = fetch(p, p->vx, at + e);
      }
      /* the reference rotates back what was stored */
      for (size_t e = 0; e < D; e++)
        row[e] = fetch(p, p->kx, at + e);
      xkv_ref_rope(row, s->d, -(int)(L + t), s->theta);
      memcpy(p->kpre + ref, row, D * 4);
    }
  free(row);
  for (size_t n = 0; n < L; n++)
    for (int i = 0; i < s->d / 2; i++) {
      double th = (double)n * pow(s->theta, -2.0 * i / s->d);
      p->cos[n * D / 2 + i] = (float)cos(th);
      p->sin[n * D / 2 + i] = (float)sin(th);
    }
  /* queries as load_query prepares them (interleaved pairs already) */
  float scale = 1.0f / sqrtf((float)s->d);
  for (size_t h = 0; h < hq; h++) {
    float *q = p->q + h * D;
    for (size_t e = 0; e < D; e++)
      q[e] = p->qpre[h * D + e] = (float)xkv_ref_gauss(&rng);
    xkv_ref_rope(q, s->d, (int)(L + T), s->theta);
    for (size_t e = 0; e < D; e++)
      q[e] *= scale;
  }
  for (size_t i = 0; i < hq * s->ldo * D; i++)
    p->O[i] = NAN;
  for (size_t i = 0; i < hq * s->ldo; i++)
    p->M[i] = p->Lsum[i] = NAN;
  return 0;
}

void xkv_dsim_free(xkv_dsim *p) {
  void *bufs[] = {p->ak,   p->av,  p->bk,   p->bv,   p->kx,  p->vx,
                  p->q,    p->cos, p->sin,  p->S,    p->O,   p->M,
                  p->Lsum, p->out, p->qpre, p->kpre, p->vpre};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
    free(bufs[i]);
  memset(p, 0, sizeof *p);
}

static int32_t gblocks(const xkv_dsim *p, const xkv_dsim_kernel *k) {
  int64_t bg = xkv_dsim_const(k, "BLOCK_G");
  return (int32_t)((p->s.g + bg - 1) / bg);
}

void xkv_dsim_grid_lr(const xkv_dsim *p, const xkv_dsim_kernel *k,
                      int32_t grid[3]) {
  grid[0] = p->s.ns_lr;
  grid[1] = p->s.hkv;
  grid[2] = gblocks(p, k);
}

void xkv_dsim_grid_exact(const xkv_dsim *p, const xkv_dsim_kernel *k,
                         int32_t grid[3]) {
  grid[0] = p->s.ns_ex;
  grid[1] = p->s.hkv;
  grid[2] = gblocks(p, k);
}

static int check_d(const xkv_dsim *p, const xkv_dsim_kernel *k, xk_diag *d) {
  if (xkv_dsim_const(k, "D") != p->s.d)
    return xk_diag_set(d, "xkv_dsim: %s has D=%lld, the problem d=%d",
                       k->f->name, (long long)xkv_dsim_const(k, "D"), p->s.d);
  return 0;
}

int xkv_dsim_launch(const xkv_dsim_kernel *k, void **args, const int32_t *grid,
                    xk_sim_counters *c, xk_diag *d) {
  if (!k->host)
    return xk_sim_launch(k->fn, args, grid, k->info.threads,
                         k->info.shared_bytes, c, d);
  if (c)
    memset(c, 0, sizeof *c);
  int32_t pid[3];
  for (pid[2] = 0; pid[2] < grid[2]; pid[2]++)
    for (pid[1] = 0; pid[1] < grid[1]; pid[1]++)
      for (pid[0] = 0; pid[0] < grid[0]; pid[0]++)
        k->host(args, pid, grid);
  return 0;
}

int xkv_dsim_lr1(xkv_dsim *p, const xkv_dsim_kernel *k, const int32_t *grid,
                 xk_sim_counters *c, xk_diag *d) {
  const xkv_dsim_shape *s = &p->s;
  int32_t L = s->L, rk = s->rk, rv = s->rv, hkv = s->hkv, G = s->g;
  int32_t ns = s->ns_lr, ldo = s->ldo, s0 = 0;
  int64_t hb = xkv_dsim_const(k, "HB"), bg = xkv_dsim_const(k, "BLOCK_G");
  if (check_d(p, k, d))
    return -1;
  if (hb * G > bg)
    return xk_diag_set(d,
                       "xkv_dsim: %s covers HB %lld x G %d query heads in "
                       "BLOCK_G %lld columns",
                       k->f->name, (long long)hb, G, (long long)bg);
  if (rk > xkv_dsim_const(k, "RK") || rv > xkv_dsim_const(k, "RV"))
    return xk_diag_set(d, "xkv_dsim: ranks %d, %d above %s's buckets", rk, rv,
                       k->f->name);
  int32_t g[3] = {ns, (int32_t)((hkv + hb - 1) / hb), 1};
  void *args[18] = {&p->ak,  &p->bk, &p->av, &p->bv,   &p->q, &p->cos,
                    &p->sin, &p->O,  &p->M,  &p->Lsum, &L,    &rk,
                    &rv,     &hkv,   &G,     &ns,      &ldo,  &s0};
  return xkv_dsim_launch(k, args, grid ? grid : g, c, d);
}

int xkv_dsim_lr(xkv_dsim *p, const xkv_dsim_kernel *k, const int32_t *grid,
                xk_sim_counters *c, xk_diag *d) {
  const xkv_dsim_shape *s = &p->s;
  int32_t g[3], L = s->L, rk = s->rk, rv = s->rv, hkv = s->hkv, G = s->g;
  int32_t lds = s->L, ns = s->ns_lr, ldo = s->ldo, s0 = 0;
  if (check_d(p, k, d))
    return -1;
  if (!grid)
    xkv_dsim_grid_lr(p, k, g);
  void *args[20] = {&p->ak, &p->bk, &p->av, &p->bv,   &p->q, &p->cos, &p->sin,
                    &p->S,  &p->O,  &p->M,  &p->Lsum, &L,    &rk,     &rv,
                    &hkv,   &G,     &lds,   &ns,      &ldo,  &s0};
  return xkv_dsim_launch(k, args, grid ? grid : g, c, d);
}

int xkv_dsim_exact(xkv_dsim *p, const xkv_dsim_kernel *k, const int32_t *grid,
                   xk_sim_counters *c, xk_diag *d) {
  const xkv_dsim_shape *s = &p->s;
  int32_t g[3], T = s->tail, hkv = s->hkv, G = s->g, ns = s->ns_ex;
  int32_t ldo = s->ldo, s0 = s->ns_lr;
  if (check_d(p, k, d))
    return -1;
  if (!grid)
    xkv_dsim_grid_exact(p, k, g);
  void *args[12] = {&p->kx, &p->vx, &p->q, &p->O, &p->M, &p->Lsum,
                    &T,     &hkv,   &G,    &ns,   &ldo,  &s0};
  return xkv_dsim_launch(k, args, grid ? grid : g, c, d);
}

int xkv_dsim_combine(xkv_dsim *p, const xkv_dsim_kernel *k, const int32_t *grid,
                     xk_sim_counters *c, xk_diag *d) {
  const xkv_dsim_shape *s = &p->s;
  int32_t hq = s->hkv * s->g, ns = s->ns_lr + s->ns_ex, ldo = s->ldo;
  int32_t g[3] = {hq, 1, 1};
  if (check_d(p, k, d))
    return -1;
  void *args[7] = {&p->O, &p->M, &p->Lsum, &p->out, &hq, &ns, &ldo};
  return xkv_dsim_launch(k, args, grid ? grid : g, c, d);
}

void xkv_dsim_reference(const xkv_dsim *p, float *ref) {
  const xkv_dsim_shape *s = &p->s;
  int T = s->L + s->tail;
  xkv_ref_attention(p->qpre, p->kpre, p->vpre, T, s->hkv * s->g, s->hkv, s->d,
                    T, s->theta, ref);
}
