/* xKV compression through xkv_cache_prefill on the CPU device: the
 * randomized SVD's rank-r error against the optimal (exact SVD, LAPACKE)
 * on matrices with decaying spectra, exactness on low-rank inputs, the
 * rank policies, and the bad-input errors. */
#include "xkv.h"
#include "xkv_ref.h"

#include "check_main.h"
#include "test_device.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { HKV = 2, D = 64, W = 2, HD = HKV * D, F = W * HD };

/* X [L, F] = sum_i sigma_i u_i v_i^T, Gaussian u, v; spectrum decays as
 * sigma_i = decay^i (decay 0: exact rank `rank`) */
static float *make_x(int L, double decay, int rank, uint64_t seed) {
  float *x = calloc((size_t)L * F, 4);
  double *u = malloc((size_t)L * sizeof *u), *v = malloc(F * sizeof *v);
  int n = decay > 0 ? (L < F ? L : F) : rank;
  for (int i = 0; i < n; i++) {
    double s = decay > 0 ? pow(decay, i) : 1.0 / (1 + i);
    for (int a = 0; a < L; a++)
      u[a] = xkv_ref_gauss(&seed) / sqrt(L);
    for (int b = 0; b < F; b++)
      v[b] = xkv_ref_gauss(&seed) / sqrt(F);
    for (int a = 0; a < L; a++)
      for (int b = 0; b < F; b++)
        x[(size_t)a * F + b] += (float)(s * u[a] * v[b]);
  }
  free(u);
  free(v);
  return x;
}

static xkv_cache_config config(int L, int rk, int rv) {
  xkv_cache_config f = {.n_layers = W,
                        .n_heads = HKV,
                        .n_kv_heads = HKV,
                        .head_dim = D,
                        .max_tokens = L + 4,
                        .group = W,
                        .policy = XKV_RANK_FIXED,
                        .rank_k = rk,
                        .rank_v = rv,
                        .dtype = XKV_F32,
                        .rope_theta = 10000,
                        .seed = 7};
  return f;
}

/* prefills layers 0..W-1 with the column blocks of xk/xv */
static xkv_status prefill(xkv_cache *c, const float *xk, const float *xv,
                          int L) {
  float *k = malloc((size_t)L * HD * 4), *v = malloc((size_t)L * HD * 4);
  xkv_status s = XKV_OK;
  for (int l = 0; l < W && !s; l++) {
    for (int n = 0; n < L; n++) {
      memcpy(k + (size_t)n * HD, xk + (size_t)n * F + l * HD, HD * 4);
      memcpy(v + (size_t)n * HD, xv + (size_t)n * F + l * HD, HD * 4);
    }
    s = xkv_cache_prefill(c, l, k, v, L);
  }
  free(k);
  free(v);
  return s;
}

/* ||X - A B|| over the group, from the cache's factors */
static double recon_err(xkv_cache *c, const float *xk, const float *xv, int L,
                        int which) {
  float *k = malloc((size_t)L * HD * 4), *v = malloc((size_t)L * HD * 4);
  double e = 0;
  for (int l = 0; l < W; l++) {
    ck_assert_int_eq(xkv_ref_reconstruct(c, l, k, v), 0);
    const float *x = which ? xv : xk, *r = which ? v : k;
    for (int n = 0; n < L; n++)
      for (int j = 0; j < HD; j++) {
        double t = x[(size_t)n * F + l * HD + j] - r[(size_t)n * HD + j];
        e += t * t;
      }
  }
  free(k);
  free(v);
  return sqrt(e);
}

START_TEST(decaying_spectrum_near_optimal) {
  static const struct {
    int L, r;
    double decay;
  } cases[] = {{300, 32, 0.9}, {157, 48, 0.95}, {400, 16, 0.8}};
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, xk_test_device()), XKV_OK);
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    int L = cases[i].L, r = cases[i].r;
    float *xk = make_x(L, cases[i].decay, 0, 11 + i);
    float *xv = make_x(L, cases[i].decay, 0, 99 + i);
    xkv_cache_config f = config(L, r, r);
    xkv_cache *c;
    ck_assert_msg(xkv_cache_create(ctx, &f, &c) == XKV_OK, "%s",
                  xkv_last_error(ctx));
    ck_assert_msg(prefill(c, xk, xv, L) == XKV_OK, "%s", xkv_last_error(ctx));
    for (int which = 0; which < 2; which++) {
      double best, norm;
      ck_assert_int_eq(
          xkv_ref_svd(which ? xv : xk, L, F, r, &best, &norm, NULL), 0);
      double got = recon_err(c, xk, xv, L, which);
      printf("L=%d r=%d decay=%.2f %s: rsvd %.4e optimal %.4e (x%.4f)\n", L, r,
             cases[i].decay, which ? "V" : "K", got / norm, best / norm,
             got / best);
      ck_assert_msg(got <= 1.05 * best, "rsvd error %g > 1.05 * optimal %g",
                    got, best);
    }
    xkv_cache_stats st;
    ck_assert_int_eq(xkv_cache_get_stats(c, &st), XKV_OK);
    ck_assert_int_eq(st.groups_compressed, 1);
    uint64_t want = (uint64_t)(L * 2 * r + W * HD * 2 * r) * 4;
    ck_assert_uint_eq(st.bytes, want);
    ck_assert_uint_eq(st.exact_bytes, (uint64_t)2 * W * L * HD * 2);
    ck_assert_double_eq_tol(st.ratio, (double)st.exact_bytes / want, 1e-12);
    xkv_cache_destroy(c);
    free(xk);
    free(xv);
  }
  xkv_close(ctx);
}
END_TEST

START_TEST(low_rank_is_exact) {
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, xk_test_device()), XKV_OK);
  int L = 211, r = 20;
  float *xk = make_x(L, 0, r, 5), *xv = make_x(L, 0, r, 6);
  xkv_cache_config f = config(L, r, r);
  xkv_cache *c;
  ck_assert_int_eq(xkv_cache_create(ctx, &f, &c), XKV_OK);
  ck_assert_msg(prefill(c, xk, xv, L) == XKV_OK, "%s", xkv_last_error(ctx));
  for (int which = 0; which < 2; which++) {
    double best, norm;
    xkv_ref_svd(which ? xv : xk, L, F, r, &best, &norm, NULL);
    double got = recon_err(c, xk, xv, L, which) / norm;
    printf("rank-%d input, rank %d: relative error %.3e\n", r, r, got);
    ck_assert_double_lt(got, 1e-4);
  }
  xkv_cache_destroy(c);
  free(xk);
  free(xv);
  xkv_close(ctx);
}
END_TEST

START_TEST(rank_policies) {
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, xk_test_device()), XKV_OK);
  int L = 256;
  float *xk = make_x(L, 0.9, 0, 3), *xv = make_x(L, 0.9, 0, 4);
  double sig[256], best, norm;
  xkv_ref_svd(xk, L, F, 0, &best, &norm, sig);
  /* energy: the smallest exact rank keeping 99% (the rsvd may differ by
   * one at the boundary) */
  xkv_cache_config f = config(L, 0, 0);
  f.policy = XKV_RANK_ENERGY;
  f.energy = 0.99f;
  int want = 0;
  for (double kept = 0; kept < 0.99 * norm * norm; want++)
    kept += sig[want] * sig[want];
  xkv_cache *c;
  ck_assert_int_eq(xkv_cache_create(ctx, &f, &c), XKV_OK);
  ck_assert_msg(prefill(c, xk, xv, L) == XKV_OK, "%s", xkv_last_error(ctx));
  xkv_cache_stats st;
  xkv_cache_get_stats(c, &st);
  printf("energy 0.99: rank_k %d (exact SVD: %d)\n", st.rank_k_max, want);
  ck_assert_int_le(abs(st.rank_k_max - want), 1);
  xkv_cache_destroy(c);
  /* target ratio: the stored bytes reach it (within one rank's bytes) */
  f.policy = XKV_RANK_RATIO;
  f.target_ratio = 4;
  ck_assert_int_eq(xkv_cache_create(ctx, &f, &c), XKV_OK);
  ck_assert_msg(prefill(c, xk, xv, L) == XKV_OK, "%s", xkv_last_error(ctx));
  xkv_cache_get_stats(c, &st);
  printf("target ratio 4 (f32 factors): ratio %.3f, ranks %d/%d\n", st.ratio,
         st.rank_k_max, st.rank_v_max);
  ck_assert_double_ge(st.ratio, 4.0);
  ck_assert_double_lt(st.ratio, 4.0 * (st.rank_k_max + 1) / st.rank_k_max);
  xkv_cache_destroy(c);
  free(xk);
  free(xv);
  xkv_close(ctx);
}
END_TEST

static void expect(xkv_context *ctx, xkv_status got, const char *needle) {
  ck_assert_int_eq(got, XKV_ERR_INVALID);
  ck_assert_msg(strstr(xkv_last_error(ctx), needle), "'%s' lacks '%s'",
                xkv_last_error(ctx), needle);
}

START_TEST(bad_inputs) {
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, xk_test_device()), XKV_OK);
  xkv_cache *c = (xkv_cache *)1;
  xkv_cache_config f = config(40, 8, 8);
  f.head_dim = 96;
  expect(ctx, xkv_cache_create(ctx, &f, &c), "head_dim 96");
  ck_assert_ptr_null(c);
  f = config(40, 8, 8);
  f.group = 3;
  expect(ctx, xkv_cache_create(ctx, &f, &c), "group (W) 3");
  f = config(40, 0, 8);
  expect(ctx, xkv_cache_create(ctx, &f, &c), "rank_k 0");
  f = config(40, F + 1, 8);
  expect(ctx, xkv_cache_create(ctx, &f, &c), "must lie in 1..256");
  f = config(40, 8, 8);
  f.n_heads = 3;
  expect(ctx, xkv_cache_create(ctx, &f, &c), "not a multiple");
  f = config(40, 8, 8);
  f.policy = XKV_RANK_ENERGY;
  f.energy = 1.5f;
  expect(ctx, xkv_cache_create(ctx, &f, &c), "energy");

  /* rank above min(L, features) at compression; layer order; max_tokens */
  int L = 20;
  float *x = make_x(L, 0.9, 0, 1);
  f = config(L, 32, 8);
  ck_assert_int_eq(xkv_cache_create(ctx, &f, &c), XKV_OK);
  float *k = calloc((size_t)(L + 8) * HD, 4);
  expect(ctx, xkv_cache_prefill(c, 1, k, k, L), "expected layer 0");
  expect(ctx, xkv_cache_prefill(c, 0, k, k, L + 5), "max_tokens");
  ck_assert_int_eq(xkv_cache_prefill(c, 0, k, k, L), XKV_OK);
  expect(ctx, xkv_cache_prefill(c, 1, k, k, L - 1), "layer 0 had 20");
  expect(ctx, xkv_cache_prefill(c, 1, x, x, L), "exceed min(L = 20");
  xkv_cache_destroy(c);
  f = config(L, 8, 8);
  ck_assert_int_eq(xkv_cache_create(ctx, &f, &c), XKV_OK);
  float q[HKV * D] = {0}, out[HKV * D];
  expect(ctx, xkv_attention(c, 0, q, 0, out), "not ready");
  ck_assert_int_eq(prefill(c, x, x, L), XKV_OK);
  for (int t = 0; t < 4; t++)
    ck_assert_int_eq(xkv_cache_append(c, 0, k, k), XKV_OK);
  expect(ctx, xkv_cache_append(c, 0, k, k), "is full (max_tokens 24)");
  expect(ctx, xkv_attention(c, 5, q, 0, out), "layer 5");
  xkv_cache_destroy(c);
  free(k);
  free(x);
  xkv_close(ctx);
}
END_TEST

int main(void) {
  if (xk_test_device_skip("test_xkv_svd"))
    return 77;
  Suite *su = suite_create("xkv_svd");
  TCase *tc = tcase_create("svd");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, decaying_spectrum_near_optimal);
  tcase_add_test(tc, low_rank_is_exact);
  tcase_add_test(tc, rank_policies);
  tcase_add_test(tc, bad_inputs);
  suite_add_tcase(su, tc);
  return xk_check_run(su);
}
