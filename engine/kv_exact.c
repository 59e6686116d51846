/* The exact cache: f32, post-RoPE keys, attention by OpenBLAS sgemv. A
 * sliding-window layer keeps only its window, in a ring (softmax does not
 * care about the order of keys). */
#include "kvcache.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  eng_kv base;
  eng_config c;
  int max_tokens, kv_dim;
  float *k, *v; /* layer l at off[l]: [cap[l]][kv_dim] */
  int *len;     /* per layer: tokens seen */
  int *cap;     /* per layer: slots (its window, or max_tokens) */
  size_t *off;
  float *q, *scores;
} kv_exact;

static int store(kv_exact *e, int layer, const float *k_pre, const float *v,
                 eng_err *err) {
  if (layer < 0 || layer >= e->c.n_layers)
    return eng_fail(err, "exact cache: layer %d out of range", layer);
  int pos = e->len[layer];
  if (pos >= e->max_tokens)
    return eng_fail(err, "exact cache: full (%d tokens)", e->max_tokens);
  size_t at = e->off[layer] + (size_t)(pos % e->cap[layer]) * e->kv_dim;
  memcpy(e->k + at, k_pre, (size_t)e->kv_dim * sizeof(float));
  memcpy(e->v + at, v, (size_t)e->kv_dim * sizeof(float));
  eng_rope_layer(&e->c, layer, e->k + at, e->c.n_kv_heads, pos);
  e->len[layer]++;
  return 0;
}

static int ex_prefill(eng_kv *kv, int layer, const float *k_pre, const float *v,
                      int n, eng_err *err) {
  kv_exact *e = (kv_exact *)kv;
  for (int t = 0; t < n; t++)
    if (store(e, layer, k_pre + (size_t)t * e->kv_dim,
              v + (size_t)t * e->kv_dim, err))
      return -1;
  return 0;
}

static int ex_append(eng_kv *kv, int layer, const float *k_pre, const float *v,
                     eng_err *err) {
  return store((kv_exact *)kv, layer, k_pre, v, err);
}

static int ex_attention(eng_kv *kv, int layer, const float *q, int pos,
                        float *out, eng_err *err) {
  kv_exact *e = (kv_exact *)kv;
  const eng_config *c = &e->c;
  if (layer < 0 || layer >= c->n_layers || e->len[layer] == 0)
    return eng_fail(err, "exact cache: attention on empty layer %d", layer);
  int n = e->len[layer] < e->cap[layer] ? e->len[layer] : e->cap[layer];
  int hd = c->head_dim, rep = c->n_heads / c->n_kv_heads;
  memcpy(e->q, q, (size_t)c->n_heads * hd * sizeof(float));
  eng_rope_layer(c, layer, e->q, c->n_heads, pos);
  const float *K = e->k + e->off[layer], *V = e->v + e->off[layer];
  float scale = 1.0f / sqrtf((float)hd);
  for (int h = 0; h < c->n_heads; h++) {
    int g = h / rep;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n, hd, scale, K + g * hd,
                e->kv_dim, e->q + h * hd, 1, 0.0f, e->scores, 1);
    float mx = e->scores[0], sum = 0;
    for (int t = 1; t < n; t++)
      mx = fmaxf(mx, e->scores[t]);
    for (int t = 0; t < n; t++)
      sum += e->scores[t] = expf(e->scores[t] - mx);
    cblas_sgemv(CblasRowMajor, CblasTrans, n, hd, 1.0f / sum, V + g * hd,
                e->kv_dim, e->scores, 1, 0.0f, out + h * hd, 1);
  }
  return 0;
}

static int ex_stats(eng_kv *kv, eng_kv_stats *s, eng_err *err) {
  kv_exact *e = (kv_exact *)kv;
  memset(s, 0, sizeof *s);
  s->tokens = e->len[0];
  uint64_t elems = 0;
  for (int l = 0; l < e->c.n_layers; l++) {
    int kept = e->len[l] < e->cap[l] ? e->len[l] : e->cap[l];
    elems += 2ull * (uint64_t)kept * (uint64_t)e->kv_dim;
  }
  s->bytes = elems * sizeof(float);
  s->exact_bytes = elems * 2;
  s->ratio = s->bytes ? (double)s->exact_bytes / (double)s->bytes : 1.0;
  s->rank_k_min = s->rank_k_max = s->rank_v_min = s->rank_v_max = e->kv_dim;
  return 0;
}

static void ex_destroy(eng_kv *kv) {
  kv_exact *e = (kv_exact *)kv;
  if (!e)
    return;
  free(e->k);
  free(e->v);
  free(e->len);
  free(e->cap);
  free(e->off);
  free(e->q);
  free(e->scores);
  free(e);
}

static const eng_kv_ops exact_ops = {ex_prefill, ex_append, ex_attention,
                                     ex_stats, ex_destroy};

int eng_kv_exact_create(const eng_config *c, int max_tokens, eng_kv **out,
                        eng_err *err) {
  *out = NULL;
  if (max_tokens <= 0)
    return eng_fail(err, "exact cache: capacity %d", max_tokens);
  kv_exact *e = calloc(1, sizeof *e);
  if (!e)
    return eng_fail(err, "exact cache: out of memory");
  e->base.ops = &exact_ops;
  e->c = *c;
  e->max_tokens = max_tokens;
  e->kv_dim = c->n_kv_heads * c->head_dim;
  size_t L = (size_t)c->n_layers, n = 0;
  e->len = calloc(L, sizeof *e->len);
  e->cap = calloc(L, sizeof *e->cap);
  e->off = calloc(L, sizeof *e->off);
  if (e->len && e->cap && e->off)
    for (size_t l = 0; l < L; l++) {
      int w = eng_layer_window(c, (int)l);
      e->cap[l] = w > 0 && w < max_tokens ? w : max_tokens;
      e->off[l] = n;
      n += (size_t)e->cap[l] * e->kv_dim;
    }
  e->k = malloc(n * sizeof(float));
  e->v = malloc(n * sizeof(float));
  e->q = malloc((size_t)c->n_heads * c->head_dim * sizeof(float));
  e->scores = malloc((size_t)max_tokens * sizeof(float));
  if (!e->len || !e->cap || !e->off || !e->k || !e->v || !e->q || !e->scores) {
    ex_destroy(&e->base);
    return eng_fail(err, "exact cache: out of memory for %d tokens",
                    max_tokens);
  }
  *out = &e->base;
  return 0;
}
