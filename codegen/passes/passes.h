/* IR-to-IR passes. Each keeps the function valid; xk_passes_run verifies
 * after every pass so a broken pass is caught at its source. */
#ifndef XK_PASSES_H
#define XK_PASSES_H

#include "ir.h"

int xk_pass_fold(xk_func *f); /* constant folding + identities; #changes */
int xk_pass_if(xk_func *f);   /* IFs on constant conditions; #changes */
int xk_pass_cse(xk_func *f);  /* common subexpressions; #changes */
int xk_pass_dce(xk_func *f);  /* dead pure ops; #changes */
/* carried integers advanced by a loop-invariant step, in the body, become
 * functions of the induction variable; #changes */
int xk_pass_iv(xk_func *f);
/* fold, if, cse, iv, dce to a fixed point (bounded), verifying after each pass
 */
int xk_passes_run(xk_func *f, xk_diag *d);
/* spec.c: records spec in f's args and replaces XK_SPEC_ONE args by the
 * constant 1 (before the passes); -1 when a bit does not fit its arg. */
int xk_spec_apply(xk_func *f, const int *spec, xk_diag *d);

#endif
