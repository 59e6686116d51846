/* Accuracy of a cache against the exact one on real text (xkv-eval). */
#ifndef ENG_EVAL_H
#define ENG_EVAL_H

#include "forward.h"

/* Teacher forcing: prefill tokens[0..p), then decode tokens[p..n-1) one by
 * one; logits[(n - p) * vocab] predict tokens p..n-1. */
int eng_teacher_force(const eng_model *m, eng_kv *kv, const int *tokens, int p,
                      int n, float *logits, eng_err *err);

/* Mean KL(ref || test) and top-1 agreement over `rows` logit rows. */
void eng_compare_logits(const float *ref, const float *test, int rows,
                        int vocab, double *kl, double *top1);

/* A cache that forwards to `inner` and keeps copies of each layer's
 * prefill K (pre-RoPE) and V, for reconstruction errors. Owns inner. */
int eng_kv_recorder_create(eng_kv *inner, const eng_config *c, eng_kv **out,
                           eng_err *err);
/* The recorded [n, kv_dim] prompt K or V of a layer (NULL before). */
const float *eng_kv_recorded(const eng_kv *rec, int layer, int want_v, int *n);

/* Relative Frobenius error of the best rank-r approximation of the group
 * [X_l0 | ... | X_l(w-1)] (each [n, kv_dim]): sqrt(sum_{i>r} s_i^2 /
 * sum s_i^2), from LAPACK singular values. */
int eng_svd_tail_error(const float *const *layers, int w, int n, int kv_dim,
                       int rank, double *out, eng_err *err);

#endif
