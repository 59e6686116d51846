/* A Llama-family model held as f32 weights, row-major [out, in] (so
 * out[i] = sum_j W[i * in + j] * x[j]), loaded from a llama2.c checkpoint or
 * a GGUF file (quantized tensors dequantized at load). Gemma 3 and Qwen2
 * are Llama variants: the fields after norm_eps and the optional weights of
 * eng_layer say how they differ (zero / NULL: plain Llama). */
#ifndef ENG_MODEL_H
#define ENG_MODEL_H

#include "err.h"

#include <stddef.h>

typedef struct eng_tokenizer eng_tokenizer;

typedef struct {
  int dim, hidden_dim, n_layers, n_heads, n_kv_heads, head_dim;
  int vocab_size, seq_len;
  float rope_theta, norm_eps;
  int rope_neox;        /* RoPE pairs (i, i + head_dim/2), not (2i, 2i+1) */
  int sliding_window;   /* > 0: sliding-window layers see this many keys */
  int swa_period;       /* layer l is global when (l + 1) % period == 0;
                           0 with a window: every layer slides */
  float rope_theta_swa; /* RoPE base of the sliding-window layers */
  float embed_scale;    /* embeddings times this (0: 1) */
  int gelu;             /* GeGLU (tanh GELU) instead of SwiGLU */
} eng_config;

typedef struct {
  const float *rms_att, *wq, *wk, *wv, *wo; /* wq [n_heads*hd, dim] ... */
  const float *rms_ffn, *w1, *w2, *w3;      /* w1/w3 [hidden, dim] */
  const float *bq, *bk, *bv;                /* Qwen2: projection biases */
  const float *q_norm, *k_norm;             /* Gemma 3: per-head RMSNorm */
  const float *post_att, *post_ffn;         /* Gemma 3: sublayer out norms */
} eng_layer;

typedef struct {
  eng_config cfg;
  const float *tok_emb; /* [vocab, dim] */
  eng_layer *layers;
  const float *rms_final, *wcls; /* wcls [vocab, dim], maybe tok_emb */
  float *arena;                  /* owns every weight */
  eng_tokenizer *tok;            /* GGUF files carry one; else NULL */
  char format[16];               /* "llama2c" or "gguf" */
} eng_model;

/* Picks the format from the file's magic ("GGUF" or a llama2.c header). */
int eng_model_load(const char *path, eng_model *m, eng_err *err);
int eng_model_load_llama2c(const char *path, eng_model *m, eng_err *err);
int eng_model_load_gguf(const char *path, eng_model *m, eng_err *err);
/* The same for a file already in memory (`path` names it in messages):
 * the llama2.c reader copies from buf, the GGUF one takes ownership of it
 * (malloc'ed), even on failure, as eng_gguf_parse does. */
int eng_model_parse_llama2c(const unsigned char *buf, size_t size,
                            const char *path, eng_model *m, eng_err *err);
int eng_model_parse_gguf(unsigned char *buf, size_t size, const char *path,
                         eng_model *m, eng_err *err);
void eng_model_free(eng_model *m);
/* A model and its tokenizer: tok_path (a llama2.c tokenizer file) when
 * given, else the one a GGUF file carries. */
int eng_model_open(const char *path, const char *tok_path, eng_model *m,
                   eng_err *err);

/* Reads a whole file; *buf is malloc'ed (NUL-terminated past size). */
int eng_read_file(const char *path, unsigned char **buf, size_t *size,
                  eng_err *err);

#endif
