/* The KV cache seen by the forward pass. Keys arrive pre-RoPE and queries
 * pre-RoPE: the cache owns RoPE (like xkv_cache_*), so the exact and the
 * compressed cache take the same inputs. */
#ifndef ENG_KVCACHE_H
#define ENG_KVCACHE_H

#include "err.h"
#include "model.h"

#include <stdint.h>

typedef struct {
  uint64_t bytes, exact_bytes; /* exact_bytes: an f16 exact cache */
  double ratio;                /* exact_bytes / bytes */
  int tokens, rank_k_min, rank_k_max, rank_v_min, rank_v_max;
  double sr_hit_rate; /* selective reconstruction: reused chunks / selected */
  /* xKV: layer groups compressed, and kept exact because the prompt is
   * shorter than the fixed ranks */
  int groups_compressed, groups_exact;
} eng_kv_stats;

typedef struct eng_kv eng_kv;
typedef struct {
  /* the whole prompt of one layer: k_pre, v [n, n_kv_heads, head_dim] */
  int (*prefill)(eng_kv *kv, int layer, const float *k_pre, const float *v,
                 int n, eng_err *err);
  int (*append)(eng_kv *kv, int layer, const float *k_pre, const float *v,
                eng_err *err);
  /* q [n_heads, head_dim] pre-RoPE at `pos`; out [n_heads, head_dim] */
  int (*attention)(eng_kv *kv, int layer, const float *q, int pos, float *out,
                   eng_err *err);
  int (*stats)(eng_kv *kv, eng_kv_stats *out, eng_err *err);
  void (*destroy)(eng_kv *kv);
  /* May be NULL: attention of n caches of this kind (kvs[0]->ops is
   * these ops) in one call, q and out [n, n_heads, head_dim], pos [n]. */
  int (*attention_batch)(eng_kv *const *kvs, int n, int layer, const float *q,
                         const int *pos, float *out, eng_err *err);
} eng_kv_ops;

struct eng_kv {
  const eng_kv_ops *ops;
};

/* Settings of an xKV cache (see xkv_cache_config). */
typedef struct {
  const char *device; /* "auto", "cpu", "cuda" */
  int group;          /* W */
  int rank_k, rank_v; /* fixed ranks when > 0 */
  float ratio;        /* else ranks reaching this compression ratio */
  int f32;            /* store factors in f32 (default f16) */
  uint64_t seed;
  int sr_budget; /* > 0: selective reconstruction with this token budget */
} eng_xkv_opts;

int eng_kv_exact_create(const eng_config *c, int max_tokens, eng_kv **out,
                        eng_err *err);
/* Fails with a clear message when the runtime has no xKV cache. */
int eng_kv_xkv_create(const eng_config *c, int max_tokens,
                      const eng_xkv_opts *o, eng_kv **out, eng_err *err);
/* An xKV cache in the runtime context of `share` (an xKV cache), so that
 * both attend in one eng_kv_attention_batch call; the context lives until
 * the last cache using it is destroyed, in any order. */
int eng_kv_xkv_create_shared(const eng_kv *share, const eng_config *c,
                             int max_tokens, const eng_xkv_opts *o,
                             eng_kv **out, eng_err *err);
/* Sliding-window layers exact (their window), global layers in xKV. */
int eng_kv_split_create(const eng_config *c, int max_tokens,
                        const eng_xkv_opts *o, eng_kv **out, eng_err *err);
/* The xKV part of a split cache; NULL for other caches. */
const eng_kv *eng_kv_split_global(const eng_kv *kv);
/* "exact" or "xkv" (o used for xkv; xkv on a model with sliding-window
 * layers compresses only its global layers). */
int eng_kv_create(const char *kind, const eng_config *c, int max_tokens,
                  const eng_xkv_opts *o, eng_kv **out, eng_err *err);
/* n caches of one kind for a batch of sequences, cache b holding up to
 * max_tokens[b]; xKV caches share one runtime context. On failure none is
 * left and out[] is all NULL. */
int eng_kv_create_batch(const char *kind, const eng_config *c, int n,
                        const int *max_tokens, const eng_xkv_opts *o,
                        eng_kv **out, eng_err *err);
/* Decode attention of n sequences, each its own cache, at one layer: q and
 * out [n, n_heads, head_dim], pos [n]. One call of the caches' batch op
 * when they all have one (xKV: xkv_attention_batch, one launch per source
 * for the whole batch), else one attention call per cache. */
int eng_kv_attention_batch(const eng_config *c, eng_kv *const *kvs, int n,
                           int layer, const float *q, const int *pos,
                           float *out, eng_err *err);
/* The device the xKV cache runs on ("cpu", a GPU name), for reports. */
const char *eng_kv_xkv_device(const eng_kv *kv);

/* Rank of one group of `w` layers (features = w * n_kv_heads * head_dim)
 * over n tokens that reaches `ratio` against the exact cache: the low-rank
 * storage r * (n + features) equals n * features / ratio, so groups of any
 * width store the same per layer. At least 1, at most min(n, features). */
int eng_rank_for_ratio(int n, int features, float ratio);

void eng_rope(float *x, int n_heads, int head_dim, int pos, float theta,
              int neox);
/* Keys layer l attends to (0: all) and its RoPE base. */
int eng_layer_window(const eng_config *c, int layer);
float eng_layer_theta(const eng_config *c, int layer);
/* RoPE of layer l at pos on n_heads heads of x. */
void eng_rope_layer(const eng_config *c, int layer, float *x, int n_heads,
                    int pos);

#endif
