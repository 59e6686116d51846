/* Resident dot operands: a tile loaded once before a loop and multiplied
 * in every iteration (a factor, a weight block) would otherwise stay live
 * in registers across the loop and be restaged into shared memory by each
 * dot. It is instead copied once (cp.async) into shared memory that is
 * held to the end of the kernel, below every later exchange and pipeline
 * buffer (s->smem_res), and its dots read it there in place. A tile cast
 * to f16/bf16 before the loop (a decode query loaded as f32) is staged
 * there once from its registers the same way: restaging it in every
 * iteration cost shared-memory stores, and as a narrow [D, 8] tile
 * written down its columns they also conflicted on the banks. */
#include "lower_nvptx_int.h"

/* The dot uses of v when every use is a tensor-core dot's a or b operand
 * inside a loop (outside block 0), else 0. */
static int mma_uses(nv *s, int v) {
  const xk_func *f = s->f;
  int uses = 0;
  for (int k = 0; k < f->nops; k++) {
    const xk_op *u = &f->ops[k];
    if (u->dead)
      continue;
    for (int j = 0; j < u->nopnd; j++) {
      if (u->opnd[j] != v)
        continue;
      xk_layout lc;
      if (u->code != XK_OP_DOT || j > 1 || u->block == 0 ||
          !nv_mma_layout(s, u, &lc))
        return 0;
      uses++;
    }
  }
  return uses;
}

void nv_find_resident(nv *s) {
  const xk_func *f = s->f;
  if (!s->pr->cp_async || !s->pr->mma)
    return;
  for (int i = 0; i < f->nops; i++) {
    const xk_op *ld = &f->ops[i];
    if (ld->dead || (ld->code != XK_OP_LOAD && ld->code != XK_OP_CAST) ||
        !ld->nres)
      continue;
    int v = ld->res[0];
    xk_type t = xk_vtype(f, v);
    xk_swizzle z;
    /* masked elements are zero-filled copies: only a zero `other` */
    if (t.rank != 2 || (t.dtype != XK_F16 && t.dtype != XK_BF16) ||
        xk_swizzle_make(&z, t.shape[0], t.shape[1], 2) ||
        (ld->code == XK_OP_LOAD && ld->attr.has_other &&
         !nv_is_zero(f, ld->opnd[ld->nopnd - 1])))
      continue;
    if (ld->block == 0 && mma_uses(s, v)) {
      s->resident[v] = 1;
      s->defer[v] = 0;
    }
  }
}

/* The held region for the tile of value v. */
static LLVMValueRef resident_region(nv *s, int v) {
  xk_type t = xk_vtype(s->f, v);
  int bytes = (t.shape[0] * t.shape[1] * 2 + 15) & ~15;
  LLVMValueRef off = nv_i32(s, s->smem_res);
  LLVMValueRef tile = LLVMBuildGEP2(s->b, LLVMInt8TypeInContext(s->ctx),
                                    s->pr->smem_base(s), &off, 1, "");
  s->smem_res += bytes;
  s->smem_pin = s->smem_res;
  if (s->smem_pin > s->smem_bytes)
    s->smem_bytes = s->smem_pin;
  s->staged_a = -1;
  return tile;
}

int nv_lower_resident(nv *s, const xk_op *ld) {
  /* earlier exchanges end with a barrier, so the region is free */
  LLVMValueRef tile = resident_region(s, ld->res[0]);
  if (nv_copy_tile(s, ld, nv_copy_width(s, ld, 1), 1, tile))
    return -1;
  s->pr->cp_async_commit(s);
  s->pr->cp_async_wait(s, 0);
  s->pr->barrier(s);
  nv_val *x = &s->vals[ld->res[0]];
  x->kind = NV_RES;
  x->s = tile;
  return 0;
}

int nv_stage_resident(nv *s, int v) {
  xk_layout l;
  LLVMValueRef *regs = nv_get_any(s, v, &l);
  xk_type t = xk_vtype(s->f, v);
  xk_swizzle z;
  if (!regs || xk_swizzle_make(&z, t.shape[0], t.shape[1], 2))
    return -1;
  LLVMValueRef tile = resident_region(s, v);
  nv_stage_swz(s, regs, &l, t.dtype, &z, tile, 0);
  s->pr->barrier(s);
  nv_val *x = &s->vals[v];
  x->kind = NV_RES;
  x->s = tile;
  return 0;
}

LLVMValueRef nv_resident_tile(nv *s, int v) {
  return s->vals[v].kind == NV_RES ? s->vals[v].s : NULL;
}
