/* IR verifier: structure (SSA dominance, regions) and typing rules of every
 * op. Runs after tracing and after each pass, so a pass bug surfaces here
 * with the op and its source line rather than as bad machine code. */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  const xk_func *f;
  xk_diag *d;
  char *live; /* value id -> visible at this point */
  int in_for; /* FOR bodies around the block being checked */
} verifier;

static int fail(verifier *v, const xk_op *op, const char *why) {
  char ts[4][64] = {{0}};
  for (int i = 0; i < op->nopnd && i < 3; i++)
    xk_type_str(xk_vtype(v->f, op->opnd[i]), ts[i], sizeof ts[i]);
  if (op->nres)
    xk_type_str(xk_vtype(v->f, op->res[0]), ts[3], sizeof ts[3]);
  return xk_diag_set(v->d,
                     "%s:%d: in kernel '%s': verifier: %s: %s (operands %s %s "
                     "%s; result %s)",
                     v->f->file, op->loc.line, v->f->name, xk_op_name(op->code),
                     why, ts[0], ts[1], ts[2], op->nres ? ts[3] : "none");
}

static int pow2(int32_t n) {
  return n > 0 && (n & (n - 1)) == 0;
}

static int type_ok(xk_type t) {
  if (t.dtype >= XK_NDTYPES || t.rank > XK_MAX_RANK)
    return 0;
  if (t.dtype == XK_PTR && (t.elem >= XK_PTR))
    return 0;
  for (int i = 0; i < t.rank; i++)
    if (!pow2(t.shape[i]))
      return 0;
  return 1;
}

#define T(i) xk_vtype(v->f, op->opnd[i])
#define R(i) xk_vtype(v->f, op->res[i])
#define NEED(c, why)                                                           \
  do {                                                                         \
    if (!(c))                                                                  \
      return fail(v, op, why);                                                 \
  } while (0)

static int is_int_offset(xk_type t) {
  return t.dtype == XK_I32 || t.dtype == XK_I64;
}

static int check_binary(verifier *v, const xk_op *op) {
  xk_type a = T(0), b = T(1), r = R(0);
  if (op->code == XK_OP_ADD && a.dtype == XK_PTR) {
    NEED(is_int_offset(b) && xk_type_same_shape(a, b),
         "pointer offsets must be i32/i64 of the pointer's shape");
    NEED(xk_type_eq(a, r), "result must have the pointer's type");
    return 0;
  }
  NEED(xk_type_eq(a, b), "operand types differ");
  if (op->code == XK_OP_CMP) {
    NEED(r.dtype == XK_I1 && xk_type_same_shape(a, r),
         "comparison result must be i1 of the operand shape");
    NEED(op->attr.pred >= XK_EQ && op->attr.pred <= XK_GE, "bad predicate");
    return 0;
  }
  NEED(xk_type_eq(a, r), "result type differs from operands");
  NEED(a.dtype != XK_PTR, "arithmetic on pointers other than ptr + offset");
  if (op->code >= XK_OP_AND && op->code <= XK_OP_SHR)
    NEED(xk_dtype_is_int(a.dtype), "bitwise op needs integer operands");
  return 0;
}

static int check_unary(verifier *v, const xk_op *op) {
  xk_type a = T(0), r = R(0);
  NEED(xk_type_eq(a, r), "result type differs from operand");
  switch (op->code) {
  case XK_OP_NOT:
    NEED(xk_dtype_is_int(a.dtype), "not needs an integer or i1 operand");
    break;
  case XK_OP_NEG:
  case XK_OP_ABS:
    NEED(a.dtype != XK_PTR && a.dtype != XK_I1, "needs a numeric operand");
    break;
  default:
    NEED(xk_dtype_is_float(a.dtype), "math function needs a float operand");
  }
  return 0;
}

static int check_shape_op(verifier *v, const xk_op *op) {
  xk_type a = T(0), r = R(0);
  NEED(a.dtype == r.dtype && a.elem == r.elem, "shape op changed the dtype");
  switch (op->code) {
  case XK_OP_BROADCAST:
    if (a.rank) {
      NEED(a.rank == r.rank, "broadcast keeps the rank (expand_dims first)");
      for (int i = 0; i < a.rank; i++)
        NEED(a.shape[i] == r.shape[i] || a.shape[i] == 1,
             "broadcast dims must match or be 1");
    }
    return 0;
  case XK_OP_EXPAND_DIMS: {
    int ax = op->attr.axis;
    NEED(r.rank == a.rank + 1 && ax >= 0 && ax <= a.rank && r.shape[ax] == 1,
         "expand_dims inserts one size-1 dim");
    for (int i = 0, j = 0; i < r.rank; i++)
      if (i != ax)
        NEED(r.shape[i] == a.shape[j++], "expand_dims changed a dim");
    return 0;
  }
  case XK_OP_RESHAPE:
    NEED(xk_type_numel(a) == xk_type_numel(r), "reshape changes numel");
    return 0;
  case XK_OP_SHIFT:
  case XK_OP_XORPERM: {
    int ax = op->attr.axis;
    int64_t by = op->attr.i;
    NEED(xk_type_eq(a, r) && ax >= 0 && ax < a.rank,
         "shift/xorperm keep the type and need an axis of the operand");
    if (op->code == XK_OP_SHIFT)
      NEED(by > -a.shape[ax] && by < a.shape[ax] && by,
           "shift amount must be nonzero and below the axis length");
    else
      NEED(by > 0 && by < a.shape[ax] && !(by & (by - 1)),
           "xorperm mask must be a power of two below the axis length");
    return 0;
  }
  case XK_OP_TRANS: {
    int seen[XK_MAX_RANK] = {0};
    NEED(a.rank == r.rank && a.rank >= 2, "trans needs a rank >= 2 tile");
    for (int i = 0; i < r.rank; i++) {
      int p = op->attr.perm[i];
      NEED(p >= 0 && p < r.rank && !seen[p], "perm is not a permutation");
      seen[p] = 1;
      NEED(r.shape[i] == a.shape[p], "result dims do not follow perm");
    }
    return 0;
  }
  default: { /* REDUCE */
    int ax = op->attr.axis;
    NEED(ax >= 0 && ax < a.rank, "reduction axis out of range");
    NEED(r.rank == a.rank - 1, "reduction drops exactly the axis");
    for (int i = 0, j = 0; i < a.rank; i++)
      if (i != ax)
        NEED(r.shape[j++] == a.shape[i], "reduction result shape");
    NEED(a.dtype != XK_PTR && a.dtype != XK_I1, "reduction of ptr/i1");
    NEED(op->attr.red >= XK_RED_SUM && op->attr.red <= XK_RED_MIN,
         "bad reduction kind");
    return 0;
  }
  }
}

static int check_memory(verifier *v, const xk_op *op) {
  xk_type p = T(0);
  NEED(p.dtype == XK_PTR, "first operand must be a pointer");
  int has_mask = op->code == XK_OP_LOAD ? op->attr.has_mask : op->nopnd == 3;
  int mask_at = op->code == XK_OP_LOAD ? 1 : 2;
  if (has_mask)
    NEED(T(mask_at).dtype == XK_I1 && xk_type_same_shape(T(mask_at), p),
         "mask must be i1 of the pointer's shape");
  if (op->code == XK_OP_LOAD) {
    NEED(op->nopnd == 1 + op->attr.has_mask + op->attr.has_other,
         "operand count does not match mask/other flags");
    NEED(op->nres == 1 && R(0).dtype == p.elem && xk_type_same_shape(R(0), p),
         "load result must be the pointee dtype of the pointer's shape");
    if (op->attr.has_other)
      NEED(xk_type_eq(T(op->nopnd - 1), R(0)), "other must match the result");
    return 0;
  }
  NEED(op->nres == 0 && (op->nopnd == 2 || op->nopnd == 3),
       "store takes (ptr, value[, mask])");
  NEED(T(1).dtype == p.elem && xk_type_same_shape(T(1), p),
       "stored value must be the pointee dtype of the pointer's shape");
  if (op->code == XK_OP_ATOMIC_ADD)
    NEED(p.elem == XK_F32 || p.elem == XK_I32 || p.elem == XK_I64,
         "atomic_add supports f32, i32, i64");
  return 0;
}

static int check_atomic(verifier *v, const xk_op *op) {
  const xk_attr *a = &op->attr;
  int nv = a->rmw == XK_RMW_CAS ? 2 : 1;
  NEED(a->rmw >= 0 && a->rmw < XK_NRMW && a->sem >= 0 && a->sem < XK_NSEM &&
           a->scope >= 0 && a->scope < XK_NSCOPE,
       "unknown atomic op, sem or scope");
  NEED(op->nres == 1 && op->nopnd == 1 + nv + a->has_mask,
       "atomic takes (ptr, [cmp,] value[, mask]) and has one result");
  xk_type p = T(0), r = R(0);
  NEED(p.dtype == XK_PTR && r.dtype == p.elem && xk_type_same_shape(r, p),
       "atomic result must be the pointee dtype of the pointer's shape");
  for (int i = 1; i <= nv; i++)
    NEED(xk_type_eq(T(i), r), "atomic operands must have the result type");
  if (a->has_mask)
    NEED(T(1 + nv).dtype == XK_I1 && xk_type_same_shape(T(1 + nv), r),
         "mask must be i1 of the pointer's shape");
  int dt = r.dtype, bits = a->rmw >= XK_RMW_AND && a->rmw <= XK_RMW_XOR;
  NEED(dt == XK_I32 || dt == XK_I64 ||
           (dt == XK_F32 && !bits && a->rmw != XK_RMW_MAX &&
            a->rmw != XK_RMW_MIN),
       "atomics on i32 and i64; f32 for add, xchg and cas");
  return 0;
}

static int check_dot(verifier *v, const xk_op *op) {
  xk_type a = T(0), b = T(1), c = T(2), r = R(0);
  NEED(op->nopnd == 3, "dot takes (a, b, acc)");
  NEED(a.rank == 2 && b.rank == 2, "dot needs 2-D operands");
  NEED(a.shape[1] == b.shape[0], "inner dimensions differ");
  NEED(a.dtype == b.dtype, "a and b dtypes differ");
  NEED(a.dtype == XK_F16 || a.dtype == XK_BF16 || a.dtype == XK_F32,
       "dot inputs must be f16, bf16 or f32");
  NEED(c.dtype == XK_F32 && c.rank == 2 && c.shape[0] == a.shape[0] &&
           c.shape[1] == b.shape[1],
       "accumulator must be f32 [M,N]");
  NEED(xk_type_eq(c, r), "result must be f32 [M,N]");
  NEED(op->attr.i == XK_DOT_ACC_F32 ||
           (op->attr.i == XK_DOT_ACC_F16 && a.dtype == XK_F16),
       "f16 accumulation needs f16 inputs");
  return 0;
}

static int check_block(verifier *v, int b);

/* The last live op of region block b is a YIELD of op's result types. */
static int check_yield(verifier *v, const xk_op *op, int b) {
  const xk_block *body = &v->f->blocks[b];
  int last = -1;
  for (int i = body->nops - 1; i >= 0 && last < 0; i--)
    if (!v->f->ops[body->ops[i]].dead)
      last = body->ops[i];
  NEED(last >= 0 && v->f->ops[last].code == XK_OP_YIELD,
       "region must end with yield");
  const xk_op *y = &v->f->ops[last];
  NEED(y->nopnd == op->nres, "yield count differs from the result count");
  for (int i = 0; i < op->nres; i++)
    NEED(xk_type_eq(xk_vtype(v->f, y->opnd[i]), R(i)),
         "yielded type differs from the result type");
  return 0;
}

static int check_for(verifier *v, const xk_op *op) {
  NEED(op->nopnd >= 3 && op->nres == op->nopnd - 3,
       "for takes (lo, hi, step, init...) and returns one value per init");
  for (int i = 0; i < 3; i++)
    NEED(xk_type_eq(T(i), xk_type_scalar(XK_I32)),
         "loop bounds must be i32 scalars");
  for (int i = 0; i < op->nres; i++)
    NEED(xk_type_eq(T(3 + i), R(i)), "carried result type differs from init");
  NEED(op->body > 0 && op->body < v->f->nblocks, "for without a body");
  const xk_block *body = &v->f->blocks[op->body];
  NEED(body->parent_op == op - v->f->ops, "body block not owned by this for");
  NEED(body->nargs == op->nres + 1, "body takes (iv, carried...)");
  NEED(xk_type_eq(xk_vtype(v->f, body->args[0]), xk_type_scalar(XK_I32)),
       "induction variable must be i32");
  for (int i = 0; i < op->nres; i++)
    NEED(xk_type_eq(xk_vtype(v->f, body->args[i + 1]), R(i)),
         "body argument type differs from the carried type");
  if (check_yield(v, op, op->body))
    return -1;
  v->in_for++;
  int rc = check_block(v, op->body);
  v->in_for--;
  return rc;
}

static int check_if(verifier *v, const xk_op *op) {
  NEED(op->nopnd == 1 && xk_type_eq(T(0), xk_type_scalar(XK_I1)),
       "if takes one i1 scalar condition");
  int br[2] = {op->body, op->orelse};
  for (int k = 0; k < 2; k++) {
    NEED(br[k] > 0 && br[k] < v->f->nblocks, "if without its two branches");
    const xk_block *b = &v->f->blocks[br[k]];
    NEED(b->parent_op == op - v->f->ops && b->nargs == 0,
         "branch block not owned by this if, or with arguments");
    if (check_yield(v, op, br[k]) || check_block(v, br[k]))
      return -1;
  }
  return 0;
}

/* The body is only a stand-in for the lowerings without a native sort:
 * those with one skip it, so it must not hold what they would lose. */
static int check_sort(verifier *v, const xk_op *op) {
  NEED(op->nopnd == 1 && op->nres == 2, "sort takes one key tile, gives two");
  xk_type k = T(0), ix = k;
  ix.dtype = XK_I32;
  ix.elem = 0;
  NEED(k.rank > 0 && (xk_dtype_is_float(k.dtype) || k.dtype == XK_I32 ||
                      k.dtype == XK_I64),
       "sort keys are a float, i32 or i64 tile");
  NEED(op->attr.axis >= 0 && op->attr.axis < k.rank, "axis out of range");
  NEED(op->attr.i == 0 || op->attr.i == 1, "descending is 0 or 1");
  NEED(xk_type_eq(R(0), k) && xk_type_eq(R(1), ix),
       "results are the keys' type and i32 indices of their shape");
  NEED(op->body > 0 && op->body < v->f->nblocks && op->orelse < 0,
       "sort without its body");
  const xk_block *b = &v->f->blocks[op->body];
  NEED(b->parent_op == op - v->f->ops && b->nargs == 0,
       "body not owned by this sort, or with arguments");
  for (int i = 0; i < b->nops; i++) {
    int c = v->f->ops[b->ops[i]].code;
    NEED(v->f->ops[b->ops[i]].dead ||
             !(c == XK_OP_LOAD || xk_op_orders_memory(c) ||
               (xk_op_is_control(c) && c != XK_OP_YIELD) || c == XK_OP_SORT),
         "the body holds an op other than pure tile ops");
  }
  return check_yield(v, op, op->body) || check_block(v, op->body) ? -1 : 0;
}

static int check_op(verifier *v, const xk_op *op, int is_last) {
  for (int i = 0; i < op->nopnd; i++) {
    int id = op->opnd[i];
    NEED(id >= 0 && id < v->f->nvalues, "operand is not a value");
    NEED(v->live[id], "operand used before its definition or out of scope");
  }
  for (int i = 0; i < op->nres; i++)
    NEED(type_ok(R(i)), "result type invalid (tile dims must be powers of "
                        "two, rank <= 3)");
  int c = op->code;
  if (c == XK_OP_CONST || c == XK_OP_PROGRAM_ID || c == XK_OP_NUM_PROGRAMS ||
      c == XK_OP_ARANGE) {
    NEED(op->nopnd == 0 && op->nres == 1, "leaf op takes no operands");
    if (c == XK_OP_ARANGE)
      NEED(op->attr.hi > op->attr.lo && R(0).dtype == XK_I32 &&
               R(0).rank == 1 && R(0).shape[0] == op->attr.hi - op->attr.lo,
           "arange(lo, hi) is i32 [hi - lo]");
    else if (c != XK_OP_CONST)
      NEED(op->attr.axis >= 0 && op->attr.axis < 3 &&
               xk_type_eq(R(0), xk_type_scalar(XK_I32)),
           "program ids are i32 scalars on axis 0..2");
    else
      NEED(R(0).dtype != XK_PTR, "pointer constants are not allowed");
  } else if (c >= XK_OP_ADD && c <= XK_OP_CMP) {
    NEED(op->nopnd == 2 && op->nres == 1, "binary op takes two operands");
    if (check_binary(v, op))
      return -1;
  } else if (c >= XK_OP_NEG && c <= XK_OP_ABS) {
    NEED(op->nopnd == 1 && op->nres == 1, "unary op takes one operand");
    if (check_unary(v, op))
      return -1;
  } else if (c == XK_OP_SELECT) {
    NEED(op->nopnd == 3 && op->nres == 1, "select takes (cond, a, b)");
    NEED(T(0).dtype == XK_I1 && xk_type_same_shape(T(0), R(0)),
         "condition must be i1 of the result shape");
    NEED(xk_type_eq(T(1), R(0)) && xk_type_eq(T(2), R(0)),
         "select arms must have the result type");
  } else if (c == XK_OP_FMA) {
    NEED(op->nopnd == 3 && op->nres == 1, "fma takes (a, b, c)");
    NEED(xk_type_eq(T(0), R(0)) && xk_type_eq(T(1), R(0)) &&
             xk_type_eq(T(2), R(0)) && xk_dtype_is_float(R(0).dtype),
         "fma operands must be floats of the result type");
  } else if (c == XK_OP_CAST) {
    NEED(op->nopnd == 1 && op->nres == 1, "cast takes one operand");
    NEED(xk_type_same_shape(T(0), R(0)), "cast keeps the shape");
    NEED(T(0).dtype != XK_PTR && R(0).dtype != XK_PTR, "cast of pointers");
  } else if (c >= XK_OP_BROADCAST && c <= XK_OP_REDUCE) {
    NEED(op->nopnd == 1 && op->nres == 1, "shape op takes one operand");
    if (check_shape_op(v, op))
      return -1;
  } else if (c == XK_OP_DOT) {
    NEED(op->nres == 1, "dot has one result");
    if (check_dot(v, op))
      return -1;
  } else if (c == XK_OP_LOAD || c == XK_OP_STORE || c == XK_OP_ATOMIC_ADD) {
    NEED(op->nopnd >= 1, "memory op without a pointer");
    if (check_memory(v, op))
      return -1;
  } else if (c == XK_OP_ATOMIC) {
    if (check_atomic(v, op))
      return -1;
  } else if (c == XK_OP_BARRIER) {
    NEED(op->nopnd == 0 && op->nres == 0,
         "barrier takes no operands and has no result");
  } else if (c == XK_OP_PRINT) {
    NEED(op->nopnd == 1 && op->nres == 0,
         "print takes one operand and has no result");
    NEED(op->attr.i >= 0 && op->attr.i < v->f->nstrs,
         "print's prefix is no string of the function");
    int dt = xk_vtype(v->f, op->opnd[0]).dtype;
    NEED(xk_dtype_is_int(dt) || xk_dtype_is_float(dt),
         "print takes an int or float value");
  } else if (c == XK_OP_FOR) {
    if (check_for(v, op))
      return -1;
  } else if (c == XK_OP_IF) {
    if (check_if(v, op))
      return -1;
  } else if (c == XK_OP_SORT) {
    if (check_sort(v, op))
      return -1;
  } else if (c == XK_OP_EXIT) {
    NEED(op->nopnd == 0 && op->nres == 0, "exit takes no operands");
    NEED(!v->in_for, "exit inside a for body");
  } else if (c == XK_OP_YIELD) {
    NEED(is_last && v->f->blocks[op->block].parent_op >= 0,
         "yield must end a loop body or a branch");
  } else {
    NEED(0, "unknown opcode");
  }
  for (int i = 0; i < op->nres; i++)
    v->live[op->res[i]] = 1;
  return 0;
}

static int check_block(verifier *v, int b) {
  const xk_block *blk = &v->f->blocks[b];
  for (int i = 0; i < blk->nargs; i++) {
    if (!type_ok(xk_vtype(v->f, blk->args[i])))
      return xk_diag_set(v->d,
                         "%s: in kernel '%s': verifier: bad block "
                         "argument type",
                         v->f->file, v->f->name);
    v->live[blk->args[i]] = 1;
  }
  int last = -1;
  for (int i = 0; i < blk->nops; i++)
    if (!v->f->ops[blk->ops[i]].dead)
      last = i;
  for (int i = 0; i < blk->nops; i++) {
    const xk_op *op = &v->f->ops[blk->ops[i]];
    if (op->dead)
      continue;
    if (op->block != b)
      return fail(v, op, "op listed in a block it does not belong to");
    if (check_op(v, op, i == last))
      return -1;
  }
  /* values of a body are out of scope after it */
  for (int i = 0; i < blk->nargs; i++)
    v->live[blk->args[i]] = (char)(b == 0);
  if (b)
    for (int i = 0; i < blk->nops; i++) {
      const xk_op *op = &v->f->ops[blk->ops[i]];
      for (int j = 0; j < op->nres; j++)
        v->live[op->res[j]] = 0;
    }
  return 0;
}

int xk_func_verify(const xk_func *f, xk_diag *d) {
  verifier v = {f, d, calloc((size_t)f->nvalues + 1, 1), 0};
  if (!v.live)
    return xk_diag_set(d, "verifier: out of memory");
  int rc = f->nblocks > 0 && f->blocks[0].parent_op < 0
               ? check_block(&v, 0)
               : xk_diag_set(d, "%s: kernel '%s' has no entry block", f->file,
                             f->name);
  free(v.live);
  return rc;
}
