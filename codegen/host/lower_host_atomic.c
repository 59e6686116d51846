/* Host lowering of ATOMIC: one LLVM atomic instruction per element
 * (lower_atomic.c), in element order, at the requested ordering. The CPU
 * device runs programs on a thread pool, so these are real atomics. */
#include "lower_host_impl.h"

int xk_hl_atomic(xk_hl *h, const xk_op *op) {
  const xk_attr *a = &op->attr;
  int cas = a->rmw == XK_RMW_CAS, nv = cas ? 2 : 1;
  xk_type rt = xk_vtype(h->f, op->res[0]);
  int dt = rt.dtype;
  if (op->nres != 1 || op->nopnd != 1 + nv + a->has_mask ||
      (dt != XK_I32 && dt != XK_I64 && dt != XK_F32))
    return xk_hl_err(h, op,
                     "expects (ptr, [cmp,] value[, mask]) on i32, "
                     "i64 or f32");
  int64_t n = xk_type_numel(rt);
  LLVMValueRef out = xk_hl_buf(h, dt, n > 0 ? n : 1);
  if (!out)
    return xk_hl_err(h, op, "out of memory");
  LLVMTypeRef ty = xk_hl_reg_type(h, dt);
  xk_hloop l;
  LLVMValueRef i = xk_hl_loop_begin(h, &l, n);
  xk_hl_write(h, out, dt, i, LLVMConstNull(ty));
  LLVMBasicBlockRef cont = NULL;
  if (a->has_mask) {
    LLVMBasicBlockRef doit = LLVMAppendBasicBlockInContext(h->c, h->fn, "");
    cont = LLVMAppendBasicBlockInContext(h->c, h->fn, "");
    LLVMBuildCondBr(h->b, xk_hl_read(h, op->opnd[1 + nv], i), doit, cont);
    LLVMPositionBuilderAtEnd(h->b, doit);
  }
  LLVMValueRef p = xk_hl_read(h, op->opnd[0], i);
  LLVMValueRef v = xk_hl_read(h, op->opnd[nv], i), old;
  old = xk_llvm_atomic(h->b, a->rmw, a->sem, p,
                       cas ? xk_hl_read(h, op->opnd[1], i) : NULL, v);
  xk_hl_write(h, out, dt, i, old);
  if (cont) {
    LLVMBuildBr(h->b, cont);
    LLVMPositionBuilderAtEnd(h->b, cont);
  }
  xk_hl_loop_end(h, &l);
  xk_hval *r = &h->vals[op->res[0]];
  r->aff = 0;
  r->kind = HV_BUF;
  r->v = out;
  if (!rt.rank) {
    LLVMValueRef x = xk_hl_read(h, op->res[0], xk_hl_i64(h, 0));
    r->kind = HV_SCALAR;
    r->v = x;
  }
  return 0;
}
