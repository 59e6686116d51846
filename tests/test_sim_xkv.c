/* xKV decode attention through the sim target (issue 6: "through the CPU
 * device and sim"): the split kernels over the compressed prompt and over
 * the exact tail, then the combine, launched as runtime/xkv_cache_attn.c
 * launches them, against plain C attention over the reconstructed keys
 * (A_k B_k, RoPE at the original positions) and values (A_v B_v) plus the
 * exact rows. Shapes stress the masks: L and the tail not multiples of
 * BLOCK_N, ranks not multiples of BLOCK_R, GQA groups not multiples of
 * BLOCK_G, and more splits than blocks so that some splits see no token. */
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
    fprintf(stderr, "test_sim_xkv: kernels.xk not usable: %s\n", d.msg);
}

static void close_kernels(void) {
  xk_dsl_close(kernels);
  kernels = NULL;
}

typedef struct {
  xkv_dsim_dtype dt;
  int d, hkv, g, L, rk, rv, tail, ns_lr, ns_ex, warps;
  int bn, br; /* BLOCK_N (both split kernels) and BLOCK_R; 0: defaults */
} dcase;

static const dcase cases[] = {
    /* plain MHA, f32: tight */
    {XKV_DSIM_F32, 64, 2, 1, 75, 40, 50, 5, 3, 1, 4, 0, 0},
    /* GQA 4, two splits each, 2 warps */
    {XKV_DSIM_F16, 64, 2, 4, 100, 48, 70, 9, 2, 2, 2, 0, 0},
    /* GQA 3; 8 prompt splits of 40 tokens (6 empty), 2 tail splits of 3
     * rows (1 empty) */
    {XKV_DSIM_F16, 64, 1, 3, 40, 20, 36, 3, 8, 2, 4, 0, 0},
    /* GQA 9: two query-head blocks, the second with 1 head; no tail */
    {XKV_DSIM_F16, 64, 1, 9, 130, 33, 65, 0, 3, 0, 4, 0, 0},
    /* head_dim 128 */
    {XKV_DSIM_F16, 128, 2, 4, 70, 72, 96, 4, 2, 1, 4, 0, 0},
    {XKV_DSIM_F32, 128, 1, 4, 45, 24, 40, 2, 1, 1, 2, 0, 0},
    {XKV_DSIM_BF16, 64, 2, 4, 60, 32, 48, 3, 2, 1, 4, 0, 0},
    /* Llama-3.1-8B's head_dim, GQA and ranks over a ragged prompt */
    {XKV_DSIM_F16, 128, 1, 8, 300, 384, 576, 7, 3, 1, 4, 0, 0},
    /* the other tile sizes of the tune spaces */
    {XKV_DSIM_F16, 64, 2, 4, 150, 40, 56, 20, 3, 2, 2, 16, 16},
    {XKV_DSIM_F16, 64, 1, 8, 200, 100, 70, 70, 2, 1, 8, 64, 64},
};
#define NCASES ((int)(sizeof cases / sizeof *cases))

static const char *dt_name(xkv_dsim_dtype dt) {
  return dt == XKV_DSIM_F32 ? "f32" : dt == XKV_DSIM_F16 ? "f16" : "bf16";
}

static void build(const char *name, const xkv_dsim_dtype *dt, const dcase *c,
                  int warps, xkv_dsim_kernel *k) {
  char full[64];
  if (dt)
    snprintf(full, sizeof full, "%s_%s", name, dt_name(*dt));
  else
    snprintf(full, sizeof full, "%s", name);
  /* the combine has no tiles but D */
  int tiles = dt && c->bn ? 1 + (strstr(name, "_lr") != NULL) : 0;
  xk_constexpr over[4] = {{"D", c->d},
                          {"num_warps", warps},
                          {"BLOCK_N", c->bn},
                          {"BLOCK_R", c->br}};
  xk_diag d;
  ck_assert_msg(xkv_dsim_kernel_build(kernels, full, over, 2 + tiles, k, &d) ==
                    0,
                "%s: %s", full, d.msg);
}

/* The token range of split s, as split_range in kernels.xk */
static int split_len(int s, int ns, int n, int block) {
  int chunk = ((n + ns - 1) / ns + block - 1) / block * block;
  int t0 = s * chunk, t1 = t0 + chunk < n ? t0 + chunk : n;
  return t1 > t0 ? t1 - t0 : 0;
}

START_TEST(test_decode) {
  const dcase *c = &cases[_i];
  ck_assert_msg(kernels != NULL, "kernels.xk did not load");
  xkv_dsim_kernel lr, ex, cb;
  build("xkv_decode_lr", &c->dt, c, c->warps, &lr);
  build("xkv_decode_exact", &c->dt, c, c->warps, &ex);
  build("xkv_decode_combine", NULL, c, c->warps < 4 ? c->warps : 4, &cb);
  xkv_dsim_shape s = {.dt = c->dt,
                      .hkv = c->hkv,
                      .g = c->g,
                      .d = c->d,
                      .L = c->L,
                      .rk = c->rk,
                      .rv = c->rv,
                      .tail = c->tail,
                      .ns_lr = c->ns_lr,
                      .ns_ex = c->ns_ex,
                      .ldo = c->ns_lr + c->ns_ex + 3,
                      .theta = 10000.0,
                      .seed = 0x5eed0000u + (uint64_t)_i};
  xkv_dsim p;
  xk_diag d;
  ck_assert_msg(xkv_dsim_init(&p, &s, &d) == 0, "%s", d.msg);
  ck_assert_msg(xkv_dsim_lr(&p, &lr, NULL, NULL, &d) == 0, "lr: %s", d.msg);
  if (c->tail)
    ck_assert_msg(xkv_dsim_exact(&p, &ex, NULL, NULL, &d) == 0, "exact: %s",
                  d.msg);
  ck_assert_msg(xkv_dsim_combine(&p, &cb, NULL, NULL, &d) == 0, "combine: %s",
                d.msg);
  int hq = c->hkv * c->g;
  /* a split with no token weighs nothing: max -inf, sum 0 */
  int empty = 0;
  for (int j = 0; j < c->ns_lr + c->ns_ex; j++) {
    int lr_split = j < c->ns_lr;
    int n = lr_split ? split_len(j, c->ns_lr, c->L,
                                 (int)xkv_dsim_const(&lr, "BLOCK_N"))
                     : split_len(j - c->ns_lr, c->ns_ex, c->tail,
                                 (int)xkv_dsim_const(&ex, "BLOCK_N"));
    for (int h = 0; h < hq && !n; h++) {
      ck_assert_msg(isinf(p.M[h * s.ldo + j]) && p.M[h * s.ldo + j] < 0,
                    "empty split %d head %d: max %g", j, h, p.M[h * s.ldo + j]);
      ck_assert_msg(p.Lsum[h * s.ldo + j] == 0, "empty split %d: sum %g", j,
                    p.Lsum[h * s.ldo + j]);
    }
    empty += !n;
  }
  float *ref = malloc(sizeof *ref * (size_t)hq * c->d);
  xkv_dsim_reference(&p, ref);
  size_t n = (size_t)hq * c->d;
  double err = xkv_ref_rel_err(p.out, ref, n);
  double cosine = xkv_ref_cosine(p.out, ref, n);
  printf("sim xkv decode %-4s D=%-3d Hkv=%d G=%d L=%-3d rk=%-3d rv=%-3d "
         "tail=%-2d splits %d+%d (%d empty) BLOCK_N %lld BLOCK_R %lld warps "
         "%d: rel err %.2e cosine %.6f\n",
         dt_name(c->dt), c->d, c->hkv, c->g, c->L, c->rk, c->rv, c->tail,
         c->ns_lr, c->ns_ex, empty, (long long)xkv_dsim_const(&lr, "BLOCK_N"),
         (long long)xkv_dsim_const(&lr, "BLOCK_R"), c->warps, err, cosine);
  int f32 = c->dt == XKV_DSIM_F32;
  double tol = f32 ? 1e-4 : c->dt == XKV_DSIM_F16 ? 2e-2 : 5e-2;
  ck_assert_msg(err < tol, "rel err %g >= %g", err, tol);
  ck_assert_msg(cosine > (f32 ? 0.999999 : 0.99), "cosine %f", cosine);
  free(ref);
  xkv_dsim_free(&p);
  xkv_dsim_kernel_free(&lr);
  xkv_dsim_kernel_free(&ex);
  xkv_dsim_kernel_free(&cb);
}
END_TEST

/* The harness refuses problems the kernels cannot run: partial columns
 * fewer than the splits, a kernel specialized for another head_dim. */
START_TEST(test_bad_setup) {
  ck_assert_msg(kernels != NULL, "kernels.xk did not load");
  xkv_dsim p;
  xk_diag d;
  xkv_dsim_shape s = {.dt = XKV_DSIM_F16,
                      .hkv = 1,
                      .g = 4,
                      .d = 64,
                      .L = 40,
                      .rk = 16,
                      .rv = 16,
                      .ns_lr = 2,
                      .ldo = 1,
                      .theta = 10000.0,
                      .seed = 1};
  ck_assert_int_ne(xkv_dsim_init(&p, &s, &d), 0);
  ck_assert_msg(strstr(d.msg, "ldo"), "%s", d.msg);
  s.ldo = 2;
  ck_assert_msg(xkv_dsim_init(&p, &s, &d) == 0, "%s", d.msg);
  xkv_dsim_kernel lr;
  xkv_dsim_dtype dt = XKV_DSIM_F16;
  dcase d128 = {.d = 128};
  build("xkv_decode_lr", &dt, &d128, 4, &lr);
  ck_assert_int_ne(xkv_dsim_lr(&p, &lr, NULL, NULL, &d), 0);
  ck_assert_msg(strstr(d.msg, "D=128"), "%s", d.msg);
  xkv_dsim_kernel_free(&lr);
  xkv_dsim_free(&p);
  ck_assert_int_ne(
      xkv_dsim_kernel_build(kernels, "xkv_decode_lr_f8", NULL, 0, &lr, &d), 0);
  ck_assert_msg(strstr(d.msg, "xkv_decode_lr_f8"), "%s", d.msg);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("sim_xkv");
  TCase *k = tcase_create("decode");
  tcase_set_timeout(k, 300);
  tcase_add_unchecked_fixture(k, open_kernels, close_kernels);
  tcase_add_loop_test(k, test_decode, 0, NCASES);
  tcase_add_test(k, test_bad_setup);
  suite_add_tcase(s, k);
  return s;
}

int main(void) {
  return xk_check_run(suite());
}
