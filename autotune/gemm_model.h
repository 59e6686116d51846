/* A GEMM variant's modeled H100 or H200 time without a GPU (bench/gemm and
 * xkv-tune's model device). The counters are MEASURED through the sim
 * target on reduced problems that keep the per-block behaviour of the big
 * ones: a 2 x 2 grid of full tiles run with K = 2 and 4 BLOCK_K steps.
 * Every counter is linear in the K steps per block and in the blocks, so
 * the two runs give each block's fixed part and per-step part, scaled to
 * the big shape's blocks and K. Only the DRAM minimum (A, B, C once each:
 * L2 holds the panels) is analytic. f should be the variant specialized
 * for 16-byte aligned buffers and dims divisible by 16 (what a launch on
 * such shapes selects). */
#ifndef XK_GEMM_MODEL_H
#define XK_GEMM_MODEL_H

#include "perf_model.h"
#include "ptxas.h"

typedef struct {
  xk_sim_counters c2, c4; /* 4 blocks, 2 and 4 K steps */
} xk_gemm_measured;

int xk_gemm_measure(const xk_func *f, int f16, xk_gemm_measured *m, xk_diag *d);
/* The counters scaled to M x N x K (into c) and the estimate on gpu g;
 * xk_gemm_estimate on the H100 SXM. */
int xk_gemm_estimate_on(const xk_gpu *g, const xk_func *f, int f16,
                        const xk_ptxas_info *pi, const xk_nvptx_info *info,
                        const xk_gemm_measured *ms, int64_t M, int64_t N,
                        int64_t K, xk_sim_counters *c, xk_perf_estimate *e,
                        xk_diag *d);
int xk_gemm_estimate(const xk_func *f, int f16, const xk_ptxas_info *pi,
                     const xk_nvptx_info *info, const xk_gemm_measured *ms,
                     int64_t M, int64_t N, int64_t K, xk_sim_counters *c,
                     xk_perf_estimate *e, xk_diag *d);

#endif
