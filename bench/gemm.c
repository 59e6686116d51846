/* GEMM variants for H100 without an H100: for each config of gemm_f16 and
 * gemm_f32 (the defaults, the tune space, and large tensor-core tiles),
 * ptxas resources for sm_90 and a modeled H100 time on f16 4096^3 and the
 * randomized-SVD shapes (L=32768, F=4096, r=448: X.Omega [L,F]x[F,r],
 * X^T.Y [F,L]x[L,r], Q^T.X [r,L]x[L,F]).
 *
 * The counters are MEASURED through the sim target on reduced problems
 * that keep the per-block behaviour of the big ones: the variant
 * specialized for 16-byte aligned buffers and dims divisible by 16 (what a
 * launch on these shapes selects), a 2 x 2 grid of full tiles, run with
 * K = 2 and 4 BLOCK_K steps. Every counter is linear in the K steps per
 * block and in the blocks, so the two runs give each block's fixed part
 * and per-step part, scaled to the big shape's blocks and K. Only the
 * DRAM minimum (A, B, C once each: L2 holds the panels) is analytic.
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
#include "perf_model.h"
#include "ptxas.h"
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

typedef struct {
  xk_sim_counters c2, c4; /* 4 blocks, 2 and 4 K steps */
} measured;

static int measure(const xk_func *f, int f16, measured *m, xk_diag *d) {
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

static int model(const xk_func *f, int f16, const xk_ptxas_info *pi,
                 const xk_nvptx_info *info, const measured *ms, const shape *s,
                 xk_sim_counters *c, xk_perf_estimate *e, xk_diag *d) {
  int64_t bm = const_of(f, "BLOCK_M"), bn = const_of(f, "BLOCK_N");
  int64_t bk = const_of(f, "BLOCK_K");
  int64_t esz = f16 ? 2 : 4;
  int64_t blocks = cdiv(s->M, bm) * cdiv(s->N, bn);
  scale(&ms->c2, &ms->c4, cdiv(s->K, bk), blocks, c);
  c->unique_bytes = (s->M * s->K + s->K * s->N + s->M * s->N) * esz;
  xk_perf_launch l = {pi->registers, info->shared_bytes, info->threads, blocks};
  return xk_perf_model(c, &l, e, d);
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
      measured ms;
      if (measure(f, kn == 0, &ms, &d)) {
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
        if (model(f, kn == 0, &pi, &info, &ms, &shapes[si], &c, &e, &d)) {
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
