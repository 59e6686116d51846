/* Tiny random models of the engine's GGUF architectures (llama, qwen2,
 * gemma3), written as GGUF files, and a naive reference forward pass over
 * the same weights that shares no code with the engine. */
#ifndef XK_TINY_MODEL_H
#define XK_TINY_MODEL_H

#include <stddef.h>

typedef enum { TINY_LLAMA, TINY_QWEN2, TINY_GEMMA3 } tiny_arch;

typedef struct {
  float *attn_norm, *wq, *wk, *wv, *wo, *ffn_norm, *w1, *w2, *w3;
  float *bq, *bk, *bv;      /* qwen2 */
  float *qn, *kn, *pa, *pf; /* gemma3 */
} tiny_layer;

typedef struct {
  tiny_arch arch;
  int dim, hidden, n_layers, n_heads, n_kv_heads, head_dim, vocab, window;
  float theta, theta_swa, eps;
  float *emb, *out_norm; /* emb [vocab, dim], tied output */
  tiny_layer *l;
  float *pool;
} tiny_model;

/* The vocabulary's pieces (SentencePiece, U+2581 for spaces). */
extern const char *const tiny_pieces[];
extern const int tiny_n_pieces;

void tiny_model_init(tiny_model *m, tiny_arch arch, unsigned seed);
void tiny_model_free(tiny_model *m);
/* The model as a GGUF file (malloc'ed), f32 tensors. */
unsigned char *tiny_gguf_write(const tiny_model *m, size_t *size);
/* Logits of the last of tokens[0..n), recomputing every position. */
void tiny_ref_logits(const tiny_model *m, const int *tokens, int n,
                     float *logits);

#endif
