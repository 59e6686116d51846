/* Internals of the xKV cache (xkv_cache*.c): one cache per model; layers
 * are grouped by W; each group holds the shared token factors A_k, A_v,
 * each layer its per-head factors B_k, B_v and its exact tokens. */
#ifndef XKV_CACHE_INT_H
#define XKV_CACHE_INT_H

#include "internal.h"

/* randomized SVD oversampling (Halko et al.): sketch r + p columns */
#define XKV_OVERSAMPLE 10
/* XKV_SVD_AUTO takes the Gram route only up to this many features F: its
 * host eigensolver grows as F^3 (ssyevr for 384 vectors here: 0.3 s at
 * F = 2048, 3.3 s at 4096, where the randomized SVD is as fast on this CPU
 * and much faster on a GPU) */
#define XKV_GRAM_MAX_F 2048
/* decode: splits per source (compressed prompt, exact rows) and in all */
#define XKV_SOURCE_SPLITS 64
#define XKV_MAX_SPLITS (2 * XKV_SOURCE_SPLITS)
/* xkv_attention_batch: partial columns per query head, three sources (the
 * compressed prompts, SR's rebuilt rows, the exact tails), since one
 * batch may mix sequences whose prompts decode each way */
#define XKV_BATCH_LDO (3 * XKV_SOURCE_SPLITS)
/* the split kernels' default GQA tile (BLOCK_G in kernels.xk) */
#define XKV_DECODE_BLOCK_G 8
/* selective reconstruction: tokens per chunk (the kernels' CHUNK) */
#define XKV_SR_CHUNK 8

typedef struct {
  int L;              /* prompt tokens */
  int rank_k, rank_v; /* 0 until compressed */
  void *ak, *av;      /* [L, rank] storage dtype */
  int exact;          /* 1: its layers keep the prompt exact in kx, vx (a prompt
                         shorter than the fixed ranks; see xkv_cache_prefill) */
  /* the single-pass decode kernel for the ranks lr1_rk, lr1_rv (NULL: none
   * holds them; xkv_cache_lr1_find) */
  xkv_kernel *lr1;
  int lr1_rk, lr1_rv;
} xkv_group;

/* Selective reconstruction state of one layer (xkv_cache_sr.c). Rows of
 * kr/vr per KV head: nfix exact rows (the local window, then the outlier
 * chunks) and nsel slots of CHUNK rows, the reuse cache of rebuilt chunks. */
typedef struct {
  int nsc;         /* selectable chunks: whole chunks before the local window */
  int nout, nsel;  /* outlier chunks, chunks selected per step (per KV head) */
  int nfix;        /* local window tokens + nout * CHUNK */
  void *lm;        /* landmarks [nsc, Hkv, d] storage dtype, post-RoPE */
  void *kr, *vr;   /* [nfix + nsel * CHUNK, Hkv, d] storage dtype */
  int *outliers;   /* host [Hkv, nout] chunk ids */
  int *slot_chunk; /* host [Hkv, nsel]: chunk held by each slot, -1 none */
  int *chunk_slot; /* host [Hkv, nsc]: its slot, -1 none, -2 outlier */
  /* the device path's state (xkv_cache_sr_dev.c, one allocation at tot):
   * hits and misses so far [Hkv, 2] i64, the tables slot_chunk and
   * chunk_slot above on the device, the last step's misses and hits [2,
   * Hkv], its (head, chunk, slot) lists [Hkv, nsel, 3], and the kernel's
   * scratch for the keys [Hkv, nsc], the free slots [Hkv, nsel] and the
   * top-k's histogram [Hkv, 256] */
  int64_t *tot;
  int *sc_dev, *cs_dev, *cnt, *list, *key, *fre, *hist;
} xkv_sr_layer;

typedef struct {
  int prefilled;
  int len;       /* prompt + appended tokens */
  void *bk, *bv; /* [Hkv, rank, d] storage dtype, once compressed */
  void *kx, *vx; /* exact tokens [max_tokens, Hkv, d] storage dtype;
                    keys post-RoPE */
  int n_exact;
  float *stage_k, *stage_v; /* f32 [L, Hkv*d] until the group compresses */
  xkv_sr_layer sr;          /* lm NULL: dense decode */
} xkv_layer;

/* the kernels a cache launches */
typedef struct {
  xkv_kernel *gemm_f32, *gemm_out; /* f32 -> f32, f32 -> storage dtype */
  xkv_kernel *sumsq, *softmax, *scores_exact, *sr_rebuild;
  xkv_kernel *sr_select, *sr_rebuild_listed; /* SR on the device */
  xkv_kernel *rows, *rows_f32; /* xkv_rows_<dtype>, xkv_rows_f32 */
  xkv_kernel *decode_lr, *decode_exact, *combine; /* flash-decoding */
  xkv_kernel *decode_exact_batch;                 /* xkv_attention_batch */
} xkv_cache_kernels;

struct xkv_cache {
  xkv_context *ctx;
  xkv_cache_config cfg;
  size_t elem; /* bytes per stored element */
  int units;   /* the device's multiprocessors or CPU threads */
  xkv_device_kind kind;
  int n_groups, next_layer, prompt_len;
  int sr_resume; /* 1 + the layer whose sr_prepare failed; 0: none */
  xkv_group *groups;
  xkv_layer *layers;
  xkv_cache_kernels k;
  float *cos, *sin; /* device [max_tokens, d/2] */
  /* attention scratch: the query [Hq, d], scores [Hq, max_tokens], and the
   * split partials: outputs [Hq, XKV_MAX_SPLITS, d], max and sum [Hq,
   * XKV_MAX_SPLITS] */
  float *q, *s, *po, *pm, *pl;
  /* selective reconstruction: the (head, chunk, slot) list of one step
   * (host and device, sr_cap entries), landmark probabilities on the host
   * [Hq, nsc] (sr_probs_cap floats), counters for xkv_cache_stats */
  int *sr_list, *sr_list_dev, sr_cap;
  float *sr_probs;
  size_t sr_probs_cap;
  int sr_steps, sr_last_hit, sr_last_rebuilt;
  uint64_t sr_hit, sr_rebuilt;
  /* 1: SR selects on the host (XKV_SR_SELECT=host; the CPU device's
   * default), as it did before the device path; 0: on the device, the
   * layer of the last step in sr_last_layer (its counts stay there) */
  int sr_host, sr_last_layer;
  /* xkv_attention_batch's scratch while this cache heads a batch
   * (xkv_cache_batch.c), for up to bcap sequences: split partials [bcap
   * Hq, XKV_BATCH_LDO(, d)] and the launches' tables, staged on the host
   * (btab) and read by the kernels (btab_dev) */
  int bcap;
  float *bpo, *bpm, *bpl;
  void *btab, *btab_dev;
};

/* xkv_cache_compress.c: compresses group g from its layers' staged K/V
 * (then frees the staging); ranks from the cache's policy. */
xkv_status xkv_cache_compress_group(xkv_cache *c, int g, const char *where);

/* xkv_cache_compress.c: one truncated SVD of X = [x_0 | ... | x_{nx-1}]
 * (f32 device blocks [L, hd], hd = n_kv_heads * head_dim of c->cfg) by the
 * cache's route and rank policy into a [L, rank] and b[l] [n_kv_heads,
 * rank, head_dim] in the storage dtype; *rank in: the fixed rank or cap,
 * out: the rank kept. What xkv_cache_compress_group does for K and V, and
 * the MLA cache for its latents (through a factorizer). On failure the
 * caller frees what a_out and b_out hold. */
xkv_status xkv_cache_factorize(xkv_cache *c, const char *where, float *const *x,
                               int nx, int L, int *rank, void **a_out,
                               void **b_out, uint64_t *seed);
/* xkv_cache.c: a cache that holds only what xkv_cache_factorize reads (the
 * context, cfg's rank and SVD settings, the device, the GEMM and sumsq
 * kernels), for cfg's n_kv_heads x head_dim features per layer: how the
 * MLA cache reuses the factorization. Free it with free(). */
xkv_status xkv_cache_factorizer(xkv_context *ctx, const xkv_cache_config *cfg,
                                xkv_cache **out);

/* xkv_cache_compress.c: 1 when the Gram route (X^T X and a host
 * eigensolver) is estimated cheaper than the randomized SVD for a group of
 * W layers, X [L, F], rank r, on a device of this kind with `units` (CPU
 * pool threads or SMs) and a host of host_cores cores: XKV_SVD_AUTO. */
int xkv_cache_gram_cheaper(xkv_device_kind kind, int units, int host_cores,
                           int L, int F, int W, int r);

/* xkv_cache_sr.c: selective reconstruction. sr_prepare builds layer l's
 * landmarks, outliers and exact rows after its group compressed (when SR
 * applies to the prompt length); sr_select scores the landmarks with the
 * loaded query (c->q), picks each KV head's chunks and rebuilds the ones
 * the reuse cache misses into y->sr.kr/vr; sr_free releases the state. */
xkv_status xkv_cache_sr_prepare(xkv_cache *c, int layer, const char *where);
xkv_status xkv_cache_sr_select(xkv_cache *c, int layer);
void xkv_cache_sr_free(xkv_cache *c, xkv_layer *y);
/* xkv_cache_sr.c: empties layer l's reuse cache (the next step rebuilds
 * every selected chunk); sr_slots copies its slot table [Hkv, nsel] (the
 * chunk each slot holds, -1 none) to host memory, from wherever the
 * selection runs. */
xkv_status xkv_cache_sr_forget(xkv_cache *c, int layer);
xkv_status xkv_cache_sr_slots(xkv_cache *c, int layer, int *slot_chunk);

/* xkv_cache_sr_dev.c: the device path of SR. dev_init allocates layer l's
 * device state and loads its tables from the host's; dev_select picks and
 * rebuilds from the landmark probabilities in c->s; dev_stats adds every
 * layer's hits and misses so far and the last step's to the given ones. */
xkv_status xkv_cache_sr_dev_init(xkv_cache *c, int layer);
xkv_status xkv_cache_sr_dev_select(xkv_cache *c, int layer);
xkv_status xkv_cache_sr_dev_stats(const xkv_cache *c, uint64_t *hit,
                                  uint64_t *rebuilt, int *last_hit,
                                  int *last_rebuilt);

/* xkv_cache_attn.c: decode splits for T tokens of one source on a device
 * of `units` SMs or CPU threads (also what bench/decode_model models). */
int xkv_cache_nsplits(int units, int n_heads, int n_kv_heads, int T);
/* xkv_cache_lr1.c: the single-pass dense decode kernel's tables (one per
 * target, head dim and rank bucket, XKV_LR1_HB KV heads per program):
 * lr1_register adds a device kind's tables for head dim d; lr1_find sets
 * gr->lr1 to the smallest bucket holding the group's ranks, or NULL when
 * none does or the cache's dtype or GQA group has none (the three-sweep
 * xkv_decode_lr_* serves them). */
#define XKV_LR1_HB 2
xkv_status xkv_cache_lr1_register(xkv_context *ctx, int gpu, int d);
xkv_kernel *xkv_cache_lr1_find(xkv_cache *c, xkv_group *gr);
/* ... the batch form (xkv_decode_lr1_batch_*) for ranks up to rk, rv */
xkv_kernel *xkv_cache_lr1_batch_find(xkv_cache *c, int rk, int rv);
/* ... for the single-pass kernel (xkv_decode_lr1_*), whose programs cover
 * hb KV heads each and hold one SM each (B_k resident in shared memory):
 * one wave, as few B_k loads as fill the device. */
int xkv_cache_nsplits_lr1(int units, int n_kv_heads, int hb, int T);
/* xkv_cache_attn.c, shared with xkv_cache_batch.c: a layer's split
 * partials (outputs [rows, ldo, d], max and sum [rows, ldo]); the checks
 * of xkv_attention's layer and pos (errors begin with `where`); the query
 * q [Hq, d] (device) rotated at pos and scaled by 1/sqrt(d) into c->q, in
 * the cache's column order; the compressed prompt of layer y into splits
 * 0..ns-1 of p by kernel k (the three-sweep c->k.decode_lr or a single-pass
 * one, xkv_cache_lr1_find); the combine of rows x ns partials into out
 * [rows, d]. */
typedef struct {
  float *o, *m, *l;
  int ldo;
} xkv_partials;
xkv_status xkv_cache_attn_ready(xkv_cache *c, int layer, int pos,
                                const char *where);
xkv_status xkv_cache_load_query(xkv_cache *c, const float *q, int pos);
xkv_status xkv_cache_split_lr(xkv_cache *c, const xkv_group *gr,
                              const xkv_layer *y, xkv_kernel *k, int ns,
                              const xkv_partials *p);
xkv_status xkv_cache_combine(xkv_cache *c, const xkv_partials *p, int rows,
                             int ns, float *out);
/* ... for a kernel of `progs` programs per split that fills the device in
 * one wave (the single-pass and the MLA split kernels) */
int xkv_cache_nsplits_wave(int units, int progs, int T);
/* xkv_cache_attn.c: S[h*G+g, n] = q . K[n, h] over T exact rows K [T, Hkv,
 * d] (row stride lds of S), and the row softmax of S [rows, n] in place. */
xkv_status xkv_cache_scores_exact(xkv_cache *c, const void *k, int T, float *s,
                                  int lds);
xkv_status xkv_cache_softmax(xkv_cache *c, float *s, int rows, int n);

/* xkv_cache.c helpers shared by the files */
/* n values between f32 and the storage dtype (host memory) */
void xkv_cache_to_storage(const xkv_cache *c, const float *x, void *out,
                          size_t n);
void xkv_cache_from_storage(const xkv_cache *c, const void *x, float *out,
                            size_t n);
int xkv_cache_group_first(const xkv_cache *c, int g);
int xkv_cache_group_size(const xkv_cache *c, int g);
xkv_status xkv_cache_gemm(xkv_cache *c, xkv_kernel *k, const void *a, int sam,
                          int sak, const void *b, xkv_dtype bdt, int sbk,
                          int sbn, void *out, xkv_dtype cdt, int ldc, int m,
                          int n, int kk, float beta);
/* Rows x [T, H, d] (f32, device) into out (the dtype of kernel k: c->k.rows
 * or c->k.rows_f32): columns in the kernels' pair order when `pairs` and
 * the cache uses XKV_ROPE_HALF, RoPE at position pos0 + t when `rot`, then
 * times scale. On the device, so decode needs no host round trip. */
xkv_status xkv_cache_rows(xkv_cache *c, xkv_kernel *k, const float *x,
                          void *out, int T, int H, int pos0, int pairs, int rot,
                          float scale);

#endif
