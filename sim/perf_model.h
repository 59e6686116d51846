/* A modeled H100 time for a kernel launch from the sim target's counters
 * and ptxas's resource usage, for ranking variants when no GPU is lent. */
#ifndef XK_PERF_MODEL_H
#define XK_PERF_MODEL_H

#include "sim.h"

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
  double t_dram, t_l2, t_tensor, t_fma;
  const char *bound; /* which of them is the largest */
  double seconds;    /* the modeled time */
} xk_perf_estimate;

/* Fails when a block cannot fit on an SM at all. */
int xk_perf_model(const xk_sim_counters *c, const xk_perf_launch *l,
                  xk_perf_estimate *e, xk_diag *d);

#endif
