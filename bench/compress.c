/* Compression time of one xKV group (W = 4 layers, keys and values) through
 * the public cache API, vs an exact truncated SVD of the same matrices in
 * the same run (LAPACK on OpenBLAS, all cores). xKV runs twice, forced
 * through each route of xkv_cache_config.svd: xkv (XKV_SVD_RANDOMIZED, the
 * columns xkv_*, which bench/gpu/compress_vs_torch.py reads) and xkv_gram
 * (XKV_SVD_GRAM); auto_k/auto_v say which one XKV_SVD_AUTO picks here
 * (xkv_cache_gram_cheaper). Baselines:
 * - gram: X^T X (cblas_ssyrk), its eigenvectors (LAPACKE_ssyevd), A = X V_r;
 *   what a careful CPU user does with a tall matrix;
 * - gesdd: LAPACKE_sgesdd, thin U, S, V^T of X; SmolLM2 shapes only, to keep
 *   the run short (its bidiagonalization is half BLAS-2, O(L F^2)).
 * The xKV time is the prefill call of the group's last layer (which stages
 * that layer and compresses the group) minus the median time of the other
 * layers' prefill calls (staging only). Inputs: X [L, W*Hkv*d] = G diag(s)
 * H^T + noise, G, H Gaussian with unit-norm columns, s_i = 1/i for i <= F/2
 * over a noise floor at half the last s_i: a decaying spectrum like real
 * keys, at a size no captured cache has here. Accuracy: ||X - A B||_F /
 * ||X||_F of the factors each xKV route stored (f16), of the LAPACK Gram
 * route (f32), and the
 * optimum from the exact singular values (gesdd) when that ran.
 * usage: compress [--device cpu|cuda] [--big] [--reps N] [--xkv-only]
 *                 [--only SHAPE-L] [--dump DIR] [-o out.csv]
 * Times are medians of --reps runs (default 3 for SmolLM2, 1 for Llama:
 * about 2 minutes in all on 2 cores). --big adds Llama-3.1-8B at 32K (over
 * 2 more minutes here); --xkv-only skips the LAPACK baselines (the GPU
 * script measures its own); --only runs the shapes whose
 * "name-L" contains the text (e.g. llama3.1-8b-32768); --dump writes each X as
 * raw f32 [L, F] (DIR/<shape>-L<L>-{k,v}.f32) for
 * bench/gpu/compress_vs_torch.py. */
#include "../runtime/xkv_cache_int.h"
#include "xkv.h"
#include "xkv_ref.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  const char *name;
  int hkv, d, W, L, rk, rv;
  int gesdd; /* run the full SVD baseline */
  int big;   /* only with --big */
  int reps;  /* default repetitions (medians): fewer for the slow shapes */
} shape;

static const shape shapes[] = {
    {"smollm2-135m", 3, 64, 4, 8192, 192, 192, 1, 0, 3},
    {"smollm2-135m", 3, 64, 4, 32768, 192, 192, 1, 0, 3},
    {"llama3.1-8b", 8, 128, 4, 8192, 384, 576, 0, 0, 1},
    {"llama3.1-8b", 8, 128, 4, 32768, 384, 576, 0, 1, 1},
};

typedef struct {
  xkv_context *ctx;
  int reps; /* 0: the shape's default */
  int xkv_only;
  const char *dump, *only;
} opts;

/* per matrix (K or V) results */
typedef struct {
  double gram_ms, gram_err, gesdd_ms, opt_err;
} mat_res;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void die(const char *what, const char *why) {
  fprintf(stderr, "compress: %s: %s\n", what, why);
  exit(1);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p)
    die("malloc", "out of memory");
  return p;
}

static double median(double *v, int n) {
  for (int i = 0; i < n; i++) /* insertion sort */
    for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
      double t = v[j];
      v[j] = v[j - 1];
      v[j - 1] = t;
    }
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double sumsq(const float *x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += (double)x[i] * x[i];
  return s;
}

/* X [L, F], see the header comment */
static float *gen(int L, int F, uint64_t seed) {
  int m = F / 2;
  float *g = xmalloc((size_t)L * m * 4), *h = xmalloc((size_t)F * m * 4);
  float *x = xmalloc((size_t)L * F * 4);
  double gs = 1 / sqrt(L), hs = 1 / sqrt(F), noise = 0.5 / m / sqrt(L);
  for (size_t i = 0; i < (size_t)L * m; i++)
    g[i] = (float)(xkv_ref_gauss(&seed) * gs / (double)(i % m + 1));
  for (size_t i = 0; i < (size_t)F * m; i++)
    h[i] = (float)(xkv_ref_gauss(&seed) * hs);
  for (size_t i = 0; i < (size_t)L * F; i++)
    x[i] = (float)(xkv_ref_gauss(&seed) * noise);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, F, m, 1, g, m, h, m,
              1, x, F);
  free(g);
  free(h);
  return x;
}

/* layer l's columns of X [L, W * hd] into device memory */
static float *upload(xkv_context *ctx, const float *x, int L, int F, int hd,
                     int l) {
  float *blk = xmalloc((size_t)L * hd * 4), *dev;
  for (int i = 0; i < L; i++)
    memcpy(blk + (size_t)i * hd, x + (size_t)i * F + (size_t)l * hd,
           (size_t)hd * 4);
  if (xkv_alloc(ctx, (size_t)L * hd * 4, (void **)&dev) ||
      xkv_copy_h2d(ctx, dev, blk, (size_t)L * hd * 4, NULL))
    die("upload", xkv_last_error(ctx));
  free(blk);
  return dev;
}

/* storage-dtype device factor -> host f32 */
static float *download(xkv_cache *c, const void *dev, size_t n) {
  void *raw = xmalloc(n * c->elem);
  float *f = xmalloc(n * 4);
  if (xkv_copy_d2h(c->ctx, raw, dev, n * c->elem, NULL))
    die("download", xkv_last_error(c->ctx));
  xkv_cache_from_storage(c, raw, f, n);
  free(raw);
  return f;
}

/* ||X - A B||_F^2 of the stored factors (A [L, r] shared, B_l [Hkv, r, d]).
 * One sgemm per head: xkv_ref_reconstruct's scalar double loop would take
 * minutes at these sizes. */
static double factor_err2(xkv_cache *c, const float *x, int F, int values) {
  const xkv_group *g = &c->groups[0];
  int L = g->L, r = values ? g->rank_v : g->rank_k;
  int hk = c->cfg.n_kv_heads, d = c->cfg.head_dim, hd = hk * d;
  float *a = download(c, values ? g->av : g->ak, (size_t)L * r);
  float *rec = xmalloc((size_t)L * hd * 4);
  double e2 = 0;
  for (int l = 0; l < c->cfg.n_layers; l++) {
    const xkv_layer *y = &c->layers[l];
    float *b = download(c, values ? y->bv : y->bk, (size_t)hd * r);
    for (int h = 0; h < hk; h++)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, d, r, 1, a, r,
                  b + (size_t)h * r * d, d, 0, rec + (size_t)h * d, hd);
    for (int i = 0; i < L; i++)
      for (int j = 0; j < hd; j++) {
        double t = (double)rec[(size_t)i * hd + j] -
                   x[(size_t)i * F + (size_t)l * hd + j];
        e2 += t * t;
      }
    free(b);
  }
  free(a);
  free(rec);
  return e2;
}

/* ms to compress the group through route m (median over reps); the last
 * rep's factor errors into err[0] (keys) and err[1] (values); stage_ms:
 * staging */
static double time_xkv(const opts *o, const shape *s, xkv_svd_method m,
                       int reps, const float *xk, const float *xv, double *err,
                       double *stage_ms) {
  int hd = s->hkv * s->d, F = s->W * hd;
  float *dk[8], *dv[8];
  for (int l = 0; l < s->W; l++) {
    dk[l] = upload(o->ctx, xk, s->L, F, hd, l);
    dv[l] = upload(o->ctx, xv, s->L, F, hd, l);
  }
  xkv_cache_config f = {.n_layers = s->W,
                        .n_heads = s->hkv,
                        .n_kv_heads = s->hkv,
                        .head_dim = s->d,
                        .max_tokens = s->L,
                        .group = s->W,
                        .policy = XKV_RANK_FIXED,
                        .rank_k = s->rk,
                        .rank_v = s->rv,
                        .dtype = XKV_F16,
                        .rope_theta = 10000,
                        .seed = 1,
                        .svd = m};
  double comp[16], stage[16 * 7];
  int ns = 0;
  for (int rep = 0; rep < reps; rep++) {
    xkv_cache *c;
    if (xkv_cache_create(o->ctx, &f, &c))
      die("xkv_cache_create", xkv_last_error(o->ctx));
    double t_last = 0;
    for (int l = 0; l < s->W; l++) {
      double t0 = now_ms();
      if (xkv_cache_prefill(c, l, dk[l], dv[l], s->L) || xkv_sync(o->ctx))
        die("xkv_cache_prefill", xkv_last_error(o->ctx));
      double t = now_ms() - t0;
      if (l < s->W - 1)
        stage[ns++] = t;
      else
        t_last = t;
    }
    comp[rep] = t_last;
    if (rep == reps - 1) {
      double nk = sumsq(xk, (size_t)s->L * F), nv = sumsq(xv, (size_t)s->L * F);
      err[0] = sqrt(factor_err2(c, xk, F, 0) / nk);
      err[1] = sqrt(factor_err2(c, xv, F, 1) / nv);
    }
    xkv_cache_destroy(c);
  }
  *stage_ms = median(stage, ns);
  for (int l = 0; l < s->W; l++) {
    xkv_free(o->ctx, dk[l]);
    xkv_free(o->ctx, dv[l]);
  }
  return median(comp, reps) - *stage_ms;
}

/* Gram route: ms and the relative error ||X - X V_r V_r^T|| / ||X|| =
 * sqrt(1 - ||A||^2 / ||X||^2) (V_r orthonormal) */
static double time_gram(const float *x, int L, int F, int r, double *err) {
  /* ssyevd's workspace query returns its size as a float, which rounds
   * below the minimum at F = 4096 (LAPACK < 3.12): sizes from its docs */
  int lwork = 1 + 6 * F + 2 * F * F, liwork = 3 + 5 * F;
  float *gm = xmalloc((size_t)F * F * 4), *w = xmalloc((size_t)F * 4);
  float *a = xmalloc((size_t)L * r * 4), *work = xmalloc((size_t)lwork * 4);
  int *iwork = xmalloc((size_t)liwork * sizeof *iwork);
  double t0 = now_ms();
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, F, L, 1, x, F, 0, gm, F);
  /* row-major upper = column-major lower: no transposed copy; eigenvector
   * j (ascending eigenvalues) is then row j of gm */
  if (LAPACKE_ssyevd_work(LAPACK_COL_MAJOR, 'V', 'L', F, gm, F, w, work, lwork,
                          iwork, liwork))
    die("LAPACKE_ssyevd", "did not converge");
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, r, F, 1, x, F,
              gm + (size_t)(F - r) * F, F, 0, a, r);
  double ms = now_ms() - t0;
  double all = sumsq(x, (size_t)L * F), kept = sumsq(a, (size_t)L * r);
  *err = sqrt(fmax(0, all - kept) / all);
  free(gm);
  free(w);
  free(a);
  free(work);
  free(iwork);
  return ms;
}

/* thin SVD: ms and the optimal rank-r relative error */
static double time_gesdd(const float *x, int L, int F, int r, double *err) {
  int mn = L < F ? L : F;
  float *a = xmalloc((size_t)L * F * 4), *sv = xmalloc((size_t)mn * 4);
  float *u = xmalloc((size_t)L * mn * 4), *vt = xmalloc((size_t)mn * F * 4);
  memcpy(a, x, (size_t)L * F * 4);
  double t0 = now_ms();
  if (LAPACKE_sgesdd(LAPACK_ROW_MAJOR, 'S', L, F, a, F, sv, u, mn, vt, F))
    die("LAPACKE_sgesdd", "did not converge");
  double ms = now_ms() - t0, tail = 0, all = 0;
  for (int i = 0; i < mn; i++) {
    all += (double)sv[i] * sv[i];
    tail += i >= r ? (double)sv[i] * sv[i] : 0;
  }
  *err = sqrt(tail / all);
  free(a);
  free(sv);
  free(u);
  free(vt);
  return ms;
}

static void dump(const char *dir, const shape *s, const char *kv,
                 const float *x, int F) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s-L%d-%s.f32", dir, s->name, s->L, kv);
  FILE *fp = fopen(path, "wb");
  if (!fp || fwrite(x, 4, (size_t)s->L * F, fp) != (size_t)s->L * F ||
      fclose(fp))
    die(path, "cannot write");
}

int main(int argc, char **argv) {
  opts o = {0};
  const char *dev = "cpu", *out = NULL;
  int big = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--big"))
      big = 1;
    else if (!strcmp(a, "--xkv-only"))
      o.xkv_only = 1;
    else if (v && !strcmp(a, "--device"))
      dev = argv[++i];
    else if (v && !strcmp(a, "--reps") && atoi(v) > 0 && atoi(v) <= 16)
      o.reps = atoi(argv[++i]);
    else if (v && !strcmp(a, "--only"))
      o.only = argv[++i];
    else if (v && !strcmp(a, "--dump"))
      o.dump = argv[++i];
    else if (v && !strcmp(a, "-o"))
      out = argv[++i];
    else
      die(a, "usage: compress [--device cpu|cuda] [--big] [--reps 1..16] "
             "[--xkv-only] [--only SHAPE-L] [--dump DIR] [-o out.csv]");
  }
  if (xkv_open(&o.ctx, dev))
    die(dev, xkv_last_error(o.ctx));
  xkv_device_info di;
  xkv_device_get_info(o.ctx, &di);
  char date[16], path[256], devname[sizeof di.name];
  time_t now = time(NULL);
  strftime(date, sizeof date, "%Y-%m-%d", localtime(&now));
  snprintf(devname, sizeof devname, "%s",
           di.kind == XKV_DEVICE_CUDA ? di.name : "cpu");
  for (char *p = devname; *p; p++)
    *p = *p == ' ' ? '_' : *p;
  if (out)
    snprintf(path, sizeof path, "%s", out);
  else
    snprintf(path, sizeof path, "bench/results/compress-%s-%s.csv", devname,
             date);
  FILE *csv = fopen(path, "w");
  if (!csv)
    die(path, "cannot write");
  fprintf(csv, "device,units,blas_threads,shape,L,F,rank_k,rank_v,reps,"
               "xkv_ms,xkv_gram_ms,auto_k,auto_v,stage_ms,gram_ms,gesdd_ms,"
               "xkv_gram_over_xkv,gram_over_xkv,gesdd_over_xkv,xkv_err_k,"
               "xkv_err_v,xkv_gram_err_k,xkv_gram_err_v,gram_err_k,gram_err_v,"
               "opt_err_k,opt_err_v\n");
  printf("%-13s %6s %5s %9s %9s %9s %9s %6s %6s %6s  %-30s %-30s\n", "shape",
         "L", "F", "xKV ms", "xKVg ms", "gram ms", "gesdd ms", "xKVg/x",
         "gram/x", "gesd/x", "err K: xKV xKVg gram opt",
         "err V: xKV xKVg gram opt");
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  int nsh = (int)(sizeof shapes / sizeof *shapes);
  for (int si = 0; si < nsh; si++) {
    const shape *s = &shapes[si];
    char id[64];
    snprintf(id, sizeof id, "%s-%d", s->name, s->L);
    if (o.only ? !strstr(id, o.only) : s->big && !big)
      continue;
    int F = s->W * s->hkv * s->d;
    float *x[2] = {gen(s->L, F, 2 * si + 1), gen(s->L, F, 2 * si + 2)};
    if (o.dump) {
      dump(o.dump, s, "k", x[0], F);
      dump(o.dump, s, "v", x[1], F);
    }
    double xerr[2] = {NAN, NAN}, gerr[2] = {NAN, NAN}, stage_ms, gstage;
    int reps = o.reps ? o.reps : s->reps;
    double xkv_ms =
        time_xkv(&o, s, XKV_SVD_RANDOMIZED, reps, x[0], x[1], xerr, &stage_ms);
    double xg_ms =
        time_xkv(&o, s, XKV_SVD_GRAM, reps, x[0], x[1], gerr, &gstage);
    const char *route[2];
    for (int k = 0; k < 2; k++)
      route[k] = xkv_cache_gram_cheaper(di.kind, di.units, (int)cores, s->L, F,
                                        s->W, k ? s->rv : s->rk)
                     ? "gram"
                     : "randomized";
    mat_res m[2] = {
        {.gram_ms = NAN, .gram_err = NAN, .gesdd_ms = NAN, .opt_err = NAN},
        {.gram_ms = NAN, .gram_err = NAN, .gesdd_ms = NAN, .opt_err = NAN}};
    for (int k = 0; k < 2 && !o.xkv_only; k++) {
      int r = k ? s->rv : s->rk;
      double tg[16], te[16];
      for (int rep = 0; rep < reps; rep++) {
        tg[rep] = time_gram(x[k], s->L, F, r, &m[k].gram_err);
        te[rep] = s->gesdd ? time_gesdd(x[k], s->L, F, r, &m[k].opt_err) : NAN;
      }
      m[k].gram_ms = median(tg, reps);
      m[k].gesdd_ms = median(te, reps);
    }
    double gram = m[0].gram_ms + m[1].gram_ms;
    double gesdd = m[0].gesdd_ms + m[1].gesdd_ms;
    printf("%-13s %6d %5d %9.1f %9.1f %9.1f %9.1f %6.2f %6.2f %6.2f  %.4f "
           "%.4f %.4f %.4f  %.4f %.4f %.4f %.4f\n",
           s->name, s->L, F, xkv_ms, xg_ms, gram, gesdd, xg_ms / xkv_ms,
           gram / xkv_ms, gesdd / xkv_ms, xerr[0], gerr[0], m[0].gram_err,
           m[0].opt_err, xerr[1], gerr[1], m[1].gram_err, m[1].opt_err);
    fprintf(csv,
            "%s,%d,%d,%s,%d,%d,%d,%d,%d,%.2f,%.2f,%s,%s,%.2f,%.2f,%.2f,%.3f,"
            "%.3f,%.3f,%.5f,%.5f,%.5f,%.5f,%.5f,%.5f,%.5f,%.5f\n",
            devname, di.units, openblas_get_num_threads(), s->name, s->L, F,
            s->rk, s->rv, reps, xkv_ms, xg_ms, route[0], route[1], stage_ms,
            gram, gesdd, xg_ms / xkv_ms, gram / xkv_ms, gesdd / xkv_ms, xerr[0],
            xerr[1], gerr[0], gerr[1], m[0].gram_err, m[1].gram_err,
            m[0].opt_err, m[1].opt_err);
    fflush(csv);
    fflush(stdout);
    free(x[0]);
    free(x[1]);
  }
  fclose(csv);
  printf("wrote %s (ms: one group, keys + values; xKV: randomized SVD, "
         "xKVg: xKV's Gram route; y/x: time over xKV's; err: ||X - A B||_F / "
         "||X||_F, opt = exact truncated SVD)\n",
         path);
  xkv_close(o.ctx);
  return 0;
}
