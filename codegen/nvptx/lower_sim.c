/* The sim target: the per-thread lowering of lower_nvptx*.c with its GPU
 * primitives replaced by calls into the SIMT emulator (sim.h), compiled for
 * the host. Every global and shared memory access is preceded by a
 * counting call, and dot loops count their FMAs. */
#include "lower_nvptx_int.h"

#include <stdio.h>

static LLVMTypeRef i32_ty(nv *s) {
  return LLVMInt32TypeInContext(s->ctx);
}

static LLVMTypeRef ptr_ty(nv *s) {
  return LLVMPointerTypeInContext(s->ctx, 0);
}

static LLVMValueRef p_tid(nv *s) {
  return nv_call(s, "xk_sim_tid", i32_ty(s), NULL, 0);
}

static LLVMValueRef p_ctaid(nv *s, int axis) {
  LLVMValueRef a = nv_i32(s, axis);
  return nv_call(s, "xk_sim_ctaid", i32_ty(s), &a, 1);
}

static LLVMValueRef p_nctaid(nv *s, int axis) {
  LLVMValueRef a = nv_i32(s, axis);
  return nv_call(s, "xk_sim_nctaid", i32_ty(s), &a, 1);
}

static void p_barrier(nv *s) {
  nv_call(s, "xk_sim_barrier", LLVMVoidTypeInContext(s->ctx), NULL, 0);
}

static LLVMValueRef p_shfl(nv *s, LLVMValueRef v, int lanemask) {
  LLVMValueRef a[2] = {v, nv_i32(s, lanemask)};
  return nv_call(s, "xk_sim_shfl_bfly_i32", i32_ty(s), a, 2);
}

/* Host libm accuracy: the approximations of the GPU are not emulated, the
 * references' tolerances cover both. */
static LLVMValueRef p_math(nv *s, int code, LLVMValueRef x) {
  LLVMTypeRef f = LLVMFloatTypeInContext(s->ctx);
  switch (code) {
  case XK_OP_EXP:
    return nv_call(s, "llvm.exp.f32", f, &x, 1);
  case XK_OP_EXP2:
    return nv_call(s, "llvm.exp2.f32", f, &x, 1);
  case XK_OP_LOG:
    return nv_call(s, "llvm.log.f32", f, &x, 1);
  case XK_OP_LOG2:
    return nv_call(s, "llvm.log2.f32", f, &x, 1);
  case XK_OP_SQRT:
    return nv_call(s, "llvm.sqrt.f32", f, &x, 1);
  case XK_OP_RSQRT:
    return LLVMBuildFDiv(s->b, LLVMConstReal(f, 1.0),
                         nv_call(s, "llvm.sqrt.f32", f, &x, 1), "");
  case XK_OP_SIN:
    return nv_call(s, "llvm.sin.f32", f, &x, 1);
  case XK_OP_COS:
    return nv_call(s, "llvm.cos.f32", f, &x, 1);
  }
  return x;
}

/* The per-thread function is internal: xk_lower_sim's entry calls it. */
static void p_mark_kernel(nv *s, LLVMValueRef fn, int threads) {
  (void)s;
  (void)threads;
  LLVMSetLinkage(fn, LLVMInternalLinkage);
}

static LLVMValueRef p_smem_base(nv *s) {
  if (!s->smem_rt) {
    LLVMBuilderRef b = s->b;
    s->b = s->pb;
    s->smem_rt = nv_call(s, "xk_sim_smem", ptr_ty(s), NULL, 0);
    s->b = b;
  }
  return s->smem_rt;
}

/* bytes, or 0 when this thread's access is masked off */
static LLVMValueRef access_bytes(nv *s, LLVMTypeRef ty, LLVMValueRef active) {
  LLVMTargetDataRef td = LLVMGetModuleDataLayout(s->mod);
  LLVMValueRef n = nv_i32(s, (int64_t)LLVMABISizeOfType(td, ty));
  return active ? LLVMBuildSelect(s->b, active, n, nv_i32(s, 0), "") : n;
}

static void p_count_global(nv *s, LLVMTypeRef ty, LLVMValueRef ptr,
                           LLVMValueRef active, int is_store) {
  LLVMValueRef a[4] = {nv_i32(s, s->ninstr++), ptr, access_bytes(s, ty, active),
                       nv_i32(s, is_store)};
  nv_call(s, "xk_sim_global_access", LLVMVoidTypeInContext(s->ctx), a, 4);
}

static void p_count_shared(nv *s, LLVMTypeRef ty, LLVMValueRef ptr,
                           LLVMValueRef active, int is_store) {
  LLVMTypeRef i64 = LLVMInt64TypeInContext(s->ctx);
  LLVMValueRef off =
      LLVMBuildSub(s->b, LLVMBuildPtrToInt(s->b, ptr, i64, ""),
                   LLVMBuildPtrToInt(s->b, p_smem_base(s), i64, ""), "");
  LLVMValueRef a[4] = {nv_i32(s, s->ninstr++),
                       LLVMBuildTrunc(s->b, off, i32_ty(s), ""),
                       access_bytes(s, ty, active), nv_i32(s, is_store)};
  nv_call(s, "xk_sim_shared_access", LLVMVoidTypeInContext(s->ctx), a, 4);
}

static void p_count(nv *s, int kind, int n) {
  LLVMValueRef a[2] = {nv_i32(s, kind), nv_i32(s, n)};
  nv_call(s, "xk_sim_count", LLVMVoidTypeInContext(s->ctx), a, 2);
}

/* Host atomics: emulated threads are host code, and a launch's blocks may
 * run on several host threads. */
static LLVMValueRef p_atomic(nv *s, int rmw, int sem, int scope, int dtype,
                             LLVMValueRef ptr, LLVMValueRef cmp,
                             LLVMValueRef val) {
  (void)scope;
  (void)dtype;
  return xk_llvm_atomic(s->b, rmw, sem, ptr, cmp, val);
}

static const nv_prims sim_prims = {
    .tid = p_tid,
    .ctaid = p_ctaid,
    .nctaid = p_nctaid,
    .barrier = p_barrier,
    .shfl_bfly = p_shfl,
    .math = p_math,
    .mark_kernel = p_mark_kernel,
    .smem_base = p_smem_base,
    .global_as = 0,
    .count_global = p_count_global,
    .count_shared = p_count_shared,
    .count = p_count,
    .ldmatrix = nv_sim_ldmatrix,
    .mma = nv_sim_mma,
    .cp_async = nv_sim_cp_async,
    .cp_async_commit = nv_sim_cp_async_commit,
    .cp_async_wait = nv_sim_cp_async_wait,
    .atomic = p_atomic,
    .print = nv_sim_print,
};

/* `void sym(void **args)` (xk_sim_fn): loads each argument through its
 * pointer and calls the per-thread function. */
static void build_entry(LLVMModuleRef mod, LLVMValueRef inner,
                        const char *sym) {
  LLVMContextRef c = LLVMGetModuleContext(mod);
  LLVMTypeRef p = LLVMPointerTypeInContext(c, 0);
  LLVMTypeRef ft = LLVMFunctionType(LLVMVoidTypeInContext(c), &p, 1, 0);
  LLVMValueRef fn = LLVMAddFunction(mod, sym, ft);
  LLVMBuilderRef b = LLVMCreateBuilderInContext(c);
  LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(c, fn, "entry"));
  unsigned n = LLVMCountParams(inner);
  LLVMValueRef args[64];
  LLVMTypeRef ity = LLVMGlobalGetValueType(inner);
  LLVMTypeRef pt[64];
  LLVMGetParamTypes(ity, pt);
  for (unsigned i = 0; i < n; i++) {
    LLVMValueRef idx = LLVMConstInt(LLVMInt64TypeInContext(c), i, 0);
    LLVMValueRef slot = LLVMBuildLoad2(
        b, p, LLVMBuildGEP2(b, p, LLVMGetParam(fn, 0), &idx, 1, ""), "");
    int is_bool = LLVMGetTypeKind(pt[i]) == LLVMIntegerTypeKind &&
                  LLVMGetIntTypeWidth(pt[i]) == 1;
    LLVMValueRef v =
        LLVMBuildLoad2(b, is_bool ? LLVMInt8TypeInContext(c) : pt[i], slot, "");
    args[i] = is_bool ? LLVMBuildTrunc(b, v, pt[i], "") : v;
  }
  LLVMBuildCall2(b, ity, inner, args, n, "");
  LLVMBuildRetVoid(b);
  LLVMDisposeBuilder(b);
}

int xk_lower_sim(const xk_func *f, LLVMModuleRef mod, const char *sym,
                 xk_nvptx_info *info, xk_diag *d) {
  if (f->nargs > 64)
    return xk_diag_set(d, "%s: sim: %d arguments (at most 64)", f->file,
                       f->nargs);
  char inner[300];
  snprintf(inner, sizeof inner, "%s.thread", sym);
  if (xk_lower_simt(f, mod, inner, NULL, &sim_prims, info, d))
    return -1;
  build_entry(mod, LLVMGetNamedFunction(mod, inner), sym);
  return 0;
}
