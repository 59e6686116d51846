/* One memory budget for a kernel file's Lua state and the IR a trace
 * builds in C (xk_func.heap_bytes): the Lua allocator refuses a request
 * that would take the two past the cap, so an endless Lua loop over tiles
 * runs out of memory within the cap, whichever side grows. The IR itself
 * cannot refuse (ir.c aborts on malloc failure), so it may pass the cap by
 * its last growth; the next Lua allocation, which every traced op makes
 * (the result tile), then fails the trace. */
#include "dsl_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int xk_budget_init(xk_mem_budget *b, size_t default_mib, xk_diag *d) {
  b->lua = 0;
  b->ir = NULL;
  b->cap = default_mib << 20;
  const char *env = getenv("XK_DSL_MEM_MIB");
  if (!env || !*env)
    return 0;
  char *end;
  errno = 0;
  long v = strtol(env, &end, 10);
  if (errno || *end || v < 1 || v > XK_BUDGET_MAX_MIB)
    return xk_diag_set(d, "XK_DSL_MEM_MIB=%s: want MiB in 1..%d", env,
                       XK_BUDGET_MAX_MIB);
  b->cap = (size_t)v << 20;
  return 0;
}

size_t xk_budget_used(const xk_mem_budget *b) {
  return b->lua + (b->ir ? b->ir->heap_bytes : 0);
}

void *xk_budget_alloc(void *ud, void *p, size_t osize, size_t nsize) {
  xk_mem_budget *b = ud;
  size_t old = p ? osize : 0;
  if (nsize == 0) {
    free(p);
    b->lua -= old;
    return NULL;
  }
  size_t used = xk_budget_used(b);
  if (nsize > old && (used > b->cap || nsize - old > b->cap - used))
    return NULL;
  void *q = realloc(p, nsize);
  if (q)
    b->lua = b->lua - old + nsize;
  return q;
}

void xk_budget_describe(const xk_mem_budget *b, char *buf, size_t n) {
  snprintf(buf, n,
           "ran out of its %zu MiB of memory (Lua %zu KiB, IR %zu KiB; "
           "XK_DSL_MEM_MIB sets the cap)",
           b->cap >> 20, b->lua >> 10, (b->ir ? b->ir->heap_bytes : 0) >> 10);
}
