/* xKV on a real KV cache: stories260K over 256 tokens of TinyStories text,
 * every layer's pre-RoPE keys and values compressed with W = 1, 2, 4 at
 * several ranks. The randomized SVD must stay within 5% of the optimal
 * rank-r error of each group matrix (exact SVD), full rank must be
 * lossless, and decode attention through the cache must track exact
 * attention. */
#include "xkv_real.h"

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>

#define L_TOKENS 256

static kv_capture cap;
static xkv_context *ctx;

static void setup(void) {
  char err[512];
  if (kv_capture_run(XK_DATA "/stories260K.bin", XK_DATA "/tok512.bin",
                     XK_DATA "/tinystories_val.txt", L_TOKENS, &cap, err,
                     sizeof err))
    ck_abort_msg("capture: %s", err);
  ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);
}

static void teardown(void) {
  kv_capture_free(&cap);
  xkv_close(ctx);
}

/* W, rank_k, rank_v: the first three store about the same bytes per layer
 * (r (L + W*32) / W), so they compare grouping at equal storage */
static const int configs[][3] = {{1, 8, 8},   {2, 14, 14}, {4, 24, 24},
                                 {1, 16, 16}, {2, 28, 28}, {4, 32, 32}};

START_TEST(near_optimal_per_layer) {
  const int *cf = configs[_i];
  xkv_real_layer lay[16];
  xkv_real_run run;
  char err[512];
  ck_assert_int_le(cap.n_layers, 16);
  ck_assert_msg(!xkv_real_eval(ctx, &cap, cf[0], cf[1], cf[2], 0, XKV_F16, lay,
                               &run, err, sizeof err),
                "%s", err);
  for (int l = 0; l < cap.n_layers; l++) {
    const xkv_real_layer *y = &lay[l];
    printf("W=%d r=%d/%d ratio %.2f layer %d: K %.4f (group %.4f, opt "
           "%.4f) V %.4f (group %.4f, opt %.4f) attn %.4f cos %.5f\n",
           cf[0], cf[1], cf[2], run.ratio, l, y->k_err, y->k_grp, y->k_opt,
           y->v_err, y->v_grp, y->v_opt, y->attn_err, y->attn_cos);
    ck_assert(y->k_opt >= 0 && y->v_opt >= 0);
    /* the randomized SVD against the optimum of the same group matrix; it
     * cannot beat it (up to f16 storage rounding, ~1e-3) */
    ck_assert_msg(
        y->k_grp <= 1.05 * y->k_opt + 1e-3 && y->k_grp >= y->k_opt - 1e-3,
        "layer %d K group %.4f vs optimum %.4f", l, y->k_grp, y->k_opt);
    ck_assert_msg(
        y->v_grp <= 1.05 * y->v_opt + 1e-3 && y->v_grp >= y->v_opt - 1e-3,
        "layer %d V group %.4f vs optimum %.4f", l, y->v_grp, y->v_opt);
    ck_assert_msg(y->attn_cos > 0.5, "layer %d attention cosine %.4f", l,
                  y->attn_cos);
  }
  ck_assert(run.ratio > 1.0);
}
END_TEST

static double mean_of(const xkv_real_layer *lay, int n, int what) {
  double m = 0;
  for (int l = 0; l < n; l++)
    m += what == 0 ? lay[l].k_grp : what == 1 ? lay[l].v_grp : lay[l].attn_err;
  return m / n;
}

/* Doubling the rank of a group must lower every error measure. */
START_TEST(more_rank_less_error) {
  static const int W[] = {1, 2, 4};
  int w = W[_i], r = 8 * w > 16 ? 16 : 8 * w;
  xkv_real_layer lo[16], hi[16];
  xkv_real_run run;
  char err[512];
  ck_assert_msg(
      !xkv_real_eval(ctx, &cap, w, r, r, 0, XKV_F16, lo, &run, err, sizeof err),
      "%s", err);
  ck_assert_msg(!xkv_real_eval(ctx, &cap, w, 2 * r, 2 * r, 0, XKV_F16, hi, &run,
                               err, sizeof err),
                "%s", err);
  for (int what = 0; what < 3; what++)
    ck_assert_msg(
        mean_of(hi, cap.n_layers, what) < mean_of(lo, cap.n_layers, what),
        "W=%d measure %d: rank %d gives %.4f, rank %d %.4f", w, what, 2 * r,
        mean_of(hi, cap.n_layers, what), r, mean_of(lo, cap.n_layers, what));
}
END_TEST

START_TEST(full_rank_is_lossless) {
  xkv_real_layer lay[16];
  xkv_real_run run;
  char err[512];
  int full = cap.n_kv_heads * cap.head_dim; /* one layer's features */
  ck_assert_msg(!xkv_real_eval(ctx, &cap, 1, full, full, 0, XKV_F32, lay, &run,
                               err, sizeof err),
                "%s", err);
  for (int l = 0; l < cap.n_layers; l++) {
    ck_assert_msg(lay[l].k_err < 1e-4 && lay[l].v_err < 1e-4,
                  "layer %d: K %.2e V %.2e", l, lay[l].k_err, lay[l].v_err);
    ck_assert_msg(lay[l].attn_err < 1e-3, "layer %d attention %.2e", l,
                  lay[l].attn_err);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("xkv_real");
  TCase *tc = tcase_create("stories260K");
  tcase_add_unchecked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, near_optimal_per_layer, 0,
                      sizeof configs / sizeof *configs);
  tcase_add_loop_test(tc, more_rank_less_error, 0, 3);
  tcase_add_test(tc, full_rank_is_lossless);
  suite_add_tcase(s, tc);
  return xk_check_run(s);
}
