/* Dead code elimination of pure ops, and the pass pipeline. */
#include "passes.h"

#include <stdio.h>
#include <stdlib.h>

static int has_effect(int code) {
  return xk_op_orders_memory(code) || xk_op_is_control(code);
}

int xk_pass_dce(xk_func *f) {
  int *uses = calloc((size_t)f->nvalues + 1, sizeof(int));
  if (!uses)
    return 0;
  for (int i = 0; i < f->nops; i++)
    if (!f->ops[i].dead)
      for (int j = 0; j < f->ops[i].nopnd; j++)
        uses[f->ops[i].opnd[j]]++;
  int n = 0;
  /* reverse order: an op's users come after it, so one sweep cascades */
  for (int i = f->nops - 1; i >= 0; i--) {
    xk_op *op = &f->ops[i];
    if (op->dead || has_effect(op->code) || op->nres != 1 || uses[op->res[0]])
      continue;
    op->dead = 1;
    n++;
    for (int j = 0; j < op->nopnd; j++)
      uses[op->opnd[j]]--;
  }
  free(uses);
  return n;
}

int xk_passes_run(xk_func *f, xk_diag *d) {
  static const struct {
    const char *name;
    int (*run)(xk_func *);
  } pipeline[] = {{"fold", xk_pass_fold},
                  {"if", xk_pass_if},
                  {"cse", xk_pass_cse},
                  {"iv", xk_pass_iv},
                  {"dce", xk_pass_dce}};
  for (int round = 0; round < 4; round++) {
    int changed = 0;
    for (size_t p = 0; p < sizeof pipeline / sizeof *pipeline; p++) {
      changed += pipeline[p].run(f);
      if (xk_func_verify(f, d)) {
        char why[sizeof d->msg];
        snprintf(why, sizeof why, "%s", d->msg);
        return xk_diag_set(d, "after pass %s: %s", pipeline[p].name, why);
      }
    }
    if (!changed)
      break;
  }
  return 0;
}
