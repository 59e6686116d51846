/* Cross-layer compression of one group: X = [K_l1 | ... | K_lW] (L x F,
 * F = W * Hkv * d, one f32 block per layer), by one of two routes:
 * - randomized SVD (Halko et al.): Y = X Omega, 2 power iterations with
 *   CholQR re-orthonormalization, then Z = X^T Q = Q2 R, X ~= (Q V') S
 *   (Q2 U')^T from the SVD of the small k x k matrix R;
 * - Gram: G = X^T X, its top eigenvectors V_r (host LAPACK), A = X V_r,
 *   B = V_r^T: the optimal rank-r factors, for an O(F^3) host eigensolver.
 * The products over X are kernels (gemm_st_*); Gram matrices, Cholesky,
 * the small SVD and the eigensolver run on the host (LAPACKE). Values the
 * same with their own rank and route. */
#include "xkv_cache_int.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* The rank the policy asks for before the spectrum is known: the fixed
 * rank, the target ratio's rank, or the energy policy's cap (the fixed
 * field when > 0, else min(L, F)). */
static int policy_rank(const xkv_cache *c, int fixed, int L, int F) {
  const xkv_cache_config *f = &c->cfg;
  int full = L < F ? L : F;
  if (f->policy == XKV_RANK_FIXED)
    return fixed;
  if (f->policy == XKV_RANK_ENERGY)
    return fixed > 0 && fixed < full ? fixed : full;
  /* exact f16 bytes of K (or V) of the group / (target * factor bytes) */
  double r = (double)L * F * 2 / (f->target_ratio * c->elem * (L + F));
  int ri = (int)r;
  return ri < 1 ? 1 : ri > full ? full : ri;
}

/* The rank from n squared singular values (descending) and the policy's
 * rank `want`: the energy policy keeps the fewest that reach energy * total
 * (at most want), the others keep want. */
static int final_rank(const xkv_cache *c, int want, const double *s2, int n,
                      double total) {
  if (c->cfg.policy != XKV_RANK_ENERGY)
    return want;
  double kept = 0;
  for (int i = 0; i < n && i < want; i++) {
    kept += s2[i];
    if (kept >= c->cfg.energy * total)
      return i + 1;
  }
  return n < want ? n : want;
}

/* sketch width of the randomized SVD */
static int sketch_cols(const xkv_cache *c, int fixed, int L, int F) {
  int full = L < F ? L : F, r = policy_rank(c, fixed, L, F) + XKV_OVERSAMPLE;
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

/* a [L, rank] and b per layer [Hkv, rank, d], storage dtype */
static xkv_status alloc_factors(xkv_cache *c, int L, int nx, int rk,
                                void **a_out, void **b_out) {
  size_t ab = (size_t)L * rk * c->elem,
         bb = (size_t)c->cfg.n_kv_heads * rk * c->cfg.head_dim * c->elem;
  xkv_status s = xkv_alloc(c->ctx, ab, a_out);
  for (int l = 0; l < nx && !s; l++)
    s = xkv_alloc(c->ctx, bb, &b_out[l]);
  return s;
}

/* Randomized SVD of X (blocks x) into a [L, rank] (storage dtype) and b per
 * layer [Hkv, rank, d]; *rank in: the fixed rank or cap, out: the rank
 * used. */
static xkv_status rsvd_factorize(xkv_cache *c, const char *where,
                                 float *const *x, int nx, int L, int *rank,
                                 void **a_out, void **b_out, uint64_t *seed) {
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
  double *sv = malloc((size_t)k * 2 * sizeof *sv); /* sigma, then sigma^2 */
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
  for (int i = 0; !s && i < k; i++)
    sv[k + i] = sv[i] * sv[i];
  int rk =
      s ? 0 : final_rank(c, policy_rank(c, *rank, L, r.F), sv + k, k, total);
  s = s ? s : alloc_factors(c, L, nx, rk, a_out, b_out);
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

/* Gram route state: device G [F, F], V_r [F, r], Y = X V_r [L, r] (f32)
 * and the identity [r, r]; host G, eigenpairs, V_r, and hb: the identity,
 * then one layer's B (f32, and hbs in the storage dtype). */
typedef struct {
  float *g, *v, *y, *eye;
  float *hg, *w, *z, *hv, *hb;
  double *s2;
  void *hbs;
  int *isuppz;
} gram;

static void gram_free(xkv_context *ctx, gram *m) {
  void *dev[] = {m->g, m->v, m->y, m->eye};
  for (size_t i = 0; i < sizeof dev / sizeof *dev; i++)
    xkv_free(ctx, dev[i]);
  void *host[] = {m->hg, m->w, m->z, m->hv, m->hb, m->s2, m->hbs, m->isuppz};
  for (size_t i = 0; i < sizeof host / sizeof *host; i++)
    free(host[i]);
}

/* G = X^T X from the layer blocks: G[i, j] = X_i^T X_j, only the blocks
 * j >= i (with the diagonal blocks that is the upper triangle row-major,
 * the lower one column-major, which is what the eigensolver reads). */
static xkv_status gram_matrix(xkv_cache *c, float *const *x, int nx, int L,
                              int hd, float *g) {
  xkv_status s = XKV_OK;
  size_t F = (size_t)nx * hd;
  for (int i = 0; i < nx && !s; i++)
    for (int j = i; j < nx && !s; j++)
      s = xkv_cache_gemm(c, c->k.gemm_f32, x[i], 1, hd, x[j], XKV_F32, hd, 1,
                         g + (size_t)i * hd * F + (size_t)j * hd, XKV_F32,
                         (int)F, hd, hd, L, 0.0f);
  return s;
}

/* Gram route, same contract as rsvd_factorize. The top eigenpairs come
 * from LAPACKE_ssyevr (MRRR, only the wanted vectors: 0.6x ssyevd's time
 * here). f32 suffices: against dsyevr on the same G, the rank-r error is
 * the same (<= 1.00001x the optimum) wherever the optimal relative error is
 * above ~1e-3; below that both are limited by G's own f32 rounding (floor
 * ~3e-4 relative, the size of f16 storage rounding) and dsyevr costs 2x. */
static xkv_status gram_factorize(xkv_cache *c, const char *where,
                                 float *const *x, int nx, int L, int *rank,
                                 void **a_out, void **b_out) {
  int hd = c->cfg.n_kv_heads * c->cfg.head_dim, d = c->cfg.head_dim;
  int F = nx * hd, want = policy_rank(c, *rank, L, F), rk = 0;
  size_t ff = (size_t)F * F;
  xkv_context *ctx = c->ctx;
  gram m = {0};
  xkv_status s = xkv_alloc(ctx, ff * 4, (void **)&m.g);
  m.hg = malloc(ff * 4);
  m.w = malloc((size_t)F * 4);
  m.z = malloc((size_t)F * want * 4);
  m.s2 = malloc((size_t)want * sizeof *m.s2);
  m.isuppz = malloc((size_t)2 * want * sizeof *m.isuppz);
  if (!s && (!m.hg || !m.w || !m.z || !m.s2 || !m.isuppz))
    s = oom(c, where);
  s = s ? s : gram_matrix(c, x, nx, L, hd, m.g);
  s = s ? s : xkv_copy_d2h(ctx, m.hg, m.g, ff * 4, NULL);
  double total = 0; /* trace(G) = ||X||_F^2 = the sum of sigma^2 */
  for (int i = 0; !s && i < F; i++)
    total += m.hg[(size_t)i * F + i];
  int found = 0;
  if (!s && !(total > 0 && total < INFINITY))
    s = rt_err(ctx, XKV_ERR_INVALID,
               "%s: the input has no energy or non-finite values", where);
  if (!s &&
      (LAPACKE_ssyevr(LAPACK_COL_MAJOR, 'V', 'I', 'L', F, m.hg, F, 0, 0,
                      F - want + 1, F, 0, &found, m.w, m.z, F, m.isuppz) != 0 ||
       found != want))
    s = rt_err(ctx, XKV_ERR_INVALID,
               "%s: the eigensolver (ssyevr, F = %d) did not converge", where,
               F);
  /* eigenvalues ascending: sigma_i^2 = w[want - 1 - i], clamped at 0
   * (rounding makes the null space's slightly negative) */
  for (int i = 0; !s && i < want; i++)
    m.s2[i] = m.w[want - 1 - i] > 0 ? m.w[want - 1 - i] : 0;
  if (!s)
    rk = final_rank(c, want, m.s2, want, total);
  m.hv = s ? NULL : malloc((size_t)F * rk * 4);
  m.hb = s ? NULL : malloc((size_t)(hd > rk ? hd : rk) * rk * 4);
  m.hbs = s ? NULL : malloc((size_t)hd * rk * c->elem);
  if (!s && (!m.hv || !m.hb || !m.hbs))
    s = oom(c, where);
  for (int f = 0; !s && f < F; f++) /* V_r row-major [F, rk], descending */
    for (int i = 0; i < rk; i++)
      m.hv[(size_t)f * rk + i] = m.z[(size_t)(want - 1 - i) * F + f];
  s = s ? s : alloc_factors(c, L, nx, rk, a_out, b_out);
  s = s ? s : xkv_alloc(ctx, (size_t)F * rk * 4, (void **)&m.v);
  s = s ? s : xkv_alloc(ctx, (size_t)L * rk * 4, (void **)&m.y);
  s = s ? s : xkv_alloc(ctx, (size_t)rk * rk * 4, (void **)&m.eye);
  s = s ? s : xkv_copy_h2d(ctx, m.v, m.hv, (size_t)F * rk * 4, NULL);
  /* Y = sum_l X_l V_r[l] in f32, then A = Y I into the storage dtype (the
   * kernel's beta accumulates in C's dtype, too coarse for f16 partial
   * sums); hb holds the identity first */
  for (int l = 0; l < nx && !s; l++)
    s = xkv_cache_gemm(c, c->k.gemm_f32, x[l], hd, 1, m.v + (size_t)l * hd * rk,
                       XKV_F32, rk, 1, m.y, XKV_F32, rk, L, rk, hd,
                       l ? 1.0f : 0.0f);
  if (!s) {
    memset(m.hb, 0, (size_t)rk * rk * 4);
    for (int i = 0; i < rk; i++)
      m.hb[(size_t)i * rk + i] = 1;
    s = xkv_copy_h2d(ctx, m.eye, m.hb, (size_t)rk * rk * 4, NULL);
  }
  s = s ? s
        : xkv_cache_gemm(c, c->k.gemm_out, m.y, rk, 1, m.eye, XKV_F32, rk, 1,
                         *a_out, c->cfg.dtype, rk, L, rk, rk, 0.0f);
  /* B_l[h, i, e] = V_r[l * hd + h * d + e, i] */
  for (int l = 0; l < nx && !s; l++) {
    for (int h = 0; h < c->cfg.n_kv_heads; h++)
      for (int i = 0; i < rk; i++)
        for (int e = 0; e < d; e++)
          m.hb[((size_t)h * rk + i) * d + e] =
              m.hv[((size_t)l * hd + (size_t)h * d + e) * rk + i];
    xkv_cache_to_storage(c, m.hb, m.hbs, (size_t)hd * rk);
    s = xkv_copy_h2d(ctx, b_out[l], m.hbs, (size_t)hd * rk * c->elem, NULL);
  }
  *rank = rk;
  gram_free(ctx, &m);
  return s;
}

/* Cost model behind XKV_SVD_AUTO, in seconds: device multiply-adds at a
 * per-unit rate (a CPU pool thread or an SM running gemm_st_*), the Gram
 * route's eigensolver at a per-core host rate. The CPU rates are fits to
 * bench/compress on the 2-core CPU here (both xKV routes at 20-26 GMAC/s on
 * 2 threads; ssyevr at 22-26 GFLOP/s on 2 cores for F = 768..4096), which
 * the model then predicts within 20% (SmolLM2 8K/32K: 1.2/4.9 s
 * randomized, 0.44/1.6 s Gram). The SM rate is a guess (a quarter of an
 * H100 SM's f32 FMA peak) that only needs the right order of magnitude: on
 * a GPU the host eigensolver dominates the Gram route. */
#define DEV_CPU_MAC_PER_S 12e9
#define DEV_SM_MAC_PER_S 80e9
#define HOST_FLOP_PER_S 12e9

int xkv_cache_gram_cheaper(xkv_device_kind kind, int units, int host_cores,
                           int L, int F, int W, int r) {
  /* L < F: G has rank L < F, and when r nears L its near-null eigenvectors
   * mix with the kept ones at f32 precision (a full-rank engine test saw
   * 2e-3 logit errors); the randomized SVD works on X itself */
  if (F > XKV_GRAM_MAX_F || L < F)
    return 0;
  int full = L < F ? L : F,
      k = r + XKV_OVERSAMPLE < full ? r + XKV_OVERSAMPLE : full;
  double l = L, f = F, q = POWER_ITERS;
  /* products over X, CholeskyQR3 after each (2 n k^2 per pass), A and B */
  double rand_mac = (2 * q + 2) * l * f * k + 6 * (q + 1) * (l + f) * k * k +
                    (l + f) * (double)k * r;
  /* the blocks j >= i of X^T X, Y = X V_r, A = Y I */
  double gram_mac = l * f * f * (W + 1) / (2.0 * W) + l * f * r + l * r * r;
  /* tridiagonalization (4/3 F^3) and back-transforming r vectors */
  double eig_flop = 4.0 / 3 * f * f * f + 2 * f * f * r;
  double dev =
      (kind == XKV_DEVICE_CUDA ? DEV_SM_MAC_PER_S : DEV_CPU_MAC_PER_S) *
      (units > 0 ? units : 1);
  double host = HOST_FLOP_PER_S * (host_cores > 0 ? host_cores : 1);
  return gram_mac / dev + eig_flop / host < rand_mac / dev;
}

/* The route of one factor: the configured one, or for AUTO the cheaper
 * one, but never the Gram route for an energy target past its accuracy
 * (a tail below 1e-6 of the energy: relative error under 1e-3). */
static int use_gram(xkv_cache *c, int L, int F, int W, int fixed) {
  if (c->cfg.svd != XKV_SVD_AUTO)
    return c->cfg.svd == XKV_SVD_GRAM;
  if (c->cfg.policy == XKV_RANK_ENERGY && c->cfg.energy > 1 - 1e-6)
    return 0;
  xkv_device_info di;
  xkv_device_kind kind =
      xkv_device_get_info(c->ctx, &di) ? XKV_DEVICE_CPU : di.kind;
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  return xkv_cache_gram_cheaper(kind, c->units, cores > 0 ? (int)cores : 1, L,
                                F, W, policy_rank(c, fixed, L, F));
}

xkv_status xkv_cache_factorize(xkv_cache *c, const char *where, float *const *x,
                               int nx, int L, int *rank, void **a_out,
                               void **b_out, uint64_t *seed) {
  int F = nx * c->cfg.n_kv_heads * c->cfg.head_dim;
  if (use_gram(c, L, F, nx, *rank))
    return gram_factorize(c, where, x, nx, L, rank, a_out, b_out);
  return rsvd_factorize(c, where, x, nx, L, rank, a_out, b_out, seed);
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
  int L = c->prompt_len, rk = c->cfg.rank_k, rv = c->cfg.rank_v;
  uint64_t seed = c->cfg.seed + (uint64_t)g * 0x5851f42d4c957f2dull;
  xkv_status s =
      xkv_cache_factorize(c, where, xk, W, L, &rk, &gr->ak, bk, &seed);
  s = s ? s : xkv_cache_factorize(c, where, xv, W, L, &rv, &gr->av, bv, &seed);
  if (s) { /* nothing half-made: the staging stays for a retry */
    for (int l = 0; l < W; l++) {
      xkv_free(c->ctx, bk[l]);
      xkv_free(c->ctx, bv[l]);
    }
    xkv_free(c->ctx, gr->ak);
    xkv_free(c->ctx, gr->av);
    gr->ak = gr->av = NULL;
    return s;
  }
  for (int l = 0; l < W; l++) {
    xkv_layer *y = &c->layers[first + l];
    y->bk = bk[l];
    y->bv = bv[l];
    xkv_free(c->ctx, y->stage_k);
    xkv_free(c->ctx, y->stage_v);
    y->stage_k = y->stage_v = NULL;
  }
  gr->L = L;
  gr->rank_k = rk;
  gr->rank_v = rv;
  return XKV_OK;
}
