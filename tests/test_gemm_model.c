/* The GEMM model's DRAM bytes in launch order (autotune/gemm_model.h)
 * against hand-counted panel reads: one wave, waves whose panels fit in L2
 * (A read once), and a tall A whose wave overflows L2 (A read once per
 * column of blocks); and the kernels the model times. */
#include "gemm_model.h"

#include "check_main.h"

#define MB (1024.0 * 1024.0)

START_TEST(one_wave_reads_each_panel_once) {
  const xk_gpu *g = xk_gpu_find("h100-sxm");
  /* 4 x 3 blocks, all resident: 4 A panels, 3 B panels, C */
  int64_t by = xk_gemm_dram_bytes(g, 4, 3, 1, 132, 1 * MB, 2 * MB, 5 * MB);
  ck_assert_int_eq(by, (int64_t)((4 * 1 + 3 * 2 + 5) * MB));
}
END_TEST

START_TEST(waves_reuse_panels_that_fit) {
  const xk_gpu *g = xk_gpu_find("h100-sxm"); /* 50 MB of L2 */
  /* 8 x 4 blocks, 8 at a time: each wave is one column of blocks, its 8 A
   * panels (8 MB) + 1 B panel fit L2, so A is read once */
  int64_t by = xk_gemm_dram_bytes(g, 8, 4, 1, 8, 1 * MB, 1 * MB, 0);
  ck_assert_int_eq(by, (int64_t)((8 + 4) * MB));
  /* the same with 10 MB A panels: a wave's 80 MB overflow L2, A is read
   * again for each of the 4 columns */
  by = xk_gemm_dram_bytes(g, 8, 4, 1, 8, 10 * MB, 1 * MB, 0);
  ck_assert_int_eq(by, (int64_t)((4 * 80 + 4) * MB));
  /* 8 x 2 blocks, 6 a wave: wave 0 reads A0..5, B0; wave 1 (A6, A7 of
   * column 0, A0..3 of column 1) reads A6, A7, B1 and reuses the rest;
   * wave 2 (A4..7 of column 1) reuses A6, A7 and B1 of wave 1 but reads A4,
   * A5 again: only the previous wave's panels count as resident */
  by = xk_gemm_dram_bytes(g, 8, 2, 1, 6, 1 * MB, 1 * MB, 0);
  ck_assert_int_eq(by, (int64_t)((6 + 1 + 3 + 2) * MB));
}
END_TEST

/* K splits: each split reads its own slices of the panels */
START_TEST(splits_read_their_slices) {
  const xk_gpu *g = xk_gpu_find("h100-sxm");
  /* 2 x 1 x 4 blocks at once: 8 A slices, 4 B slices, C */
  int64_t by = xk_gemm_dram_bytes(g, 2, 1, 4, 132, 1 * MB, 2 * MB, 3 * MB);
  ck_assert_int_eq(by, (int64_t)((8 * 1 + 4 * 2 + 3) * MB));
  /* 2 at a time: wave z reads only split z's 2 A slices and 1 B slice */
  by = xk_gemm_dram_bytes(g, 2, 1, 4, 2, 1 * MB, 2 * MB, 0);
  ck_assert_int_eq(by, (int64_t)(4 * (2 * 1 + 2) * MB));
}
END_TEST

START_TEST(model_kinds) {
  ck_assert_int_eq(xk_gemm_model_esize("gemm_f32"), 4);
  ck_assert_int_eq(xk_gemm_model_esize("gemm_f16"), 2);
  ck_assert_int_eq(xk_gemm_model_esize("gemm_bf16"), 2);
  ck_assert_int_eq(xk_gemm_model_esize("gemm_skt_bf16"), 2);
  ck_assert_int_eq(xk_gemm_model_esize("gemm_sk_f16"), 2);
  ck_assert_int_eq(xk_gemm_model_esize("gemm_st_f32_f16"), 0);
  ck_assert_int_eq(xk_gemm_model_esize("vadd"), 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("gemm_model");
  TCase *tc = tcase_create("dram");
  tcase_add_test(tc, one_wave_reads_each_panel_once);
  tcase_add_test(tc, waves_reuse_panels_that_fit);
  tcase_add_test(tc, splits_read_their_slices);
  tcase_add_test(tc, model_kinds);
  suite_add_tcase(s, tc);
  return xk_check_run(s);
}
