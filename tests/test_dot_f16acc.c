/* dot with an f16 accumulator (out_dtype = f16, DOT's XK_DOT_ACC_F16):
 * the sim's f16 mma against a C model of one instruction, and the kernels
 * of tests/data/dot_f16acc.xk on the host and the sim (tensor-core and FMA
 * paths, a loop-carried accumulator at ragged sizes) bit for bit against a
 * C reference that rounds to f16 after each k-block of 16. The inputs are
 * chosen so that rounding once at the end (f32 accumulation) gives other
 * values, which the test checks too, so a target that ignored the f16
 * accumulator would fail. For sm_80 and sm_90 the PTX holds the f16 form
 * of mma.sync and ptxas accepts it without spills. */
#include "compile.h"
#include "jit_util.h"
#include "ptxas.h"
#include "sim_tc.h"

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static xk_dsl *dsl;

static float h2f(uint16_t h) {
  return xk_tc_f16_to_f32(h);
}
static uint16_t f2h(float f) {
  return xk_tc_f32_to_f16(f);
}

/* uniform in [-1, 1) with 10 fraction bits: exact in f16 */
static uint16_t rand_f16(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return f2h((float)((int)(*s >> 53) - 1024) / 1024.0f);
}

static void fill(uint16_t *x, int n, uint64_t seed) {
  for (int i = 0; i < n; i++)
    x[i] = rand_f16(&seed);
}

/* XK_DOT_ACC_F16: C rounded to f16, then each k-block of 16 summed in f32
 * in k order and rounded to f16. */
static float ref_acc16(const uint16_t *a, const uint16_t *b, uint16_t c, int K,
                       int lda_k, int ldb_k) {
  float s = h2f(c);
  for (int k = 0; k < K; k++) {
    float p = h2f(a[k * lda_k]) * h2f(b[k * ldb_k]);
    s += p;
    if (k % 16 == 15 || k == K - 1)
      s = h2f(f2h(s));
  }
  return s;
}

/* f32 accumulation, rounded to f16 once */
static float ref_acc32(const uint16_t *a, const uint16_t *b, uint16_t c, int K,
                       int lda_k, int ldb_k) {
  float s = h2f(c);
  for (int k = 0; k < K; k++)
    s += h2f(a[k * lda_k]) * h2f(b[k * ldb_k]);
  return h2f(f2h(s));
}

/* One warp's m16n8k16 with packed f16 C/D against ref_acc16 on K = 16. */
START_TEST(test_tc_lane) {
  uint16_t A[16][16], B[16][8], C[16][8];
  uint64_t seed = 3;
  fill(&A[0][0], 256, seed);
  fill(&B[0][0], 128, seed + 1);
  fill(&C[0][0], 128, seed + 2);
  uint32_t a[32][4], b[32][2], c[32][2];
  for (int lane = 0; lane < 32; lane++) {
    int g = lane / 4, t = lane % 4;
    for (int i = 0; i < 4; i++) {
      int row = g + 8 * (i & 1), k = 2 * t + 8 * (i >> 1);
      a[lane][i] = A[row][k] | (uint32_t)A[row][k + 1] << 16;
    }
    for (int i = 0; i < 2; i++) {
      b[lane][i] = B[2 * t + 8 * i][g] | (uint32_t)B[2 * t + 8 * i + 1][g]
                                             << 16;
      c[lane][i] = C[g + 8 * i][2 * t] | (uint32_t)C[g + 8 * i][2 * t + 1]
                                             << 16;
    }
  }
  int differ = 0;
  for (int lane = 0; lane < 32; lane++) {
    uint32_t d[2];
    xk_tc_mma_f16acc_lane((const uint32_t(*)[4])a, (const uint32_t(*)[2])b,
                          (const uint32_t(*)[2])c, lane, d);
    int g = lane / 4, t = lane % 4;
    for (int q = 0; q < 4; q++) {
      int row = g + 8 * (q >> 1), col = 2 * t + (q & 1);
      uint16_t got = (uint16_t)(d[q >> 1] >> (16 * (q & 1)));
      float want = ref_acc16(A[row], &B[0][col], C[row][col], 16, 1, 8);
      ck_assert_msg(h2f(got) == want, "lane %d d%d: %g, want %g", lane, q,
                    (double)h2f(got), (double)want);
      double exact = h2f(C[row][col]);
      for (int k = 0; k < 16; k++)
        exact += (double)h2f(A[row][k]) * h2f(B[k][col]);
      differ += h2f(got) != (float)exact; /* it is rounded to f16 */
    }
  }
  ck_assert_int_gt(differ, 0);
}
END_TEST

static xk_func *trace(const char *kernel, const xk_constexpr *over, int n) {
  xk_func *f;
  xk_diag d;
  ck_assert_msg(dsl != NULL, "dot_f16acc.xk did not load");
  int k = xk_dsl_find(dsl, kernel);
  ck_assert_int_ge(k, 0);
  ck_assert_msg(xk_compile_ir(dsl, k, over, n, &f, &d) == 0, "%s", d.msg);
  return f;
}

/* Runs f on `grid` on the host (on_sim 0) or the sim; the sim's count of
 * mma instructions goes to *mma. */
static void run(const xk_func *f, int on_sim, void **args,
                const int32_t grid[3], int64_t *mma) {
  xk_diag d;
  *mma = 0;
  if (!on_sim) {
    xk_test_host h;
    ck_assert_msg(xk_test_jit_host(f, &h, &d) == 0, "%s", d.msg);
    int32_t pid[3] = {0, 0, 0};
    for (pid[1] = 0; pid[1] < grid[1]; pid[1]++)
      for (pid[0] = 0; pid[0] < grid[0]; pid[0]++)
        h.fn(args, pid, grid);
    xk_jit_free(h.jit);
    return;
  }
  xk_test_sim s;
  xk_sim_counters cnt;
  ck_assert_msg(xk_test_jit_sim(f, &s, &d) == 0, "%s", d.msg);
  ck_assert_msg(xk_sim_launch(s.fn, args, grid, s.info.threads,
                              s.info.shared_bytes, &cnt, &d) == 0,
                "%s", d.msg);
  *mma = cnt.inst[XK_SIM_MMA];
  xk_jit_free(s.jit);
}

/* dot_acc16 at (BM, BN, BK) on an M x N x K problem: D (f16 acc) matches
 * ref_acc16 exactly, E (f32 acc) is within f32 rounding of the exact sum,
 * and some elements of ref_acc16 differ from rounding E once. */
static const struct {
  int bm, bn, bk, m, n, k, tensor_cores; /* on the sim */
} dot_cfg[] = {
    {32, 32, 64, 32, 32, 64, 1},
    {32, 32, 64, 27, 19, 53, 1},
    {8, 32, 64, 8, 30, 64, 0}, /* too few rows for the mma layout */
    {32, 32, 8, 20, 24, 7, 0}, /* K below one mma */
};

START_TEST(test_dot) {
  int c = _i / 2, on_sim = _i % 2;
  int BM = dot_cfg[c].bm, BN = dot_cfg[c].bn, BK = dot_cfg[c].bk;
  int32_t M = dot_cfg[c].m, N = dot_cfg[c].n, K = dot_cfg[c].k;
  xk_constexpr over[3] = {
      {.name = "BM", .value = BM},
      {.name = "BN", .value = BN},
      {.name = "BK", .value = BK},
  };
  xk_func *f = trace("dot_acc16", over, 3);
  uint16_t *A = malloc((size_t)M * K * 2), *B = malloc((size_t)K * N * 2);
  uint16_t *C = malloc((size_t)M * N * 2), *D = malloc((size_t)M * N * 2);
  float *E = malloc((size_t)M * N * 4);
  fill(A, M * K, 11 + (uint64_t)c);
  fill(B, K * N, 12 + (uint64_t)c);
  fill(C, M * N, 13 + (uint64_t)c);
  void *ptr[5] = {A, B, C, D, E};
  void *args[8] = {&ptr[0], &ptr[1], &ptr[2], &ptr[3], &ptr[4], &M, &N, &K};
  int32_t grid[3] = {1, 1, 1};
  int64_t mma;
  run(f, on_sim, args, grid, &mma);
  if (on_sim)
    ck_assert_msg((mma > 0) == dot_cfg[c].tensor_cores,
                  "config %d: %lld mma instructions", c, (long long)mma);
  int differ = 0;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      float want = ref_acc16(A + i * K, B + j, C[i * N + j], K, 1, N);
      float once = ref_acc32(A + i * K, B + j, C[i * N + j], K, 1, N);
      ck_assert_msg(h2f(D[i * N + j]) == want,
                    "%s config %d (%d,%d): %g, want %g",
                    on_sim ? "sim" : "host", c, i, j, (double)h2f(D[i * N + j]),
                    (double)want);
      double exact = h2f(C[i * N + j]);
      for (int k = 0; k < K; k++)
        exact += (double)h2f(A[i * K + k]) * h2f(B[k * N + j]);
      ck_assert_msg(fabs(E[i * N + j] - exact) <= 1e-5 * (1 + fabs(exact)),
                    "f32 acc (%d,%d): %g, want %g", i, j, (double)E[i * N + j],
                    exact);
      differ += want != once;
    }
  if (K > 16)
    ck_assert_msg(differ > 0, "config %d: f16 and f32 accumulation agree", c);
  free(A);
  free(B);
  free(C);
  free(D);
  free(E);
  xk_func_free(f);
}
END_TEST

/* The matmul loop with an f16 accumulator carried through for_range, at
 * ragged sizes over a 2-D grid; the zero-filled tail of the last k tile
 * leaves the sum unchanged, so the reference is ref_acc16 over K. */
static const struct {
  int bm, bn, bk, warps;
  int32_t m, n, k;
} mm_cfg[] = {
    {64, 64, 32, 4, 70, 45, 100},
    {32, 32, 16, 2, 33, 64, 48},
};

START_TEST(test_matmul_loop) {
  int c = _i / 2, on_sim = _i % 2;
  xk_constexpr over[4] = {
      {.name = "BLOCK_M", .value = mm_cfg[c].bm},
      {.name = "BLOCK_N", .value = mm_cfg[c].bn},
      {.name = "BLOCK_K", .value = mm_cfg[c].bk},
      {.name = "num_warps", .value = mm_cfg[c].warps},
  };
  xk_func *f = trace("matmul_acc16", over, 4);
  int32_t M = mm_cfg[c].m, N = mm_cfg[c].n, K = mm_cfg[c].k;
  uint16_t *A = malloc((size_t)M * K * 2), *B = malloc((size_t)K * N * 2);
  uint16_t *C = malloc((size_t)M * N * 2);
  fill(A, M * K, 21 + (uint64_t)c);
  fill(B, K * N, 22 + (uint64_t)c);
  void *ptr[3] = {A, B, C};
  void *args[6] = {&ptr[0], &ptr[1], &ptr[2], &M, &N, &K};
  int32_t grid[3] = {(M + mm_cfg[c].bm - 1) / mm_cfg[c].bm,
                     (N + mm_cfg[c].bn - 1) / mm_cfg[c].bn, 1};
  int64_t mma;
  run(f, on_sim, args, grid, &mma);
  ck_assert(!on_sim || mma > 0);
  int differ = 0;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      float want = ref_acc16(A + i * K, B + j, 0, K, 1, N);
      ck_assert_msg(h2f(C[i * N + j]) == want,
                    "%s config %d (%d,%d): %g, want %g",
                    on_sim ? "sim" : "host", c, i, j, (double)h2f(C[i * N + j]),
                    (double)want);
      differ += want != ref_acc32(A + i * K, B + j, 0, K, 1, N);
    }
  ck_assert_int_gt(differ, 0);
  free(A);
  free(B);
  free(C);
  xk_func_free(f);
}
END_TEST

/* sm_80 and sm_90: the f16 form of mma.sync (and not the f32 one), and
 * ptxas accepts it without spills when it is installed. */
START_TEST(test_ptx) {
  static const char *const sms[] = {"sm_80", "sm_90"};
  xk_func *f = trace("matmul_acc16", NULL, 0);
  for (int i = 0; i < 2; i++) {
    LLVMTargetMachineRef tm;
    LLVMModuleRef m;
    xk_nvptx_info info;
    xk_diag d;
    char *ptx;
    size_t len;
    ck_assert_msg(xk_target_machine(sms[i], &tm, &d) == 0, "%s", d.msg);
    ck_assert_msg(xk_compile_llvm(f, sms[i], tm, f->name, 1, &m, &info, &d) ==
                          0 &&
                      xk_target_emit(m, tm, 0, &ptx, &len, &d) == 0,
                  "%s: %s", sms[i], d.msg);
    LLVMDisposeModule(m);
    LLVMDisposeTargetMachine(tm);
    ck_assert_msg(
        strstr(ptx, "mma.sync.aligned.m16n8k16.row.col.f16.f16.f16.f16"),
        "%s: no f16 mma", sms[i]);
    ck_assert_msg(!strstr(ptx, "row.col.f32.f16"), "%s: an f32 mma", sms[i]);
    const char *px = xk_ptxas_find();
    if (px) {
      xk_ptxas_info pi;
      ck_assert_msg(xk_ptxas_run_text(px, sms[i], ptx, len, &pi, &d) == 0,
                    "%s: %s", sms[i], d.msg);
      printf("matmul_acc16 %s: registers %d, spill bytes %d\n", sms[i],
             pi.registers, pi.spill_bytes);
      ck_assert_int_eq(pi.spill_bytes, 0);
    } else {
      fprintf(stderr, "ptxas not found, skipping ptxas\n");
    }
    free(ptx);
  }
  xk_func_free(f);
}
END_TEST

static void open_dsl(void) {
  xk_diag d;
  if (xk_dsl_open(XK_SRC "/tests/data/dot_f16acc.xk", &dsl, &d))
    fprintf(stderr, "test_dot_f16acc: %s\n", d.msg);
}

static void close_dsl(void) {
  xk_dsl_close(dsl);
  dsl = NULL;
}

int main(void) {
  Suite *s = suite_create("dot_f16acc");
  TCase *tc = tcase_create("dot_f16acc");
  tcase_set_timeout(tc, 120);
  tcase_add_unchecked_fixture(tc, open_dsl, close_dsl);
  tcase_add_test(tc, test_tc_lane);
  tcase_add_loop_test(tc, test_dot, 0,
                      2 * (int)(sizeof dot_cfg / sizeof *dot_cfg));
  tcase_add_loop_test(tc, test_matmul_loop, 0,
                      2 * (int)(sizeof mm_cfg / sizeof *mm_cfg));
  tcase_add_test(tc, test_ptx);
  suite_add_tcase(s, tc);
  return xk_check_run(s);
}
