/* The Llama forward pass on the CPU (OpenBLAS): a batched prefill that
 * computes exact causal attention over the prompt and hands each layer's
 * pre-RoPE keys and values to the cache, and a one-token decode step that
 * attends through the cache. */
#ifndef ENG_FORWARD_H
#define ENG_FORWARD_H

#include "kvcache.h"
#include "model.h"

typedef void (*eng_progress_fn)(void *user, int done, int total);

typedef struct {
  const eng_model *m;
  int rows; /* sequences one decode step may carry */
  float *x, *xb, *xb2, *hb, *hb2, *q, *k, *v, *att;
  double t_attn; /* seconds inside cache attention during decode */
  double t_decode;
} eng_state;

int eng_state_init(eng_state *s, const eng_model *m, eng_err *err);
/* A state that decodes up to `rows` sequences per step. */
int eng_state_init_rows(eng_state *s, const eng_model *m, int rows,
                        eng_err *err);
void eng_state_free(eng_state *s);

/* tokens[0..n) at positions 0..n-1; logits of the last position go to
 * logits[vocab] (when not NULL). progress gets (layers done, layers). */
int eng_prefill(eng_state *s, eng_kv *kv, const int *tokens, int n,
                float *logits, eng_progress_fn progress, void *user,
                eng_err *err);
/* One token at position pos (the cache holds positions 0..pos-1). */
int eng_decode(eng_state *s, eng_kv *kv, int token, int pos, float *logits,
               eng_err *err);
/* One step of n sequences (n <= s->rows), each its own cache, together:
 * the projections and the feed-forward as n-row GEMMs, attention through
 * eng_kv_attention_batch. Token b at position pos[b]; logits [n, vocab]
 * (may be NULL). With n = 1 it is eng_decode. */
int eng_decode_batch(eng_state *s, eng_kv *const *kvs, const int *tokens,
                     const int *pos, int n, float *logits, eng_err *err);

#endif
