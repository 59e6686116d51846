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
  case XK_OP_LOG2:
    return nv_call(s, "llvm.nvvm.lg2.approx.f", f, &x, 1);
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

static LLVMTypeRef struct_of(nv *s, LLVMTypeRef t, int n) {
  LLVMTypeRef el[4] = {t, t, t, t};
  return LLVMStructTypeInContext(s->ctx, el, (unsigned)n, 0);
}

static void p_ldmatrix(nv *s, LLVMValueRef addr, int n, int trans,
                       LLVMValueRef *out) {
  char name[80];
  snprintf(name, sizeof name,
           "llvm.nvvm.ldmatrix.sync.aligned.m8n8.x%d%s.b16.p3", n,
           trans ? ".trans" : "");
  LLVMTypeRef i32 = LLVMInt32TypeInContext(s->ctx);
  if (n == 1) {
    out[0] = nv_call(s, name, i32, &addr, 1);
    return;
  }
  LLVMValueRef r = nv_call(s, name, struct_of(s, i32, n), &addr, 1);
  for (int q = 0; q < n; q++)
    out[q] = LLVMBuildExtractValue(s->b, r, (unsigned)q, "");
}

/* LLVM names m16n8k16 by its D and C types: f16 inputs take <2 x half>
 * registers, bf16 inputs i32; an f16 C/D is two <2 x half>. */
static void p_mma(nv *s, int dt, int acc, LLVMValueRef *a, LLVMValueRef *b,
                  LLVMValueRef *c, LLVMValueRef *d) {
  LLVMValueRef args[10];
  LLVMTypeRef h2 = LLVMVectorType(LLVMHalfTypeInContext(s->ctx), 2);
  for (int i = 0; i < 6; i++) {
    LLVMValueRef x = i < 4 ? a[i] : b[i - 4];
    args[i] = dt == XK_F16 ? LLVMBuildBitCast(s->b, x, h2, "") : x;
  }
  if (acc == XK_DOT_ACC_F16) {
    args[6] = nv_pack_f16x2(s, c[0], c[1]);
    args[7] = nv_pack_f16x2(s, c[2], c[3]);
    LLVMValueRef r = nv_call(s, "llvm.nvvm.mma.m16n8k16.row.col.f16.f16",
                             struct_of(s, h2, 2), args, 8);
    for (int q = 0; q < 2; q++)
      nv_unpack_f16x2(s, LLVMBuildExtractValue(s->b, r, (unsigned)q, ""),
                      &d[2 * q]);
    return;
  }
  for (int i = 0; i < 4; i++)
    args[6 + i] = c[i];
  LLVMTypeRef f32 = LLVMFloatTypeInContext(s->ctx);
  LLVMValueRef r =
      nv_call(s,
              dt == XK_F16 ? "llvm.nvvm.mma.m16n8k16.row.col.f32.f32"
                           : "llvm.nvvm.mma.m16n8k16.row.col.bf16",
              struct_of(s, f32, 4), args, 10);
  for (int q = 0; q < 4; q++)
    d[q] = LLVMBuildExtractValue(s->b, r, (unsigned)q, "");
}

/* .cg (L2 only) for whole 16-byte chunks, .ca below; the .s forms take the
 * source size and zero-fill the rest (masked elements). */
static void p_cp_async(nv *s, LLVMValueRef dst, LLVMValueRef src, int bytes,
                       LLVMValueRef src_bytes) {
  char name[64];
  snprintf(name, sizeof name, "llvm.nvvm.cp.async.%s.shared.global.%d.s",
           bytes == 16 ? "cg" : "ca", bytes);
  LLVMValueRef args[3] = {dst, src, src_bytes};
  nv_call(s, name, LLVMVoidTypeInContext(s->ctx), args, 3);
}

static void p_cp_async_commit(nv *s) {
  nv_call(s, "llvm.nvvm.cp.async.commit.group", LLVMVoidTypeInContext(s->ctx),
          NULL, 0);
}

static void p_cp_async_wait(nv *s, int n) {
  LLVMValueRef a = nv_i32(s, n);
  nv_call(s, "llvm.nvvm.cp.async.wait.group", LLVMVoidTypeInContext(s->ctx), &a,
          1);
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
    .ldmatrix = p_ldmatrix,
    .mma = p_mma,
    .cp_async = p_cp_async,
    .cp_async_commit = p_cp_async_commit,
    .cp_async_wait = p_cp_async_wait,
    .atomic = nv_ptx_atomic,
    .print = nv_ptx_print,
};
