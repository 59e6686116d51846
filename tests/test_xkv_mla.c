/* xKV for MLA (runtime/xkv_cache_mla*.c, kernels.xk "MLA"):
 * - the runtime cache at full rank equals exact absorbed attention (f32,
 *   <= 1e-4) and the exact MLA cache equals a plain C reference;
 * - the absorbed split kernel xkv_mla_decode_<dt> + xkv_mla_combine, on the
 *   host and through the sim target, against naive decompress-then-attend
 *   (latents rebuilt as A B_l, attention in latent space), f16/bf16
 *   tolerance, ragged lengths and tails, 1..16 heads;
 * - stats against the paper's formula, live and modeled;
 * - bad shapes and call orders give errors naming the cause. */
#include "case_util.h"
#include "xkv_dsim.h"

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xkv.h>

#define P 64

/* deterministic N(0, 1)-ish values (sum of uniforms) */
static float rnd(uint64_t *st) {
  double s = 0;
  for (int i = 0; i < 4; i++) {
    *st = *st * 6364136223846793005ull + 1442695040888963407ull;
    s += (double)(*st >> 11) / 9007199254740992.0;
  }
  return (float)((s - 2.0) * 1.7320508);
}

static void fill(float *x, size_t n, float sd, uint64_t *st) {
  for (size_t i = 0; i < n; i++)
    x[i] = sd * rnd(st);
}

/* out [H, R] = sum_t softmax_t(scale (q . c_t + qp . k_t)) c_t over T rows
 * c [T, R], k [T, P], in double */
static void ref_attend(const float *c, const float *k, int T, int R,
                       const float *q, const float *qp, int H, float scale,
                       float *out) {
  double *s = malloc((size_t)T * sizeof *s);
  ck_assert_ptr_nonnull(s);
  for (int h = 0; h < H; h++) {
    double mx = -1e300, tot = 0;
    for (int t = 0; t < T; t++) {
      double v = 0;
      for (int j = 0; j < R; j++)
        v += (double)q[h * R + j] * c[(size_t)t * R + j];
      for (int j = 0; j < P; j++)
        v += (double)qp[h * P + j] * k[(size_t)t * P + j];
      s[t] = v * scale;
      mx = s[t] > mx ? s[t] : mx;
    }
    for (int t = 0; t < T; t++)
      tot += s[t] = exp(s[t] - mx);
    for (int j = 0; j < R; j++) {
      double o = 0;
      for (int t = 0; t < T; t++)
        o += s[t] * c[(size_t)t * R + j];
      out[h * R + j] = (float)(o / tot);
    }
  }
  free(s);
}

static double max_rel(const float *x, const float *ref, size_t n) {
  double e = 0, m = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)x[i] - ref[i]);
    e = d > e ? d : e;
    m = fabs(ref[i]) > m ? fabs(ref[i]) : m;
  }
  return e / (m > 0 ? m : 1);
}

/* ---- the runtime cache ------------------------------------------------ */

typedef struct {
  int layers, H, R, W, rank, L, app;
} rcase;

/* A latent of low-ish effective rank per group (a shared basis plus
 * noise), like real c_kv; k_pe random. Prefills, appends, then attends
 * every layer with cache `m` and with a plain C reference over the same
 * rows; returns the largest relative error. */
static double run_cache(xkv_context *ctx, const rcase *c, xkv_mla_cache *m) {
  int T = c->L + c->app, R = c->R, H = c->H;
  size_t per = (size_t)T * R;
  float *lat = malloc(per * c->layers * 4);
  float *kpe = malloc((size_t)T * P * c->layers * 4);
  float *q = malloc((size_t)H * R * 4), *qp = malloc((size_t)H * P * 4);
  float *out = malloc((size_t)H * R * 4), *ref = malloc((size_t)H * R * 4);
  ck_assert(lat && kpe && q && qp && out && ref);
  uint64_t st = 11;
  fill(lat, per * c->layers, 1.0f, &st);
  fill(kpe, (size_t)T * P * c->layers, 1.0f, &st);
  for (int l = 0; l < c->layers; l++)
    ck_assert_int_eq(
        xkv_mla_prefill(m, l, lat + per * l, kpe + (size_t)T * P * l, c->L),
        XKV_OK);
  for (int t = c->L; t < T; t++)
    for (int l = 0; l < c->layers; l++)
      ck_assert_msg(xkv_mla_append(m, l, lat + per * l + (size_t)t * R,
                                   kpe + ((size_t)T * l + t) * P) == XKV_OK,
                    "%s", xkv_last_error(ctx));
  double worst = 0;
  for (int l = 0; l < c->layers; l++) {
    fill(q, (size_t)H * R, 0.3f, &st);
    fill(qp, (size_t)H * P, 0.3f, &st);
    float scale = 1.0f / sqrtf((float)(R + P));
    ck_assert_msg(xkv_mla_attention(m, l, q, qp, scale, out) == XKV_OK, "%s",
                  xkv_last_error(ctx));
    ref_attend(lat + per * l, kpe + (size_t)T * P * l, T, R, q, qp, H, scale,
               ref);
    double e = max_rel(out, ref, (size_t)H * R);
    worst = e > worst ? e : worst;
  }
  free(lat);
  free(kpe);
  free(q);
  free(qp);
  free(out);
  free(ref);
  return worst;
}

static xkv_mla_config config(const rcase *c, xkv_dtype dt, int exact) {
  xkv_mla_config f = {.n_layers = c->layers,
                      .n_heads = c->H,
                      .kv_lora_rank = c->R,
                      .rope_dim = P,
                      .max_tokens = c->L + c->app + 4,
                      .group = c->W,
                      .policy = XKV_RANK_FIXED,
                      .rank = c->rank,
                      .exact = exact,
                      .dtype = dt,
                      .seed = 5,
                      .svd = XKV_SVD_RANDOMIZED};
  return f;
}

/* full rank (rank = W R <= L): the factors span the latents, so the cache
 * equals exact attention; the last group (one layer, W R < rank) is kept
 * exact; appended tokens exact; 5 heads (one partial head block) */
START_TEST(full_rank_equals_exact) {
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);
  rcase c = {3, 5, 32, 2, 64, 80, 3};
  xkv_mla_config fe = config(&c, XKV_F32, 1), fx = config(&c, XKV_F32, 0);
  xkv_mla_cache *ex, *xk;
  ck_assert_msg(xkv_mla_create(ctx, &fe, &ex) == XKV_OK, "%s",
                xkv_last_error(ctx));
  ck_assert_msg(xkv_mla_create(ctx, &fx, &xk) == XKV_OK, "%s",
                xkv_last_error(ctx));
  double e_ex = run_cache(ctx, &c, ex), e_xk = run_cache(ctx, &c, xk);
  ck_assert_msg(e_ex <= 1e-5, "exact cache vs reference: %g", e_ex);
  ck_assert_msg(e_xk <= 1e-4, "full-rank xKV vs exact attention: %g", e_xk);
  xkv_mla_stats s;
  ck_assert_int_eq(xkv_mla_get_stats(xk, &s), XKV_OK);
  ck_assert_int_eq(s.groups_compressed, 1);
  ck_assert_int_eq(s.groups_exact, 1);
  ck_assert_int_eq(s.rank_min, 64);
  ck_assert_int_eq(s.tokens, 83);
  xkv_mla_destroy(ex);
  xkv_mla_destroy(xk);
  xkv_close(ctx);
}
END_TEST

/* f16 storage at full rank (W R = 128 <= L): the error is the f16
 * rounding's; 16 heads (one full head block), R 64 */
START_TEST(f16_runtime_path) {
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);
  rcase c = {2, 16, 64, 2, 128, 150, 2};
  xkv_mla_config f = config(&c, XKV_F16, 0);
  xkv_mla_cache *m;
  ck_assert_msg(xkv_mla_create(ctx, &f, &m) == XKV_OK, "%s",
                xkv_last_error(ctx));
  double e = run_cache(ctx, &c, m);
  ck_assert_msg(e <= 2e-2, "f16 full-rank xKV vs exact attention: %g", e);
  xkv_mla_destroy(m);
  xkv_close(ctx);
}
END_TEST

/* ---- the kernels on the host and through sim ---------------------------- */

static xk_dsl *kernels;

static void open_kernels(void) {
  xk_diag d;
  if (xk_dsl_open(XK_SRC "/kernels.xk", &kernels, &d))
    fprintf(stderr, "test_xkv_mla: kernels.xk not usable: %s\n", d.msg);
}

static void close_kernels(void) {
  xk_dsl_close(kernels);
  kernels = NULL;
}

typedef struct {
  int bf16, H, R, r, L, tail, ns0, ns1;
  int Wr, WR; /* width buckets of the rank and of the latent */
} kcase;

static const kcase kcases[] = {
    /* 16 heads, rank 40 in bucket 64, a 3-row tail */
    {0, 16, 64, 40, 100, 3, 2, 1, 64, 64},
    /* one head, ragged prompt, no tail */
    {1, 1, 48, 24, 37, 0, 2, 0, 64, 64},
    /* 5 heads, rank 96 in bucket 128 (masked), R 32 in bucket 64, four
     * prompt splits of which two see no token, a 9-row tail in 2 splits */
    {0, 5, 32, 96, 45, 9, 4, 2, 128, 64},
    /* 17 heads: two head blocks, the second one head */
    {1, 17, 64, 32, 20, 1, 1, 1, 64, 64},
};

static void kbuild(const char *name, int host, int W, xkv_dsim_kernel *k) {
  xk_constexpr over[2] = {{"W", W}, {"num_warps", 4}};
  xk_diag d;
  int n = W ? 2 : 0;
  int rc = host ? xkv_dsim_kernel_build_host(kernels, name, over, n, k, &d)
                : xkv_dsim_kernel_build(kernels, name, over, n, k, &d);
  ck_assert_msg(rc == 0, "%s: %s", name, d.msg);
}

static float round_dt(int bf16, float x) {
  return bf16 ? xk_bf16_to_f32(xk_f32_to_bf16(x))
              : xk_f16_to_f32(xk_f32_to_f16(x));
}

static void to_dt(int bf16, const float *x, uint16_t *o, size_t n) {
  for (size_t i = 0; i < n; i++)
    o[i] = bf16 ? xk_f32_to_bf16(x[i]) : xk_f32_to_f16(x[i]);
}

static void run_kernels(const kcase *c, int host) {
  ck_assert_ptr_nonnull(kernels);
  int H = c->H, R = c->R, r = c->r, T = c->L + c->tail;
  int ldo = 8, ldp = c->Wr > c->WR ? c->Wr : c->WR;
  uint64_t st = 3 + (uint64_t)host;
  float *A = malloc((size_t)c->L * r * 4), *B = malloc((size_t)r * R * 4);
  float *lat = malloc((size_t)T * R * 4), *kpe = malloc((size_t)T * P * 4);
  float *q = malloc((size_t)H * R * 4), *qp = malloc((size_t)H * P * 4);
  float *qr = calloc((size_t)H * r, 4), *ref = malloc((size_t)H * R * 4);
  float *O = malloc((size_t)H * ldo * ldp * 4),
        *M = malloc((size_t)H * ldo * 4);
  float *Ls = malloc((size_t)H * ldo * 4), *U = malloc((size_t)H * r * 4);
  float *X = malloc((size_t)H * R * 4);
  uint16_t *Ad = malloc((size_t)c->L * r * 2), *Kd = malloc((size_t)T * P * 2);
  uint16_t *Cx = malloc((size_t)(c->tail + 1) * R * 2);
  ck_assert(A && B && lat && kpe && q && qp && qr && ref && O && M && Ls && U &&
            X && Ad && Kd && Cx);
  fill(A, (size_t)c->L * r, 1.0f, &st);
  fill(B, (size_t)r * R, 0.2f, &st);
  fill(kpe, (size_t)T * P, 1.0f, &st);
  fill(lat + (size_t)c->L * R, (size_t)c->tail * R, 1.0f, &st);
  fill(q, (size_t)H * R, 0.3f, &st);
  fill(qp, (size_t)H * P, 0.3f, &st);
  /* the stored (rounded) values: A, k_pe and the tail in the dtype; the
   * naive reference decompresses A B_l (B_l stays f32: the runtime maps
   * through it with an f32 GEMM) */
  for (size_t i = 0; i < (size_t)c->L * r; i++)
    A[i] = round_dt(c->bf16, A[i]);
  for (size_t i = 0; i < (size_t)T * P; i++)
    kpe[i] = round_dt(c->bf16, kpe[i]);
  for (size_t i = (size_t)c->L * R; i < (size_t)T * R; i++)
    lat[i] = round_dt(c->bf16, lat[i]);
  for (int t = 0; t < c->L; t++)
    for (int j = 0; j < R; j++) {
      double v = 0;
      for (int k = 0; k < r; k++)
        v += (double)A[(size_t)t * r + k] * B[(size_t)k * R + j];
      lat[(size_t)t * R + j] = (float)v;
    }
  for (int h = 0; h < H; h++) /* q_r = B_l q_lat */
    for (int k = 0; k < r; k++) {
      double v = 0;
      for (int j = 0; j < R; j++)
        v += (double)B[(size_t)k * R + j] * q[h * R + j];
      qr[h * r + k] = (float)v;
    }
  to_dt(c->bf16, A, Ad, (size_t)c->L * r);
  to_dt(c->bf16, kpe, Kd, (size_t)T * P);
  to_dt(c->bf16, lat + (size_t)c->L * R, Cx, (size_t)c->tail * R);
  for (size_t i = 0; i < (size_t)H * ldo * ldp; i++)
    O[i] = NAN;
  float scale = 1.0f / sqrtf((float)(R + P));
  ref_attend(lat, kpe, T, R, q, qp, H, scale, ref);

  const char *dec = c->bf16 ? "xkv_mla_decode_bf16" : "xkv_mla_decode_f16";
  xkv_dsim_kernel kr, kx, kc;
  kbuild(dec, host, c->Wr, &kr);
  kbuild(dec, host, c->WR, &kx);
  kbuild("xkv_mla_combine", host, 0, &kc);
  int32_t Lp = c->L, rw = r, Rw = R, Hh = H, ns0 = c->ns0, ns1 = c->ns1;
  int32_t ns = ns0 + ns1, ldo_ = ldo, ldp_ = ldp, z = 0, tail = c->tail;
  int32_t bh = (int32_t)xkv_dsim_const(&kr, "BLOCK_H");
  int32_t bc = (int32_t)xkv_dsim_const(&kc, "BLOCK_C");
  void *pA = Ad, *pK = Kd, *pKt = Kd + (size_t)c->L * P, *pC = Cx;
  void *pq = qr, *pql = q, *pqp = qp, *pO = O, *pM = M, *pL = Ls;
  void *pU = U, *pX = X;
  xk_diag d;
  int32_t g0[3] = {ns0, (H + bh - 1) / bh, 1};
  void *a0[15] = {&pA, &pK, &pq,  &pqp,  &pO,   &pM, &pL,   &Lp,
                  &rw, &Hh, &ns0, &ldo_, &ldp_, &z,  &scale};
  ck_assert_msg(xkv_dsim_launch(&kr, a0, g0, NULL, &d) == 0, "%s", d.msg);
  if (ns1) {
    int32_t g1[3] = {ns1, (H + bh - 1) / bh, 1};
    void *a1[15] = {&pC, &pKt, &pql, &pqp,  &pO,   &pM,  &pL,   &tail,
                    &Rw, &Hh,  &ns1, &ldo_, &ldp_, &ns0, &scale};
    ck_assert_msg(xkv_dsim_launch(&kx, a1, g1, NULL, &d) == 0, "%s", d.msg);
  }
  int32_t gc[3] = {H, (ldp + bc - 1) / bc, 1};
  void *ac[13] = {&pO, &pM,   &pL,   &pU, &pX, &Hh, &ns0,
                  &ns, &ldo_, &ldp_, &rw, &Rw, &rw};
  ck_assert_msg(xkv_dsim_launch(&kc, ac, gc, NULL, &d) == 0, "%s", d.msg);
  for (int h = 0; h < H; h++) /* out = X + U B_l (the runtime's GEMM) */
    for (int j = 0; j < R; j++) {
      double v = X[h * R + j];
      for (int k = 0; k < r; k++)
        v += (double)U[h * r + k] * B[(size_t)k * R + j];
      X[h * R + j] = (float)v;
    }
  double e = max_rel(X, ref, (size_t)H * R);
  ck_assert_msg(e <= 2e-2, "%s %s H %d R %d r %d L %d tail %d: rel err %g",
                host ? "host" : "sim", dec, H, R, r, c->L, c->tail, e);
  xkv_dsim_kernel_free(&kr);
  xkv_dsim_kernel_free(&kx);
  xkv_dsim_kernel_free(&kc);
  void *f[] = {A, B, lat, kpe, q, qp, qr, ref, O, M, Ls, U, X, Ad, Kd, Cx};
  for (size_t i = 0; i < sizeof f / sizeof *f; i++)
    free(f[i]);
}

START_TEST(kernels_host) {
  run_kernels(&kcases[_i], 1);
}
END_TEST

START_TEST(kernels_sim) {
  run_kernels(&kcases[_i], 0);
}
END_TEST

/* ---- stats ------------------------------------------------------------- */

/* the paper's accounting by hand: exact (R + P) f16 per token and layer;
 * compressed A [L, r] per group, B_l [r, R] per layer, k_pe exact */
static double formula(int layers, int W, int R, int r, double L) {
  int groups = (layers + W - 1) / W;
  double ex = (double)layers * L * (R + P);
  double comp = groups * L * r + (double)layers * r * R + layers * L * P;
  return ex / comp;
}

START_TEST(stats_formula) {
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);
  /* DeepSeek-Coder-V2-Lite: 27 layers, 16 heads, R 512, P 64; W 4, rank
   * 512, 64K tokens */
  xkv_mla_config f = {.n_layers = 27,
                      .n_heads = 16,
                      .kv_lora_rank = 512,
                      .rope_dim = P,
                      .max_tokens = 65536,
                      .group = 4,
                      .policy = XKV_RANK_FIXED,
                      .rank = 512,
                      .dtype = XKV_F16};
  xkv_mla_stats s;
  ck_assert_int_eq(xkv_mla_stats_model(ctx, &f, 65536, 0, &s), XKV_OK);
  double want = formula(27, 4, 512, 512, 65536);
  ck_assert_msg(fabs(s.ratio - want) < 1e-9 && fabs(s.ratio - 2.87) < 0.01,
                "ratio %.4f, formula %.4f", s.ratio, want);
  double lat = 27.0 * 512 / (7.0 * 512 + 27.0 * 512 * 512 / 65536);
  ck_assert_msg(fabs(s.ratio_latent - lat) < 1e-9, "latent ratio %.4f vs %.4f",
                s.ratio_latent, lat);
  ck_assert_int_eq(s.groups_compressed, 7);
  ck_assert_uint_eq(s.rope_bytes, 27ull * 65536 * P * 2);
  /* the live cache reports what the model says for the same state */
  rcase c = {3, 2, 32, 2, 24, 40, 2};
  xkv_mla_config fl = config(&c, XKV_F16, 0);
  fl.svd = XKV_SVD_AUTO;
  xkv_mla_cache *m;
  ck_assert_int_eq(xkv_mla_create(ctx, &fl, &m), XKV_OK);
  size_t n = (size_t)42 * 32;
  float *lat_in = calloc(n, 4), *kpe = calloc((size_t)42 * P, 4);
  ck_assert(lat_in && kpe);
  uint64_t st = 1;
  fill(lat_in, n, 1.0f, &st);
  for (int l = 0; l < 3; l++)
    ck_assert_int_eq(xkv_mla_prefill(m, l, lat_in, kpe, 40), XKV_OK);
  xkv_mla_stats live, model;
  /* layer 2 (a group of one layer, 32 features >= rank 24) is compressed
   * too */
  for (int i = 0; i < 2; i++)
    for (int l = 0; l < 3; l++)
      ck_assert_int_eq(
          xkv_mla_append(m, l, lat_in + (40 + i) * 32, kpe + (40 + i) * P),
          XKV_OK);
  ck_assert_int_eq(xkv_mla_get_stats(m, &live), XKV_OK);
  ck_assert_int_eq(xkv_mla_stats_model(ctx, &fl, 40, 2, &model), XKV_OK);
  ck_assert_uint_eq(live.bytes, model.bytes);
  ck_assert_uint_eq(live.exact_bytes, model.exact_bytes);
  ck_assert_int_eq(live.groups_compressed, 2);
  /* by hand: A 40 x 24 per group, B 24 x 32 per layer, 2 exact latent
   * rows and 42 k_pe rows per layer, f16 */
  uint64_t want_b =
      2 * (2ull * 40 * 24 + 3ull * 24 * 32 + 3ull * 2 * 32 + 3ull * 42 * P);
  ck_assert_uint_eq(live.bytes, want_b);
  ck_assert_uint_eq(live.exact_bytes, 2ull * 3 * 42 * (32 + P));
  free(lat_in);
  free(kpe);
  xkv_mla_destroy(m);
  xkv_close(ctx);
}
END_TEST

/* ---- bad input --------------------------------------------------------- */

static void want_err(xkv_context *ctx, xkv_status s, const char *needle) {
  ck_assert_int_ne(s, XKV_OK);
  ck_assert_msg(strstr(xkv_last_error(ctx), needle), "error '%s' lacks '%s'",
                xkv_last_error(ctx), needle);
}

START_TEST(bad_input) {
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);
  rcase c = {2, 2, 32, 2, 16, 20, 0};
  xkv_mla_cache *m = NULL;
  xkv_mla_config f = config(&c, XKV_F16, 0);
  f.kv_lora_rank = 40;
  want_err(ctx, xkv_mla_create(ctx, &f, &m), "kv_lora_rank 40");
  f = config(&c, XKV_F16, 0);
  f.rope_dim = 32;
  want_err(ctx, xkv_mla_create(ctx, &f, &m), "rope_dim 32");
  f = config(&c, XKV_F16, 0);
  f.group = 3;
  want_err(ctx, xkv_mla_create(ctx, &f, &m), "group (W) 3");
  f = config(&c, XKV_F16, 0);
  f.rank = 65;
  want_err(ctx, xkv_mla_create(ctx, &f, &m), "fixed rank 65");
  f = config(&c, XKV_F16, 0);
  f.policy = XKV_RANK_RATIO;
  want_err(ctx, xkv_mla_create(ctx, &f, &m), "policy");
  ck_assert_ptr_null(m);
  f = config(&c, XKV_F16, 0);
  want_err(ctx, xkv_mla_stats_model(ctx, &f, 30, 0, &(xkv_mla_stats){0}),
           "max_tokens");
  ck_assert_int_eq(xkv_mla_create(ctx, &f, &m), XKV_OK);
  float *lat = calloc((size_t)20 * 32, 4), *kpe = calloc((size_t)20 * P, 4);
  float q[2 * 32] = {0}, qp[2 * P] = {0}, out[2 * 32];
  ck_assert(lat && kpe);
  for (int i = 0; i < 20 * 32; i++) /* full rank: an all-zero prompt has none */
    lat[i] = (float)((i * 7919) % 23) - 11.0f;
  want_err(ctx, xkv_mla_prefill(m, 1, lat, kpe, 20), "expected layer 0");
  want_err(ctx, xkv_mla_prefill(m, 0, NULL, kpe, 20), "NULL c_kv");
  want_err(ctx, xkv_mla_prefill(m, 0, lat, kpe, 25), "max_tokens");
  want_err(ctx, xkv_mla_append(m, 0, lat, kpe), "no prefill");
  ck_assert_int_eq(xkv_mla_prefill(m, 0, lat, kpe, 20), XKV_OK);
  want_err(ctx, xkv_mla_attention(m, 0, q, qp, 1.0f, out), "not ready");
  want_err(ctx, xkv_mla_prefill(m, 1, lat, kpe, 19), "layer 0 had 20");
  want_err(ctx, xkv_mla_attention(m, 2, q, qp, 1.0f, out), "out of 0..1");
  want_err(ctx, xkv_mla_attention(m, 0, q, NULL, 1.0f, out), "NULL");
  ck_assert_int_eq(xkv_mla_prefill(m, 1, lat, kpe, 20), XKV_OK);
  ck_assert_int_eq(xkv_mla_attention(m, 0, q, qp, 1.0f, out), XKV_OK);
  for (int i = 0; i < 4; i++) /* max_tokens = L + 4 */
    ck_assert_int_eq(xkv_mla_append(m, 0, lat, kpe), XKV_OK);
  want_err(ctx, xkv_mla_append(m, 0, lat, kpe), "is full");
  free(lat);
  free(kpe);
  xkv_mla_destroy(m);
  xkv_close(ctx);
}
END_TEST

int main(void) {
  Suite *s = suite_create("xkv_mla");
  TCase *tc = tcase_create("cache");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, full_rank_equals_exact);
  tcase_add_test(tc, f16_runtime_path);
  tcase_add_test(tc, stats_formula);
  tcase_add_test(tc, bad_input);
  suite_add_tcase(s, tc);
  TCase *tk = tcase_create("kernels");
  tcase_set_timeout(tk, 600);
  tcase_add_unchecked_fixture(tk, open_kernels, close_kernels);
  int nk = (int)(sizeof kcases / sizeof *kcases);
  tcase_add_loop_test(tk, kernels_host, 0, nk);
  tcase_add_loop_test(tk, kernels_sim, 0, nk);
  suite_add_tcase(s, tk);
  return xk_check_run(s);
}
