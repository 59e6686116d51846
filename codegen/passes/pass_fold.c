/* Constant folding over splat constants, plus the identities that tracing
 * produces constantly (offset + 0, index * 1). Folding rewrites the op into
 * a CONST in place, so its result id and every use stay valid. */
#include "passes.h"

#include <math.h>
#include <stdint.h>

typedef struct {
  int is_float;
  int64_t i;
  double f;
} scalar;

static int const_of(const xk_func *f, int v, scalar *s) {
  int d = f->values[v].def_op;
  if (d < 0 || f->ops[d].code != XK_OP_CONST || f->ops[d].dead)
    return 0;
  s->is_float = xk_dtype_is_float(f->values[v].type.dtype);
  s->i = f->ops[d].attr.i;
  s->f = f->ops[d].attr.f;
  return 1;
}

/* Wrap an integer to the width of dtype, as the machine would. */
static int64_t wrap(int dt, int64_t x) {
  if (dt == XK_I1)
    return x & 1;
  if (dt == XK_I32)
    return (int32_t)(uint32_t)(uint64_t)x;
  return x;
}

/* sign: -1, 0, 1 as a <, ==, > b */
static int cmp_holds(int pred, int sign) {
  switch (pred) {
  case XK_EQ:
    return sign == 0;
  case XK_NE:
    return sign != 0;
  case XK_LT:
    return sign < 0;
  case XK_LE:
    return sign <= 0;
  case XK_GT:
    return sign > 0;
  default:
    return sign >= 0;
  }
}

static int fold_int_binary(int code, int pred, int64_t a, int64_t b,
                           int64_t *r) {
  switch (code) {
  case XK_OP_ADD:
    *r = (int64_t)((uint64_t)a + (uint64_t)b);
    return 1;
  case XK_OP_SUB:
    *r = (int64_t)((uint64_t)a - (uint64_t)b);
    return 1;
  case XK_OP_MUL:
    *r = (int64_t)((uint64_t)a * (uint64_t)b);
    return 1;
  case XK_OP_DIV:
    if (b == 0 || (b == -1 && a == INT64_MIN))
      return 0;
    *r = a / b;
    return 1;
  case XK_OP_REM:
    if (b == 0 || (b == -1 && a == INT64_MIN))
      return 0;
    *r = a % b;
    return 1;
  case XK_OP_MIN:
    *r = a < b ? a : b;
    return 1;
  case XK_OP_MAX:
    *r = a > b ? a : b;
    return 1;
  case XK_OP_AND:
    *r = a & b;
    return 1;
  case XK_OP_OR:
    *r = a | b;
    return 1;
  case XK_OP_XOR:
    *r = a ^ b;
    return 1;
  case XK_OP_SHL:
    if (b < 0 || b > 63)
      return 0;
    *r = (int64_t)((uint64_t)a << b);
    return 1;
  case XK_OP_SHR:
    if (b < 0 || b > 63)
      return 0;
    *r = a >> b;
    return 1;
  case XK_OP_CMP:
    *r = cmp_holds(pred, (a > b) - (a < b));
    return 1;
  default:
    return 0;
  }
}

static int fold_float_binary(int code, int pred, double a, double b, double *r,
                             int64_t *ir) {
  switch (code) {
  case XK_OP_ADD:
    *r = a + b;
    return 1;
  case XK_OP_SUB:
    *r = a - b;
    return 1;
  case XK_OP_MUL:
    *r = a * b;
    return 1;
  case XK_OP_DIV:
    *r = a / b;
    return 1;
  case XK_OP_REM:
    *r = fmod(a, b);
    return 1;
  case XK_OP_MIN:
    *r = fmin(a, b);
    return 1;
  case XK_OP_MAX:
    *r = fmax(a, b);
    return 1;
  case XK_OP_CMP:
    if (a != a || b != b) /* NaN: only ne holds */
      *ir = pred == XK_NE;
    else
      *ir = cmp_holds(pred, (a > b) - (a < b));
    return 1;
  default:
    return 0;
  }
}

static int fold_unary(int code, int dt, scalar a, scalar *r) {
  r->is_float = a.is_float;
  if (!a.is_float) {
    switch (code) {
    case XK_OP_NEG:
      r->i = -(uint64_t)a.i;
      return 1;
    case XK_OP_NOT:
      r->i = dt == XK_I1 ? !a.i : ~a.i;
      return 1;
    case XK_OP_ABS:
      r->i = a.i < 0 ? -(uint64_t)a.i : (uint64_t)a.i;
      return 1;
    default:
      return 0;
    }
  }
  double x = a.f;
  switch (code) {
  case XK_OP_NEG:
    r->f = -x;
    return 1;
  case XK_OP_ABS:
    r->f = fabs(x);
    return 1;
  case XK_OP_EXP:
    r->f = exp(x);
    return 1;
  case XK_OP_EXP2:
    r->f = exp2(x);
    return 1;
  case XK_OP_LOG:
    r->f = log(x);
    return 1;
  case XK_OP_SQRT:
    r->f = sqrt(x);
    return 1;
  case XK_OP_RSQRT:
    r->f = 1.0 / sqrt(x);
    return 1;
  case XK_OP_SIN:
    r->f = sin(x);
    return 1;
  case XK_OP_COS:
    r->f = cos(x);
    return 1;
  case XK_OP_LOG2:
    r->f = log2(x);
    return 1;
  case XK_OP_FLOOR:
    r->f = floor(x);
    return 1;
  case XK_OP_CEIL:
    r->f = ceil(x);
    return 1;
  default:
    return 0;
  }
}

static int fold_cast(int to, scalar a, scalar *r) {
  r->is_float = xk_dtype_is_float(to);
  if (r->is_float) {
    r->f = a.is_float ? a.f : (double)a.i;
    if (to == XK_F32)
      r->f = (float)r->f;
    return to == XK_F32 || !a.is_float; /* f16 rounding: leave to codegen */
  }
  if (to == XK_I1) {
    r->i = a.is_float ? a.f != 0 : a.i != 0;
    return 1;
  }
  if (a.is_float && !(fabs(a.f) < 9.2e18))
    return 0; /* out of range: undefined, keep it for the machine */
  r->i = wrap(to, a.is_float ? (int64_t)a.f : a.i);
  return 1;
}

static void to_const(xk_op *op, scalar s) {
  op->code = XK_OP_CONST;
  op->nopnd = 0;
  op->attr = (xk_attr){0};
  op->attr.i = s.i;
  op->attr.f = s.f;
}

/* Returns 1 when op became a constant. */
static int fold_op(xk_func *f, xk_op *op) {
  scalar a, b, c, r = {0};
  int code = op->code;
  int rdt = op->nres == 1 ? f->values[op->res[0]].type.dtype : -1;
  if (code == XK_OP_CONST || op->nopnd == 0 || op->nres != 1)
    return 0;
  if (!const_of(f, op->opnd[0], &a))
    return 0;
  if (code >= XK_OP_ADD && code <= XK_OP_CMP) {
    if (!const_of(f, op->opnd[1], &b) || rdt == XK_PTR)
      return 0;
    if (!a.is_float) {
      if (!fold_int_binary(code, op->attr.pred, a.i, b.i, &r.i))
        return 0;
      r.i = wrap(rdt, r.i);
    } else {
      if (!fold_float_binary(code, op->attr.pred, a.f, b.f, &r.f, &r.i))
        return 0;
      if (rdt == XK_F32)
        r.f = (float)r.f;
      else if (rdt != XK_I1)
        return 0; /* f16/bf16 arithmetic rounds per op: leave to codegen */
    }
  } else if (code >= XK_OP_NEG && code <= XK_OP_ABS) {
    if (a.is_float && rdt != XK_F32)
      return 0;
    if (!fold_unary(code, rdt, a, &r))
      return 0;
    if (r.is_float)
      r.f = (float)r.f;
    else
      r.i = wrap(rdt, r.i);
  } else if (code == XK_OP_SELECT) {
    if (!const_of(f, op->opnd[1], &b) || !const_of(f, op->opnd[2], &c))
      return 0;
    r = a.i ? b : c;
  } else if (code == XK_OP_CAST) {
    if (!fold_cast(rdt, a, &r))
      return 0;
  } else if (code >= XK_OP_BROADCAST && code <= XK_OP_TRANS) {
    r = a; /* a splat stays a splat under any reshaping */
  } else {
    return 0;
  }
  to_const(op, r);
  return 1;
}

static int is_int_const(const xk_func *f, int v, int64_t k) {
  scalar s;
  return const_of(f, v, &s) && !s.is_float && s.i == k;
}

/* x + 0, 0 + x, x - 0, x * 1, 1 * x on integers (float identities are not
 * exact under signed zeros). */
static int fold_identity(xk_func *f, xk_op *op) {
  if (op->nopnd != 2 || op->nres != 1)
    return 0;
  int x = -1, r = op->res[0], a = op->opnd[0], b = op->opnd[1];
  xk_type rt = f->values[r].type;
  if (xk_dtype_is_float(rt.dtype))
    return 0;
  if ((op->code == XK_OP_ADD || op->code == XK_OP_SUB) && is_int_const(f, b, 0))
    x = a;
  else if (op->code == XK_OP_ADD && is_int_const(f, a, 0))
    x = b;
  else if (op->code == XK_OP_MUL && is_int_const(f, b, 1))
    x = a;
  else if (op->code == XK_OP_MUL && is_int_const(f, a, 1))
    x = b;
  if (x < 0 || !xk_type_eq(f->values[x].type, rt))
    return 0;
  xk_func_replace_uses(f, r, x);
  op->dead = 1;
  return 1;
}

int xk_pass_fold(xk_func *f) {
  int n = 0;
  /* ops are created after their operands, so one forward sweep folds
   * chains completely */
  for (int i = 0; i < f->nops; i++) {
    xk_op *op = &f->ops[i];
    if (!op->dead)
      n += fold_op(f, op) || fold_identity(f, op);
  }
  return n;
}
