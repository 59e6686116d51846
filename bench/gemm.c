/* GEMM variants for H100 without an H100: for each config of gemm_f16 and
 * gemm_f32 (the defaults, the tune space, and large tensor-core tiles),
 * ptxas resources for sm_90 and a modeled H100 time on f16 4096^3 and the
 * randomized-SVD shapes (L=32768, F=4096, r=448: X.Omega [L,F]x[F,r],
 * X^T.Y [F,L]x[L,r], Q^T.X [r,L]x[L,F]).
 *
 * The counters are MEASURED through the sim target on reduced problems
 * (autotune/gemm_model.h) of the variant specialized for 16-byte aligned
 * buffers and dims divisible by 16 (what a launch on these shapes
 * selects).
 *
 * num_stages > 1 configs are software-pipelined (cp.async into one
 * shared-memory buffer per stage; cp_async counts the warp-instructions).
 * The model does not credit the latency those copies hide: its `hide`
 * factor counts resident warps only, so pipelining shows up here through
 * its shared memory (occupancy) and its counters, not as overlap.
 *
 * Writes bench/results/gemm-model-h100-<date>.csv. Ratios are against the
 * default config of the same kernel, measured in the same run. */
#include "compile.h"
#include "dsl.h"
#include "gemm_model.h"
#include "results_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *name;
  int64_t M, N, K;
} shape;

static const shape shapes[] = {{"4096^3", 4096, 4096, 4096},
                               {"X.Omega", 32768, 448, 4096},
                               {"Xt.Y", 4096, 448, 32768},
                               {"Qt.X", 448, 4096, 32768}};
#define NSHAPES (int)(sizeof shapes / sizeof *shapes)

typedef struct {
  int bm, bn, bk, nw, ns;
} config;

/* the defaults first (zeros: take the kernel's), then the tune corners,
 * then tiles larger than the tune space for the big shapes */
static const config configs[] = {
    {0, 0, 0, 0, 0},      {32, 32, 32, 4, 1},  {64, 64, 32, 4, 2},
    {64, 64, 64, 8, 3},   {64, 32, 64, 4, 2},  {128, 64, 32, 8, 2},
    {128, 128, 32, 8, 2}, {64, 128, 32, 4, 2},
};
#define NCONFIGS (int)(sizeof configs / sizeof *configs)

static int64_t const_of(const xk_func *f, const char *n) {
  for (int i = 0; i < f->nconsts; i++)
    if (!strcmp(f->consts[i].name, n))
      return f->consts[i].value;
  return 0;
}

int main(int argc, char **argv) {
  const char *src = argc > 1 ? argv[1] : XK_SRC "/kernels.xk";
  xk_dsl *dsl = NULL;
  xk_diag d = {{0}};
  LLVMTargetMachineRef tm = NULL;
  if (xk_dsl_open(src, &dsl, &d) || xk_target_machine("sm_90", &tm, &d)) {
    fprintf(stderr, "gemm: %s\n", d.msg);
    return 1;
  }
  char path[512];
  FILE *csv =
      xk_bench_results_open("gemm-model-h100", "csv", path, sizeof path, NULL);
  if (!csv) {
    fprintf(stderr, "gemm: cannot write %s\n", path);
    return 1;
  }
  fprintf(csv, "kernel,config,regs,spill_bytes,smem,shape,gld_eff,gst_eff,"
               "smem_conflicts,mma,fma,cp_async,model_us,model_tflops,bound,"
               "occupancy,vs_default\n");
  printf("no GPU here: times are the perf model's H100 estimate from "
         "counters measured through sim on the aligned/div16 specialized "
         "variant (see the header of bench/gemm.c)\n");
  int rc = 0;
  static const char *const kernels[] = {"gemm_f16", "gemm_f32"};
  for (int kn = 0; kn < 2 && !rc; kn++) {
    int k = xk_dsl_find(dsl, kernels[kn]);
    if (k < 0)
      continue;
    double base[NSHAPES] = {0};
    for (int ci = 0; ci < NCONFIGS && !rc; ci++) {
      const config *cf = &configs[ci];
      xk_constexpr over[5] = {{"BLOCK_M", cf->bm},
                              {"BLOCK_N", cf->bn},
                              {"BLOCK_K", cf->bk},
                              {"num_warps", cf->nw},
                              {"num_stages", cf->ns}};
      /* A, B, C 16-byte aligned; M, N, K divisible by 16 */
      static const int spec[6] = {XK_SPEC_ALIGN16, XK_SPEC_ALIGN16,
                                  XK_SPEC_ALIGN16, XK_SPEC_DIV16,
                                  XK_SPEC_DIV16,   XK_SPEC_DIV16};
      xk_func *f = NULL;
      if (xk_compile_ir_spec(dsl, k, over, cf->bm ? 5 : 0, spec, &f, &d)) {
        rc = 1;
        break;
      }
      char what[96];
      snprintf(what, sizeof what, "%lldx%lldx%lld w%d s%d",
               (long long)const_of(f, "BLOCK_M"),
               (long long)const_of(f, "BLOCK_N"),
               (long long)const_of(f, "BLOCK_K"), f->num_warps, f->num_stages);
      xk_ptxas_info pi;
      xk_nvptx_info info;
      if (xk_ptxas_func(f, "sm_90", tm, &pi, &info, &d)) {
        printf("%-9s %-22s skipped: %s\n", kernels[kn], what, d.msg);
        xk_func_free(f);
        continue;
      }
      xk_gemm_measured ms;
      if (xk_gemm_measure(f, kn == 0, &ms, &d)) {
        printf("%-9s %-22s sim failed: %s\n", kernels[kn], what, d.msg);
        xk_func_free(f);
        rc = 1;
        break;
      }
      printf("%-9s %-22s regs %3d spill %3d smem %6d | per 4 blocks x 4 k "
             "steps: gld eff %.3f gst eff %.3f smem conflicts %lld\n",
             kernels[kn], what, pi.registers, pi.spill_bytes, info.shared_bytes,
             xk_sim_gld_efficiency(&ms.c4), xk_sim_gst_efficiency(&ms.c4),
             (long long)ms.c4.smem_conflicts);
      for (int si = 0; si < NSHAPES; si++) {
        xk_perf_estimate e;
        xk_sim_counters c;
        if (xk_gemm_estimate(f, kn == 0, &pi, &info, &ms, shapes[si].M,
                             shapes[si].N, shapes[si].K, &c, &e, &d)) {
          printf("    %-8s does not fit: %s\n", shapes[si].name, d.msg);
          continue;
        }
        double fl = 2.0 * shapes[si].M * shapes[si].N * shapes[si].K;
        if (ci == 0)
          base[si] = e.seconds;
        double ratio = base[si] > 0 ? base[si] / e.seconds : 0;
        printf("    %-8s %9.1f us %7.1f TFLOP/s  %-7s occ %.2f  x%.2f vs "
               "default | gld eff %.3f conflicts %lld mma %lld fma %lld "
               "cp.async %lld\n",
               shapes[si].name, e.seconds * 1e6, fl / e.seconds / 1e12, e.bound,
               e.occupancy, ratio, xk_sim_gld_efficiency(&c),
               (long long)c.smem_conflicts, (long long)c.inst[XK_SIM_MMA],
               (long long)c.inst[XK_SIM_FMA],
               (long long)c.inst[XK_SIM_CPASYNC]);
        fprintf(csv,
                "%s,%s,%d,%d,%d,%s,%.4f,%.4f,%lld,%lld,%lld,%lld,%.2f,%.2f,%s,"
                "%.3f,%.3f\n",
                kernels[kn], what, pi.registers, pi.spill_bytes,
                info.shared_bytes, shapes[si].name, xk_sim_gld_efficiency(&c),
                xk_sim_gst_efficiency(&c), (long long)c.smem_conflicts,
                (long long)c.inst[XK_SIM_MMA], (long long)c.inst[XK_SIM_FMA],
                (long long)c.inst[XK_SIM_CPASYNC], e.seconds * 1e6,
                fl / e.seconds / 1e12, e.bound, e.occupancy, ratio);
      }
      xk_func_free(f);
    }
  }
  if (rc)
    fprintf(stderr, "gemm: %s\n", d.msg);
  fclose(csv);
  printf("wrote %s\n", path);
  LLVMDisposeTargetMachine(tm);
  xk_dsl_close(dsl);
  return rc;
}
