/* PRINT per thread: each thread prints the elements its registers hold
 * canonically (a replicated element once), a scalar by thread 0, in the
 * host's line format. The GPU calls vprintf with the arguments packed in
 * a local buffer (CUDA's printf ABI); the sim calls the host's printf. */
#include "lower_nvptx_int.h"

#include <string.h>

static LLVMTypeRef ptr0(nv *s) {
  return LLVMPointerTypeInContext(s->ctx, 0);
}

void nv_ptx_print(nv *s, LLVMValueRef fmt, LLVMValueRef *args, int n) {
  LLVMTypeRef tys[4 + XK_MAX_RANK + 1];
  for (int i = 0; i < n; i++)
    tys[i] = LLVMTypeOf(args[i]);
  LLVMTypeRef st = LLVMStructTypeInContext(s->ctx, tys, (unsigned)n, 0);
  LLVMValueRef buf = LLVMBuildAlloca(s->pb, st, ""); /* once, not per loop */
  for (int i = 0; i < n; i++)
    LLVMBuildStore(s->b, args[i],
                   LLVMBuildStructGEP2(s->b, st, buf, (unsigned)i, ""));
  LLVMValueRef a[2] = {fmt, buf};
  nv_call(s, "vprintf", LLVMInt32TypeInContext(s->ctx), a, 2);
}

void nv_sim_print(nv *s, LLVMValueRef fmt, LLVMValueRef *args, int n) {
  LLVMTypeRef p = ptr0(s);
  LLVMTypeRef fty = LLVMFunctionType(LLVMInt32TypeInContext(s->ctx), &p, 1, 1);
  LLVMValueRef fn = LLVMGetNamedFunction(s->mod, "printf");
  if (!fn)
    fn = LLVMAddFunction(s->mod, "printf", fty);
  LLVMValueRef a[1 + 4 + XK_MAX_RANK + 1];
  a[0] = fmt;
  memcpy(a + 1, args, (size_t)n * sizeof *args);
  LLVMBuildCall2(s->b, fty, fn, a, (unsigned)n + 1, "");
}

/* x as a printf argument (floats promote to double) and its conversion */
static LLVMValueRef vararg(nv *s, LLVMValueRef x, int dt, const char **conv) {
  if (xk_dtype_is_float(dt)) {
    *conv = "%.9g";
    return LLVMBuildFPExt(s->b, x, LLVMDoubleTypeInContext(s->ctx), "");
  }
  *conv = dt == XK_I64 ? "%lld" : "%d";
  return dt == XK_I1
             ? LLVMBuildZExt(s->b, x, LLVMInt32TypeInContext(s->ctx), "")
             : x;
}

static void print_one(nv *s, const xk_op *op, LLVMValueRef canon,
                      LLVMValueRef x, const LLVMValueRef *c, int rank) {
  LLVMBasicBlockRef yes = LLVMAppendBasicBlockInContext(s->ctx, s->fn, "");
  LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(s->ctx, s->fn, "");
  LLVMBuildCondBr(s->b, canon, yes, done);
  LLVMPositionBuilderAtEnd(s->b, yes);
  LLVMValueRef args[4 + XK_MAX_RANK + 1];
  int n = 0;
  for (int a = 0; a < 3; a++)
    args[n++] = s->pr->ctaid(s, a);
  char fmt[128] = "pid (%d, %d, %d) ";
  if (rank) {
    strcat(fmt, "idx (");
    for (int d = 0; d < rank; d++) {
      strcat(fmt, d ? ", %d" : "%d");
      args[n++] = c[d];
    }
    strcat(fmt, ") ");
  }
  args[n++] = LLVMBuildGlobalString(s->b, s->f->strs[op->attr.i], "");
  const char *conv;
  args[n++] = vararg(s, x, xk_vtype(s->f, op->opnd[0]).dtype, &conv);
  strcat(fmt, "%s: ");
  strcat(fmt, conv);
  strcat(fmt, "\n");
  s->pr->print(s, LLVMBuildGlobalString(s->b, fmt, ""), args, n);
  LLVMBuildBr(s->b, done);
  LLVMPositionBuilderAtEnd(s->b, done);
}

int nv_lower_print(nv *s, const xk_op *op) {
  int v = op->opnd[0];
  xk_type t = xk_vtype(s->f, v);
  if (!t.rank) {
    if (s->vals[v].kind != NV_SCALAR)
      return nv_err(s, "device_print of a scalar not held in a register");
    LLVMValueRef first =
        LLVMBuildICmp(s->b, LLVMIntEQ, s->pr->tid(s), nv_i32(s, 0), "");
    print_one(s, op, first, s->vals[v].s, NULL, 0);
    return 0;
  }
  xk_layout l;
  LLVMValueRef *r = nv_get_any(s, v, &l);
  if (!r)
    return -1;
  for (int reg = 0; reg < xk_layout_nregs(&l); reg++) {
    LLVMValueRef c[XK_MAX_RANK];
    LLVMValueRef canon = nv_coords(s, &l, reg, c);
    print_one(s, op, canon, r[reg], c, t.rank);
  }
  return 0;
}
