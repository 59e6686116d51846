/* Decode attention over a layer of the xKV cache (kernels in kernels.xk,
 * "xKV"): scores against keys rebuilt from the group's factors (RoPE at
 * the original positions) and against the exact tail, one softmax over
 * both, then values in rank space (P A_v) times B_v plus P_tail V_tail.
 * With selective reconstruction (xkv_cache_sr.c) the prompt part is the
 * exact rows of the selected, local and outlier chunks instead. */
#include "xkv_cache_int.h"

#include <math.h>
#include <stdlib.h>

#define BLOCK_G 8        /* the kernels' default GQA tile */
#define SPLIT_TOKENS 512 /* exact tokens per program of xkv_out */

static xkv_status scores_lr(xkv_cache *c, const xkv_group *gr,
                            const xkv_layer *y, int lds) {
  int G = c->cfg.n_heads / c->cfg.n_kv_heads;
  xkv_dtype dt = c->cfg.dtype;
  xkv_arg a[] = {xkv_arg_ptr(dt, gr->ak),
                 xkv_arg_ptr(dt, y->bk),
                 xkv_arg_ptr(XKV_F32, c->q),
                 xkv_arg_ptr(XKV_F32, c->cos),
                 xkv_arg_ptr(XKV_F32, c->sin),
                 xkv_arg_ptr(XKV_F32, c->s),
                 xkv_arg_i32(gr->L),
                 xkv_arg_i32(gr->rank_k),
                 xkv_arg_i32(gr->rank_k),
                 xkv_arg_i32(c->cfg.n_kv_heads),
                 xkv_arg_i32(G),
                 xkv_arg_i32(lds)};
  return xkv_launch(c->ctx, c->k.scores_lr, NULL, a, 12, NULL);
}

xkv_status xkv_cache_scores_exact(xkv_cache *c, const void *k, int T, float *s,
                                  int lds) {
  int G = c->cfg.n_heads / c->cfg.n_kv_heads;
  xkv_arg a[] = {xkv_arg_ptr(c->cfg.dtype, (void *)k),
                 xkv_arg_ptr(XKV_F32, c->q),
                 xkv_arg_ptr(XKV_F32, s),
                 xkv_arg_i32(T),
                 xkv_arg_i32(c->cfg.n_kv_heads),
                 xkv_arg_i32(G),
                 xkv_arg_i32(lds)};
  return xkv_launch(c->ctx, c->k.scores_exact, NULL, a, 7, NULL);
}

xkv_status xkv_cache_softmax(xkv_cache *c, float *s, int rows, int n) {
  xkv_arg a[] = {xkv_arg_ptr(XKV_F32, s), xkv_arg_ptr(XKV_F32, s),
                 xkv_arg_i32(rows), xkv_arg_i32(n)};
  return xkv_launch(c->ctx, c->k.softmax, NULL, a, 4, NULL);
}

/* out += U B_v (rv > 0: layer y's rank-space values) + P[:, col0..] V over
 * the T exact rows V [T, Hkv, d] */
static xkv_status out_kernel(xkv_cache *c, const xkv_layer *y, int rv,
                             const void *v, int T, int col0, int lds,
                             float *out) {
  int G = c->cfg.n_heads / c->cfg.n_kv_heads;
  int nsplit = (T + SPLIT_TOKENS - 1) / SPLIT_TOKENS;
  xkv_dtype dt = c->cfg.dtype;
  xkv_arg a[] = {xkv_arg_ptr(XKV_F32, rv ? c->u : c->q),
                 xkv_arg_ptr(dt, rv ? y->bv : (void *)v),
                 xkv_arg_ptr(XKV_F32, c->s + col0),
                 xkv_arg_ptr(dt, (void *)v),
                 xkv_arg_ptr(XKV_F32, out),
                 xkv_arg_i32(rv),
                 xkv_arg_i32(rv),
                 xkv_arg_i32(T),
                 xkv_arg_i32(lds),
                 xkv_arg_i32(c->cfg.n_kv_heads),
                 xkv_arg_i32(G),
                 xkv_arg_i32(nsplit < 1 ? 1 : nsplit)};
  return xkv_launch(c->ctx, c->k.out, NULL, a, 12, NULL);
}

/* q rotated at pos and scaled by 1/sqrt(d), in the cache's column order */
static xkv_status load_query(xkv_cache *c, const float *q, int pos) {
  int hq = c->cfg.n_heads, d = c->cfg.head_dim;
  size_t bytes = (size_t)hq * d * 4;
  float *h = malloc(bytes);
  if (!h)
    return rt_err(c->ctx, XKV_ERR_OUT_OF_MEMORY, "xkv_attention: memory");
  xkv_status s = xkv_copy_d2h(c->ctx, h, q, bytes, NULL);
  if (!s) {
    xkv_cache_to_pair_order(c, h, hq);
    xkv_cache_rope(c, h, hq, pos);
    float scale = 1.0f / sqrtf((float)d);
    for (int i = 0; i < hq * d; i++)
      h[i] *= scale;
    s = xkv_copy_h2d(c->ctx, c->q, h, bytes, NULL);
  }
  free(h);
  return s;
}

xkv_status xkv_attention(xkv_cache *c, int layer, const float *q, int pos,
                         float *out) {
  if (!c)
    return XKV_ERR_INVALID;
  xkv_context *ctx = c->ctx;
  if (!q || !out)
    return rt_err(ctx, XKV_ERR_INVALID, "xkv_attention: NULL q or out");
  if (layer < 0 || layer >= c->cfg.n_layers)
    return rt_err(ctx, XKV_ERR_INVALID,
                  "xkv_attention: layer %d is out of 0..%d", layer,
                  c->cfg.n_layers - 1);
  if (pos < 0 || pos >= c->cfg.max_tokens)
    return rt_err(ctx, XKV_ERR_INVALID,
                  "xkv_attention: pos %d is out of 0..max_tokens-1 (%d)", pos,
                  c->cfg.max_tokens - 1);
  xkv_layer *y = &c->layers[layer];
  const xkv_group *gr = &c->groups[layer / c->cfg.group];
  if (!y->prefilled || (!c->cfg.exact && !gr->rank_k))
    return rt_err(ctx, XKV_ERR_INVALID,
                  "xkv_attention: layer %d is not ready (its prefill, or its "
                  "group's last layer's prefill, has not arrived)",
                  layer);
  int hq = c->cfg.n_heads;
  xkv_status s = load_query(c, q, pos);
  s = s ? s : xkv_memset(ctx, out, 0, (size_t)hq * c->cfg.head_dim * 4, NULL);
  if (!s && y->sr.lm) { /* SR: [local | outliers | selected] rows, tail */
    int rows = y->sr.nfix + y->sr.nsel * XKV_SR_CHUNK;
    int lds = rows + y->n_exact;
    s = xkv_cache_sr_select(c, layer);
    s = s ? s : xkv_cache_scores_exact(c, y->sr.kr, rows, c->s, lds);
    if (!s && y->n_exact)
      s = xkv_cache_scores_exact(c, y->kx, y->n_exact, c->s + rows, lds);
    s = s ? s : xkv_cache_softmax(c, c->s, hq, lds);
    s = s ? s : out_kernel(c, y, 0, y->sr.vr, rows, 0, lds, out);
    if (!s && y->n_exact)
      s = out_kernel(c, y, 0, y->vx, y->n_exact, rows, lds, out);
    return s;
  }
  int lp = c->cfg.exact ? 0 : gr->L, lds = lp + y->n_exact;
  int rv = c->cfg.exact ? 0 : gr->rank_v;
  if (!s && lp)
    s = scores_lr(c, gr, y, lds);
  if (!s && y->n_exact)
    s = xkv_cache_scores_exact(c, y->kx, y->n_exact, c->s + lp, lds);
  s = s ? s : xkv_cache_softmax(c, c->s, hq, lds);
  if (!s && rv) /* U = P[:, :lp] A_v, rank space */
    s = xkv_cache_gemm(c, c->k.gemm_pv, c->s, lds, 1, gr->av, c->cfg.dtype, rv,
                       1, c->u, XKV_F32, rv, hq, rv, lp, 0.0f);
  return s ? s : out_kernel(c, y, rv, y->vx, y->n_exact, lp, lds, out);
}
