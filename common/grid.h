/* Launch-grid rules: small integer expressions over a kernel's int args and
 * constexprs, e.g. "cdiv(N, BLOCK)". Evaluated by tools and the runtime. */
#ifndef XK_GRID_H
#define XK_GRID_H

#include <stddef.h>
#include <stdint.h>

#include "diag.h"

/* Looks a name up; returns 0 and sets *v, or -1 when the name is unknown. */
typedef int (*xk_grid_lookup)(void *ctx, const char *name, int64_t *v);

/* Evaluates expr (NULL means 1). Division by zero, unknown names, syntax
 * errors and non-positive results are errors naming the expression. */
int xk_grid_eval(const char *expr, xk_grid_lookup lookup, void *ctx,
                 int64_t *out, xk_diag *d);

#endif
