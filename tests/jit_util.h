/* JIT-compiling one traced kernel for the tests: host code (the host ABI,
 * xk_host_fn) or the sim target's per-thread code (xk_sim_fn). */
#ifndef XK_JIT_UTIL_H
#define XK_JIT_UTIL_H

#include "lower.h"
#include "sim.h"

typedef struct {
  xk_jit *jit;
  xk_host_fn fn;
} xk_test_host;

typedef struct {
  xk_jit *jit;
  xk_sim_fn fn;
  xk_nvptx_info info; /* threads and shared bytes to launch with */
} xk_test_sim;

/* Lower for the host, optimize, JIT. 0, or -1 + d with j->jit NULL. */
int xk_test_jit_host(const xk_func *f, xk_test_host *j, xk_diag *d);
/* Lower for sim (optimized), JIT. 0, or -1 + d with k->jit NULL. */
int xk_test_jit_sim(const xk_func *f, xk_test_sim *k, xk_diag *d);

#endif
