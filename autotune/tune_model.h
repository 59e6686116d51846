/* The model devices of xkv-tune (model:sm_90 = H100 SXM, model:sm_90-h200):
 * configs that cannot fit an SM (ptxas registers, the lowering's shared
 * memory and threads) are infeasible; the rest are ranked by the perf
 * model of that GPU (sim/perf_model)
 * on sim counters, which this build measures for the GEMMs (gemm_model.h).
 * Records made here are marked "source": "model". */
#ifndef XK_TUNE_MODEL_H
#define XK_TUNE_MODEL_H

#include "dsl.h"
#include "lower.h"
#include "perf_model.h"
#include "problem.h"

typedef struct xk_tune_memo xk_tune_memo;

typedef struct {
  const xk_gpu *gpu;
  char arch[16];
  char fingerprint[128];
  LLVMTargetMachineRef tm;
  int smem_limit, max_threads, regs_per_sm, sms;
  /* sim measurements by variant: they do not depend on the key */
  xk_tune_memo *memo;
  int nmemo;
} xk_tune_model;

int xk_tune_model_open(const char *what, xk_tune_model *m, xk_diag *d);
void xk_tune_model_close(xk_tune_model *m);
/* Sets *status to "ok", "infeasible" or "compile_failed" (why says why). */
void xk_tune_model_prepare(xk_tune_model *m, const xk_func *f,
                           const char **status, char *why, size_t n);
/* The modeled time (us) of f at key vals: the GEMMs by extrapolation, the
 * rest by a sim run on p (NULL for the GEMMs). -1 with why when it cannot
 * be modeled, 1 with why when its sim output misses p's reference. */
int xk_tune_model_time(xk_tune_model *m, const xk_kernel_spec *spec,
                       const xk_func *f, const int64_t *vals, xk_problem *p,
                       double *us, char *why, size_t n);

#endif
