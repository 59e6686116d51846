/* The sim target: every kernels.xk kernel through the per-thread lowering
 * and the SIMT emulator against kernel_cases.c's references; the counters
 * against counts derived by plain C from addresses and layouts; the
 * emulator's semantics and its errors (deadlock, bad launches). */
#include "compile.h"
#include "jit_util.h"
#include "kernel_cases.h"
#include "layout.h"
#include "sim.h"

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Static calls to `callee` in f's unoptimized sim lowering. */
static int static_calls(const xk_func *f, const char *callee) {
  LLVMTargetMachineRef tm;
  LLVMModuleRef m;
  xk_diag d;
  ck_assert_msg(xk_target_machine("sim", &tm, &d) == 0, "%s", d.msg);
  ck_assert_msg(xk_compile_llvm(f, "sim", tm, f->name, 0, &m, NULL, &d) == 0,
                "%s", d.msg);
  LLVMDisposeTargetMachine(tm);
  int n = 0;
  for (LLVMValueRef fn = LLVMGetFirstFunction(m); fn;
       fn = LLVMGetNextFunction(fn))
    for (LLVMBasicBlockRef b = LLVMGetFirstBasicBlock(fn); b;
         b = LLVMGetNextBasicBlock(b))
      for (LLVMValueRef i = LLVMGetFirstInstruction(b); i;
           i = LLVMGetNextInstruction(i)) {
        if (!LLVMIsACallInst(i))
          continue;
        LLVMValueRef c = LLVMGetCalledValue(i);
        size_t len;
        const char *name = LLVMGetValueName2(c, &len);
        n += !strcmp(name, callee);
      }
  LLVMDisposeModule(m);
  return n;
}

static xk_func *trace(xk_dsl *dsl, const char *name, const xk_constexpr *over,
                      int nover) {
  xk_func *f;
  xk_diag d;
  int k = xk_dsl_find(dsl, name);
  ck_assert_msg(k >= 0, "no kernel %s", name);
  ck_assert_msg(xk_compile_ir(dsl, k, over, nover, &f, &d) == 0, "%s", d.msg);
  return f;
}

/* ---- every kernels.xk kernel ---- */

typedef struct {
  const char *kernel;
  int n;
  xk_constexpr over[5];
} config;

/* the default and two other points of each tune space; the GEMMs also
 * software-pipelined (num_stages > 1) */
static const config configs[] = {
    {"vadd", 0, {{0}}},
    {"vadd", 2, {{"BLOCK", 256}, {"num_warps", 2}}},
    {"vadd", 2, {{"BLOCK", 2048}, {"num_warps", 8}}},
    {"softmax", 0, {{0}}},
    {"softmax", 2, {{"BLOCK_N", 64}, {"num_warps", 1}}},
    {"softmax", 2, {{"BLOCK_N", 512}, {"num_warps", 4}}},
    {"gemm_f32", 0, {{0}}},
    {"gemm_f32",
     4,
     {{"BLOCK_M", 16}, {"BLOCK_N", 16}, {"BLOCK_K", 16}, {"num_warps", 2}}},
    {"gemm_f32",
     4,
     {{"BLOCK_M", 64}, {"BLOCK_N", 32}, {"BLOCK_K", 16}, {"num_warps", 8}}},
    {"gemm_f32", 1, {{"num_stages", 2}}},
    {"gemm_f32",
     5,
     {{"BLOCK_M", 64},
      {"BLOCK_N", 32},
      {"BLOCK_K", 16},
      {"num_warps", 8},
      {"num_stages", 3}}},
    {"gemm_f16", 0, {{0}}},
    {"gemm_f16", 1, {{"num_stages", 2}}},
    {"gemm_f16",
     5,
     {{"BLOCK_M", 64},
      {"BLOCK_N", 64},
      {"BLOCK_K", 16},
      {"num_warps", 4},
      {"num_stages", 3}}},
    {"gemm_f16",
     4,
     {{"BLOCK_M", 16}, {"BLOCK_N", 32}, {"BLOCK_K", 32}, {"num_warps", 2}}},
    {"gemm_f16",
     4,
     {{"BLOCK_M", 64}, {"BLOCK_N", 64}, {"BLOCK_K", 16}, {"num_warps", 4}}},
    {"rebuild_k", 0, {{0}}},
    {"rebuild_k", 2, {{"BLOCK_N", 16}, {"BLOCK_R", 16}}},
    {"rebuild_k", 3, {{"BLOCK_N", 64}, {"BLOCK_R", 32}, {"R", 40}}},
};
#define NCONFIGS ((int)(sizeof configs / sizeof *configs))

static xk_dsl *kernels;

static void open_kernels(void) {
  xk_diag d;
  if (xk_dsl_open(XK_SRC "/kernels.xk", &kernels, &d))
    fprintf(stderr, "test_sim: kernels.xk not usable: %s\n", d.msg);
}

static void close_kernels(void) {
  xk_dsl_close(kernels);
  kernels = NULL;
}

static int64_t const_of(const xk_func *f, const char *name) {
  for (int i = 0; i < f->nconsts; i++)
    if (!strcmp(f->consts[i].name, name))
      return f->consts[i].value;
  return -1;
}

static int arg_index(const xk_func *f, const char *name) {
  for (int i = 0; i < f->nargs; i++)
    if (!strcmp(f->args[i].name, name))
      return i;
  return -1;
}

/* A GEMM's dot loop runs one FMA per element of its BM x BN x BK block
 * product: the count the lowering must report. */
static int64_t gemm_fmas(const xk_func *f, const xk_case *c) {
  int64_t bm = const_of(f, "BLOCK_M"), bn = const_of(f, "BLOCK_N");
  int64_t bk = const_of(f, "BLOCK_K");
  int64_t K = c->ival[arg_index(f, "K")];
  int64_t blocks = (int64_t)c->grid[0] * c->grid[1] * c->grid[2];
  return blocks * ((K + bk - 1) / bk) * bm * bn * bk / 32;
}

/* On tensor cores every warp runs mtiles x ntiles mma per 16-wide k step
 * of its accumulator layout (layout.h), replicated warps included. */
static int64_t gemm_mmas(const xk_func *f, const xk_case *c) {
  int32_t shape[2] = {(int32_t)const_of(f, "BLOCK_M"),
                      (int32_t)const_of(f, "BLOCK_N")};
  int64_t bk = const_of(f, "BLOCK_K");
  int64_t K = c->ival[arg_index(f, "K")];
  int64_t blocks = (int64_t)c->grid[0] * c->grid[1] * c->grid[2];
  xk_layout l;
  ck_assert_int_eq(xk_layout_mma(&l, shape, f->num_warps), 0);
  xk_mma_tiles t = xk_layout_mma_tiles(&l);
  return blocks * ((K + bk - 1) / bk) * (bk / 16) * f->num_warps * t.mtiles *
         t.ntiles;
}

/* A pipelined GEMM copies each A and B block once per K step, a thread
 * per group of `vec` elements (cp.async only when a group is >= 4 bytes:
 * unspecialized f16 loads and stores), counted per warp instruction. */
static int64_t gemm_cpasyncs(const xk_func *f, const xk_case *c, int vec) {
  int64_t bm = const_of(f, "BLOCK_M"), bn = const_of(f, "BLOCK_N");
  int64_t bk = const_of(f, "BLOCK_K");
  int64_t K = c->ival[arg_index(f, "K")];
  int64_t blocks = (int64_t)c->grid[0] * c->grid[1] * c->grid[2];
  return blocks * ((K + bk - 1) / bk) * (bm * bk + bk * bn) / vec / 32;
}

START_TEST(test_kernel_config) {
  const config *cf = &configs[_i];
  ck_assert_msg(kernels != NULL, "kernels.xk did not load");
  xk_func *f = trace(kernels, cf->kernel, cf->over, cf->n);
  xk_test_sim k;
  xk_diag d;
  ck_assert_msg(xk_test_jit_sim(f, &k, &d) == 0, "%s: %s", cf->kernel, d.msg);
  for (int s = 0; s < xk_case_nsizes(cf->kernel); s++) {
    xk_case c;
    double err;
    xk_sim_counters cnt;
    ck_assert_msg(xk_case_setup(cf->kernel, f, s, &c, &d) == 0, "%s", d.msg);
    ck_assert_msg(xk_sim_launch(k.fn, c.args, c.grid, k.info.threads,
                                k.info.shared_bytes, &cnt, &d) == 0,
                  "%s %s: %s", cf->kernel, c.desc, d.msg);
    int rc = xk_case_check(&c, &err, &d);
    printf("sim %-9s %-58s err %.2e gld eff %.3f smem conflicts %lld\n",
           cf->kernel, c.desc, err, xk_sim_gld_efficiency(&cnt),
           (long long)cnt.smem_conflicts);
    ck_assert_msg(rc == 0, "%s", d.msg);
    ck_assert_int_eq(cnt.blocks, (int64_t)c.grid[0] * c.grid[1] * c.grid[2]);
    if (!strcmp(cf->kernel, "gemm_f32"))
      ck_assert_int_eq(cnt.inst[XK_SIM_FMA], gemm_fmas(f, &c));
    if (!strcmp(cf->kernel, "gemm_f32") && f->num_stages > 1)
      ck_assert_int_eq(cnt.inst[XK_SIM_CPASYNC], gemm_cpasyncs(f, &c, 1));
    else
      ck_assert_int_eq(cnt.inst[XK_SIM_CPASYNC], 0);
    if (!strcmp(cf->kernel, "gemm_f16"))
      ck_assert_int_eq(cnt.inst[XK_SIM_MMA], gemm_mmas(f, &c));
    xk_case_free(&c);
  }
  xk_jit_free(k.jit);
  xk_func_free(f);
}
END_TEST

/* The default gemm_f16 config specialized for 16-byte aligned buffers and
 * dims divisible by 16 (what bench/gemm models), with num_stages 1, 2, 3:
 * 128-bit global loads (16-byte cp.async when pipelined) that coalesce
 * fully, no bank conflicts, the C reference's result. */
START_TEST(test_gemm_f16_aligned) {
  ck_assert_msg(kernels != NULL, "kernels.xk did not load");
  int k = xk_dsl_find(kernels, "gemm_f16");
  static const int spec[6] = {XK_SPEC_ALIGN16, XK_SPEC_ALIGN16, XK_SPEC_ALIGN16,
                              XK_SPEC_DIV16,   XK_SPEC_DIV16,   XK_SPEC_DIV16};
  xk_constexpr stages = {"num_stages", 1 + _i};
  xk_func *f;
  xk_diag d;
  ck_assert_msg(xk_compile_ir_spec(kernels, k, &stages, 1, spec, &f, &d) == 0,
                "%s", d.msg);
  xk_test_sim sk;
  ck_assert_msg(xk_test_jit_sim(f, &sk, &d) == 0, "%s", d.msg);
  int32_t M = 64, N = 96, K = 80;
  uint16_t *a = aligned_alloc(128, (size_t)M * K * 2);
  uint16_t *b = aligned_alloc(128, (size_t)K * N * 2);
  uint16_t *cm = aligned_alloc(128, (size_t)M * N * 2);
  for (int i = 0; i < M * K; i++)
    a[i] = xk_f32_to_f16((float)((i * 7919) % 23 - 11) / 16.0f);
  for (int i = 0; i < K * N; i++)
    b[i] = xk_f32_to_f16((float)((i * 104729) % 19 - 9) / 8.0f);
  void *pa = a, *pb = b, *pc = cm;
  void *args[6] = {&pa, &pb, &pc, &M, &N, &K};
  int64_t bm = const_of(f, "BLOCK_M"), bn = const_of(f, "BLOCK_N");
  int32_t grid[3] = {(int32_t)((M + bm - 1) / bm), (int32_t)((N + bn - 1) / bn),
                     1};
  xk_sim_counters c;
  ck_assert_msg(xk_sim_launch(sk.fn, args, grid, sk.info.threads,
                              sk.info.shared_bytes, &c, &d) == 0,
                "%s", d.msg);
  double maxerr = 0, maxref = 0;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double r = 0;
      for (int q = 0; q < K; q++)
        r += (double)xk_f16_to_f32(a[i * K + q]) * xk_f16_to_f32(b[q * N + j]);
      double e = fabs(xk_f16_to_f32(cm[i * N + j]) - r);
      maxerr = e > maxerr ? e : maxerr;
      maxref = fabs(r) > maxref ? fabs(r) : maxref;
    }
  printf("sim gemm_f16 aligned M=%d N=%d K=%d stages %d: err %.2e gld eff "
         "%.3f gst eff %.3f smem conflicts %lld cp.async %lld\n",
         M, N, K, f->num_stages, maxerr / maxref, xk_sim_gld_efficiency(&c),
         xk_sim_gst_efficiency(&c), (long long)c.smem_conflicts,
         (long long)c.inst[XK_SIM_CPASYNC]);
  xk_case kc = {.grid = {grid[0], grid[1], grid[2]}};
  kc.ival[arg_index(f, "K")] = K;
  int64_t want = f->num_stages > 1 ? gemm_cpasyncs(f, &kc, 8) : 0;
  ck_assert_int_eq(c.inst[XK_SIM_CPASYNC], want);
  ck_assert_msg(maxerr <= 2e-2 * maxref, "rel. err %g", maxerr / maxref);
  ck_assert_msg(xk_sim_gld_efficiency(&c) >= 0.95, "gld eff %.3f",
                xk_sim_gld_efficiency(&c));
  ck_assert_int_eq(c.smem_conflicts, 0);
  free(a);
  free(b);
  free(cm);
  xk_jit_free(sk.jit);
  xk_func_free(f);
}
END_TEST

/* The strided GEMM of the randomized SVD (gemm_st_<B>_<C>) pipelined,
 * with A read transposed (column stride 1), ragged sizes and beta = 0.5
 * accumulating into C, against a double-precision reference. Its f16 B is
 * converted before the dot, so only A's loads become copies. */
START_TEST(test_gemm_st_pipelined) {
  static const char *const names[] = {"gemm_st_f32_f32", "gemm_st_f16_f32"};
  const char *name = names[_i / 2];
  int f16 = _i / 2 == 1;
  xk_constexpr stages = {"num_stages", 2 + _i % 2};
  ck_assert_msg(kernels != NULL, "kernels.xk did not load");
  xk_func *f = trace(kernels, name, &stages, 1);
  xk_test_sim sk;
  xk_diag d;
  ck_assert_msg(xk_test_jit_sim(f, &sk, &d) == 0, "%s", d.msg);
  int32_t M = 37, N = 45, K = 70, sam = 1, sak = M, sbk = N, sbn = 1, ldc = N;
  float beta = 0.5f;
  float *a = malloc(sizeof *a * (size_t)M * K);
  float *c = malloc(sizeof *c * (size_t)M * N);
  float *bf = malloc(sizeof *bf * (size_t)K * N);
  uint16_t *bh = malloc(sizeof *bh * (size_t)K * N);
  double *ref = malloc(sizeof *ref * (size_t)M * N);
  for (int i = 0; i < M * K; i++)
    a[i] = (float)((i * 7919) % 23 - 11) / 16.0f;
  for (int i = 0; i < K * N; i++) {
    bf[i] = (float)((i * 104729) % 19 - 9) / 8.0f;
    bh[i] = xk_f32_to_f16(bf[i]);
  }
  for (int i = 0; i < M * N; i++)
    c[i] = (float)(i % 7) - 3.0f;
  double maxref = 0;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double r = beta * c[i * ldc + j];
      for (int q = 0; q < K; q++)
        r += (double)a[i * sam + q * sak] * bf[q * sbk + j * sbn];
      ref[i * N + j] = r;
      maxref = fabs(r) > maxref ? fabs(r) : maxref;
    }
  void *pa = a, *pb = f16 ? (void *)bh : (void *)bf, *pc = c;
  void *args[12] = {&pa,  &pb,  &pc,  &M,   &N,   &K,
                    &sam, &sak, &sbk, &sbn, &ldc, &beta};
  int64_t bm = const_of(f, "BLOCK_M"), bn = const_of(f, "BLOCK_N");
  int32_t grid[3] = {(int32_t)((M + bm - 1) / bm), (int32_t)((N + bn - 1) / bn),
                     1};
  xk_sim_counters cnt;
  ck_assert_msg(xk_sim_launch(sk.fn, args, grid, sk.info.threads,
                              sk.info.shared_bytes, &cnt, &d) == 0,
                "%s", d.msg);
  double maxerr = 0;
  for (int i = 0; i < M * N; i++) {
    double e = fabs(c[i] - ref[i]);
    maxerr = e > maxerr ? e : maxerr;
  }
  printf("sim %s stages %d M=%d N=%d K=%d: err %.2e cp.async %lld\n", name,
         f->num_stages, M, N, K, maxerr / maxref,
         (long long)cnt.inst[XK_SIM_CPASYNC]);
  ck_assert_msg(maxerr <= 1e-4 * maxref, "rel. err %g", maxerr / maxref);
  /* A's block, one 4-byte copy per element, per K step of every block */
  int64_t bk = const_of(f, "BLOCK_K");
  int64_t want = (int64_t)grid[0] * grid[1] * ((K + bk - 1) / bk) * bm * bk;
  if (!f16) /* B too */
    want += (int64_t)grid[0] * grid[1] * ((K + bk - 1) / bk) * bk * bn;
  ck_assert_int_eq(cnt.inst[XK_SIM_CPASYNC], want / 32);
  free(a);
  free(c);
  free(bf);
  free(bh);
  free(ref);
  xk_jit_free(sk.jit);
  xk_func_free(f);
}
END_TEST

/* ---- counters on small kernels, expected counts from the layouts ---- */

static xk_dsl *small;

static void open_small(void) {
  xk_diag d;
  if (xk_dsl_open(XK_SRC "/tests/data/sim_kernels.xk", &small, &d))
    fprintf(stderr, "test_sim: sim_kernels.xk not usable: %s\n", d.msg);
}

static void close_small(void) {
  xk_dsl_close(small);
  small = NULL;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static int distinct(uint64_t *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_u64);
  int k = 0;
  for (int i = 0; i < n; i++)
    k += !i || v[i] != v[i - 1];
  return k;
}

/* Sectors (and ideal sectors) of the warp-requests a 4-byte load of a tile
 * in layout l makes, element (r, c) at byte address addr(r, c). */
typedef uint64_t (*addr_fn)(const int *c, const void *ctx);
static void tile_sectors(const xk_layout *l, addr_fn addr, const void *ctx,
                         int64_t *sectors, int64_t *ideal) {
  *sectors = *ideal = 0;
  for (int w = 0; w < l->num_warps; w++)
    for (int r = 0; r < xk_layout_nregs(l); r++) {
      uint64_t s[32], b[32];
      for (int lane = 0; lane < 32; lane++) {
        int c[XK_MAX_RANK];
        xk_layout_coords(l, lane, w, r, c);
        b[lane] = addr(c, ctx);
        s[lane] = b[lane] >> 5;
      }
      *sectors += distinct(s, 32);
      *ideal += (4 * distinct(b, 32) + 31) / 32;
    }
}

START_TEST(test_coalesced_copy) {
  ck_assert_msg(small != NULL, "sim_kernels.xk did not load");
  xk_func *f = trace(small, "copy", NULL, 0);
  xk_test_sim k;
  xk_diag d;
  ck_assert_msg(xk_test_jit_sim(f, &k, &d) == 0, "%s", d.msg);
  static const int32_t sizes[] = {4096, 1000, 8};
  for (int t = 0; t < 3; t++) {
    int32_t n = sizes[t];
    float *x = aligned_alloc(128, 4096 * 4), *y = aligned_alloc(128, 4096 * 4);
    for (int i = 0; i < n; i++)
      x[i] = (float)i * 0.5f;
    void *px = x, *py = y;
    void *args[3] = {&px, &py, &n};
    int32_t grid[3] = {(n + 127) / 128, 1, 1};
    xk_sim_counters c;
    ck_assert_msg(xk_sim_launch(k.fn, args, grid, k.info.threads,
                                k.info.shared_bytes, &c, &d) == 0,
                  "%s", d.msg);
    for (int i = 0; i < n; i++)
      ck_assert_float_eq(y[i], x[i]);
    /* n is a multiple of 8: 32-byte sectors exactly cover the data */
    ck_assert_int_eq(c.gld_sectors, n / 8);
    ck_assert_int_eq(c.gst_sectors, n / 8);
    ck_assert_int_eq(c.gld_requests, (n + 31) / 32);
    ck_assert_int_eq(c.gld_bytes, 4 * n);
    ck_assert_int_eq(c.unique_bytes, 8 * n);
    ck_assert(xk_sim_gld_efficiency(&c) == 1.0);
    ck_assert(xk_sim_gst_efficiency(&c) == 1.0);
    ck_assert_int_eq(c.smem_requests, 0);
    free(x);
    free(y);
  }
  xk_jit_free(k.jit);
  xk_func_free(f);
}
END_TEST

typedef struct {
  uint64_t base;
  int ld;
} col_ctx;

static uint64_t col_addr(const int *c, const void *p) {
  const col_ctx *x = p;
  return x->base + 4 * (uint64_t)(c[1] * x->ld + c[0]);
}

START_TEST(test_column_strided) {
  ck_assert_msg(small != NULL, "sim_kernels.xk did not load");
  xk_func *f = trace(small, "colread", NULL, 0);
  xk_test_sim k;
  xk_diag d;
  ck_assert_msg(xk_test_jit_sim(f, &k, &d) == 0, "%s", d.msg);
  static const int lds[] = {33, 16, 1024};
  for (int t = 0; t < 3; t++) {
    int32_t ld = lds[t];
    float *x = aligned_alloc(128, (size_t)32 * 1024 * 4);
    float *y = aligned_alloc(128, 16 * 32 * 4);
    for (int i = 0; i < 32 * ld; i++)
      x[i] = (float)i;
    void *px = x, *py = y;
    void *args[3] = {&px, &py, &ld};
    int32_t grid[3] = {1, 1, 1};
    xk_sim_counters c;
    ck_assert_msg(xk_sim_launch(k.fn, args, grid, k.info.threads,
                                k.info.shared_bytes, &c, &d) == 0,
                  "%s", d.msg);
    for (int r = 0; r < 16; r++)
      for (int q = 0; q < 32; q++)
        ck_assert_float_eq(y[r * 32 + q], x[q * ld + r]);
    /* the load's lanes run down the columns, its contiguous dim 0 (an
     * unproven alignment: one f32 each); the store converts */
    int32_t shape[2] = {16, 32};
    xk_layout l = xk_layout_vec(shape, 2, f->num_warps, 0, 1);
    col_ctx cx = {(uint64_t)(uintptr_t)x, ld};
    int64_t sectors, ideal;
    tile_sectors(&l, col_addr, &cx, &sectors, &ideal);
    ck_assert_int_eq(c.gld_sectors, sectors);
    ck_assert_int_eq(c.gld_ideal_sectors, ideal);
    if (ld % 8)
      ck_assert(xk_sim_gld_efficiency(&c) < 1.0);
    ck_assert(xk_sim_gst_efficiency(&c) == 1.0);
    ck_assert_int_eq(c.unique_bytes, 2 * 16 * 32 * 4);
    free(x);
    free(y);
  }
  xk_jit_free(k.jit);
  xk_func_free(f);
}
END_TEST

/* Bank conflicts of one warp-request of 4-byte words at `off` (bytes). */
static int64_t conflicts(const uint64_t *off) {
  uint64_t w[32];
  int per_bank[32] = {0}, worst = 0;
  for (int i = 0; i < 32; i++)
    w[i] = off[i] / 4;
  int n = distinct(w, 32);
  for (int i = 0; i < 32; i++)
    if (!i || w[i] != w[i - 1])
      per_bank[w[i] % 32]++;
  for (int b = 0; b < 32; b++)
    worst = per_bank[b] > worst ? per_bank[b] : worst;
  return worst - (n + 31) / 32;
}

/* The conversion of trans(x) (layout T) to x's layout X stores every
 * register of T row-major and loads every register of X. */
static int64_t tadd_conflicts(const xk_layout *tl, const xk_layout *xl, int n) {
  int64_t total = 0;
  const xk_layout *ls[2] = {tl, xl};
  for (int which = 0; which < 2; which++)
    for (int w = 0; w < ls[which]->num_warps; w++)
      for (int r = 0; r < xk_layout_nregs(ls[which]); r++) {
        uint64_t off[32];
        for (int lane = 0; lane < 32; lane++) {
          int c[XK_MAX_RANK];
          xk_layout_coords(ls[which], lane, w, r, c);
          off[lane] = 4 * (uint64_t)(c[0] * n + c[1]);
        }
        total += conflicts(off);
      }
  return total;
}

START_TEST(test_bank_conflicts_transpose) {
  ck_assert_msg(small != NULL, "sim_kernels.xk did not load");
  xk_func *f = trace(small, "tadd", NULL, 0);
  xk_test_sim k;
  xk_diag d;
  ck_assert_msg(xk_test_jit_sim(f, &k, &d) == 0, "%s", d.msg);
  float *x = malloc(32 * 32 * 4), *y = malloc(32 * 32 * 4);
  for (int i = 0; i < 32 * 32; i++)
    x[i] = (float)(i % 97);
  void *px = x, *py = y;
  void *args[2] = {&px, &py};
  int32_t grid[3] = {1, 1, 1};
  xk_sim_counters c;
  ck_assert_msg(xk_sim_launch(k.fn, args, grid, k.info.threads,
                              k.info.shared_bytes, &c, &d) == 0,
                "%s", d.msg);
  for (int i = 0; i < 32; i++)
    for (int j = 0; j < 32; j++)
      ck_assert_float_eq(y[i * 32 + j], x[i * 32 + j] + x[j * 32 + i]);
  /* x's layout (lanes along rows, one f32 each), and trans(x)'s: the same
   * distribution with dims swapped */
  int32_t shape[2] = {32, 32};
  xk_layout xl = xk_layout_vec(shape, 2, f->num_warps, 1, 1), tl = xl;
  tl.spt[0] = xl.spt[1];
  tl.spt[1] = xl.spt[0];
  tl.tpw[0] = xl.tpw[1];
  tl.tpw[1] = xl.tpw[0];
  tl.wpc[0] = xl.wpc[1];
  tl.wpc[1] = xl.wpc[0];
  tl.order[0] = 1 - xl.order[0];
  tl.order[1] = 1 - xl.order[1];
  /* row-major, the transposing conversion conflicts; the map the lowering
   * chooses must not, and the counter must agree with it */
  int64_t plain = tadd_conflicts(&tl, &xl, 32);
  int perm[2] = {1, 0};
  xk_smem_map z = xk_smem_choose(&tl, 1, &xl, 1, perm, 4);
  int64_t want = xk_smem_conflicts(&tl, 1, NULL, &z, shape, 4) +
                 xk_smem_conflicts(&xl, 1, perm, &z, shape, 4);
  ck_assert_int_eq(c.smem_requests, xl.num_warps * (xk_layout_nregs(&tl) +
                                                    xk_layout_nregs(&xl)));
  ck_assert_msg(plain > 0, "the row-major transposing conversion conflicts");
  ck_assert_int_eq(c.smem_conflicts, want);
  ck_assert_int_eq(want, 0);
  free(x);
  free(y);
  xk_jit_free(k.jit);
  xk_func_free(f);
}
END_TEST

START_TEST(test_barrier_shuffle_counts) {
  ck_assert_msg(small != NULL, "sim_kernels.xk did not load");
  static const char *const names[] = {"rowsum", "tadd"};
  for (int t = 0; t < 2; t++) {
    xk_func *f = trace(small, names[t], NULL, 0);
    xk_test_sim k;
    xk_diag d;
    ck_assert_msg(xk_test_jit_sim(f, &k, &d) == 0, "%s", d.msg);
    float *x = calloc(4096, 4), *y = calloc(4096, 4);
    for (int i = 0; i < 2 * 256; i++)
      x[i] = (float)(i % 7);
    void *px = x, *py = y;
    void *args[2] = {&px, &py};
    int32_t grid[3] = {2, 1, 1};
    xk_sim_counters c;
    ck_assert_msg(xk_sim_launch(k.fn, args, grid, k.info.threads,
                                k.info.shared_bytes, &c, &d) == 0,
                  "%s", d.msg);
    if (t == 0)
      for (int r = 0; r < 2; r++) {
        float s = 0;
        for (int i = 0; i < 256; i++)
          s += x[r * 256 + i];
        ck_assert_float_eq_tol(y[r], s, 1e-3);
      }
    /* no loops: each emitted call runs once per thread */
    int bars = static_calls(f, "xk_sim_barrier");
    int shfls = static_calls(f, "xk_sim_shfl_bfly_i32");
    int warps = 2 * f->num_warps;
    ck_assert_int_eq(c.inst[XK_SIM_BAR], (int64_t)bars * warps);
    ck_assert_int_eq(c.inst[XK_SIM_SHFL], (int64_t)shfls * warps);
    ck_assert_msg(bars > 0, "%s: no barrier emitted", names[t]);
    if (t == 0)
      ck_assert_msg(shfls > 0, "rowsum: no shuffle emitted");
    free(x);
    free(y);
    xk_jit_free(k.jit);
    xk_func_free(f);
  }
}
END_TEST

/* barrier(): "restage" reads back, as a dot operand, rows of S that other
 * warps stored. The emulator switches threads only at barriers (and
 * collectives), so without one the first warp reads rows not yet stored
 * and the result must be wrong; with one, in the staging loop or after
 * it, the result must match the C reference. */
START_TEST(test_barrier_orders_global) {
  ck_assert_msg(small != NULL, "sim_kernels.xk did not load");
  enum { P = 2, M = 32, K = 64, N = 32 };
  float *x = malloc(P * M * K * 4), *w = malloc(K * N * 4);
  float *s = malloc(P * M * K * 4), *y = malloc(P * M * N * 4);
  float *ref = calloc(P * M * N, 4);
  /* small multiples of 1/4: every product and sum is exact in f32 */
  for (int i = 0; i < P * M * K; i++)
    x[i] = (float)(i % 7 - 3) * 0.25f;
  for (int i = 0; i < K * N; i++)
    w[i] = (float)(i % 5 - 2) * 0.5f;
  for (int p = 0; p < P; p++)
    for (int m = 0; m < M; m++)
      for (int k = 0; k < K; k++)
        for (int n = 0; n < N; n++)
          ref[(p * M + m) * N + n] +=
              2 * x[(p * M + M - 1 - m) * K + k] * w[k * N + n];
  int bars_without = 0;
  for (int sync = 0; sync < 3; sync++) {
    xk_constexpr over[1] = {{"SYNC", sync}};
    xk_func *f = trace(small, "restage", over, 1);
    xk_test_sim k;
    xk_diag d;
    ck_assert_msg(xk_test_jit_sim(f, &k, &d) == 0, "%s", d.msg);
    memset(s, 0, P * M * K * 4);
    void *px = x, *pw = w, *ps = s, *py = y;
    void *args[4] = {&px, &pw, &ps, &py};
    int32_t grid[3] = {P, 1, 1};
    ck_assert_msg(xk_sim_launch(k.fn, args, grid, k.info.threads,
                                k.info.shared_bytes, NULL, &d) == 0,
                  "%s", d.msg);
    int wrong = 0;
    for (int i = 0; i < P * M * N; i++)
      wrong += y[i] != ref[i];
    /* the op lowers to exactly one more barrier than the racy variant */
    int bars = static_calls(f, "xk_sim_barrier");
    if (sync == 0) {
      bars_without = bars;
      ck_assert_msg(wrong > 0, "no barrier, yet every element is right");
    } else {
      ck_assert_msg(wrong == 0, "SYNC=%d: %d wrong elements", sync, wrong);
      ck_assert_int_eq(bars, bars_without + 1);
    }
    xk_jit_free(k.jit);
    xk_func_free(f);
  }
  free(x);
  free(w);
  free(s);
  free(y);
  free(ref);
}
END_TEST

/* ---- the emulator alone, with kernels written in C ---- */

static int g_mode, g_stride, g_bytes;
static int32_t g_out[1024];

static void k_shared_pattern(void **args) {
  (void)args;
  int lane = xk_sim_tid() & 31;
  xk_sim_shared_access(0, (uint32_t)(lane * g_stride), g_bytes, 0);
}

START_TEST(test_bank_patterns) {
  /* stride in bytes, bytes per lane, conflicts and wavefronts (the
   * busiest bank's distinct words) per warp-request */
  static const int cases[][4] = {
      {4, 4, 0, 1},   {8, 4, 1, 2},   {128, 4, 31, 32},
      {0, 4, 0, 1},   {132, 4, 0, 1}, {8, 8, 0, 2},
      {16, 16, 0, 4}, {16, 8, 2, 4},  {64, 4, 15, 16},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    g_stride = cases[i][0];
    g_bytes = cases[i][1];
    int32_t grid[3] = {3, 1, 1};
    xk_sim_counters c;
    xk_diag d;
    ck_assert_msg(
        xk_sim_launch(k_shared_pattern, NULL, grid, 64, 8192, &c, &d) == 0,
        "%s", d.msg);
    ck_assert_int_eq(c.smem_requests, 6);
    ck_assert_msg(c.smem_conflicts == 6 * cases[i][2],
                  "stride %d bytes %d: %lld conflicts, want %d", g_stride,
                  g_bytes, (long long)c.smem_conflicts, 6 * cases[i][2]);
    ck_assert_msg(c.smem_wavefronts == 6 * cases[i][3],
                  "stride %d bytes %d: %lld wavefronts, want %d", g_stride,
                  g_bytes, (long long)c.smem_wavefronts, 6 * cases[i][3]);
  }
}
END_TEST

static char g_buf[64 * 1024] __attribute__((aligned(128)));

static void k_global_pattern(void **args) {
  (void)args;
  int lane = xk_sim_tid() & 31;
  int active = g_mode == 0 || (g_mode == 1 && lane < 5);
  xk_sim_global_access(7, g_buf + lane * g_stride, active ? g_bytes : 0, 0);
}

START_TEST(test_sector_patterns) {
  /* stride, bytes, mode (0 all lanes, 1 lanes 0-4, 2 none): sectors, ideal,
   * requests per warp */
  static const int cases[][6] = {
      {4, 4, 0, 4, 4, 1},   {128, 4, 0, 32, 4, 1},  {8, 4, 0, 8, 4, 1},
      {0, 4, 0, 1, 1, 1},   {16, 16, 0, 16, 16, 1}, {2, 2, 0, 2, 2, 1},
      {4, 4, 1, 1, 1, 1},   {256, 4, 1, 5, 1, 1},   {4, 4, 2, 0, 0, 0},
      {36, 8, 0, 36, 8, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    g_stride = cases[i][0];
    g_bytes = cases[i][1];
    g_mode = cases[i][2];
    int32_t grid[3] = {1, 2, 1};
    xk_sim_counters c;
    xk_diag d;
    ck_assert_msg(xk_sim_launch(k_global_pattern, NULL, grid, 96, 0, &c, &d) ==
                      0,
                  "%s", d.msg);
    /* expected by plain C from the addresses */
    uint64_t s[64], b[32 * 16];
    int ns = 0, nb = 0;
    for (int lane = 0; lane < 32; lane++) {
      if (!(g_mode == 0 || (g_mode == 1 && lane < 5)))
        continue;
      uint64_t a = (uint64_t)(uintptr_t)(g_buf + lane * g_stride);
      for (uint64_t x = a >> 5; x <= (a + (uint64_t)g_bytes - 1) >> 5; x++)
        s[ns++] = x;
      for (int j = 0; j < g_bytes; j++)
        b[nb++] = a + (uint64_t)j;
    }
    int64_t sect = distinct(s, ns), ideal = (distinct(b, nb) + 31) / 32;
    ck_assert_int_eq(sect, cases[i][3]);
    ck_assert_int_eq(ideal, cases[i][4]);
    ck_assert_int_eq(c.gld_requests, 6 * cases[i][5]);
    ck_assert_int_eq(c.gld_sectors, 6 * sect);
    ck_assert_int_eq(c.gld_ideal_sectors, 6 * ideal);
    ck_assert_int_eq(c.unique_bytes, distinct(b, nb));
    ck_assert_int_eq(c.gst_requests, 0);
  }
}
END_TEST

static void k_collectives(void **args) {
  (void)args;
  int tid = xk_sim_tid();
  int32_t *sm = xk_sim_smem();
  int32_t x = xk_sim_shfl_bfly_i32(tid * 3, 5);
  sm[tid] = x;
  xk_sim_barrier();
  int n = 128;
  int32_t next = sm[(tid + 1) % n];
  const int32_t *all = xk_sim_warp_exchange(&tid, sizeof tid);
  int ok = 1;
  for (int l = 0; l < 32; l++)
    ok &= all[l] == (tid & ~31) + l;
  xk_sim_count(XK_SIM_FMA, 3);
  g_out[tid] = ok ? next : -1;
}

START_TEST(test_collectives) {
  int32_t grid[3] = {2, 1, 1};
  xk_sim_counters c;
  xk_diag d;
  ck_assert_msg(xk_sim_launch(k_collectives, NULL, grid, 128, 512, &c, &d) == 0,
                "%s", d.msg);
  for (int t = 0; t < 128; t++)
    ck_assert_int_eq(g_out[t], (((t + 1) % 128) ^ 5) * 3);
  ck_assert_int_eq(c.inst[XK_SIM_SHFL], 2 * 4);
  ck_assert_int_eq(c.inst[XK_SIM_BAR], 2 * 4);
  ck_assert_int_eq(c.inst[XK_SIM_FMA], 2 * 4 * 3);
  ck_assert_int_eq(c.threads, 256);
}
END_TEST

static void k_early_exit(void **args) {
  (void)args;
  if (g_mode == 0 && xk_sim_tid() == 37)
    return; /* the others wait at a barrier forever */
  if (g_mode == 1 && xk_sim_tid() == 3)
    return; /* its warp waits in a collective forever */
  if (g_mode == 0)
    xk_sim_barrier();
  else
    xk_sim_shfl_bfly_i32(1, 1);
}

static void k_fail(void **args) {
  (void)args;
  if (g_mode == 0 && xk_sim_tid() == 9)
    xk_sim_fail("operand %d misaligned", 42);
  if (g_mode == 1)
    xk_sim_shared_access(0, 60, 8, 1);
  if (g_mode == 2)
    xk_sim_global_access(xk_sim_tid() & 1, g_buf, 4, 0);
  if (g_mode == 3 && xk_sim_tid() != 5)
    xk_sim_global_access(0, g_buf, 4, 0);
  xk_sim_barrier();
}

static void expect_error(xk_sim_fn fn, int mode, int threads, int smem,
                         const char *needle) {
  int32_t grid[3] = {2, 1, 1};
  xk_diag d;
  g_mode = mode;
  d.msg[0] = 0;
  ck_assert_int_ne(xk_sim_launch(fn, NULL, grid, threads, smem, NULL, &d), 0);
  ck_assert_msg(strstr(d.msg, needle), "'%s' lacks '%s'", d.msg, needle);
}

START_TEST(test_errors) {
  expect_error(k_early_exit, 0, 64, 0, "deadlock");
  expect_error(k_early_exit, 0, 64, 0, "1 exited");
  expect_error(k_early_exit, 1, 64, 0, "warp collective");
  expect_error(k_fail, 0, 64, 0, "operand 42 misaligned");
  expect_error(k_fail, 1, 64, 64, "beyond the block's 64 bytes");
  expect_error(k_fail, 2, 64, 0, "divergent");
  expect_error(k_fail, 3, 64, 0, "different numbers of memory accesses");
  expect_error(k_fail, 4, 33, 0, "multiple of 32");
  expect_error(k_fail, 4, 0, 0, "multiple of 32");
  expect_error(k_fail, 4, 2048, 0, "<= 1024");
  expect_error(k_fail, 4, 64, -1, "shared memory");
  expect_error(k_fail, 4, 64, 1 << 20, "shared memory");
  expect_error(NULL, 4, 64, 0, "NULL kernel");
  int32_t grid[3] = {1, 0, 1};
  xk_diag d;
  ck_assert_int_ne(xk_sim_launch(k_fail, NULL, grid, 64, 0, NULL, &d), 0);
  ck_assert_msg(strstr(d.msg, "grid dimension 1"), "%s", d.msg);
  /* the emulator is usable again after every failure */
  grid[1] = 1;
  g_mode = 4;
  ck_assert_msg(xk_sim_launch(k_fail, NULL, grid, 64, 0, NULL, &d) == 0, "%s",
                d.msg);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("sim");
  TCase *e = tcase_create("emulator");
  tcase_add_test(e, test_bank_patterns);
  tcase_add_test(e, test_sector_patterns);
  tcase_add_test(e, test_collectives);
  tcase_add_test(e, test_errors);
  suite_add_tcase(s, e);
  TCase *c = tcase_create("counters");
  tcase_set_timeout(c, 120);
  tcase_add_unchecked_fixture(c, open_small, close_small);
  tcase_add_test(c, test_coalesced_copy);
  tcase_add_test(c, test_column_strided);
  tcase_add_test(c, test_bank_conflicts_transpose);
  tcase_add_test(c, test_barrier_shuffle_counts);
  tcase_add_test(c, test_barrier_orders_global);
  suite_add_tcase(s, c);
  TCase *k = tcase_create("kernels");
  tcase_set_timeout(k, 600);
  tcase_add_unchecked_fixture(k, open_kernels, close_kernels);
  tcase_add_loop_test(k, test_kernel_config, 0, NCONFIGS);
  tcase_add_loop_test(k, test_gemm_f16_aligned, 0, 3);
  tcase_add_loop_test(k, test_gemm_st_pipelined, 0, 4);
  suite_add_tcase(s, k);
  return s;
}

int main(void) {
  return xk_check_run(suite());
}
