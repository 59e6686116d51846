/* The host's native SORT (codegen/host/lower_host_sort.c) at thousands of
 * keys against a C reference, with ties, NaNs and infinities: f32 and bf16
 * top-k, i32 columns sorted both ways along axis 0 (a strided axis); one
 * size checked against the sim target, which lowers the op's network body
 * instead; and that the host's code does not grow with the axis length
 * (tests/data/sort_kernels.xk). */
#include "compile.h"
#include "jit_util.h"

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static xk_dsl *dsl;

static xk_func *trace(const char *kernel, const xk_constexpr *over, int nover) {
  xk_diag d;
  xk_func *f;
  ck_assert_msg(dsl != NULL, "sort_kernels.xk did not load");
  int k = xk_dsl_find(dsl, kernel);
  ck_assert_msg(k >= 0, "no kernel %s", kernel);
  ck_assert_msg(xk_compile_ir(dsl, k, over, nover, &f, &d) == 0, "%s", d.msg);
  return f;
}

/* One program of f on the host (on_sim 0) or the SIMT emulator. */
static void run_once(const xk_func *f, int on_sim, void **args) {
  xk_diag d;
  int32_t pid[3] = {0, 0, 0}, grid[3] = {1, 1, 1};
  if (on_sim) {
    xk_test_sim k;
    ck_assert_msg(xk_test_jit_sim(f, &k, &d) == 0, "%s", d.msg);
    ck_assert_msg(xk_sim_launch(k.fn, args, grid, k.info.threads,
                                k.info.shared_bytes, NULL, &d) == 0,
                  "%s", d.msg);
    xk_jit_free(k.jit);
  } else {
    xk_test_host h;
    ck_assert_msg(xk_test_jit_host(f, &h, &d) == 0, "%s", d.msg);
    h.fn(args, pid, grid);
    xk_jit_free(h.jit);
  }
}

/* splitmix64 */
static uint64_t rng(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* 17 distinct values (exact in bf16), so ties are everywhere; a NaN, an
 * infinity or a -0.0 now and then. */
static void fill(float *x, int n, uint64_t seed) {
  for (int i = 0; i < n; i++) {
    uint64_t r = rng(&seed);
    x[i] = (float)((int)(r % 17) - 8) * 0.25f;
    if (r % 97 == 1)
      x[i] = NAN;
    else if (r % 97 == 2)
      x[i] = r & 256 ? INFINITY : -INFINITY;
    else if (r % 97 == 3)
      x[i] = -0.0f;
  }
}

/* The promised order: larger first when desc, NaN the largest, equal keys
 * (-0.0 == 0.0 among them) by index. */
static int before(double a, int ia, double b, int ib, int desc) {
  int na = isnan(a), nb = isnan(b);
  if (na || nb)
    return na && nb ? ia < ib : desc ? na : nb;
  if (a != b)
    return desc ? a > b : a < b;
  return ia < ib;
}

static const double *keys; /* for cmp_order */
static int keys_desc;

static int cmp_order(const void *pa, const void *pb) {
  int a = *(const int *)pa, b = *(const int *)pb;
  if (a == b)
    return 0;
  return before(keys[a], a, keys[b], b, keys_desc) ? -1 : 1;
}

/* order[0..n): the indices of x in the promised order */
static void ref_order(const double *x, int n, int desc, int *order) {
  for (int i = 0; i < n; i++)
    order[i] = i;
  keys = x;
  keys_desc = desc;
  qsort(order, (size_t)n, sizeof *order, cmp_order);
}

static int same(double a, double b) {
  return (isnan(a) && isnan(b)) ||
         (a == b && signbit(a) == signbit(b)); /* -0.0 stays -0.0 */
}

static void check_topk(const char *what, const double *x, int n, int k,
                       const double *v, const int32_t *idx) {
  int *order = malloc(sizeof *order * (size_t)n);
  ref_order(x, n, 1, order);
  for (int i = 0; i < k && i < n; i++)
    ck_assert_msg(idx[i] == order[i] && same(v[i], x[order[i]]),
                  "%s N=%d K=%d pos %d: %g@%d, want %g@%d", what, n, k, i, v[i],
                  idx[i], x[order[i]], order[i]);
  free(order);
}

static void topk_f32(int bn, int k, int n, int on_sim, uint64_t seed) {
  const xk_constexpr over[] = {{"BN", bn}, {"K", k}};
  xk_func *f = trace("topk_big", over, 2);
  float *x = malloc(sizeof *x * (size_t)bn), *v = malloc(sizeof *v * (size_t)k);
  int32_t *idx = malloc(sizeof *idx * (size_t)k);
  double *xd = malloc(sizeof *xd * (size_t)n), *vd = malloc(sizeof *vd * k);
  fill(x, n, seed);
  void *px = x, *pv = v, *pi = idx;
  void *args[4] = {&px, &pv, &pi, &n};
  run_once(f, on_sim, args);
  for (int i = 0; i < n; i++)
    xd[i] = x[i];
  for (int i = 0; i < k; i++)
    vd[i] = v[i];
  char what[64];
  snprintf(what, sizeof what, "%s f32 BN=%d", on_sim ? "sim" : "host", bn);
  check_topk(what, xd, n, k, vd, idx);
  free(x);
  free(v);
  free(idx);
  free(xd);
  free(vd);
  xk_func_free(f);
}

START_TEST(test_topk_f32_4096) {
  topk_f32(4096, 64, 4096, 0, 1);
  topk_f32(4096, 64, 4001, 0, 2); /* ragged, -inf padding */
}
END_TEST

/* The host's loops and sim's network body agree with the reference. */
START_TEST(test_topk_f32_host_and_sim) {
  for (int on_sim = 0; on_sim < 2; on_sim++)
    topk_f32(512, 32, 500, on_sim, 3);
}
END_TEST

static uint16_t to_bf16(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return (uint16_t)(u >> 16); /* fill's values are exact in bf16 */
}

static double from_bf16(uint16_t b) {
  uint32_t u = (uint32_t)b << 16;
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

START_TEST(test_topk_bf16_2048) {
  enum { BN = 2048, K = 32 };
  xk_func *f = trace("topk_bf16", NULL, 0);
  static float x[BN];
  static uint16_t xb[BN], v[K];
  static double xd[BN], vd[K];
  int32_t idx[K], n = 1999;
  fill(x, n, 4);
  for (int i = 0; i < n; i++) {
    xb[i] = to_bf16(x[i]);
    xd[i] = from_bf16(xb[i]);
  }
  void *px = xb, *pv = v, *pi = idx;
  void *args[4] = {&px, &pv, &pi, &n};
  run_once(f, 0, args);
  for (int i = 0; i < K; i++)
    vd[i] = from_bf16(v[i]);
  check_topk("host bf16", xd, n, K, vd, idx);
  xk_func_free(f);
}
END_TEST

START_TEST(test_sort_cols_i32) {
  enum { BN = 1024, C = 4 };
  xk_func *f = trace("sort_cols_i32", NULL, 0);
  static int32_t x[BN * C], v[BN * C], vi[BN * C], d[BN * C], di[BN * C];
  static double col[BN];
  static int order[BN];
  int32_t n = 1000;
  uint64_t seed = 5;
  for (int i = 0; i < n * C; i++) {
    uint64_t r = rng(&seed);
    /* few values, the extremes (the padding's) among them */
    x[i] = r % 13 == 0   ? 2147483647
           : r % 13 == 1 ? (int32_t)-2147483647 - 1
                         : (int32_t)(r % 21) - 10;
  }
  void *p[5] = {x, v, vi, d, di};
  void *args[6] = {&p[0], &p[1], &p[2], &p[3], &p[4], &n};
  run_once(f, 0, args);
  for (int c = 0; c < C; c++) {
    for (int r = 0; r < n; r++)
      col[r] = x[r * C + c];
    for (int desc = 0; desc < 2; desc++) {
      const int32_t *gv = desc ? d : v, *gi = desc ? di : vi;
      ref_order(col, n, desc, order);
      for (int r = 0; r < n; r++)
        ck_assert_msg(gi[r * C + c] == order[r] &&
                          gv[r * C + c] == (int32_t)col[order[r]],
                      "col %d %s pos %d: %d@%d, want %d@%d", c,
                      desc ? "desc" : "asc", r, gv[r * C + c], gi[r * C + c],
                      (int32_t)col[order[r]], order[r]);
    }
  }
  xk_func_free(f);
}
END_TEST

static int count_instructions(LLVMModuleRef m) {
  int n = 0;
  for (LLVMValueRef fn = LLVMGetFirstFunction(m); fn;
       fn = LLVMGetNextFunction(fn))
    for (LLVMBasicBlockRef b = LLVMGetFirstBasicBlock(fn); b;
         b = LLVMGetNextBasicBlock(b))
      for (LLVMValueRef i = LLVMGetFirstInstruction(b); i;
           i = LLVMGetNextInstruction(i))
        n++;
  return n;
}

/* The host code of a top-k is as long for 64 keys as for 4096: the
 * network's stages are a loop, not one loop nest per op per stage. */
START_TEST(test_host_sort_size_flat) {
  static const int bns[] = {64, 4096};
  int count[2];
  LLVMTargetMachineRef tm;
  xk_diag d;
  ck_assert_msg(xk_target_machine("host", &tm, &d) == 0, "%s", d.msg);
  for (int i = 0; i < 2; i++) {
    const xk_constexpr over[] = {{"BN", bns[i]}, {"K", 16}};
    xk_func *f = trace("topk_big", over, 2);
    LLVMModuleRef m;
    ck_assert_msg(xk_compile_llvm(f, "host", tm, f->name, 0, &m, NULL, &d) == 0,
                  "%s", d.msg);
    count[i] = count_instructions(m);
    LLVMDisposeModule(m);
    xk_func_free(f);
  }
  LLVMDisposeTargetMachine(tm);
  ck_assert_msg(count[0] == count[1],
                "%d LLVM instructions at BN=64, %d at BN=4096", count[0],
                count[1]);
}
END_TEST

static void open_dsl(void) {
  xk_diag d;
  if (xk_dsl_open(XK_SRC "/tests/data/sort_kernels.xk", &dsl, &d))
    fprintf(stderr, "test_sort_host: sort_kernels.xk not usable: %s\n", d.msg);
}

static void close_dsl(void) {
  xk_dsl_close(dsl);
  dsl = NULL;
}

int main(void) {
  Suite *s = suite_create("sort_host");
  TCase *c = tcase_create("sort");
  tcase_set_timeout(c, 600);
  tcase_add_unchecked_fixture(c, open_dsl, close_dsl);
  tcase_add_test(c, test_topk_f32_4096);
  tcase_add_test(c, test_topk_f32_host_and_sim);
  tcase_add_test(c, test_topk_bf16_2048);
  tcase_add_test(c, test_sort_cols_i32);
  tcase_add_test(c, test_host_sort_size_flat);
  suite_add_tcase(s, c);
  return xk_check_run(s);
}
