/* An ATOMIC element as an LLVM atomicrmw or cmpxchg: the host lowering's
 * and the sim target's (whose emulated threads are host code too). Every
 * scope maps to LLVM's system scope: host threads share one coherent
 * memory, and a wider scope than asked for is always correct. */
#include "lower.h"

static LLVMAtomicOrdering ordering(int sem) {
  switch (sem) {
  case XK_SEM_RELAXED:
    return LLVMAtomicOrderingMonotonic;
  case XK_SEM_ACQUIRE:
    return LLVMAtomicOrderingAcquire;
  case XK_SEM_RELEASE:
    return LLVMAtomicOrderingRelease;
  default:
    return LLVMAtomicOrderingAcquireRelease;
  }
}

static LLVMAtomicRMWBinOp binop(int rmw, int fl) {
  switch (rmw) {
  case XK_RMW_ADD:
    return fl ? LLVMAtomicRMWBinOpFAdd : LLVMAtomicRMWBinOpAdd;
  case XK_RMW_MAX:
    return LLVMAtomicRMWBinOpMax;
  case XK_RMW_MIN:
    return LLVMAtomicRMWBinOpMin;
  case XK_RMW_AND:
    return LLVMAtomicRMWBinOpAnd;
  case XK_RMW_OR:
    return LLVMAtomicRMWBinOpOr;
  case XK_RMW_XOR:
    return LLVMAtomicRMWBinOpXor;
  default:
    return LLVMAtomicRMWBinOpXchg;
  }
}

LLVMValueRef xk_llvm_atomic(LLVMBuilderRef b, int rmw, int sem, LLVMValueRef p,
                            LLVMValueRef cmp, LLVMValueRef v) {
  if (rmw != XK_RMW_CAS)
    return LLVMBuildAtomicRMW(
        b, binop(rmw, LLVMGetTypeKind(LLVMTypeOf(v)) == LLVMFloatTypeKind), p,
        v, ordering(sem), 0);
  LLVMTypeRef ty = LLVMTypeOf(v);
  int fl = LLVMGetTypeKind(ty) == LLVMFloatTypeKind;
  if (fl) { /* cmpxchg compares bits: as i32 */
    LLVMTypeRef i32 = LLVMInt32TypeInContext(LLVMGetTypeContext(ty));
    cmp = LLVMBuildBitCast(b, cmp, i32, "");
    v = LLVMBuildBitCast(b, v, i32, "");
  }
  /* the failure case is a load: no release part */
  LLVMAtomicOrdering fail = sem == XK_SEM_ACQ_REL || sem == XK_SEM_ACQUIRE
                                ? LLVMAtomicOrderingAcquire
                                : LLVMAtomicOrderingMonotonic;
  LLVMValueRef x = LLVMBuildAtomicCmpXchg(b, p, cmp, v, ordering(sem), fail, 0);
  LLVMValueRef old = LLVMBuildExtractValue(b, x, 0, "");
  return fl ? LLVMBuildBitCast(b, old, ty, "") : old;
}
