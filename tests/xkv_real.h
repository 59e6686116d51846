/* Compressing a captured real KV cache with xKV and measuring, per layer,
 * the reconstruction error (against the optimal rank-r error of the same
 * group matrix) and the decode attention-output error. Shared by
 * test_xkv_real and bench/xkv_accuracy. */
#ifndef XKV_REAL_H
#define XKV_REAL_H

#include "kv_capture.h"
#include "xkv.h"

typedef struct {
  double k_err, v_err;       /* ||K - K_r|| / ||K|| of the layer */
  double k_grp, v_grp;       /* the whole group's ||X - X_r|| / ||X|| */
  double k_opt, v_opt;       /* the group's best rank-r error (SVD) */
  double attn_err, attn_cos; /* xkv_attention vs exact, decode step */
} xkv_real_layer;

typedef struct {
  int rank_k_min, rank_k_max, rank_v_min, rank_v_max;
  double ratio; /* from xkv_cache_get_stats */
} xkv_real_run;

/* One configuration: group W, factors stored as dtype, fixed ranks, or
 * when ratio > 0 the ranks that reach that compression ratio. out has
 * cap->n_layers entries. 0, or -1 with err. */
int xkv_real_eval(xkv_context *ctx, const kv_capture *cap, int W, int rank_k,
                  int rank_v, float ratio, xkv_dtype dtype, xkv_real_layer *out,
                  xkv_real_run *run, char *err, size_t nerr);

#endif
