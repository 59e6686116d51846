/* xkv-tune-run's engine: times the built variants of a kernel at one key
 * on a device that runs the artifacts (cpu: a host artifact directory,
 * cuda: an sm_XX one, from `xkvgen --variants all -o DIR`) and turns the
 * results into "measured" tune-cache records. It links only the runtime
 * (no LLVM, no Lua, no DSL): it is what runs on a lent GPU where nothing
 * can be built. The tune dims of a kernel are the constexprs, num_warps
 * and num_stages its built configurations differ in (key constexprs
 * aside); the default is what an untuned runtime launches for the key. */
#ifndef XK_TUNE_RUN_H
#define XK_TUNE_RUN_H

#include "diag.h"
#include "measure.h"
#include "tune_cache.h"

#include <stdint.h>
#include <stdio.h>

typedef struct {
  const char *device; /* "cpu" or "cuda" */
  int rounds;         /* CPU: interleaved timing rounds (default 5) */
  double budget_s;    /* stop starting candidates after; 0: none */
  double cand_s;      /* CUDA: time limit per candidate (default 0.25 s) */
  double spread_goal; /* CUDA: stop once IQR / median is below (0.02) */
  double l2_mb;       /* CUDA: L2 size the rotation exceeds twice (50) */
  FILE *progress;     /* NULL: quiet */
} xk_run_opts;

typedef struct xk_run_session xk_run_session;

/* Opens the device and loads the artifact directory. */
int xk_run_open(const char *dir, const xk_run_opts *o, xk_run_session **out,
                xk_diag *d);
/* Loads one more artifact directory (another key constexpr's build). */
int xk_run_load(xk_run_session *s, const char *dir, xk_diag *d);
/* The device's fingerprint, as the runtime matches records on it. */
const char *xk_run_fingerprint(const xk_run_session *s);
/* 1 when the directory holds variants of kernel. */
int xk_run_has_kernel(const xk_run_session *s, const char *kernel);
/* Times kernel's configurations at the key names[i] = vals[i] (the
 * kernel's key, in its order) and appends the records to out. No built
 * configuration for the key, the default failing or differing from the C
 * reference is an error; single configs failing are records. */
int xk_run_key(xk_run_session *s, const char *kernel, const char *const *names,
               const int64_t *vals, int n, rt_tune_cache *out, xk_tune_row *row,
               xk_diag *d);
void xk_run_close(xk_run_session *s);

#endif
