/* Selective reconstruction (runtime/xkv_cache_sr.c) on the CPU device:
 * a budget >= L decodes exactly like the dense path; with a budget, the
 * landmarks, outliers and selected chunks equal plain C computations over
 * the reconstructed cache, the output equals plain attention over exactly
 * [local | outliers | selected | tail], the reuse cache rebuilds only the
 * chunks that changed; the device path (kernel xkv_sr_select, the
 * default) selects, assigns slots and rebuilds exactly as the host path
 * (XKV_SR_SELECT=host) over several steps, ties included; bad SR
 * configurations are refused. */
#include "../runtime/xkv_cache_int.h"
#include "check_main.h"
#include "test_device.h"
#include "xkv.h"
#include "xkv_ref.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int d, hq, hkv, W, L, rk, rv, tail, budget, local;
  float frac;
  xkv_dtype dt;
  xkv_rope_style rope; /* the C reference rotates interleaved pairs only */
} scase;

static const scase cases[] = {
    {64, 8, 2, 2, 1003, 48, 64, 3, 256, 40, 0.02f, XKV_F16},  /* GQA 4 */
    {128, 4, 4, 1, 517, 100, 80, 2, 64, 16, 0.05f, XKV_BF16}, /* GQA 1 */
};

/* host and device selection compared (no C reference: both RoPE styles) */
static const scase pairs[] = {
    {64, 8, 2, 2, 1003, 48, 64, 3, 256, 40, 0.02f, XKV_F16},
    {128, 4, 4, 1, 517, 100, 80, 2, 64, 16, 0.05f, XKV_BF16, XKV_ROPE_HALF},
    {64, 16, 2, 1, 2100, 40, 48, 2, 512, 64, 0.01f, XKV_BF16}, /* GQA 8 */
    {64, 8, 1, 1, 1500, 40, 48, 1, 128, 24, 0.03f, XKV_F16, XKV_ROPE_HALF},
};

typedef struct {
  xkv_context *ctx;
  xkv_cache *c;
  int hd, T;
  float *k, *v; /* [W, T, hd] pre-RoPE originals */
} fixture;

static void fill(float *x, size_t n, uint64_t *s, double scale) {
  for (size_t i = 0; i < n; i++)
    x[i] = (float)(scale * xkv_ref_gauss(s));
}

/* A cache of t's shape (sr on or off, budget as given, selecting on the
 * host or the device) holding the same correlated random prompt and tail
 * whatever the SR settings. */
static void setup(fixture *fx, const scase *t, int sr, int budget, int host) {
  ck_assert_int_eq(xkv_open(&fx->ctx, xk_test_device()), XKV_OK);
  fx->hd = t->hkv * t->d;
  fx->T = t->L + t->tail;
  xkv_cache_config f = {.n_layers = t->W,
                        .n_heads = t->hq,
                        .n_kv_heads = t->hkv,
                        .head_dim = t->d,
                        .max_tokens = fx->T + 1,
                        .group = t->W,
                        .policy = XKV_RANK_FIXED,
                        .rank_k = t->rk,
                        .rank_v = t->rv,
                        .dtype = t->dt,
                        .rope_theta = 10000,
                        .rope_style = t->rope,
                        .seed = 5,
                        .sr = sr,
                        .sr_budget = budget,
                        .sr_local_window = t->local,
                        .sr_outlier_frac = t->frac};
  ck_assert_msg(xkv_cache_create(fx->ctx, &f, &fx->c) == XKV_OK, "%s",
                xkv_last_error(fx->ctx));
  fx->c->sr_host = host; /* before prefill allocates the SR state */
  uint64_t seed = 77;
  size_t per = (size_t)fx->T * fx->hd, n = (size_t)t->W * per;
  fx->k = malloc(n * 4);
  fx->v = malloc(n * 4);
  float *base = malloc(per * 4);
  fill(base, per, &seed, 1.0);
  fill(fx->k, n, &seed, 0.3);
  fill(fx->v, n, &seed, 0.3);
  for (size_t i = 0; i < n; i++) {
    fx->k[i] += base[i % per];
    fx->v[i] += base[i % per];
  }
  free(base);
  for (int l = 0; l < t->W; l++)
    ck_assert_msg(xkv_cache_prefill(fx->c, l, fx->k + l * per, fx->v + l * per,
                                    t->L) == XKV_OK,
                  "%s", xkv_last_error(fx->ctx));
  for (int s = 0; s < t->tail; s++)
    for (int l = 0; l < t->W; l++) {
      size_t at = l * per + (size_t)(t->L + s) * fx->hd;
      ck_assert_int_eq(xkv_cache_append(fx->c, l, fx->k + at, fx->v + at),
                       XKV_OK);
    }
}

static void teardown(fixture *fx) {
  xkv_cache_destroy(fx->c);
  xkv_close(fx->ctx);
  free(fx->k);
  free(fx->v);
}

/* layer l's K/V as the cache holds them: the prompt from the factors, the
 * tail exact */
static void reconstructed(const fixture *fx, int l, float *rk, float *rv) {
  size_t per = (size_t)fx->T * fx->hd;
  memcpy(rk, fx->k + l * per, per * 4);
  memcpy(rv, fx->v + l * per, per * 4);
  ck_assert_int_eq(xkv_ref_reconstruct(fx->c, l, rk, rv), 0);
}

START_TEST(budget_covering_prompt_is_dense) {
  const scase *t = &cases[_i];
  fixture dense, sr;
  setup(&dense, t, 0, 0, 0);
  setup(&sr, t, 1, (t->L + 7) / 8 * 8, 0);
  size_t no = (size_t)t->hq * t->d;
  float *q = malloc(no * 4), *o1 = malloc(no * 4), *o2 = malloc(no * 4);
  float *ref = malloc(no * 4);
  float *rk = malloc((size_t)dense.T * dense.hd * 4),
        *rv = malloc((size_t)dense.T * dense.hd * 4);
  uint64_t seed = 9;
  for (int l = 0; l < t->W; l++) {
    fill(q, no, &seed, 1.0);
    ck_assert_ptr_null(sr.c->layers[l].sr.lm);
    ck_assert_int_eq(xkv_attention(dense.c, l, q, dense.T, o1), XKV_OK);
    ck_assert_int_eq(xkv_attention(sr.c, l, q, sr.T, o2), XKV_OK);
    ck_assert_int_eq(memcmp(o1, o2, no * 4), 0);
    reconstructed(&sr, l, rk, rv);
    xkv_ref_attention(q, rk, rv, sr.T, t->hq, t->hkv, t->d, sr.T, 10000, ref);
    ck_assert_double_lt(xkv_ref_rel_err(o2, ref, no), 2e-2);
  }
  xkv_cache_stats st;
  ck_assert_int_eq(xkv_cache_get_stats(sr.c, &st), XKV_OK);
  ck_assert_int_eq(st.sr_steps, 0);
  free(q);
  free(o1);
  free(o2);
  free(ref);
  free(rk);
  free(rv);
  teardown(&dense);
  teardown(&sr);
}
END_TEST

static int cmp_key(const void *a, const void *b) {
  const double *x = a, *y = b; /* pairs (key, index): ascending */
  return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : (x[1] > y[1]) - (x[1] < y[1]);
}

/* layer l's slot table [Hkv, nsel] wherever it lives (free it) */
static int *slots_of(const fixture *fx, int l) {
  const xkv_sr_layer *sr = &fx->c->layers[l].sr;
  int *s = malloc(((size_t)fx->c->cfg.n_kv_heads * sr->nsel + 1) * sizeof *s);
  ck_assert_int_eq(xkv_cache_sr_slots(fx->c, l, s), XKV_OK);
  return s;
}

/* Every member of got[n] must be within tol of the n lowest keys
 * key[0..m) (ties near the threshold may go either way). */
static void check_lowest(const double *key, int m, const int *got, int n,
                         double tol, const char *what) {
  double *kv = malloc((size_t)m * 2 * sizeof *kv);
  for (int i = 0; i < m; i++) {
    kv[2 * i] = key[i];
    kv[2 * i + 1] = i;
  }
  qsort(kv, (size_t)m, 2 * sizeof *kv, cmp_key);
  double thr = n ? kv[2 * (n - 1)] : -INFINITY;
  int same = 0;
  for (int i = 0; i < n; i++) {
    ck_assert_msg(key[got[i]] <= thr + tol,
                  "%s: chunk %d (key %g) is not "
                  "among the %d lowest (threshold %g)",
                  what, got[i], key[got[i]], n, thr);
    for (int j = 0; j < n; j++)
      same += (int)kv[2 * j + 1] == got[i];
  }
  printf("  %s: %d of %d equal to the plain C top-k\n", what, same, n);
  for (int i = 0; i < n; i++) /* no duplicates */
    for (int j = i + 1; j < n; j++)
      ck_assert_int_ne(got[i], got[j]);
  free(kv);
}

/* Landmarks and outliers of layer l against plain C over the rebuilt
 * post-RoPE keys rk (rotated in place). */
static void check_prepared(const fixture *fx, int l, float *rk) {
  xkv_cache *c = fx->c;
  const xkv_sr_layer *sr = &c->layers[l].sr;
  int d = c->cfg.head_dim, hk = c->cfg.n_kv_heads;
  for (int n = 0; n < sr->nsc * 8; n++)
    for (int h = 0; h < hk; h++)
      xkv_ref_rope(rk + ((size_t)n * hk + h) * d, d, n, 10000);
  size_t nlm = (size_t)sr->nsc * hk * d;
  float *lm = xkv_ref_fetch(c, sr->lm, nlm), *mine = malloc(nlm * 4);
  double *mc = malloc((size_t)sr->nsc * sizeof *mc);
  for (int h = 0; h < hk; h++) {
    for (int ch = 0; ch < sr->nsc; ch++) {
      float *m = mine + ((size_t)ch * hk + h) * d;
      for (int e = 0; e < d; e++) {
        double a = 0;
        for (int t = 0; t < 8; t++)
          a += rk[(((size_t)ch * 8 + t) * hk + h) * d + e];
        m[e] = (float)(a / 8);
      }
      mc[ch] = 1;
      for (int t = 0; t < 8; t++)
        mc[ch] = fmin(mc[ch],
                      xkv_ref_cosine(rk + (((size_t)ch * 8 + t) * hk + h) * d,
                                     m, (size_t)d));
    }
    check_lowest(mc, sr->nsc, sr->outliers + h * sr->nout, sr->nout, 5e-3,
                 "outliers");
  }
  double e = xkv_ref_rel_err(lm, mine, nlm);
  printf("  layer %d: %d chunks, %d outliers, %d selected, landmark rel err "
         "%.2e\n",
         l, sr->nsc, sr->nout, sr->nsel, e);
  ck_assert_double_lt(e, 1e-2);
  free(lm);
  free(mine);
  free(mc);
}

/* The selected chunks of layer l (the reuse cache's slots) against a plain
 * C top-k over the cache's landmarks for query q at pos. */
static void check_selection(const fixture *fx, int l, const float *q, int pos) {
  xkv_cache *c = fx->c;
  const xkv_sr_layer *sr = &c->layers[l].sr;
  int d = c->cfg.head_dim, hk = c->cfg.n_kv_heads, hq = c->cfg.n_heads;
  int G = hq / hk;
  size_t nlm = (size_t)sr->nsc * hk * d;
  float *lm = xkv_ref_fetch(c, sr->lm, nlm), *qr = malloc((size_t)d * 4);
  double *sc = malloc((size_t)sr->nsc * sizeof *sc),
         *key = calloc((size_t)sr->nsc, sizeof *key);
  int *slots = slots_of(fx, l);
  for (int h = 0; h < hk; h++) {
    memset(key, 0, (size_t)sr->nsc * sizeof *key);
    for (int g = 0; g < G; g++) {
      memcpy(qr, q + (size_t)(h * G + g) * d, (size_t)d * 4);
      xkv_ref_rope(qr, d, pos, 10000);
      double mx = -INFINITY, sum = 0;
      for (int ch = 0; ch < sr->nsc; ch++) {
        double s = 0;
        for (int e = 0; e < d; e++)
          s += (double)qr[e] * lm[((size_t)ch * hk + h) * d + e];
        sc[ch] = s / sqrt((double)d);
        mx = fmax(mx, sc[ch]);
      }
      for (int ch = 0; ch < sr->nsc; ch++)
        sum += sc[ch] = exp(sc[ch] - mx);
      for (int ch = 0; ch < sr->nsc; ch++)
        key[ch] -= sc[ch] / sum;
    }
    for (int o = 0; o < sr->nout; o++)
      key[sr->outliers[h * sr->nout + o]] = INFINITY;
    check_lowest(key, sr->nsc, slots + h * sr->nsel, sr->nsel, 1e-6,
                 "selected");
  }
  free(slots);
  free(lm);
  free(qr);
  free(sc);
  free(key);
}

/* xkv_attention's output for q against plain attention over [local |
 * outliers | selected | tail] of the reconstructed K/V rk, rv. */
static void check_output(const fixture *fx, int l, const float *q,
                         const float *out, const float *rk, const float *rv) {
  const xkv_cache *c = fx->c;
  const xkv_sr_layer *sr = &c->layers[l].sr;
  int hk = c->cfg.n_kv_heads, L = c->groups[l / c->cfg.group].L;
  int nloc = sr->nfix - sr->nout * 8;
  int n = sr->nfix + sr->nsel * 8 + (fx->T - L);
  int *tok = malloc((size_t)hk * n * sizeof *tok), *slots = slots_of(fx, l);
  for (int h = 0; h < hk; h++) {
    int *tk = tok + (size_t)h * n, at = 0;
    for (int t = L - nloc; t < L; t++)
      tk[at++] = t;
    for (int o = 0; o < sr->nout; o++)
      for (int t = 0; t < 8; t++)
        tk[at++] = sr->outliers[h * sr->nout + o] * 8 + t;
    for (int s = 0; s < sr->nsel; s++)
      for (int t = 0; t < 8; t++)
        tk[at++] = slots[h * sr->nsel + s] * 8 + t;
    for (int t = L; t < fx->T; t++)
      tk[at++] = t;
    ck_assert_int_eq(at, n);
  }
  size_t no = (size_t)c->cfg.n_heads * c->cfg.head_dim;
  float *ref = malloc(no * 4);
  xkv_ref_attention_sel(q, rk, rv, tok, n, c->cfg.n_heads, hk, c->cfg.head_dim,
                        fx->T, 10000, ref);
  double err = xkv_ref_rel_err(out, ref, no), cs = xkv_ref_cosine(out, ref, no);
  printf("  layer %d: %d of %d tokens attended, rel err %.2e cosine %.6f\n", l,
         n, fx->T, err, cs);
  ck_assert_double_lt(err, 2e-2);
  ck_assert_double_gt(cs, 0.99);
  free(ref);
  free(tok);
  free(slots);
}

/* chunks of b's slots that a's slots lack, over all heads */
static int changed(const int *a, const int *b, int n, int heads) {
  int k = 0;
  for (int h = 0; h < heads; h++)
    for (int i = 0; i < n; i++) {
      int found = 0;
      for (int j = 0; j < n; j++)
        found |= a[h * n + j] == b[h * n + i];
      k += !found;
    }
  return k;
}

START_TEST(selection_and_reuse) {
  const scase *t = &cases[_i];
  fixture fx;
  setup(&fx, t, 1, t->budget, 0);
  printf("SR d=%d Hq=%d Hkv=%d L=%d+%d budget %d local %d frac %.2f\n", t->d,
         t->hq, t->hkv, t->L, t->tail, t->budget, t->local, t->frac);
  size_t no = (size_t)t->hq * t->d, per = (size_t)fx.T * fx.hd;
  float *q = malloc(no * 4), *out = malloc(no * 4), *out2 = malloc(no * 4);
  float *rk = malloc(per * 4), *rv = malloc(per * 4), *rot = malloc(per * 4);
  uint64_t seed = 11;
  xkv_cache_stats st;
  for (int l = 0; l < t->W; l++) {
    const xkv_sr_layer *sr = &fx.c->layers[l].sr;
    ck_assert_ptr_nonnull(sr->lm);
    ck_assert_int_eq(sr->nsel, t->budget / 8);
    reconstructed(&fx, l, rk, rv);
    memcpy(rot, rk, per * 4);
    check_prepared(&fx, l, rot);
    fill(q, no, &seed, 1.0);
    /* first step: every selected chunk is rebuilt */
    ck_assert_msg(xkv_attention(fx.c, l, q, fx.T, out) == XKV_OK, "%s",
                  xkv_last_error(fx.ctx));
    ck_assert_int_eq(xkv_cache_get_stats(fx.c, &st), XKV_OK);
    ck_assert_int_eq(st.sr_last_tokens_rebuilt, t->hkv * sr->nsel * 8);
    ck_assert_double_eq(st.sr_last_hit_rate, 0);
    check_selection(&fx, l, q, fx.T);
    check_output(&fx, l, q, out, rk, rv);
    /* the same step again: nothing rebuilt, the same output */
    ck_assert_int_eq(xkv_attention(fx.c, l, q, fx.T, out2), XKV_OK);
    ck_assert_int_eq(xkv_cache_get_stats(fx.c, &st), XKV_OK);
    ck_assert_int_eq(st.sr_last_tokens_rebuilt, 0);
    ck_assert_double_eq(st.sr_last_hit_rate, 1);
    ck_assert_int_eq(memcmp(out, out2, no * 4), 0);
    /* a nearby query: only the chunks new to the selection are rebuilt,
     * into the slots of the dropped ones */
    int *before = slots_of(&fx, l);
    for (size_t i = 0; i < no; i++)
      q[i] += (float)(0.5 * xkv_ref_gauss(&seed));
    ck_assert_int_eq(xkv_attention(fx.c, l, q, fx.T, out), XKV_OK);
    ck_assert_int_eq(xkv_cache_get_stats(fx.c, &st), XKV_OK);
    int *after = slots_of(&fx, l);
    int fresh = changed(before, after, sr->nsel, t->hkv);
    free(after);
    printf("  nearby query: %d chunks rebuilt, hit rate %.3f\n", fresh,
           st.sr_last_hit_rate);
    ck_assert_int_eq(st.sr_last_tokens_rebuilt, fresh * 8);
    ck_assert_int_gt(fresh, 0);
    ck_assert_int_lt(fresh, t->hkv * sr->nsel);
    check_selection(&fx, l, q, fx.T);
    check_output(&fx, l, q, out, rk, rv);
    free(before);
  }
  ck_assert_int_eq(st.sr_steps, 3 * t->W);
  ck_assert(st.sr_hit_rate > 0 && st.sr_hit_rate < 1);
  free(q);
  free(out);
  free(out2);
  free(rk);
  free(rv);
  free(rot);
  teardown(&fx);
}
END_TEST

/* n bytes of device memory (free it) */
static char *fetch_bytes(const fixture *fx, const void *dev, size_t n) {
  char *h = malloc(n + 1);
  ck_assert_int_eq(xkv_copy_d2h(fx->ctx, h, dev, n, NULL), XKV_OK);
  return h;
}

static int cmp_int(const void *a, const void *b) {
  return (*(const int *)a > *(const int *)b) -
         (*(const int *)a < *(const int *)b);
}

/* KV head 0 with a zero query ties every chunk: it keeps the first nsel
 * chunks that are not outliers */
static void check_ties(const fixture *fx, int l) {
  const xkv_sr_layer *sr = &fx->c->layers[l].sr;
  int *got = slots_of(fx, l), at = 0;
  qsort(got, (size_t)sr->nsel, sizeof *got, cmp_int);
  for (int ch = 0; at < sr->nsel; ch++) {
    int out = 0;
    for (int o = 0; o < sr->nout; o++)
      out |= sr->outliers[o] == ch;
    if (!out)
      ck_assert_int_eq(got[at++], ch);
  }
  free(got);
}

/* the host and the device path hold the same slots, rows and counters */
static void check_same(const fixture *hf, const fixture *df, int l) {
  const xkv_sr_layer *sr = &hf->c->layers[l].sr;
  size_t n = (size_t)hf->c->cfg.n_kv_heads * sr->nsel;
  int *hs = slots_of(hf, l), *ds = slots_of(df, l);
  ck_assert_int_eq(memcmp(hs, ds, n * sizeof *hs), 0);
  size_t rows = (size_t)sr->nfix + (size_t)sr->nsel * 8;
  size_t bytes = rows * hf->hd * hf->c->elem;
  const xkv_sr_layer *dsr = &df->c->layers[l].sr;
  const void *hdev[] = {sr->kr, sr->vr}, *ddev[] = {dsr->kr, dsr->vr};
  for (int i = 0; i < 2; i++) {
    char *a = fetch_bytes(hf, hdev[i], bytes),
         *b = fetch_bytes(df, ddev[i], bytes);
    ck_assert_msg(!memcmp(a, b, bytes), "layer %d: %s rows differ", l,
                  i ? "value" : "key");
    free(a);
    free(b);
  }
  xkv_cache_stats hst, dst;
  ck_assert_int_eq(xkv_cache_get_stats(hf->c, &hst), XKV_OK);
  ck_assert_int_eq(xkv_cache_get_stats(df->c, &dst), XKV_OK);
  ck_assert_int_eq(hst.sr_steps, dst.sr_steps);
  ck_assert_uint_eq(hst.sr_chunks_hit, dst.sr_chunks_hit);
  ck_assert_uint_eq(hst.sr_chunks_rebuilt, dst.sr_chunks_rebuilt);
  ck_assert_int_eq(hst.sr_last_tokens_rebuilt, dst.sr_last_tokens_rebuilt);
  ck_assert_double_eq(hst.sr_last_hit_rate, dst.sr_last_hit_rate);
  free(hs);
  free(ds);
}

START_TEST(device_matches_host) {
  const scase *t = &pairs[_i];
  fixture hf, df;
  setup(&hf, t, 1, t->budget, 1);
  setup(&df, t, 1, t->budget, 0);
  int G = t->hq / t->hkv;
  printf("SR host vs device: d=%d GQA %d Hkv=%d L=%d budget %d %s %s\n", t->d,
         G, t->hkv, t->L, t->budget, t->dt == XKV_F16 ? "f16" : "bf16",
         t->rope == XKV_ROPE_HALF ? "half" : "interleaved");
  size_t no = (size_t)t->hq * t->d;
  float *q = malloc(no * 4), *ho = malloc(no * 4), *dout = malloc(no * 4);
  uint64_t seed = 21;
  for (int l = 0; l < t->W; l++) {
    ck_assert_ptr_nonnull(df.c->layers[l].sr.lm);
    ck_assert_ptr_nonnull(df.c->layers[l].sr.tot);
    ck_assert_ptr_null(hf.c->layers[l].sr.tot);
    /* fresh, the same, nearby, head 0 tied, fresh again */
    for (int step = 0; step < 5; step++) {
      if (step == 0 || step == 4)
        fill(q, no, &seed, 1.0);
      for (size_t i = 0; step == 2 && i < no; i++)
        q[i] += (float)(0.5 * xkv_ref_gauss(&seed));
      if (step == 3)
        memset(q, 0, (size_t)G * t->d * 4);
      ck_assert_int_eq(xkv_attention(hf.c, l, q, hf.T, ho), XKV_OK);
      ck_assert_msg(xkv_attention(df.c, l, q, df.T, dout) == XKV_OK, "%s",
                    xkv_last_error(df.ctx));
      ck_assert_msg(!memcmp(ho, dout, no * 4),
                    "layer %d step %d: outputs differ", l, step);
      check_same(&hf, &df, l);
      if (step == 3)
        check_ties(&df, l);
      xkv_cache_stats st;
      ck_assert_int_eq(xkv_cache_get_stats(df.c, &st), XKV_OK);
      printf("  layer %d step %d: last hit rate %.3f, %d tokens rebuilt\n", l,
             step, st.sr_last_hit_rate, st.sr_last_tokens_rebuilt);
      if (step == 1)
        ck_assert_double_eq(st.sr_last_hit_rate, 1);
      if (step == 2)
        ck_assert(st.sr_last_hit_rate > 0 && st.sr_last_hit_rate < 1);
    }
  }
  /* emptied, the next step rebuilds every selected chunk on both paths */
  ck_assert_int_eq(xkv_cache_sr_forget(hf.c, 0), XKV_OK);
  ck_assert_int_eq(xkv_cache_sr_forget(df.c, 0), XKV_OK);
  ck_assert_int_eq(xkv_attention(hf.c, 0, q, hf.T, ho), XKV_OK);
  ck_assert_int_eq(xkv_attention(df.c, 0, q, df.T, dout), XKV_OK);
  ck_assert_int_eq(memcmp(ho, dout, no * 4), 0);
  check_same(&hf, &df, 0);
  xkv_cache_stats st;
  ck_assert_int_eq(xkv_cache_get_stats(df.c, &st), XKV_OK);
  ck_assert_int_eq(st.sr_last_tokens_rebuilt,
                   t->hkv * df.c->layers[0].sr.nsel * 8);
  free(q);
  free(ho);
  free(dout);
  teardown(&hf);
  teardown(&df);
}
END_TEST

START_TEST(bad_sr_configs) {
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, xk_test_device()), XKV_OK);
  xkv_cache_config good = {.n_layers = 2,
                           .n_heads = 4,
                           .n_kv_heads = 2,
                           .head_dim = 64,
                           .max_tokens = 64,
                           .group = 2,
                           .policy = XKV_RANK_FIXED,
                           .rank_k = 8,
                           .rank_v = 8,
                           .dtype = XKV_F16,
                           .rope_theta = 10000,
                           .sr = 1};
  struct {
    const char *field, *msg;
    xkv_cache_config f;
  } bad[] = {{"sr", "sr must be 0", good},
             {"exact", "needs a compressed cache", good},
             {"sr_budget", "sr_budget -8", good},
             {"sr_budget", "sr_budget 12", good},
             {"sr_local_window", "sr_local_window", good},
             {"sr_outlier_frac", "sr_outlier_frac", good},
             {"sr_outlier_frac", "sr_outlier_frac", good}};
  bad[0].f.sr = 2;
  bad[1].f.exact = 1;
  bad[2].f.sr_budget = -8;
  bad[3].f.sr_budget = 12;
  bad[4].f.sr_local_window = -1;
  bad[5].f.sr_outlier_frac = 0.7f;
  bad[6].f.sr_outlier_frac = NAN;
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    xkv_cache *c = (xkv_cache *)&good; /* must be reset to NULL */
    ck_assert_int_eq(xkv_cache_create(ctx, &bad[i].f, &c), XKV_ERR_INVALID);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(xkv_last_error(ctx), bad[i].msg), "%s: got '%s'",
                  bad[i].field, xkv_last_error(ctx));
  }
  xkv_cache *c = NULL;
  setenv("XKV_SR_SELECT", "gpu", 1); /* host, device or unset */
  ck_assert_int_eq(xkv_cache_create(ctx, &good, &c), XKV_ERR_INVALID);
  ck_assert_ptr_null(c);
  ck_assert_msg(strstr(xkv_last_error(ctx), "XKV_SR_SELECT must be host or "
                                            "device (unset: device, host on "
                                            "the CPU device), not 'gpu'"),
                "got '%s'", xkv_last_error(ctx));
  const char *mode[] = {"host", "device"};
  for (int m = 0; m < 2; m++) {
    setenv("XKV_SR_SELECT", mode[m], 1);
    ck_assert_int_eq(xkv_cache_create(ctx, &good, &c), XKV_OK);
    ck_assert_int_eq(c->sr_host, !m);
    xkv_cache_destroy(c);
  }
  unsetenv("XKV_SR_SELECT");
  ck_assert_int_eq(xkv_cache_create(ctx, &good, &c), XKV_OK);
  ck_assert_int_eq(c->sr_host, c->kind == XKV_DEVICE_CPU);
  ck_assert_int_eq(c->cfg.sr_budget, 2048); /* zero fields: defaults */
  ck_assert_int_eq(c->cfg.sr_local_window, 64);
  xkv_cache_destroy(c);
  xkv_close(ctx);
}
END_TEST

int main(void) {
  if (xk_test_device_skip("test_xkv_sr"))
    return 77;
  Suite *su = suite_create("xkv_sr");
  TCase *tc = tcase_create("sr");
  tcase_set_timeout(tc, 300);
  int n = (int)(sizeof cases / sizeof *cases);
  tcase_add_loop_test(tc, budget_covering_prompt_is_dense, 0, n);
  tcase_add_loop_test(tc, selection_and_reuse, 0, n);
  tcase_add_loop_test(tc, device_matches_host, 0,
                      (int)(sizeof pairs / sizeof *pairs));
  tcase_add_test(tc, bad_sr_configs);
  suite_add_tcase(su, tc);
  return xk_check_run(su);
}
