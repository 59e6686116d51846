/* xkv-tune's engine: sweeps one kernel's tune{} space at one key on a
 * device ("cpu": measured with the runtime's CPU device; "model:sm_90",
 * "model:sm_90-h200": sim counters and the perf model), and turns the
 * results into tune-cache records. */
#ifndef XK_TUNE_H
#define XK_TUNE_H

#include "diag.h"
#include "dsl.h"
#include "ir_hash.h"
#include "measure.h"
#include "tune_cache.h"

#include <stdio.h>

typedef struct {
  const char *device;
  double budget_s; /* wall-clock budget of the whole session; 0: none */
  int max_configs; /* candidates per key, default first; 0: all */
  int rounds;      /* timing rounds (interleaved); default 5 */
  int jobs;        /* model devices: candidates in this many forked
                      workers (compile, pruning, sim run); <= 1: serial */
  const rt_tune_cache *resume; /* skip keys it has a current winner for */
  const xk_constexpr *fix;     /* tune dims held at one value (-D) */
  int nfix;
  FILE *progress; /* NULL: quiet */
} xk_tune_opts;

#define XK_TUNE_MAX_JOBS 64

typedef struct xk_tune_session xk_tune_session;

int xk_tune_open(const char *xk_path, const xk_tune_opts *o,
                 xk_tune_session **out, xk_diag *d);
xk_dsl *xk_tune_dsl(xk_tune_session *s);
/* The device's fingerprint ("cpu:x86_64:...:cores=N", "model:sm_90:...") */
const char *xk_tune_fingerprint(const xk_tune_session *s);
/* Tunes kernel k at key values vals (one per spec key, in key order) and
 * appends the records to out (grids included). A failure of the whole key
 * (no inputs for the kernel, the default config wrong or failing) is an
 * error; single configs failing are records. */
int xk_tune_key(xk_tune_session *s, int k, const int64_t *vals,
                rt_tune_cache *out, xk_tune_row *row, xk_diag *d);
void xk_tune_close(xk_tune_session *s);

#endif
