/* xkv_attention_batch (runtime/xkv_cache_batch.c): a batch of sequences of
 * ragged lengths, each its own cache, against plain attention over each
 * sequence's K/V (the prompt rebuilt from its factors, or kept exact, plus
 * the exact tail; xkv_ref.c) and against xkv_attention of the same
 * sequence one at a time (which selective reconstruction, whose selection
 * has no C reference here, is compared with). Batches mix prompts that
 * decode each way: compressed through the single-pass kernel (GQA 1, 4)
 * or the three-sweep one (GQA 8, f32), kept exact (shorter than the
 * ranks), selective reconstruction, within SR's budget (L 64); f16, bf16 and
 * f32; both RoPE styles; empty tails. Bad batches are refused with the
 * sequence named. */
#include "xkv.h"
#include "xkv_ref.h"

#include "check_main.h"
#include "test_device.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXB 4

typedef struct {
  int L, tail, sr; /* prompt, appended tokens, selective reconstruction */
} seq;

typedef struct {
  int d, hq, hkv, W, rk, rv, exact;
  xkv_dtype dt;
  int half;   /* XKV_ROPE_HALF: compared with xkv_attention only */
  int budget; /* SR's budget for the sequences with sr */
  int n;
  seq s[MAXB];
} bcase;

static const bcase cases[] = {
    /* GQA 4, single-pass kernel: ragged prompts, one kept exact (L 40 <
     * rank 48), an empty tail */
    {64,
     8,
     2,
     2,
     48,
     64,
     0,
     XKV_F16,
     0,
     0,
     4,
     {{300, 3, 0}, {150, 0, 0}, {40, 2, 0}, {517, 5, 0}}},
    /* GQA 1, bf16, head_dim 128 */
    {128,
     4,
     4,
     1,
     100,
     120,
     0,
     XKV_BF16,
     0,
     0,
     3,
     {{260, 2, 0}, {77, 1, 0}, {333, 4, 0}}},
    /* GQA 8: the three-sweep kernel, a sequence per launch, beside one
     * kept exact */
    {64,
     16,
     2,
     1,
     40,
     56,
     0,
     XKV_BF16,
     0,
     0,
     3,
     {{200, 2, 0}, {30, 3, 0}, {410, 1, 0}}},
    /* f32 factors (no single-pass kernel), HF-style RoPE */
    {64, 8, 2, 2, 32, 40, 0, XKV_F32, 1, 0, 2, {{180, 2, 0}, {90, 4, 0}}},
    /* exact caches, ragged */
    {64,
     8,
     2,
     1,
     0,
     0,
     1,
     XKV_F16,
     0,
     0,
     3,
     {{120, 1, 0}, {45, 3, 0}, {260, 0, 0}}},
    /* selective reconstruction beside a dense and a kept-exact prompt
     * (budget >= L decodes densely, L < ranks stays exact) */
    {64,
     8,
     2,
     1,
     48,
     64,
     0,
     XKV_F16,
     0,
     64,
     4,
     {{600, 2, 1}, {64, 1, 1}, {1003, 3, 1}, {30, 2, 1}}},
};

static void fill(float *x, size_t n, uint64_t *s, double scale) {
  for (size_t i = 0; i < n; i++)
    x[i] = (float)(scale * xkv_ref_gauss(s));
}

/* rows x [rows, d] with HF-style pairs (i, i + d/2) made adjacent */
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

typedef struct {
  xkv_cache *c;
  float *k, *v; /* [W, T, Hkv, d] pre-RoPE */
  int T, kept;
} sdata;

static void make_seq(xkv_context *ctx, const bcase *t, const seq *q, int i,
                     sdata *o) {
  int hd = t->hkv * t->d, nl = t->W;
  o->T = q->L + q->tail;
  o->kept = t->exact || t->rk > q->L || t->rv > q->L;
  xkv_cache_config f = {.n_layers = nl,
                        .n_heads = t->hq,
                        .n_kv_heads = t->hkv,
                        .head_dim = t->d,
                        .max_tokens = o->T + 1 + 7 * i, /* they differ */
                        .group = t->W,
                        .policy = XKV_RANK_FIXED,
                        .rank_k = t->rk,
                        .rank_v = t->rv,
                        .exact = t->exact,
                        .dtype = t->dt,
                        .rope_theta = 10000,
                        .rope_style =
                            t->half ? XKV_ROPE_HALF : XKV_ROPE_INTERLEAVED,
                        .seed = 3,
                        .sr = q->sr,
                        .sr_budget = t->budget,
                        .sr_local_window = 16};
  ck_assert_msg(xkv_cache_create(ctx, &f, &o->c) == XKV_OK, "%s",
                xkv_last_error(ctx));
  uint64_t seed = 1000 + 17 * i;
  size_t n = (size_t)nl * o->T * hd;
  o->k = malloc(n * 4);
  o->v = malloc(n * 4);
  float *base = malloc((size_t)o->T * hd * 4);
  fill(base, (size_t)o->T * hd, &seed, 1.0);
  fill(o->k, n, &seed, 0.3);
  fill(o->v, n, &seed, 0.3);
  for (size_t j = 0; j < n; j++) {
    o->k[j] += base[j % ((size_t)o->T * hd)];
    o->v[j] += base[j % ((size_t)o->T * hd)];
  }
  free(base);
  for (int l = 0; l < nl; l++)
    ck_assert_msg(xkv_cache_prefill(o->c, l, o->k + (size_t)l * o->T * hd,
                                    o->v + (size_t)l * o->T * hd,
                                    q->L) == XKV_OK,
                  "%s", xkv_last_error(ctx));
  for (int s = 0; s < q->tail; s++)
    for (int l = 0; l < nl; l++) {
      size_t at = ((size_t)l * o->T + q->L + s) * hd;
      ck_assert_int_eq(xkv_cache_append(o->c, l, o->k + at, o->v + at), XKV_OK);
    }
}

/* plain attention of sequence o's layer l for query q (pre-RoPE) */
static void reference(const bcase *t, sdata *o, int l, const float *q,
                      float *ref) {
  int hd = t->hkv * t->d;
  size_t nt = (size_t)o->T * hd;
  float *rk = malloc(nt * 4), *rv = malloc(nt * 4);
  float *qq = malloc((size_t)t->hq * t->d * 4);
  memcpy(rk, o->k + (size_t)l * nt, nt * 4);
  memcpy(rv, o->v + (size_t)l * nt, nt * 4);
  memcpy(qq, q, (size_t)t->hq * t->d * 4);
  if (!o->kept)
    ck_assert_int_eq(xkv_ref_reconstruct(o->c, l, rk, rv), 0);
  xkv_ref_attention(qq, rk, rv, o->T, t->hq, t->hkv, t->d, o->T, 10000, ref);
  free(rk);
  free(rv);
  free(qq);
}

START_TEST(batch_matches_reference) {
  const bcase *t = &cases[_i];
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, xk_test_device()), XKV_OK);
  sdata sd[MAXB];
  xkv_cache *cs[MAXB];
  int pos[MAXB];
  for (int b = 0; b < t->n; b++) {
    make_seq(ctx, t, &t->s[b], b, &sd[b]);
    cs[b] = sd[b].c;
    pos[b] = sd[b].T;
  }
  size_t nq = (size_t)t->hq * t->d;
  float *q = malloc(t->n * nq * 4), *out = malloc(t->n * nq * 4);
  float *one = malloc(nq * 4), *ref = malloc(nq * 4);
  uint64_t seed = 77 + _i;
  for (int step = 0; step < 2; step++) /* the second: a grown scratch */
    for (int l = 0; l < t->W; l++) {
      int n = step ? t->n : t->n - 1 > 0 ? t->n - 1 : 1;
      fill(q, n * nq, &seed, 1.0);
      ck_assert_msg(xkv_attention_batch(cs, n, l, q, pos, out) == XKV_OK, "%s",
                    xkv_last_error(ctx));
      for (int b = 0; b < n; b++) {
        const float *ob = out + b * nq, *qb = q + b * nq;
        /* SR's second call of a step finds every chunk held: the same
         * rows, so the same output */
        ck_assert_msg(xkv_attention(cs[b], l, qb, pos[b], one) == XKV_OK, "%s",
                      xkv_last_error(ctx));
        /* the batch's splits differ (it shares the device), so do the
         * rounding points of the probabilities in the storage dtype */
        double e1 = xkv_ref_rel_err(ob, one, nq);
        double tol1 = t->dt == XKV_F32 ? 1e-5 : t->dt == XKV_F16 ? 2e-3 : 1e-2;
        double tol = t->dt == XKV_F32 ? 1e-4 : 2e-2, er = 0;
        int has_ref = !t->half && !t->s[b].sr;
        if (has_ref) {
          reference(t, &sd[b], l, qb, ref);
          er = xkv_ref_rel_err(ob, ref, nq);
        }
        printf("batch case %d step %d layer %d seq %d/%d L=%d+%d%s%s: vs "
               "xkv_attention %.2e, vs reference %.2e%s\n",
               _i, step, l, b, n, t->s[b].L, t->s[b].tail,
               sd[b].kept ? " kept-exact" : "", t->s[b].sr ? " SR" : "", e1, er,
               has_ref ? "" : " (none)");
        ck_assert_double_lt(e1, tol1);
        ck_assert_double_lt(er, tol);
      }
    }
  free(q);
  free(out);
  free(one);
  free(ref);
  for (int b = 0; b < t->n; b++) {
    free(sd[b].k);
    free(sd[b].v);
    xkv_cache_destroy(sd[b].c);
  }
  xkv_close(ctx);
}
END_TEST

/* half-RoPE queries are compared with xkv_attention, which rotates them
 * the same way; to_pairs is the reference's view of them */
START_TEST(batch_half_rope_pairs) {
  /* the reference in pair order agrees with the batch (case 3) */
  const bcase *t = &cases[3];
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, xk_test_device()), XKV_OK);
  sdata sd[MAXB];
  xkv_cache *cs[MAXB];
  int pos[MAXB];
  for (int b = 0; b < t->n; b++) {
    make_seq(ctx, t, &t->s[b], b, &sd[b]);
    cs[b] = sd[b].c;
    pos[b] = sd[b].T;
  }
  size_t nq = (size_t)t->hq * t->d;
  float *q = malloc(t->n * nq * 4), *out = malloc(t->n * nq * 4);
  float *ref = malloc(nq * 4);
  uint64_t seed = 5;
  fill(q, t->n * nq, &seed, 1.0);
  ck_assert_msg(xkv_attention_batch(cs, t->n, 0, q, pos, out) == XKV_OK, "%s",
                xkv_last_error(ctx));
  int hd = t->hkv * t->d;
  for (int b = 0; b < t->n; b++) {
    sdata *o = &sd[b];
    size_t nt = (size_t)o->T * hd;
    float *rk = malloc(nt * 4), *rv = malloc(nt * 4);
    memcpy(rk, o->k, nt * 4);
    memcpy(rv, o->v, nt * 4);
    ck_assert_int_eq(xkv_ref_reconstruct(o->c, 0, rk, rv), 0);
    /* the factors' rows are in pair order already; the tail is not */
    int L = t->s[b].L;
    to_pairs(rk + (size_t)L * hd, (size_t)(o->T - L) * t->hkv, t->d);
    float *qb = q + b * nq;
    to_pairs(qb, (size_t)t->hq, t->d);
    xkv_ref_attention(qb, rk, rv, o->T, t->hq, t->hkv, t->d, o->T, 10000, ref);
    double er = xkv_ref_rel_err(out + b * nq, ref, nq);
    printf("batch half-RoPE seq %d: vs reference %.2e\n", b, er);
    ck_assert_double_lt(er, 1e-4);
    free(rk);
    free(rv);
  }
  free(q);
  free(out);
  free(ref);
  for (int b = 0; b < t->n; b++) {
    free(sd[b].k);
    free(sd[b].v);
    xkv_cache_destroy(sd[b].c);
  }
  xkv_close(ctx);
}
END_TEST

START_TEST(batch_refuses_bad_input) {
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, xk_test_device()), XKV_OK);
  const bcase *t = &cases[0];
  sdata a, b;
  make_seq(ctx, t, &t->s[0], 0, &a);
  bcase t2 = *t;
  t2.d = 128;
  make_seq(ctx, &t2, &t2.s[1], 1, &b);
  float *q = calloc(2 * (size_t)t2.hq * 128, 4);
  float *out = calloc(2 * (size_t)t2.hq * 128, 4);
  int pos[2] = {a.T, b.T};
  xkv_cache *cs[2] = {a.c, b.c};
  ck_assert_int_eq(xkv_attention_batch(cs, 2, 0, q, pos, out), XKV_ERR_INVALID);
  ck_assert_ptr_nonnull(strstr(xkv_last_error(ctx), "sequence 1"));
  ck_assert_ptr_nonnull(strstr(xkv_last_error(ctx), "head_dim"));
  cs[1] = a.c; /* one cache twice */
  ck_assert_int_eq(xkv_attention_batch(cs, 2, 0, q, pos, out), XKV_ERR_INVALID);
  ck_assert_ptr_nonnull(strstr(xkv_last_error(ctx), "earlier sequence"));
  pos[0] = 1 << 20;
  ck_assert_int_eq(xkv_attention_batch(cs, 1, 0, q, pos, out), XKV_ERR_INVALID);
  ck_assert_ptr_nonnull(strstr(xkv_last_error(ctx), "pos"));
  pos[0] = a.T;
  ck_assert_int_eq(xkv_attention_batch(cs, 1, 9, q, pos, out), XKV_ERR_INVALID);
  ck_assert_ptr_nonnull(strstr(xkv_last_error(ctx), "layer 9"));
  ck_assert_int_eq(xkv_attention_batch(cs, 0, 0, q, pos, out), XKV_ERR_INVALID);
  ck_assert_int_eq(xkv_attention_batch(cs, 1, 0, NULL, pos, out),
                   XKV_ERR_INVALID);
  free(q);
  free(out);
  free(a.k);
  free(a.v);
  free(b.k);
  free(b.v);
  xkv_cache_destroy(a.c);
  xkv_cache_destroy(b.c);
  xkv_close(ctx);
}
END_TEST

int main(void) {
  if (xk_test_device_skip("test_xkv_batch"))
    return 77;
  Suite *su = suite_create("xkv_batch");
  TCase *tc = tcase_create("batch");
  tcase_set_timeout(tc, 300);
  tcase_add_loop_test(tc, batch_matches_reference, 0,
                      (int)(sizeof cases / sizeof *cases));
  tcase_add_test(tc, batch_half_rope_pairs);
  tcase_add_test(tc, batch_refuses_bad_input);
  suite_add_tcase(su, tc);
  return xk_check_run(su);
}
