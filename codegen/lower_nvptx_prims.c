/* The NVPTX implementation of the GPU primitives (NVVM intrinsics). */
#include "lower_nvptx_int.h"

#include <stdio.h>
#include <string.h>

static LLVMValueRef sreg(nv *s, const char *reg, int axis) {
  char name[64];
  snprintf(name, sizeof name, "llvm.nvvm.read.ptx.sreg.%s.%c", reg,
           "xyz"[axis]);
  return nv_call(s, name, LLVMInt32TypeInContext(s->ctx), NULL, 0);
}

static LLVMValueRef p_tid(nv *s) {
  return sreg(s, "tid", 0);
}
static LLVMValueRef p_ctaid(nv *s, int axis) {
  return sreg(s, "ctaid", axis);
}
static LLVMValueRef p_nctaid(nv *s, int axis) {
  return sreg(s, "nctaid", axis);
}

static void p_barrier(nv *s) {
  nv_call(s, "llvm.nvvm.barrier0", LLVMVoidTypeInContext(s->ctx), NULL, 0);
}

static LLVMValueRef p_shfl(nv *s, LLVMValueRef v, int lanemask) {
  LLVMValueRef a[4] = {nv_i32(s, -1), v, nv_i32(s, lanemask), nv_i32(s, 31)};
  return nv_call(s, "llvm.nvvm.shfl.sync.bfly.i32",
                 LLVMInt32TypeInContext(s->ctx), a, 4);
}

/* exp and log go through ex2/lg2 (what NVPTX can select), scaled. */
static LLVMValueRef p_math(nv *s, int code, LLVMValueRef x) {
  LLVMTypeRef f = LLVMFloatTypeInContext(s->ctx);
  switch (code) {
  case XK_OP_EXP:
    x = LLVMBuildFMul(s->b, x, LLVMConstReal(f, 1.4426950408889634), "");
    /* fallthrough */
  case XK_OP_EXP2:
    return nv_call(s, "llvm.nvvm.ex2.approx.f", f, &x, 1);
  case XK_OP_LOG: {
    LLVMValueRef l2 = nv_call(s, "llvm.nvvm.lg2.approx.f", f, &x, 1);
    return LLVMBuildFMul(s->b, l2, LLVMConstReal(f, 0.6931471805599453), "");
  }
  case XK_OP_SQRT:
    return nv_call(s, "llvm.sqrt.f32", f, &x, 1);
  case XK_OP_RSQRT:
    return nv_call(s, "llvm.nvvm.rsqrt.approx.f", f, &x, 1);
  case XK_OP_SIN:
    return nv_call(s, "llvm.nvvm.sin.approx.f", f, &x, 1);
  case XK_OP_COS:
    return nv_call(s, "llvm.nvvm.cos.approx.f", f, &x, 1);
  }
  return x;
}

static void p_mark_kernel(nv *s, LLVMValueRef fn, int threads) {
  LLVMSetFunctionCallConv(fn, 71); /* PTX_Kernel */
  LLVMMetadataRef md[3] = {LLVMValueAsMetadata(fn),
                           LLVMMDStringInContext2(s->ctx, "maxntidx", 8),
                           LLVMValueAsMetadata(nv_i32(s, threads))};
  LLVMValueRef node =
      LLVMMetadataAsValue(s->ctx, LLVMMDNodeInContext2(s->ctx, md, 3));
  LLVMAddNamedMetadataOperand(s->mod, "nvvm.annotations", node);
}

/* A predicated ld.global (what Triton emits): unlike a branch around a
 * load, it keeps the loads of a tile in one basic block, so ptxas can
 * interleave them with their consumers instead of holding whole tiles. */
static LLVMValueRef p_load_masked(nv *s, LLVMTypeRef ty, LLVMValueRef ptr,
                                  LLVMValueRef mask, LLVMValueRef other) {
  LLVMContextRef c = s->ctx;
  LLVMTypeKind k = LLVMGetTypeKind(ty);
  int bits = k == LLVMFloatTypeKind                             ? 32
             : k == LLVMHalfTypeKind || k == LLVMBFloatTypeKind ? 16
             : k == LLVMPointerTypeKind                         ? 64
                                        : (int)LLVMGetIntTypeWidth(ty);
  int rbits = bits == 8 ? 16 : bits; /* PTX has no 8-bit registers */
  LLVMTypeRef it = LLVMIntTypeInContext(c, (unsigned)rbits);
  LLVMValueRef o = other;
  if (k == LLVMPointerTypeKind)
    o = LLVMBuildPtrToInt(s->b, o, it, "");
  else if (bits == 8)
    o = LLVMBuildZExt(s->b, o, it, "");
  else if (k != LLVMIntegerTypeKind)
    o = LLVMBuildBitCast(s->b, o, it, "");
  const char *rc = rbits == 16 ? "h" : rbits == 32 ? "r" : "l";
  char asm_s[256], cons[32];
  snprintf(asm_s, sizeof asm_s,
           "{ .reg .pred p; setp.ne.b32 p, $2, 0; mov.b%d $0, $3; "
           "@p ld.global.%s%d $0, [$1]; }",
           rbits, bits == 8 ? "u" : "b", bits);
  /* early clobber: the mov must not overwrite the address or mask */
  snprintf(cons, sizeof cons, "=&%s,l,r,%s", rc, rc);
  LLVMTypeRef pt[3] = {LLVMTypeOf(ptr), LLVMInt32TypeInContext(c), it};
  LLVMTypeRef ft = LLVMFunctionType(it, pt, 3, 0);
  LLVMValueRef fn =
      LLVMGetInlineAsm(ft, asm_s, strlen(asm_s), cons, strlen(cons), 1, 0,
                       LLVMInlineAsmDialectATT, 0);
  LLVMValueRef args[3] = {
      ptr, LLVMBuildZExt(s->b, mask, LLVMInt32TypeInContext(c), ""), o};
  LLVMValueRef r = LLVMBuildCall2(s->b, ft, fn, args, 3, "");
  if (k == LLVMPointerTypeKind)
    return LLVMBuildIntToPtr(s->b, r, ty, "");
  if (bits == 8)
    return LLVMBuildTrunc(s->b, r, ty, "");
  return k == LLVMIntegerTypeKind ? r : LLVMBuildBitCast(s->b, r, ty, "");
}

/* A placeholder global that xk_lower_nvptx resizes once the body is
 * lowered. */
static LLVMValueRef p_smem_base(nv *s) {
  return s->smem;
}

const nv_prims xk_nvptx_prims = {
    .tid = p_tid,
    .ctaid = p_ctaid,
    .nctaid = p_nctaid,
    .barrier = p_barrier,
    .shfl_bfly = p_shfl,
    .math = p_math,
    .mark_kernel = p_mark_kernel,
    .load_masked = p_load_masked,
    .smem_base = p_smem_base,
    .global_as = 1,
};
