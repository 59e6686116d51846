/* The sm_90 model (sim/perf_model.c) against its documented formulas:
 * occupancy limits, the small-grid and multi-wave efficiencies, latency
 * hiding, the bound, the launches that cannot fit, and the GPU table (H100
 * SXM and H200: the same compute, DRAM bandwidth in their ratio). */
#include "perf_model.h"

#include "check_main.h"
#include <math.h>
#include <string.h>

#define SMS 132
#define LAUNCH 3e-6
/* the calibrated H100 bandwidth: 3.35 TB/s x 4.3 / 4.8 */
#define H100_BW (3.35e12 * 4.3 / 4.8)

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
  xk_sim_counters c = dram_only(H100_BW * 1e-6);
  double t1 = (double)c.unique_bytes / H100_BW; /* 1 us, whole bytes */
  /* a full machine: 132 SMs x 4 blocks, hide 1 */
  xk_perf_estimate e = run(&c, 128, 128, 0, SMS * 4);
  ck_assert_double_eq_tol(e.wave_eff, 1.0, 1e-12);
  ck_assert_double_eq_tol(e.seconds, t1 + LAUNCH, 1e-15);
  /* one block more: two waves, the second nearly empty */
  e = run(&c, 128, 128, 0, SMS * 4 + 1);
  ck_assert_double_eq(e.waves, 2);
  ck_assert_double_eq_tol(e.wave_eff, (SMS * 4 + 1.0) / (2 * SMS * 4), 1e-12);
  /* 33 blocks of 4 warps: 33 of 132 SMs busy, 4 resident warps hide half */
  e = run(&c, 128, 128, 0, 33);
  ck_assert_double_eq_tol(e.wave_eff, 33.0 / SMS, 1e-12);
  ck_assert_double_eq_tol(e.hide, 0.5, 1e-12);
  ck_assert_double_eq_tol(e.seconds, t1 / (33.0 / SMS * 0.5) + LAUNCH, 1e-15);
  /* 264 blocks fit one wave at 4 per SM: every SM busy with 2 blocks */
  e = run(&c, 128, 128, 0, 264);
  ck_assert_double_eq_tol(e.wave_eff, 1.0, 1e-12);
  ck_assert_double_eq_tol(e.hide, 1.0, 1e-12);
}
END_TEST

START_TEST(the_largest_bound_wins) {
  xk_sim_counters c = dram_only(H100_BW * 1e-6);
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

static xk_perf_estimate run_on(const char *gpu, const xk_sim_counters *c) {
  const xk_gpu *g = xk_gpu_find(gpu);
  ck_assert_ptr_nonnull(g);
  xk_perf_launch l = {64, 0, 256, SMS * 8};
  xk_perf_estimate e;
  xk_diag d;
  ck_assert_msg(xk_perf_model_gpu(g, c, &l, &e, &d) == 0, "%s", d.msg);
  return e;
}

START_TEST(gpu_table) {
  const xk_gpu *h100 = xk_gpu_find("h100-sxm"), *h200 = xk_gpu_find("h200");
  ck_assert_ptr_nonnull(h100);
  ck_assert_ptr_nonnull(h200);
  ck_assert_ptr_eq(xk_gpu_find("h100"), h100);
  ck_assert_ptr_null(xk_gpu_find("h300"));
  ck_assert_ptr_null(xk_gpu_find(NULL));
  ck_assert_str_eq(h100->arch, "sm_90");
  ck_assert_str_eq(h200->arch, "sm_90");
  ck_assert_int_eq(h100->sms, SMS);
  ck_assert_int_eq(h200->sms, SMS);
  ck_assert_double_eq(h100->dram_peak, 3.35e12);
  ck_assert_double_eq(h200->dram_peak, 4.8e12);
  /* the calibrated fraction: 3.0 and 4.3 TB/s achievable */
  ck_assert(fabs(xk_gpu_dram_bw(h100) - 3.0e12) < 0.01e12);
  ck_assert(fabs(xk_gpu_dram_bw(h200) - 4.3e12) < 1e6);
  ck_assert_double_eq(h100->mma_flops, h200->mma_flops);
  ck_assert_double_eq(h100->fma_flops, h200->fma_flops);
}
END_TEST

/* A pure-bandwidth kernel: bytes / calibrated bandwidth + launch on each
 * GPU, and the H200 faster than the H100 by exactly 4.8 / 3.35 */
START_TEST(dram_bound_by_bandwidth) {
  xk_sim_counters c = dram_only(8.6e9); /* the H200 copy's bytes */
  xk_perf_estimate a = run_on("h100", &c), b = run_on("h200", &c);
  ck_assert_str_eq(a.bound, "dram");
  ck_assert_str_eq(b.bound, "dram");
  ck_assert(fabs(b.seconds - (8.6e9 / 4.3e12 + LAUNCH)) < 1e-9);
  ck_assert(fabs(a.seconds - (8.6e9 / H100_BW + LAUNCH)) < 1e-9);
  ck_assert(fabs((a.seconds - LAUNCH) / (b.seconds - LAUNCH) - 4.8 / 3.35) <
            1e-9);
  /* the default entry point is the H100 */
  xk_perf_launch l = {64, 0, 256, SMS * 8};
  xk_perf_estimate e;
  xk_diag d;
  ck_assert_int_eq(xk_perf_model(&c, &l, &e, &d), 0);
  ck_assert_double_eq(e.seconds, a.seconds);
}
END_TEST

/* Shared memory serves one 128-byte wavefront per SM per clock (1.98
 * GHz): with enough of them a kernel whose other bounds are lower is
 * smem-bound. */
START_TEST(smem_bound_by_wavefronts) {
  xk_sim_counters c = dram_only(1e6);
  double wf = 2e-6 * SMS * 1.98e9; /* 2 us of wavefronts */
  c.smem_wavefronts = (int64_t)wf;
  c.inst[XK_SIM_MMA] = (int64_t)(790e12 * 1e-6 / 4096); /* 1 us */
  xk_perf_estimate a = run_on("h100", &c), b = run_on("h200", &c);
  ck_assert_str_eq(a.bound, "smem");
  ck_assert_msg(fabs(a.t_smem - 2e-6) < 1e-11, "%g", a.t_smem);
  ck_assert(fabs(a.seconds - (2e-6 + LAUNCH)) < 1e-10);
  ck_assert_double_eq(a.seconds, b.seconds);
  /* half the wavefronts: the tensor bound wins */
  c.smem_wavefronts = (int64_t)(wf / 2);
  a = run_on("h100", &c);
  ck_assert(fabs(a.t_smem - 1e-6) < 1e-11);
  ck_assert(a.t_tensor >= a.t_smem * 0.999);
}
END_TEST

/* compute-bound work costs the same on both: same GH100 compute */
START_TEST(tensor_bound_same_on_both) {
  xk_sim_counters c = dram_only(1e6);
  c.inst[XK_SIM_MMA] = (int64_t)(790e12 * 100e-6 / 4096); /* 100 us */
  xk_perf_estimate a = run_on("h100-sxm", &c), b = run_on("h200", &c);
  ck_assert_str_eq(a.bound, "tensor");
  ck_assert_double_eq(a.seconds, b.seconds);
  ck_assert(fabs(a.seconds - (100e-6 + LAUNCH)) < 1e-9);
}
END_TEST

int main(void) {
  Suite *s = suite_create("perf_model");
  TCase *tc = tcase_create("model");
  tcase_add_test(tc, limits_and_occupancy);
  tcase_add_test(tc, smem_bound_by_wavefronts);
  tcase_add_test(tc, grid_efficiency);
  tcase_add_test(tc, the_largest_bound_wins);
  tcase_add_test(tc, launches_that_cannot_fit);
  tcase_add_test(tc, gpu_table);
  tcase_add_test(tc, dram_bound_by_bandwidth);
  tcase_add_test(tc, tensor_bound_same_on_both);
  suite_add_tcase(s, tc);
  return xk_check_run(s);
}
