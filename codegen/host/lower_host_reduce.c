/* Host lowering of REDUCE and DOT: loop nests whose innermost loop is
 * contiguous so LLVM vectorizes it; f16/bf16 accumulate in f32. */
#include "lower_host_impl.h"

#include <math.h>

static LLVMValueRef intr2(xk_hl *h, const char *name, LLVMValueRef x,
                          LLVMValueRef y) {
  LLVMTypeRef t = LLVMTypeOf(x);
  LLVMValueRef a[2] = {x, y};
  return xk_hl_call_intr(h, name, &t, 1, a, 2);
}

static LLVMValueRef ld(xk_hl *h, LLVMTypeRef t, LLVMValueRef buf,
                       LLVMValueRef i) {
  return LLVMBuildLoad2(h->b, t, LLVMBuildInBoundsGEP2(h->b, t, buf, &i, 1, ""),
                        "");
}

static void st(xk_hl *h, LLVMTypeRef t, LLVMValueRef buf, LLVMValueRef i,
               LLVMValueRef x) {
  LLVMBuildStore(h->b, x, LLVMBuildInBoundsGEP2(h->b, t, buf, &i, 1, ""));
}

static LLVMValueRef ix(xk_hl *h, LLVMValueRef a, int64_t m, LLVMValueRef b) {
  return LLVMBuildNSWAdd(h->b, LLVMBuildNSWMul(h->b, a, xk_hl_i64(h, m), ""), b,
                         "");
}

static LLVMValueRef combine(xk_hl *h, int red, int fl, LLVMValueRef s,
                            LLVMValueRef x) {
  if (red == XK_RED_SUM) {
    if (!fl)
      return LLVMBuildAdd(h->b, s, x, "");
    LLVMValueRef v = LLVMBuildFAdd(h->b, s, x, "");
    /* the order of a tile sum is unspecified (a tree on GPUs) */
    LLVMSetFastMathFlags(v, LLVMFastMathAllowReassoc);
    return v;
  }
  const char *nm = fl ? (red == XK_RED_MAX ? "llvm.maxnum" : "llvm.minnum")
                      : (red == XK_RED_MAX ? "llvm.smax" : "llvm.smin");
  return intr2(h, nm, s, x);
}

/* Reduces x viewed as [outer, n, inner] over n, accumulating a row of
 * `inner` partial results so the innermost loop is contiguous. A reduction
 * over the last axis (inner 1) keeps LANES partial results instead, combined
 * at the end, so it vectorizes too. f16/bf16 accumulate in f32. */
#define LANES 16
int xk_hl_reduce(xk_hl *h, const xk_op *op) {
  int src = op->opnd[0];
  xk_type xt = xk_vtype(h->f, src), rt = xk_vtype(h->f, op->res[0]);
  int a = op->attr.axis, dt = xt.dtype, red = op->attr.red;
  if (op->nopnd != 1 || a < 0 || a >= xt.rank || rt.rank != xt.rank - 1)
    return xk_hl_err(h, op, "bad axis or result rank");
  if (dt == XK_I1 || dt == XK_PTR || dt != rt.dtype)
    return xk_hl_err(h, op, "reduces f16, bf16, f32, i32 and i64 only");
  if (red < XK_RED_SUM || red > XK_RED_MIN)
    return xk_hl_err(h, op, "unknown reduction");
  int fl = xk_dtype_is_float(dt);
  int adt = fl ? XK_F32 : dt;
  LLVMTypeRef at = xk_hl_reg_type(h, adt);
  int64_t outer = 1, inner = 1, n = xt.shape[a];
  for (int d = 0; d < a; d++)
    outer *= xt.shape[d];
  for (int d = a + 1; d < xt.rank; d++)
    inner *= xt.shape[d];
  int64_t lanes = inner == 1 && n % LANES == 0 && n >= 2 * LANES ? LANES : 1;
  int64_t w = inner * lanes, nk = n / lanes;
  LLVMValueRef init;
  if (red == XK_RED_SUM)
    init = LLVMConstNull(at);
  else if (fl)
    init = LLVMConstReal(at, red == XK_RED_MAX ? -INFINITY : INFINITY);
  else
    init = LLVMConstInt(at,
                        red == XK_RED_MAX
                            ? (dt == XK_I32 ? (unsigned long long)INT32_MIN
                                            : (unsigned long long)INT64_MIN)
                            : (dt == XK_I32 ? (unsigned long long)INT32_MAX
                                            : (unsigned long long)INT64_MAX),
                        1);
  LLVMValueRef acc = xk_hl_buf(h, adt, w);
  xk_hval *r = &h->vals[op->res[0]];
  if (rt.rank) {
    r->kind = HV_BUF;
    r->v = xk_hl_buf(h, dt, outer * inner);
  }
  if (!acc || (rt.rank && !r->v))
    return xk_hl_err(h, op, "out of memory");
  xk_hloop lo, lk, lj;
  LLVMValueRef o = xk_hl_loop_begin(h, &lo, outer), j;
  j = xk_hl_loop_begin(h, &lj, w);
  st(h, at, acc, j, init);
  xk_hl_loop_end(h, &lj);
  LLVMValueRef k = xk_hl_loop_begin(h, &lk, nk);
  j = xk_hl_loop_begin(h, &lj, w);
  LLVMValueRef x = xk_hl_read(h, src, ix(h, ix(h, o, nk, k), w, j));
  x = xk_hl_to_f32(h, x, dt);
  st(h, at, acc, j, combine(h, red, fl, ld(h, at, acc, j), x));
  xk_hl_loop_end(h, &lj);
  xk_hl_loop_end(h, &lk);
  if (lanes > 1) { /* acc[0] <- acc[0] op ... op acc[lanes-1] */
    LLVMValueRef z = xk_hl_i64(h, 0);
    j = xk_hl_loop_begin(h, &lj, lanes - 1);
    LLVMValueRef j1 = LLVMBuildNSWAdd(h->b, j, xk_hl_i64(h, 1), "");
    st(h, at, acc, z,
       combine(h, red, fl, ld(h, at, acc, z), ld(h, at, acc, j1)));
    xk_hl_loop_end(h, &lj);
  }
  if (rt.rank) {
    j = xk_hl_loop_begin(h, &lj, inner);
    xk_hl_write(h, r->v, dt, ix(h, o, inner, j),
                xk_hl_from_f32(h, ld(h, at, acc, j), dt));
    xk_hl_loop_end(h, &lj);
  }
  xk_hl_loop_end(h, &lo);
  if (!rt.rank) {
    r->kind = HV_SCALAR;
    r->v = xk_hl_from_f32(h, ld(h, at, acc, xk_hl_i64(h, 0)), dt);
  }
  return 0;
}

/* dot operand as f32: converted once into a scratch buffer (or a register
 * for uniform tiles) so the inner loop is a plain f32 FMA. */
static int dot_operand(xk_hl *h, int v, LLVMValueRef *buf,
                       LLVMValueRef *splat) {
  xk_type t = xk_vtype(h->f, v);
  const xk_hval *x = &h->vals[v];
  *buf = *splat = NULL;
  if (x->kind != HV_BUF) {
    *splat = xk_hl_to_f32(h, x->v, t.dtype);
    return 0;
  }
  if (t.dtype == XK_F32) {
    *buf = x->v;
    return 0;
  }
  int64_t n = xk_type_numel(t);
  *buf = xk_hl_buf(h, XK_F32, n);
  if (!*buf)
    return -1;
  xk_hloop l;
  LLVMValueRef i = xk_hl_loop_begin(h, &l, n);
  st(h, h->t_f32, *buf, i, xk_hl_to_f32(h, xk_hl_read(h, v, i), t.dtype));
  xk_hl_loop_end(h, &l);
  return 0;
}

static LLVMValueRef round_f16(xk_hl *h, LLVMValueRef x) {
  return xk_hl_to_f32(h, xk_hl_from_f32(h, x, XK_F16), XK_F16);
}

int xk_hl_dot(xk_hl *h, const xk_op *op) {
  if (op->nopnd != 3)
    return xk_hl_err(h, op, "expects (a, b, acc)");
  xk_type at = xk_vtype(h->f, op->opnd[0]), bt = xk_vtype(h->f, op->opnd[1]);
  xk_type ct = xk_vtype(h->f, op->opnd[2]), rt = xk_vtype(h->f, op->res[0]);
  if (at.rank != 2 || bt.rank != 2 || at.shape[1] != bt.shape[0] ||
      !xk_type_same_shape(ct, rt) || rt.rank != 2 ||
      rt.shape[0] != at.shape[0] || rt.shape[1] != bt.shape[1])
    return xk_hl_err(h, op, "shapes must be [M,K]x[K,N]+[M,N]");
  if (at.dtype != bt.dtype || !xk_dtype_is_float(at.dtype) ||
      ct.dtype != XK_F32 || rt.dtype != XK_F32)
    return xk_hl_err(h, op, "a, b must be the same float dtype, acc f32");
  int64_t M = rt.shape[0], N = rt.shape[1], K = at.shape[1];
  xk_hval *r = &h->vals[op->res[0]];
  r->kind = HV_BUF;
  r->v = xk_hl_buf(h, XK_F32, M * N);
  LLVMValueRef ab, as, bb, bs;
  if (!r->v || dot_operand(h, op->opnd[0], &ab, &as) ||
      dot_operand(h, op->opnd[1], &bb, &bs))
    return xk_hl_err(h, op, "out of memory");
  LLVMValueRef res = r->v;
  xk_hl_copy_into(h, res, op->opnd[2]);
  int f16acc = op->attr.i == XK_DOT_ACC_F16;
  if (f16acc) {
    xk_hloop l;
    LLVMValueRef e = xk_hl_loop_begin(h, &l, M * N);
    st(h, h->t_f32, res, e, round_f16(h, ld(h, h->t_f32, res, e)));
    xk_hl_loop_end(h, &l);
  }
  /* i, k, j order: the j loop streams a row of b and of the result; the
   * k order within a block is the one XK_DOT_ACC_F16 rounds after */
  xk_hloop li, lk, lj;
  LLVMValueRef i = xk_hl_loop_begin(h, &li, M);
  LLVMValueRef k = xk_hl_loop_begin(h, &lk, K);
  LLVMValueRef kend = NULL;
  if (f16acc) {
    LLVMTypeRef kt = LLVMTypeOf(k);
    LLVMValueRef last = LLVMBuildICmp(
        h->b, LLVMIntEQ,
        LLVMBuildAnd(h->b, k, LLVMConstInt(kt, XK_DOT_ACC_BLOCK - 1, 0), ""),
        LLVMConstInt(kt, XK_DOT_ACC_BLOCK - 1, 0), "");
    kend = LLVMBuildOr(h->b, last,
                       LLVMBuildICmp(h->b, LLVMIntEQ, k,
                                     LLVMConstInt(kt, (uint64_t)K - 1, 0), ""),
                       "");
  }
  LLVMValueRef aik = as ? as : ld(h, h->t_f32, ab, ix(h, i, K, k));
  LLVMValueRef j = xk_hl_loop_begin(h, &lj, N);
  LLVMValueRef bkj = bs ? bs : ld(h, h->t_f32, bb, ix(h, k, N, j));
  LLVMValueRef ri = ix(h, i, N, j);
  LLVMValueRef p = LLVMBuildFMul(h->b, aik, bkj, "");
  LLVMValueRef s = LLVMBuildFAdd(h->b, ld(h, h->t_f32, res, ri), p, "");
  LLVMSetFastMathFlags(p, LLVMFastMathAllowContract);
  LLVMSetFastMathFlags(s, LLVMFastMathAllowContract);
  if (kend)
    s = LLVMBuildSelect(h->b, kend, round_f16(h, s), s, "");
  st(h, h->t_f32, res, ri, s);
  xk_hl_loop_end(h, &lj);
  xk_hl_loop_end(h, &lk);
  xk_hl_loop_end(h, &li);
  return 0;
}
