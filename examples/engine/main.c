/* A minimal engine on an installed xkv: runs its own kernel (rmsnorm, from
 * kernels.xk, embedded at build time) and the xKV cache (prefill, append,
 * decode attention) on the CPU device, each against an exact computation
 * here. Prints one line per check; exits 1 on a mismatch, 2 on an error. */
#include <xkv.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The tables `xkv_add_kernels(... TARGETS host sm_90 EMBED NAME
 * example_kernels)` defines, as `xkvgen kernels.xk --target T --embed
 * example_kernels_T` does. */
extern const xkv_embedded example_kernels_host, example_kernels_sm_90;

/* Adds the table built for ctx's device; the registry refuses the others
 * with XKV_ERR_TARGET. */
static xkv_status register_kernels(xkv_context *ctx) {
  const xkv_embedded *tables[] = {&example_kernels_host,
                                  &example_kernels_sm_90};
  xkv_status s = XKV_ERR_TARGET;
  for (size_t i = 0; i < sizeof tables / sizeof *tables; i++)
    if ((s = xkv_registry_add_embedded(ctx, tables[i])) != XKV_ERR_TARGET)
      return s;
  return s;
}

enum { LAYERS = 2, HEADS = 4, KV_HEADS = 2, DIM = 64, PROMPT = 40, NEW = 3 };
enum { KV = KV_HEADS * DIM, RANK = 4 };
#define THETA 10000.0

static unsigned long long rng = 88172645463325252ull;
static float uniform(void) { /* xorshift64, in [-1, 1) */
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (float)((rng >> 40) / (double)(1 << 23) - 1);
}
static void fill(float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    x[i] = uniform();
}

static int fail(xkv_context *ctx, const char *what, xkv_status s) {
  fprintf(stderr, "example: %s: %s: %s\n", what, xkv_status_name(s),
          xkv_last_error(ctx));
  return 2;
}

static double rel_err(const float *a, const double *ref, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    num += (a[i] - ref[i]) * (a[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return sqrt(num / (den > 0 ? den : 1));
}

/* rmsnorm of 3 rows of 300 (more than one BLOCK_N) against the formula */
static int check_rmsnorm(xkv_context *ctx) {
  enum { M = 3, N = 300 };
  static float x[M * N], w[N], y[M * N];
  static double ref[M * N];
  const float eps = 1e-5f;
  fill(x, M * N);
  fill(w, N);
  xkv_arg a[] = {xkv_arg_ptr(XKV_F32, x), xkv_arg_ptr(XKV_F32, w),
                 xkv_arg_ptr(XKV_F32, y), xkv_arg_i32(M),
                 xkv_arg_i32(N),          xkv_arg_f32(eps)};
  xkv_status s = xkv_launch_named(ctx, "rmsnorm", NULL, 0, NULL, a, 6, NULL);
  if (s)
    return fail(ctx, "rmsnorm", s);
  for (int m = 0; m < M; m++) {
    double ss = 0;
    for (int n = 0; n < N; n++)
      ss += (double)x[m * N + n] * x[m * N + n];
    for (int n = 0; n < N; n++)
      ref[m * N + n] = x[m * N + n] * w[n] / sqrt(ss / N + eps);
  }
  double e = rel_err(y, ref, M * N);
  int ok = e < 1e-5;
  printf("rmsnorm kernel: rel err %.2e vs exact: %s\n", e, ok ? "ok" : "FAIL");
  return !ok;
}

static void rope(double *x, int pos) { /* pairs (2i, 2i+1), as llama2.c */
  for (int i = 0; i < DIM / 2; i++) {
    double th = pos * pow(THETA, -2.0 * i / DIM), a = x[2 * i],
           b = x[2 * i + 1];
    x[2 * i] = a * cos(th) - b * sin(th);
    x[2 * i + 1] = a * sin(th) + b * cos(th);
  }
}

/* softmax(q K^T / sqrt(d)) V over T tokens, keys rotated at their place */
static void exact_attention(const float *q, const float *k, const float *v,
                            int T, int pos, double *out) {
  double qr[DIM], kr[DIM], sc[PROMPT + NEW];
  for (int h = 0; h < HEADS; h++) {
    int kh = h / (HEADS / KV_HEADS);
    double mx = -INFINITY, sum = 0;
    for (int e = 0; e < DIM; e++)
      qr[e] = q[h * DIM + e];
    rope(qr, pos);
    for (int t = 0; t < T; t++) {
      for (int e = 0; e < DIM; e++)
        kr[e] = k[(t * KV_HEADS + kh) * DIM + e];
      rope(kr, t);
      sc[t] = 0;
      for (int e = 0; e < DIM; e++)
        sc[t] += qr[e] * kr[e] / sqrt((double)DIM);
      mx = fmax(mx, sc[t]);
    }
    for (int t = 0; t < T; t++)
      sum += sc[t] = exp(sc[t] - mx);
    for (int e = 0; e < DIM; e++) {
      double acc = 0;
      for (int t = 0; t < T; t++)
        acc += sc[t] * v[(t * KV_HEADS + kh) * DIM + e];
      out[h * DIM + e] = acc / sum;
    }
  }
}

/* Both layers' prompt keys and values are rank RANK and share their token
 * factors (one xKV group of W = 2), so rank-8 factors hold them up to the
 * f16 storage; the appended tokens are stored exactly. */
static int check_cache(xkv_context *ctx) {
  enum { T = PROMPT + NEW };
  static float k[LAYERS][T * KV], v[LAYERS][T * KV], q[HEADS * DIM],
      out[HEADS * DIM], ak[PROMPT * RANK], av[PROMPT * RANK], b[RANK * KV];
  static double ref[HEADS * DIM];
  fill(ak, PROMPT * RANK);
  fill(av, PROMPT * RANK);
  for (int l = 0; l < LAYERS; l++) {
    for (int pass = 0; pass < 2; pass++) {
      float *x = pass ? v[l] : k[l], *a = pass ? av : ak;
      fill(b, RANK * KV);
      for (int t = 0; t < PROMPT; t++)
        for (int f = 0; f < KV; f++) {
          double acc = 0;
          for (int r = 0; r < RANK; r++)
            acc += a[t * RANK + r] * b[r * KV + f];
          x[t * KV + f] = (float)acc;
        }
      fill(x + PROMPT * KV, NEW * KV);
    }
  }
  xkv_cache_config cfg = {.n_layers = LAYERS,
                          .n_heads = HEADS,
                          .n_kv_heads = KV_HEADS,
                          .head_dim = DIM,
                          .max_tokens = 64,
                          .group = 2,
                          .policy = XKV_RANK_FIXED,
                          .rank_k = 8,
                          .rank_v = 8,
                          .dtype = XKV_F16,
                          .rope_theta = (float)THETA};
  xkv_cache *kv;
  xkv_status s = xkv_cache_create(ctx, &cfg, &kv);
  if (s)
    return fail(ctx, "xkv_cache_create", s);
  for (int l = 0; !s && l < LAYERS; l++)
    s = xkv_cache_prefill(kv, l, k[l], v[l], PROMPT);
  for (int t = PROMPT; !s && t < T; t++)
    for (int l = 0; !s && l < LAYERS; l++)
      s = xkv_cache_append(kv, l, k[l] + t * KV, v[l] + t * KV);
  int bad = 0;
  for (int l = 0; !s && l < LAYERS; l++) {
    fill(q, HEADS * DIM);
    s = xkv_attention(kv, l, q, T - 1, out);
    if (s)
      break;
    exact_attention(q, k[l], v[l], T, T - 1, ref);
    double e = rel_err(out, ref, HEADS * DIM);
    bad |= !(e < 1e-2);
    printf("xkv cache layer %d: attention rel err %.2e vs exact: %s\n", l, e,
           e < 1e-2 ? "ok" : "FAIL");
  }
  xkv_cache_stats st;
  if (!s && !(s = xkv_cache_get_stats(kv, &st)))
    printf("xkv cache: %d tokens, ranks k %d v %d, %.2fx smaller than f16\n",
           st.tokens, st.rank_k_max, st.rank_v_max, st.ratio);
  xkv_cache_destroy(kv);
  return s ? fail(ctx, "xkv cache", s) : bad;
}

int main(void) {
  printf("xkv %s (built against %s)\n", xkv_version(), XKV_VERSION);
  xkv_context *ctx;
  xkv_status s = xkv_open(&ctx, "cpu");
  if (!s)
    s = register_kernels(ctx);
  int rc = s ? fail(ctx, "setup", s) : check_rmsnorm(ctx);
  if (!s) {
    int rc2 = check_cache(ctx);
    rc = rc > rc2 ? rc : rc2;
  }
  xkv_close(ctx);
  printf("%s\n", rc ? "example: FAILED" : "example: all checks passed");
  return rc;
}
