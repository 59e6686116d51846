/* The xKV cache through the runtime's xkv_cache_* API. On a GPU context
 * the tensors are staged through device buffers. The caches of a batch
 * share one context (xkv_attention_batch takes caches of one context),
 * counted so that it closes with the last of them. */
#include "kvcache.h"

#include <xkv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  xkv_context *ctx;
  int refs, on_gpu;
  char device[128];
} xkv_dev;

typedef struct {
  eng_kv base;
  eng_config c;
  xkv_dev *dev;
  xkv_context *ctx; /* dev->ctx */
  xkv_cache *cache;
  int on_gpu;
  float *dk, *dv, *dq, *dout; /* device staging (GPU only) */
  /* a batch led by this cache: its caches, and its q and out staging (GPU
   * only) for bcap sequences */
  xkv_cache **bcs;
  float *bq, *bout;
  int bcap;
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
    float *bufs[] = {x->dk, x->dv, x->dq, x->dout, x->bq, x->bout};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
      xkv_free(x->ctx, bufs[i]);
  }
  if (x->dev && --x->dev->refs == 0) {
    xkv_close(x->dev->ctx);
    free(x->dev);
  }
  free(x->bcs);
  free(x);
}

static const eng_kv_ops xkv_ops;

/* Room in the batch's lead cache x for n sequences. */
static int batch_reserve(kv_xkv *x, int n, eng_err *err) {
  if (n <= x->bcap)
    return 0;
  xkv_cache **cs = realloc(x->bcs, (size_t)n * sizeof *cs);
  if (!cs)
    return eng_fail(err, "xKV cache: out of memory for a batch of %d", n);
  x->bcs = cs;
  if (x->on_gpu) {
    size_t bytes = (size_t)n * x->c.n_heads * x->c.head_dim * sizeof(float);
    xkv_free(x->ctx, x->bq);
    xkv_free(x->ctx, x->bout);
    x->bq = x->bout = NULL;
    xkv_status s;
    if ((s = xkv_alloc(x->ctx, bytes, (void **)&x->bq)) ||
        (s = xkv_alloc(x->ctx, bytes, (void **)&x->bout)))
      return fail_rt(x, "allocating the batch's staging buffers", s, err);
  }
  x->bcap = n;
  return 0;
}

static int xk_attention_batch(eng_kv *const *kvs, int n, int layer,
                              const float *q, const int *pos, float *out,
                              eng_err *err) {
  kv_xkv *x = (kv_xkv *)kvs[0];
  for (int b = 1; b < n; b++)
    if (kvs[b]->ops != &xkv_ops || ((kv_xkv *)kvs[b])->ctx != x->ctx)
      return eng_fail(err,
                      "xKV batch attention: sequence %d's cache is not in "
                      "sequence 0's context (create the batch with "
                      "eng_kv_create_batch)",
                      b);
  if (batch_reserve(x, n, err))
    return -1;
  for (int b = 0; b < n; b++)
    x->bcs[b] = ((kv_xkv *)kvs[b])->cache;
  xkv_status s = XKV_OK;
  size_t elems = (size_t)n * x->c.n_heads * x->c.head_dim;
  const float *dq = to_dev(x, x->bq, q, elems, &s);
  float *dout = x->on_gpu ? x->bout : out;
  if (!s)
    s = xkv_attention_batch(x->bcs, n, layer, dq, pos, dout);
  if (!s && x->on_gpu)
    s = xkv_copy_d2h(x->ctx, out, dout, elems * sizeof(float), NULL);
  return s ? fail_rt(x, "batch attention", s, err) : 0;
}

static const eng_kv_ops xkv_ops = {xk_prefill, xk_append,  xk_attention,
                                   xk_stats,   xk_destroy, xk_attention_batch};

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

/* A context of its own on o->device, counted once. */
static int open_dev(const eng_xkv_opts *o, xkv_dev **out, eng_err *err) {
  xkv_dev *d = calloc(1, sizeof *d);
  if (!d)
    return eng_fail(err, "xKV cache: out of memory");
  const char *name = o->device ? o->device : "auto";
  xkv_status s = xkv_open(&d->ctx, name);
  if (s) {
    eng_fail(err, "xKV cache: cannot open device \"%s\": %s", name,
             d->ctx ? xkv_last_error(d->ctx) : xkv_status_name(s));
    xkv_close(d->ctx);
    free(d);
    return -1;
  }
  xkv_device_info info;
  if (xkv_device_get_info(d->ctx, &info) == XKV_OK) {
    d->on_gpu = info.kind == XKV_DEVICE_CUDA;
    snprintf(d->device, sizeof d->device, "%s", info.name);
  }
  d->refs = 1;
  *out = d;
  return 0;
}

/* A cache on dev (whose reference it takes over). */
static int create_on(xkv_dev *dev, const eng_config *c, int max_tokens,
                     const eng_xkv_opts *o, eng_kv **out, eng_err *err) {
  kv_xkv *x = calloc(1, sizeof *x);
  if (!x) {
    if (--dev->refs == 0) {
      xkv_close(dev->ctx);
      free(dev);
    }
    return eng_fail(err, "xKV cache: out of memory");
  }
  x->base.ops = &xkv_ops;
  x->c = *c;
  x->dev = dev;
  x->ctx = dev->ctx;
  x->on_gpu = dev->on_gpu;
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
  xkv_status s;
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

static int check_config(const eng_config *c, eng_kv **out, eng_err *err) {
  *out = NULL;
  if (c->sliding_window > 0)
    return eng_fail(err, "xKV cache: sliding-window layers are not "
                         "supported (the split cache keeps them exact)");
  return 0;
}

int eng_kv_xkv_create(const eng_config *c, int max_tokens,
                      const eng_xkv_opts *o, eng_kv **out, eng_err *err) {
  xkv_dev *dev;
  if (check_config(c, out, err) || open_dev(o, &dev, err))
    return -1;
  return create_on(dev, c, max_tokens, o, out, err);
}

int eng_kv_xkv_create_shared(const eng_kv *share, const eng_config *c,
                             int max_tokens, const eng_xkv_opts *o,
                             eng_kv **out, eng_err *err) {
  if (check_config(c, out, err))
    return -1;
  if (!share || share->ops != &xkv_ops)
    return eng_fail(err, "xKV cache: the cache to share a context with is "
                         "not an xKV cache");
  xkv_dev *dev = ((const kv_xkv *)share)->dev;
  dev->refs++;
  return create_on(dev, c, max_tokens, o, out, err);
}

const char *eng_kv_xkv_device(const eng_kv *kv) {
  if (eng_kv_split_global(kv))
    kv = eng_kv_split_global(kv);
  return kv && kv->ops == &xkv_ops ? ((const kv_xkv *)kv)->dev->device : "";
}
