/* Internals of the MLA latent cache (xkv_cache_mla*.c): layers grouped by
 * W; each group holds the shared factor A of its prompt latents, each
 * layer its B_l, its exact latent rows and every token's k_pe. */
#ifndef XKV_CACHE_MLA_INT_H
#define XKV_CACHE_MLA_INT_H

#include "xkv_cache_int.h"

/* the kernels' k_pe width (P in kernels.xk) and widest decode bucket */
#define XKV_MLA_P 64
#define XKV_MLA_MAX_W 1024
/* heads per split program (BLOCK_H of xkv_mla_decode_*) */
#define XKV_MLA_BLOCK_H 16

typedef struct {
  int L;           /* prompt tokens */
  int rank;        /* 0 until compressed */
  int exact;       /* 1: its layers keep the prompt exact in cx */
  void *a;         /* [L, rank] storage dtype */
  xkv_kernel *dec; /* xkv_mla_decode_* of the rank's width bucket */
} xkv_mla_group;

typedef struct {
  int prefilled;
  int len;      /* prompt + appended tokens */
  int n_exact;  /* rows of cx */
  void *b;      /* B_l [rank, R] storage dtype, once compressed */
  void *cx;     /* exact latent rows [max_tokens, R] storage dtype */
  void *kpe;    /* k_pe of every token [max_tokens, P] storage dtype */
  float *stage; /* f32 [L, R] until the group compresses */
} xkv_mla_layer;

struct xkv_mla_cache {
  xkv_context *ctx;
  xkv_mla_config cfg;
  xkv_cache *fz; /* the factorization (xkv_cache_factorizer) */
  size_t elem;
  int units;
  int gpu;
  int n_groups, next_layer, prompt_len;
  xkv_mla_group *groups;
  xkv_mla_layer *layers;
  xkv_kernel *rows, *dec_exact, *combine, *gemm_b;
  /* attention scratch: the rank-space query q_r [H, wmax], the combined
   * rank-space output U [H, wmax], the split partials O [H,
   * XKV_MAX_SPLITS, ldp], their max and sum [H, XKV_MAX_SPLITS] */
  int wmax, ldp;
  float *qr, *u, *po, *pm, *pl;
};

/* xkv_cache_mla.c: the decode kernel of the smallest width bucket >= w,
 * or NULL (an error set) when w exceeds XKV_MLA_MAX_W */
xkv_kernel *xkv_mla_decode_kernel(xkv_mla_cache *m, int w, const char *where);

#endif
