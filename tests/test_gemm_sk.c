/* The split-K GEMMs of kernels.xk (gemm_sk_* C += A B, gemm_skt_* C += A^T
 * B with A stored [K, M]; f16 and bf16 in, f32 out by atomic adds) under
 * the sim and on the host against a plain C reference: ragged M, N and K
 * (K not a multiple of SPLIT or BLOCK_K, splits left empty), pipelined and
 * unpipelined, a C that already holds a sum (the group's layers
 * accumulate), and the variant specialized for aligned, divisible-by-16
 * shapes. */
#include "case_util.h"
#include "compile.h"
#include "jit_util.h"

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static xk_dsl *dsl;

static const char *const kernels[] = {"gemm_sk_f16", "gemm_sk_bf16",
                                      "gemm_skt_f16", "gemm_skt_bf16"};

typedef struct {
  int bm, bn, bk, split, warps, stages;
} config;

/* the default, a larger pipelined tile, no pipeline, and more splits than
 * K has BLOCK_K steps */
static const config configs[] = {{0, 0, 0, 0, 0, 0},
                                 {128, 64, 32, 3, 8, 3},
                                 {64, 128, 64, 2, 4, 1},
                                 {64, 64, 32, 16, 4, 2}};
#define NCONFIGS (int)(sizeof configs / sizeof *configs)

static const int sizes[][3] = {{100, 72, 300}, {64, 200, 129}, {128, 128, 512}};
#define NSIZES (int)(sizeof sizes / sizeof *sizes)

static uint16_t to16(int bf, float x) {
  return bf ? xk_f32_to_bf16(x) : xk_f32_to_f16(x);
}
static float from16(int bf, uint16_t h) {
  return bf ? xk_bf16_to_f32(h) : xk_f16_to_f32(h);
}

static size_t pad64(size_t n) {
  return (n + 127) & ~(size_t)63;
}

static int64_t const_of(const xk_func *f, const char *n) {
  for (int i = 0; i < f->nconsts; i++)
    if (!strcmp(f->consts[i].name, n))
      return f->consts[i].value;
  return -1;
}

/* Runs f on the sim (on_sim) or the host over its whole grid. */
static void run(const xk_func *f, int on_sim, void **args,
                const int32_t grid[3]) {
  xk_diag d;
  if (!on_sim) {
    xk_test_host h;
    ck_assert_msg(xk_test_jit_host(f, &h, &d) == 0, "%s", d.msg);
    int32_t pid[3];
    for (pid[2] = 0; pid[2] < grid[2]; pid[2]++)
      for (pid[1] = 0; pid[1] < grid[1]; pid[1]++)
        for (pid[0] = 0; pid[0] < grid[0]; pid[0]++)
          h.fn(args, pid, grid);
    xk_jit_free(h.jit);
    return;
  }
  xk_test_sim s;
  ck_assert_msg(xk_test_jit_sim(f, &s, &d) == 0, "%s", d.msg);
  ck_assert_msg(xk_sim_launch(s.fn, args, grid, s.info.threads,
                              s.info.shared_bytes, NULL, &d) == 0,
                "%s", d.msg);
  xk_jit_free(s.jit);
}

/* One kernel, config and size: C0 + op(A) B against the double reference
 * of the 16-bit values, relative to the largest reference magnitude. */
static void check(int kn, const config *cf, int si, int on_sim, int aligned) {
  const char *name = kernels[kn];
  int bf = strstr(name, "bf16") != NULL, tr = !strncmp(name, "gemm_skt", 8);
  int M = sizes[si][0], N = sizes[si][1], K = sizes[si][2];
  xk_constexpr over[6] = {{"BLOCK_M", cf->bm},      {"BLOCK_N", cf->bn},
                          {"BLOCK_K", cf->bk},      {"SPLIT", cf->split},
                          {"num_warps", cf->warps}, {"num_stages", cf->stages}};
  static const int spec[6] = {XK_SPEC_ALIGN16, XK_SPEC_ALIGN16, XK_SPEC_ALIGN16,
                              XK_SPEC_DIV16,   XK_SPEC_DIV16,   XK_SPEC_DIV16};
  xk_func *f = NULL;
  xk_diag d;
  int k = xk_dsl_find(dsl, name);
  ck_assert_int_ge(k, 0);
  ck_assert_msg(xk_compile_ir_spec(dsl, k, over, cf->bm ? 6 : 0,
                                   aligned ? spec : NULL, &f, &d) == 0,
                "%s", d.msg);
  /* aligned_alloc wants a multiple of the alignment; +64 is slack for the
     kernel's vector tail */
  uint16_t *a = aligned_alloc(64, pad64((size_t)M * K * 2));
  uint16_t *b = aligned_alloc(64, pad64((size_t)K * N * 2));
  float *c = aligned_alloc(64, pad64((size_t)M * N * 4));
  double *ref = calloc((size_t)M * N, sizeof *ref);
  unsigned seed = 7u + (unsigned)(kn * 31 + si);
  for (int i = 0; i < M * K; i++) {
    seed = seed * 1103515245u + 12345u;
    a[i] = to16(bf, (float)((seed >> 16) % 2001) / 1000.0f - 1.0f);
  }
  for (int i = 0; i < K * N; i++) {
    seed = seed * 1103515245u + 12345u;
    b[i] = to16(bf, (float)((seed >> 16) % 2001) / 1000.0f - 1.0f);
  }
  for (int i = 0; i < M * N; i++)
    ref[i] = c[i] = (float)(i % 7) - 3.0f; /* the sum so far */
  for (int i = 0; i < M; i++)
    for (int kk = 0; kk < K; kk++) {
      double x = from16(bf, tr ? a[(size_t)kk * M + i] : a[(size_t)i * K + kk]);
      for (int j = 0; j < N; j++)
        ref[(size_t)i * N + j] += x * from16(bf, b[(size_t)kk * N + j]);
    }
  int64_t bm = const_of(f, "BLOCK_M"), bn = const_of(f, "BLOCK_N");
  int32_t grid[3] = {(int32_t)((M + bm - 1) / bm), (int32_t)((N + bn - 1) / bn),
                     (int32_t)const_of(f, "SPLIT")};
  void *args[6] = {&a, &b, &c, &M, &N, &K};
  run(f, on_sim, args, grid);
  double err = 0, mag = 0;
  for (int i = 0; i < M * N; i++) {
    err = fmax(err, fabs(c[i] - ref[i]));
    mag = fmax(mag, fabs(ref[i]));
  }
  char cfg[256];
  ck_assert_msg(err <= 1e-4 * mag, "%s (%s) %s %dx%dx%d%s: max error %g of %g",
                name, xk_func_config_str(f, cfg, sizeof cfg),
                on_sim ? "sim" : "host", M, N, K, aligned ? " aligned" : "",
                err, mag);
  free(a);
  free(b);
  free(c);
  free(ref);
  xk_func_free(f);
}

/* _i: kernel; every config at the ragged sizes under the sim */
START_TEST(sim_ragged) {
  for (int ci = 0; ci < NCONFIGS; ci++)
    for (int si = 0; si < 2; si++)
      check(_i, &configs[ci], si, 1, 0);
}
END_TEST

/* _i: kernel; the aligned/div16 variant (cp.async rows, what large shapes
 * launch) on the divisible size, default and pipelined configs */
START_TEST(sim_aligned) {
  check(_i, &configs[0], 2, 1, 1);
  check(_i, &configs[1], 2, 1, 1);
}
END_TEST

/* _i: kernel; the CPU (the embedded default where there is no GPU) */
START_TEST(host_ragged) {
  check(_i, &configs[0], 0, 0, 0);
  check(_i, &configs[3], 1, 0, 0);
}
END_TEST

int main(void) {
  xk_diag d;
  if (xk_dsl_open(XK_SRC "/kernels.xk", &dsl, &d)) {
    fprintf(stderr, "%s\n", d.msg);
    return 1;
  }
  Suite *s = suite_create("gemm_sk");
  TCase *tc = tcase_create("split_k");
  tcase_set_timeout(tc, 600);
  tcase_add_loop_test(tc, sim_ragged, 0, 4);
  tcase_add_loop_test(tc, sim_aligned, 0, 4);
  tcase_add_loop_test(tc, host_ragged, 0, 4);
  suite_add_tcase(s, tc);
  int rc = xk_check_run(s);
  xk_dsl_close(dsl);
  return rc;
}
