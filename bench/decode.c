/* Decode attention time per step on this CPU (the runtime's CPU device,
 * embedded host kernels): xKV dense decode (rank-space values) and xKV with
 * selective reconstruction (SR, budget 2048 tokens, local window 64, 1%
 * outlier chunks) vs exact attention over the full f32 and f16 cache,
 * SmolLM2-135M shapes (9 query / 3 KV heads, d = 64, 30 layers, W = 4),
 * same run. SR is timed warm (the step repeats the previous query, so the
 * reuse cache holds every selected chunk: the steady state of a slowly
 * drifting selection) and cold (the reuse cache emptied before each step:
 * every selected chunk rebuilt); at L <= budget SR is the dense path.
 * Timing does not depend on the factors' values, so the bench fills one
 * group's factors with random values (runtime/xkv_cache_int.h) instead of
 * compressing 30 layers at 32K on a 2-core CPU; it times one layer and
 * reports x30.
 * usage: decode [rank_k rank_v [out.csv]]; XKV_BENCH_SHAPE=llama8b gives
 * Llama-3.1-8B shapes (32/8 heads, d = 128, 32 layers, rank 384/576);
 * XKV_BENCH_DEVICE (default cpu) picks the device, e.g. cuda on a lent GPU;
 * XKV_BENCH_LENGTHS="16384,32768" overrides the context lengths;
 * XKV_SR_SELECT=host times SR selecting on the host (the device path is
 * the default). */
#include "../runtime/xkv_cache_int.h"
#include "cli.h"
#include "results_file.h"
#include "xkv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void *rand_dev(xkv_context *ctx, size_t n, xkv_dtype dt,
                      uint64_t *seed) {
  size_t el = dt == XKV_F32 ? 4 : 2;
  void *h = malloc(n * el), *d;
  for (size_t i = 0; i < n; i++) {
    *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
    float f = (float)((double)(*seed >> 40) / (1 << 24) - 0.5);
    if (el == 4)
      ((float *)h)[i] = f;
    else {
      _Float16 x = (_Float16)f;
      memcpy((uint16_t *)h + i, &x, 2);
    }
  }
  if (xkv_alloc(ctx, n * el, &d) || xkv_copy_h2d(ctx, d, h, n * el, NULL))
    exit(1);
  free(h);
  return d;
}

typedef struct {
  int hq, hkv, d, layers, W, rk, rv;
} shape;

static void fail(xkv_cache *c) {
  fprintf(stderr, "decode: %s\n", xkv_last_error(c->ctx));
  exit(1);
}

/* ms per call of xkv_attention on layer 0, median of reps after a warm-up
 * call; cold: the SR reuse cache emptied before each */
static double time_attn(xkv_cache *c, const float *q, float *out, int pos,
                        int cold) {
  double best[9];
  if (xkv_attention(c, 0, q, pos, out) || xkv_sync(c->ctx))
    fail(c);
  for (int r = 0; r < 9; r++) {
    if (cold && c->layers[0].sr.lm && xkv_cache_sr_forget(c, 0))
      fail(c);
    double t0 = now_ms();
    if (xkv_attention(c, 0, q, pos, out) || xkv_sync(c->ctx))
      fail(c);
    best[r] = now_ms() - t0;
  }
  for (int i = 0; i < 9; i++) /* insertion sort for the median */
    for (int j = i; j > 0 && best[j] < best[j - 1]; j--) {
      double t = best[j];
      best[j] = best[j - 1];
      best[j - 1] = t;
    }
  return best[4];
}

static xkv_cache *make(xkv_context *ctx, const shape *s, int L, int exact,
                       int sr, xkv_dtype dt, uint64_t *seed) {
  xkv_cache_config f = {.n_layers = s->W,
                        .n_heads = s->hq,
                        .n_kv_heads = s->hkv,
                        .head_dim = s->d,
                        .max_tokens = L + 1,
                        .group = s->W,
                        .policy = XKV_RANK_FIXED,
                        .rank_k = s->rk,
                        .rank_v = s->rv,
                        .exact = exact,
                        .dtype = dt,
                        .rope_theta = 10000,
                        .sr = sr};
  xkv_cache *c;
  if (xkv_cache_create(ctx, &f, &c)) {
    fprintf(stderr, "decode: %s\n", xkv_last_error(ctx));
    exit(1);
  }
  size_t hd = (size_t)s->hkv * s->d;
  xkv_layer *y = &c->layers[0];
  y->prefilled = 1;
  y->len = L;
  if (exact) { /* the whole cache as exact tokens */
    c->groups[0].exact = 1;
    y->kx = rand_dev(ctx, (size_t)(L + 1) * hd, dt, seed);
    y->vx = rand_dev(ctx, (size_t)(L + 1) * hd, dt, seed);
    y->n_exact = L;
    c->groups[0].exact = 1; /* what prefill marks on an exact cache */
    return c;
  }
  xkv_group *g = &c->groups[0];
  g->L = L;
  g->rank_k = s->rk;
  g->rank_v = s->rv;
  g->ak = rand_dev(ctx, (size_t)L * s->rk, dt, seed);
  g->av = rand_dev(ctx, (size_t)L * s->rv, dt, seed);
  y->bk = rand_dev(ctx, hd * s->rk, dt, seed);
  y->bv = rand_dev(ctx, hd * s->rv, dt, seed);
  y->kx = rand_dev(ctx, hd, dt, seed);
  y->vx = rand_dev(ctx, hd, dt, seed);
  if (sr && xkv_cache_sr_prepare(c, 0, "decode: SR"))
    fail(c);
  return c;
}

/* Algorithmic bytes one layer's step moves, reading every operand once:
 * K and V, or the factors plus the f32 scores of the low-rank split kernel
 * (written, read and rewritten as probabilities, read for P^T A_v); for SR
 * the landmarks and their scores (written, softmaxed, read by the
 * selection), the exact rows attended, and when cold the factor rows of every
 * rebuilt chunk, B_k/B_v and the rows written. The split partials are
 * negligible (Hq x splits x d). */
static double step_bytes(const shape *s, const xkv_cache *c, int L, int exact,
                         int cold) {
  double hd = (double)s->hkv * s->d, el = c->elem;
  const xkv_sr_layer *sr = &c->layers[0].sr;
  if (exact)
    return 2 * L * hd * el;
  if (!sr->lm)
    return el * ((double)L + hd) * (s->rk + s->rv) + 4.0 * s->hq * L * 4;
  double rows = sr->nfix + (double)sr->nsel * XKV_SR_CHUNK;
  double b = sr->nsc * hd * el + 4.0 * s->hq * sr->nsc * 4 + 2 * rows * hd * el;
  if (cold) {
    double chunks = (double)s->hkv * sr->nsel;
    b += chunks * XKV_SR_CHUNK * (el * (s->rk + s->rv) + 2 * s->d * el) +
         hd * (s->rk + s->rv) * el;
  }
  return b;
}

/* the context lengths: XKV_BENCH_LENGTHS or 2K, 8K, 32K; 0 if malformed */
static int lengths(int *Ls) {
  const char *e = getenv("XKV_BENCH_LENGTHS");
  static const int dflt[] = {2048, 8192, 32768};
  if (!e || !*e) {
    memcpy(Ls, dflt, sizeof dflt);
    return 3;
  }
  int n = 0;
  for (char *end;; e = end + 1) {
    long L = strtol(e, &end, 10);
    if (end == e || L <= 0 || L > (1 << 24) || n == 16 || (*end && *end != ','))
      return 0;
    Ls[n++] = (int)L;
    if (!*end)
      return n;
  }
}

int main(int argc, char **argv) {
  eng_blas_spin_limit(argv); /* idle OpenBLAS threads made timings bimodal */
  const char *sh = getenv("XKV_BENCH_SHAPE");
  int llama = sh && !strcmp(sh, "llama8b");
  shape s = llama ? (shape){32, 8, 128, 32, 4, 384, 576}
                  : (shape){9, 3, 64, 30, 4, 96, 160};
  if (argc > 2) {
    s.rk = atoi(argv[1]);
    s.rv = atoi(argv[2]);
  }
  int Ls[16], nL = lengths(Ls);
  if (!nL) {
    fprintf(stderr, "decode: XKV_BENCH_LENGTHS must be positive integers "
                    "separated by commas\n");
    return 1;
  }
  xkv_context *ctx;
  const char *dev = getenv("XKV_BENCH_DEVICE");
  if (xkv_open(&ctx, dev && *dev ? dev : "cpu")) {
    fprintf(stderr, "decode: %s\n", xkv_last_error(ctx));
    return 1;
  }
  xkv_device_info di;
  xkv_device_get_info(ctx, &di);
  char stem[64], path[512];
  snprintf(stem, sizeof stem, "decode-%s",
           di.kind == XKV_DEVICE_CPU ? "cpu" : di.arch);
  snprintf(path, sizeof path, "%s", argc > 3 ? argv[3] : "");
  FILE *csv = path[0]
                  ? fopen(path, "w")
                  : xk_bench_results_open(stem, "csv", path, sizeof path, NULL);
  if (!csv) {
    fprintf(stderr, "decode: cannot write %s\n", path);
    return 1;
  }
  fprintf(csv, "device,threads,shape,L,path,rank_k,rank_v,ms_per_step,"
               "bytes_per_step,speedup_vs_f16,bytes_ratio_vs_f16,"
               "speedup_vs_f32,bytes_ratio_vs_f32\n");
  printf("%-6s %-16s %10s %10s %9s %9s %9s %9s\n", "L", "path", "ms/step",
         "MB/step", "x vs f16", "B vs f16", "x vs f32", "B vs f32");
  uint64_t seed = 1;
  size_t qb = (size_t)s.hq * s.d * 4;
  float *qh = malloc(qb), *q, *out;
  for (int i = 0; i < s.hq * s.d; i++)
    qh[i] = (float)(i % 7) * 0.1f;
  if (xkv_alloc(ctx, qb, (void **)&q) || xkv_alloc(ctx, qb, (void **)&out) ||
      xkv_copy_h2d(ctx, q, qh, qb, NULL)) {
    fprintf(stderr, "decode: %s\n", xkv_last_error(ctx));
    return 1;
  }
  for (int li = 0; li < nL; li++) {
    int L = Ls[li];
    struct {
      const char *name;
      int exact, sr, cold;
      xkv_dtype dt;
      double ms, bytes;
    } p[] = {{"exact_f32", 1, 0, 0, XKV_F32, 0, 0},
             {"exact_f16", 1, 0, 0, XKV_F16, 0, 0},
             {"xkv_f16", 0, 0, 0, XKV_F16, 0, 0},
             {"xkv_sr_f16", 0, 1, 0, XKV_F16, 0, 0},
             {"xkv_sr_cold_f16", 0, 1, 1, XKV_F16, 0, 0}};
    int np = (int)(sizeof p / sizeof *p);
    for (int k = 0; k < np; k++) {
      xkv_cache *c = make(ctx, &s, L, p[k].exact, p[k].sr, p[k].dt, &seed);
      p[k].ms = time_attn(c, q, out, L, p[k].cold) * s.layers;
      p[k].bytes = s.layers * step_bytes(&s, c, L, p[k].exact, p[k].cold);
      xkv_cache_destroy(c);
    }
    for (int k = 0; k < np; k++) {
      printf("%-6d %-16s %10.3f %10.2f %9.2f %9.2f %9.2f %9.2f\n", L, p[k].name,
             p[k].ms, p[k].bytes / 1e6, p[1].ms / p[k].ms,
             p[1].bytes / p[k].bytes, p[0].ms / p[k].ms,
             p[0].bytes / p[k].bytes);
      fprintf(csv, "%s,%d,%s,%d,%s,%d,%d,%.4f,%.0f,%.3f,%.3f,%.3f,%.3f\n",
              di.name, di.units, llama ? "llama3.1-8b" : "smollm2-135m", L,
              p[k].name, p[k].exact ? 0 : s.rk, p[k].exact ? 0 : s.rv, p[k].ms,
              p[k].bytes, p[1].ms / p[k].ms, p[1].bytes / p[k].bytes,
              p[0].ms / p[k].ms, p[0].bytes / p[k].bytes);
    }
  }
  fclose(csv);
  printf("wrote %s (per step = %d layers x one layer's attention; x: speedup, "
         "B: bytes moved, both as baseline / path)\n",
         path, s.layers);
  free(qh);
  xkv_free(ctx, q);
  xkv_free(ctx, out);
  xkv_close(ctx);
  return 0;
}
