/* Helpers shared by both caches and the forward pass. */
#include "kvcache.h"

#include <math.h>
#include <string.h>

void eng_rope(float *x, int n_heads, int head_dim, int pos, float theta,
              int neox) {
  /* pair i rotates elements (a, b): (2i, 2i+1), or (i, i + d/2) in NEOX */
  int half = head_dim / 2, stride = neox ? half : 1;
  for (int i = 0; i < half; i++) {
    float freq = powf(theta, -(float)(2 * i) / (float)head_dim);
    float ang = (float)pos * freq, cs = cosf(ang), sn = sinf(ang);
    int a = neox ? i : 2 * i;
    for (int h = 0; h < n_heads; h++) {
      float *p = x + h * head_dim + a, x0 = p[0], x1 = p[stride];
      p[0] = x0 * cs - x1 * sn;
      p[stride] = x0 * sn + x1 * cs;
    }
  }
}

int eng_layer_window(const eng_config *c, int layer) {
  if (c->sliding_window <= 0 ||
      (c->swa_period > 0 && (layer + 1) % c->swa_period == 0))
    return 0;
  return c->sliding_window;
}

float eng_layer_theta(const eng_config *c, int layer) {
  return eng_layer_window(c, layer) ? c->rope_theta_swa : c->rope_theta;
}

void eng_rope_layer(const eng_config *c, int layer, float *x, int n_heads,
                    int pos) {
  eng_rope(x, n_heads, c->head_dim, pos, eng_layer_theta(c, layer),
           c->rope_neox);
}

int eng_rank_for_ratio(int n, int features, float ratio) {
  double r = (double)n * features / (ratio * ((double)n + features));
  int k = (int)r, cap = n < features ? n : features;
  return k < 1 ? 1 : k > cap ? cap : k;
}

int eng_kv_create(const char *kind, const eng_config *c, int max_tokens,
                  const eng_xkv_opts *o, eng_kv **out, eng_err *err) {
  if (strcmp(kind, "exact") == 0)
    return eng_kv_exact_create(c, max_tokens, out, err);
  if (strcmp(kind, "xkv") == 0)
    return c->sliding_window > 0 && c->swa_period > 0
               ? eng_kv_split_create(c, max_tokens, o, out, err)
               : eng_kv_xkv_create(c, max_tokens, o, out, err);
  *out = NULL;
  return eng_fail(err, "unknown cache \"%s\" (exact or xkv)", kind);
}

int eng_kv_create_batch(const char *kind, const eng_config *c, int n,
                        const int *max_tokens, const eng_xkv_opts *o,
                        eng_kv **out, eng_err *err) {
  for (int b = 0; b < n; b++)
    out[b] = NULL;
  if (n < 1)
    return eng_fail(err, "a batch of %d caches (at least 1)", n);
  /* a split cache's xKV part is its own: its sequences attend one by one */
  int shared = strcmp(kind, "xkv") == 0 && !(c->sliding_window > 0);
  for (int b = 0; b < n; b++) {
    int rc = shared && b > 0
                 ? eng_kv_xkv_create_shared(out[0], c, max_tokens[b], o,
                                            &out[b], err)
                 : eng_kv_create(kind, c, max_tokens[b], o, &out[b], err);
    if (rc) {
      for (int i = 0; i < b; i++) {
        out[i]->ops->destroy(out[i]);
        out[i] = NULL;
      }
      return -1;
    }
  }
  return 0;
}

int eng_kv_attention_batch(const eng_config *c, eng_kv *const *kvs, int n,
                           int layer, const float *q, const int *pos,
                           float *out, eng_err *err) {
  const eng_kv_ops *ops = kvs[0]->ops;
  int same = n > 1 && ops->attention_batch;
  for (int b = 1; same && b < n; b++)
    same = kvs[b]->ops == ops;
  if (same)
    return ops->attention_batch(kvs, n, layer, q, pos, out, err);
  size_t qd = (size_t)c->n_heads * c->head_dim;
  for (int b = 0; b < n; b++)
    if (kvs[b]->ops->attention(kvs[b], layer, q + qd * b, pos[b], out + qd * b,
                               err))
      return -1;
  return 0;
}
