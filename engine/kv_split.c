/* The cache of a model that interleaves sliding-window and global layers
 * (Gemma 3): the sliding-window layers keep exactly their window (the exact
 * cache's ring), the global layers go to an xKV cache of their own, so xKV
 * groups adjacent global layers (the windows are already small and gain
 * nothing from cross-layer sharing). */
#include "kvcache.h"

#include <stdlib.h>

typedef struct {
  eng_kv base;
  eng_kv *local, *global;
  int n_layers;
  int *index; /* layer -> its index within its part */
  eng_config cfg;
} kv_split;

static eng_kv *part(kv_split *s, int layer, int *index) {
  *index = s->index[layer];
  return eng_layer_window(&s->cfg, layer) ? s->local : s->global;
}

static int sp_check(kv_split *s, int layer, eng_err *err) {
  return layer < 0 || layer >= s->n_layers
             ? eng_fail(err, "split cache: layer %d out of range", layer)
             : 0;
}

static int sp_prefill(eng_kv *kv, int layer, const float *k_pre, const float *v,
                      int n, eng_err *err) {
  kv_split *s = (kv_split *)kv;
  int i;
  if (sp_check(s, layer, err))
    return -1;
  eng_kv *p = part(s, layer, &i);
  return p->ops->prefill(p, i, k_pre, v, n, err);
}

static int sp_append(eng_kv *kv, int layer, const float *k_pre, const float *v,
                     eng_err *err) {
  kv_split *s = (kv_split *)kv;
  int i;
  if (sp_check(s, layer, err))
    return -1;
  eng_kv *p = part(s, layer, &i);
  return p->ops->append(p, i, k_pre, v, err);
}

static int sp_attention(eng_kv *kv, int layer, const float *q, int pos,
                        float *out, eng_err *err) {
  kv_split *s = (kv_split *)kv;
  int i;
  if (sp_check(s, layer, err))
    return -1;
  eng_kv *p = part(s, layer, &i);
  return p->ops->attention(p, i, q, pos, out, err);
}

/* Bytes of both parts against an f16 exact cache of both; ranks and groups
 * are the xKV part's. */
static int sp_stats(eng_kv *kv, eng_kv_stats *o, eng_err *err) {
  kv_split *s = (kv_split *)kv;
  eng_kv_stats loc;
  if (s->local->ops->stats(s->local, &loc, err) ||
      s->global->ops->stats(s->global, o, err))
    return -1;
  o->bytes += loc.bytes;
  o->exact_bytes += loc.exact_bytes;
  o->ratio = o->bytes ? (double)o->exact_bytes / (double)o->bytes : 1.0;
  return 0;
}

static void sp_destroy(eng_kv *kv) {
  kv_split *s = (kv_split *)kv;
  if (!s)
    return;
  if (s->local)
    s->local->ops->destroy(s->local);
  if (s->global)
    s->global->ops->destroy(s->global);
  free(s->index);
  free(s);
}

static const eng_kv_ops split_ops = {sp_prefill, sp_append, sp_attention,
                                     sp_stats, sp_destroy};

int eng_kv_split_create(const eng_config *c, int max_tokens,
                        const eng_xkv_opts *o, eng_kv **out, eng_err *err) {
  *out = NULL;
  kv_split *s = calloc(1, sizeof *s);
  if (!s || !(s->index = calloc((size_t)c->n_layers, sizeof *s->index))) {
    free(s);
    return eng_fail(err, "split cache: out of memory");
  }
  s->base.ops = &split_ops;
  s->cfg = *c;
  s->n_layers = c->n_layers;
  int n_local = 0, n_global = 0;
  for (int l = 0; l < c->n_layers; l++)
    s->index[l] = eng_layer_window(c, l) ? n_local++ : n_global++;
  if (!n_local || !n_global) {
    sp_destroy(&s->base);
    return eng_fail(err,
                    "split cache: %d sliding-window and %d global "
                    "layers (needs both)",
                    n_local, n_global);
  }
  eng_config lc = *c, gc = *c;
  lc.n_layers = n_local;
  lc.swa_period = 0; /* every layer of this part slides */
  gc.n_layers = n_global;
  gc.sliding_window = 0;
  if (eng_kv_exact_create(&lc, max_tokens, &s->local, err) ||
      eng_kv_xkv_create(&gc, max_tokens, o, &s->global, err)) {
    sp_destroy(&s->base);
    return -1;
  }
  *out = &s->base;
  return 0;
}

const eng_kv *eng_kv_split_global(const eng_kv *kv) {
  return kv && kv->ops == &split_ops ? ((const kv_split *)kv)->global : NULL;
}
