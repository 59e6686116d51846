#include "measure.h"

#include "text.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double xk_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t xk_llc_bytes(void) {
  size_t kb = 0;
  char *t = xk_read_file("/sys/devices/system/cpu/cpu0/cache/index3/size", NULL,
                         NULL);
  if (t)
    kb = (size_t)strtoul(t, NULL, 10);
  free(t);
  return (kb ? kb : 32768) * 1024;
}

int xk_cpu_rounds(int rounds, double us) {
  if (us > 0 && XK_MIN_TIMED_S * 1e6 / us > rounds)
    rounds = XK_MIN_TIMED_S * 1e6 / us < XK_MAX_ROUNDS
                 ? (int)(XK_MIN_TIMED_S * 1e6 / us)
                 : XK_MAX_ROUNDS;
  return rounds;
}

double xk_rel_err(const double *x, const double *ref, size_t n) {
  double e = 0, m = 0;
  for (size_t i = 0; i < n; i++) {
    if (isnan(x[i]) || isinf(x[i]))
      return INFINITY;
    e = fmax(e, fabs(x[i] - ref[i]));
    m = fmax(m, fabs(ref[i]));
  }
  return e / (m > 0 ? m : 1);
}

const char *xk_gate(const double *out, const double *ref, size_t n, double tol,
                    const char *against, char *why, size_t nwhy) {
  double e = xk_rel_err(out, ref, n);
  if (e <= tol)
    return "ok";
  snprintf(why, nwhy, "output differs from %s: rel. error %.3g > %.3g%s",
           against, e, tol, isinf(e) ? " (NaN or unwritten elements)" : "");
  return "wrong";
}

int xk_samples_add(xk_samples *s, double us) {
  double *t = realloc(s->t, (size_t)(s->nt + 1) * sizeof *t);
  if (!t)
    return -1;
  s->t = t;
  s->t[s->nt++] = us;
  return 0;
}

static int cmp_dbl(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

void xk_samples_stats(xk_samples *s) {
  int n = s->nt;
  double *t = n ? malloc((size_t)n * sizeof *t) : NULL;
  if (!t)
    return;
  memcpy(t, s->t, (size_t)n * sizeof *t);
  qsort(t, (size_t)n, sizeof *t, cmp_dbl);
  s->median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
  s->spread = (t[(3 * (n - 1)) / 4] - t[(n - 1) / 4]) / s->median;
  free(t);
}

int xk_time_rounds(xk_samples *s, const int *idx, int n, int rounds,
                   xk_run_fn run, void *ctx,
                   void (*fastest)(void *ctx, int round, int rounds, int i,
                                   double us)) {
  int best = -1;
  double best_us = 0;
  for (int r = 0; r < rounds; r++) {
    for (int j = 0; j < n; j++) {
      int i = idx[(j + r) % n];
      double us;
      if (!s[i].ok)
        continue;
      if (run(ctx, i, &us)) {
        s[i].ok = 0;
        continue;
      }
      if (xk_samples_add(&s[i], us))
        return -1;
      if (best < 0 || us < best_us) {
        best = i;
        best_us = us;
      }
    }
    if (fastest)
      fastest(ctx, r + 1, rounds, best, best_us);
  }
  for (int j = 0; j < n; j++)
    if (s[idx[j]].ok)
      xk_samples_stats(&s[idx[j]]);
  return 0;
}

int xk_time_finalists(xk_samples *s, const int *idx, int n, int rounds,
                      xk_run_fn run, void *ctx,
                      void (*fastest)(void *ctx, int round, int rounds, int i,
                                      double us)) {
  int fin[XK_FINALISTS], nf = 0;
  /* selection of the XK_FINALISTS smallest medians, earlier first on ties */
  for (int k = 0; k < XK_FINALISTS; k++) {
    int b = -1;
    for (int j = 0; j < n; j++) {
      int i = idx[j], taken = 0;
      for (int f = 0; f < nf; f++)
        taken |= fin[f] == i;
      if (!taken && s[i].ok && s[i].nt && (b < 0 || s[i].median < s[b].median))
        b = i;
    }
    if (b >= 0)
      fin[nf++] = b;
  }
  return nf > 1 ? xk_time_rounds(s, fin, nf, rounds, run, ctx, fastest) : 0;
}

int xk_pick(const xk_samples *s, int n, int *runner) {
  int w = -1;
  for (int i = 0; i < n; i++) {
    if (!s[i].ok || !(s[i].median > 0))
      continue;
    if (w < 0) {
      w = i;
      continue;
    }
    double noise =
        fmin(XK_NOISE_CAP,
             fmax(XK_NOISE_FLOOR, 0.5 * fmin(s[i].spread, s[w].spread)));
    if (s[i].median < s[w].median * (1 - noise))
      w = i;
  }
  *runner = -1;
  for (int i = 0; w >= 0 && i < n; i++)
    if (i != w && s[i].ok && s[i].median > 0 &&
        (*runner < 0 || s[i].median < s[*runner].median))
      *runner = i;
  return w;
}

void xk_tune_header_print(FILE *o) {
  fprintf(o, "%-18s %-28s %10s %10s %7s %6s %6s  %s\n", "kernel", "key",
          "default_us", "tuned_us", "speedup", "spread", "margin", "config");
}

void xk_tune_row_print(FILE *o, const xk_tune_row *r) {
  if (r->resumed) {
    fprintf(o, "%-18s %-28s resumed (tuned %.1f us)\n", r->kernel, r->key,
            r->tuned_us);
    return;
  }
  fprintf(o, "%-18s %-28s %10.1f %10.1f %6.2fx %5.1f%% %5.1f%%  %s", r->kernel,
          r->key, r->default_us, r->tuned_us, r->default_us / r->tuned_us,
          100 * r->spread, 100 * r->margin, r->config);
  if (r->gflops > 0)
    fprintf(o, "  (%.1f GFLOP/s)", r->gflops);
  fprintf(o,
          "  [%d ok, %d wrong, %d infeasible, %d failed, %d skipped; %.1f "
          "s]\n",
          r->n_ok, r->n_wrong, r->n_infeasible, r->n_failed, r->n_skipped,
          r->seconds);
}

void xk_tune_totals_print(FILE *o, const xk_tune_row *rows, int n) {
  int keys = 0, ok = 0, wrong = 0, inf = 0, failed = 0, skipped = 0, ns = 0;
  double secs = 0, logsum = 0, lo = INFINITY, hi = 0;
  for (int i = 0; i < n; i++) {
    const xk_tune_row *r = &rows[i];
    if (r->resumed)
      continue;
    keys++;
    ok += r->n_ok;
    wrong += r->n_wrong;
    inf += r->n_infeasible;
    failed += r->n_failed;
    skipped += r->n_skipped;
    secs += r->seconds;
    if (r->default_us > 0 && r->tuned_us > 0) {
      double x = r->default_us / r->tuned_us;
      logsum += log(x);
      lo = fmin(lo, x);
      hi = fmax(hi, x);
      ns++;
    }
  }
  fprintf(o,
          "total: %d keys, configs %d ok, %d wrong, %d infeasible, %d "
          "failed, %d skipped; %.1f s tuning",
          keys, ok, wrong, inf, failed, skipped, secs);
  if (ns)
    fprintf(o, "; speedup over the default: geomean %.2fx (%.2fx .. %.2fx)",
            exp(logsum / ns), lo, hi);
  fprintf(o, "\n");
}

int xk_tune_rows_json(const char *path, const char *device, const char *fp,
                      const xk_tune_row *rows, int n) {
  FILE *o = fopen(path, "w");
  if (!o)
    return -1;
  fprintf(o, "{\"device\": \"%s\", \"fingerprint\": \"%s\", \"rows\": [\n",
          device, fp);
  for (int i = 0; i < n; i++) {
    const xk_tune_row *r = &rows[i];
    fprintf(o,
            "  {\"kernel\": \"%s\", \"key\": \"%s\", \"resumed\": %s, "
            "\"default_us\": %.3f, \"tuned_us\": %.3f, \"spread\": %.4f, "
            "\"margin\": %.4f, \"config\": \"%s\", \"gflops\": %.2f, "
            "\"ok\": %d, \"wrong\": %d, \"infeasible\": %d, \"failed\": %d, "
            "\"skipped\": %d, \"seconds\": %.2f}%s\n",
            r->kernel, r->key, r->resumed ? "true" : "false", r->default_us,
            r->tuned_us, r->spread, r->margin, r->config, r->gflops, r->n_ok,
            r->n_wrong, r->n_infeasible, r->n_failed, r->n_skipped, r->seconds,
            i + 1 < n ? "," : "");
  }
  fprintf(o, "]}\n");
  return fclose(o);
}
