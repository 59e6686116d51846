/* GEMM variants for H100 without an H100: for each config of gemm_f16 and
 * gemm_f32 (the defaults, the tune space, and large tensor-core tiles),
 * ptxas resources for sm_90 and a modeled H100 time on f16 4096^3 and the
 * randomized-SVD shapes (L=32768, F=4096, r=448: X.Omega [L,F]x[F,r],
 * X^T.Y [F,L]x[L,r], Q^T.X [r,L]x[L,F]).
 *
 * The counters fed to the perf model are derived analytically from the
 * tiling, which is what the lowering does per block: every block reads
 * its A [BM,K] and B [K,BN] panels once through global memory (the sim
 * tests show these loads coalesced, so sectors = bytes / 32), writes its
 * C tile once, and issues BM*BN*K / 4096 m16n8k16 mma per block (f16) or
 * BM*BN*K / 32 FMA warp-instructions (f32). DRAM traffic is the distinct
 * bytes (A, B, C once: L2 holds the panels). Scaling from a sim run of a
 * small shape to these shapes multiplies exactly these per-block counts
 * by the block count, so the model needs no emulation of 4096^3.
 *
 * Writes bench/results/gemm-model-<date>.csv. Ratios are against the
 * default config of the same kernel, measured in the same run. */
#include "../dsl/dsl.h"
#include "compile.h"
#include "perf_model.h"
#include "ptxas.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

/* 0 on success; fills regs/spill/smem and threads for sm_90 */
static int resources(const xk_func *f, LLVMTargetMachineRef tm,
                     xk_ptxas_info *pi, xk_nvptx_info *info, xk_diag *d) {
  LLVMModuleRef m;
  char sym[128];
  xk_variant_symbol(f, "sm_90", sym, sizeof sym);
  if (xk_compile_llvm(f, "sm_90", tm, sym, 1, &m, info, d))
    return -1;
  char *ptx = NULL;
  size_t len = 0;
  int rc = xk_target_emit(m, tm, 0, &ptx, &len, d);
  LLVMDisposeModule(m);
  if (rc)
    return -1;
  pi->registers = pi->spill_bytes = -1;
  pi->shared_bytes = info->shared_bytes;
  const char *px = xk_ptxas_find();
  if (px) {
    char path[] = "/tmp/xk_gemm_XXXXXX";
    int fd = mkstemp(path);
    FILE *fp = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!fp) {
      free(ptx);
      return xk_diag_set(d, "cannot write a temporary PTX file");
    }
    fwrite(ptx, 1, len, fp);
    fclose(fp);
    rc = xk_ptxas_run(px, "sm_90", path, "/dev/null", pi, d);
    unlink(path);
  }
  free(ptx);
  return rc;
}

static int64_t const_of(const xk_func *f, const char *n) {
  for (int i = 0; i < f->nconsts; i++)
    if (!strcmp(f->consts[i].name, n))
      return f->consts[i].value;
  return 0;
}

static double model(const xk_func *f, int f16, const xk_ptxas_info *pi,
                    const xk_nvptx_info *info, const shape *s,
                    xk_perf_estimate *e, xk_diag *d) {
  int64_t bm = const_of(f, "BLOCK_M"), bn = const_of(f, "BLOCK_N");
  int64_t esz = f16 ? 2 : 4;
  int64_t blocks = cdiv(s->M, bm) * cdiv(s->N, bn);
  xk_sim_counters c;
  memset(&c, 0, sizeof c);
  c.blocks = blocks;
  c.threads = info->threads;
  c.gld_bytes = blocks * (bm + bn) * s->K * esz;
  c.gld_sectors = c.gld_ideal_sectors = c.gld_bytes / 32;
  c.gld_requests = c.gld_sectors / 4;
  c.gst_bytes = s->M * s->N * esz;
  c.gst_sectors = c.gst_ideal_sectors = c.gst_bytes / 32;
  c.gst_requests = c.gst_sectors / 4;
  c.unique_bytes = (s->M * s->K + s->K * s->N + s->M * s->N) * esz;
  int64_t macs = blocks * bm * bn * s->K;
  if (f16)
    c.inst[XK_SIM_MMA] = macs / 2048;
  else
    c.inst[XK_SIM_FMA] = macs / 32;
  xk_perf_launch l = {pi->registers, info->shared_bytes, info->threads, blocks};
  if (xk_perf_model(&c, &l, e, d))
    return -1;
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
  char date[16], path[512];
  time_t now = time(NULL);
  strftime(date, sizeof date, "%Y-%m-%d", gmtime(&now));
  mkdir(XK_SRC "/bench/results", 0777);
  snprintf(path, sizeof path, XK_SRC "/bench/results/gemm-model-h100-%s.csv",
           date);
  FILE *csv = fopen(path, "w");
  if (!csv) {
    fprintf(stderr, "gemm: cannot write %s\n", path);
    return 1;
  }
  fprintf(csv, "kernel,config,regs,spill_bytes,smem,shape,model_us,"
               "model_tflops,bound,occupancy,vs_default\n");
  printf("no GPU here: times are the perf model's H100 estimate (see the "
         "header of bench/gemm.c)\n");
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
      xk_func *f = NULL;
      if (xk_compile_ir(dsl, k, over, cf->bm ? 5 : 0, &f, &d)) {
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
      if (resources(f, tm, &pi, &info, &d)) {
        printf("%-9s %-22s skipped: %s\n", kernels[kn], what, d.msg);
        xk_func_free(f);
        continue;
      }
      printf("%-9s %-22s regs %3d spill %3d smem %6d\n", kernels[kn], what,
             pi.registers, pi.spill_bytes, info.shared_bytes);
      for (int si = 0; si < NSHAPES; si++) {
        xk_perf_estimate e;
        if (model(f, kn == 0, &pi, &info, &shapes[si], &e, &d)) {
          printf("    %-8s does not fit: %s\n", shapes[si].name, d.msg);
          continue;
        }
        double fl = 2.0 * shapes[si].M * shapes[si].N * shapes[si].K;
        if (ci == 0)
          base[si] = e.seconds;
        double ratio = base[si] > 0 ? base[si] / e.seconds : 0;
        printf("    %-8s %9.1f us %7.1f TFLOP/s  %-7s occ %.2f  x%.2f vs "
               "default\n",
               shapes[si].name, e.seconds * 1e6, fl / e.seconds / 1e12, e.bound,
               e.occupancy, ratio);
        fprintf(csv, "%s,%s,%d,%d,%d,%s,%.2f,%.2f,%s,%.3f,%.3f\n", kernels[kn],
                what, pi.registers, pi.spill_bytes, info.shared_bytes,
                shapes[si].name, e.seconds * 1e6, fl / e.seconds / 1e12,
                e.bound, e.occupancy, ratio);
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
