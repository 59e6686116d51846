/* Allocation failures (tests/fault_alloc.c): for each operation, the K-th
 * allocation fails, for K = 1, 2, ... until the operation completes with
 * no failure left to inject. At every K the operation must return
 * XKV_ERR_OUT_OF_MEMORY (or -1 for the engine) with a message saying
 * "memory", leak nothing, and a retry on the same input must work; the
 * xKV cache's final attention output must then equal a fault-free run's.
 * Covers xkv_cache_create (with the kernel registration a fresh context
 * does), xkv_cache_prefill (compression, selective reconstruction),
 * xkv_cache_append, xkv_attention, xkv_registry_load, the GGUF model
 * load (eng_model_load_gguf) and a host kernel's heap tiles (the launch
 * reports the kernel's failed malloc). */
#include "fault_alloc.h"
#include "model.h"
#include "tiny_gguf.h"
#include "xkv.h"

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* one sweep's tally, printed as the sites x outcomes table */
typedef struct {
  long sites;    /* allocations the operation makes */
  long failed;   /* K values where the operation reported the failure */
  long absorbed; /* K values where it succeeded anyway (and matched) */
} tally;

static void report(const char *what, const tally *t) {
  printf("%-28s %4ld allocation sites: %4ld reported, %3ld absorbed, retries "
         "ok, no leaks\n",
         what, t->sites, t->failed, t->absorbed);
}

/* ---- the xKV cache -------------------------------------------------------
 */
enum { P_CREATE, P_PREFILL, P_APPEND, P_ATTN, P_N };
#define FRESH_STRIDE 97
static const char *const phase_names[P_N] = {"create", "prefill", "append",
                                             "attention"};

typedef struct {
  const char *name;
  xkv_cache_config cfg;
  int L, tail;
} scenario;

#define BASE                                                                   \
  .n_layers = 4, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8,                 \
  .max_tokens = 64, .group = 2, .policy = XKV_RANK_FIXED, .rank_k = 6,         \
  .rank_v = 5, .dtype = XKV_F16, .rope_theta = 10000.0f, .seed = 3

static const scenario scenarios[] = {
    {"xkv (W=2, Gram route)", {BASE, .svd = XKV_SVD_GRAM}, 24, 3},
    {"xkv (W=2, randomized)", {BASE, .svd = XKV_SVD_RANDOMIZED}, 24, 3},
    {"xkv (selective rec.)",
     {BASE, .sr = 1, .sr_budget = 8, .sr_local_window = 8},
     48,
     2},
    {"exact", {BASE, .exact = 1}, 24, 3},
};
#define NSCEN ((int)(sizeof scenarios / sizeof *scenarios))

typedef struct {
  float *k, *v; /* [n_layers][L + tail][hkv * d] */
  float *q;     /* [n_heads * d] */
  float *out;   /* [n_layers][n_heads * d] */
} inputs;

static void make_inputs(const scenario *sc, inputs *in) {
  const xkv_cache_config *f = &sc->cfg;
  size_t T = (size_t)(sc->L + sc->tail), hd = f->n_kv_heads * f->head_dim;
  size_t n = (size_t)f->n_layers * T * hd, nq = f->n_heads * f->head_dim;
  in->k = malloc(n * sizeof(float));
  in->v = malloc(n * sizeof(float));
  in->q = malloc(nq * sizeof(float));
  in->out = malloc(f->n_layers * nq * sizeof(float));
  ck_assert(in->k && in->v && in->q && in->out);
  unsigned s = 11;
  for (size_t i = 0; i < n; i++) {
    s = s * 1103515245u + 12345u;
    in->k[i] = (float)((int)(s >> 16 & 255) - 128) / 64.0f;
    s = s * 1103515245u + 12345u;
    in->v[i] = (float)((int)(s >> 16 & 255) - 128) / 64.0f;
  }
  for (size_t i = 0; i < nq; i++)
    in->q[i] = (float)((int)(i % 9) - 4) / 4.0f;
}

static void free_inputs(inputs *in) {
  free(in->k);
  free(in->v);
  free(in->q);
  free(in->out);
}

typedef struct {
  int phase;  /* the one whose allocations are counted, -1 none */
  long k;     /* which of them fails, 0 none */
  int fired;  /* it was reached */
  int failed; /* and some call reported it */
  long count; /* allocations the phase attempted */
} fault;

/* call() under the fault when `on`: a reported failure must name memory;
 * then the retry, with nothing armed, must succeed. (No ck_assert while
 * armed: a passing Check assertion allocates in the runner.) */
#define STEP(ctx, on, f, call)                                                 \
  do {                                                                         \
    xkv_status s_ = (call);                                                    \
    if (s_ && (on) && xk_fault_fired() && !(f)->failed) {                      \
      (f)->failed = 1;                                                         \
      const char *m_ = xkv_last_error(ctx);                                    \
      if (s_ != XKV_ERR_OUT_OF_MEMORY || !strstr(m_, "memory"))                \
        ck_abort_msg("%s, K = %ld: %s: %s", phase_names[(f)->phase], (f)->k,   \
                     xkv_status_name(s_), m_);                                 \
      s_ = (call);                                                             \
    }                                                                          \
    if (s_ != XKV_OK)                                                          \
      ck_abort_msg("%s, K = %ld: %s after the retry: %s",                      \
                   (f)->phase >= 0 ? phase_names[(f)->phase] : "reference",    \
                   (f)->k, #call, xkv_last_error(ctx));                        \
  } while (0)

static void arm_if(fault *f, int phase) {
  if (f->phase == phase)
    xk_fault_arm(f->k);
}

static void disarm_if(fault *f, int phase) {
  if (f->phase == phase) {
    f->fired = xk_fault_fired();
    f->count = xk_fault_count();
    xk_fault_arm(0);
  }
}

/* create, prefill every layer, append `tail` tokens, attend every layer */
static void run(xkv_context *ctx, const scenario *sc, const inputs *in,
                fault *f) {
  const xkv_cache_config *c = &sc->cfg;
  size_t T = (size_t)(sc->L + sc->tail), hd = c->n_kv_heads * c->head_dim;
  size_t nq = c->n_heads * c->head_dim;
  xkv_cache *cache = NULL;
  arm_if(f, P_CREATE);
  STEP(ctx, f->phase == P_CREATE, f, xkv_cache_create(ctx, c, &cache));
  disarm_if(f, P_CREATE);
  arm_if(f, P_PREFILL);
  for (int l = 0; l < c->n_layers; l++)
    STEP(ctx, f->phase == P_PREFILL, f,
         xkv_cache_prefill(cache, l, in->k + l * T * hd, in->v + l * T * hd,
                           sc->L));
  disarm_if(f, P_PREFILL);
  arm_if(f, P_APPEND);
  for (int t = sc->L; t < (int)T; t++)
    for (int l = 0; l < c->n_layers; l++)
      STEP(ctx, f->phase == P_APPEND, f,
           xkv_cache_append(cache, l, in->k + (l * T + t) * hd,
                            in->v + (l * T + t) * hd));
  disarm_if(f, P_APPEND);
  arm_if(f, P_ATTN);
  for (int l = 0; l < c->n_layers; l++)
    STEP(ctx, f->phase == P_ATTN, f,
         xkv_attention(cache, l, in->q, (int)T - 1, in->out + l * nq));
  disarm_if(f, P_ATTN);
  xkv_cache_destroy(cache);
}

static void sweep_cache(const scenario *sc) {
  inputs in;
  make_inputs(sc, &in);
  size_t nout = (size_t)sc->cfg.n_layers * sc->cfg.n_heads * sc->cfg.head_dim;
  float *ref = malloc(nout * sizeof *ref);
  ck_assert_ptr_nonnull(ref);
  /* the reference, on a context whose kernels are then registered */
  xkv_context *warm;
  ck_assert_int_eq(xkv_open(&warm, "cpu"), XKV_OK);
  fault none = {-1, 0, 0, 0, 0};
  run(warm, sc, &in, &none);
  memcpy(ref, in.out, nout * sizeof *ref);
  run(warm, sc, &in, &none);        /* the allocation table at its largest */
  for (size_t i = 0; i < nout; i++) /* deterministic, or nothing is shown */
    ck_assert_msg(in.out[i] == ref[i], "%s: two fault-free runs differ at %zu",
                  sc->name, i);
  long warm_live = xk_fault_live();
  /* P_N: creation on a fresh context, which also registers the kernels
   * (thousands of allocations, most in the manifest reader, swept fully
   * by registry_sweep): every FRESH_STRIDE-th K */
  for (int p = 0; p <= P_N; p++) {
    tally t = {0};
    int fresh = p == P_N;
    long stride = fresh ? FRESH_STRIDE : 1;
    for (long k = 1;; k += stride) {
      long before = xk_fault_live();
      xkv_context *ctx = warm;
      if (fresh)
        ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);
      fault f = {fresh ? P_CREATE : p, k, 0, 0, 0};
      memset(in.out, 0, nout * sizeof *in.out);
      run(ctx, sc, &in, &f);
      for (size_t i = 0; i < nout; i++)
        ck_assert_msg(fabsf(in.out[i] - ref[i]) <= 1e-6f * (1 + fabsf(ref[i])),
                      "%s %s, K = %ld: out[%zu] = %g, fault-free %g", sc->name,
                      phase_names[p], k, i, in.out[i], ref[i]);
      if (fresh)
        xkv_close(ctx);
      long want = fresh ? before : warm_live;
      ck_assert_msg(xk_fault_live() == want,
                    "%s %s, K = %ld: %ld blocks leaked", sc->name,
                    fresh ? "fresh create" : phase_names[p], k,
                    xk_fault_live() - want);
      if (!f.fired) {
        t.sites = fresh ? f.count : k - 1;
        break;
      }
      t.failed += f.failed;
      t.absorbed += !f.failed;
    }
    char what[96];
    snprintf(what, sizeof what, "%s %s", sc->name,
             fresh ? "create (fresh ctx, sampled)" : phase_names[p]);
    report(what, &t);
    /* appends write into buffers made at prefill; dense attention into
     * buffers made at create */
    if (p != P_APPEND && p != P_ATTN)
      ck_assert_int_gt(t.sites, 0);
  }
  xkv_close(warm);
  free(ref);
  free_inputs(&in);
}

START_TEST(cache_sweep) {
  sweep_cache(&scenarios[_i]);
}
END_TEST

/* ---- the registry --------------------------------------------------------
 */
START_TEST(registry_sweep) {
  tally t = {0};
  for (long k = 1;; k++) {
    long before = xk_fault_live();
    xkv_context *ctx;
    ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);
    xk_fault_arm(k);
    xkv_status s = xkv_registry_load(ctx, RT_HOST_DIR);
    int fired = xk_fault_fired();
    xk_fault_arm(0);
    if (s) {
      ck_assert_msg(fired, "K = %ld: %s", k, xkv_last_error(ctx));
      ck_assert_msg(
          s == XKV_ERR_OUT_OF_MEMORY && strstr(xkv_last_error(ctx), "memory"),
          "K = %ld: %s: %s", k, xkv_status_name(s), xkv_last_error(ctx));
      /* all or nothing: a failed load registers nothing */
      ck_assert_int_eq(xkv_num_variants(ctx), 0);
      ck_assert_int_eq(xkv_registry_load(ctx, RT_HOST_DIR), XKV_OK);
    }
    ck_assert_int_eq(xkv_num_variants(ctx), 7);
    xkv_kernel *kern;
    ck_assert_int_eq(xkv_kernel_find(ctx, "vadd", NULL, 0, &kern), XKV_OK);
    xkv_close(ctx);
    ck_assert_int_eq(xk_fault_live(), before);
    t.failed += s != XKV_OK;
    t.absorbed += fired && !s;
    if (!fired) {
      t.sites = k - 1;
      break;
    }
  }
  report("xkv_registry_load", &t);
  ck_assert_int_gt(t.sites, 0);
}
END_TEST

/* ---- the GGUF model load -------------------------------------------------
 */
START_TEST(gguf_sweep) {
  char path[] = RT_TMP "/tiny_fault.gguf";
  size_t n;
  unsigned char *b = xk_tiny_gguf(&n);
  ck_assert_ptr_nonnull(b);
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(b, 1, n, f), n);
  ck_assert_int_eq(fclose(f), 0);
  free(b);
  eng_model ref;
  eng_err err;
  ck_assert_msg(eng_model_load_gguf(path, &ref, &err) == 0, "%s", err.msg);
  tally t = {0};
  for (long k = 1;; k++) {
    long before = xk_fault_live();
    eng_model m;
    err.msg[0] = 0;
    xk_fault_arm(k);
    int rc = eng_model_load_gguf(path, &m, &err);
    int fired = xk_fault_fired();
    xk_fault_arm(0);
    if (rc) {
      ck_assert_msg(fired, "K = %ld: %s", k, err.msg);
      ck_assert_msg(strstr(err.msg, "memory") && strstr(err.msg, path),
                    "K = %ld: %s", k, err.msg);
      ck_assert_msg(xk_fault_live() == before, "K = %ld: %ld blocks leaked", k,
                    xk_fault_live() - before);
      ck_assert_msg(eng_model_load_gguf(path, &m, &err) == 0, "%s", err.msg);
    }
    ck_assert_int_eq(m.cfg.vocab_size, ref.cfg.vocab_size);
    ck_assert_float_eq(m.layers[0].w2[5], ref.layers[0].w2[5]);
    eng_model_free(&m);
    ck_assert_int_eq(xk_fault_live(), before);
    t.failed += rc != 0;
    t.absorbed += fired && !rc;
    if (!fired) {
      t.sites = k - 1;
      break;
    }
  }
  eng_model_free(&ref);
  remove(path);
  report("eng_model_load_gguf", &t);
  ck_assert_int_gt(t.sites, 0);
}
END_TEST

/* ---- a host kernel's heap tiles -----------------------------------------
 * heap_tile.xk's kernel, embedded into this binary so that its mallocs go
 * through the wrappers: one tile per program, 3 programs. */
extern const xkv_embedded xk_heap_tile_host;

START_TEST(kernel_sweep) {
  enum { BLOCK = 131072, N = 3 * BLOCK - 5 };
  float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
  ck_assert(x && y);
  double sums[3] = {0, 0, 0};
  for (int i = 0; i < N; i++) {
    x[i] = (float)(i % 7) * 0.5f - 1.0f;
    sums[i / BLOCK] += x[i];
  }
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);
  ck_assert_int_eq(xkv_registry_add_embedded(ctx, &xk_heap_tile_host), XKV_OK);
  xkv_arg a[3] = {xkv_arg_ptr(XKV_F32, x), xkv_arg_ptr(XKV_F32, y),
                  xkv_arg_i32(N)};
  tally t = {0};
  for (long k = 1;; k++) {
    long before = xk_fault_live();
    memset(y, 0, N * sizeof *y);
    xk_fault_arm(k);
    xkv_status s =
        xkv_launch_named(ctx, "heap_scale", NULL, 0, NULL, a, 3, NULL);
    int fired = xk_fault_fired();
    xk_fault_arm(0);
    if (s) {
      const char *m = xkv_last_error(ctx);
      ck_assert_msg(fired, "K = %ld: %s", k, m);
      ck_assert_msg(s == XKV_ERR_OUT_OF_MEMORY && strstr(m, "memory") &&
                        strstr(m, "heap_scale"),
                    "K = %ld: %s: %s", k, xkv_status_name(s), m);
      ck_assert_int_eq(
          xkv_launch_named(ctx, "heap_scale", NULL, 0, NULL, a, 3, NULL),
          XKV_OK);
    }
    for (int i = 0; i < N; i += 997)
      ck_assert_msg(fabs(y[i] - x[i] * sums[i / BLOCK]) <=
                        1e-3 * (1 + fabs(x[i] * sums[i / BLOCK])),
                    "K = %ld: y[%d] = %g", k, i, (double)y[i]);
    ck_assert_int_eq(xk_fault_live(), before);
    t.failed += s != XKV_OK;
    t.absorbed += fired && !s;
    if (!fired) {
      t.sites = k - 1;
      break;
    }
  }
  xkv_close(ctx);
  free(x);
  free(y);
  report("host kernel heap tiles", &t);
  ck_assert_int_ge(t.failed, 3); /* at least one tile per program */
}
END_TEST

int main(void) {
  /* one case each, so that CK_RUN_CASE=registry (say) runs one sweep */
  Suite *s = suite_create("alloc_faults");
  TCase *tc = tcase_create("cache");
  tcase_set_timeout(tc, 600);
  tcase_add_loop_test(tc, cache_sweep, 0, NSCEN);
  suite_add_tcase(s, tc);
  tc = tcase_create("registry");
  tcase_add_test(tc, registry_sweep);
  suite_add_tcase(s, tc);
  tc = tcase_create("gguf");
  tcase_add_test(tc, gguf_sweep);
  suite_add_tcase(s, tc);
  tc = tcase_create("kernel");
  tcase_add_test(tc, kernel_sweep);
  suite_add_tcase(s, tc);
  return xk_check_run(s);
}
