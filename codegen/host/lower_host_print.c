/* PRINT on the host: a libc printf per element, the line format shared with
 * the sim target ("pid (x, y, z) idx (i, j) prefix: value"). Host kernels
 * are linked into the process, so printf resolves to the runtime's libc. */
#include "lower_host_impl.h"

#include <string.h>

static LLVMValueRef printf_fn(xk_hl *h, LLVMTypeRef *ty) {
  *ty = LLVMFunctionType(h->t_i32, &h->t_ptr, 1, 1);
  LLVMValueRef fn = LLVMGetNamedFunction(h->m, "printf");
  return fn ? fn : LLVMAddFunction(h->m, "printf", *ty);
}

/* The element as a printf argument and its conversion: ints widen to i32
 * or i64, floats to double (C's default promotion for varargs). */
static LLVMValueRef vararg(xk_hl *h, LLVMValueRef x, int dt,
                           const char **conv) {
  if (xk_dtype_is_float(dt)) {
    *conv = "%.9g";
    return LLVMBuildFPExt(h->b, xk_hl_to_f32(h, x, dt),
                          LLVMDoubleTypeInContext(h->c), "");
  }
  if (dt == XK_I64) {
    *conv = "%lld";
    return x;
  }
  *conv = "%d";
  return dt == XK_I1 ? LLVMBuildZExt(h->b, x, h->t_i32, "") : x;
}

int xk_hl_print(xk_hl *h, const xk_op *op) {
  int v = op->opnd[0];
  xk_type t = xk_vtype(h->f, v);
  LLVMTypeRef fty;
  LLVMValueRef fn = printf_fn(h, &fty);
  LLVMValueRef args[4 + XK_MAX_RANK + 1];
  int n = 1;
  LLVMValueRef pids = LLVMGetParam(h->fn, 1);
  for (int a = 0; a < 3; a++) {
    LLVMValueRef ax = xk_hl_i64(h, a);
    LLVMValueRef p = LLVMBuildInBoundsGEP2(h->b, h->t_i32, pids, &ax, 1, "");
    args[n++] = LLVMBuildLoad2(h->b, h->t_i32, p, "");
  }
  char fmt[128] = "pid (%d, %d, %d) ";
  xk_hloop l;
  LLVMValueRef idx = xk_hl_i64(h, 0);
  if (t.rank) {
    idx = xk_hl_loop_begin(h, &l, xk_type_numel(t));
    strcat(fmt, "idx (");
    int64_t stride = 1;
    for (int d = t.rank - 1; d >= 0; d--) {
      LLVMValueRef q =
          LLVMBuildSDiv(h->b, idx, xk_hl_i64(h, stride), ""); /* row-major */
      args[n + d] = LLVMBuildSRem(h->b, q, xk_hl_i64(h, t.shape[d]), "");
      stride *= t.shape[d];
    }
    n += t.rank;
    for (int d = 0; d < t.rank; d++)
      strcat(fmt, d ? ", %lld" : "%lld");
    strcat(fmt, ") ");
  }
  args[n++] = LLVMBuildGlobalString(h->b, h->f->strs[op->attr.i], "");
  LLVMValueRef x = xk_hl_read(h, v, idx);
  if (!x)
    return -1;
  const char *conv;
  args[n++] = vararg(h, x, t.dtype, &conv);
  strcat(fmt, "%s: ");
  strcat(fmt, conv);
  strcat(fmt, "\n");
  args[0] = LLVMBuildGlobalString(h->b, fmt, "");
  LLVMBuildCall2(h->b, fty, fn, args, (unsigned)n, "");
  if (t.rank)
    xk_hl_loop_end(h, &l);
  return 0;
}
