/* Selective reconstruction on the device: after the landmark scores and
 * their softmax (kernels, xkv_cache_sr.c), kernel xkv_sr_select picks each
 * KV head's chunks and keeps the reuse cache's tables on the device, and
 * xkv_sr_rebuild_listed rebuilds the misses it listed on a fixed grid
 * whose programs stride over the device-side counts, since the host never
 * learns how many there are. A decode step thus has no device-to-host copy
 * (and could be captured in a CUDA graph); the counters are read only by
 * xkv_cache_get_stats. The default on a GPU (xkv_cache_create). */
#include "xkv_cache_int.h"

#include <stdlib.h>
#include <string.h>

/* the i32 words of the state after tot, in the order of xkv_sr_layer */
static size_t words(const xkv_cache *c, const xkv_sr_layer *sr) {
  size_t hk = (size_t)c->cfg.n_kv_heads;
  return hk * sr->nsel * 5 + hk * sr->nsc * 2 + hk * 258;
}

xkv_status xkv_cache_sr_dev_init(xkv_cache *c, int l) {
  xkv_sr_layer *sr = &c->layers[l].sr;
  size_t hk = (size_t)c->cfg.n_kv_heads, tot = hk * 2 * sizeof(int64_t);
  size_t bytes = tot + words(c, sr) * sizeof(int);
  xkv_status s = xkv_alloc(c->ctx, bytes, (void **)&sr->tot);
  if (s)
    return s;
  sr->sc_dev = (int *)(sr->tot + hk * 2);
  sr->cs_dev = sr->sc_dev + hk * sr->nsel;
  sr->cnt = sr->cs_dev + hk * sr->nsc;
  sr->list = sr->cnt + 2 * hk;
  sr->key = sr->list + hk * sr->nsel * 3;
  sr->fre = sr->key + hk * sr->nsc;
  sr->hist = sr->fre + hk * sr->nsel;
  int64_t *zero = calloc(hk * 2 + 2 * hk, sizeof *zero);
  if (!zero)
    return rt_err(c->ctx, XKV_ERR_OUT_OF_MEMORY,
                  "selective reconstruction: out of memory");
  s = xkv_copy_h2d(c->ctx, sr->tot, zero, tot, NULL);
  s = s ? s : xkv_copy_h2d(c->ctx, sr->cnt, zero, 2 * hk * sizeof(int), NULL);
  s = s ? s
        : xkv_copy_h2d(c->ctx, sr->sc_dev, sr->slot_chunk,
                       hk * sr->nsel * sizeof(int), NULL);
  s = s ? s
        : xkv_copy_h2d(c->ctx, sr->cs_dev, sr->chunk_slot,
                       hk * sr->nsc * sizeof(int), NULL);
  free(zero);
  return s;
}

xkv_status xkv_cache_sr_dev_select(xkv_cache *c, int l) {
  const xkv_group *gr = &c->groups[l / c->cfg.group];
  const xkv_layer *y = &c->layers[l];
  const xkv_sr_layer *sr = &y->sr;
  int hk = c->cfg.n_kv_heads;
  xkv_arg a[] = {xkv_arg_ptr(XKV_F32, c->s),
                 xkv_arg_ptr(XKV_F32, sr->key),
                 xkv_arg_ptr(XKV_I32, sr->key),
                 xkv_arg_ptr(XKV_I32, sr->cs_dev),
                 xkv_arg_ptr(XKV_I32, sr->sc_dev),
                 xkv_arg_ptr(XKV_I32, sr->fre),
                 xkv_arg_ptr(XKV_I32, sr->list),
                 xkv_arg_ptr(XKV_I32, sr->cnt),
                 xkv_arg_ptr(XKV_I64, sr->tot),
                 xkv_arg_ptr(XKV_I32, sr->hist),
                 xkv_arg_i32(sr->nsc),
                 xkv_arg_i32(sr->nsel),
                 xkv_arg_i32(c->cfg.n_heads / hk),
                 xkv_arg_i32(hk)};
  xkv_status s = xkv_launch(c->ctx, c->k.sr_select, NULL, a, 14, NULL);
  xkv_dtype dt = c->cfg.dtype;
  /* programs per head: one per slot on a GPU; on the CPU, where each is a
   * pool task, as many as there are threads */
  int np =
      c->kind == XKV_DEVICE_CPU && c->units < sr->nsel ? c->units : sr->nsel;
  xkv_arg b[] = {xkv_arg_ptr(dt, gr->ak),
                 xkv_arg_ptr(dt, y->bk),
                 xkv_arg_ptr(dt, gr->av),
                 xkv_arg_ptr(dt, y->bv),
                 xkv_arg_ptr(XKV_F32, c->cos),
                 xkv_arg_ptr(XKV_F32, c->sin),
                 xkv_arg_ptr(XKV_I32, sr->list),
                 xkv_arg_ptr(dt, sr->kr),
                 xkv_arg_ptr(dt, sr->vr),
                 xkv_arg_i32(gr->L),
                 xkv_arg_i32(gr->rank_k),
                 xkv_arg_i32(gr->rank_v),
                 xkv_arg_i32(hk),
                 xkv_arg_i32(sr->nfix),
                 xkv_arg_ptr(XKV_I32, sr->cnt),
                 xkv_arg_i32(sr->nsel),
                 xkv_arg_i32(np)};
  s = s ? s : xkv_launch(c->ctx, c->k.sr_rebuild_listed, NULL, b, 17, NULL);
  if (!s)
    c->sr_last_layer = l;
  return s;
}

xkv_status xkv_cache_sr_dev_stats(const xkv_cache *c, uint64_t *hit,
                                  uint64_t *rebuilt, int *last_hit,
                                  int *last_rebuilt) {
  int hk = c->cfg.n_kv_heads;
  int64_t *t = malloc((size_t)hk * 2 * sizeof *t);
  int *n = malloc((size_t)hk * 2 * sizeof *n);
  xkv_status s = t && n ? XKV_OK
                        : rt_err(c->ctx, XKV_ERR_OUT_OF_MEMORY,
                                 "xkv_cache_get_stats: out of memory");
  for (int l = 0; !s && l < c->cfg.n_layers; l++) {
    const xkv_sr_layer *sr = &c->layers[l].sr;
    if (!sr->tot)
      continue;
    s = xkv_copy_d2h(c->ctx, t, sr->tot, (size_t)hk * 2 * sizeof *t, NULL);
    for (int h = 0; !s && h < hk; h++) {
      *hit += (uint64_t)t[2 * h];
      *rebuilt += (uint64_t)t[2 * h + 1];
    }
  }
  int ll = c->sr_last_layer;
  if (!s && ll >= 0 && c->layers[ll].sr.cnt) {
    s = xkv_copy_d2h(c->ctx, n, c->layers[ll].sr.cnt,
                     (size_t)hk * 2 * sizeof *n, NULL);
    for (int h = 0; !s && h < hk; h++) {
      *last_rebuilt += n[h];
      *last_hit += n[hk + h];
    }
  }
  free(t);
  free(n);
  return s;
}
