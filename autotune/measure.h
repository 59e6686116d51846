/* What the two tuners share about timing and choosing: xkv-tune (compiles
 * candidates from kernels.xk) and xkv-tune-run (times the variants of a
 * built artifact directory, on a machine where nothing can be compiled).
 * Both must pick winners by the same rule and report the same table, so a
 * measured GPU cache and a CPU or modeled one read alike. */
#ifndef XK_TUNE_MEASURE_H
#define XK_TUNE_MEASURE_H

#include <stddef.h>
#include <stdio.h>

#define XK_FINALISTS 3
#define XK_NOISE_FLOOR 0.02 /* relative: below this, two medians tie */
#define XK_NOISE_CAP 0.25
#define XK_MIN_TIMED_S 0.1 /* CPU: least run time per candidate, s */
#define XK_MAX_ROUNDS 40

/* One line of the summary table. */
typedef struct {
  char kernel[64], key[160], config[256];
  double default_us, tuned_us; /* 0 when not measured */
  double spread, margin;
  int n_ok, n_wrong, n_infeasible, n_failed, n_skipped, resumed;
  double seconds; /* tuning time of this key */
  double gflops;  /* of the tuned config, 0 when not a FLOP kernel */
} xk_tune_row;

/* A candidate's timing samples (us) and their summary. `ok` is 0 once a
 * run failed or the candidate is out of the race; only ok candidates with
 * a median count. */
typedef struct {
  double *t;
  int nt, ok;
  double median, spread; /* spread: interquartile range / median */
} xk_samples;

double xk_now(void); /* monotonic seconds */
/* The last-level cache's size (32 MiB when /sys does not say): the CPU
 * timers write twice that before each run, so inputs come from memory. */
size_t xk_llc_bytes(void);
/* CPU timing rounds for a kernel whose one run took us: at least `rounds`,
 * more for short kernels (a scheduler hiccup is then one sample among many
 * instead of the median), at most XK_MAX_ROUNDS. */
int xk_cpu_rounds(int rounds, double us);

/* max |x - ref| / max |ref|; NaN or inf anywhere (an element a variant did
 * not write, poisoned) is inf. */
double xk_rel_err(const double *x, const double *ref, size_t n);

/* The correctness gate: "ok" when out matches ref within tol, else
 * "wrong" with why saying by how much (and that NaN means unwritten
 * elements); `against` names the reference ("the default config's"). */
const char *xk_gate(const double *out, const double *ref, size_t n, double tol,
                    const char *against, char *why, size_t nwhy);

/* Appends one sample; -1 out of memory. */
int xk_samples_add(xk_samples *s, double us);
/* median and spread of the samples so far (nothing when none) */
void xk_samples_stats(xk_samples *s);

/* Runs candidate `i` once, its time in *us; nonzero when it failed (the
 * callee records why), and the candidate leaves the race. */
typedef int (*xk_run_fn)(void *ctx, int i, double *us);

/* Interleaved rounds over the candidates idx[0..n): each round visits them
 * all, starting one further along, so drift hits every candidate alike;
 * the stats are updated at the end. `fastest` (may be NULL) is told after
 * each round which candidate ran fastest so far, for a progress line. */
int xk_time_rounds(xk_samples *s, const int *idx, int n, int rounds,
                   xk_run_fn run, void *ctx,
                   void (*fastest)(void *ctx, int round, int rounds, int i,
                                   double us));
/* Re-times the XK_FINALISTS fastest of idx[0..n) together for `rounds`
 * more rounds, the samples pooled. */
int xk_time_finalists(xk_samples *s, const int *idx, int n, int rounds,
                      xk_run_fn run, void *ctx,
                      void (*fastest)(void *ctx, int round, int rounds, int i,
                                      double us));

/* The winner among s[0..n) (declaration order, the default first): the
 * fastest median, but a later candidate must beat an earlier one by more
 * than the noise to displace it, so ties go to declaration order. The noise
 * is half the smaller of the two spreads (a candidate timed in a quiet
 * moment is not penalized for the other's bad luck), between
 * XK_NOISE_FLOOR and XK_NOISE_CAP. -1 when none is ok; *runner: the
 * fastest other ok candidate, or -1. */
int xk_pick(const xk_samples *s, int n, int *runner);

/* The summary table: header, one line per row, and the rows as JSON. */
void xk_tune_header_print(FILE *o);
void xk_tune_row_print(FILE *o, const xk_tune_row *r);
/* The totals under the table: keys, configs by outcome, tuning time, and
 * the geometric mean and range of tuned-over-default speedups. */
void xk_tune_totals_print(FILE *o, const xk_tune_row *rows, int n);
int xk_tune_rows_json(const char *path, const char *device, const char *fp,
                      const xk_tune_row *rows, int n);

#endif
