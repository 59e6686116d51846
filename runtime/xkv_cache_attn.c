/* Decode attention over a layer of the xKV cache (kernels in kernels.xk,
 * "xKV"), flash-decoding style: split kernels over the compressed prompt
 * (keys rebuilt from the group's factors with RoPE at the original
 * positions, values in rank space) and over the exact tail write partial
 * outputs, and one combine merges them. With selective reconstruction
 * (xkv_cache_sr.c) the prompt is the exact rows of the selected, local and
 * outlier chunks instead. */
#include "xkv_cache_int.h"

#include <math.h>
#include <stdlib.h>

#define MIN_SPLIT_TOKENS 256 /* keeps a split's fixed work (q, B_v) small */

/* n splits of T tokens, each with at least MIN_SPLIT_TOKENS tokens */
static int clamp_splits(int n, int T) {
  if (T <= 0)
    return 0;
  int most = (T + MIN_SPLIT_TOKENS - 1) / MIN_SPLIT_TOKENS;
  n = n < most ? n : most;
  n = n < XKV_SOURCE_SPLITS ? n : XKV_SOURCE_SPLITS;
  return n > 0 ? n : 1;
}

/* Enough programs to fill the device twice over. */
int xkv_cache_nsplits(int units, int n_heads, int n_kv_heads, int T) {
  int G = n_heads / n_kv_heads, bg = XKV_DECODE_BLOCK_G;
  int progs = n_kv_heads * ((G + bg - 1) / bg);
  return clamp_splits((2 * units + progs - 1) / progs, T);
}

int xkv_cache_nsplits_wave(int units, int progs, int T) {
  return clamp_splits((units + progs - 1) / progs, T);
}

int xkv_cache_nsplits_lr1(int units, int n_kv_heads, int hb, int T) {
  return xkv_cache_nsplits_wave(units, (n_kv_heads + hb - 1) / hb, T);
}

static int nsplits(const xkv_cache *c, int T) {
  return xkv_cache_nsplits(c->units, c->cfg.n_heads, c->cfg.n_kv_heads, T);
}

/* the compressed prompt of layer y into splits 0..ns-1 of the partials p
 * by kernel k: the three-sweep c->k.decode_lr (which keeps the scores in S
 * [Hq, lds]) or a single-pass one (xkv_cache_lr1_find) */
xkv_status xkv_cache_split_lr(xkv_cache *c, const xkv_group *gr,
                              const xkv_layer *y, xkv_kernel *k, int ns,
                              const xkv_partials *p) {
  xkv_dtype dt = c->cfg.dtype;
  int sweeps = k == c->k.decode_lr, n = 0;
  xkv_arg a[20];
  a[n++] = xkv_arg_ptr(dt, gr->ak);
  a[n++] = xkv_arg_ptr(dt, y->bk);
  a[n++] = xkv_arg_ptr(dt, gr->av);
  a[n++] = xkv_arg_ptr(dt, y->bv);
  a[n++] = xkv_arg_ptr(XKV_F32, c->q);
  a[n++] = xkv_arg_ptr(XKV_F32, c->cos);
  a[n++] = xkv_arg_ptr(XKV_F32, c->sin);
  if (sweeps)
    a[n++] = xkv_arg_ptr(XKV_F32, c->s);
  a[n++] = xkv_arg_ptr(XKV_F32, p->o);
  a[n++] = xkv_arg_ptr(XKV_F32, p->m);
  a[n++] = xkv_arg_ptr(XKV_F32, p->l);
  a[n++] = xkv_arg_i32(gr->L);
  a[n++] = xkv_arg_i32(gr->rank_k);
  a[n++] = xkv_arg_i32(gr->rank_v);
  a[n++] = xkv_arg_i32(c->cfg.n_kv_heads);
  a[n++] = xkv_arg_i32(c->cfg.n_heads / c->cfg.n_kv_heads);
  if (sweeps)
    a[n++] = xkv_arg_i32(gr->L);
  a[n++] = xkv_arg_i32(ns);
  a[n++] = xkv_arg_i32(p->ldo);
  a[n++] = xkv_arg_i32(0);
  return xkv_launch(c->ctx, k, NULL, a, n, NULL);
}

/* T exact rows K, V [T, Hkv, d] into splits s0..s0+ns-1 */
static xkv_status split_exact(xkv_cache *c, const void *k, const void *v, int T,
                              int s0, int ns) {
  xkv_dtype dt = c->cfg.dtype;
  xkv_arg a[] = {xkv_arg_ptr(dt, (void *)k),
                 xkv_arg_ptr(dt, (void *)v),
                 xkv_arg_ptr(XKV_F32, c->q),
                 xkv_arg_ptr(XKV_F32, c->po),
                 xkv_arg_ptr(XKV_F32, c->pm),
                 xkv_arg_ptr(XKV_F32, c->pl),
                 xkv_arg_i32(T),
                 xkv_arg_i32(c->cfg.n_kv_heads),
                 xkv_arg_i32(c->cfg.n_heads / c->cfg.n_kv_heads),
                 xkv_arg_i32(ns),
                 xkv_arg_i32(XKV_MAX_SPLITS),
                 xkv_arg_i32(s0)};
  return xkv_launch(c->ctx, c->k.decode_exact, NULL, a, 12, NULL);
}

xkv_status xkv_cache_combine(xkv_cache *c, const xkv_partials *p, int rows,
                             int ns, float *out) {
  xkv_arg a[] = {xkv_arg_ptr(XKV_F32, p->o), xkv_arg_ptr(XKV_F32, p->m),
                 xkv_arg_ptr(XKV_F32, p->l), xkv_arg_ptr(XKV_F32, out),
                 xkv_arg_i32(rows),          xkv_arg_i32(ns),
                 xkv_arg_i32(p->ldo)};
  return xkv_launch(c->ctx, c->k.combine, NULL, a, 7, NULL);
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

xkv_status xkv_cache_load_query(xkv_cache *c, const float *q, int pos) {
  return xkv_cache_rows(c, c->k.rows_f32, q, c->q, 1, c->cfg.n_heads, pos, 1, 1,
                        1.0f / sqrtf((float)c->cfg.head_dim));
}

xkv_status xkv_cache_attn_ready(xkv_cache *c, int layer, int pos,
                                const char *where) {
  xkv_context *ctx = c->ctx;
  if (layer < 0 || layer >= c->cfg.n_layers)
    return rt_err(ctx, XKV_ERR_INVALID, "%s: layer %d is out of 0..%d", where,
                  layer, c->cfg.n_layers - 1);
  if (pos < 0 || pos >= c->cfg.max_tokens)
    return rt_err(ctx, XKV_ERR_INVALID,
                  "%s: pos %d is out of 0..max_tokens-1 (%d)", where, pos,
                  c->cfg.max_tokens - 1);
  const xkv_layer *y = &c->layers[layer];
  const xkv_group *gr = &c->groups[layer / c->cfg.group];
  if (!y->prefilled || (!gr->exact && !gr->rank_k))
    return rt_err(ctx, XKV_ERR_INVALID,
                  "%s: layer %d is not ready (its prefill, or its group's "
                  "last layer's prefill, has not arrived)",
                  where, layer);
  return XKV_OK;
}

xkv_status xkv_attention(xkv_cache *c, int layer, const float *q, int pos,
                         float *out) {
  if (!c)
    return XKV_ERR_INVALID;
  xkv_context *ctx = c->ctx;
  if (!q || !out)
    return rt_err(ctx, XKV_ERR_INVALID, "xkv_attention: NULL q or out");
  xkv_status s = xkv_cache_attn_ready(c, layer, pos, "xkv_attention");
  if (s)
    return s;
  xkv_layer *y = &c->layers[layer];
  xkv_group *gr = &c->groups[layer / c->cfg.group];
  xkv_partials p = {c->po, c->pm, c->pl, XKV_MAX_SPLITS};
  s = xkv_cache_load_query(c, q, pos);
  /* sources: the compressed prompt or SR's rebuilt rows, then the tail */
  int ns0 = 0, ns1 = nsplits(c, y->n_exact);
  if (!s && y->sr.lm) {
    int lp = y->sr.nfix + y->sr.nsel * XKV_SR_CHUNK;
    ns0 = nsplits(c, lp);
    s = xkv_cache_sr_select(c, layer);
    s = s ? s : split_exact(c, y->sr.kr, y->sr.vr, lp, 0, ns0);
  } else if (!s && !gr->exact) {
    xkv_kernel *k1 = xkv_cache_lr1_find(c, gr);
    ns0 = k1 ? xkv_cache_nsplits_lr1(c->units, c->cfg.n_kv_heads, XKV_LR1_HB,
                                     gr->L)
             : nsplits(c, gr->L);
    s = xkv_cache_split_lr(c, gr, y, k1 ? k1 : c->k.decode_lr, ns0, &p);
  }
  if (!s && ns1)
    s = split_exact(c, y->kx, y->vx, y->n_exact, ns0, ns1);
  return s ? s : xkv_cache_combine(c, &p, c->cfg.n_heads, ns0 + ns1, out);
}
