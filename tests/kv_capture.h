/* Real KV caches for the xKV accuracy test and bench: runs a model over
 * real text with the engine's forward pass and records every layer's
 * pre-RoPE keys and values, then one decode step's queries. */
#ifndef XKV_KV_CAPTURE_H
#define XKV_KV_CAPTURE_H

#include <stddef.h>

typedef struct {
  int n_layers, n_heads, n_kv_heads, head_dim;
  int L;        /* prompt tokens; the decode step sits at position L */
  float theta;  /* RoPE base */
  float *k, *v; /* [n_layers][L + 1][n_kv_heads][head_dim], pre-RoPE */
  float *q;     /* [n_layers][n_heads][head_dim]: the decode step, pre-RoPE */
} kv_capture;

/* model + llama2.c tokenizer (tok may be NULL for GGUF), the first L
 * tokens of text. 0, or -1 with err filled. */
int kv_capture_run(const char *model, const char *tok, const char *text, int L,
                   kv_capture *cap, char *err, size_t nerr);
void kv_capture_free(kv_capture *cap);

static inline float *kv_capture_k(const kv_capture *c, int layer) {
  return c->k + (size_t)layer * (c->L + 1) * c->n_kv_heads * c->head_dim;
}
static inline float *kv_capture_v(const kv_capture *c, int layer) {
  return c->v + (size_t)layer * (c->L + 1) * c->n_kv_heads * c->head_dim;
}
static inline float *kv_capture_q(const kv_capture *c, int layer) {
  return c->q + (size_t)layer * c->n_heads * c->head_dim;
}

#endif
