/* A modeled H100 or H200 time for a kernel launch from the sim target's
 * counters and ptxas's resource usage, for ranking variants when no GPU is
 * lent. */
#ifndef XK_PERF_MODEL_H
#define XK_PERF_MODEL_H

#include "sim.h"

/* A GPU the model describes: data-sheet peaks and the achievable fractions
 * that bench/model_calib.c fits against published measurements. */
typedef struct {
  const char *name; /* "h100-sxm", "h200" */
  const char *arch; /* "sm_90": registers, shared memory (arch.h) */
  int sms;          /* streaming multiprocessors */
  double dram_peak; /* bytes/s, data sheet */
  double dram_eff;  /* the fraction of dram_peak a streaming kernel gets */
  double l2_bw;     /* bytes/s of L2 sector traffic */
  int64_t l2_bytes; /* capacity (documentation; the model assumes reuse
                       between blocks hits L2) */
  double mma_flops; /* mma.sync f16 m16n8k16 (not wgmma), FLOP/s */
  double fma_flops; /* SIMT f32, FLOP/s */
  double sm_clock;  /* Hz: each SM's shared memory serves one 128-byte
                       wavefront per clock */
  double launch_s;  /* launch and tail latency per kernel */
} xk_gpu;

/* By name ("h100-sxm" or "h100", "h200"); NULL when unknown. */
const xk_gpu *xk_gpu_find(const char *name);
/* The table's names, comma-separated, for error messages. */
const char *xk_gpu_names(void);
/* The achievable DRAM bandwidth, bytes/s. */
double xk_gpu_dram_bw(const xk_gpu *g);

typedef struct {
  int registers;    /* per thread, from ptxas; <= 0: unknown (assume 32) */
  int shared_bytes; /* shared memory per block */
  int threads;      /* per block */
  int64_t blocks;   /* in the grid */
} xk_perf_launch;

typedef struct {
  int blocks_per_sm;
  const char *limiter; /* "threads", "registers", "shared", "blocks" */
  double occupancy;    /* resident warps / 64 */
  double waves;        /* grid / (SMs * blocks_per_sm), rounded up */
  double wave_eff;     /* busy fraction of the machine over the waves */
  double hide;         /* latency hiding from resident warps, <= 1 */
  /* the throughput bounds at full machine rate, seconds */
  double t_dram, t_l2, t_tensor, t_fma, t_smem;
  const char *bound; /* which of them is the largest */
  double seconds;    /* the modeled time */
} xk_perf_estimate;

/* On gpu g. Fails when a block cannot fit on an SM at all. */
int xk_perf_model_gpu(const xk_gpu *g, const xk_sim_counters *c,
                      const xk_perf_launch *l, xk_perf_estimate *e, xk_diag *d);
/* On the H100 SXM. */
int xk_perf_model(const xk_sim_counters *c, const xk_perf_launch *l,
                  xk_perf_estimate *e, xk_diag *d);

#endif
