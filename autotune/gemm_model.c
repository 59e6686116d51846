#include "gemm_model.h"

#include "compile.h"

#include <stdlib.h>
#include <string.h>

static int64_t cdiv(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

static int64_t const_of(const xk_func *f, const char *n, int64_t dflt) {
  for (int i = 0; i < f->nconsts; i++)
    if (!strcmp(f->consts[i].name, n))
      return f->consts[i].value;
  return dflt;
}

int xk_gemm_model_esize(const char *kernel) {
  static const struct {
    const char *prefix;
    int esize;
  } kinds[] = {{"gemm_f32", 4},     {"gemm_f16", 2},     {"gemm_bf16", 2},
               {"gemm_sk_f16", 2},  {"gemm_sk_bf16", 2}, {"gemm_skt_f16", 2},
               {"gemm_skt_bf16", 2}};
  for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
    if (!strcmp(kernel, kinds[i].prefix))
      return kinds[i].esize;
  return 0;
}

/* bytes of pointer argument i's elements */
static size_t elem_bytes(const xk_func *f, int i) {
  return f->args[i].type.elem == XK_F32 ? 4 : 2;
}

/* One sim run of f on M x N x K (grid z: SPLIT) with aligned inputs. */
static int sim_run(xk_sim_fn fn, const xk_func *f, const xk_nvptx_info *info,
                   int32_t M, int32_t N, int32_t K, xk_sim_counters *c,
                   xk_diag *d) {
  size_t ea = elem_bytes(f, 0), ec = elem_bytes(f, 2);
  void *a = aligned_alloc(128, (size_t)M * K * ea);
  void *b = aligned_alloc(128, (size_t)K * N * ea);
  void *cm = calloc((size_t)M * N, ec);
  if (!a || !b || !cm) {
    free(a);
    free(b);
    free(cm);
    return xk_diag_set(d, "out of memory");
  }
  /* ones: exact in every dtype, the values do not matter here */
  uint16_t one = f->args[0].type.elem == XK_BF16 ? 0x3f80 : 0x3c00;
  for (int t = 0; t < 2; t++) {
    void *p = t ? b : a;
    size_t n = t ? (size_t)K * N : (size_t)M * K;
    for (size_t i = 0; i < n; i++)
      ea == 2 ? (void)(((uint16_t *)p)[i] = one) : (void)(((float *)p)[i] = 1);
  }
  void *args[6] = {&a, &b, &cm, &M, &N, &K};
  int32_t grid[3] = {(int32_t)(M / const_of(f, "BLOCK_M", 1)),
                     (int32_t)(N / const_of(f, "BLOCK_N", 1)),
                     (int32_t)const_of(f, "SPLIT", 1)};
  int rc =
      xk_sim_launch(fn, args, grid, info->threads, info->shared_bytes, c, d);
  free(a);
  free(b);
  free(cm);
  return rc;
}

/* c2 + (steps - 2) * (c4 - c2) / 2 per `nb` measured blocks, times
 * blocks / nb */
static void scale(const xk_sim_counters *c2, const xk_sim_counters *c4,
                  int64_t nb, int64_t steps, int64_t blocks,
                  xk_sim_counters *o) {
  xk_sim_counters_affine(c2, (4 - steps) * blocks, c4, (steps - 2) * blocks,
                         2 * nb, blocks, o);
}

int xk_gemm_measure(const xk_func *f, xk_gemm_measured *m, xk_diag *d) {
  if (f->nargs != 6 || f->args[0].type.dtype != XK_PTR ||
      f->args[2].type.dtype != XK_PTR)
    return xk_diag_set(d,
                       "gemm model: %s does not take (A, B, C, M, N, K) "
                       "pointers and sizes",
                       f->name);
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
  int64_t bm = const_of(f, "BLOCK_M", 1), bn = const_of(f, "BLOCK_N", 1);
  int64_t bk = const_of(f, "BLOCK_K", 1), sp = const_of(f, "SPLIT", 1);
  rc = xk_jit_add(j, mod, d) || xk_jit_lookup(j, f->name, &fn, d);
  /* every split gets 2, then 4 BLOCK_K steps */
  if (!rc)
    rc = sim_run((xk_sim_fn)(void (*)(void))fn, f, &si, (int32_t)(2 * bm),
                 (int32_t)(2 * bn), (int32_t)(2 * bk * sp), &m->c2, d) ||
         sim_run((xk_sim_fn)(void (*)(void))fn, f, &si, (int32_t)(2 * bm),
                 (int32_t)(2 * bn), (int32_t)(4 * bk * sp), &m->c4, d);
  xk_jit_free(j);
  return rc ? -1 : 0;
}

int64_t xk_gemm_dram_bytes(const xk_gpu *g, int64_t gm, int64_t gn, int64_t gs,
                           int64_t conc, double a_panel, double b_panel,
                           double c_bytes) {
  int64_t blocks = gm * gn * gs;
  /* wave index + 1 that last touched each panel (one per split) */
  int64_t *seen_a = calloc((size_t)(gm * gs), sizeof *seen_a);
  int64_t *seen_b = calloc((size_t)(gn * gs), sizeof *seen_b);
  if (!seen_a || !seen_b) {
    free(seen_a);
    free(seen_b);
    return -1;
  }
  double bytes = c_bytes, prev = 0;
  for (int64_t w = 0; w * conc < blocks; w++) {
    int64_t end = (w + 1) * conc < blocks ? (w + 1) * conc : blocks;
    int prev_fits = prev <= (double)g->l2_bytes;
    double set = 0;
    for (int64_t b = w * conc; b < end; b++) {
      int64_t z = b / (gm * gn), xy = b % (gm * gn);
      int64_t *pa = &seen_a[z * gm + xy % gm], *pb = &seen_b[z * gn + xy / gm];
      if (*pa != w + 1) {
        set += a_panel;
        if (!(prev_fits && w > 0 && *pa == w))
          bytes += a_panel;
        *pa = w + 1;
      }
      if (*pb != w + 1) {
        set += b_panel;
        if (!(prev_fits && w > 0 && *pb == w))
          bytes += b_panel;
        *pb = w + 1;
      }
    }
    prev = set;
  }
  free(seen_a);
  free(seen_b);
  return (int64_t)bytes;
}

int xk_gemm_estimate_on(const xk_gpu *g, const xk_func *f,
                        const xk_ptxas_info *pi, const xk_nvptx_info *info,
                        const xk_gemm_measured *ms, int64_t M, int64_t N,
                        int64_t K, xk_sim_counters *c, xk_perf_estimate *e,
                        xk_diag *d) {
  int64_t bm = const_of(f, "BLOCK_M", 1), bn = const_of(f, "BLOCK_N", 1);
  int64_t bk = const_of(f, "BLOCK_K", 1), sp = const_of(f, "SPLIT", 1);
  int64_t ea = (int64_t)elem_bytes(f, 0), ec = (int64_t)elem_bytes(f, 2);
  int64_t gm = cdiv(M, bm), gn = cdiv(N, bn);
  int64_t blocks = gm * gn * sp;
  /* the kernel's slice of K per split: whole BLOCK_K steps */
  int64_t ks = cdiv(cdiv(K, sp), bk) * bk;
  scale(&ms->c2, &ms->c4, 4 * sp, ks / bk, blocks, c);
  xk_perf_launch l = {pi->registers, info->shared_bytes, info->threads, blocks};
  /* a first estimate for the blocks resident at once */
  c->unique_bytes = (M * K + K * N) * ea + M * N * ec;
  if (xk_perf_model_gpu(g, c, &l, e, d))
    return -1;
  int64_t by = xk_gemm_dram_bytes(
      g, gm, gn, sp, (int64_t)g->sms * e->blocks_per_sm,
      (double)(M * K * ea) / (double)(gm * sp),
      (double)(K * N * ea) / (double)(gn * sp), (double)(M * N * ec));
  if (by < 0)
    return xk_diag_set(d, "out of memory");
  c->unique_bytes = by;
  return xk_perf_model_gpu(g, c, &l, e, d);
}

int xk_gemm_estimate(const xk_func *f, const xk_ptxas_info *pi,
                     const xk_nvptx_info *info, const xk_gemm_measured *ms,
                     int64_t M, int64_t N, int64_t K, xk_sim_counters *c,
                     xk_perf_estimate *e, xk_diag *d) {
  return xk_gemm_estimate_on(xk_gpu_find("h100-sxm"), f, pi, info, ms, M, N, K,
                             c, e, d);
}
