/* xKV for MLA: configuration, creation, prefill (the group SVD of the
 * latents through xkv_cache_factorize), append, stats (decode in
 * xkv_cache_mla_attn.c). See xkv.h "xKV for MLA". */
#include "xkv_cache_mla_int.h"
#include "xkv_mla_tables.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DECL(gpu, w, n) extern const xkv_embedded n;
XKV_MLA_TABLES(DECL)
#define ENTRY(gpu, w, n) {gpu, w, &n},
static const struct {
  int gpu, w;
  const xkv_embedded *t;
} tables[] = {XKV_MLA_TABLES(ENTRY)};
#define NTABLES (int)(sizeof tables / sizeof *tables)

static const char *dt_suffix(xkv_dtype dt) {
  return dt == XKV_F16 ? "f16" : dt == XKV_BF16 ? "bf16" : "f32";
}

static int group_first(const xkv_mla_cache *m, int g) {
  return g * m->cfg.group;
}

static int group_size(const xkv_mla_config *f, int g) {
  int left = f->n_layers - g * f->group;
  return left < f->group ? left : f->group;
}

/* the smallest width bucket >= w, 0 when none */
static int bucket(int w) {
  int best = 0;
  for (int i = 0; i < NTABLES; i++)
    if (tables[i].w >= w && (!best || tables[i].w < best))
      best = tables[i].w;
  return best;
}

static xkv_status bad(xkv_context *ctx, const char *fn, const char *what) {
  return rt_err(ctx, XKV_ERR_INVALID, "%s: %s", fn, what);
}

static xkv_status check_config(xkv_context *ctx, const char *fn,
                               const xkv_mla_config *f) {
  char m[256];
  if (f->n_layers < 1 || f->n_heads < 1 || f->max_tokens < 1)
    return bad(ctx, fn, "n_layers, n_heads and max_tokens must be >= 1");
  if (f->kv_lora_rank < 16 || f->kv_lora_rank % 16 ||
      f->kv_lora_rank > XKV_MLA_MAX_W) {
    snprintf(m, sizeof m,
             "kv_lora_rank %d must be a multiple of 16 in 16..%d (the "
             "decode kernels' widths)",
             f->kv_lora_rank, XKV_MLA_MAX_W);
    return bad(ctx, fn, m);
  }
  if (f->rope_dim != XKV_MLA_P) {
    snprintf(m, sizeof m, "rope_dim %d has no compiled kernels (%d)",
             f->rope_dim, XKV_MLA_P);
    return bad(ctx, fn, m);
  }
  if (f->group != 1 && f->group != 2 && f->group != 4 && f->group != 8) {
    snprintf(m, sizeof m, "group (W) %d is not 1, 2, 4 or 8", f->group);
    return bad(ctx, fn, m);
  }
  if (f->dtype != XKV_F16 && f->dtype != XKV_BF16 && f->dtype != XKV_F32)
    return bad(ctx, fn, "dtype must be XKV_F16, XKV_BF16 or XKV_F32");
  if (f->exact != 0 && f->exact != 1)
    return bad(ctx, fn, "exact must be 0 or 1");
  if (f->svd != XKV_SVD_AUTO && f->svd != XKV_SVD_RANDOMIZED &&
      f->svd != XKV_SVD_GRAM)
    return bad(ctx, fn, "svd must be XKV_SVD_AUTO, _RANDOMIZED or _GRAM");
  if (f->exact)
    return XKV_OK;
  int features = f->group * f->kv_lora_rank;
  int most = features < XKV_MLA_MAX_W ? features : XKV_MLA_MAX_W;
  if (f->policy == XKV_RANK_FIXED) {
    if (f->rank < 1 || f->rank > most) {
      snprintf(m, sizeof m,
               "fixed rank %d must lie in 1..%d (W * kv_lora_rank, and the "
               "widest decode kernel %d)",
               f->rank, most, XKV_MLA_MAX_W);
      return bad(ctx, fn, m);
    }
    return XKV_OK;
  }
  if (f->policy == XKV_RANK_ENERGY) {
    if (!(f->energy > 0 && f->energy <= 1))
      return bad(ctx, fn, "energy must lie in (0, 1] for XKV_RANK_ENERGY");
    if (f->rank < 0 || f->rank > most) {
      snprintf(m, sizeof m, "rank cap %d must lie in 0..%d (0: %d)", f->rank,
               most, most);
      return bad(ctx, fn, m);
    }
    return XKV_OK;
  }
  return bad(ctx, fn, "policy must be XKV_RANK_FIXED or XKV_RANK_ENERGY");
}

/* the largest rank a group may take */
static int rank_bound(const xkv_mla_config *f) {
  int features = f->group * f->kv_lora_rank;
  int most = features < XKV_MLA_MAX_W ? features : XKV_MLA_MAX_W;
  if (f->exact)
    return 0;
  return f->rank > 0 ? f->rank : most;
}

/* 1 when the fixed rank exceeds min(L, W R) for group g: the factors
 * would store more than the latents (as xkv_cache's short prompts) */
static int short_prompt(const xkv_mla_config *f, int g, int L) {
  int feat = group_size(f, g) * f->kv_lora_rank;
  int full = L < feat ? L : feat;
  return f->policy == XKV_RANK_FIXED && f->rank > full;
}

xkv_kernel *xkv_mla_decode_kernel(xkv_mla_cache *m, int w, const char *where) {
  int b = bucket(w);
  if (!b) {
    rt_err(m->ctx, XKV_ERR_INVALID,
           "%s: width %d is above the widest MLA decode kernel (%d)", where, w,
           XKV_MLA_MAX_W);
    return NULL;
  }
  char n[40];
  snprintf(n, sizeof n, "xkv_mla_decode_%s", dt_suffix(m->cfg.dtype));
  xkv_const c = {"W", b};
  xkv_kernel *k;
  if (xkv_kernel_find(m->ctx, n, &c, 1, &k) != XKV_OK) {
    rt_err(m->ctx, XKV_ERR_NOT_FOUND, "%s: kernel %s (W=%d): %s", where, n, b,
           xkv_last_error(m->ctx));
    return NULL;
  }
  return k;
}

/* the MLA tables once per context */
static xkv_status register_tables(xkv_mla_cache *m) {
  xkv_kernel *k;
  if (xkv_kernel_find(m->ctx, "xkv_mla_combine", NULL, 0, &k) == XKV_OK)
    return XKV_OK;
  xkv_status s = XKV_OK;
  for (int i = 0; i < NTABLES && !s; i++)
    if (tables[i].gpu == m->gpu)
      s = xkv_registry_add_embedded(m->ctx, tables[i].t);
  return s;
}

static xkv_status find(xkv_mla_cache *m, const char *name, xkv_kernel **out) {
  xkv_status s = xkv_kernel_find(m->ctx, name, NULL, 0, out);
  if (s)
    return rt_err(m->ctx, s, "xkv_mla_create: kernel %s is not registered: %s",
                  name, xkv_last_error(m->ctx));
  return XKV_OK;
}

static xkv_status find_kernels(xkv_mla_cache *m) {
  char n[40];
  const char *dt = dt_suffix(m->cfg.dtype);
  snprintf(n, sizeof n, "xkv_mla_rows_%s", dt);
  xkv_status s = find(m, n, &m->rows);
  snprintf(n, sizeof n, "gemm_st_%s_f32", dt);
  s = s ? s : find(m, n, &m->gemm_b);
  s = s ? s : find(m, "xkv_mla_combine", &m->combine);
  if (!s) {
    m->dec_exact =
        xkv_mla_decode_kernel(m, m->cfg.kv_lora_rank, "xkv_mla_create");
    s = m->dec_exact ? XKV_OK : XKV_ERR_NOT_FOUND;
  }
  return s;
}

/* the factorization's view: one "head" of R features per layer */
static xkv_status make_factorizer(xkv_mla_cache *m) {
  const xkv_mla_config *f = &m->cfg;
  xkv_cache_config fc = {.n_layers = f->n_layers,
                         .n_heads = 1,
                         .n_kv_heads = 1,
                         .head_dim = f->kv_lora_rank,
                         .max_tokens = f->max_tokens,
                         .group = f->group,
                         .policy = f->policy,
                         .rank_k = f->rank,
                         .rank_v = f->rank,
                         .energy = f->energy,
                         .dtype = f->dtype,
                         .seed = f->seed,
                         .svd = f->svd};
  return xkv_cache_factorizer(m->ctx, &fc, &m->fz);
}

xkv_status xkv_mla_create(xkv_context *ctx, const xkv_mla_config *cfg,
                          xkv_mla_cache **out) {
  if (!ctx)
    return XKV_ERR_INVALID;
  if (!cfg || !out)
    return bad(ctx, "xkv_mla_create", "cfg and out must not be NULL");
  *out = NULL;
  xkv_status s = check_config(ctx, "xkv_mla_create", cfg);
  if (s)
    return s;
  xkv_mla_cache *m = calloc(1, sizeof *m);
  if (!m)
    return rt_err(ctx, XKV_ERR_OUT_OF_MEMORY, "xkv_mla_create: no memory");
  m->ctx = ctx;
  m->cfg = *cfg;
  m->elem = cfg->dtype == XKV_F32 ? 4 : 2;
  m->n_groups = (cfg->n_layers + cfg->group - 1) / cfg->group;
  m->groups = calloc((size_t)m->n_groups, sizeof *m->groups);
  m->layers = calloc((size_t)cfg->n_layers, sizeof *m->layers);
  if (!m->groups || !m->layers)
    s = rt_err(ctx, XKV_ERR_OUT_OF_MEMORY, "xkv_mla_create: no memory");
  xkv_device_info di;
  s = s ? s : xkv_device_get_info(ctx, &di);
  m->units = s ? 1 : di.units;
  m->gpu = !s && di.kind != XKV_DEVICE_CPU;
  s = s ? s : register_tables(m);
  s = s ? s : find_kernels(m);
  s = s || cfg->exact ? s : make_factorizer(m);
  m->wmax = rank_bound(cfg);
  int wb = m->wmax ? bucket(m->wmax) : 0, rb = bucket(cfg->kv_lora_rank);
  m->ldp = wb > rb ? wb : rb;
  size_t h = (size_t)cfg->n_heads, np = h * XKV_MAX_SPLITS;
  size_t wq = m->wmax ? (size_t)m->wmax : 1;
  s = s ? s : xkv_alloc(ctx, h * wq * 4, (void **)&m->qr);
  s = s ? s : xkv_alloc(ctx, h * wq * 4, (void **)&m->u);
  s = s ? s : xkv_alloc(ctx, np * m->ldp * 4, (void **)&m->po);
  s = s ? s : xkv_alloc(ctx, np * 4, (void **)&m->pm);
  s = s ? s : xkv_alloc(ctx, np * 4, (void **)&m->pl);
  if (s) {
    xkv_mla_destroy(m);
    return s;
  }
  *out = m;
  return XKV_OK;
}

static void free_layer(xkv_mla_cache *m, xkv_mla_layer *y) {
  void **p[] = {&y->b, &y->cx, &y->kpe, (void **)&y->stage};
  for (size_t i = 0; i < sizeof p / sizeof *p; i++) {
    xkv_free(m->ctx, *p[i]);
    *p[i] = NULL;
  }
  y->n_exact = 0;
}

void xkv_mla_destroy(xkv_mla_cache *m) {
  if (!m)
    return;
  for (int g = 0; m->groups && g < m->n_groups; g++)
    xkv_free(m->ctx, m->groups[g].a);
  for (int l = 0; m->layers && l < m->cfg.n_layers; l++)
    free_layer(m, &m->layers[l]);
  float *p[] = {m->qr, m->u, m->po, m->pm, m->pl};
  for (size_t i = 0; i < sizeof p / sizeof *p; i++)
    xkv_free(m->ctx, p[i]);
  free(m->fz);
  free(m->groups);
  free(m->layers);
  free(m);
}

/* n rows x [n, w] (f32, device) into out in the storage dtype */
static xkv_status store_rows(xkv_mla_cache *m, const float *x, void *out, int n,
                             int w) {
  xkv_arg a[] = {xkv_arg_ptr(XKV_F32, (void *)x),
                 xkv_arg_ptr(m->cfg.dtype, out), xkv_arg_i32(n),
                 xkv_arg_i32(w)};
  return xkv_launch(m->ctx, m->rows, NULL, a, 4, NULL);
}

/* token rows pos.. of layer y: k_pe always, the latent in cx when `exact`
 * (else the caller stages it) */
static xkv_status store_token_rows(xkv_mla_cache *m, xkv_mla_layer *y,
                                   const float *c_kv, const float *k_pe, int n,
                                   int pos, int exact) {
  const xkv_mla_config *f = &m->cfg;
  size_t at = (size_t)y->n_exact * f->kv_lora_rank * m->elem;
  xkv_status s =
      store_rows(m, k_pe, (char *)y->kpe + (size_t)pos * XKV_MLA_P * m->elem, n,
                 XKV_MLA_P);
  if (!s && exact)
    s = store_rows(m, c_kv, (char *)y->cx + at, n, f->kv_lora_rank);
  y->n_exact += !s && exact ? n : 0;
  return s;
}

/* the group's SVD over its layers' staged latents */
static xkv_status compress(xkv_mla_cache *m, int g, const char *where) {
  int first = group_first(m, g), W = group_size(&m->cfg, g);
  xkv_mla_group *gr = &m->groups[g];
  float *x[8];
  void *b[8] = {0};
  for (int l = 0; l < W; l++)
    x[l] = m->layers[first + l].stage;
  int r = m->wmax; /* the fixed rank or the energy policy's cap */
  uint64_t seed = m->cfg.seed + (uint64_t)g * 0x5851f42d4c957f2dull;
  xkv_status s = xkv_cache_factorize(m->fz, where, x, W, m->prompt_len, &r,
                                     &gr->a, b, &seed);
  xkv_kernel *k = s ? NULL : xkv_mla_decode_kernel(m, r, where);
  if (!k) { /* nothing half-made: the staging stays for a retry */
    for (int l = 0; l < W; l++)
      xkv_free(m->ctx, b[l]);
    xkv_free(m->ctx, gr->a);
    gr->a = NULL;
    return s ? s : XKV_ERR_NOT_FOUND;
  }
  for (int l = 0; l < W; l++) {
    xkv_mla_layer *y = &m->layers[first + l];
    y->b = b[l];
    xkv_free(m->ctx, y->stage);
    y->stage = NULL;
  }
  gr->L = m->prompt_len;
  gr->rank = r;
  gr->dec = k;
  return XKV_OK;
}

xkv_status xkv_mla_prefill(xkv_mla_cache *m, int layer, const float *c_kv,
                           const float *k_pe, int L) {
  if (!m)
    return XKV_ERR_INVALID;
  xkv_context *ctx = m->ctx;
  const xkv_mla_config *f = &m->cfg;
  if (!c_kv || !k_pe)
    return rt_err(ctx, XKV_ERR_INVALID, "xkv_mla_prefill: NULL c_kv or k_pe");
  if (layer != m->next_layer)
    return rt_err(ctx, XKV_ERR_INVALID,
                  "xkv_mla_prefill: layer %d arrived, expected layer %d "
                  "(layers arrive in order 0..%d, each once)",
                  layer, m->next_layer, f->n_layers - 1);
  if (L < 1 || L > f->max_tokens)
    return rt_err(ctx, XKV_ERR_INVALID,
                  "xkv_mla_prefill: layer %d: L = %d tokens outside "
                  "1..max_tokens (%d)",
                  layer, L, f->max_tokens);
  if (layer > 0 && L != m->prompt_len)
    return rt_err(ctx, XKV_ERR_INVALID,
                  "xkv_mla_prefill: layer %d has %d tokens, layer 0 had %d",
                  layer, L, m->prompt_len);
  xkv_mla_layer *y = &m->layers[layer];
  int g = layer / f->group;
  xkv_mla_group *gr = &m->groups[g];
  gr->exact = f->exact || short_prompt(f, g, L);
  size_t lat = (size_t)f->kv_lora_rank;
  size_t rows = (size_t)f->max_tokens * m->elem;
  xkv_status s = xkv_alloc(ctx, rows * lat, &y->cx);
  s = s ? s : xkv_alloc(ctx, rows * XKV_MLA_P, &y->kpe);
  s = s ? s : store_token_rows(m, y, c_kv, k_pe, L, 0, gr->exact);
  if (!s && !gr->exact) {
    s = xkv_alloc(ctx, (size_t)L * lat * 4, (void **)&y->stage);
    s = s ? s : xkv_copy_d2d(ctx, y->stage, c_kv, (size_t)L * lat * 4, NULL);
  }
  if (s) {
    free_layer(m, y);
    return s;
  }
  m->prompt_len = L;
  y->prefilled = 1;
  y->len = L;
  m->next_layer++;
  if (gr->exact || layer != group_first(m, g) + group_size(f, g) - 1)
    return XKV_OK;
  char where[96];
  snprintf(where, sizeof where,
           "xkv_mla_prefill: layer %d completes group %d (layers %d-%d)", layer,
           g, group_first(m, g), layer);
  s = compress(m, g, where);
  if (s) { /* the group stays staged but for this layer: retry it */
    free_layer(m, y);
    y->prefilled = 0;
    y->len = 0;
    m->next_layer--;
  }
  return s;
}

xkv_status xkv_mla_append(xkv_mla_cache *m, int layer, const float *c_kv,
                          const float *k_pe) {
  if (!m)
    return XKV_ERR_INVALID;
  if (!c_kv || !k_pe)
    return rt_err(m->ctx, XKV_ERR_INVALID, "xkv_mla_append: NULL c_kv or k_pe");
  if (layer < 0 || layer >= m->cfg.n_layers || !m->layers[layer].prefilled)
    return rt_err(m->ctx, XKV_ERR_INVALID,
                  "xkv_mla_append: layer %d has no prefill yet (or is out of "
                  "0..%d)",
                  layer, m->cfg.n_layers - 1);
  xkv_mla_layer *y = &m->layers[layer];
  if (y->len >= m->cfg.max_tokens)
    return rt_err(m->ctx, XKV_ERR_INVALID,
                  "xkv_mla_append: layer %d is full (max_tokens %d)", layer,
                  m->cfg.max_tokens);
  xkv_status s = store_token_rows(m, y, c_kv, k_pe, 1, y->len, 1);
  y->len += !s;
  return s;
}

/* The paper's accounting over groups at ranks rank[g] (> 0 compressed, 0
 * exact, < 0 staged in f32) with len[l] tokens in layer l of a prompt of
 * L: the one formula behind both stats calls. */
static void account(const xkv_mla_config *f, size_t elem, int L,
                    const int *rank, const int *len, xkv_mla_stats *o) {
  uint64_t R = (uint64_t)f->kv_lora_rank, P = XKV_MLA_P, lat = 0;
  int ng = (f->n_layers + f->group - 1) / f->group;
  memset(o, 0, sizeof *o);
  o->rank_min = INT32_MAX;
  for (int g = 0; g < ng; g++) {
    int r = rank[g], W = group_size(f, g);
    o->groups_exact += !r && !f->exact;
    if (r > 0) {
      o->groups_compressed++;
      lat += ((uint64_t)L * r + (uint64_t)W * r * R) * elem;
      o->rank_min = r < o->rank_min ? r : o->rank_min;
      o->rank_max = r > o->rank_max ? r : o->rank_max;
    }
    for (int l = g * f->group; l < g * f->group + W; l++) {
      uint64_t n = (uint64_t)len[l], ex = r > 0 ? n - (uint64_t)L : n;
      lat += r < 0 ? n * R * 4 : ex * R * elem;
      o->rope_bytes += n * P * elem;
      o->exact_bytes += n * (R + P) * 2;
    }
  }
  if (!o->groups_compressed)
    o->rank_min = 0;
  o->bytes = lat + o->rope_bytes;
  o->ratio = o->bytes ? (double)o->exact_bytes / o->bytes : 0;
  uint64_t ex_lat = o->exact_bytes / (R + P) * R;
  o->ratio_latent = lat ? (double)ex_lat / lat : 0;
  o->tokens = len[0];
  o->prompt_tokens = L;
}

static xkv_status with_arrays(xkv_context *ctx, const xkv_mla_config *f,
                              int **rank, int **len) {
  *rank = calloc((size_t)f->n_layers, sizeof **rank); /* >= groups */
  *len = calloc((size_t)f->n_layers, sizeof **len);
  if (*rank && *len)
    return XKV_OK;
  free(*rank);
  free(*len);
  return ctx ? rt_err(ctx, XKV_ERR_OUT_OF_MEMORY, "xkv_mla stats: no memory")
             : XKV_ERR_OUT_OF_MEMORY;
}

xkv_status xkv_mla_get_stats(const xkv_mla_cache *m, xkv_mla_stats *out) {
  if (!m || !out)
    return XKV_ERR_INVALID;
  int *rank, *len;
  xkv_status s = with_arrays(NULL, &m->cfg, &rank, &len);
  if (s)
    return s;
  for (int g = 0; g < m->n_groups; g++)
    rank[g] = m->groups[g].rank    ? m->groups[g].rank
              : m->groups[g].exact ? 0
                                   : -1;
  for (int l = 0; l < m->cfg.n_layers; l++)
    len[l] = m->layers[l].len;
  account(&m->cfg, m->elem, m->prompt_len, rank, len, out);
  free(rank);
  free(len);
  return XKV_OK;
}

xkv_status xkv_mla_stats_model(xkv_context *ctx, const xkv_mla_config *cfg,
                               int prompt, int appended, xkv_mla_stats *out) {
  if (!ctx)
    return XKV_ERR_INVALID;
  if (!cfg || !out)
    return bad(ctx, "xkv_mla_stats_model", "cfg and out must not be NULL");
  xkv_status s = check_config(ctx, "xkv_mla_stats_model", cfg);
  if (s)
    return s;
  if (cfg->policy != XKV_RANK_FIXED && !cfg->exact)
    return bad(ctx, "xkv_mla_stats_model",
               "the model needs XKV_RANK_FIXED (an energy rank depends on "
               "the data)");
  if (prompt < 1 || appended < 0 || prompt + appended > cfg->max_tokens)
    return rt_err(ctx, XKV_ERR_INVALID,
                  "xkv_mla_stats_model: prompt %d + appended %d must fit "
                  "1..max_tokens (%d)",
                  prompt, appended, cfg->max_tokens);
  int *rank, *len;
  s = with_arrays(ctx, cfg, &rank, &len);
  if (s)
    return s;
  int ng = (cfg->n_layers + cfg->group - 1) / cfg->group;
  for (int g = 0; g < ng; g++)
    rank[g] = cfg->exact || short_prompt(cfg, g, prompt) ? 0 : cfg->rank;
  for (int l = 0; l < cfg->n_layers; l++)
    len[l] = prompt + appended;
  account(cfg, cfg->dtype == XKV_F32 ? 4 : 2, prompt, rank, len, out);
  free(rank);
  free(len);
  return XKV_OK;
}
