/* Block pointers and loop-carried block pointers (tests/data/block_ptr.xk):
 * a matmul written with make_block_ptr, advance and boundary checks on the
 * host and under the sim against kernel_cases.c's gemm references at ragged
 * M/N/K; through ptxas for sm_80 and sm_90 with the same pipelining as the
 * plain-pointer gemm of kernels.xk (the carried offsets become functions
 * of the induction variable); and a per-loop num_stages. */
#include "compile.h"
#include "kernel_cases.h"
#include "ptxas.h"
#include "sim.h"

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static xk_func *trace(const char *file, const char *kernel,
                      const xk_constexpr *over, int n) {
  xk_dsl *dsl;
  xk_func *f = NULL;
  xk_diag d;
  ck_assert_msg(xk_dsl_open(file, &dsl, &d) == 0, "%s", d.msg);
  int k = xk_dsl_find(dsl, kernel);
  ck_assert_int_ge(k, 0);
  ck_assert_msg(xk_compile_ir(dsl, k, over, n, &f, &d) == 0, "%s", d.msg);
  xk_dsl_close(dsl);
  return f;
}

#define BP_FILE XK_SRC "/tests/data/block_ptr.xk"

static const xk_constexpr configs[][4] = {
    {{"BLOCK_M", 32}, {"BLOCK_N", 32}, {"BLOCK_K", 32}, {"num_stages", 1}},
    {{"BLOCK_M", 16}, {"BLOCK_N", 64}, {"BLOCK_K", 16}, {"num_stages", 3}},
};

/* Every gemm case of kernels_cases.c through `target` (host or sim). */
static void run_cases(const char *target, const char *dt) {
  char kernel[32], ref[32];
  snprintf(kernel, sizeof kernel, "bp_gemm_%s", dt);
  snprintf(ref, sizeof ref, "gemm_%s", dt);
  for (int c = 0; c < 2; c++) {
    xk_func *f = trace(BP_FILE, kernel, configs[c], 4);
    LLVMTargetMachineRef tm;
    LLVMModuleRef m;
    xk_nvptx_info info;
    xk_jit *jit;
    xk_host_fn fn;
    xk_diag d;
    ck_assert_msg(xk_target_machine(target, &tm, &d) == 0, "%s", d.msg);
    ck_assert_msg(xk_compile_llvm(f, target, tm, f->name, 1, &m, &info, &d) ==
                      0,
                  "%s", d.msg);
    LLVMDisposeTargetMachine(tm);
    ck_assert_msg(xk_jit_new(&jit, &d) == 0 && xk_jit_add(jit, m, &d) == 0 &&
                      xk_jit_lookup(jit, f->name, &fn, &d) == 0,
                  "%s", d.msg);
    for (int s = 0; s < xk_case_nsizes(ref); s++) {
      xk_case k;
      double err;
      ck_assert_msg(xk_case_setup(ref, f, s, &k, &d) == 0, "%s", d.msg);
      if (!strcmp(target, "host"))
        xk_case_run_host(&k, fn);
      else
        ck_assert_msg(xk_sim_launch((xk_sim_fn)(void (*)(void))fn, k.args,
                                    k.grid, info.threads, info.shared_bytes,
                                    NULL, &d) == 0,
                      "%s", d.msg);
      int rc = xk_case_check(&k, &err, &d);
      printf("%s %s %s: err %.2e\n", target, kernel, k.desc, err);
      ck_assert_msg(rc == 0, "%s %s: %s", target, k.desc, d.msg);
      xk_case_free(&k);
    }
    xk_jit_free(jit);
    xk_func_free(f);
  }
}

START_TEST(host) {
  run_cases("host", "f32");
  run_cases("host", "f16");
}
END_TEST

START_TEST(sim) {
  run_cases("sim", "f32");
  run_cases("sim", "f16");
}
END_TEST

static xk_ptxas_info ptxas(const xk_func *f, const char *sm) {
  xk_ptxas_info pi;
  xk_diag d;
  ck_assert_msg(xk_ptxas_func(f, sm, NULL, &pi, NULL, &d) == 0, "%s", d.msg);
  return pi;
}

/* ptxas accepts every config for sm_80 and sm_90 without spills, with the
 * shared memory of kernels.xk's gemm_f16 (so the same pipeline buffers). */
START_TEST(ptxas_and_pipelining) {
  xk_constexpr c64[] = {
      {"BLOCK_M", 64}, {"BLOCK_N", 64}, {"BLOCK_K", 32}, {"num_stages", 3}};
  const char *sms[] = {"sm_80", "sm_90"};
  for (int i = 0; i < 2; i++) {
    xk_func *bp = trace(BP_FILE, "bp_gemm_f16", c64, 4);
    xk_func *plain = trace(XK_SRC "/kernels.xk", "gemm_f16", c64, 4);
    xk_ptxas_info a = ptxas(bp, sms[i]), b = ptxas(plain, sms[i]);
    printf("bp_gemm_f16 64x64x32/3 %s: registers %d, spills %d, smem %d "
           "(gemm_f16: %d)\n",
           sms[i], a.registers, a.spill_bytes, a.shared_bytes, b.shared_bytes);
    ck_assert_int_eq(a.spill_bytes, 0);
    ck_assert_int_eq(a.shared_bytes, b.shared_bytes);
    xk_func_free(bp);
    xk_func_free(plain);
    for (int c = 0; c < 2; c++) {
      xk_func *f = trace(BP_FILE, "bp_gemm_f32", configs[c], 4);
      ck_assert_int_eq(ptxas(f, sms[i]).spill_bytes, 0);
      xk_func_free(f);
    }
  }
}
END_TEST

/* for_range's num_stages overrides the kernel's: pipelined loop under a
 * kernel num_stages of 1, and an unpipelined one under 3. */
START_TEST(loop_num_stages) {
  xk_constexpr k1[] = {{"BLOCK_M", 64}, {"BLOCK_N", 64}, {"num_stages", 1}};
  xk_constexpr k3[] = {{"BLOCK_M", 64}, {"BLOCK_N", 64}, {"num_stages", 3}};
  xk_constexpr l3[] = {
      {"BLOCK_M", 64}, {"BLOCK_N", 64}, {"num_stages", 1}, {"LOOP_STAGES", 3}};
  xk_constexpr l1[] = {
      {"BLOCK_M", 64}, {"BLOCK_N", 64}, {"num_stages", 3}, {"LOOP_STAGES", 1}};
  xk_func *f[4] = {trace(BP_FILE, "bp_gemm_f16", k1, 3),
                   trace(BP_FILE, "bp_gemm_f16", k3, 3),
                   trace(BP_FILE, "bp_gemm_f16", l3, 4),
                   trace(BP_FILE, "bp_gemm_f16", l1, 4)};
  int smem[4];
  for (int i = 0; i < 4; i++)
    smem[i] = ptxas(f[i], "sm_90").shared_bytes;
  ck_assert_int_gt(smem[1], smem[0]);
  ck_assert_int_eq(smem[2], smem[1]);
  ck_assert_int_eq(smem[3], smem[0]);
  char *ir = xk_func_print(f[2]);
  ck_assert_ptr_nonnull(strstr(ir, " num_stages=3 {"));
  free(ir);
  for (int i = 0; i < 4; i++)
    xk_func_free(f[i]);
}
END_TEST

int main(void) {
  Suite *s = suite_create("block_ptr");
  TCase *t = tcase_create("all");
  tcase_set_timeout(t, 600);
  tcase_add_test(t, host);
  tcase_add_test(t, sim);
  tcase_add_test(t, ptxas_and_pipelining);
  tcase_add_test(t, loop_num_stages);
  suite_add_tcase(s, t);
  return xk_check_run(s);
}
