/* Cross-layer compression of one group: X = [K_l1 | ... | K_lW] (L x F,
 * F = W * Hkv * d, one f32 block per layer) by a randomized SVD (Halko et
 * al.): Y = X Omega, 2 power iterations with CholQR re-orthonormalization,
 * then Z = X^T Q = Q2 R, X ~= (Q V') S (Q2 U')^T from the SVD of the small
 * k x k matrix R. The products over X are kernels (gemm_st_*); Gram
 * matrices, Cholesky and the small SVD run on the host (LAPACKE, double).
 * Values the same with their own rank. */
#include "xkv_cache_int.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define POWER_ITERS 2

typedef struct {
  xkv_cache *c;
  const char *where;
  float *const *x; /* per layer [L, hd] */
  int nx, L, hd, F, k;
  float *y, *q, *z, *z2, *small; /* device: [L,k] x2, [F,k] x2, [k,k] */
  double *h;                     /* host scratch [k,k] x3 */
  float *hf;                     /* host scratch [k,k] */
} rsvd;

static xkv_status oom(xkv_cache *c, const char *where) {
  return rt_err(c->ctx, XKV_ERR_OUT_OF_MEMORY, "%s: out of memory", where);
}

/* Y [L,k] (+)= X W with W [F,k] */
static xkv_status mul_x(rsvd *r, const float *w, float *out) {
  xkv_status s = XKV_OK;
  for (int l = 0; l < r->nx && !s; l++)
    s = xkv_cache_gemm(r->c, r->c->k.gemm_f32, r->x[l], r->hd, 1,
                       w + (size_t)l * r->hd * r->k, XKV_F32, r->k, 1, out,
                       XKV_F32, r->k, r->L, r->k, r->hd, l ? 1.0f : 0.0f);
  return s;
}

/* Z [F,k] = X^T Q with Q [L,k] */
static xkv_status mul_xt(rsvd *r, const float *q, float *out) {
  xkv_status s = XKV_OK;
  for (int l = 0; l < r->nx && !s; l++)
    s = xkv_cache_gemm(r->c, r->c->k.gemm_f32, r->x[l], 1, r->hd, q, XKV_F32,
                       r->k, 1, out + (size_t)l * r->hd * r->k, XKV_F32, r->k,
                       r->hd, r->k, r->L, 0.0f);
  return s;
}

/* One (shifted) Cholesky QR pass: Q = Y R^-1 with R^T R = Y^T Y + shift I
 * (shift = rel_shift * trace, raised when Cholesky fails); R (upper, k x k,
 * column-major double) goes to r_out. Y = Q R holds whatever the shift;
 * the shift (Fukaya et al., shifted CholeskyQR) keeps the factorization
 * alive when Y is ill-conditioned or rank-deficient in f32, and the later
 * passes restore orthogonality. */
static xkv_status cholqr_pass(rsvd *r, const float *y, float *q, int n,
                              double rel_shift, double *r_out) {
  int k = r->k;
  xkv_cache *c = r->c;
  xkv_status s = xkv_cache_gemm(c, c->k.gemm_f32, y, 1, k, y, XKV_F32, k, 1,
                                r->small, XKV_F32, k, k, k, n, 0.0f);
  s = s ? s : xkv_copy_d2h(c->ctx, r->hf, r->small, (size_t)k * k * 4, NULL);
  if (s)
    return s;
  double tr = 0;
  for (int i = 0; i < k; i++)
    tr += r->hf[(size_t)i * k + i];
  double shift = rel_shift * tr;
  for (int attempt = 0;; attempt++) {
    for (int i = 0; i < k; i++)
      for (int j = 0; j < k; j++) /* symmetrize: f32 sums differ */
        r_out[(size_t)j * k + i] =
            0.5 * (r->hf[(size_t)i * k + j] + r->hf[(size_t)j * k + i]) +
            (i == j ? shift : 0);
    if (LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', k, r_out, k) == 0)
      break;
    if (attempt == 8 || !(tr > 0))
      return rt_err(c->ctx, XKV_ERR_INVALID,
                    "%s: Cholesky QR failed (the input has no energy or "
                    "non-finite values)",
                    r->where);
    shift = shift > 0 ? shift * 100 : 1e-6 * tr;
  }
  for (int j = 0; j < k; j++) /* dpotrf leaves the lower part alone */
    for (int i = j + 1; i < k; i++)
      r_out[(size_t)j * k + i] = 0;
  double *inv = r->h + (size_t)2 * k * k;
  memcpy(inv, r_out, (size_t)k * k * sizeof *inv);
  LAPACKE_dtrtri(LAPACK_COL_MAJOR, 'U', 'N', k, inv, k);
  for (int i = 0; i < k; i++) /* row-major f32 for the kernel */
    for (int j = 0; j < k; j++)
      r->hf[(size_t)i * k + j] = (float)inv[(size_t)j * k + i];
  s = xkv_copy_h2d(c->ctx, r->small, r->hf, (size_t)k * k * 4, NULL);
  return s ? s
           : xkv_cache_gemm(c, c->k.gemm_f32, y, k, 1, r->small, XKV_F32, k, 1,
                            q, XKV_F32, k, n, k, k, 0.0f);
}

/* y = orth(y) in place by shifted CholeskyQR3, with y_in = y_out R (R
 * column-major into r_out when not NULL); tmp is scratch of y's size. */
static xkv_status orth(rsvd *r, float *y, float *tmp, int n, double *r_out) {
  int k = r->k;
  double *r1 = r->h, *r2 = r->h + (size_t)k * k;
  double *acc = r->h + (size_t)2 * k * k; /* free again after each pass */
  xkv_status s = cholqr_pass(r, y, tmp, n, 1e-6, r1);
  s = s ? s : cholqr_pass(r, tmp, y, n, 1e-12, r2);
  if (!s && r_out)
    for (int i = 0; i < k; i++) /* R = R2 R1, both upper triangular */
      for (int j = 0; j < k; j++) {
        double v = 0;
        for (int m = i; m <= j; m++)
          v += r2[(size_t)m * k + i] * r1[(size_t)j * k + m];
        r_out[(size_t)j * k + i] = v;
      }
  s = s ? s : cholqr_pass(r, y, tmp, n, 1e-12, r1);
  s = s ? s : xkv_copy_d2d(r->c->ctx, y, tmp, (size_t)n * k * 4, NULL);
  if (s || !r_out)
    return s;
  memcpy(acc, r_out, (size_t)k * k * sizeof *acc);
  for (int i = 0; i < k; i++) /* R = R3 (R2 R1) */
    for (int j = 0; j < k; j++) {
      double v = 0;
      for (int m = i; m <= j; m++)
        v += r1[(size_t)m * k + i] * acc[(size_t)j * k + m];
      r_out[(size_t)j * k + i] = v;
    }
  return XKV_OK;
}

/* Gaussian sketch from the cache's seed (splitmix64 + Box-Muller). */
static void gaussian(float *w, size_t n, uint64_t *st) {
  for (size_t i = 0; i < n; i += 2) {
    double u[2];
    for (int j = 0; j < 2; j++) {
      uint64_t z = (*st += 0x9e3779b97f4a7c15ull);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      u[j] = ((double)((z ^ (z >> 31)) >> 11) + 0.5) / 9007199254740992.0;
    }
    double rad = sqrt(-2 * log(u[0])), th = 6.283185307179586 * u[1];
    w[i] = (float)(rad * cos(th));
    if (i + 1 < n)
      w[i + 1] = (float)(rad * sin(th));
  }
}

/* ||X||_F^2 through the sumsq kernel */
static xkv_status energy_total(rsvd *r, double *out) {
  xkv_context *ctx = r->c->ctx;
  float tot = 0;
  *out = 0;
  for (int l = 0; l < r->nx; l++) {
    int n = r->L * r->hd;
    xkv_status s = xkv_memset(ctx, r->small, 0, 4, NULL);
    xkv_arg a[] = {xkv_arg_ptr(XKV_F32, r->x[l]),
                   xkv_arg_ptr(XKV_F32, r->small), xkv_arg_i32(n)};
    s = s ? s : xkv_launch(ctx, r->c->k.sumsq, NULL, a, 3, NULL);
    s = s ? s : xkv_copy_d2h(ctx, &tot, r->small, 4, NULL);
    if (s)
      return s;
    *out += tot;
  }
  return XKV_OK;
}

/* The rank for this factor from the cache's policy; sigma (k values) are
 * known for the energy policy only. */
static int pick_rank(const xkv_cache *c, int fixed, const double *sigma, int k,
                     double total, int L, int F) {
  const xkv_cache_config *f = &c->cfg;
  int full = L < F ? L : F;
  if (f->policy == XKV_RANK_FIXED)
    return fixed;
  if (f->policy == XKV_RANK_RATIO) {
    /* exact f16 bytes of K (or V) of the group / (target * factor bytes) */
    double r = (double)L * F * 2 / (f->target_ratio * c->elem * (L + F));
    int ri = (int)r;
    return ri < 1 ? 1 : ri > full ? full : ri;
  }
  double kept = 0;
  for (int i = 0; i < k; i++) {
    kept += sigma[i] * sigma[i];
    if (kept >= f->energy * total)
      return i + 1;
  }
  return k;
}

/* sketch width before knowing the rank */
static int sketch_cols(const xkv_cache *c, int fixed, int L, int F) {
  const xkv_cache_config *f = &c->cfg;
  int full = L < F ? L : F, r = fixed;
  if (f->policy == XKV_RANK_RATIO)
    r = pick_rank(c, fixed, NULL, 0, 0, L, F);
  else if (f->policy == XKV_RANK_ENERGY)
    r = fixed > 0 ? fixed : full;
  r += XKV_OVERSAMPLE;
  return r < full ? r : full;
}

static void rsvd_free(rsvd *r) {
  xkv_context *ctx = r->c->ctx;
  xkv_free(ctx, r->y);
  xkv_free(ctx, r->q);
  xkv_free(ctx, r->z);
  xkv_free(ctx, r->z2);
  xkv_free(ctx, r->small);
  free(r->h);
  free(r->hf);
}

/* Factorizes X (blocks x) into a [L, rank] (storage dtype) and b per layer
 * [Hkv, rank, d]; *rank in: the fixed rank or cap, out: the rank used. */
static xkv_status factorize(xkv_cache *c, const char *where, float *const *x,
                            int nx, int L, int *rank, void **a_out,
                            void **b_out, uint64_t *seed) {
  rsvd r = {.c = c, .where = where, .x = x, .nx = nx, .L = L};
  r.hd = c->cfg.n_kv_heads * c->cfg.head_dim;
  r.F = nx * r.hd;
  r.k = sketch_cols(c, *rank, L, r.F);
  int k = r.k, d = c->cfg.head_dim;
  size_t lk = (size_t)L * k * 4, fk = (size_t)r.F * k * 4;
  xkv_context *ctx = c->ctx;
  xkv_status s = xkv_alloc(ctx, lk, (void **)&r.y);
  s = s ? s : xkv_alloc(ctx, lk, (void **)&r.q);
  s = s ? s : xkv_alloc(ctx, fk, (void **)&r.z);
  s = s ? s : xkv_alloc(ctx, fk, (void **)&r.z2);
  s = s ? s : xkv_alloc(ctx, (size_t)k * k * 4, (void **)&r.small);
  r.h = malloc((size_t)k * k * 3 * sizeof *r.h);
  r.hf = malloc((size_t)k * k * 4);
  float *w = malloc(fk);
  double *rr = malloc((size_t)k * k * sizeof *rr);
  double *sv = malloc((size_t)k * 3 * sizeof *sv);
  double *u = malloc((size_t)k * k * sizeof *u);
  double *vt = malloc((size_t)k * k * sizeof *vt);
  float *hm = malloc((size_t)k * k * 4);
  if (!s && (!r.h || !r.hf || !w || !rr || !sv || !u || !vt || !hm))
    s = oom(c, where);
  if (!s) {
    gaussian(w, (size_t)r.F * k, seed);
    s = xkv_copy_h2d(ctx, r.z, w, fk, NULL);
  }
  /* Y = X Omega; Q = orth(Y); power iterations Q = orth(X orth(X^T Q));
   * Q lives in y, Z and then Q2 in z, q and z2 are scratch */
  s = s ? s : mul_x(&r, r.z, r.y);
  s = s ? s : orth(&r, r.y, r.q, L, NULL);
  for (int it = 0; it < POWER_ITERS && !s; it++) {
    s = mul_xt(&r, r.y, r.z);
    s = s ? s : orth(&r, r.z, r.z2, r.F, NULL);
    s = s ? s : mul_x(&r, r.z, r.y);
    s = s ? s : orth(&r, r.y, r.q, L, NULL);
  }
  /* Z = X^T Q = Q2 R; R = U' S V'^T (column-major) */
  s = s ? s : mul_xt(&r, r.y, r.z);
  s = s ? s : orth(&r, r.z, r.z2, r.F, rr);
  if (!s &&
      LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'A', k, k, rr, k, sv, u, k, vt, k) != 0)
    s = rt_err(ctx, XKV_ERR_INVALID, "%s: the small SVD did not converge",
               where);
  double total = 0;
  if (!s && c->cfg.policy == XKV_RANK_ENERGY)
    s = energy_total(&r, &total);
  int rk = s ? 0 : pick_rank(c, *rank, sv, k, total, L, r.F);
  if (!s && rk > k)
    s = rt_err(ctx, XKV_ERR_INVALID,
               "%s: rank %d exceeds min(L = %d, W*H_kv*d = %d)", where, rk, L,
               r.F);
  size_t ab = (size_t)L * rk * c->elem,
         bb = (size_t)c->cfg.n_kv_heads * rk * d * c->elem;
  s = s ? s : xkv_alloc(ctx, ab, a_out);
  for (int l = 0; l < nx && !s; l++)
    s = xkv_alloc(ctx, bb, &b_out[l]);
  if (!s) { /* A = Q V'_r: V' = (vt)^T, row-major [k, rk] */
    for (int i = 0; i < k; i++)
      for (int j = 0; j < rk; j++)
        hm[(size_t)i * rk + j] = (float)vt[(size_t)i * k + j];
    s = xkv_copy_h2d(ctx, r.small, hm, (size_t)k * rk * 4, NULL);
  }
  s = s ? s
        : xkv_cache_gemm(c, c->k.gemm_out, r.y, k, 1, r.small, XKV_F32, rk, 1,
                         *a_out, c->cfg.dtype, rk, L, rk, k, 0.0f);
  if (!s) { /* B = (Q2 U'_r S_r)^T: M = U'_r S_r row-major [k, rk] */
    for (int i = 0; i < k; i++)
      for (int j = 0; j < rk; j++)
        hm[(size_t)i * rk + j] = (float)(u[(size_t)j * k + i] * sv[j]);
    s = xkv_copy_h2d(ctx, r.small, hm, (size_t)k * rk * 4, NULL);
  }
  for (int l = 0; l < nx && !s; l++)
    for (int h = 0; h < c->cfg.n_kv_heads && !s; h++)
      s = xkv_cache_gemm(c, c->k.gemm_out, r.small, 1, rk,
                         r.z + ((size_t)l * r.hd + (size_t)h * d) * k, XKV_F32,
                         1, k, (char *)b_out[l] + (size_t)h * rk * d * c->elem,
                         c->cfg.dtype, d, rk, d, k, 0.0f);
  *rank = rk;
  rsvd_free(&r);
  free(w);
  free(rr);
  free(sv);
  free(u);
  free(vt);
  free(hm);
  return s;
}

xkv_status xkv_cache_compress_group(xkv_cache *c, int g, const char *where) {
  int first = xkv_cache_group_first(c, g), W = xkv_cache_group_size(c, g);
  xkv_group *gr = &c->groups[g];
  float *xk[8], *xv[8];
  void *bk[8] = {0}, *bv[8] = {0};
  for (int l = 0; l < W; l++) {
    xk[l] = c->layers[first + l].stage_k;
    xv[l] = c->layers[first + l].stage_v;
  }
  int L = c->prompt_len, F = W * c->cfg.n_kv_heads * c->cfg.head_dim;
  int full = L < F ? L : F;
  int rk = c->cfg.rank_k, rv = c->cfg.rank_v;
  if (c->cfg.policy == XKV_RANK_FIXED && (rk > full || rv > full))
    return rt_err(c->ctx, XKV_ERR_INVALID,
                  "%s: rank_k %d / rank_v %d exceed min(L = %d, W*H_kv*d = "
                  "%d) = %d",
                  where, rk, rv, L, F, full);
  uint64_t seed = c->cfg.seed + (uint64_t)g * 0x5851f42d4c957f2dull;
  xkv_status s = factorize(c, where, xk, W, L, &rk, &gr->ak, bk, &seed);
  s = s ? s : factorize(c, where, xv, W, L, &rv, &gr->av, bv, &seed);
  for (int l = 0; l < W; l++) {
    xkv_layer *y = &c->layers[first + l];
    y->bk = bk[l];
    y->bv = bv[l];
    if (s)
      continue;
    xkv_free(c->ctx, y->stage_k);
    xkv_free(c->ctx, y->stage_v);
    y->stage_k = y->stage_v = NULL;
  }
  if (s)
    return s;
  gr->L = L;
  gr->rank_k = rk;
  gr->rank_v = rv;
  return XKV_OK;
}
