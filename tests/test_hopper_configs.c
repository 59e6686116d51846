/* The tile configs Triton users tune on Hopper (tests/data/hopper_configs.xk)
 * need more than 48 KB of shared memory: under the sim against plain C
 * references at ragged sizes (full tiles, a small grid), through ptxas for
 * sm_90 and sm_80 (registers and spills are printed), and the limit per
 * architecture with an error naming the kernel, the config and the bytes. */
#include "compile.h"
#include "kernel_cases.h"
#include "ptxas.h"
#include "sim.h"

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static xk_func *trace(const char *kernel, const xk_constexpr *over, int n) {
  xk_dsl *dsl;
  xk_func *f = NULL;
  xk_diag d;
  ck_assert_msg(xk_dsl_open(XK_SRC "/tests/data/hopper_configs.xk", &dsl, &d) ==
                    0,
                "%s", d.msg);
  int k = xk_dsl_find(dsl, kernel);
  ck_assert_int_ge(k, 0);
  ck_assert_msg(xk_compile_ir(dsl, k, over, n, &f, &d) == 0, "%s", d.msg);
  xk_dsl_close(dsl);
  return f;
}

/* Compiles f for the sim and launches it on `grid`. */
static void sim_run(const xk_func *f, void **args, const int32_t grid[3]) {
  LLVMTargetMachineRef tm;
  LLVMModuleRef m;
  xk_nvptx_info info;
  xk_jit *jit;
  xk_host_fn fn;
  xk_diag d;
  ck_assert_msg(xk_target_machine("sim", &tm, &d) == 0, "%s", d.msg);
  ck_assert_msg(xk_compile_llvm(f, "sim", tm, f->name, 1, &m, &info, &d) == 0,
                "%s", d.msg);
  LLVMDisposeTargetMachine(tm);
  ck_assert_msg(xk_jit_new(&jit, &d) == 0, "%s", d.msg);
  ck_assert_msg(xk_jit_add(jit, m, &d) == 0 &&
                    xk_jit_lookup(jit, f->name, &fn, &d) == 0,
                "%s", d.msg);
  ck_assert_int_gt(info.shared_bytes, 48 * 1024);
  ck_assert_msg(xk_sim_launch_arch("sm_90", (xk_sim_fn)(void (*)(void))fn, args,
                                   grid, info.threads, info.shared_bytes, NULL,
                                   &d) == 0,
                "%s", d.msg);
  xk_jit_free(jit);
}

/* ptxas accepts f for sm (when ptxas is there); prints its resources. */
static void ptxas_ok(const xk_func *f, const char *sm) {
  xk_ptxas_info pi;
  xk_nvptx_info info;
  xk_diag d;
  ck_assert_msg(xk_ptxas_func(f, sm, NULL, &pi, &info, &d) == 0, "%s", d.msg);
  char cfg[256];
  printf("%s %s (%s): smem %d, registers %d, spill bytes %d\n", f->name, sm,
         xk_func_config_str(f, cfg, sizeof cfg), pi.shared_bytes, pi.registers,
         pi.spill_bytes);
  ck_assert_int_eq(pi.shared_bytes, info.shared_bytes);
  ck_assert_int_le(pi.registers, 255);
}

static uint16_t *rand_f16(int n, unsigned *seed) {
  uint16_t *x = malloc((size_t)n * sizeof *x);
  for (int i = 0; i < n; i++) {
    *seed = *seed * 1103515245u + 12345u;
    x[i] = xk_f32_to_f16((float)((*seed >> 16) % 2001) / 1000.0f - 1.0f);
  }
  return x;
}

static const struct {
  int bm, bn, bk, warps, stages;
} mm_cfg[] = {{128, 256, 64, 8, 3}, {128, 128, 32, 4, 4}};

static xk_func *mm_func(int i) {
  xk_constexpr over[] = {{"BLOCK_M", mm_cfg[i].bm},
                         {"BLOCK_N", mm_cfg[i].bn},
                         {"BLOCK_K", mm_cfg[i].bk},
                         {"num_warps", mm_cfg[i].warps},
                         {"num_stages", mm_cfg[i].stages}};
  return trace("mm_f16", over, 5);
}

START_TEST(mm_sim) {
  xk_func *f = mm_func(_i);
  /* ragged: a partial second block in M and N, a partial last K step */
  int32_t M = mm_cfg[_i].bm + 3, N = mm_cfg[_i].bn + 5,
          K = 2 * mm_cfg[_i].bk + 7;
  unsigned seed = 11;
  uint16_t *A = rand_f16(M * K, &seed), *B = rand_f16(K * N, &seed);
  uint16_t *C = calloc((size_t)M * N, sizeof *C);
  void *args[] = {&A, &B, &C, &M, &N, &K};
  sim_run(f, args, (int32_t[]){2, 2, 1});
  double worst = 0;
  for (int m = 0; m < M; m++)
    for (int n = 0; n < N; n++) {
      double ref = 0;
      for (int k = 0; k < K; k++)
        ref +=
            (double)xk_f16_to_f32(A[m * K + k]) * xk_f16_to_f32(B[k * N + n]);
      double err = fabs(xk_f16_to_f32(C[m * N + n]) - ref) / (1 + fabs(ref));
      worst = err > worst ? err : worst;
    }
  printf("mm_f16 %dx%dx%d/%d stages: sim M=%d N=%d K=%d, max rel err %.2e\n",
         mm_cfg[_i].bm, mm_cfg[_i].bn, mm_cfg[_i].bk, mm_cfg[_i].stages, M, N,
         K, worst);
  ck_assert_double_lt(worst, 4e-3);
  free(A);
  free(B);
  free(C);
  xk_func_free(f);
}
END_TEST

START_TEST(attn_sim) {
  int causal = _i;
  xk_constexpr over[] = {{"CAUSAL", causal}};
  xk_func *f = trace("flash_attn", over, 1);
  enum { D = 128 };
  int32_t H = 2, N = 150; /* two query blocks, the second partial */
  float scale = 1.0f / sqrtf((float)D);
  unsigned seed = 5 + (unsigned)causal;
  uint16_t *Q = rand_f16(H * N * D, &seed), *K = rand_f16(H * N * D, &seed),
           *V = rand_f16(H * N * D, &seed);
  uint16_t *O = calloc((size_t)H * N * D, sizeof *O);
  void *args[] = {&Q, &K, &V, &O, &H, &N, &scale};
  sim_run(f, args, (int32_t[]){2, H, 1});
  double worst = 0, *p = malloc((size_t)N * sizeof *p);
  for (int h = 0; h < H; h++)
    for (int m = 0; m < N; m++) {
      const uint16_t *q = Q + ((size_t)h * N + m) * D;
      int hi = causal ? m + 1 : N;
      double mx = -INFINITY, sum = 0;
      for (int n = 0; n < hi; n++) {
        const uint16_t *k = K + ((size_t)h * N + n) * D;
        double s = 0;
        for (int d = 0; d < D; d++)
          s += (double)xk_f16_to_f32(q[d]) * xk_f16_to_f32(k[d]);
        p[n] = s * scale;
        mx = p[n] > mx ? p[n] : mx;
      }
      for (int n = 0; n < hi; n++)
        sum += p[n] = exp(p[n] - mx);
      for (int d = 0; d < D; d++) {
        double o = 0;
        for (int n = 0; n < hi; n++)
          o += p[n] * xk_f16_to_f32(V[((size_t)h * N + n) * D + d]);
        o /= sum;
        double err = fabs(xk_f16_to_f32(O[((size_t)h * N + m) * D + d]) - o);
        worst = err > worst ? err : worst;
      }
    }
  printf("flash_attn 128x64 head_dim 128 causal=%d: sim H=%d N=%d, max abs "
         "err %.2e\n",
         causal, H, N, worst);
  /* p is rounded to f16 before the second dot, as in Triton */
  ck_assert_double_lt(worst, 5e-3);
  free(p);
  free(Q);
  free(K);
  free(V);
  free(O);
  xk_func_free(f);
}
END_TEST

START_TEST(ptxas_accepts) {
  for (int i = 0; i < 2; i++) {
    xk_func *f = mm_func(i);
    ptxas_ok(f, "sm_90");
    ptxas_ok(f, "sm_80");
    xk_func_free(f);
  }
  for (int causal = 0; causal < 2; causal++) {
    xk_constexpr over[] = {{"CAUSAL", causal}};
    xk_func *f = trace("flash_attn", over, 1);
    ptxas_ok(f, "sm_90");
    ptxas_ok(f, "sm_80");
    xk_func_free(f);
  }
}
END_TEST

/* 128x256x64 with 4 stages needs 192 KB: sm_90 has it, sm_86 and sm_80
 * refuse it by name, config and bytes; the sim's launch honours the limit
 * of the architecture it emulates. */
START_TEST(limit_per_arch) {
  xk_constexpr over[] = {{"num_stages", 4}};
  xk_func *f = trace("mm_f16", over, 1);
  static const struct {
    const char *sm;
    int limit;
  } arch[] = {{"sm_80", 163 * 1024}, {"sm_86", 99 * 1024}};
  for (int i = 0; i < 2; i++) {
    LLVMTargetMachineRef tm;
    LLVMModuleRef m;
    xk_nvptx_info info;
    xk_diag d;
    ck_assert_msg(xk_target_machine(arch[i].sm, &tm, &d) == 0, "%s", d.msg);
    ck_assert_int_ne(
        xk_compile_llvm(f, arch[i].sm, tm, f->name, 0, &m, &info, &d), 0);
    LLVMDisposeTargetMachine(tm);
    char want[128];
    snprintf(want, sizeof want, "%d-byte limit per block on %s", arch[i].limit,
             arch[i].sm);
    ck_assert_msg(strstr(d.msg, "kernel 'mm_f16'") &&
                      strstr(d.msg, "BLOCK_M=128 BLOCK_N=256 BLOCK_K=64 "
                                    "num_warps=8 num_stages=4") &&
                      strstr(d.msg, "needs 196608 bytes") &&
                      strstr(d.msg, want),
                  "%s", d.msg);
  }
  xk_ptxas_info pi;
  xk_diag d;
  ck_assert_msg(xk_ptxas_func(f, "sm_90", NULL, &pi, NULL, &d) == 0, "%s",
                d.msg);
  ck_assert_int_eq(pi.shared_bytes, 196608);
  xk_func_free(f);

  /* the sim: one byte past sm_86's limit fails before running anything */
  ck_assert_int_ne(xk_sim_launch_arch("sm_86", (xk_sim_fn)(void (*)(void))abort,
                                      NULL, (int32_t[]){1, 1, 1}, 32,
                                      99 * 1024 + 1, NULL, &d),
                   0);
  ck_assert_msg(strstr(d.msg, "101377 bytes") &&
                    strstr(d.msg, "101376-byte limit on sm_86"),
                "%s", d.msg);
}
END_TEST

int main(void) {
  Suite *s = suite_create("hopper_configs");
  TCase *t = tcase_create("all");
  tcase_set_timeout(t, 600);
  tcase_add_loop_test(t, mm_sim, 0, 2);
  tcase_add_loop_test(t, attn_sim, 0, 2);
  tcase_add_test(t, ptxas_accepts);
  tcase_add_test(t, limit_per_arch);
  suite_add_tcase(s, t);
  return xk_check_run(s);
}
