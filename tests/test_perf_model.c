/* The H100 model (codegen/perf_model.c) against its documented formulas:
 * occupancy limits, the small-grid and multi-wave efficiencies, latency
 * hiding, the bound, and the launches that cannot fit. */
#include "perf_model.h"

#include "check_main.h"
#include <math.h>
#include <string.h>

#define SMS 132
#define LAUNCH 3e-6

/* counters whose only cost is `bytes` distinct bytes (dram-bound) */
static xk_sim_counters dram_only(double bytes) {
  xk_sim_counters c = {0};
  c.unique_bytes = (int64_t)bytes;
  return c;
}

static xk_perf_estimate run(const xk_sim_counters *c, int threads, int regs,
                            int smem, int64_t blocks) {
  xk_perf_launch l = {regs, smem, threads, blocks};
  xk_perf_estimate e;
  xk_diag d;
  ck_assert_msg(xk_perf_model(c, &l, &e, &d) == 0, "%s", d.msg);
  return e;
}

START_TEST(limits_and_occupancy) {
  xk_sim_counters c = dram_only(3e6);
  /* 128 threads, 128 regs: 4 warps x 4096 regs -> 4 blocks per SM */
  xk_perf_estimate e = run(&c, 128, 128, 0, 10000);
  ck_assert_int_eq(e.blocks_per_sm, 4);
  ck_assert_str_eq(e.limiter, "registers");
  ck_assert_double_eq_tol(e.occupancy, 16.0 / 64, 1e-12);
  /* 100 KB of shared memory: 233472 / (102400 + 1024) = 2 */
  e = run(&c, 128, 32, 100 * 1024, 10000);
  ck_assert_int_eq(e.blocks_per_sm, 2);
  ck_assert_str_eq(e.limiter, "shared");
}
END_TEST

START_TEST(grid_efficiency) {
  xk_sim_counters c = dram_only(3e6); /* 1 us at 3 TB/s */
  /* a full machine: 132 SMs x 4 blocks, hide 1 */
  xk_perf_estimate e = run(&c, 128, 128, 0, SMS * 4);
  ck_assert_double_eq_tol(e.wave_eff, 1.0, 1e-12);
  ck_assert_double_eq_tol(e.seconds, 1e-6 + LAUNCH, 1e-12);
  /* one block more: two waves, the second nearly empty */
  e = run(&c, 128, 128, 0, SMS * 4 + 1);
  ck_assert_double_eq(e.waves, 2);
  ck_assert_double_eq_tol(e.wave_eff, (SMS * 4 + 1.0) / (2 * SMS * 4), 1e-12);
  /* 33 blocks of 4 warps: 33 of 132 SMs busy, 4 resident warps hide half */
  e = run(&c, 128, 128, 0, 33);
  ck_assert_double_eq_tol(e.wave_eff, 33.0 / SMS, 1e-12);
  ck_assert_double_eq_tol(e.hide, 0.5, 1e-12);
  ck_assert_double_eq_tol(e.seconds, 1e-6 / (33.0 / SMS * 0.5) + LAUNCH, 1e-12);
  /* 264 blocks fit one wave at 4 per SM: every SM busy with 2 blocks */
  e = run(&c, 128, 128, 0, 264);
  ck_assert_double_eq_tol(e.wave_eff, 1.0, 1e-12);
  ck_assert_double_eq_tol(e.hide, 1.0, 1e-12);
}
END_TEST

START_TEST(the_largest_bound_wins) {
  xk_sim_counters c = dram_only(3e6);
  c.gld_sectors = (int64_t)(2 * 5.5e12 * 1e-6 / 32); /* 2 us of L2 */
  xk_perf_estimate e = run(&c, 256, 64, 0, SMS * 8);
  ck_assert_str_eq(e.bound, "l2");
  ck_assert_double_eq_tol(e.t_l2, 2e-6, 1e-9);
  c.inst[XK_SIM_MMA] = (int64_t)(3 * 790e12 * 1e-6 / 4096); /* 3 us */
  e = run(&c, 256, 64, 0, SMS * 8);
  ck_assert_str_eq(e.bound, "tensor");
  ck_assert(fabs(e.seconds - (3e-6 + LAUNCH)) < 1e-8);
}
END_TEST

START_TEST(launches_that_cannot_fit) {
  xk_sim_counters c = dram_only(1);
  xk_perf_launch l = {32, 0, 0, 1};
  xk_perf_estimate e;
  xk_diag d;
  ck_assert_int_eq(xk_perf_model(&c, &l, &e, &d), -1);
  ck_assert_ptr_nonnull(strstr(d.msg, "0 threads"));
  l = (xk_perf_launch){32, 300 * 1024, 128, 1}; /* shared > an SM's */
  ck_assert_int_eq(xk_perf_model(&c, &l, &e, &d), -1);
  ck_assert_ptr_nonnull(strstr(d.msg, "does not fit"));
  /* sm_90's opt-in maximum per block fits once per SM; a byte more never */
  l = (xk_perf_launch){32, 227 * 1024, 128, 1};
  ck_assert_int_eq(xk_perf_model(&c, &l, &e, &d), 0);
  ck_assert_int_eq(e.blocks_per_sm, 1);
  ck_assert_str_eq(e.limiter, "shared");
  l.shared_bytes++;
  ck_assert_int_eq(xk_perf_model(&c, &l, &e, &d), -1);
  ck_assert_ptr_nonnull(strstr(d.msg, "at most 232448 per block"));
  l = (xk_perf_launch){32, 0, 128, 0};
  ck_assert_int_eq(xk_perf_model(&c, &l, &e, &d), -1);
}
END_TEST

int main(void) {
  Suite *s = suite_create("perf_model");
  TCase *tc = tcase_create("model");
  tcase_add_test(tc, limits_and_occupancy);
  tcase_add_test(tc, grid_efficiency);
  tcase_add_test(tc, the_largest_bound_wins);
  tcase_add_test(tc, launches_that_cannot_fit);
  suite_add_tcase(s, tc);
  return xk_check_run(s);
}
