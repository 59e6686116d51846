/* Host lowering of arithmetic, casts, shape ops, reductions and dot. Each op
 * becomes a canonical loop over a buffer so LLVM's O3 vectorizes it. */
#include "lower_host_impl.h"

#include <math.h>
#include <string.h>

LLVMValueRef xk_hl_to_f32(xk_hl *h, LLVMValueRef x, int dt) {
  if (dt == XK_F16)
    return LLVMBuildFPExt(h->b, x, h->t_f32, "");
  if (dt == XK_BF16) {
    LLVMValueRef w = LLVMBuildZExt(h->b, x, h->t_i32, "");
    w = LLVMBuildShl(h->b, w, LLVMConstInt(h->t_i32, 16, 0), "");
    return LLVMBuildBitCast(h->b, w, h->t_f32, "");
  }
  return x;
}

/* f32 -> bf16 rounds to nearest even on the bits; NaNs stay (quiet) NaNs
 * instead of rounding into infinity. */
LLVMValueRef xk_hl_from_f32(xk_hl *h, LLVMValueRef x, int dt) {
  if (dt == XK_F16)
    return LLVMBuildFPTrunc(h->b, x, h->t_f16, "");
  if (dt != XK_BF16)
    return x;
  LLVMBuilderRef b = h->b;
  LLVMValueRef c16 = LLVMConstInt(h->t_i32, 16, 0);
  LLVMValueRef bits = LLVMBuildBitCast(b, x, h->t_i32, "");
  LLVMValueRef hi = LLVMBuildLShr(b, bits, c16, "");
  LLVMValueRef lsb = LLVMBuildAnd(b, hi, LLVMConstInt(h->t_i32, 1, 0), "");
  LLVMValueRef r = LLVMBuildAdd(b, bits, LLVMConstInt(h->t_i32, 0x7fff, 0), "");
  r = LLVMBuildAdd(b, r, lsb, "");
  r = LLVMBuildTrunc(b, LLVMBuildLShr(b, r, c16, ""), h->t_i16, "");
  LLVMValueRef q = LLVMBuildOr(b, LLVMBuildTrunc(b, hi, h->t_i16, ""),
                               LLVMConstInt(h->t_i16, 0x40, 0), "");
  LLVMValueRef nan = LLVMBuildFCmp(b, LLVMRealUNO, x, x, "");
  return LLVMBuildSelect(b, nan, q, r, "");
}

static uint16_t c_f32_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if (isnan(f))
    return (uint16_t)((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

int xk_hl_const(xk_hl *h, const xk_op *op, LLVMValueRef *out) {
  int dt = xk_vtype(h->f, op->res[0]).dtype;
  switch (dt) {
  case XK_I1:
    *out = LLVMConstInt(h->t_i1, op->attr.i != 0, 0);
    return 0;
  case XK_I32:
  case XK_I64:
    *out =
        LLVMConstInt(xk_hl_reg_type(h, dt), (unsigned long long)op->attr.i, 1);
    return 0;
  case XK_F16:
  case XK_F32:
    *out = LLVMConstReal(xk_hl_reg_type(h, dt), op->attr.f);
    return 0;
  case XK_BF16:
    *out = LLVMConstInt(h->t_i16, c_f32_to_bf16((float)op->attr.f), 0);
    return 0;
  default:
    if (op->attr.i)
      return xk_hl_err(h, op, "pointer constants other than 0");
    *out = LLVMConstNull(h->t_ptr);
    return 0;
  }
}

static LLVMValueRef intr1(xk_hl *h, const char *name, LLVMValueRef x) {
  LLVMTypeRef t = LLVMTypeOf(x);
  return xk_hl_call_intr(h, name, &t, 1, &x, 1);
}

static LLVMValueRef intr2(xk_hl *h, const char *name, LLVMValueRef x,
                          LLVMValueRef y) {
  LLVMTypeRef t = LLVMTypeOf(x);
  LLVMValueRef a[2] = {x, y};
  return xk_hl_call_intr(h, name, &t, 1, a, 2);
}

static int cast_elem(xk_hl *h, const xk_op *op, LLVMValueRef x, int from,
                     int to, LLVMValueRef *out) {
  LLVMBuilderRef b = h->b;
  LLVMTypeRef tt = xk_hl_reg_type(h, to);
  if (from == to) {
    *out = x;
  } else if (from == XK_PTR || to == XK_PTR) {
    return xk_hl_err(h, op, "casts to or from pointers are not supported");
  } else if (to == XK_I1) {
    *out =
        xk_dtype_is_float(from)
            ? LLVMBuildFCmp(b, LLVMRealUNE, xk_hl_to_f32(h, x, from),
                            LLVMConstReal(h->t_f32, 0), "")
            : LLVMBuildICmp(b, LLVMIntNE, x, LLVMConstNull(LLVMTypeOf(x)), "");
  } else if (from == XK_I1) {
    *out = xk_dtype_is_float(to)
               ? xk_hl_from_f32(h, LLVMBuildUIToFP(b, x, h->t_f32, ""), to)
               : LLVMBuildZExt(b, x, tt, "");
  } else if (xk_dtype_is_int(from) && xk_dtype_is_int(to)) {
    *out = LLVMBuildIntCast2(b, x, tt, 1, "");
  } else if (xk_dtype_is_int(from)) {
    /* one rounding straight to f16/f32; bf16 goes through f32 */
    *out = to == XK_BF16
               ? xk_hl_from_f32(h, LLVMBuildSIToFP(b, x, h->t_f32, ""), to)
               : LLVMBuildSIToFP(b, x, tt, "");
  } else if (xk_dtype_is_int(to)) {
    /* saturating like PTX cvt.rzi (NaN -> 0) instead of LLVM's poison */
    LLVMTypeRef ovl[2] = {tt, h->t_f32};
    LLVMValueRef f = xk_hl_to_f32(h, x, from);
    *out = xk_hl_call_intr(h, "llvm.fptosi.sat", ovl, 2, &f, 1);
  } else {
    *out = xk_hl_from_f32(h, xk_hl_to_f32(h, x, from), to);
  }
  return 0;
}

/* exp/exp2 by Cody-Waite reduction and Cephes' expf polynomial (about 1
 * ulp) in plain arithmetic, so loops vectorize: llvm.exp would become one
 * scalar expf call per element without a vector math library. */
static LLVMValueRef vexp(xk_hl *h, LLVMValueRef x, int base2) {
  static const double poly[] = {1.9875691500e-4, 1.3981999507e-3,
                                8.3334519073e-3, 4.1665795894e-2,
                                1.6666665459e-1, 5.0000001201e-1};
  LLVMBuilderRef b = h->b;
  LLVMTypeRef f = h->t_f32;
  /* past the clamps the result is 0 or inf anyway */
  LLVMValueRef xc =
      intr2(h, "llvm.minnum",
            intr2(h, "llvm.maxnum", x, LLVMConstReal(f, base2 ? -151 : -104)),
            LLVMConstReal(f, base2 ? 129 : 89));
  LLVMValueRef n, r;
  if (base2) {
    n = intr1(h, "llvm.rint", xc);
    r = LLVMBuildFMul(b, LLVMBuildFSub(b, xc, n, ""),
                      LLVMConstReal(f, 0.693147180559945309), "");
  } else {
    n = intr1(h, "llvm.rint",
              LLVMBuildFMul(b, xc, LLVMConstReal(f, 1.44269504088896341), ""));
    r = LLVMBuildFSub(
        b, xc, LLVMBuildFMul(b, n, LLVMConstReal(f, 0.693359375), ""), "");
    r = LLVMBuildFSub(
        b, r, LLVMBuildFMul(b, n, LLVMConstReal(f, -2.12194440e-4), ""), "");
  }
  LLVMValueRef p = LLVMConstReal(f, poly[0]);
  for (int i = 1; i < 6; i++)
    p = LLVMBuildFAdd(b, LLVMBuildFMul(b, p, r, ""), LLVMConstReal(f, poly[i]),
                      "");
  p = LLVMBuildFMul(b, p, LLVMBuildFMul(b, r, r, ""), "");
  p = LLVMBuildFAdd(b, LLVMBuildFAdd(b, p, r, ""), LLVMConstReal(f, 1), "");
  /* 2^n in two halves: n in [-151, 129] is not one normal float */
  LLVMValueRef ni = LLVMBuildFPToSI(b, n, h->t_i32, "");
  LLVMValueRef n1 = LLVMBuildAShr(b, ni, LLVMConstInt(h->t_i32, 1, 0), "");
  LLVMValueRef n2 = LLVMBuildSub(b, ni, n1, "");
  LLVMValueRef e[2] = {n1, n2};
  for (int i = 0; i < 2; i++) {
    LLVMValueRef bits =
        LLVMBuildAdd(b, e[i], LLVMConstInt(h->t_i32, 127, 0), "");
    bits = LLVMBuildShl(b, bits, LLVMConstInt(h->t_i32, 23, 0), "");
    p = LLVMBuildFMul(b, p, LLVMBuildBitCast(b, bits, f, ""), "");
  }
  return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealUNO, x, x, ""), x, p, "");
}

static const LLVMRealPredicate fpred[] = {LLVMRealOEQ, LLVMRealUNE,
                                          LLVMRealOLT, LLVMRealOLE,
                                          LLVMRealOGT, LLVMRealOGE};
static const LLVMIntPredicate spred[] = {LLVMIntEQ,  LLVMIntNE,  LLVMIntSLT,
                                         LLVMIntSLE, LLVMIntSGT, LLVMIntSGE};
static const LLVMIntPredicate upred[] = {LLVMIntEQ,  LLVMIntNE,  LLVMIntULT,
                                         LLVMIntULE, LLVMIntUGT, LLVMIntUGE};

static int float_elem(xk_hl *h, const xk_op *op, LLVMValueRef *in, int dt,
                      LLVMValueRef *out) {
  LLVMBuilderRef b = h->b;
  LLVMValueRef x = xk_hl_to_f32(h, in[0], dt), r;
  LLVMValueRef y = op->nopnd > 1 ? xk_hl_to_f32(h, in[1], dt) : NULL;
  switch (op->code) {
  case XK_OP_ADD:
    r = LLVMBuildFAdd(b, x, y, "");
    break;
  case XK_OP_SUB:
    r = LLVMBuildFSub(b, x, y, "");
    break;
  case XK_OP_MUL:
    r = LLVMBuildFMul(b, x, y, "");
    break;
  case XK_OP_DIV:
    r = LLVMBuildFDiv(b, x, y, "");
    break;
  case XK_OP_REM:
    r = LLVMBuildFRem(b, x, y, "");
    break;
  case XK_OP_MIN:
    r = intr2(h, "llvm.minnum", x, y);
    break;
  case XK_OP_MAX:
    r = intr2(h, "llvm.maxnum", x, y);
    break;
  case XK_OP_CMP:
    if (op->attr.pred < 0 || op->attr.pred > XK_GE)
      return xk_hl_err(h, op, "bad predicate");
    *out = LLVMBuildFCmp(b, fpred[op->attr.pred], x, y, "");
    return 0;
  case XK_OP_NEG:
    r = LLVMBuildFNeg(b, x, "");
    break;
  case XK_OP_EXP:
  case XK_OP_EXP2:
    r = vexp(h, x, op->code == XK_OP_EXP2);
    break;
  case XK_OP_LOG:
    r = intr1(h, "llvm.log", x);
    break;
  case XK_OP_SQRT:
    r = intr1(h, "llvm.sqrt", x);
    break;
  case XK_OP_RSQRT:
    r = LLVMBuildFDiv(b, LLVMConstReal(h->t_f32, 1.0), intr1(h, "llvm.sqrt", x),
                      "");
    break;
  case XK_OP_SIN:
    r = intr1(h, "llvm.sin", x);
    break;
  case XK_OP_COS:
    r = intr1(h, "llvm.cos", x);
    break;
  case XK_OP_ABS:
    r = intr1(h, "llvm.fabs", x);
    break;
  case XK_OP_LOG2:
    r = intr1(h, "llvm.log2", x);
    break;
  case XK_OP_FLOOR:
    r = intr1(h, "llvm.floor", x);
    break;
  case XK_OP_CEIL:
    r = intr1(h, "llvm.ceil", x);
    break;
  case XK_OP_FMA: {
    LLVMTypeRef t = LLVMTypeOf(x);
    LLVMValueRef a[3] = {x, y, xk_hl_to_f32(h, in[2], dt)};
    r = xk_hl_call_intr(h, "llvm.fma", &t, 1, a, 3);
    break;
  }
  default:
    return xk_hl_err(h, op, "not defined on floating-point operands");
  }
  *out = xk_hl_from_f32(h, r, dt);
  return 0;
}

/* Integer division never traps (x86 faults on /0 and INT_MIN/-1, a GPU does
 * not): x/0 and x%0 give 0, x/-1 is -x (wrapping), x%-1 is 0. */
static LLVMValueRef safe_divrem(xk_hl *h, LLVMValueRef x, LLVMValueRef y,
                                int rem) {
  LLVMBuilderRef b = h->b;
  LLVMTypeRef t = LLVMTypeOf(x);
  LLVMValueRef zero = LLVMConstNull(t), one = LLVMConstInt(t, 1, 0);
  LLVMValueRef m1 = LLVMConstAllOnes(t);
  LLVMValueRef is0 = LLVMBuildICmp(b, LLVMIntEQ, y, zero, "");
  LLVMValueRef ism1 = LLVMBuildICmp(b, LLVMIntEQ, y, m1, "");
  LLVMValueRef bad = LLVMBuildOr(b, is0, ism1, "");
  LLVMValueRef sy = LLVMBuildSelect(b, bad, one, y, "");
  LLVMValueRef r =
      rem ? LLVMBuildSRem(b, x, sy, "") : LLVMBuildSDiv(b, x, sy, "");
  LLVMValueRef special = rem ? zero : LLVMBuildSub(b, zero, x, "");
  r = LLVMBuildSelect(b, ism1, special, r, "");
  return LLVMBuildSelect(b, is0, zero, r, "");
}

static int int_elem(xk_hl *h, const xk_op *op, LLVMValueRef *in, int dt,
                    LLVMValueRef *out) {
  LLVMBuilderRef b = h->b;
  LLVMValueRef x = in[0], y = op->nopnd > 1 ? in[1] : NULL;
  int i1 = dt == XK_I1;
  switch (op->code) {
  case XK_OP_ADD:
    *out = LLVMBuildAdd(b, x, y, "");
    return 0;
  case XK_OP_SUB:
    *out = LLVMBuildSub(b, x, y, "");
    return 0;
  case XK_OP_MUL:
    *out = LLVMBuildMul(b, x, y, "");
    return 0;
  case XK_OP_DIV:
  case XK_OP_REM:
    if (i1)
      break;
    *out = safe_divrem(h, x, y, op->code == XK_OP_REM);
    return 0;
  case XK_OP_MIN: /* on i1 false < true */
    *out = i1 ? LLVMBuildAnd(b, x, y, "") : intr2(h, "llvm.smin", x, y);
    return 0;
  case XK_OP_MAX:
    *out = i1 ? LLVMBuildOr(b, x, y, "") : intr2(h, "llvm.smax", x, y);
    return 0;
  case XK_OP_AND:
    *out = LLVMBuildAnd(b, x, y, "");
    return 0;
  case XK_OP_OR:
    *out = LLVMBuildOr(b, x, y, "");
    return 0;
  case XK_OP_XOR:
    *out = LLVMBuildXor(b, x, y, "");
    return 0;
  case XK_OP_SHL:
    *out = LLVMBuildShl(b, x, y, "");
    return 0;
  case XK_OP_SHR:
    *out = LLVMBuildAShr(b, x, y, "");
    return 0;
  case XK_OP_CMP:
    if (op->attr.pred < 0 || op->attr.pred > XK_GE)
      return xk_hl_err(h, op, "bad predicate");
    *out = LLVMBuildICmp(b, (i1 ? upred : spred)[op->attr.pred], x, y, "");
    return 0;
  case XK_OP_NEG:
    *out = LLVMBuildNeg(b, x, "");
    return 0;
  case XK_OP_NOT:
    *out = LLVMBuildNot(b, x, "");
    return 0;
  case XK_OP_ABS: {
    if (i1) {
      *out = x;
      return 0;
    }
    LLVMTypeRef t = LLVMTypeOf(x);
    LLVMValueRef a[2] = {x, LLVMConstInt(h->t_i1, 0, 0)};
    *out = xk_hl_call_intr(h, "llvm.abs", &t, 1, a, 2);
    return 0;
  }
  default:
    break;
  }
  return xk_hl_err(h, op, "not defined on integer operands");
}

int xk_hl_elem(xk_hl *h, const xk_op *op, LLVMValueRef *in, LLVMValueRef *out) {
  int c = op->code;
  int odt = xk_vtype(h->f, op->opnd[c == XK_OP_SELECT ? 1 : 0]).dtype;
  int rdt = xk_vtype(h->f, op->res[0]).dtype;
  if (c == XK_OP_SELECT) {
    *out = LLVMBuildSelect(h->b, in[0], in[1], in[2], "");
    return 0;
  }
  if (c == XK_OP_CAST)
    return cast_elem(h, op, in[0], odt, rdt, out);
  if (odt == XK_PTR) {
    if (c == XK_OP_ADD) {
      xk_type pt = xk_vtype(h->f, op->opnd[0]);
      LLVMValueRef off = in[1];
      if (xk_vtype(h->f, op->opnd[1]).dtype == XK_I32)
        off = LLVMBuildSExt(h->b, off, h->t_i64, "");
      *out =
          LLVMBuildGEP2(h->b, xk_hl_mem_type(h, pt.elem), in[0], &off, 1, "");
      return 0;
    }
    if (c == XK_OP_CMP && op->attr.pred >= 0 && op->attr.pred <= XK_GE) {
      *out = LLVMBuildICmp(h->b, upred[op->attr.pred], in[0], in[1], "");
      return 0;
    }
    return xk_hl_err(h, op, "not defined on pointers");
  }
  if (xk_dtype_is_float(odt))
    return float_elem(h, op, in, odt, out);
  return int_elem(h, op, in, odt, out);
}

static int elem_arity(int code) {
  if (code == XK_OP_SELECT || code == XK_OP_FMA)
    return 3;
  if (code >= XK_OP_ADD && code <= XK_OP_CMP)
    return 2;
  return 1;
}

int xk_hl_elementwise_check(xk_hl *h, const xk_op *op) {
  if (op->nres != 1 || op->nopnd != elem_arity(op->code))
    return xk_hl_err(h, op, "wrong number of operands or results");
  xk_type rt = xk_vtype(h->f, op->res[0]);
  int ref = op->code == XK_OP_SELECT ? 1 : 0;
  xk_type ot = xk_vtype(h->f, op->opnd[ref]);
  for (int k = 0; k < op->nopnd; k++) {
    xk_type t = xk_vtype(h->f, op->opnd[k]);
    if (!xk_type_same_shape(t, rt))
      return xk_hl_err(h, op, "operand shapes differ from the result's");
    int ptr_off = op->code == XK_OP_ADD && ot.dtype == XK_PTR && k == 1;
    int sel_cond = op->code == XK_OP_SELECT && k == 0;
    if (ptr_off    ? (t.dtype != XK_I32 && t.dtype != XK_I64)
        : sel_cond ? t.dtype != XK_I1
                   : t.dtype != ot.dtype)
      return xk_hl_err(h, op, "operand dtypes do not match");
  }
  return 0;
}

int xk_hl_elementwise(xk_hl *h, const xk_op *op) {
  if (xk_hl_elementwise_check(h, op))
    return -1;
  xk_type rt = xk_vtype(h->f, op->res[0]);
  LLVMValueRef in[3];
  xk_hval *r = &h->vals[op->res[0]];
  int tile = 0;
  for (int k = 0; k < op->nopnd; k++)
    tile |= h->vals[op->opnd[k]].kind >= HV_BUF;
  if (!tile) {
    for (int k = 0; k < op->nopnd; k++)
      in[k] = h->vals[op->opnd[k]].v;
    r->kind = rt.rank ? HV_SPLAT : HV_SCALAR;
    return xk_hl_elem(h, op, in, &r->v);
  }
  int64_t n = xk_type_numel(rt);
  r->kind = HV_BUF;
  r->v = xk_hl_buf(h, rt.dtype, n);
  if (!r->v)
    return xk_hl_err(h, op, "out of memory");
  xk_hloop l;
  LLVMValueRef i = xk_hl_loop_begin(h, &l, n), x;
  for (int k = 0; k < op->nopnd; k++)
    if (!(in[k] = xk_hl_read(h, op->opnd[k], i)))
      return -1;
  if (xk_hl_elem(h, op, in, &x))
    return -1;
  xk_hl_write(h, r->v, rt.dtype, i, x);
  xk_hl_loop_end(h, &l);
  xk_hl_aff_elementwise(h, op);
  return 0;
}

static void strides(xk_type t, int64_t *s) {
  int64_t acc = 1;
  for (int d = t.rank - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= t.shape[d];
  }
}

/* dst[row-major index over shape] = src[sum_d i_d * sstride_d] */
static void strided_copy(xk_hl *h, LLVMValueRef dst, int src, xk_type rt,
                         const int64_t *sstride) {
  xk_hloop l[XK_MAX_RANK];
  LLVMValueRef iv[XK_MAX_RANK];
  for (int d = 0; d < rt.rank; d++)
    iv[d] = xk_hl_loop_begin(h, &l[d], rt.shape[d]);
  LLVMValueRef di = xk_hl_i64(h, 0), si = xk_hl_i64(h, 0);
  for (int d = 0; d < rt.rank; d++) {
    di = LLVMBuildNSWAdd(
        h->b, LLVMBuildNSWMul(h->b, di, xk_hl_i64(h, rt.shape[d]), ""), iv[d],
        "");
    si = LLVMBuildNSWAdd(
        h->b, si, LLVMBuildNSWMul(h->b, iv[d], xk_hl_i64(h, sstride[d]), ""),
        "");
  }
  xk_hl_write(h, dst, rt.dtype, di, xk_hl_read(h, src, si));
  for (int d = rt.rank - 1; d >= 0; d--)
    xk_hl_loop_end(h, &l[d]);
}

int xk_hl_shape_op(xk_hl *h, const xk_op *op) {
  if (op->nopnd != 1 || op->nres != 1)
    return xk_hl_err(h, op, "expects one operand and one result");
  int src = op->opnd[0];
  xk_type st = xk_vtype(h->f, src), rt = xk_vtype(h->f, op->res[0]);
  const xk_hval *s = &h->vals[src];
  xk_hval *r = &h->vals[op->res[0]];
  if (st.dtype != rt.dtype || st.elem != rt.elem)
    return xk_hl_err(h, op, "operand and result dtypes differ");
  if (op->code != XK_OP_BROADCAST && xk_type_numel(st) != xk_type_numel(rt))
    return xk_hl_err(h, op, "element counts differ");
  if (s->kind != HV_BUF) {
    r->kind = rt.rank ? HV_SPLAT : HV_SCALAR;
    r->v = s->v;
    return 0;
  }
  if (!rt.rank) { /* a one-element tile back to a scalar */
    r->kind = HV_SCALAR;
    r->v = xk_hl_read(h, src, xk_hl_i64(h, 0));
    return 0;
  }
  int64_t ss[XK_MAX_RANK], sstride[XK_MAX_RANK];
  strides(st, ss);
  switch (op->code) {
  case XK_OP_EXPAND_DIMS:
  case XK_OP_RESHAPE:
    /* row-major order is unchanged: share the buffer */
    *r = *s;
    if (op->code == XK_OP_RESHAPE) {
      r->aff = r->aff && xk_type_same_shape(st, rt);
    } else if (op->attr.axis < 0 || op->attr.axis > st.rank) {
      return xk_hl_err(h, op, "bad axis");
    } else {
      for (int d = rt.rank - 1; d >= 0; d--)
        r->astr[d] = d < op->attr.axis    ? s->astr[d]
                     : d == op->attr.axis ? NULL
                                          : s->astr[d - 1];
    }
    return 0;
  case XK_OP_BROADCAST:
    if (st.rank != rt.rank)
      return xk_hl_err(h, op, "operand rank differs from the result's");
    for (int d = 0; d < rt.rank; d++) {
      if (st.shape[d] != rt.shape[d] && st.shape[d] != 1)
        return xk_hl_err(h, op, "operand dims must match or be 1");
      sstride[d] = st.shape[d] == 1 ? 0 : ss[d];
    }
    break;
  default: /* TRANS */
    if (st.rank != rt.rank)
      return xk_hl_err(h, op, "operand rank differs from the result's");
    for (int d = 0; d < rt.rank; d++) {
      int p = op->attr.perm[d];
      if (p < 0 || p >= st.rank || st.shape[p] != rt.shape[d])
        return xk_hl_err(h, op, "bad permutation");
      sstride[d] = ss[p];
    }
    break;
  }
  r->kind = HV_BUF;
  r->v = xk_hl_buf(h, rt.dtype, xk_type_numel(rt));
  if (!r->v)
    return xk_hl_err(h, op, "out of memory");
  strided_copy(h, r->v, src, rt, sstride);
  if (s->aff) { /* the same affine form, re-indexed */
    r->aff = 1;
    r->abase = s->abase;
    for (int d = 0; d < rt.rank; d++)
      r->astr[d] = op->code == XK_OP_TRANS ? s->astr[op->attr.perm[d]]
                   : st.shape[d] == 1      ? NULL
                                           : s->astr[d];
  }
  return 0;
}
