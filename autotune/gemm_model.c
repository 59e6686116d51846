#include "gemm_model.h"

#include "compile.h"

#include <stdlib.h>
#include <string.h>

static int64_t cdiv(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

static int64_t const_of(const xk_func *f, const char *n) {
  for (int i = 0; i < f->nconsts; i++)
    if (!strcmp(f->consts[i].name, n))
      return f->consts[i].value;
  return 0;
}

/* One sim run of f on M x N x K with aligned random inputs. */
static int sim_run(xk_sim_fn fn, const xk_nvptx_info *info, int f16, int32_t M,
                   int32_t N, int32_t K, int64_t bm, int64_t bn,
                   xk_sim_counters *c, xk_diag *d) {
  size_t esz = f16 ? 2 : 4;
  void *a = aligned_alloc(128, (size_t)M * K * esz);
  void *b = aligned_alloc(128, (size_t)K * N * esz);
  void *cm = aligned_alloc(128, (size_t)M * N * esz);
  if (!a || !b || !cm) {
    free(a);
    free(b);
    free(cm);
    return xk_diag_set(d, "out of memory");
  }
  /* small integers: exact in f16, the values do not matter here */
  for (size_t i = 0; i < (size_t)M * K; i++)
    f16 ? (void)(((uint16_t *)a)[i] = 0x3c00) : (void)(((float *)a)[i] = 1);
  for (size_t i = 0; i < (size_t)K * N; i++)
    f16 ? (void)(((uint16_t *)b)[i] = 0x3c00) : (void)(((float *)b)[i] = 1);
  void *args[6] = {&a, &b, &cm, &M, &N, &K};
  int32_t grid[3] = {(int32_t)(M / bm), (int32_t)(N / bn), 1};
  int rc =
      xk_sim_launch(fn, args, grid, info->threads, info->shared_bytes, c, d);
  free(a);
  free(b);
  free(cm);
  return rc;
}

/* c2 + (steps - 2) * (c4 - c2) / 2 per 4 blocks, times blocks / 4 */
static void scale(const xk_sim_counters *c2, const xk_sim_counters *c4,
                  int64_t steps, int64_t blocks, xk_sim_counters *o) {
  xk_sim_counters_affine(c2, (4 - steps) * blocks, c4, (steps - 2) * blocks, 8,
                         blocks, o);
}

int xk_gemm_measure(const xk_func *f, int f16, xk_gemm_measured *m,
                    xk_diag *d) {
  LLVMTargetMachineRef tm;
  LLVMModuleRef mod;
  if (xk_target_machine("sim", &tm, d))
    return -1;
  xk_nvptx_info si;
  int rc = xk_compile_llvm(f, "sim", tm, f->name, 1, &mod, &si, d);
  LLVMDisposeTargetMachine(tm);
  if (rc)
    return -1;
  xk_jit *j;
  if (xk_jit_new(&j, d)) {
    LLVMDisposeModule(mod);
    return -1;
  }
  xk_host_fn fn;
  int64_t bm = const_of(f, "BLOCK_M"), bn = const_of(f, "BLOCK_N");
  int64_t bk = const_of(f, "BLOCK_K");
  rc = xk_jit_add(j, mod, d) || xk_jit_lookup(j, f->name, &fn, d);
  if (!rc)
    rc = sim_run((xk_sim_fn)(void (*)(void))fn, &si, f16, (int32_t)(2 * bm),
                 (int32_t)(2 * bn), (int32_t)(2 * bk), bm, bn, &m->c2, d) ||
         sim_run((xk_sim_fn)(void (*)(void))fn, &si, f16, (int32_t)(2 * bm),
                 (int32_t)(2 * bn), (int32_t)(4 * bk), bm, bn, &m->c4, d);
  xk_jit_free(j);
  return rc ? -1 : 0;
}

int xk_gemm_estimate_on(const xk_gpu *g, const xk_func *f, int f16,
                        const xk_ptxas_info *pi, const xk_nvptx_info *info,
                        const xk_gemm_measured *ms, int64_t M, int64_t N,
                        int64_t K, xk_sim_counters *c, xk_perf_estimate *e,
                        xk_diag *d) {
  int64_t bm = const_of(f, "BLOCK_M"), bn = const_of(f, "BLOCK_N");
  int64_t bk = const_of(f, "BLOCK_K");
  int64_t esz = f16 ? 2 : 4;
  int64_t blocks = cdiv(M, bm) * cdiv(N, bn);
  scale(&ms->c2, &ms->c4, cdiv(K, bk), blocks, c);
  c->unique_bytes = (M * K + K * N + M * N) * esz;
  xk_perf_launch l = {pi->registers, info->shared_bytes, info->threads, blocks};
  return xk_perf_model_gpu(g, c, &l, e, d);
}

int xk_gemm_estimate(const xk_func *f, int f16, const xk_ptxas_info *pi,
                     const xk_nvptx_info *info, const xk_gemm_measured *ms,
                     int64_t M, int64_t N, int64_t K, xk_sim_counters *c,
                     xk_perf_estimate *e, xk_diag *d) {
  return xk_gemm_estimate_on(xk_gpu_find("h100-sxm"), f, f16, pi, info, ms, M,
                             N, K, c, e, d);
}
