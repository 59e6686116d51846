/* bench/tune: xkv-tune on this CPU, per kernel and key: the default
 * config, the tuned choice (xkv-tune's pick: fastest, ties within noise to
 * declaration order), the exhaustive best of the whole space (here every
 * host-relevant config is swept, so tuned vs best shows what the tie rule
 * gives away), a run limited to the first --max-configs candidates, the
 * tuning time, and for the GEMMs OpenBLAS sgemm at the same size in the
 * same process (median of runs with caches flushed, its own threads).
 *
 *   bench/tune [-o CACHE.json] [--sizes 256,512,...] [--rounds N]
 *
 * Merges the records into CACHE (tune/ for the committed one) and writes
 * bench/results/tune-cpu-DATE.csv. Set OPENBLAS_THREAD_TIMEOUT (e.g. 20) so
 * OpenBLAS's idle spinning does not slow the kernels timed after it. */
#include "tune.h"
#include "results_file.h"
#include "tune_write.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* median us of cblas_sgemm M=N=K=n, caches flushed before each run */
static double blas_us(int n, int runs) {
  float *a = malloc(sizeof(float) * (size_t)n * n),
        *b = malloc(sizeof(float) * (size_t)n * n),
        *c = malloc(sizeof(float) * (size_t)n * n);
  size_t fl = 64u << 20;
  unsigned char *flush = malloc(fl);
  double t[32], med = 0;
  if (a && b && c && flush) {
    for (size_t i = 0; i < (size_t)n * n; i++)
      a[i] = b[i] = (float)(i % 7) / 7.0f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b,
                n, 0, c, n);
    for (int r = 0; r < runs; r++) {
      memset(flush, r, fl);
      double t0 = now();
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n,
                  b, n, 0, c, n);
      t[r] = (now() - t0) * 1e6;
    }
    qsort(t, (size_t)runs, sizeof *t, cmp);
    med = t[runs / 2];
  }
  free(a);
  free(b);
  free(c);
  free(flush);
  return med;
}

/* the fastest ok record of kernel at key M=N=K=n in c */
static double best_us(const rt_tune_cache *c, const char *kernel, int n) {
  double best = 0;
  for (int i = 0; i < c->n; i++) {
    const rt_tune_record *r = &c->r[i];
    if (strcmp(r->kernel, kernel) || strcmp(r->status, "ok") ||
        r->key[0].value != n)
      continue;
    if (!best || r->time_us < best)
      best = r->time_us;
  }
  return best;
}

int main(int argc, char **argv) {
  const char *out = NULL, *sizes = "256,512,1024,2048";
  int rounds = 5, limited = 9;
  for (int i = 1; i + 1 < argc; i += 2)
    if (!strcmp(argv[i], "-o"))
      out = argv[i + 1];
    else if (!strcmp(argv[i], "--sizes"))
      sizes = argv[i + 1];
    else if (!strcmp(argv[i], "--rounds"))
      rounds = atoi(argv[i + 1]);
  xk_diag d;
  xk_tune_opts o = {.device = "cpu", .rounds = rounds};
  xk_tune_opts ol = o;
  ol.max_configs = limited;
  xk_tune_session *s = NULL, *sl = NULL;
  if (xk_tune_open(XK_SRC "/kernels.xk", &o, &s, &d) ||
      xk_tune_open(XK_SRC "/kernels.xk", &ol, &sl, &d)) {
    fprintf(stderr, "tune: %s\n", d.msg);
    return 1;
  }
  char path[512], date[11];
  FILE *csv = xk_bench_results_open("tune-cpu", "csv", path, sizeof path, date);
  if (!csv) {
    fprintf(stderr, "tune: cannot write %s\n", path);
    return 1;
  }
  printf("bench/tune on %s, %s. MEASURED on a shared machine: other jobs "
         "were running, so times are noisy.\n",
         xk_tune_fingerprint(s), date);
  fprintf(csv, "kernel,n,default_us,tuned_us,best_us,limited_us,blas_us,"
               "tuned_vs_best,tuned_gflops,blas_gflops,tuned_vs_blas,"
               "tune_s,limited_s,config\n");
  printf("%-9s %5s %10s %10s %10s %10s %10s %6s %7s %7s %6s  %s\n", "kernel",
         "n", "default", "tuned", "best", "first9", "openblas", "t/best",
         "GF/s", "blasGF", "t/blas", "tuned config");
  rt_tune_cache *all = calloc(1, sizeof *all);
  static const char *const kernels[] = {"gemm_f32", "gemm_f16"};
  int rc = 0;
  for (int ki = 0; ki < 2 && !rc; ki++) {
    int k = xk_dsl_find(xk_tune_dsl(s), kernels[ki]);
    char *list = strdup(sizes), *save = NULL;
    for (char *p = strtok_r(list, ",", &save); p && !rc;
         p = strtok_r(NULL, ",", &save)) {
      int n = atoi(p);
      int64_t key[3] = {n, n, n};
      xk_tune_row row, rl;
      rt_tune_cache *lim = calloc(1, sizeof *lim);
      if (xk_tune_key(s, k, key, all, &row, &d) ||
          xk_tune_key(sl, k, key, lim, &rl, &d)) {
        fprintf(stderr, "tune: %s\n", d.msg);
        rc = 1;
      }
      if (!rc) {
        double best = best_us(all, kernels[ki], n);
        double blas = blas_us(n, 5), fl = 2.0 * n * n * n;
        printf("%-9s %5d %10.1f %10.1f %10.1f %10.1f %10.1f %6.3f %7.1f "
               "%7.1f %6.2f  %s  (tuning %.0f s, first-9 %.0f s)\n",
               kernels[ki], n, row.default_us, row.tuned_us, best, rl.tuned_us,
               blas, row.tuned_us / best, fl / (row.tuned_us * 1e3),
               fl / (blas * 1e3), blas / row.tuned_us, row.config, row.seconds,
               rl.seconds);
        fprintf(csv,
                "%s,%d,%.1f,%.1f,%.1f,%.1f,%.1f,%.4f,%.2f,%.2f,%.4f,"
                "%.1f,%.1f,%s\n",
                kernels[ki], n, row.default_us, row.tuned_us, best, rl.tuned_us,
                blas, row.tuned_us / best, fl / (row.tuned_us * 1e3),
                fl / (blas * 1e3), blas / row.tuned_us, row.seconds, rl.seconds,
                row.config);
        fflush(stdout);
        fflush(csv);
        /* after every key: an interrupted run keeps what it measured */
        if (out && xk_tune_merge_write(out, all, &d)) {
          fprintf(stderr, "tune: %s\n", d.msg);
          rc = 1;
        }
      }
      rt_tune_free(lim);
    }
    free(list);
  }
  fclose(csv);
  printf("tune: results in %s%s%s\n", path, out ? ", records in " : "",
         out ? out : "");
  rt_tune_free(all);
  xk_tune_close(s);
  xk_tune_close(sl);
  return rc;
}
