#include "tune_model.h"

#include "compile.h"
#include "gemm_model.h"
#include "sim_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct xk_tune_memo {
  uint64_t variant;
  xk_ptxas_info pi;
  xk_nvptx_info info;
  int fits; /* ptxas and the lowering accepted it */
  char why[1024];
  int measured;
  xk_gemm_measured ms;
};

/* The variant's entry, made (with ptxas's numbers) on first sight; NULL
 * out of memory. */
static xk_tune_memo *memo_of(xk_tune_model *m, const xk_func *f) {
  uint64_t id = xk_variant_hash(f, "sim");
  for (int i = 0; i < m->nmemo; i++)
    if (m->memo[i].variant == id)
      return &m->memo[i];
  xk_tune_memo *mm = realloc(m->memo, (size_t)(m->nmemo + 1) * sizeof *mm);
  if (!mm)
    return NULL;
  m->memo = mm;
  xk_tune_memo *t = &mm[m->nmemo++];
  memset(t, 0, sizeof *t);
  t->variant = id;
  xk_diag d;
  t->fits = !xk_ptxas_func(f, m->arch, m->tm, &t->pi, &t->info, &d);
  if (!t->fits)
    snprintf(t->why, sizeof t->why, "%s", d.msg);
  return t;
}

/* sm_90's limits (227 KiB shared memory per block, 64K registers per SM),
 * the same on both GPUs of sim/perf_model.c's table */
#define SMEM_PER_BLOCK (227 * 1024)
#define REGS_PER_SM 65536

int xk_tune_model_open(const char *what, xk_tune_model *m, xk_diag *d) {
  memset(m, 0, sizeof *m);
  const char *gpu = !strcmp(what, "sm_90")        ? "h100-sxm"
                    : !strcmp(what, "sm_90-h200") ? "h200"
                                                  : NULL;
  if (!gpu)
    return xk_diag_set(d,
                       "--device model:%s: the perf model (sim/perf_model.c) "
                       "has model:sm_90 (H100 SXM) and model:sm_90-h200",
                       what);
  m->gpu = xk_gpu_find(gpu);
  snprintf(m->arch, sizeof m->arch, "%s", m->gpu->arch);
  /* model:sm_90 keeps the fingerprint its committed records carry; another
   * GPU names itself so that its records stay apart */
  if (!strcmp(what, "sm_90"))
    snprintf(m->fingerprint, sizeof m->fingerprint,
             "model:sm_90:sms=%d:smem=%d", m->gpu->sms, SMEM_PER_BLOCK);
  else
    snprintf(m->fingerprint, sizeof m->fingerprint,
             "model:%s:gpu=%s:sms=%d:smem=%d:dram=%.2fTB/s", what, m->gpu->name,
             m->gpu->sms, SMEM_PER_BLOCK, m->gpu->dram_peak * 1e-12);
  m->smem_limit = SMEM_PER_BLOCK;
  m->sms = m->gpu->sms;
  m->max_threads = 1024;
  m->regs_per_sm = REGS_PER_SM;
  return xk_target_machine(m->arch, &m->tm, d);
}

void xk_tune_model_close(xk_tune_model *m) {
  free(m->memo);
  m->memo = NULL;
  m->nmemo = 0;
  if (m->tm)
    LLVMDisposeTargetMachine(m->tm);
  m->tm = NULL;
}

void xk_tune_model_prepare(xk_tune_model *m, const xk_func *f,
                           const char **status, char *why, size_t n) {
  xk_ptxas_info pi;
  xk_nvptx_info info;
  xk_diag d;
  if (xk_ptxas_func(f, m->arch, m->tm, &pi, &info, &d)) {
    /* the lowering refuses tiles above the static shared-memory limit:
     * that is the compiler's resource number, not a compiler failure */
    *status = strstr(d.msg, "bytes of shared memory") ? "infeasible"
                                                      : "compile_failed";
    snprintf(why, n, "%s", d.msg);
    return;
  }
  int regs = pi.registers > 0 ? pi.registers : 0;
  *status = "infeasible";
  if (info.shared_bytes > m->smem_limit)
    snprintf(why, n, "shared memory %d B > %d B per block", info.shared_bytes,
             m->smem_limit);
  else if (info.threads > m->max_threads)
    snprintf(why, n, "%d threads > %d per block", info.threads, m->max_threads);
  else if (regs * info.threads > m->regs_per_sm)
    snprintf(why, n, "%d registers x %d threads > %d per SM", regs,
             info.threads, m->regs_per_sm);
  else
    *status = "ok";
}

static int64_t key_of(const xk_kernel_spec *spec, const int64_t *vals,
                      const char *name) {
  for (int i = 0; i < spec->nkey; i++)
    if (!strcmp(spec->key[i], name))
      return vals[i];
  return 0;
}

int xk_tune_model_time(xk_tune_model *m, const xk_kernel_spec *spec,
                       const xk_func *f, const int64_t *vals, xk_problem *p,
                       double *us, char *why, size_t n) {
  int esize = xk_gemm_model_esize(spec->name);
  if (!esize) {
    xk_tune_memo *t = memo_of(m, f);
    xk_diag d;
    double err;
    if (!t || !t->fits)
      return snprintf(why, n, "%s", t ? t->why : "out of memory"), -1;
    if (!p)
      return snprintf(why, n, "no inputs for %s", spec->name), -1;
    if (xk_sim_model_time(m->gpu, f, spec, p, &t->pi, &t->info, us, &err, &d))
      return snprintf(why, n, "%s", d.msg), -1;
    if (err > p->tol)
      return snprintf(why, n,
                      "the sim run's output misses the C reference: rel. "
                      "error %.3g > %.3g%s",
                      err, p->tol,
                      isinf(err) ? " (NaN or unwritten elements)" : ""),
             1;
    return 0;
  }
  int64_t M = key_of(spec, vals, "M"), N = key_of(spec, vals, "N"),
          K = key_of(spec, vals, "K");
  xk_tune_memo *t = memo_of(m, f);
  xk_sim_counters c;
  xk_perf_estimate e;
  xk_diag d;
  if (!t || !t->fits)
    return snprintf(why, n, "%s", t ? t->why : "out of memory"), -1;
  if (!t->measured && xk_gemm_measure(f, &t->ms, &d))
    return snprintf(why, n, "%s", d.msg), -1;
  t->measured = 1;
  if (xk_gemm_estimate_on(m->gpu, f, &t->pi, &t->info, &t->ms, M, N, K, &c, &e,
                          &d))
    return snprintf(why, n, "%s", d.msg), -1;
  *us = e.seconds * 1e6;
  return 0;
}
