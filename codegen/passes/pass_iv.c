/* Induction variables: a scalar integer carried by a for loop that each
 * iteration advances by a loop-invariant step c (yield x + c) is, in
 * iteration i, x0 + ((i - lo) / step) * c; one yielded unchanged is x0. Uses of
 * the carried value in the body are rewritten to that expression, so what
 * depends on it (the address of a block pointer's load: xk.lua carries block
 * pointers as their offsets) is computable ahead of time from the induction
 * variable, as the software pipeliner requires, and the axis analysis sees the
 * divisibility of the offset. The carried value itself is kept (the loop's
 * result still needs it). */
#include "passes.h"

#include <string.h>

/* v is defined outside `body` (and every block nested in it). */
static int outside(const xk_func *f, int v, int body) {
  int b = f->values[v].def_op >= 0 ? f->ops[f->values[v].def_op].block
                                   : f->values[v].def_block;
  for (; b >= 0; b = f->blocks[b].parent_op >= 0
                         ? f->ops[f->blocks[b].parent_op].block
                         : -1)
    if (b == body)
      return 0;
  return 1;
}

/* Emits a scalar i32 op into `body` at position *pos (then advances it). */
static int emit_at(xk_func *f, int body, int *pos, xk_opcode code, int a,
                   int b) {
  int o[2] = {a, b};
  int v = xk_emit(f, body, code, o, 2, xk_type_scalar(XK_I32), (xk_attr){0},
                  f->ops[f->blocks[body].parent_op].loc);
  xk_block *blk = &f->blocks[body];
  int id = blk->ops[blk->nops - 1];
  memmove(blk->ops + *pos + 1, blk->ops + *pos,
          (size_t)(blk->nops - 1 - *pos) * sizeof *blk->ops);
  blk->ops[(*pos)++] = id;
  return v;
}

/* Moves the CONST op defining v to position *pos of body. */
static void hoist_const(xk_func *f, int body, int v, int *pos) {
  xk_block *blk = &f->blocks[body];
  int d = f->values[v].def_op, at = 0;
  while (blk->ops[at] != d)
    at++;
  if (at < *pos)
    return;
  memmove(blk->ops + *pos + 1, blk->ops + *pos,
          (size_t)(at - *pos) * sizeof *blk->ops);
  blk->ops[(*pos)++] = d;
}

static int rewrite_loop(xk_func *f, int loop) {
  int body = f->ops[loop].body, changed = 0, pos = 0;
  const xk_block *blk = &f->blocks[body];
  int yield = blk->ops[blk->nops - 1];
  for (int k = 0; k < f->ops[loop].nres; k++) {
    int x = f->blocks[body].args[k + 1], y = f->ops[yield].opnd[k];
    xk_type t = xk_vtype(f, x);
    if (y == x) { /* carried unchanged: the initial value throughout */
      if (f->ops[loop].opnd[3 + k] != x) {
        xk_func_replace_uses(f, x, f->ops[loop].opnd[3 + k]);
        changed++;
      }
      continue;
    }
    int d = f->values[y].def_op;
    if (t.dtype != XK_I32 || t.rank != 0 || d < 0 ||
        f->ops[d].code != XK_OP_ADD || f->ops[d].block != body)
      continue;
    int a = f->ops[d].opnd[0], b = f->ops[d].opnd[1];
    int c = a == x ? b : b == x ? a : -1;
    if (c < 0 || c == x)
      continue;
    int cd = f->values[c].def_op;
    if (!outside(f, c, body)) {
      if (cd < 0 || f->ops[cd].code != XK_OP_CONST || f->ops[cd].block != body)
        continue;
      hoist_const(f, body, c, &pos);
    }
    int lo = f->ops[loop].opnd[0], step = f->ops[loop].opnd[2];
    int x0 = f->ops[loop].opnd[3 + k], iv = f->blocks[body].args[0];
    int n = emit_at(f, body, &pos, XK_OP_SUB, iv, lo);
    n = emit_at(f, body, &pos, XK_OP_DIV, n, step);
    n = emit_at(f, body, &pos, XK_OP_MUL, n, c);
    int xi = emit_at(f, body, &pos, XK_OP_ADD, x0, n);
    xk_func_replace_uses(f, x, xi);
    changed++;
  }
  return changed;
}

int xk_pass_iv(xk_func *f) {
  int changed = 0;
  for (int i = 0; i < f->nops; i++)
    if (!f->ops[i].dead && f->ops[i].code == XK_OP_FOR)
      changed += rewrite_loop(f, i);
  return changed;
}
