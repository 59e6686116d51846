#include "xkv_real.h"

#include "xkv_ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The best rank-r relative error over the group's layers stacked side by
 * side ([L, W*Hkv*d]), as the cache factors them. */
static double group_opt(const kv_capture *c, const float *all, int first, int w,
                        int r) {
  size_t rw = (size_t)c->n_kv_heads * c->head_dim, L = (size_t)c->L;
  float *x = malloc(L * rw * w * sizeof *x);
  double best = -1, norm = 1;
  if (!x)
    return -1;
  for (int l = 0; l < w; l++)
    for (size_t t = 0; t < L; t++)
      memcpy(x + t * rw * w + l * rw,
             all + ((size_t)(first + l) * (L + 1) + t) * rw, rw * 4);
  if (xkv_ref_svd(x, (int)L, (int)(rw * w), r, &best, &norm, NULL))
    best = -1;
  free(x);
  return best < 0 ? -1 : best / norm;
}

static void sq_err(const float *a, const float *b, size_t n, double *err,
                   double *norm) {
  for (size_t i = 0; i < n; i++) {
    double e = (double)a[i] - b[i];
    *err += e * e;
    *norm += (double)b[i] * b[i];
  }
}

int xkv_real_eval(xkv_context *ctx, const kv_capture *c, int W, int rank_k,
                  int rank_v, float ratio, xkv_dtype dtype, xkv_real_layer *out,
                  xkv_real_run *run, char *err, size_t nerr) {
  xkv_cache_config f = {.n_layers = c->n_layers,
                        .n_heads = c->n_heads,
                        .n_kv_heads = c->n_kv_heads,
                        .head_dim = c->head_dim,
                        .max_tokens = c->L + 1,
                        .group = W,
                        .policy = ratio > 0 ? XKV_RANK_RATIO : XKV_RANK_FIXED,
                        .target_ratio = ratio,
                        .rank_k = rank_k,
                        .rank_v = rank_v,
                        .dtype = dtype,
                        .rope_theta = c->theta,
                        .seed = 7};
  xkv_cache *cache = NULL;
  size_t rw = (size_t)c->n_kv_heads * c->head_dim,
         qn = (size_t)c->n_heads * c->head_dim;
  float *rk = malloc((size_t)c->L * rw * 4),
        *rv = malloc((size_t)c->L * rw * 4);
  float *o = malloc(qn * 4), *ref = malloc(qn * 4);
  /* squared error and norm per group, indexed by the group's first layer */
  double *ke = calloc((size_t)c->n_layers * 4, sizeof *ke);
  double *kn = ke + c->n_layers, *ve = kn + c->n_layers, *vn = ve + c->n_layers;
  int rc = -1;
  if (!rk || !rv || !o || !ref || !ke) {
    snprintf(err, nerr, "out of memory");
    goto done;
  }
  if (xkv_cache_create(ctx, &f, &cache))
    goto fail;
  for (int l = 0; l < c->n_layers; l++)
    if (xkv_cache_prefill(cache, l, kv_capture_k(c, l), kv_capture_v(c, l),
                          c->L))
      goto fail;
  for (int l = 0; l < c->n_layers; l++) {
    size_t at = (size_t)c->L * rw;
    const float *k = kv_capture_k(c, l), *v = kv_capture_v(c, l);
    int first = l - l % W,
        w = first + W > c->n_layers ? c->n_layers - first : W;
    if (xkv_cache_append(cache, l, k + at, v + at) ||
        xkv_attention(cache, l, kv_capture_q(c, l), c->L, o))
      goto fail;
    if (xkv_ref_reconstruct(cache, l, rk, rv)) {
      snprintf(err, nerr, "layer %d: cannot read the factors back", l);
      goto done;
    }
    sq_err(rk, k, (size_t)c->L * rw, &ke[first], &kn[first]);
    sq_err(rv, v, (size_t)c->L * rw, &ve[first], &vn[first]);
    int gk, gv;
    xkv_ref_group_ranks(cache, l, &gk, &gv);
    xkv_ref_attention(kv_capture_q(c, l), k, v, c->L + 1, c->n_heads,
                      c->n_kv_heads, c->head_dim, c->L, c->theta, ref);
    out[l] = (xkv_real_layer){xkv_ref_rel_err(rk, k, (size_t)c->L * rw),
                              xkv_ref_rel_err(rv, v, (size_t)c->L * rw),
                              0,
                              0,
                              group_opt(c, c->k, first, w, gk),
                              group_opt(c, c->v, first, w, gv),
                              xkv_ref_rel_err(o, ref, qn),
                              xkv_ref_cosine(o, ref, qn)};
  }
  for (int l = 0; l < c->n_layers; l++) {
    int first = l - l % W;
    out[l].k_grp = sqrt(ke[first] / kn[first]);
    out[l].v_grp = sqrt(ve[first] / vn[first]);
  }
  xkv_cache_stats st;
  if (xkv_cache_get_stats(cache, &st))
    goto fail;
  *run = (xkv_real_run){st.rank_k_min, st.rank_k_max, st.rank_v_min,
                        st.rank_v_max, st.ratio};
  rc = 0;
  goto done;
fail:
  snprintf(err, nerr, "W=%d rank %d/%d: %s", W, rank_k, rank_v,
           xkv_last_error(ctx));
done:
  xkv_cache_destroy(cache);
  free(rk);
  free(rv);
  free(o);
  free(ref);
  free(ke);
  return rc;
}
