/* xkv_attention on the CPU device against plain attention over the K/V
 * rebuilt from the cache's factors plus the exact appended tokens
 * (xkv_ref.c); L not a multiple of the tiles, head_dim 64 and 128, ranks
 * 32..576, GQA 1, 4, 8, f16 factors; and the exact (uncompressed) cache
 * against attention over the original K/V; both RoPE styles; a prompt
 * shorter than the fixed ranks, which the cache keeps exact. */
#include "xkv.h"
#include "xkv_ref.h"

#include "check_main.h"
#include "test_device.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int d, hq, hkv, W, L, rk, rv, tail, exact;
  xkv_dtype dt;
  int half; /* XKV_ROPE_HALF (HF-style pairs (i, i + d/2)) */
} dcase;

static const dcase cases[] = {
    {64, 4, 4, 2, 150, 32, 48, 3, 0, XKV_F16, 0},    /* GQA 1 */
    {128, 8, 2, 2, 201, 100, 160, 2, 0, XKV_F16, 0}, /* GQA 4 */
    {64, 16, 2, 4, 333, 64, 200, 5, 0, XKV_BF16, 0}, /* GQA 8 */
    {128, 8, 2, 4, 590, 576, 96, 1, 0, XKV_F16, 0},  /* rank 576 */
    {64, 8, 2, 2, 77, 0, 0, 4, 1, XKV_F32, 0},       /* exact cache */
    {128, 4, 1, 1, 45, 0, 0, 2, 1, XKV_F16, 0},      /* exact, f16 */
    {64, 8, 2, 2, 120, 40, 56, 3, 0, XKV_F16, 1},    /* HF-style RoPE */
    {64, 4, 2, 1, 50, 0, 0, 2, 1, XKV_F32, 1},       /* exact, HF-style */
    {64, 8, 2, 2, 5, 8, 8, 3, 0, XKV_F16, 0},        /* L 5 < ranks 8 */
    {64, 8, 2, 2, 7, 4, 8, 2, 0, XKV_F16, 1},        /* L 7 < rank_v 8 */
};

/* rows x [rows, d] with HF-style RoPE pairs (i, i + d/2) moved next to each
 * other: the interleaved layout whose RoPE is the same rotation */
static void to_pairs(float *x, size_t rows, int d) {
  float t[256];
  for (size_t r = 0; r < rows; r++) {
    float *p = x + r * d;
    for (int i = 0; i < d / 2; i++) {
      t[2 * i] = p[i];
      t[2 * i + 1] = p[i + d / 2];
    }
    memcpy(p, t, (size_t)d * sizeof *t);
  }
}

static void fill(float *x, size_t n, uint64_t *s, double scale) {
  for (size_t i = 0; i < n; i++)
    x[i] = (float)(scale * xkv_ref_gauss(s));
}

START_TEST(decode_matches_reference) {
  const dcase *t = &cases[_i];
  /* the prompt stays exact: an exact cache, or one shorter than a rank */
  int kept = t->exact || t->rk > t->L || t->rv > t->L;
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, xk_test_device()), XKV_OK);
  int hd = t->hkv * t->d, T = t->L + t->tail, nl = t->W;
  xkv_cache_config f = {.n_layers = nl,
                        .n_heads = t->hq,
                        .n_kv_heads = t->hkv,
                        .head_dim = t->d,
                        .max_tokens = T + 1,
                        .group = t->W,
                        .policy = XKV_RANK_FIXED,
                        .rank_k = t->rk,
                        .rank_v = t->rv,
                        .exact = t->exact,
                        .dtype = t->dt,
                        .rope_theta = 10000,
                        .rope_style =
                            t->half ? XKV_ROPE_HALF : XKV_ROPE_INTERLEAVED,
                        .seed = 3};
  xkv_cache *c;
  ck_assert_msg(xkv_cache_create(ctx, &f, &c) == XKV_OK, "%s",
                xkv_last_error(ctx));
  uint64_t seed = 42 + _i;
  size_t n = (size_t)nl * T * hd;
  float *k = malloc(n * 4), *v = malloc(n * 4);
  /* correlated across tokens and layers, so low rank is meaningful */
  float *base = malloc((size_t)T * hd * 4);
  fill(base, (size_t)T * hd, &seed, 1.0);
  fill(k, n, &seed, 0.3);
  fill(v, n, &seed, 0.3);
  for (size_t i = 0; i < n; i++) {
    k[i] += base[i % ((size_t)T * hd)];
    v[i] += base[i % ((size_t)T * hd)];
  }
  for (int l = 0; l < nl; l++) {
    float *kl = k + (size_t)l * T * hd, *vl = v + (size_t)l * T * hd;
    ck_assert_msg(xkv_cache_prefill(c, l, kl, vl, t->L) == XKV_OK, "%s",
                  xkv_last_error(ctx));
  }
  for (int s = 0; s < t->tail; s++)
    for (int l = 0; l < nl; l++) {
      size_t at = ((size_t)l * T + t->L + s) * hd;
      ck_assert_int_eq(xkv_cache_append(c, l, k + at, v + at), XKV_OK);
    }
  float *q = malloc((size_t)t->hq * t->d * 4);
  float *out = malloc((size_t)t->hq * t->d * 4);
  float *ref = malloc((size_t)t->hq * t->d * 4);
  float *rk = malloc((size_t)T * hd * 4), *rv = malloc((size_t)T * hd * 4);
  for (int l = 0; l < nl; l++) {
    fill(q, (size_t)t->hq * t->d, &seed, 1.0);
    float *kl = k + (size_t)l * T * hd, *vl = v + (size_t)l * T * hd;
    memcpy(rk, kl, (size_t)T * hd * 4);
    memcpy(rv, vl, (size_t)T * hd * 4);
    if (!kept) /* prompt from the factors; the tail stays exact */
      ck_assert_int_eq(xkv_ref_reconstruct(c, l, rk, rv), 0);
    ck_assert_msg(xkv_attention(c, l, q, T, out) == XKV_OK, "%s",
                  xkv_last_error(ctx));
    if (t->half) { /* the factors' rows are already in pair order */
      int first = kept ? 0 : t->L;
      to_pairs(rk + (size_t)first * hd, (size_t)(T - first) * t->hkv, t->d);
      to_pairs(q, (size_t)t->hq, t->d);
    }
    xkv_ref_attention(q, rk, rv, T, t->hq, t->hkv, t->d, T, 10000, ref);
    size_t no = (size_t)t->hq * t->d;
    double err = xkv_ref_rel_err(out, ref, no),
           cs = xkv_ref_cosine(out, ref, no);
    double tol = t->dt == XKV_F32 ? 1e-4 : 2e-2;
    printf("d=%d Hq=%d Hkv=%d W=%d L=%d+%d rk=%d rv=%d %s%s layer %d: rel "
           "err %.2e cosine %.6f\n",
           t->d, t->hq, t->hkv, t->W, t->L, t->tail, t->rk, t->rv,
           t->exact ? "exact" : "xkv", t->half ? " half-RoPE" : "", l, err, cs);
    ck_assert_double_lt(err, tol);
    ck_assert_double_gt(cs, 0.99);
  }
  xkv_cache_stats st;
  ck_assert_int_eq(xkv_cache_get_stats(c, &st), XKV_OK);
  ck_assert_int_eq(st.groups_exact, kept && !t->exact);
  ck_assert_int_eq(st.groups_compressed, !kept);
  if (kept) /* every token once, K and V, in the storage dtype */
    ck_assert_uint_eq(st.bytes,
                      2ull * nl * T * hd * (t->dt == XKV_F32 ? 4 : 2));
  free(q);
  free(out);
  free(ref);
  free(rk);
  free(rv);
  free(k);
  free(v);
  free(base);
  xkv_cache_destroy(c);
  xkv_close(ctx);
}
END_TEST

int main(void) {
  if (xk_test_device_skip("test_xkv_decode"))
    return 77;
  Suite *su = suite_create("xkv_decode");
  TCase *tc = tcase_create("decode");
  tcase_set_timeout(tc, 300);
  tcase_add_loop_test(tc, decode_matches_reference, 0,
                      (int)(sizeof cases / sizeof *cases));
  suite_add_tcase(su, tc);
  return xk_check_run(su);
}
