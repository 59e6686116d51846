/* Resident dot operands (codegen/nvptx/lower_nvptx_resident.c): a tile
 * loaded before a loop and multiplied in every iteration is copied once
 * into shared memory and read there in place, instead of being restaged by
 * each iteration's dot. Through the sim: Y = sum_i X_i W against a plain C
 * reference at 1 and 5 iterations, and the per-iteration copies counted
 * against the same kernel loading W inside the loop (which copies both
 * tiles every iteration, X and W being the same size). */
#include "case_util.h"
#include "compile.h"
#include "sim.h"

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char src[] =
    "for _, inside in ipairs({ false, true }) do\n"
    "  kernel(inside and 'dot_w_inside' or 'dot_w_resident') {\n"
    "    args = { {'X', ptr(f16)}, {'W', ptr(f16)}, {'Y', ptr(f32)},\n"
    "             {'N', i32} },\n"
    "    consts = { {'BM', 32}, {'BK', 64}, {'BN', 32}, {'num_warps', 4} },\n"
    "    grid = { '1' },\n"
    "  }(function(a, c)\n"
    "    local m, k, n = arange(c.BM), arange(c.BK), arange(c.BN)\n"
    "    local function w() return load(a.W + k:col() * c.BN + n:row()) end\n"
    "    local w0 = not inside and w() or nil\n"
    "    local acc = for_range(0, a.N, 1, zeros({ c.BM, c.BN }),\n"
    "      function(i, acc)\n"
    "        local x = load(a.X + (i * c.BM + m:col()) * c.BK + k:row())\n"
    "        return dot(x, w0 or w(), acc)\n"
    "      end)\n"
    "    store(a.Y + m:col() * c.BN + n:row(), acc)\n"
    "  end)\n"
    "end\n";

#define BM 32
#define BK 64
#define BN 32
#define NMAX 5

static xk_sim_counters run(const char *kernel, int N) {
  xk_dsl *dsl;
  xk_func *f;
  xk_diag d;
  ck_assert_msg(
      xk_dsl_open_buffer("resident.xk", src, sizeof src - 1, &dsl, &d) == 0,
      "%s", d.msg);
  ck_assert_msg(xk_compile_ir(dsl, xk_dsl_find(dsl, kernel), NULL, 0, &f, &d) ==
                    0,
                "%s", d.msg);
  xk_dsl_close(dsl);
  LLVMTargetMachineRef tm;
  LLVMModuleRef mod;
  xk_nvptx_info info;
  xk_jit *jit;
  xk_host_fn fn;
  ck_assert_msg(xk_target_machine("sim", &tm, &d) == 0, "%s", d.msg);
  ck_assert_msg(xk_compile_llvm(f, "sim", tm, f->name, 1, &mod, &info, &d) == 0,
                "%s", d.msg);
  LLVMDisposeTargetMachine(tm);
  ck_assert_msg(xk_jit_new(&jit, &d) == 0, "%s", d.msg);
  ck_assert_msg(xk_jit_add(jit, mod, &d) == 0 &&
                    xk_jit_lookup(jit, f->name, &fn, &d) == 0,
                "%s", d.msg);
  static uint16_t x[NMAX * BM * BK], w[BK * BN];
  static float xf[NMAX * BM * BK], wf[BK * BN], y[BM * BN];
  uint64_t rng = 11;
  for (int i = 0; i < NMAX * BM * BK; i++) {
    x[i] = xk_f32_to_f16((float)floor(xk_case_urand(&rng) * 17 - 8) / 8);
    xf[i] = xk_f16_to_f32(x[i]);
  }
  for (int i = 0; i < BK * BN; i++) {
    w[i] = xk_f32_to_f16((float)floor(xk_case_urand(&rng) * 13 - 6) / 4);
    wf[i] = xk_f16_to_f32(w[i]);
  }
  void *px = x, *pw = w, *py = y;
  void *args[4] = {&px, &pw, &py, &N};
  int32_t grid[3] = {1, 1, 1};
  xk_sim_counters c;
  ck_assert_msg(xk_sim_launch((xk_sim_fn)(void (*)(void))fn, args, grid,
                              info.threads, info.shared_bytes, &c, &d) == 0,
                "%s", d.msg);
  for (int r = 0; r < BM; r++)
    for (int j = 0; j < BN; j++) {
      double want = 0;
      for (int i = 0; i < N; i++)
        for (int t = 0; t < BK; t++)
          want += (double)xf[(i * BM + r) * BK + t] * wf[t * BN + j];
      /* small exact multiples of 1/32: the f32 sum is exact */
      ck_assert_msg(y[r * BN + j] == (float)want, "%s N=%d y[%d,%d] %g != %g",
                    kernel, N, r, j, y[r * BN + j], want);
    }
  xk_jit_free(jit);
  xk_func_free(f);
  return c;
}

START_TEST(test_copies_once) {
  xk_sim_counters r1 = run("dot_w_resident", 1),
                  r5 = run("dot_w_resident", NMAX);
  xk_sim_counters i1 = run("dot_w_inside", 1), i5 = run("dot_w_inside", NMAX);
  /* per extra iteration: W's copy into shared memory is the difference */
  int64_t res = (r5.smem_bytes - r1.smem_bytes) / (NMAX - 1);
  int64_t ins = (i5.smem_bytes - i1.smem_bytes) / (NMAX - 1);
  printf("shared bytes per extra iteration: W resident %lld, W loaded inside "
         "%lld; requests %lld vs %lld\n",
         (long long)res, (long long)ins,
         (long long)(r5.smem_requests - r1.smem_requests) / (NMAX - 1),
         (long long)(i5.smem_requests - i1.smem_requests) / (NMAX - 1));
  ck_assert_int_eq(ins - res, BK * BN * 2);
  /* and W crosses global memory once */
  ck_assert_int_eq(r5.gld_sectors - r1.gld_sectors,
                   i5.gld_sectors - i1.gld_sectors -
                       (NMAX - 1) * BK * BN * 2 / 32);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("resident");
  TCase *k = tcase_create("dot");
  tcase_set_timeout(k, 120);
  tcase_add_test(k, test_copies_once);
  suite_add_tcase(s, k);
  return s;
}

int main(void) {
  return xk_check_run(suite());
}
