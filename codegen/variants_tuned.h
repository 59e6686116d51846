/* xkvgen --variants tuned: the configurations a tune cache selects. */
#ifndef XK_VARIANTS_TUNED_H
#define XK_VARIANTS_TUNED_H

#include "tune_cache.h"
#include "variants.h"

/* The default (with the fixed overrides) first, then each distinct config
 * that a winner record of the kernel selects for `target` (host: CPU
 * records; sm_XX: that arch's modeled or measured records) and that agrees
 * with the fixed overrides and with the build's constexpr keys (a record
 * keyed D=128 is not built into a D=64 table). Names are borrowed from the
 * spec, the overrides and the cache. */
int xk_variants_tuned(const xk_kernel_spec *spec, const char *target,
                      const rt_tune_cache *c, const xk_constexpr *fixed,
                      int nfixed, xk_override_set **out, int *count,
                      xk_diag *d);

#endif
