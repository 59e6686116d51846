/* Axis facts of integer, pointer and mask tiles (Triton's AxisInfo), so
 * global accesses can be vectorized where that is provably safe.
 *
 * Per value and tile dim d, over aligned runs along d (runs start at
 * indices that are multiples of their length):
 *   contig[d]: runs of this length increase by exactly 1 (element units);
 *   cnst[d]:   runs of this length hold one value;
 *   div[d]:    a power of two dividing the first element of every run of
 *              length contig[d] (bytes for pointers, units for integers);
 *              with contig[d] == 1 that is every element.
 * All three are powers of two. Scalars use div[0] only. Anything the rules
 * below do not understand gets the weakest facts (1, 1, 1). */
#include "lower_nvptx_int.h"

#include <stdlib.h>
#include <string.h>

#define DIV_MAX (1 << 20)

static int pow2_of(int64_t x) {
  if (!x)
    return DIV_MAX;
  int p = 1;
  while (p < DIV_MAX && !(x & p))
    p *= 2;
  return p;
}

static int imin(int a, int b) {
  return a < b ? a : b;
}

static void weakest(nv_axis *a) {
  for (int d = 0; d < XK_MAX_RANK; d++)
    a->contig[d] = a->cnst[d] = a->div[d] = 1;
}

/* Divisibility every element of x has. */
static int elem_div(const nv_axis *x, int rank) {
  int v = x->div[0];
  for (int d = 0; d < rank; d++) {
    if (x->contig[d] > 1)
      return 1;
    v = imin(v, x->div[d]);
  }
  return v;
}

/* Divisibility of every element along dim d. */
static int run_div(const nv_axis *x, int d) {
  return x->contig[d] > 1 ? 1 : x->div[d];
}

static const nv_axis *info(nv *s, int v);

static void of_arg(nv *s, int v, nv_axis *a) {
  const xk_func *f = s->f;
  int blk = f->values[v].def_block;
  const xk_block *b = &f->blocks[blk];
  int idx = 0;
  while (idx < b->nargs && b->args[idx] != v)
    idx++;
  if (blk == 0) {
    int sp = idx < f->nargs ? f->args[idx].spec : 0;
    a->div[0] = sp & (XK_SPEC_ALIGN16 | XK_SPEC_DIV16) ? 16 : 1;
    return;
  }
  const xk_op *loop = &f->ops[b->parent_op];
  if (idx == 0 && loop->code == XK_OP_FOR) /* the induction variable */
    a->div[0] =
        imin(info(s, loop->opnd[0])->div[0], info(s, loop->opnd[2])->div[0]);
}

static void add_like(const nv_axis *x, const nv_axis *y, int rank, int sub,
                     int scale, nv_axis *a) {
  for (int d = 0; d < (rank ? rank : 1); d++) {
    a->contig[d] = imin(x->contig[d], y->cnst[d]);
    if (!sub)
      a->contig[d] = a->contig[d] > imin(y->contig[d], x->cnst[d])
                         ? a->contig[d]
                         : imin(y->contig[d], x->cnst[d]);
    a->cnst[d] = imin(x->cnst[d], y->cnst[d]);
    int yd = y->div[d] >= DIV_MAX / scale ? DIV_MAX : y->div[d] * scale;
    a->div[d] = imin(x->div[d], yd);
  }
}

static void of_cmp(const xk_op *op, const nv_axis *x, const nv_axis *y,
                   int rank, nv_axis *a) {
  int p = op->attr.pred;
  for (int d = 0; d < (rank ? rank : 1); d++) {
    int c = imin(x->cnst[d], y->cnst[d]);
    int g = imin(x->div[d], y->div[d]);
    /* x = x0 + j over a run with x0 and y multiples of g: x < y for all
     * j < g or for none (and >= likewise) */
    if ((p == XK_LT || p == XK_GE) && x->contig[d] > 1 && y->cnst[d] > 1)
      c = imin(imin(x->contig[d], y->cnst[d]), g);
    if ((p == XK_GT || p == XK_LE) && y->contig[d] > 1 && x->cnst[d] > 1)
      c = imin(imin(y->contig[d], x->cnst[d]), g);
    a->cnst[d] = c;
  }
}

static void compute(nv *s, int v, nv_axis *a) {
  const xk_func *f = s->f;
  weakest(a);
  int def = f->values[v].def_op;
  if (def < 0) {
    of_arg(s, v, a);
    return;
  }
  const xk_op *op = &f->ops[def];
  xk_type t = xk_vtype(f, v);
  int r = t.rank;
  const nv_axis *x = op->nopnd > 0 ? info(s, op->opnd[0]) : NULL;
  const nv_axis *y = op->nopnd > 1 ? info(s, op->opnd[1]) : NULL;
  switch (op->code) {
  case XK_OP_CONST:
    for (int d = 0; d < XK_MAX_RANK; d++) {
      a->cnst[d] = d < r ? t.shape[d] : 1;
      a->div[d] = xk_dtype_is_float(t.dtype) ? 1 : pow2_of(op->attr.i);
    }
    return;
  case XK_OP_ARANGE:
    a->contig[0] = t.shape[0];
    a->div[0] = pow2_of(op->attr.lo);
    return;
  case XK_OP_ADD:
  case XK_OP_SUB: {
    int scale = 1;
    if (t.dtype == XK_PTR)
      scale = xk_dtype_bits(t.elem) / 8;
    add_like(x, y, r, op->code == XK_OP_SUB, scale > 0 ? scale : 1, a);
    return;
  }
  case XK_OP_MUL:
    for (int d = 0; d < (r ? r : 1); d++) {
      a->cnst[d] = imin(x->cnst[d], y->cnst[d]);
      int64_t p = (int64_t)run_div(x, d) * run_div(y, d);
      a->div[d] = p > DIV_MAX ? DIV_MAX : (int)p;
    }
    return;
  case XK_OP_CMP:
    of_cmp(op, x, y, r, a);
    return;
  case XK_OP_AND:
  case XK_OP_OR:
  case XK_OP_MIN:
  case XK_OP_MAX:
  case XK_OP_XOR:
    for (int d = 0; d < (r ? r : 1); d++)
      a->cnst[d] = imin(x->cnst[d], y->cnst[d]);
    return;
  case XK_OP_NOT:
  case XK_OP_NEG:
  case XK_OP_CAST:
    for (int d = 0; d < (r ? r : 1); d++)
      a->cnst[d] = x->cnst[d];
    if (op->code == XK_OP_CAST && !xk_dtype_is_float(t.dtype) &&
        !xk_dtype_is_float(xk_vtype(f, op->opnd[0]).dtype))
      *a = *x;
    return;
  case XK_OP_SELECT: {
    const nv_axis *z = info(s, op->opnd[2]);
    for (int d = 0; d < (r ? r : 1); d++)
      a->cnst[d] = imin(x->cnst[d], imin(y->cnst[d], z->cnst[d]));
    return;
  }
  case XK_OP_EXPAND_DIMS: {
    int ax = op->attr.axis, ed = elem_div(x, r - 1);
    for (int d = 0, k = 0; d < r; d++) {
      if (d == ax) {
        a->contig[d] = a->cnst[d] = 1;
        a->div[d] = ed;
        continue;
      }
      a->contig[d] = x->contig[k];
      a->cnst[d] = x->cnst[k];
      a->div[d] = x->div[k++];
    }
    return;
  }
  case XK_OP_BROADCAST: {
    xk_type ot = xk_vtype(f, op->opnd[0]);
    for (int d = 0; d < r; d++) {
      if (ot.rank == 0 || ot.shape[d] == 1) {
        a->contig[d] = 1;
        a->cnst[d] = t.shape[d];
        a->div[d] = ot.rank == 0 ? x->div[0] : run_div(x, d);
      } else {
        a->contig[d] = x->contig[d];
        a->cnst[d] = x->cnst[d];
        a->div[d] = x->div[d];
      }
    }
    return;
  }
  case XK_OP_TRANS:
    for (int d = 0; d < r; d++) {
      int p = op->attr.perm[d];
      a->contig[d] = x->contig[p];
      a->cnst[d] = x->cnst[p];
      a->div[d] = x->div[p];
    }
    return;
  default:
    return;
  }
}

static const nv_axis *info(nv *s, int v) {
  if (!s->axis_done[v]) {
    s->axis_done[v] = 1; /* cycles (none in SSA) would see the weakest */
    weakest(&s->axis[v]);
    nv_axis a;
    compute(s, v, &a);
    s->axis[v] = a;
  }
  return &s->axis[v];
}

const nv_axis *nv_axis_of(nv *s, int v) {
  return info(s, v);
}

int nv_mem_vec(nv *s, const xk_op *op, int *fast) {
  int pv = op->opnd[0], k = 1;
  xk_type pt = xk_vtype(s->f, pv);
  int esz = xk_dtype_bits(pt.elem) / 8, r = pt.rank;
  *fast = r ? r - 1 : 0;
  if (!r || esz <= 0 || esz > 16)
    return 1;
  const nv_axis *p = info(s, pv);
  for (int d = r - 1; d >= 0; d--)
    if (p->contig[d] > p->contig[*fast])
      *fast = d;
  int d = *fast;
  int v = imin(p->contig[d], p->div[d] / esz);
  v = imin(v, 16 / esz);
  if (op->code == XK_OP_LOAD) {
    if (op->attr.has_mask)
      v = imin(v, info(s, op->opnd[k++])->cnst[d]);
    if (op->attr.has_other)
      v = imin(v, info(s, op->opnd[k++])->cnst[d]);
  } else {
    if (op->nopnd > 2)
      v = imin(v, info(s, op->opnd[2])->cnst[d]);
  }
  return v < 1 ? 1 : v;
}
