/* Plain C references for the xKV cache tests and benches: exact SVD
 * (LAPACKE), factor readback, attention over given K/V. */
#ifndef XKV_REF_H
#define XKV_REF_H

#include "xkv.h"

/* splitmix64 uniform in [0, 1) and a standard normal */
double xkv_ref_urand(uint64_t *s);
double xkv_ref_gauss(uint64_t *s);
/* The best rank-r Frobenius error of X [m, n] (exact SVD, LAPACKE_sgesvd)
 * and ||X||_F; sigma (min(m,n) values) when not NULL. */
int xkv_ref_svd(const float *x, int m, int n, int r, double *best_err,
                double *norm, double *sigma);
/* Layer l's pre-RoPE keys and values [L, Hkv, d] rebuilt from the cache's
 * factors (A B_l, f32), keys in the cache's pair order (the input order
 * for interleaved RoPE); -1 on failure. */
int xkv_ref_reconstruct(xkv_cache *c, int layer, float *k, float *v);
/* n storage-dtype elements of device memory dev as f32 host memory (to
 * free); NULL on failure. */
float *xkv_ref_fetch(xkv_cache *c, const void *dev, size_t n);
/* The ranks the cache chose for layer's group (0 before compression). */
void xkv_ref_group_ranks(const xkv_cache *c, int layer, int *rank_k,
                         int *rank_v);
/* softmax(q_rot K_rot^T / sqrt(d)) V for one decode step: k [T, Hkv, d]
 * pre-RoPE at positions 0..T-1, q [Hq, d] pre-RoPE at pos; interleaved
 * RoPE with theta. out [Hq, d]. */
void xkv_ref_attention(const float *q, const float *k, const float *v, int T,
                       int hq, int hkv, int d, int pos, double theta,
                       float *out);
/* The same over a subset of the tokens: KV head h attends the T tokens
 * tok[h * T + t] (rows of k/v, at their own positions). */
void xkv_ref_attention_sel(const float *q, const float *k, const float *v,
                           const int *tok, int T, int hq, int hkv, int d,
                           int pos, double theta, float *out);
/* Interleaved RoPE of x [d] at pos. */
void xkv_ref_rope(float *x, int d, int pos, double theta);
/* ||a - b|| / ||b|| and cosine over n values */
double xkv_ref_rel_err(const float *a, const float *b, size_t n);
double xkv_ref_cosine(const float *a, const float *b, size_t n);

#endif
