/* xKV compression through xkv_cache_prefill on the CPU device, for both
 * routes (randomized SVD, Gram eigenvectors): the rank-r error against the
 * optimal (exact SVD, LAPACKE) on matrices with decaying spectra, exactness
 * on low-rank inputs, the rank policies, the AUTO route choice, and the
 * bad-input errors. */
#include "../runtime/xkv_cache_int.h"
#include "xkv.h"
#include "xkv_ref.h"

#include "check_main.h"
#include "test_device.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { HKV = 2, D = 64, W = 2, HD = HKV * D, F = W * HD };

/* the loop tests' routes (_i) and their error bound over the optimum: the
 * Gram route is exact up to f32 rounding */
static const xkv_svd_method methods[] = {XKV_SVD_RANDOMIZED, XKV_SVD_GRAM};
static const char *const method_names[] = {"rsvd", "gram"};
static const double method_bound[] = {1.05, 1.001};

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

static xkv_cache_config config(int L, int rk, int rv, xkv_svd_method m) {
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
                        .seed = 7,
                        .svd = m};
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
    xkv_cache_config f = config(L, r, r, methods[_i]);
    xkv_cache *c;
    ck_assert_msg(xkv_cache_create(ctx, &f, &c) == XKV_OK, "%s",
                  xkv_last_error(ctx));
    ck_assert_msg(prefill(c, xk, xv, L) == XKV_OK, "%s", xkv_last_error(ctx));
    for (int which = 0; which < 2; which++) {
      double best, norm;
      ck_assert_int_eq(
          xkv_ref_svd(which ? xv : xk, L, F, r, &best, &norm, NULL), 0);
      double got = recon_err(c, xk, xv, L, which);
      printf("L=%d r=%d decay=%.2f %s: %s %.4e optimal %.4e (x%.5f)\n", L, r,
             cases[i].decay, which ? "V" : "K", method_names[_i], got / norm,
             best / norm, got / best);
      ck_assert_msg(got <= method_bound[_i] * best,
                    "%s error %g > %g * optimal %g", method_names[_i], got,
                    method_bound[_i], best);
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
  xkv_cache_config f = config(L, r, r, methods[_i]);
  xkv_cache *c;
  ck_assert_int_eq(xkv_cache_create(ctx, &f, &c), XKV_OK);
  ck_assert_msg(prefill(c, xk, xv, L) == XKV_OK, "%s", xkv_last_error(ctx));
  for (int which = 0; which < 2; which++) {
    double best, norm;
    xkv_ref_svd(which ? xv : xk, L, F, r, &best, &norm, NULL);
    double got = recon_err(c, xk, xv, L, which) / norm;
    printf("rank-%d input, rank %d, %s: relative error %.3e\n", r, r,
           method_names[_i], got);
    ck_assert_double_lt(got, 1e-4);
  }
  xkv_cache_destroy(c);
  free(xk);
  free(xv);
  xkv_close(ctx);
}
END_TEST

/* the smallest r with sigma_1^2 + ... + sigma_r^2 >= energy * total */
static int energy_rank(const double *sig, int n, double energy) {
  double total = 0, kept = 0;
  for (int i = 0; i < n; i++)
    total += sig[i] * sig[i];
  int r = 0;
  while (r < n && kept < energy * total) {
    kept += sig[r] * sig[r];
    r++;
  }
  return r;
}

START_TEST(rank_policies) {
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, xk_test_device()), XKV_OK);
  int L = 256;
  float *xk = make_x(L, 0.9, 0, 3), *xv = make_x(L, 0.9, 0, 4);
  double sk[256], sv[256], best, norm;
  xkv_ref_svd(xk, L, F, 0, &best, &norm, sk);
  xkv_ref_svd(xv, L, F, 0, &best, &norm, sv);
  /* energy: the smallest exact rank keeping the share (the rsvd may differ
   * by one at the boundary, the Gram route sees every sigma^2), and a cap
   * below it holds */
  static const double energies[] = {0.9, 0.99, 0.999};
  xkv_cache_config f = config(L, 0, 0, methods[_i]);
  f.policy = XKV_RANK_ENERGY;
  int tol = methods[_i] == XKV_SVD_GRAM ? 0 : 1;
  xkv_cache *c;
  xkv_cache_stats st;
  for (int e = 0; e < 3; e++) {
    f.energy = (float)energies[e];
    int wk = energy_rank(sk, L, f.energy), wv = energy_rank(sv, L, f.energy);
    ck_assert_int_eq(xkv_cache_create(ctx, &f, &c), XKV_OK);
    ck_assert_msg(prefill(c, xk, xv, L) == XKV_OK, "%s", xkv_last_error(ctx));
    xkv_cache_get_stats(c, &st);
    printf("%s energy %.3f: ranks %d/%d (exact SVD: %d/%d)\n", method_names[_i],
           energies[e], st.rank_k_max, st.rank_v_max, wk, wv);
    ck_assert_int_le(abs(st.rank_k_max - wk), tol);
    ck_assert_int_le(abs(st.rank_v_max - wv), tol);
    xkv_cache_destroy(c);
  }
  f.rank_k = 10;
  ck_assert_int_eq(xkv_cache_create(ctx, &f, &c), XKV_OK);
  ck_assert_msg(prefill(c, xk, xv, L) == XKV_OK, "%s", xkv_last_error(ctx));
  xkv_cache_get_stats(c, &st);
  ck_assert_int_eq(st.rank_k_max, 10);
  ck_assert_int_le(abs(st.rank_v_max - energy_rank(sv, L, f.energy)), tol);
  xkv_cache_destroy(c);
  /* target ratio: the stored bytes reach it (within one rank's bytes) */
  f.policy = XKV_RANK_RATIO;
  f.target_ratio = 4;
  ck_assert_int_eq(xkv_cache_create(ctx, &f, &c), XKV_OK);
  ck_assert_msg(prefill(c, xk, xv, L) == XKV_OK, "%s", xkv_last_error(ctx));
  xkv_cache_get_stats(c, &st);
  printf("%s target ratio 4 (f32 factors): ratio %.3f, ranks %d/%d\n",
         method_names[_i], st.ratio, st.rank_k_max, st.rank_v_max);
  ck_assert_double_ge(st.ratio, 4.0);
  ck_assert_double_lt(st.ratio, 4.0 * (st.rank_k_max + 1) / st.rank_k_max);
  xkv_cache_destroy(c);
  free(xk);
  free(xv);
  xkv_close(ctx);
}
END_TEST

/* a group of nl layers (Hkv heads of d), L random tokens, fixed rank r or
 * (energy > 0) the energy policy capped at r */
typedef struct {
  int nl, hkv, d, L, r;
  float energy;
} group_case;

/* A_k of the group through route m, host f32 to free; *rank: its rank */
static float *group_factor(xkv_context *ctx, const group_case *g,
                           xkv_svd_method m, int *rank) {
  xkv_cache_config f = {.n_layers = g->nl,
                        .n_heads = g->hkv,
                        .n_kv_heads = g->hkv,
                        .head_dim = g->d,
                        .max_tokens = g->L,
                        .group = g->nl,
                        .policy =
                            g->energy > 0 ? XKV_RANK_ENERGY : XKV_RANK_FIXED,
                        .rank_k = g->r,
                        .rank_v = g->r,
                        .energy = g->energy,
                        .dtype = XKV_F32,
                        .rope_theta = 10000,
                        .seed = 3,
                        .svd = m};
  size_t n = (size_t)g->L * g->hkv * g->d;
  float *k = malloc(n * 4), *v = malloc(n * 4);
  uint64_t seed = 17;
  xkv_cache *c;
  ck_assert_int_eq(xkv_cache_create(ctx, &f, &c), XKV_OK);
  for (int l = 0; l < g->nl; l++) {
    for (size_t i = 0; i < n; i++) {
      k[i] = (float)xkv_ref_gauss(&seed) / (1 + i % 37);
      v[i] = (float)xkv_ref_gauss(&seed);
    }
    ck_assert_msg(xkv_cache_prefill(c, l, k, v, g->L) == XKV_OK, "%s",
                  xkv_last_error(ctx));
  }
  *rank = c->groups[0].rank_k;
  float *a = xkv_ref_fetch(c, c->groups[0].ak, (size_t)g->L * *rank);
  ck_assert_ptr_nonnull(a);
  xkv_cache_destroy(c);
  free(k);
  free(v);
  return a;
}

START_TEST(auto_route) {
  /* the cost model: the Gram route for SmolLM2 shapes on this CPU, not
   * past XKV_GRAM_MAX_F (Llama-3.1-8B, W = 4), nor for L < F; on an H100
   * (132 SMs) the host eigensolver outweighs the device GEMMs it saves at
   * 8K tokens but not at 128K */
  ck_assert(xkv_cache_gram_cheaper(XKV_DEVICE_CPU, 2, 2, 8192, 768, 4, 192));
  ck_assert(xkv_cache_gram_cheaper(XKV_DEVICE_CPU, 2, 2, 32768, 768, 4, 192));
  ck_assert(!xkv_cache_gram_cheaper(XKV_DEVICE_CPU, 2, 2, 8192, 4096, 4, 384));
  ck_assert(!xkv_cache_gram_cheaper(XKV_DEVICE_CPU, 2, 2, 700, 768, 4, 192));
  ck_assert(
      !xkv_cache_gram_cheaper(XKV_DEVICE_CUDA, 132, 16, 8192, 768, 4, 192));
  ck_assert(
      xkv_cache_gram_cheaper(XKV_DEVICE_CUDA, 132, 16, 131072, 768, 4, 192));
  /* through a cache, AUTO gives the factors of the route the model picks
   * for this device: F = 256, r = 64; F = 4096 (past the cap); and never
   * the Gram route for an energy target beyond its accuracy */
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, xk_test_device()), XKV_OK);
  xkv_device_info di;
  ck_assert_int_eq(xkv_device_get_info(ctx, &di), XKV_OK);
  static const group_case cases[] = {{2, 2, 64, 300, 64, 0},
                                     {8, 4, 128, 48, 8, 0},
                                     {2, 2, 64, 300, 64, 0.9999999f}};
  for (int i = 0; i < 3; i++) {
    const group_case *g = &cases[i];
    int F = g->nl * g->hkv * g->d;
    int gram = g->energy == 0 &&
               xkv_cache_gram_cheaper(di.kind, di.units,
                                      (int)sysconf(_SC_NPROCESSORS_ONLN), g->L,
                                      F, g->nl, g->r);
    if (di.kind == XKV_DEVICE_CPU) /* as many pool threads as cores */
      ck_assert_int_eq(gram, i == 0);
    int ra, rb;
    float *a = group_factor(ctx, g, XKV_SVD_AUTO, &ra);
    float *b =
        group_factor(ctx, g, gram ? XKV_SVD_GRAM : XKV_SVD_RANDOMIZED, &rb);
    printf("AUTO, F = %d, energy %.7f: %s\n", F, g->energy,
           gram ? "gram" : "randomized");
    ck_assert_int_eq(ra, rb);
    ck_assert_mem_eq(a, b, (size_t)g->L * ra * 4);
    if (F <= 256) { /* the routes differ (the Gram route is slow at 4096) */
      float *o =
          group_factor(ctx, g, gram ? XKV_SVD_RANDOMIZED : XKV_SVD_GRAM, &rb);
      ck_assert(ra != rb || memcmp(a, o, (size_t)g->L * ra * 4));
      free(o);
    }
    free(a);
    free(b);
  }
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
  xkv_cache_config f = config(40, 8, 8, XKV_SVD_AUTO);
  f.head_dim = 96;
  expect(ctx, xkv_cache_create(ctx, &f, &c), "head_dim 96");
  ck_assert_ptr_null(c);
  f = config(40, 8, 8, XKV_SVD_AUTO);
  f.group = 3;
  expect(ctx, xkv_cache_create(ctx, &f, &c), "group (W) 3");
  f = config(40, 0, 8, XKV_SVD_AUTO);
  expect(ctx, xkv_cache_create(ctx, &f, &c), "rank_k 0");
  f = config(40, F + 1, 8, XKV_SVD_AUTO);
  expect(ctx, xkv_cache_create(ctx, &f, &c), "must lie in 1..256");
  f = config(40, 8, 8, XKV_SVD_AUTO);
  f.n_heads = 3;
  expect(ctx, xkv_cache_create(ctx, &f, &c), "not a multiple");
  f = config(40, 8, 8, XKV_SVD_AUTO);
  f.policy = XKV_RANK_ENERGY;
  f.energy = 1.5f;
  expect(ctx, xkv_cache_create(ctx, &f, &c), "energy");
  f = config(40, 8, 8, (xkv_svd_method)3);
  expect(ctx, xkv_cache_create(ctx, &f, &c), "svd 3 is not XKV_SVD_AUTO");
  f.svd = (xkv_svd_method)-1;
  expect(ctx, xkv_cache_create(ctx, &f, &c), "svd -1");

  /* layer order; max_tokens; a prompt shorter than the ranks (20 < 32)
   * is kept exact, not refused */
  int L = 20;
  float *x = make_x(L, 0.9, 0, 1);
  f = config(L, 32, 8, XKV_SVD_AUTO);
  ck_assert_int_eq(xkv_cache_create(ctx, &f, &c), XKV_OK);
  float *k = calloc((size_t)(L + 8) * HD, 4);
  expect(ctx, xkv_cache_prefill(c, 1, k, k, L), "expected layer 0");
  expect(ctx, xkv_cache_prefill(c, 0, k, k, L + 5), "max_tokens");
  ck_assert_int_eq(xkv_cache_prefill(c, 0, k, k, L), XKV_OK);
  expect(ctx, xkv_cache_prefill(c, 1, k, k, L - 1), "layer 0 had 20");
  ck_assert_msg(xkv_cache_prefill(c, 1, x, x, L) == XKV_OK, "%s",
                xkv_last_error(ctx));
  xkv_cache_stats st;
  ck_assert_int_eq(xkv_cache_get_stats(c, &st), XKV_OK);
  ck_assert_int_eq(st.groups_exact, 1);
  ck_assert_int_eq(st.groups_compressed, 0);
  ck_assert_uint_eq(st.bytes, 2ull * W * L * HD * 4); /* K, V in f32 */
  xkv_cache_destroy(c);
  f = config(L, 8, 8, XKV_SVD_AUTO);
  ck_assert_int_eq(xkv_cache_create(ctx, &f, &c), XKV_OK);
  float q[HKV * D] = {0}, out[HKV * D];
  expect(ctx, xkv_attention(c, 0, q, 0, out), "not ready");
  ck_assert_int_eq(prefill(c, x, x, L), XKV_OK);
  for (int t = 0; t < 4; t++)
    ck_assert_int_eq(xkv_cache_append(c, 0, k, k), XKV_OK);
  expect(ctx, xkv_cache_append(c, 0, k, k), "is full (max_tokens 24)");
  expect(ctx, xkv_attention(c, 5, q, 0, out), "layer 5");
  xkv_cache_destroy(c);
  /* an all-zero group has no subspace: either route says so */
  for (int m = 0; m < 2; m++) {
    f = config(L, 8, 8, methods[m]);
    ck_assert_int_eq(xkv_cache_create(ctx, &f, &c), XKV_OK);
    ck_assert_int_eq(xkv_cache_prefill(c, 0, k, k, L), XKV_OK);
    expect(ctx, xkv_cache_prefill(c, 1, k, k, L), "no energy");
    xkv_cache_destroy(c);
  }
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
  tcase_add_loop_test(tc, decaying_spectrum_near_optimal, 0, 2);
  tcase_add_loop_test(tc, low_rank_is_exact, 0, 2);
  tcase_add_loop_test(tc, rank_policies, 0, 2);
  tcase_add_test(tc, auto_route);
  tcase_add_test(tc, bad_inputs);
  suite_add_tcase(su, tc);
  return xk_check_run(su);
}
