/* Which elementwise ops the host lowering fuses into their consumer's loop
 * (see lower_host_impl.h). Fewer loops and buffers is what makes the host
 * path compile faster: LLVM's time grows with the loops it vectorizes. */
#include "lower_host_impl.h"

#include <stdlib.h>

int xk_hl_count_uses(xk_hl *h) {
  const xk_func *f = h->f;
  h->uses = calloc((size_t)f->nvalues + 1, sizeof *h->uses);
  if (!h->uses)
    return -1;
  for (int i = 0; i < f->nops; i++)
    for (int k = 0; !f->ops[i].dead && k < f->ops[i].nopnd; k++)
      h->uses[f->ops[i].opnd[k]]++;
  return 0;
}

static int is_float(int dt) {
  return dt == XK_F16 || dt == XK_BF16 || dt == XK_F32;
}

/* Fused when: a float tile (integer and pointer tiles keep their buffers for
 * the affine analysis of loads and stores), computed from at least one tile
 * in memory, used once, by a later elementwise op of the same block with no
 * FOR in between. The consumer then reads the operands where the op would
 * have: nothing in between writes a buffer (only FOR writes buffers other
 * than its own results, its carried values), so every operand still holds
 * the value it had at the op. A use in another block would recompute the
 * element on every trip of a loop. */
int xk_hl_fusable(xk_hl *h, const xk_block *bl, int i) {
  const xk_func *f = h->f;
  const xk_op *op = &f->ops[bl->ops[i]];
  if (!xk_op_is_elementwise(op->code) || op->nres != 1)
    return 0;
  int r = op->res[0];
  xk_type rt = xk_vtype(f, r);
  if (!rt.rank || !is_float(rt.dtype) || h->uses[r] != 1)
    return 0;
  int tile = 0;
  for (int k = 0; k < op->nopnd; k++)
    tile |= h->vals[op->opnd[k]].kind >= HV_BUF;
  if (!tile)
    return 0;
  for (int j = i + 1; j < bl->nops; j++) {
    const xk_op *u = &f->ops[bl->ops[j]];
    if (u->dead)
      continue;
    if (u->code == XK_OP_FOR)
      return 0;
    for (int k = 0; k < u->nopnd; k++)
      if (u->opnd[k] == r)
        return xk_op_is_elementwise(u->code);
  }
  return 0;
}
