/* Which specializations of a kernel to build: the defaults with -D
 * overrides, or every point of the kernel's tune{} space. */
#ifndef XK_VARIANTS_H
#define XK_VARIANTS_H

#include "dsl.h"

typedef struct {
  xk_constexpr *over;
  int n;
} xk_override_set;

/* all == 0: one set (the fixed overrides). all == 1: the cartesian product
 * of the tune dims not fixed by an override, each with the overrides. */
int xk_variants_enumerate(const xk_kernel_spec *spec, const xk_constexpr *fixed,
                          int nfixed, int all, xk_override_set **out,
                          int *count, xk_diag *d);
void xk_variants_free(xk_override_set *v, int count);

#endif
