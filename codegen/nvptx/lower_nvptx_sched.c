/* IR analyses that decide where the per-thread lowering issues loads:
 * deferred to their dot (NV_DEFER) or fused into their consumer (NV_LAZY). */
#include "lower_nvptx_int.h"

#include <stdlib.h>

/* Marks the loads that can wait for their dot (see NV_DEFER): every use is
 * a dot's a or b operand in the load's block, and no store, atomic, barrier
 * or loop comes between the load and its last use. */
void nv_find_deferrable(nv *s) {
  const xk_func *f = s->f;
  for (int bi = 0; bi < f->nblocks; bi++) {
    const xk_block *b = &f->blocks[bi];
    for (int i = 0; i < b->nops; i++) {
      const xk_op *ld = &f->ops[b->ops[i]];
      if (ld->dead || ld->code != XK_OP_LOAD || !ld->nres ||
          xk_vtype(f, ld->res[0]).rank != 2)
        continue;
      int v = ld->res[0], dots = 0, bad = 0, last = i;
      for (int k = 0; k < f->nops && !bad; k++) {
        const xk_op *u = &f->ops[k];
        if (u->dead)
          continue;
        for (int j = 0; j < u->nopnd; j++) {
          if (u->opnd[j] != v)
            continue;
          if (u->code != XK_OP_DOT || j > 1 || u->block != bi) {
            bad = 1;
            break;
          }
          dots++;
        }
      }
      for (int k = i + 1; k < b->nops && !bad; k++) {
        const xk_op *u = &f->ops[b->ops[k]];
        for (int j = 0; j < u->nopnd; j++)
          if (u->opnd[j] == v)
            last = k;
      }
      for (int k = i + 1; k < last && !bad; k++) {
        int c = f->ops[b->ops[k]].code;
        bad = xk_op_orders_memory(c) || xk_op_is_region(c);
      }
      s->defer[v] = dots > 0 && !bad;
    }
  }
}

/* Marks single-use loads and elementwise ops whose user is an elementwise
 * op or a memory op in the same block: they are fused into it (NV_LAZY).
 * A load is only moved down to its final consumer when no store, atomic,
 * barrier or loop lies in between. */
void nv_find_lazy(nv *s) {
  const xk_func *f = s->f;
  int n = f->nvalues;
  int *uses = calloc((size_t)n + 1, sizeof *uses);
  int *user = calloc((size_t)n + 1, sizeof *user);
  int *pos = calloc((size_t)f->nops + 1, sizeof *pos);
  if (!uses || !user || !pos)
    goto out;
  for (int bi = 0; bi < f->nblocks; bi++)
    for (int i = 0; i < f->blocks[bi].nops; i++)
      pos[f->blocks[bi].ops[i]] = i;
  for (int k = 0; k < f->nops; k++) {
    const xk_op *u = &f->ops[k];
    if (u->dead)
      continue;
    for (int j = 0; j < u->nopnd; j++) {
      uses[u->opnd[j]]++;
      user[u->opnd[j]] = k;
    }
  }
  for (int k = 0; k < f->nops; k++) {
    const xk_op *d = &f->ops[k];
    if (d->dead || d->nres != 1 || xk_vtype(f, d->res[0]).rank == 0 ||
        (d->code != XK_OP_LOAD && !xk_op_is_elementwise(d->code)))
      continue;
    int v = d->res[0], fast;
    if (uses[v] != 1 || s->defer[v])
      continue;
    /* a load that can be vectorized, or that coalesces along another dim
     * than its consumer's, is issued as a tile in its own layout */
    if (d->code == XK_OP_LOAD &&
        (nv_mem_vec(s, d, &fast) > 1 || fast != xk_vtype(f, v).rank - 1))
      continue;
    const xk_op *u = &f->ops[user[v]];
    if (u->block != d->block ||
        (u->code != XK_OP_LOAD && u->code != XK_OP_STORE &&
         u->code != XK_OP_ATOMIC_ADD && !xk_op_is_elementwise(u->code)))
      continue;
    s->lazy[v] = 1;
  }
  for (int k = f->nops - 1; k >= 0; k--) {
    const xk_op *d = &f->ops[k];
    if (d->code != XK_OP_LOAD || d->dead || !d->nres || !s->lazy[d->res[0]])
      continue;
    int cur = d->res[0];
    while (s->lazy[cur] && f->ops[user[cur]].nres == 1)
      cur = f->ops[user[cur]].res[0];
    int last = s->lazy[cur] ? user[cur] : f->values[cur].def_op;
    const xk_block *b = &f->blocks[d->block];
    for (int i = pos[k] + 1; i < pos[last]; i++) {
      int c = f->ops[b->ops[i]].code;
      if (xk_op_orders_memory(c) || xk_op_is_region(c))
        s->lazy[d->res[0]] = 0;
    }
  }
out:
  free(uses);
  free(user);
  free(pos);
}
