/* Folding of an IF whose condition is a constant: the taken branch's ops
 * move into the enclosing block in the IF's place, its yield's operands
 * replace the IF's results, and the other branch is dropped. Tracing makes
 * such IFs whenever a condition depends only on constexprs or on an
 * argument specialized to 1. */
#include "passes.h"

#include <stdlib.h>
#include <string.h>

/* Does op sit in block b or in a region nested in it? */
static int within(const xk_func *f, const xk_op *op, int b) {
  for (int c = op->block;;) {
    if (c == b)
      return 1;
    int p = f->blocks[c].parent_op;
    if (p < 0)
      return 0;
    c = f->ops[p].block;
  }
}

static int const_cond(const xk_func *f, const xk_op *op, int *taken) {
  int d = f->values[op->opnd[0]].def_op;
  if (d < 0 || f->ops[d].code != XK_OP_CONST || f->ops[d].dead)
    return 0;
  *taken = f->ops[d].attr.i ? op->body : op->orelse;
  return 1;
}

static int fold_if(xk_func *f, int id) {
  xk_op *op = &f->ops[id];
  int tb;
  if (!const_cond(f, op, &tb))
    return 0;
  int drop = tb == op->body ? op->orelse : op->body;
  xk_block *t = &f->blocks[tb], *p = &f->blocks[op->block];
  int pos = 0;
  while (p->ops[pos] != id)
    pos++;
  /* the last live op of a branch is its yield (the verifier checked) */
  int y = -1;
  for (int i = t->nops - 1; i >= 0 && y < 0; i--)
    if (!f->ops[t->ops[i]].dead)
      y = t->ops[i];
  int need = p->nops + t->nops;
  int *ops = malloc((size_t)need * sizeof *ops);
  if (!ops)
    return 0;
  int n = 0;
  for (int i = 0; i < pos; i++)
    ops[n++] = p->ops[i];
  for (int i = 0; i < t->nops; i++) {
    xk_op *m = &f->ops[t->ops[i]];
    if (m->dead || t->ops[i] == y)
      continue;
    m->block = op->block;
    for (int r = 0; r < m->nres; r++)
      f->values[m->res[r]].def_block = op->block;
    ops[n++] = t->ops[i];
  }
  for (int i = pos + 1; i < p->nops; i++)
    ops[n++] = p->ops[i];
  free(p->ops);
  p->ops = ops;
  p->nops = n;
  p->cap = need;
  t->nops = 0;
  for (int r = 0; r < op->nres; r++)
    xk_func_replace_uses(f, op->res[r], f->ops[y].opnd[r]);
  f->ops[y].dead = 1;
  for (int i = 0; i < f->nops; i++)
    if (!f->ops[i].dead && within(f, &f->ops[i], drop))
      f->ops[i].dead = 1;
  f->ops[id].dead = 1;
  return 1;
}

int xk_pass_if(xk_func *f) {
  int n = 0;
  for (int i = 0; i < f->nops; i++)
    if (!f->ops[i].dead && f->ops[i].code == XK_OP_IF)
      n += fold_if(f, i);
  return n;
}
