/* GEMM variants for sm_90 without a GPU: for each config of gemm_f16,
 * gemm_bf16 and gemm_f32 (the defaults, tune corners, and the large
 * tensor-core tiles of the 16-bit kernels' tune space), ptxas resources
 * for sm_90 and a modeled H100 SXM and H200 time on 4096^3 and the
 * randomized-SVD shapes (L=32768, F=4096, r=448: X.Omega [L,F]x[F,r],
 * X^T.Y [F,L]x[L,r], Q^T.X [r,L]x[L,F]). This is the mma.sync path
 * (sm_90); wgmma is sm_90a's.
 *
 * The counters are MEASURED through the sim target on reduced problems
 * (autotune/gemm_model.h) of the variant specialized for 16-byte aligned
 * buffers and dims divisible by 16 (what a launch on these shapes
 * selects), once per config; the perf model (sim/perf_model.c: DRAM in
 * launch order, L2 sectors, shared-memory wavefronts, mma.sync and FMA
 * rates) turns them into a time per GPU.
 *
 * num_stages > 1 configs are software-pipelined (cp.async into one
 * shared-memory buffer per stage; cp_async counts the warp-instructions).
 * The model does not credit the latency those copies hide: its `hide`
 * factor counts resident warps only, so pipelining shows up here through
 * its shared memory (occupancy) and its counters, not as overlap.
 *
 * Writes bench/results/gemm-model-sm90-{h100,h200}-<date>.{csv,md}.
 * Ratios are against the default config of the same kernel, measured in
 * the same run. Usage: gemm_bench [kernels.xk] */
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
 * then (16-bit kernels only: f32 FMA tiles this large spill) the large
 * tiles of the tensor-core tune space */
static const config configs[] = {
    {0, 0, 0, 0, 0},      {32, 32, 32, 4, 1},   {64, 64, 32, 4, 2},
    {64, 64, 64, 8, 3},   {64, 32, 64, 4, 2},   {128, 64, 32, 8, 2},
    {64, 128, 32, 4, 2},  {128, 128, 32, 8, 2}, {128, 128, 32, 8, 3},
    {128, 128, 64, 8, 3}, {128, 256, 32, 8, 2}, {128, 256, 32, 8, 3},
    {128, 256, 64, 8, 2}, {64, 256, 32, 8, 3},
};
#define NCONFIGS (int)(sizeof configs / sizeof *configs)
/* configs[FIRST_TC_ONLY..] are measured for the 16-bit kernels only */
#define FIRST_TC_ONLY 7

static const char *const gpu_names[] = {"h100-sxm", "h200"};
static const char *const gpu_files[] = {"h100", "h200"};
#define NGPUS 2

static int64_t const_of(const xk_func *f, const char *n) {
  for (int i = 0; i < f->nconsts; i++)
    if (!strcmp(f->consts[i].name, n))
      return f->consts[i].value;
  return 0;
}

typedef struct {
  FILE *csv[NGPUS], *md[NGPUS];
  double best[NGPUS][3]; /* per GPU and kernel: best TFLOP/s at 4096^3 */
  char best_cfg[NGPUS][3][96];
} outputs;

/* One config's modeled times on every shape and GPU, printed and written. */
static void report(outputs *o, int kn, const char *kernel, const char *what,
                   const xk_func *f, const xk_ptxas_info *pi,
                   const xk_nvptx_info *info, const xk_gemm_measured *ms,
                   double base[NGPUS][NSHAPES], int is_default) {
  for (int g = 0; g < NGPUS; g++) {
    const xk_gpu *gpu = xk_gpu_find(gpu_names[g]);
    for (int si = 0; si < NSHAPES; si++) {
      xk_perf_estimate e;
      xk_sim_counters c;
      xk_diag d = {{0}};
      if (xk_gemm_estimate_on(gpu, f, pi, info, ms, shapes[si].M, shapes[si].N,
                              shapes[si].K, &c, &e, &d)) {
        printf("    %-5s %-8s does not fit: %s\n", gpu_files[g],
               shapes[si].name, d.msg);
        continue;
      }
      double fl = 2.0 * shapes[si].M * shapes[si].N * shapes[si].K;
      double tf = fl / e.seconds / 1e12;
      if (is_default)
        base[g][si] = e.seconds;
      double ratio = base[g][si] > 0 ? base[g][si] / e.seconds : 0;
      printf("    %-5s %-8s %9.1f us %7.1f TFLOP/s MODELED  %-6s occ %.2f  "
             "x%.2f vs default | dram %.0f MB smem conflicts %lld\n",
             gpu_files[g], shapes[si].name, e.seconds * 1e6, tf, e.bound,
             e.occupancy, ratio, (double)c.unique_bytes / 1e6,
             (long long)c.smem_conflicts);
      fprintf(o->csv[g],
              "%s,%s,%d,%d,%d,%s,%.4f,%.4f,%lld,%lld,%lld,%lld,%.2f,%.2f,%.2f,"
              "%.2f,%.2f,%.2f,%.2f,%s,%.3f,%.3f\n",
              kernel, what, pi->registers, pi->spill_bytes, info->shared_bytes,
              shapes[si].name, xk_sim_gld_efficiency(&c),
              xk_sim_gst_efficiency(&c), (long long)c.smem_conflicts,
              (long long)c.smem_bytes, (long long)c.unique_bytes,
              (long long)c.inst[XK_SIM_MMA], e.t_dram * 1e6, e.t_l2 * 1e6,
              e.t_smem * 1e6, e.t_tensor * 1e6, e.t_fma * 1e6, e.seconds * 1e6,
              tf, e.bound, e.occupancy, ratio);
      if (si == 0 && tf > o->best[g][kn]) {
        o->best[g][kn] = tf;
        snprintf(o->best_cfg[g][kn], sizeof o->best_cfg[g][kn], "%s", what);
      }
      if (si == 0)
        fprintf(o->md[g],
                "| %s | %s | %d | %d | %d | %.1f | %.1f | %s | %.2f |\n",
                kernel, what, pi->registers, pi->spill_bytes,
                info->shared_bytes, e.seconds * 1e6, tf, e.bound, ratio);
    }
  }
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
  outputs o = {{0}};
  char path[NGPUS][2][512];
  int rc = 0;
  for (int g = 0; g < NGPUS && !rc; g++) {
    char stem[64];
    snprintf(stem, sizeof stem, "gemm-model-sm90-%s", gpu_files[g]);
    o.csv[g] =
        xk_bench_results_open(stem, "csv", path[g][0], sizeof path[g][0], NULL);
    o.md[g] =
        xk_bench_results_open(stem, "md", path[g][1], sizeof path[g][1], NULL);
    if (!o.csv[g] || !o.md[g]) {
      fprintf(stderr, "gemm: cannot write %s\n",
              o.csv[g] ? path[g][1] : path[g][0]);
      rc = 1;
      break;
    }
    fprintf(o.csv[g],
            "kernel,config,regs,spill_bytes,smem,shape,gld_eff,gst_eff,"
            "smem_conflicts,smem_bytes,dram_bytes,mma,t_dram_us,t_l2_us,"
            "t_smem_us,t_tensor_us,t_fma_us,model_us,model_tflops,bound,"
            "occupancy,vs_default\n");
    fprintf(o.md[g],
            "# gemm_f16 / gemm_bf16 / gemm_f32 on sm_90 (mma.sync), %s: "
            "MODELED\n\n"
            "Made by `build/bench/gemm_bench` (bench/gemm.c): counters "
            "measured through the sim target on reduced problems, times from "
            "sim/perf_model.c for the %s; no GPU ran. 4096^3, aligned and "
            "div-16 specialized variant. Every shape: the .csv beside this "
            "file.\n\n"
            "| kernel | config | regs | spill | smem | us | TFLOP/s | bound | "
            "vs default |\n|---|---|---|---|---|---|---|---|---|\n",
            gpu_files[g], gpu_names[g]);
  }
  printf("no GPU here: times are the perf model's H100 SXM and H200 "
         "estimates (MODELED) from counters measured through sim on the "
         "aligned/div16 specialized variant (see the header of "
         "bench/gemm.c)\n");
  static const char *const kernels[] = {"gemm_f16", "gemm_bf16", "gemm_f32"};
  for (int kn = 0; kn < 3 && !rc; kn++) {
    int k = xk_dsl_find(dsl, kernels[kn]);
    if (k < 0)
      continue;
    int nconf =
        xk_gemm_model_esize(kernels[kn]) == 2 ? NCONFIGS : FIRST_TC_ONLY;
    double base[NGPUS][NSHAPES] = {{0}};
    for (int ci = 0; ci < nconf && !rc; ci++) {
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
      if (xk_gemm_measure(f, &ms, &d)) {
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
      fflush(stdout);
      report(&o, kn, kernels[kn], what, f, &pi, &info, &ms, base, ci == 0);
      xk_func_free(f);
    }
  }
  if (rc)
    fprintf(stderr, "gemm: %s\n", d.msg);
  for (int g = 0; g < NGPUS; g++) {
    if (o.md[g]) {
      fprintf(o.md[g], "\nBest at 4096^3 (MODELED, %s):", gpu_names[g]);
      for (int kn = 0; kn < 3; kn++)
        if (o.best[g][kn] > 0)
          fprintf(o.md[g], " %s %.1f TFLOP/s (%s);", kernels[kn], o.best[g][kn],
                  o.best_cfg[g][kn]);
      fprintf(o.md[g], "\n");
      printf("%s best at 4096^3 (MODELED): f16 %.1f (%s), bf16 %.1f (%s) "
             "TFLOP/s\n",
             gpu_files[g], o.best[g][0], o.best_cfg[g][0], o.best[g][1],
             o.best_cfg[g][1]);
      fclose(o.md[g]);
      printf("wrote %s\n", path[g][1]);
    }
    if (o.csv[g]) {
      fclose(o.csv[g]);
      printf("wrote %s\n", path[g][0]);
    }
  }
  LLVMDisposeTargetMachine(tm);
  xk_dsl_close(dsl);
  return rc;
}
