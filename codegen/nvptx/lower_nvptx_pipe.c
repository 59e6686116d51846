/* Software pipelining of a dot's loop (Triton's num_stages): the loads
 * that feed the dot become copies into one of num_stages shared-memory
 * buffers per operand, issued num_stages - 1 iterations ahead, so global
 * latency overlaps the tensor-core work of the iterations in between.
 *
 *   prologue: for j < S-1: copy iteration j into buffer j; commit
 *   iteration i: wait until at most S-2 groups are pending; barrier
 *                dot from buffer i % S (no staging)
 *                copy iteration i+S-1 into buffer (i-1) % S; commit
 *
 * Every iteration commits one group (empty past the end), so "at most S-2
 * pending" always means "iteration i's copies landed"; the barrier makes
 * them visible to every warp and also says every warp is done with buffer
 * (i-1) % S before it is refilled. Copies are cp.async (.cg 16 bytes, .ca
 * 4 or 8) where the axis analysis proves a group of columns contiguous,
 * aligned and uniformly masked; masked groups copy 0 source bytes, which
 * zero-fills. Narrower groups (a 2-byte element) load and store. */
#include "lower_nvptx_int.h"

#include <string.h>

int nv_is_zero(const xk_func *f, int v) {
  for (;;) {
    int d = f->values[v].def_op;
    if (d < 0)
      return 0;
    const xk_op *op = &f->ops[d];
    if (op->code == XK_OP_CONST)
      return op->attr.i == 0 && op->attr.f == 0;
    if (op->code != XK_OP_BROADCAST && op->code != XK_OP_EXPAND_DIMS &&
        op->code != XK_OP_RESHAPE)
      return 0;
    v = op->opnd[0];
  }
}

/* Marks in `slice` the body ops that compute v, which must be computable
 * ahead of time from the induction variable and values defined before the
 * loop (addresses and masks): 0, else -1. */
static int mark_slice(nv *s, const xk_op *loop, int v, char *slice) {
  const xk_func *f = s->f;
  const xk_block *body = &f->blocks[loop->body];
  for (int i = 0; i < body->nargs; i++)
    if (body->args[i] == v)
      return i == 0 ? 0 : -1;
  int d = f->values[v].def_op;
  if (d < 0 || f->ops[d].block != loop->body)
    return s->vals[v].kind == NV_NONE || s->vals[v].kind == NV_DEFER ? -1 : 0;
  if (slice[d])
    return 0;
  const xk_op *op = &f->ops[d];
  int c = op->code;
  if (c != XK_OP_CONST && c != XK_OP_ARANGE && c != XK_OP_BROADCAST &&
      c != XK_OP_EXPAND_DIMS && c != XK_OP_RESHAPE && c != XK_OP_TRANS &&
      c != XK_OP_PROGRAM_ID && c != XK_OP_NUM_PROGRAMS &&
      !xk_op_is_elementwise(c))
    return -1;
  slice[d] = 1;
  for (int j = 0; j < op->nopnd; j++)
    if (mark_slice(s, loop, op->opnd[j], slice))
      return -1;
  return 0;
}

/* The operand's tile in shared memory: swizzled (tensor cores) or rows
 * padded to nv_dot_pitch (FMA dot). */
static int tile_bytes(const nv_pipe *p, const xk_type *t, int esz) {
  int pitch = p->swz ? t->shape[1] : nv_dot_pitch(t->shape[1], esz);
  return (t->shape[0] * pitch * esz + 15) & ~15;
}

int nv_pipe_plan(nv *s, const xk_op *loop, nv_pipe *p) {
  const xk_func *f = s->f;
  const xk_block *body = &f->blocks[loop->body];
  int stages = loop->attr.i ? (int)loop->attr.i : f->num_stages;
  memset(p, 0, sizeof *p);
  if (stages < 2 || !s->pr->cp_async || s->pipe)
    return 0;
  for (int i = 0; i < body->nops; i++) {
    const xk_op *op = &f->ops[body->ops[i]];
    /* loads run ahead of the body's stores and barriers: only loops
     * without any */
    if (!op->dead &&
        (xk_op_orders_memory(op->code) || xk_op_is_region(op->code)))
      return 0;
    if (op->dead || op->code != XK_OP_DOT)
      continue;
    if (p->dot)
      return 0; /* one dot per loop: its operands own the buffers */
    p->dot = op;
  }
  if (!p->dot)
    return 0;
  xk_layout lc;
  p->swz = nv_mma_layout(s, p->dot, &lc);
  p->loop = loop;
  p->slice = nv_alloc(s, (size_t)f->nops);
  char *trial = nv_alloc(s, (size_t)f->nops);
  for (int k = 0; k < 2; k++) {
    int v = p->dot->opnd[k], d = f->values[v].def_op;
    xk_type t = xk_vtype(f, v);
    int esz = xk_dtype_bits(t.dtype) / 8;
    if (d < 0 || (k == 1 && p->dot->opnd[0] == v))
      continue;
    const xk_op *ld = &f->ops[d];
    xk_swizzle z;
    if (ld->code != XK_OP_LOAD || ld->block != loop->body || !s->defer[v] ||
        (ld->attr.has_other && !nv_is_zero(f, ld->opnd[ld->nopnd - 1])) ||
        (p->swz && xk_swizzle_make(&z, t.shape[0], t.shape[1], esz)))
      continue;
    memcpy(trial, p->slice, (size_t)f->nops);
    int bad = 0;
    for (int j = 0; j < ld->nopnd && !bad; j++)
      bad = mark_slice(s, loop, ld->opnd[j], trial);
    if (bad)
      continue;
    memcpy(p->slice, trial, (size_t)f->nops);
    p->ld[k] = ld;
    p->ncopy[k] = nv_copy_width(s, ld, p->swz);
    p->off[k] = p->stage_bytes;
    p->stage_bytes += tile_bytes(p, &t, esz);
  }
  if (!p->ld[0] && !p->ld[1])
    return 0;
  /* A config whose buffers do not fit is not quietly run unpipelined:
   * the shared memory it asks for is reported past the limit, naming the
   * config (finish_smem), so that a tuner skips it. */
  p->stages = stages;
  return 1;
}

static LLVMValueRef byte_ptr(nv *s, LLVMValueRef base, LLVMValueRef off) {
  return LLVMBuildGEP2(s->b, LLVMInt8TypeInContext(s->ctx), base, &off, 1, "");
}

static LLVMValueRef stage_ptr(nv *s, const nv_pipe *p, LLVMValueRef slot,
                              int k) {
  LLVMValueRef off = LLVMBuildAdd(
      s->b, LLVMBuildMul(s->b, slot, nv_i32(s, p->stage_bytes), ""),
      nv_i32(s, s->smem_res + p->off[k]), "");
  return byte_ptr(s, s->pr->smem_base(s), off);
}

int nv_copy_width(nv *s, const xk_op *ld, int swz) {
  xk_type t = xk_vtype(s->f, ld->res[0]);
  int esz = xk_dtype_bits(t.dtype) / 8, fast;
  int g = nv_mem_vec(s, ld, &fast), pitch = nv_dot_pitch(t.shape[1], esz);
  xk_swizzle z;
  if (fast != 1 || (swz && xk_swizzle_make(&z, t.shape[0], t.shape[1], esz)))
    return 1;
  while (g > 1 && (swz ? g > z.vec : pitch % g))
    g /= 2;
  return g;
}

int nv_copy_tile(nv *s, const xk_op *ld, int g, int swz, LLVMValueRef tile) {
  xk_type t = xk_vtype(s->f, ld->res[0]);
  int dt = t.dtype, esz = xk_dtype_bits(dt) / 8;
  xk_layout l = xk_layout_vec(t.shape, 2, s->nw, 1, g);
  xk_layout_dim_info d1;
  xk_layout_dim(&l, 1, &d1);
  while (g > 1 && (l.dropped || l.order[0] != 1 || d1.spt % g || d1.nregs % g))
    g /= 2;
  xk_swizzle z;
  if (swz)
    xk_swizzle_make(&z, t.shape[0], t.shape[1], esz);
  int32_t padded[2] = {t.shape[0], nv_dot_pitch(t.shape[1], esz)};
  nv_src ps, ms;
  if (nv_src_init(s, &ps, ld->opnd[0], &l) ||
      nv_src_init(s, &ms, ld->attr.has_mask ? ld->opnd[1] : -1, &l))
    return -1;
  LLVMTypeRef mty = nv_mem_ty(s, dt);
  for (int i = 0; i < xk_layout_nregs(&l); i += g) {
    LLVMValueRef c[XK_MAX_RANK];
    LLVMValueRef canon = nv_coords(s, &l, i, c);
    if (LLVMIsAConstantInt(canon) && !LLVMConstIntGetZExtValue(canon))
      continue;
    LLVMValueRef off =
        swz ? nv_swz_off(s, &z, c[0], c[1]) : nv_rowmajor(s, c, padded, 2);
    LLVMValueRef dst = LLVMBuildGEP2(s->b, mty, tile, &off, 1, "");
    LLVMValueRef src = nv_src_elem(s, &ps, &l, i);
    LLVMValueRef mask = ld->attr.has_mask ? nv_src_elem(s, &ms, &l, i) : NULL;
    /* a replicated element is copied by its canonical thread only */
    LLVMBasicBlockRef join = NULL;
    if (!LLVMIsAConstantInt(canon)) {
      LLVMBasicBlockRef cp = LLVMAppendBasicBlockInContext(s->ctx, s->fn, "cp");
      join = LLVMAppendBasicBlockInContext(s->ctx, s->fn, "cpj");
      LLVMBuildCondBr(s->b, canon, cp, join);
      LLVMPositionBuilderAtEnd(s->b, cp);
    }
    if (g * esz >= 4) {
      LLVMValueRef n = nv_i32(s, g * esz);
      if (mask)
        n = LLVMBuildSelect(s->b, mask, n, nv_i32(s, 0), "");
      s->pr->cp_async(s, dst, src, g * esz, n);
    } else {
      LLVMValueRef v = nv_guarded_load(s, mty, src, mask, LLVMConstNull(mty));
      nv_note_shared(s, mty, dst, 1);
      LLVMBuildStore(s->b, v, dst);
    }
    if (join) {
      LLVMBuildBr(s->b, join);
      LLVMPositionBuilderAtEnd(s->b, join);
    }
  }
  return 0;
}

int nv_pipe_issue(nv *s, nv_pipe *p, LLVMValueRef it, LLVMValueRef hi,
                  LLVMValueRef slot) {
  const xk_func *f = s->f;
  const xk_block *body = &f->blocks[p->loop->body];
  LLVMBasicBlockRef cp = LLVMAppendBasicBlockInContext(s->ctx, s->fn, "pipe");
  LLVMBasicBlockRef join =
      LLVMAppendBasicBlockInContext(s->ctx, s->fn, "pipej");
  LLVMBuildCondBr(s->b, LLVMBuildICmp(s->b, LLVMIntSLT, it, hi, ""), cp, join);
  LLVMPositionBuilderAtEnd(s->b, cp);
  /* the address ops run again for iteration `it`; the body's own lowering
   * (before, or after in the prologue) recomputes them for the current one */
  nv_val saved = s->vals[body->args[0]];
  s->vals[body->args[0]].kind = NV_SCALAR;
  s->vals[body->args[0]].s = it;
  const xk_op *cur = s->op;
  int rc = 0;
  for (int i = 0; i < body->nops && !rc; i++)
    if (p->slice[body->ops[i]])
      rc = nv_lower_op(s, &f->ops[body->ops[i]]);
  for (int k = 0; k < 2 && !rc; k++)
    if (p->ld[k]) {
      s->op = p->ld[k];
      rc = nv_copy_tile(s, p->ld[k], p->ncopy[k], p->swz,
                        stage_ptr(s, p, slot, k));
    }
  s->op = cur;
  s->vals[body->args[0]] = saved;
  if (rc)
    return -1;
  LLVMBuildBr(s->b, join);
  LLVMPositionBuilderAtEnd(s->b, join);
  s->pr->cp_async_commit(s);
  return 0;
}

void nv_pipe_wait(nv *s, nv_pipe *p) {
  s->pr->cp_async_wait(s, p->stages - 2);
  s->pr->barrier(s);
}

LLVMValueRef nv_pipe_tile(nv *s, const xk_op *dot, int k) {
  const nv_pipe *p = s->pipe;
  if (!p || p->dot != dot || !p->ld[k])
    return NULL;
  return stage_ptr(s, p, p->slot, k);
}
