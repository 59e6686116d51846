/* Common subexpression elimination. Tracing repeats work freely (every
 * `x:col()` emits its own expand_dims, every literal its own constant), so
 * merging identical pure ops keeps the lowerings from recomputing them. An
 * op may reuse an equal op from its own block or any enclosing block. */
#include "passes.h"

#include <stdlib.h>

static int is_pure(int code) {
  return code != XK_OP_LOAD && !xk_op_orders_memory(code) &&
         !xk_op_is_control(code);
}

static int attr_eq(const xk_attr *a, const xk_attr *b) {
  for (int i = 0; i < XK_MAX_RANK; i++)
    if (a->perm[i] != b->perm[i])
      return 0;
  /* compare float bits so that -0.0 and NaN constants stay distinct */
  union {
    double d;
    int64_t i;
  } fa = {a->f}, fb = {b->f};
  return a->i == b->i && fa.i == fb.i && a->axis == b->axis && a->lo == b->lo &&
         a->hi == b->hi && a->pred == b->pred && a->red == b->red &&
         a->has_mask == b->has_mask && a->has_other == b->has_other;
}

static int op_eq(const xk_func *f, const xk_op *a, const xk_op *b) {
  if (a->code != b->code || a->nopnd != b->nopnd || a->nres != 1 ||
      b->nres != 1 || !attr_eq(&a->attr, &b->attr))
    return 0;
  for (int i = 0; i < a->nopnd; i++)
    if (a->opnd[i] != b->opnd[i])
      return 0;
  return xk_type_eq(f->values[a->res[0]].type, f->values[b->res[0]].type);
}

typedef struct {
  int *ops; /* candidate op ids visible in the current scope */
  int n;
} scope;

static int cse_block(xk_func *f, int b, scope *s) {
  int changed = 0, base = s->n;
  for (int i = 0; i < f->blocks[b].nops; i++) {
    xk_op *op = &f->ops[f->blocks[b].ops[i]];
    if (op->dead)
      continue;
    if (op->code == XK_OP_FOR || op->code == XK_OP_IF ||
        op->code == XK_OP_SORT) {
      changed += cse_block(f, op->body, s);
      if (op->code == XK_OP_IF)
        changed += cse_block(f, f->ops[op - f->ops].orelse, s);
      continue;
    }
    if (!is_pure(op->code) || op->nres != 1)
      continue;
    int hit = -1;
    for (int j = s->n - 1; j >= 0 && hit < 0; j--)
      if (op_eq(f, &f->ops[s->ops[j]], op))
        hit = s->ops[j];
    if (hit >= 0) {
      xk_func_replace_uses(f, op->res[0], f->ops[hit].res[0]);
      op->dead = 1;
      changed++;
    } else {
      s->ops[s->n++] = (int)(op - f->ops);
    }
  }
  s->n = base; /* a region's ops do not dominate what follows it */
  return changed;
}

int xk_pass_cse(xk_func *f) {
  scope s = {malloc((size_t)(f->nops + 1) * sizeof(int)), 0};
  if (!s.ops)
    return 0;
  int n = cse_block(f, 0, &s);
  free(s.ops);
  return n;
}
