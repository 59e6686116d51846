/* A GEMM variant's modeled H100 or H200 time without a GPU (bench/gemm and
 * xkv-tune's model device). The counters are MEASURED through the sim
 * target on reduced problems that keep the per-block behaviour of the big
 * ones: a 2 x 2 (x SPLIT for the split-K kernels) grid of full tiles run
 * with 2 and 4 BLOCK_K steps per block.
 * Every counter is linear in the K steps per block and in the blocks, so
 * the two runs give each block's fixed part and per-step part, scaled to
 * the big shape's blocks and K. Only the DRAM bytes are analytic: the A
 * and B panels each wave of resident blocks reads, in launch order, reused
 * from the previous wave when its panels fit in L2 (gemm_model.c). f should be
 * the variant specialized for 16-byte aligned buffers and dims divisible by 16
 * (what a launch on such shapes selects). */
#ifndef XK_GEMM_MODEL_H
#define XK_GEMM_MODEL_H

#include "perf_model.h"
#include "ptxas.h"

/* The A/B element size of the kernels this model times (the plain GEMM
 * ABI: A, B, C, M, N, K, with BLOCK_M/N/K and, for split-K, SPLIT
 * constexprs): 4 for gemm_f32, 2 for gemm_f16, gemm_bf16 and the split-K
 * gemm_sk_* / gemm_skt_* (f32 C); 0 for any other kernel (timed by a whole
 * sim run instead). */
int xk_gemm_model_esize(const char *kernel);

/* Bytes a gm x gn x gs grid of GEMM blocks (gs: K splits) moves from DRAM
 * when its blocks run in launch order (x fastest, `conc` resident at a
 * time) on gpu g: a wave reads each A row panel (a_panel bytes, one per
 * block row and split) and B column panel (b_panel) its blocks touch once
 * (blocks of one wave share them through L2), and reuses the previous wave's
 * panels only when those fit in L2 together, so a tall A whose panels of one
 * wave overflow L2 is read again for every column of blocks. Plus c_bytes of C
 * written once. -1: out of memory. */
int64_t xk_gemm_dram_bytes(const xk_gpu *g, int64_t gm, int64_t gn, int64_t gs,
                           int64_t conc, double a_panel, double b_panel,
                           double c_bytes);

typedef struct {
  xk_sim_counters c2, c4; /* 4 x SPLIT blocks, 2 and 4 K steps each */
} xk_gemm_measured;

int xk_gemm_measure(const xk_func *f, xk_gemm_measured *m, xk_diag *d);
/* The counters scaled to M x N x K (into c) and the estimate on gpu g;
 * xk_gemm_estimate on the H100 SXM. */
int xk_gemm_estimate_on(const xk_gpu *g, const xk_func *f,
                        const xk_ptxas_info *pi, const xk_nvptx_info *info,
                        const xk_gemm_measured *ms, int64_t M, int64_t N,
                        int64_t K, xk_sim_counters *c, xk_perf_estimate *e,
                        xk_diag *d);
int xk_gemm_estimate(const xk_func *f, const xk_ptxas_info *pi,
                     const xk_nvptx_info *info, const xk_gemm_measured *ms,
                     int64_t M, int64_t N, int64_t K, xk_sim_counters *c,
                     xk_perf_estimate *e, xk_diag *d);

#endif
