/* Host lowering of SHIFT and XORPERM, the element exchanges along one axis
 * that the scans and the sorting network of the DSL are built from. */
#include "lower_host_impl.h"

int xk_hl_axis_perm(xk_hl *h, const xk_op *op) {
  int src = op->opnd[0], a = op->attr.axis;
  xk_type t = xk_vtype(h->f, src);
  const xk_hval *s = &h->vals[src];
  xk_hval *r = &h->vals[op->res[0]];
  if (op->nopnd != 1 || a < 0 || a >= t.rank ||
      !xk_type_eq(t, xk_vtype(h->f, op->res[0])))
    return xk_hl_err(h, op, "needs a tile operand of the result's type");
  if (s->kind != HV_BUF) { /* a splat is its own permutation */
    r->kind = s->kind;
    r->v = s->v;
    return 0;
  }
  int64_t outer = 1, inner = 1, n = t.shape[a];
  for (int d = 0; d < a; d++)
    outer *= t.shape[d];
  for (int d = a + 1; d < t.rank; d++)
    inner *= t.shape[d];
  r->kind = HV_BUF;
  r->aff = 0;
  r->v = xk_hl_buf(h, t.dtype, xk_type_numel(t));
  if (!r->v)
    return xk_hl_err(h, op, "out of memory");
  xk_hloop lo, lk, lj;
  LLVMValueRef o = xk_hl_loop_begin(h, &lo, outer);
  LLVMValueRef k = xk_hl_loop_begin(h, &lk, n), sk;
  LLVMValueRef by = xk_hl_i64(h, op->attr.i);
  if (op->code == XK_OP_XORPERM) {
    sk = LLVMBuildXor(h->b, k, by, "");
  } else {
    sk = LLVMBuildSub(h->b, k, by, "");
    /* unsigned: a negative index is out of range too */
    LLVMValueRef in = LLVMBuildICmp(h->b, LLVMIntULT, sk, xk_hl_i64(h, n), "");
    sk = LLVMBuildSelect(h->b, in, sk, k, "");
  }
  LLVMValueRef row = LLVMBuildNSWMul(h->b, o, xk_hl_i64(h, n), "");
  LLVMValueRef di = LLVMBuildNSWMul(h->b, LLVMBuildNSWAdd(h->b, row, k, ""),
                                    xk_hl_i64(h, inner), "");
  LLVMValueRef si = LLVMBuildNSWMul(h->b, LLVMBuildNSWAdd(h->b, row, sk, ""),
                                    xk_hl_i64(h, inner), "");
  LLVMValueRef j = xk_hl_loop_begin(h, &lj, inner);
  xk_hl_write(h, r->v, t.dtype, LLVMBuildNSWAdd(h->b, di, j, ""),
              xk_hl_read(h, src, LLVMBuildNSWAdd(h->b, si, j, "")));
  xk_hl_loop_end(h, &lj);
  xk_hl_loop_end(h, &lk);
  xk_hl_loop_end(h, &lo);
  return 0;
}
