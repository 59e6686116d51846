/* The xKV cache through the runtime's xkv_cache_* API. On a GPU context
 * the tensors are staged through device buffers. */
#include "kvcache.h"

#include <xkv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  eng_kv base;
  eng_config c;
  xkv_context *ctx;
  xkv_cache *cache;
  int on_gpu;
  float *dk, *dv, *dq, *dout; /* device staging (GPU only) */
  char device[128];
} kv_xkv;

static int fail_rt(kv_xkv *x, const char *what, xkv_status s, eng_err *err) {
  return eng_fail(err, "xKV cache: %s failed: %s (%s)", what,
                  xkv_last_error(x->ctx), xkv_status_name(s));
}

/* Host pointer p as the context wants it: itself on the CPU, else a copy
 * in dst. */
static const float *to_dev(kv_xkv *x, float *dst, const float *p, size_t n,
                           xkv_status *s) {
  if (!x->on_gpu)
    return p;
  *s = xkv_copy_h2d(x->ctx, dst, p, n * sizeof(float), NULL);
  return dst;
}

static int xk_prefill(eng_kv *kv, int layer, const float *k_pre, const float *v,
                      int n, eng_err *err) {
  kv_xkv *x = (kv_xkv *)kv;
  xkv_status s = XKV_OK;
  const float *dk = k_pre, *dv = v;
  float *bk = NULL, *bv = NULL;
  size_t elems = (size_t)n * x->c.n_kv_heads * x->c.head_dim;
  if (x->on_gpu) {
    if ((s = xkv_alloc(x->ctx, elems * sizeof(float), (void **)&bk)) ||
        (s = xkv_alloc(x->ctx, elems * sizeof(float), (void **)&bv))) {
      xkv_free(x->ctx, bk);
      return fail_rt(x, "allocating the prompt", s, err);
    }
    dk = to_dev(x, bk, k_pre, elems, &s);
    if (!s)
      dv = to_dev(x, bv, v, elems, &s);
  }
  if (!s)
    s = xkv_cache_prefill(x->cache, layer, dk, dv, n);
  xkv_free(x->ctx, bk);
  xkv_free(x->ctx, bv);
  return s ? fail_rt(x, "prefill", s, err) : 0;
}

static int xk_append(eng_kv *kv, int layer, const float *k_pre, const float *v,
                     eng_err *err) {
  kv_xkv *x = (kv_xkv *)kv;
  xkv_status s = XKV_OK;
  size_t n = (size_t)x->c.n_kv_heads * x->c.head_dim;
  const float *dk = to_dev(x, x->dk, k_pre, n, &s);
  const float *dv = s ? NULL : to_dev(x, x->dv, v, n, &s);
  if (!s)
    s = xkv_cache_append(x->cache, layer, dk, dv);
  return s ? fail_rt(x, "append", s, err) : 0;
}

static int xk_attention(eng_kv *kv, int layer, const float *q, int pos,
                        float *out, eng_err *err) {
  kv_xkv *x = (kv_xkv *)kv;
  xkv_status s = XKV_OK;
  size_t n = (size_t)x->c.n_heads * x->c.head_dim;
  const float *dq = to_dev(x, x->dq, q, n, &s);
  float *dout = x->on_gpu ? x->dout : out;
  if (!s)
    s = xkv_attention(x->cache, layer, dq, pos, dout);
  if (!s && x->on_gpu)
    s = xkv_copy_d2h(x->ctx, out, dout, n * sizeof(float), NULL);
  return s ? fail_rt(x, "attention", s, err) : 0;
}

static int xk_stats(eng_kv *kv, eng_kv_stats *o, eng_err *err) {
  kv_xkv *x = (kv_xkv *)kv;
  xkv_cache_stats s;
  xkv_status st = xkv_cache_get_stats(x->cache, &s);
  if (st)
    return fail_rt(x, "stats", st, err);
  o->bytes = s.bytes;
  o->exact_bytes = s.exact_bytes;
  o->ratio = s.ratio;
  o->tokens = s.tokens;
  o->rank_k_min = s.rank_k_min;
  o->rank_k_max = s.rank_k_max;
  o->rank_v_min = s.rank_v_min;
  o->rank_v_max = s.rank_v_max;
  o->sr_hit_rate = s.sr_hit_rate;
  o->groups_compressed = s.groups_compressed;
  o->groups_exact = s.groups_exact;
  return 0;
}

static void xk_destroy(eng_kv *kv) {
  kv_xkv *x = (kv_xkv *)kv;
  if (!x)
    return;
  xkv_cache_destroy(x->cache);
  if (x->ctx) {
    xkv_free(x->ctx, x->dk);
    xkv_free(x->ctx, x->dv);
    xkv_free(x->ctx, x->dq);
    xkv_free(x->ctx, x->dout);
    xkv_close(x->ctx);
  }
  free(x);
}

static const eng_kv_ops xkv_ops = {xk_prefill, xk_append, xk_attention,
                                   xk_stats, xk_destroy};

static int stage_buffers(kv_xkv *x, eng_err *err) {
  size_t kvn = (size_t)x->c.n_kv_heads * x->c.head_dim * sizeof(float);
  size_t qn = (size_t)x->c.n_heads * x->c.head_dim * sizeof(float);
  xkv_status s;
  if ((s = xkv_alloc(x->ctx, kvn, (void **)&x->dk)) ||
      (s = xkv_alloc(x->ctx, kvn, (void **)&x->dv)) ||
      (s = xkv_alloc(x->ctx, qn, (void **)&x->dq)) ||
      (s = xkv_alloc(x->ctx, qn, (void **)&x->dout)))
    return fail_rt(x, "allocating staging buffers", s, err);
  return 0;
}

int eng_kv_xkv_create(const eng_config *c, int max_tokens,
                      const eng_xkv_opts *o, eng_kv **out, eng_err *err) {
  *out = NULL;
  if (c->sliding_window > 0)
    return eng_fail(err, "xKV cache: sliding-window layers are not "
                         "supported (the split cache keeps them exact)");
  kv_xkv *x = calloc(1, sizeof *x);
  if (!x)
    return eng_fail(err, "xKV cache: out of memory");
  x->base.ops = &xkv_ops;
  x->c = *c;
  const char *dev = o->device ? o->device : "auto";
  xkv_status s = xkv_open(&x->ctx, dev);
  if (s) {
    eng_fail(err, "xKV cache: cannot open device \"%s\": %s", dev,
             x->ctx ? xkv_last_error(x->ctx) : xkv_status_name(s));
    xk_destroy(&x->base);
    return -1;
  }
  xkv_device_info info;
  if (xkv_device_get_info(x->ctx, &info) == XKV_OK) {
    x->on_gpu = info.kind == XKV_DEVICE_CUDA;
    snprintf(x->device, sizeof x->device, "%s", info.name);
  }
  xkv_cache_config cfg = {
      .n_layers = c->n_layers,
      .n_heads = c->n_heads,
      .n_kv_heads = c->n_kv_heads,
      .head_dim = c->head_dim,
      .max_tokens = max_tokens,
      .group = o->group,
      .policy = o->rank_k > 0 ? XKV_RANK_FIXED : XKV_RANK_RATIO,
      .rank_k = o->rank_k,
      .rank_v = o->rank_v > 0 ? o->rank_v : o->rank_k,
      .target_ratio = o->ratio,
      .energy = 1.0f,
      .dtype = o->f32 ? XKV_F32 : XKV_F16,
      .rope_theta = c->rope_theta,
      .rope_style = c->rope_neox ? XKV_ROPE_HALF : XKV_ROPE_INTERLEAVED,
      .seed = o->seed,
      .sr = o->sr_budget > 0,
      .sr_budget = o->sr_budget,
  };
  if ((x->on_gpu && stage_buffers(x, err))) {
    xk_destroy(&x->base);
    return -1;
  }
  if ((s = xkv_cache_create(x->ctx, &cfg, &x->cache))) {
    fail_rt(x, "create", s, err);
    xk_destroy(&x->base);
    return -1;
  }
  *out = &x->base;
  return 0;
}

const char *eng_kv_xkv_device(const eng_kv *kv) {
  if (eng_kv_split_global(kv))
    kv = eng_kv_split_global(kv);
  return kv && kv->ops == &xkv_ops ? ((const kv_xkv *)kv)->device : "";
}
