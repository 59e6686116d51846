/* The single-pass dense decode kernel (xkv_decode_lr1_<dt>: rank buckets as
 * sizes, B_k resident in shared memory, values accumulated in rank space)
 * then xkv_decode_combine, on the host and through the sim target, against
 * plain C attention over the reconstructed keys (A_k B_k, RoPE at the
 * original positions) and values (A_v B_v). Ranks below their buckets and
 * not multiples of 16, GQA 1/4/8 with HB KV heads per program (an odd Hkv
 * leaves the last program a masked head), ragged prompts and splits that
 * see no token. */
#include "xkv_dsim.h"
#include "xkv_ref.h"

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static xk_dsl *kernels;

static void open_kernels(void) {
  xk_diag d;
  if (xk_dsl_open(XK_SRC "/kernels.xk", &kernels, &d))
    fprintf(stderr, "test_xkv_lr1: kernels.xk not usable: %s\n", d.msg);
}

static void close_kernels(void) {
  xk_dsl_close(kernels);
  kernels = NULL;
}

typedef struct {
  xkv_dsim_dtype dt;
  int d, hkv, g, L, rk, rv; /* the problem */
  int RK, RV, HB, ns;       /* buckets, KV heads per program, splits */
  int bn, br, brv, warps;   /* tiles; 0: the kernel's defaults */
} lcase;

static const lcase cases[] = {
    /* GQA 4, two KV heads per program */
    {XKV_DSIM_F16, 64, 2, 4, 100, 40, 56, 64, 64, 2, 2, 0, 0, 0, 4},
    /* GQA 1, Hkv 3: the second program's second head is masked */
    {XKV_DSIM_BF16, 64, 3, 1, 77, 30, 50, 32, 64, 2, 3, 0, 0, 0, 4},
    /* GQA 8, one KV head per program, rank_v 100 in bucket 128 */
    {XKV_DSIM_F16, 64, 2, 8, 90, 64, 100, 64, 128, 1, 2, 0, 0, 0, 4},
    /* Llama-3.1-8B's head_dim and buckets (the default config) */
    {XKV_DSIM_F16, 128, 2, 4, 70, 300, 500, 384, 576, 2, 2, 0, 0, 0, 0},
    /* 4 splits of a 45-token prompt: two see no token */
    {XKV_DSIM_BF16, 128, 1, 8, 45, 24, 40, 64, 64, 1, 4, 0, 0, 0, 4},
    /* other tiles: rank parts of 32 and 64, BLOCK_N 16 */
    {XKV_DSIM_F16, 64, 2, 4, 61, 90, 70, 96, 80, 2, 2, 16, 32, 64, 4},
    /* f32 factors (FMA dots) */
    {XKV_DSIM_F32, 64, 2, 2, 50, 20, 36, 32, 48, 2, 2, 0, 0, 0, 4},
};
#define NCASES ((int)(sizeof cases / sizeof *cases))

static const char *dt_name(xkv_dsim_dtype dt) {
  return dt == XKV_DSIM_F32 ? "f32" : dt == XKV_DSIM_F16 ? "f16" : "bf16";
}

static void build(const lcase *c, int host, const char *name,
                  xkv_dsim_kernel *k) {
  xk_constexpr over[9] = {{"D", c->d}};
  int n = 1;
  if (c->warps)
    over[n++] = (xk_constexpr){"num_warps", c->warps};
  if (strcmp(name, "xkv_decode_combine")) {
    over[n++] = (xk_constexpr){"RK", c->RK};
    over[n++] = (xk_constexpr){"RV", c->RV};
    over[n++] = (xk_constexpr){"HB", c->HB};
    if (c->bn)
      over[n++] = (xk_constexpr){"BLOCK_N", c->bn};
    if (c->br)
      over[n++] = (xk_constexpr){"BLOCK_R", c->br};
    if (c->brv)
      over[n++] = (xk_constexpr){"BLOCK_RV", c->brv};
  }
  xk_diag d;
  int rc = host ? xkv_dsim_kernel_build_host(kernels, name, over, n, k, &d)
                : xkv_dsim_kernel_build(kernels, name, over, n, k, &d);
  ck_assert_msg(rc == 0, "%s: %s", name, d.msg);
}

/* the token count of split s (split_range in kernels.xk) */
static int split_len(int s, int ns, int n, int block) {
  int chunk = ((n + ns - 1) / ns + block - 1) / block * block;
  int t0 = s * chunk, t1 = t0 + chunk < n ? t0 + chunk : n;
  return t1 > t0 ? t1 - t0 : 0;
}

static void run(const lcase *c, int host, int seed) {
  ck_assert_msg(kernels != NULL, "kernels.xk did not load");
  char name[64];
  snprintf(name, sizeof name, "xkv_decode_lr1_%s", dt_name(c->dt));
  xkv_dsim_kernel lr, cb;
  build(c, host, name, &lr);
  build(c, host, "xkv_decode_combine", &cb);
  xkv_dsim_shape s = {.dt = c->dt,
                      .hkv = c->hkv,
                      .g = c->g,
                      .d = c->d,
                      .L = c->L,
                      .rk = c->rk,
                      .rv = c->rv,
                      .ns_lr = c->ns,
                      .ldo = c->ns + 2,
                      .theta = 10000.0,
                      .seed = 0x1c1c0000u + (uint64_t)seed};
  xkv_dsim p;
  xk_diag d;
  ck_assert_msg(xkv_dsim_init(&p, &s, &d) == 0, "%s", d.msg);
  ck_assert_msg(xkv_dsim_lr1(&p, &lr, NULL, NULL, &d) == 0, "lr1: %s", d.msg);
  ck_assert_msg(xkv_dsim_combine(&p, &cb, NULL, NULL, &d) == 0, "combine: %s",
                d.msg);
  int hq = c->hkv * c->g, bn = (int)xkv_dsim_const(&lr, "BLOCK_N"), empty = 0;
  for (int j = 0; j < c->ns; j++) {
    int n = split_len(j, c->ns, c->L, bn);
    for (int h = 0; h < hq && !n; h++) {
      float m = p.M[h * s.ldo + j];
      ck_assert_msg(isinf(m) && m < 0, "empty split %d head %d: max %g", j, h,
                    m);
      ck_assert_msg(p.Lsum[h * s.ldo + j] == 0, "empty split %d: sum %g", j,
                    p.Lsum[h * s.ldo + j]);
    }
    empty += !n;
  }
  float *ref = malloc(sizeof *ref * (size_t)hq * c->d);
  ck_assert_ptr_nonnull(ref);
  xkv_dsim_reference(&p, ref);
  size_t n = (size_t)hq * c->d;
  double err = xkv_ref_rel_err(p.out, ref, n);
  double cosine = xkv_ref_cosine(p.out, ref, n);
  printf("%s lr1 %-4s D=%-3d Hkv=%d G=%d L=%-3d rk=%-3d/%-3d rv=%-3d/%-3d "
         "HB=%d splits %d (%d empty) smem %d: rel err %.2e cosine %.6f\n",
         host ? "host" : "sim ", dt_name(c->dt), c->d, c->hkv, c->g, c->L,
         c->rk, c->RK, c->rv, c->RV, c->HB, c->ns, empty, lr.info.shared_bytes,
         err, cosine);
  int f32 = c->dt == XKV_DSIM_F32;
  double tol = f32 ? 1e-4 : c->dt == XKV_DSIM_F16 ? 2e-2 : 5e-2;
  ck_assert_msg(err < tol, "rel err %g >= %g", err, tol);
  ck_assert_msg(cosine > (f32 ? 0.999999 : 0.99), "cosine %f", cosine);
  free(ref);
  xkv_dsim_free(&p);
  xkv_dsim_kernel_free(&lr);
  xkv_dsim_kernel_free(&cb);
}

START_TEST(test_sim) {
  run(&cases[_i], 0, _i);
}
END_TEST

START_TEST(test_host) {
  run(&cases[_i], 1, _i);
}
END_TEST

/* A variant whose columns cannot hold its heads' query heads, or whose
 * buckets are below the ranks, is refused, not run wrong. */
START_TEST(test_refused) {
  ck_assert_msg(kernels != NULL, "kernels.xk did not load");
  lcase c = {XKV_DSIM_F16, 64, 2, 8, 40, 20, 20, 32, 32, 2, 1, 0, 0, 0, 4};
  xkv_dsim_kernel lr;
  build(&c, 1, "xkv_decode_lr1_f16", &lr);
  xkv_dsim_shape s = {.dt = c.dt,
                      .hkv = c.hkv,
                      .g = c.g,
                      .d = c.d,
                      .L = c.L,
                      .rk = c.rk,
                      .rv = c.rv,
                      .ns_lr = 1,
                      .ldo = 1,
                      .theta = 10000.0,
                      .seed = 3};
  xkv_dsim p;
  xk_diag d;
  ck_assert_msg(xkv_dsim_init(&p, &s, &d) == 0, "%s", d.msg);
  ck_assert_int_ne(xkv_dsim_lr1(&p, &lr, NULL, NULL, &d), 0);
  ck_assert_msg(strstr(d.msg, "BLOCK_G"), "%s", d.msg);
  xkv_dsim_free(&p);
  s.g = 2;
  s.rk = 40;
  ck_assert_msg(xkv_dsim_init(&p, &s, &d) == 0, "%s", d.msg);
  ck_assert_int_ne(xkv_dsim_lr1(&p, &lr, NULL, NULL, &d), 0);
  ck_assert_msg(strstr(d.msg, "bucket"), "%s", d.msg);
  xkv_dsim_free(&p);
  xkv_dsim_kernel_free(&lr);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("xkv_lr1");
  TCase *k = tcase_create("decode");
  tcase_set_timeout(k, 600);
  tcase_add_unchecked_fixture(k, open_kernels, close_kernels);
  tcase_add_loop_test(k, test_host, 0, NCASES);
  tcase_add_loop_test(k, test_sim, 0, NCASES);
  tcase_add_test(k, test_refused);
  suite_add_tcase(s, k);
  return s;
}

int main(void) {
  return xk_check_run(suite());
}
