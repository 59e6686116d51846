/* ATOMIC in the per-thread lowering: the canonical copy of each element
 * (replicas must not apply it twice) runs one atomic through the target's
 * primitive (PTX atom.sem.scope.global, or the sim's host atomic) when its
 * mask is set; replicas then get the old value through shared memory. */
#include "lower_nvptx_int.h"

#include <stdio.h>
#include <string.h>

/* atom{.sem}{.scope}.global.op.type */
LLVMValueRef nv_ptx_atomic(nv *s, int rmw, int sem, int scope, int dt,
                           LLVMValueRef p, LLVMValueRef cmp, LLVMValueRef v) {
  static const char *const sems[] = {"acq_rel", "relaxed", "acquire",
                                     "release"};
  static const char *const scopes[] = {"gpu", "cta", "sys"};
  int b64 = dt == XK_I64, fl = dt == XK_F32;
  const char *ty;
  switch (rmw) {
  case XK_RMW_ADD:
    ty = fl ? "f32" : b64 ? "u64" : "u32";
    break;
  case XK_RMW_MAX:
  case XK_RMW_MIN:
    ty = b64 ? "s64" : "s32";
    break;
  default:
    ty = b64 ? "b64" : "b32";
    break;
  }
  /* float xchg and cas move bits */
  int bits = fl && rmw != XK_RMW_ADD;
  LLVMTypeRef vt = LLVMTypeOf(v),
              rt = bits ? LLVMInt32TypeInContext(s->ctx) : vt;
  if (bits) {
    v = LLVMBuildBitCast(s->b, v, rt, "");
    if (cmp)
      cmp = LLVMBuildBitCast(s->b, cmp, rt, "");
  }
  const char *c = fl && !bits ? "f" : b64 ? "l" : "r";
  char text[128], cons[32];
  int cas = rmw == XK_RMW_CAS;
  snprintf(text, sizeof text, "atom.%s.%s.global.%s.%s $0, [$1], $2%s;",
           sems[sem], scopes[scope],
           rmw == XK_RMW_XCHG ? "exch" : xk_rmw_name(rmw), ty,
           cas ? ", $3" : "");
  snprintf(cons, sizeof cons, "=%s,l,%s%s%s,~{memory}", c, c, cas ? "," : "",
           cas ? c : "");
  LLVMTypeRef at[3] = {LLVMTypeOf(p), rt, rt};
  LLVMValueRef args[3] = {p, cas ? cmp : v, v};
  LLVMTypeRef fty = LLVMFunctionType(rt, at, cas ? 3 : 2, 0);
  LLVMValueRef asmv =
      LLVMGetInlineAsm(fty, text, strlen(text), cons, strlen(cons), 1, 0,
                       LLVMInlineAsmDialectATT, 0);
  LLVMValueRef old = LLVMBuildCall2(s->b, fty, asmv, args, cas ? 3 : 2, "");
  return bits ? LLVMBuildBitCast(s->b, old, vt, "") : old;
}

int nv_lower_atomic(nv *s, const xk_op *op) {
  const xk_attr *a = &op->attr;
  int cas = a->rmw == XK_RMW_CAS, nv = cas ? 2 : 1;
  xk_type rt = xk_vtype(s->f, op->res[0]);
  int dt = rt.dtype, one = 1;
  /* a scalar as a one-element tile: only its canonical thread applies it */
  xk_layout l = rt.rank ? xk_layout_default(rt.shape, rt.rank, s->nw)
                        : xk_layout_default(&one, 1, s->nw);
  int n = xk_layout_nregs(&l);
  LLVMValueRef *in[4];
  for (int k = 0; k < op->nopnd; k++)
    if (!(in[k] = nv_get(s, op->opnd[k], &l)))
      return -1;
  LLVMTypeRef ty = nv_reg_ty(s, dt);
  LLVMValueRef *old = nv_alloc(s, (size_t)n * sizeof *old);
  LLVMValueRef *canon = nv_alloc(s, (size_t)n * sizeof *canon);
  for (int i = 0; i < n; i++) {
    LLVMValueRef c[XK_MAX_RANK];
    LLVMValueRef g = canon[i] = nv_coords(s, &l, i, c);
    if (a->has_mask)
      g = LLVMBuildAnd(s->b, g, in[1 + nv][i], "");
    nv_note_global(s, ty, in[0][i], g, 1);
    LLVMBasicBlockRef from = LLVMGetInsertBlock(s->b);
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(s->ctx, s->fn, "at");
    LLVMBasicBlockRef join =
        LLVMAppendBasicBlockInContext(s->ctx, s->fn, "atj");
    LLVMBuildCondBr(s->b, g, body, join);
    LLVMPositionBuilderAtEnd(s->b, body);
    LLVMValueRef x = s->pr->atomic(s, a->rmw, a->sem, a->scope, dt, in[0][i],
                                   cas ? in[1][i] : NULL, in[nv][i]);
    LLVMBasicBlockRef done = LLVMGetInsertBlock(s->b);
    LLVMBuildBr(s->b, join);
    LLVMPositionBuilderAtEnd(s->b, join);
    old[i] = LLVMBuildPhi(s->b, ty, "");
    LLVMValueRef iv[2] = {x, LLVMConstNull(ty)};
    LLVMBasicBlockRef ib[2] = {done, from};
    LLVMAddIncoming(old[i], iv, ib, 2);
  }
  int64_t numel = rt.rank ? xk_type_numel(rt) : 1;
  if ((int64_t)n * 32 * s->nw > numel) { /* replicas: ask the owner */
    int esz = xk_dtype_bits(dt) / 8;
    LLVMTypeRef mt = nv_mem_ty(s, dt);
    LLVMValueRef base = nv_smem(s, (int)numel * esz);
    int32_t shape1 = 1;
    const int32_t *shape = rt.rank ? rt.shape : &shape1;
    for (int i = 0; i < n; i++) {
      LLVMValueRef c[XK_MAX_RANK];
      nv_coords(s, &l, i, c);
      LLVMValueRef off = nv_rowmajor(s, c, shape, l.rank);
      LLVMValueRef p = LLVMBuildGEP2(s->b, mt, base, &off, 1, "");
      LLVMBasicBlockRef body =
          LLVMAppendBasicBlockInContext(s->ctx, s->fn, "ats");
      LLVMBasicBlockRef join =
          LLVMAppendBasicBlockInContext(s->ctx, s->fn, "atsj");
      /* the sim counts the warp's store once, with its active lanes */
      if (s->pr->count_shared)
        s->pr->count_shared(s, mt, p, canon[i], 1);
      LLVMBuildCondBr(s->b, canon[i], body, join);
      LLVMPositionBuilderAtEnd(s->b, body);
      LLVMBuildStore(s->b, old[i], p);
      LLVMBuildBr(s->b, join);
      LLVMPositionBuilderAtEnd(s->b, join);
    }
    s->pr->barrier(s);
    for (int i = 0; i < n; i++) {
      LLVMValueRef c[XK_MAX_RANK];
      nv_coords(s, &l, i, c);
      LLVMValueRef off = nv_rowmajor(s, c, shape, l.rank);
      LLVMValueRef p = LLVMBuildGEP2(s->b, mt, base, &off, 1, "");
      nv_note_shared(s, mt, p, 0);
      old[i] = LLVMBuildLoad2(s->b, mt, p, "");
    }
    s->pr->barrier(s);
  }
  nv_val *r = &s->vals[op->res[0]];
  if (!rt.rank) {
    r->kind = NV_SCALAR;
    r->s = old[0];
  } else {
    r->kind = NV_MAT;
    r->lay = l;
    r->regs = old;
  }
  return 0;
}
