/* The sim target's tensor-core and cp.async primitives: calls into the
 * emulator's fragment-exact implementations (sim_tc.c). Plugged into the
 * sim nv_prims next to lower_sim.c's own primitives. */
#include "lower_nvptx_int.h"

/* An i32/f32 array in the entry block, so loops reuse one slot. */
static LLVMValueRef slot(nv *s, LLVMTypeRef el, int n) {
  return LLVMBuildArrayAlloca(s->pb, el, nv_i32(s, n), "");
}

static LLVMValueRef at(nv *s, LLVMTypeRef el, LLVMValueRef base, int i) {
  LLVMValueRef idx = nv_i32(s, i);
  return LLVMBuildGEP2(s->b, el, base, &idx, 1, "");
}

static LLVMValueRef put(nv *s, LLVMTypeRef el, const LLVMValueRef *v, int n) {
  LLVMValueRef p = slot(s, el, n);
  for (int i = 0; i < n; i++)
    LLVMBuildStore(s->b, v[i], at(s, el, p, i));
  return p;
}

static void get(nv *s, LLVMTypeRef el, LLVMValueRef p, LLVMValueRef *v, int n) {
  for (int i = 0; i < n; i++)
    v[i] = LLVMBuildLoad2(s->b, el, at(s, el, p, i), "");
}

void nv_sim_ldmatrix(nv *s, LLVMValueRef addr, int n, int trans,
                     LLVMValueRef *out) {
  LLVMTypeRef i32 = LLVMInt32TypeInContext(s->ctx);
  LLVMValueRef buf = slot(s, i32, 4);
  LLVMValueRef a[5] = {addr, nv_i32(s, n), nv_i32(s, trans),
                       nv_i32(s, s->ninstr++), buf};
  nv_call(s, "xk_sim_ldmatrix", LLVMVoidTypeInContext(s->ctx), a, 5);
  get(s, i32, buf, out, n);
}

void nv_sim_mma(nv *s, int dtype, int acc, LLVMValueRef *a, LLVMValueRef *b,
                LLVMValueRef *c, LLVMValueRef *d) {
  LLVMTypeRef i32 = LLVMInt32TypeInContext(s->ctx);
  LLVMTypeRef f32 = LLVMFloatTypeInContext(s->ctx);
  if (acc == XK_DOT_ACC_F16) { /* the packed registers of the PTX form */
    LLVMValueRef cr[2], dr[2];
    for (int q = 0; q < 2; q++)
      cr[q] = LLVMBuildBitCast(s->b, nv_pack_f16x2(s, c[2 * q], c[2 * q + 1]),
                               i32, "");
    LLVMValueRef dp = slot(s, i32, 2);
    LLVMValueRef args[4] = {put(s, i32, a, 4), put(s, i32, b, 2),
                            put(s, i32, cr, 2), dp};
    nv_call(s, "xk_sim_mma_m16n8k16_f16acc", LLVMVoidTypeInContext(s->ctx),
            args, 4);
    get(s, i32, dp, dr, 2);
    LLVMTypeRef h2 = LLVMVectorType(LLVMHalfTypeInContext(s->ctx), 2);
    for (int q = 0; q < 2; q++)
      nv_unpack_f16x2(s, LLVMBuildBitCast(s->b, dr[q], h2, ""), &d[2 * q]);
    return;
  }
  LLVMValueRef dp = slot(s, f32, 4);
  LLVMValueRef args[4] = {put(s, i32, a, 4), put(s, i32, b, 2),
                          put(s, f32, c, 4), dp};
  nv_call(s,
          dtype == XK_BF16 ? "xk_sim_mma_m16n8k16_bf16"
                           : "xk_sim_mma_m16n8k16_f16",
          LLVMVoidTypeInContext(s->ctx), args, 4);
  get(s, f32, dp, d, 4);
}

/* Two instruction ids: the global read and the shared write. */
void nv_sim_cp_async(nv *s, LLVMValueRef dst, LLVMValueRef src, int bytes,
                     LLVMValueRef src_bytes) {
  LLVMValueRef a[5] = {dst, src, nv_i32(s, bytes), src_bytes,
                       nv_i32(s, s->ninstr)};
  s->ninstr += 2;
  nv_call(s, "xk_sim_cp_async", LLVMVoidTypeInContext(s->ctx), a, 5);
}

void nv_sim_cp_async_commit(nv *s) {
  nv_call(s, "xk_sim_cp_async_commit", LLVMVoidTypeInContext(s->ctx), NULL, 0);
}

void nv_sim_cp_async_wait(nv *s, int n) {
  LLVMValueRef a = nv_i32(s, n);
  nv_call(s, "xk_sim_cp_async_wait", LLVMVoidTypeInContext(s->ctx), &a, 1);
}
