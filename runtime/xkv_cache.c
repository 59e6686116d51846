/* xKV cache: configuration, creation, prefill/append bookkeeping, stats
 * (compression in xkv_cache_compress.c, decode in xkv_cache_attn.c). */
#include "xkv_cache_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* kernels.xk built at build time for each head dim (runtime/CMakeLists),
 * in the order of register_kernels' dims */
#define TABLES(X, t) X(t##_d64) X(t##_d8) X(t##_d128) X(t##_d256)
#define DECL(n) extern const xkv_embedded xkv_kern_##n;
TABLES(DECL, host)
TABLES(DECL, sm_90)
#define REF(n) &xkv_kern_##n,
static const xkv_embedded *const host_tables[] = {TABLES(REF, host)};
static const xkv_embedded *const gpu_tables[] = {TABLES(REF, sm_90)};

static const char *dt_suffix(xkv_dtype dt) {
  return dt == XKV_F16 ? "f16" : dt == XKV_BF16 ? "bf16" : "f32";
}

int xkv_cache_group_first(const xkv_cache *c, int g) {
  return g * c->cfg.group;
}

int xkv_cache_group_size(const xkv_cache *c, int g) {
  int left = c->cfg.n_layers - g * c->cfg.group;
  return left < c->cfg.group ? left : c->cfg.group;
}

static xkv_status bad(xkv_context *ctx, const char *what) {
  return rt_err(ctx, XKV_ERR_INVALID, "xkv_cache_create: %s", what);
}

static xkv_status check_config(xkv_context *ctx, const xkv_cache_config *f) {
  char m[256];
  if (f->n_layers < 1 || f->n_kv_heads < 1 || f->n_heads < 1 ||
      f->max_tokens < 1)
    return bad(ctx, "n_layers, n_heads, n_kv_heads and max_tokens must be "
                    ">= 1");
  if (f->n_heads % f->n_kv_heads) {
    snprintf(m, sizeof m, "n_heads %d is not a multiple of n_kv_heads %d",
             f->n_heads, f->n_kv_heads);
    return bad(ctx, m);
  }
  if (f->head_dim != 8 && f->head_dim != 64 && f->head_dim != 128 &&
      f->head_dim != 256) { /* 256: Gemma 3 */
    snprintf(m, sizeof m,
             "head_dim %d has no compiled kernels (8, 64, 128, 256)",
             f->head_dim);
    return bad(ctx, m);
  }
  if (f->group != 1 && f->group != 2 && f->group != 4 && f->group != 8) {
    snprintf(m, sizeof m, "group (W) %d is not 1, 2, 4 or 8", f->group);
    return bad(ctx, m);
  }
  if (f->dtype != XKV_F16 && f->dtype != XKV_BF16 && f->dtype != XKV_F32)
    return bad(ctx, "dtype must be XKV_F16, XKV_BF16 or XKV_F32");
  if (f->rope_style != XKV_ROPE_INTERLEAVED && f->rope_style != XKV_ROPE_HALF)
    return bad(ctx, "rope_style must be XKV_ROPE_INTERLEAVED or XKV_ROPE_HALF");
  if (!(f->rope_theta > 0))
    return bad(ctx, "rope_theta must be > 0");
  if (f->sr != 0 && f->sr != 1)
    return bad(ctx, "sr must be 0 (dense decode) or 1 (selective "
                    "reconstruction)");
  if (f->sr && f->exact)
    return bad(ctx, "sr (selective reconstruction) needs a compressed cache, "
                    "not exact = 1");
  if (f->sr_budget < 0 || f->sr_budget % XKV_SR_CHUNK) {
    snprintf(m, sizeof m,
             "sr_budget %d must be >= 0 (0: 2048) and a multiple of the "
             "chunk size %d",
             f->sr_budget, XKV_SR_CHUNK);
    return bad(ctx, m);
  }
  if (f->sr_local_window < 0)
    return bad(ctx, "sr_local_window must be >= 0 (0: 64 tokens)");
  if (!(f->sr_outlier_frac >= 0 && f->sr_outlier_frac <= 0.5f))
    return bad(ctx, "sr_outlier_frac must lie in [0, 0.5] (0: 0.01)");
  if (f->svd != XKV_SVD_AUTO && f->svd != XKV_SVD_RANDOMIZED &&
      f->svd != XKV_SVD_GRAM) {
    snprintf(m, sizeof m,
             "svd %d is not XKV_SVD_AUTO (0), XKV_SVD_RANDOMIZED (1) or "
             "XKV_SVD_GRAM (2)",
             (int)f->svd);
    return bad(ctx, m);
  }
  if (f->exact)
    return XKV_OK;
  int features = f->group * f->n_kv_heads * f->head_dim;
  switch (f->policy) {
  case XKV_RANK_FIXED:
    if (f->rank_k < 1 || f->rank_v < 1 || f->rank_k > features ||
        f->rank_v > features) {
      snprintf(m, sizeof m,
               "fixed ranks rank_k %d, rank_v %d must lie in 1..%d "
               "(W * n_kv_heads * head_dim)",
               f->rank_k, f->rank_v, features);
      return bad(ctx, m);
    }
    return XKV_OK;
  case XKV_RANK_RATIO:
    if (!(f->target_ratio > 1))
      return bad(ctx, "target_ratio must be > 1 for XKV_RANK_RATIO");
    return XKV_OK;
  case XKV_RANK_ENERGY:
    if (!(f->energy > 0 && f->energy <= 1))
      return bad(ctx, "energy must lie in (0, 1] for XKV_RANK_ENERGY");
    if (f->rank_k < 0 || f->rank_v < 0)
      return bad(ctx, "rank caps for XKV_RANK_ENERGY must be >= 0");
    return XKV_OK;
  }
  return bad(ctx, "unknown rank policy");
}

/* Registers the embedded kernels once per context, table by table (a
 * failed registration, out of memory, is retried at the next create). */
static xkv_status register_kernels(xkv_context *ctx,
                                   const xkv_device_info *di) {
  static const int dims[] = {64, 8, 128, 256}; /* the tables' order */
  const xkv_embedded *const *t =
      di->kind == XKV_DEVICE_CPU ? host_tables : gpu_tables;
  xkv_status s = XKV_OK;
  for (int i = 0; !s && i < (int)(sizeof dims / sizeof *dims); i++) {
    xkv_kernel *k;
    xkv_const d = {"D", dims[i]};
    if (xkv_kernel_find(ctx, "xkv_decode_combine", &d, 1, &k) != XKV_OK) {
      s = xkv_registry_add_embedded(ctx, t[i]);
      s = s ? s
            : xkv_cache_lr1_register(ctx, di->kind != XKV_DEVICE_CPU, dims[i]);
    }
  }
  return s;
}

static xkv_status find(xkv_cache *c, const char *name, int with_d,
                       xkv_kernel **out) {
  xkv_const d = {"D", c->cfg.head_dim};
  xkv_status s = xkv_kernel_find(c->ctx, name, &d, with_d, out);
  if (s)
    return rt_err(c->ctx, s,
                  "xkv_cache_create: kernel %s (D=%d) is not registered: %s",
                  name, c->cfg.head_dim, xkv_last_error(c->ctx));
  return XKV_OK;
}

static xkv_status find_kernels(xkv_cache *c) {
  char n[64];
  const char *dt = dt_suffix(c->cfg.dtype);
  xkv_cache_kernels *k = &c->k;
  xkv_status s = find(c, "gemm_st_f32_f32", 0, &k->gemm_f32);
  snprintf(n, sizeof n, "gemm_st_f32_%s", dt);
  s = s ? s : find(c, n, 0, &k->gemm_out);
  s = s ? s : find(c, "sumsq_f32", 0, &k->sumsq);
  s = s ? s : find(c, "softmax", 0, &k->softmax);
  s = s ? s : find(c, "xkv_decode_combine", 1, &k->combine);
  s = s ? s : find(c, "xkv_rows_f32", 1, &k->rows_f32);
  snprintf(n, sizeof n, "xkv_rows_%s", dt);
  s = s ? s : find(c, n, 1, &k->rows);
  snprintf(n, sizeof n, "xkv_decode_lr_%s", dt);
  s = s ? s : find(c, n, 1, &k->decode_lr);
  snprintf(n, sizeof n, "xkv_decode_exact_%s", dt);
  s = s ? s : find(c, n, 1, &k->decode_exact);
  snprintf(n, sizeof n, "xkv_decode_exact_batch_%s", dt);
  s = s ? s : find(c, n, 1, &k->decode_exact_batch);
  snprintf(n, sizeof n, "xkv_scores_exact_%s", dt);
  s = s ? s : find(c, n, 1, &k->scores_exact);
  snprintf(n, sizeof n, "xkv_sr_rebuild_%s", dt);
  s = s ? s : find(c, n, 1, &k->sr_rebuild);
  snprintf(n, sizeof n, "xkv_sr_rebuild_listed_%s", dt);
  s = s ? s : find(c, n, 1, &k->sr_rebuild_listed);
  return s ? s : find(c, "xkv_sr_select", 0, &k->sr_select);
}

xkv_status xkv_cache_factorizer(xkv_context *ctx, const xkv_cache_config *cfg,
                                xkv_cache **out) {
  xkv_cache *c = calloc(1, sizeof *c);
  *out = c;
  if (!c)
    return rt_err(ctx, XKV_ERR_OUT_OF_MEMORY,
                  "xkv_cache_factorizer: no memory");
  c->ctx = ctx;
  c->cfg = *cfg;
  c->elem = cfg->dtype == XKV_F32 ? 4 : 2;
  xkv_device_info di;
  xkv_status s = xkv_device_get_info(ctx, &di);
  c->units = s ? 1 : di.units;
  c->kind = s ? XKV_DEVICE_CPU : di.kind;
  s = s ? s : register_kernels(ctx, &di);
  char n[64];
  snprintf(n, sizeof n, "gemm_st_f32_%s", dt_suffix(cfg->dtype));
  s = s ? s : find(c, "gemm_st_f32_f32", 0, &c->k.gemm_f32);
  s = s ? s : find(c, n, 0, &c->k.gemm_out);
  return s ? s : find(c, "sumsq_f32", 0, &c->k.sumsq);
}

static xkv_status rope_tables(xkv_cache *c) {
  int half = c->cfg.head_dim / 2, P = c->cfg.max_tokens;
  size_t n = (size_t)P * half;
  float *cs = malloc(n * 2 * sizeof *cs);
  if (!cs)
    return rt_err(c->ctx, XKV_ERR_OUT_OF_MEMORY,
                  "xkv_cache_create: no memory for the RoPE tables");
  for (int p = 0; p < P; p++)
    for (int i = 0; i < half; i++) {
      double th = p * pow(c->cfg.rope_theta, -2.0 * i / c->cfg.head_dim);
      cs[(size_t)p * half + i] = (float)cos(th);
      cs[n + (size_t)p * half + i] = (float)sin(th);
    }
  xkv_status s = xkv_alloc(c->ctx, n * 4, (void **)&c->cos);
  s = s ? s : xkv_alloc(c->ctx, n * 4, (void **)&c->sin);
  s = s ? s : xkv_copy_h2d(c->ctx, c->cos, cs, n * 4, NULL);
  s = s ? s : xkv_copy_h2d(c->ctx, c->sin, cs + n, n * 4, NULL);
  free(cs);
  return s;
}

xkv_status xkv_cache_create(xkv_context *ctx, const xkv_cache_config *cfg,
                            xkv_cache **out) {
  if (!ctx)
    return XKV_ERR_INVALID;
  if (!cfg || !out)
    return bad(ctx, "cfg and out must not be NULL");
  *out = NULL;
  xkv_status s = check_config(ctx, cfg);
  if (s)
    return s;
  /* where SR selects: XKV_SR_SELECT, else on the device unless the device
   * is the CPU (there the device's memory is the host's, so no round trip
   * exists to save, and the C selection is faster than the kernel) */
  const char *where = getenv("XKV_SR_SELECT");
  if (where && *where && strcmp(where, "host") && strcmp(where, "device"))
    return rt_err(ctx, XKV_ERR_INVALID,
                  "xkv_cache_create: XKV_SR_SELECT must be host or device "
                  "(unset: device, host on the CPU device), not '%s'",
                  where);
  xkv_cache *c = calloc(1, sizeof *c);
  if (!c)
    return rt_err(ctx, XKV_ERR_OUT_OF_MEMORY, "xkv_cache_create: no memory");
  c->ctx = ctx;
  c->cfg = *cfg;
  if (cfg->sr) { /* zero fields take the documented defaults */
    xkv_cache_config *f = &c->cfg;
    f->sr_budget = f->sr_budget ? f->sr_budget : 2048;
    f->sr_local_window = f->sr_local_window ? f->sr_local_window : 64;
    f->sr_outlier_frac = f->sr_outlier_frac > 0 ? f->sr_outlier_frac : 0.01f;
  }
  c->sr_last_layer = -1;
  c->elem = cfg->dtype == XKV_F32 ? 4 : 2;
  c->n_groups = (cfg->n_layers + cfg->group - 1) / cfg->group;
  c->groups = calloc((size_t)c->n_groups, sizeof *c->groups);
  c->layers = calloc((size_t)cfg->n_layers, sizeof *c->layers);
  if (!c->groups || !c->layers)
    s = rt_err(ctx, XKV_ERR_OUT_OF_MEMORY, "xkv_cache_create: no memory");
  xkv_device_info di;
  s = s ? s : xkv_device_get_info(ctx, &di);
  c->units = s ? 1 : di.units;
  c->kind = s ? XKV_DEVICE_CPU : di.kind;
  c->sr_host =
      where && *where ? !strcmp(where, "host") : c->kind == XKV_DEVICE_CPU;
  s = s ? s : register_kernels(ctx, &di);
  s = s ? s : find_kernels(c);
  s = s ? s : rope_tables(c);
  size_t hq = (size_t)cfg->n_heads;
  s = s ? s : xkv_alloc(ctx, hq * cfg->head_dim * 4, (void **)&c->q);
  s = s ? s : xkv_alloc(ctx, hq * cfg->max_tokens * 4, (void **)&c->s);
  size_t np = hq * XKV_MAX_SPLITS;
  s = s ? s : xkv_alloc(ctx, np * cfg->head_dim * 4, (void **)&c->po);
  s = s ? s : xkv_alloc(ctx, np * 4, (void **)&c->pm);
  s = s ? s : xkv_alloc(ctx, np * 4, (void **)&c->pl);
  if (s) {
    xkv_cache_destroy(c);
    return s;
  }
  *out = c;
  return XKV_OK;
}

void xkv_cache_destroy(xkv_cache *c) {
  if (!c)
    return;
  xkv_context *ctx = c->ctx;
  for (int g = 0; c->groups && g < c->n_groups; g++) {
    xkv_free(ctx, c->groups[g].ak);
    xkv_free(ctx, c->groups[g].av);
  }
  for (int l = 0; c->layers && l < c->cfg.n_layers; l++) {
    xkv_layer *y = &c->layers[l];
    void *p[] = {y->bk, y->bv, y->kx, y->vx, y->stage_k, y->stage_v};
    for (size_t i = 0; i < sizeof p / sizeof *p; i++)
      xkv_free(ctx, p[i]);
    xkv_cache_sr_free(c, y);
  }
  xkv_free(ctx, c->sr_list_dev);
  free(c->sr_list);
  free(c->sr_probs);
  xkv_free(ctx, c->cos);
  xkv_free(ctx, c->sin);
  xkv_free(ctx, c->q);
  xkv_free(ctx, c->s);
  xkv_free(ctx, c->po);
  xkv_free(ctx, c->pm);
  xkv_free(ctx, c->pl);
  xkv_free(ctx, c->bpo);
  xkv_free(ctx, c->bpm);
  xkv_free(ctx, c->bpl);
  xkv_free(ctx, c->btab_dev);
  free(c->btab);
  free(c->groups);
  free(c->layers);
  free(c);
}

xkv_status xkv_cache_rows(xkv_cache *c, xkv_kernel *k, const float *x,
                          void *out, int T, int H, int pos0, int pairs, int rot,
                          float scale) {
  xkv_dtype odt = k == c->k.rows ? c->cfg.dtype : XKV_F32;
  xkv_arg a[] = {xkv_arg_ptr(XKV_F32, (void *)x),
                 xkv_arg_ptr(odt, out),
                 xkv_arg_ptr(XKV_F32, c->cos),
                 xkv_arg_ptr(XKV_F32, c->sin),
                 xkv_arg_i32(T),
                 xkv_arg_i32(H),
                 xkv_arg_i32(pos0),
                 xkv_arg_i32(pairs && c->cfg.rope_style == XKV_ROPE_HALF),
                 xkv_arg_i32(rot),
                 xkv_arg_f32(scale)};
  return xkv_launch(c->ctx, k, NULL, a, 10, NULL);
}

xkv_status xkv_cache_gemm(xkv_cache *c, xkv_kernel *k, const void *a, int sam,
                          int sak, const void *b, xkv_dtype bdt, int sbk,
                          int sbn, void *out, xkv_dtype cdt, int ldc, int m,
                          int n, int kk, float beta) {
  xkv_arg args[] = {xkv_arg_ptr(XKV_F32, (void *)a),
                    xkv_arg_ptr(bdt, (void *)b),
                    xkv_arg_ptr(cdt, out),
                    xkv_arg_i32(m),
                    xkv_arg_i32(n),
                    xkv_arg_i32(kk),
                    xkv_arg_i32(sam),
                    xkv_arg_i32(sak),
                    xkv_arg_i32(sbk),
                    xkv_arg_i32(sbn),
                    xkv_arg_i32(ldc),
                    xkv_arg_f32(beta)};
  return xkv_launch(c->ctx, k, NULL, args, 12, NULL);
}

void xkv_cache_to_storage(const xkv_cache *c, const float *x, void *out,
                          size_t n) {
  if (c->cfg.dtype == XKV_F32) {
    memcpy(out, x, n * 4);
    return;
  }
  uint16_t *o = out;
  for (size_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &x[i], 4);
    if (c->cfg.dtype == XKV_BF16) {
      o[i] = isnan(x[i]) ? (uint16_t)((u >> 16) | 0x40)
                         : (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
      continue;
    }
    _Float16 h = (_Float16)x[i];
    memcpy(&o[i], &h, 2);
  }
}

void xkv_cache_from_storage(const xkv_cache *c, const void *x, float *out,
                            size_t n) {
  if (c->cfg.dtype == XKV_F32) {
    memcpy(out, x, n * 4);
    return;
  }
  const uint16_t *h = x;
  for (size_t i = 0; i < n; i++) {
    if (c->cfg.dtype == XKV_BF16) {
      uint32_t u = (uint32_t)h[i] << 16;
      memcpy(&out[i], &u, 4);
      continue;
    }
    _Float16 f;
    memcpy(&f, &h[i], 2);
    out[i] = (float)f;
  }
}

/* Stores n_tok exact tokens (f32 device rows [n_tok, Hkv*d]) of layer l at
 * positions pos0.. : keys rotated, both in the storage dtype. */
static xkv_status store_exact(xkv_cache *c, xkv_layer *y, const float *k,
                              const float *v, int n_tok, int pos0) {
  int hk = c->cfg.n_kv_heads;
  size_t at = (size_t)y->n_exact * hk * c->cfg.head_dim * c->elem;
  xkv_status s = xkv_cache_rows(c, c->k.rows, k, (char *)y->kx + at, n_tok, hk,
                                pos0, 1, 1, 1.0f);
  s = s ? s
        : xkv_cache_rows(c, c->k.rows, v, (char *)y->vx + at, n_tok, hk, pos0,
                         0, 0, 1.0f);
  y->n_exact += s ? 0 : n_tok;
  return s;
}

static xkv_status alloc_exact(xkv_cache *c, xkv_layer *y) {
  size_t bytes =
      (size_t)c->cfg.max_tokens * c->cfg.n_kv_heads * c->cfg.head_dim * c->elem;
  xkv_status s = xkv_alloc(c->ctx, bytes, &y->kx);
  return s ? s : xkv_alloc(c->ctx, bytes, &y->vx);
}

/* Keys staged for the SVD: in the kernels' pair order. */
static xkv_status stage(xkv_cache *c, xkv_layer *y, const float *k,
                        const float *v, int L) {
  size_t n = (size_t)L * c->cfg.n_kv_heads * c->cfg.head_dim;
  xkv_status s = xkv_alloc(c->ctx, n * 4, (void **)&y->stage_k);
  s = s ? s : xkv_alloc(c->ctx, n * 4, (void **)&y->stage_v);
  s = s ? s : xkv_copy_d2d(c->ctx, y->stage_v, v, n * 4, NULL);
  return s ? s
           : xkv_cache_rows(c, c->k.rows_f32, k, y->stage_k, L,
                            c->cfg.n_kv_heads, 0, 1, 0, 1.0f);
}

/* 1 when fixed ranks exceed min(L, F) for group g (F = W * n_kv_heads *
 * d): rank-r factors take r (L + F) elements against the prompt's L F, so
 * past min(L, F) they are larger than the prompt and no more accurate. A
 * prompt shorter than the ranks (a short chat turn) is then kept exact:
 * not refused, and not factorized at a clamped rank that would still store
 * more than the tokens. xkv_cache_stats counts such groups. */
static int short_prompt(const xkv_cache *c, int g, int L) {
  int f = xkv_cache_group_size(c, g) * c->cfg.n_kv_heads * c->cfg.head_dim;
  int full = L < f ? L : f;
  return c->cfg.policy == XKV_RANK_FIXED &&
         (c->cfg.rank_k > full || c->cfg.rank_v > full);
}

/* Undoes alloc_exact and stage: a failed prefill leaves the layer empty. */
static void unprefill(xkv_cache *c, xkv_layer *y) {
  void **p[] = {&y->kx, &y->vx, (void **)&y->stage_k, (void **)&y->stage_v};
  for (size_t i = 0; i < sizeof p / sizeof *p; i++) {
    xkv_free(c->ctx, *p[i]);
    *p[i] = NULL;
  }
  y->n_exact = 0;
}

/* Selective reconstruction's state for layers from..layer of a compressed
 * group; on failure c->sr_resume remembers where to pick up. */
static xkv_status sr_setup(xkv_cache *c, int from, int layer,
                           const char *where) {
  for (int l = from; l <= layer; l++) {
    xkv_status s = xkv_cache_sr_prepare(c, l, where);
    if (s) {
      c->sr_resume = l + 1;
      return s;
    }
  }
  c->sr_resume = 0;
  return XKV_OK;
}

xkv_status xkv_cache_prefill(xkv_cache *c, int layer, const float *k_pre_rope,
                             const float *v, int L) {
  if (!c)
    return XKV_ERR_INVALID;
  xkv_context *ctx = c->ctx;
  if (!k_pre_rope || !v)
    return rt_err(ctx, XKV_ERR_INVALID, "xkv_cache_prefill: NULL k or v");
  if (c->sr_resume && layer == c->next_layer - 1) /* the retry of a failure */
    return sr_setup(c, c->sr_resume - 1, layer, "xkv_cache_prefill (retry)");
  if (c->sr_resume)
    return rt_err(ctx, XKV_ERR_INVALID,
                  "xkv_cache_prefill: layer %d's selective reconstruction "
                  "setup failed: retry xkv_cache_prefill of layer %d first",
                  c->sr_resume - 1, c->next_layer - 1);
  if (layer != c->next_layer)
    return rt_err(ctx, XKV_ERR_INVALID,
                  "xkv_cache_prefill: layer %d arrived, expected layer %d "
                  "(layers arrive in order 0..%d, each once)",
                  layer, c->next_layer, c->cfg.n_layers - 1);
  if (L < 1 || L > c->cfg.max_tokens)
    return rt_err(ctx, XKV_ERR_INVALID,
                  "xkv_cache_prefill: layer %d: L = %d tokens outside "
                  "1..max_tokens (%d)",
                  layer, L, c->cfg.max_tokens);
  if (layer > 0 && L != c->prompt_len)
    return rt_err(ctx, XKV_ERR_INVALID,
                  "xkv_cache_prefill: layer %d has %d tokens, layer 0 had %d",
                  layer, L, c->prompt_len);
  xkv_layer *y = &c->layers[layer];
  int g = layer / c->cfg.group;
  xkv_group *gr = &c->groups[g];
  gr->exact = c->cfg.exact || short_prompt(c, g, L);
  xkv_status s = alloc_exact(c, y);
  if (!s && gr->exact)
    s = store_exact(c, y, k_pre_rope, v, L, 0);
  else if (!s)
    s = stage(c, y, k_pre_rope, v, L);
  if (s) {
    unprefill(c, y);
    return s;
  }
  c->prompt_len = L;
  y->prefilled = 1;
  y->len = L;
  c->next_layer++;
  if (gr->exact ||
      layer != xkv_cache_group_first(c, g) + xkv_cache_group_size(c, g) - 1)
    return XKV_OK;
  char where[96];
  snprintf(where, sizeof where,
           "xkv_cache_prefill: layer %d completes group %d (layers %d-%d)",
           layer, g, xkv_cache_group_first(c, g), layer);
  s = xkv_cache_compress_group(c, g, where);
  if (s) { /* the group stays staged but for this layer: retry it */
    unprefill(c, y);
    y->prefilled = 0;
    y->len = 0;
    c->next_layer--;
    return s;
  }
  return c->cfg.sr ? sr_setup(c, xkv_cache_group_first(c, g), layer, where)
                   : XKV_OK;
}

xkv_status xkv_cache_append(xkv_cache *c, int layer, const float *k_pre_rope,
                            const float *v) {
  if (!c)
    return XKV_ERR_INVALID;
  if (!k_pre_rope || !v)
    return rt_err(c->ctx, XKV_ERR_INVALID, "xkv_cache_append: NULL k or v");
  if (layer < 0 || layer >= c->cfg.n_layers || !c->layers[layer].prefilled)
    return rt_err(c->ctx, XKV_ERR_INVALID,
                  "xkv_cache_append: layer %d has no prefill yet (or is out "
                  "of 0..%d)",
                  layer, c->cfg.n_layers - 1);
  xkv_layer *y = &c->layers[layer];
  if (y->len >= c->cfg.max_tokens)
    return rt_err(c->ctx, XKV_ERR_INVALID,
                  "xkv_cache_append: layer %d is full (max_tokens %d)", layer,
                  c->cfg.max_tokens);
  xkv_status s = store_exact(c, y, k_pre_rope, v, 1, y->len);
  y->len += !s;
  return s;
}

xkv_status xkv_cache_get_stats(const xkv_cache *c, xkv_cache_stats *out) {
  if (!c || !out)
    return XKV_ERR_INVALID;
  memset(out, 0, sizeof *out);
  uint64_t hd = (uint64_t)c->cfg.n_kv_heads * c->cfg.head_dim;
  out->rank_k_min = out->rank_v_min = INT32_MAX;
  for (int g = 0; g < c->n_groups; g++) {
    const xkv_group *gr = &c->groups[g];
    out->groups_exact += gr->exact && !c->cfg.exact;
    if (!gr->rank_k)
      continue;
    out->groups_compressed++;
    out->bytes += (uint64_t)gr->L * (gr->rank_k + gr->rank_v) * c->elem;
    out->bytes += (uint64_t)xkv_cache_group_size(c, g) * hd *
                  (gr->rank_k + gr->rank_v) * c->elem;
#define MINMAX(lo, hi, r)                                                      \
  lo = r < lo ? r : lo;                                                        \
  hi = r > hi ? r : hi;
    MINMAX(out->rank_k_min, out->rank_k_max, gr->rank_k)
    MINMAX(out->rank_v_min, out->rank_v_max, gr->rank_v)
#undef MINMAX
  }
  if (!out->groups_compressed)
    out->rank_k_min = out->rank_v_min = 0;
  for (int l = 0; l < c->cfg.n_layers; l++) {
    const xkv_layer *y = &c->layers[l];
    out->bytes += 2 * (uint64_t)y->n_exact * hd * c->elem;
    if (y->sr.lm) /* landmarks, exact rows and the reuse cache's slots */
      out->bytes +=
          ((uint64_t)y->sr.nsc +
           2 * ((uint64_t)y->sr.nfix + (uint64_t)y->sr.nsel * XKV_SR_CHUNK)) *
          hd * c->elem;
    if (y->stage_k) /* staged, waiting for the group's last layer */
      out->bytes += 2 * (uint64_t)y->len * hd * 4;
    out->exact_bytes += 2 * (uint64_t)y->len * hd * 2;
  }
  out->tokens = c->layers[0].len;
  out->prompt_tokens = c->prompt_len;
  out->ratio = out->bytes ? (double)out->exact_bytes / out->bytes : 0;
  out->sr_steps = c->sr_steps;
  uint64_t hit = c->sr_hit, rebuilt = c->sr_rebuilt;
  int last_hit = c->sr_last_hit, last_rebuilt = c->sr_last_rebuilt;
  xkv_status s =
      xkv_cache_sr_dev_stats(c, &hit, &rebuilt, &last_hit, &last_rebuilt);
  out->sr_chunks_hit = hit;
  out->sr_chunks_rebuilt = rebuilt;
  out->sr_hit_rate = hit + rebuilt ? (double)hit / (hit + rebuilt) : 0;
  int last = last_hit + last_rebuilt;
  out->sr_last_hit_rate = last ? (double)last_hit / last : 0;
  out->sr_last_tokens_rebuilt = last_rebuilt * XKV_SR_CHUNK;
  return s;
}
