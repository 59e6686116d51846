/* Scalar arithmetic of the per-thread lowering: one element of an
 * elementwise op, casts, constants. f16/bf16 compute in f32 and round back. */
#include "lower_nvptx_int.h"

static int is_half(int dt) {
  return dt == XK_F16 || dt == XK_BF16;
}

LLVMValueRef nv_ext_f32(nv *s, int dt, LLVMValueRef x) {
  return is_half(dt)
             ? LLVMBuildFPExt(s->b, x, LLVMFloatTypeInContext(s->ctx), "")
             : x;
}

LLVMValueRef nv_trunc_from_f32(nv *s, int dt, LLVMValueRef x) {
  return is_half(dt) ? LLVMBuildFPTrunc(s->b, x, nv_reg_ty(s, dt), "") : x;
}

static LLVMValueRef minmax(nv *s, int is_max, int dt, LLVMValueRef a,
                           LLVMValueRef b) {
  if (xk_dtype_is_float(dt)) {
    LLVMValueRef args[2] = {a, b};
    return nv_call(s, is_max ? "llvm.maxnum.f32" : "llvm.minnum.f32",
                   LLVMFloatTypeInContext(s->ctx), args, 2);
  }
  LLVMValueRef c =
      LLVMBuildICmp(s->b, is_max ? LLVMIntSGT : LLVMIntSLT, a, b, "");
  return LLVMBuildSelect(s->b, c, a, b, "");
}

/* Elementwise op on scalars; `dt` is the operands' dtype (the first
 * operand's for ADD on pointers, SELECT's value dtype, CAST's source). */
LLVMValueRef nv_ew(nv *s, const xk_op *op, LLVMValueRef *a) {
  const xk_func *f = s->f;
  int dt = xk_vtype(f, op->opnd[0]).dtype;
  int rt = xk_vtype(f, op->res[0]).dtype;
  LLVMBuilderRef b = s->b;
  LLVMTypeRef f32 = LLVMFloatTypeInContext(s->ctx);
  int fl = xk_dtype_is_float(dt);
  if (op->code == XK_OP_ADD && dt == XK_PTR) {
    int ot = xk_vtype(f, op->opnd[1]).dtype;
    LLVMValueRef idx =
        ot == XK_I64
            ? a[1]
            : LLVMBuildSExt(b, a[1], LLVMInt64TypeInContext(s->ctx), "");
    return LLVMBuildGEP2(b, nv_mem_ty(s, xk_vtype(f, op->opnd[0]).elem), a[0],
                         &idx, 1, "");
  }
  if (op->code == XK_OP_SELECT)
    return LLVMBuildSelect(b, a[0], a[1], a[2], "");
  if (op->code == XK_OP_CAST) {
    LLVMTypeRef to = nv_reg_ty(s, rt);
    if (dt == rt)
      return a[0];
    if (rt == XK_I1)
      return fl ? LLVMBuildFCmp(b, LLVMRealUNE, a[0],
                                LLVMConstNull(LLVMTypeOf(a[0])), "")
                : LLVMBuildICmp(b, LLVMIntNE, a[0],
                                LLVMConstNull(LLVMTypeOf(a[0])), "");
    if (fl && xk_dtype_is_float(rt))
      return nv_trunc_from_f32(s, rt, nv_ext_f32(s, dt, a[0]));
    if (fl)
      return LLVMBuildFPToSI(b, nv_ext_f32(s, dt, a[0]), to, "");
    if (xk_dtype_is_float(rt)) {
      LLVMValueRef x = dt == XK_I1 ? LLVMBuildUIToFP(b, a[0], f32, "")
                                   : LLVMBuildSIToFP(b, a[0], f32, "");
      return nv_trunc_from_f32(s, rt, x);
    }
    if (dt == XK_I1)
      return LLVMBuildZExt(b, a[0], to, "");
    return xk_dtype_bits(rt) > xk_dtype_bits(dt)
               ? LLVMBuildSExt(b, a[0], to, "")
               : LLVMBuildTrunc(b, a[0], to, "");
  }
  LLVMValueRef x = fl ? nv_ext_f32(s, dt, a[0]) : a[0];
  LLVMValueRef y = op->nopnd > 1 && fl ? nv_ext_f32(s, dt, a[1])
                   : op->nopnd > 1     ? a[1]
                                       : NULL;
  LLVMValueRef r = NULL;
  switch (op->code) {
  case XK_OP_ADD:
    r = fl ? LLVMBuildFAdd(b, x, y, "") : LLVMBuildAdd(b, x, y, "");
    break;
  case XK_OP_SUB:
    r = fl ? LLVMBuildFSub(b, x, y, "") : LLVMBuildSub(b, x, y, "");
    break;
  case XK_OP_MUL:
    r = fl ? LLVMBuildFMul(b, x, y, "") : LLVMBuildMul(b, x, y, "");
    break;
  case XK_OP_DIV:
    r = fl ? LLVMBuildFDiv(b, x, y, "") : LLVMBuildSDiv(b, x, y, "");
    break;
  case XK_OP_REM:
    r = fl ? LLVMBuildFRem(b, x, y, "") : LLVMBuildSRem(b, x, y, "");
    break;
  case XK_OP_MIN:
  case XK_OP_MAX:
    r = minmax(s, op->code == XK_OP_MAX, dt, x, y);
    break;
  case XK_OP_AND:
    r = LLVMBuildAnd(b, x, y, "");
    break;
  case XK_OP_OR:
    r = LLVMBuildOr(b, x, y, "");
    break;
  case XK_OP_XOR:
    r = LLVMBuildXor(b, x, y, "");
    break;
  case XK_OP_SHL:
    r = LLVMBuildShl(b, x, y, "");
    break;
  case XK_OP_SHR:
    r = LLVMBuildAShr(b, x, y, "");
    break;
  case XK_OP_CMP: {
    static const LLVMRealPredicate fp[] = {LLVMRealOEQ, LLVMRealUNE,
                                           LLVMRealOLT, LLVMRealOLE,
                                           LLVMRealOGT, LLVMRealOGE};
    static const LLVMIntPredicate ip[] = {LLVMIntEQ,  LLVMIntNE,  LLVMIntSLT,
                                          LLVMIntSLE, LLVMIntSGT, LLVMIntSGE};
    int p = op->attr.pred;
    if (dt == XK_I1 && p >= XK_LT) /* true > false: compare unsigned */
      return LLVMBuildICmp(b, (LLVMIntPredicate)(ip[p] - 4), x, y, "");
    return fl ? LLVMBuildFCmp(b, fp[p], x, y, "")
              : LLVMBuildICmp(b, ip[p], x, y, "");
  }
  case XK_OP_NEG:
    r = fl ? LLVMBuildFNeg(b, x, "") : LLVMBuildNeg(b, x, "");
    break;
  case XK_OP_NOT:
    r = LLVMBuildNot(b, x, "");
    break;
  case XK_OP_ABS:
    if (fl)
      r = nv_call(s, "llvm.fabs.f32", f32, &x, 1);
    else
      r = LLVMBuildSelect(
          b, LLVMBuildICmp(b, LLVMIntSLT, x, LLVMConstNull(LLVMTypeOf(x)), ""),
          LLVMBuildNeg(b, x, ""), x, "");
    break;
  case XK_OP_FLOOR:
    r = nv_call(s, "llvm.floor.f32", f32, &x, 1);
    break;
  case XK_OP_CEIL:
    r = nv_call(s, "llvm.ceil.f32", f32, &x, 1);
    break;
  case XK_OP_FMA: {
    LLVMValueRef t[3] = {x, y, nv_ext_f32(s, dt, a[2])};
    r = nv_call(s, "llvm.fma.f32", f32, t, 3);
    break;
  }
  case XK_OP_EXP:
  case XK_OP_EXP2:
  case XK_OP_LOG:
  case XK_OP_LOG2:
  case XK_OP_SQRT:
  case XK_OP_RSQRT:
  case XK_OP_SIN:
  case XK_OP_COS:
    r = s->pr->math(s, op->code, x);
    break;
  default:
    return NULL;
  }
  return fl ? nv_trunc_from_f32(s, dt, r) : r;
}

LLVMValueRef nv_const_of(nv *s, const xk_op *op) {
  int dt = xk_vtype(s->f, op->res[0]).dtype;
  if (xk_dtype_is_float(dt))
    return LLVMConstReal(nv_reg_ty(s, dt), op->attr.f);
  if (dt == XK_PTR)
    return LLVMConstNull(nv_reg_ty(s, dt));
  return LLVMConstInt(nv_reg_ty(s, dt), (unsigned long long)op->attr.i, 1);
}
