/* dot on tensor cores: A [M,K] and B [K,N] staged in swizzled shared
 * memory, fragments loaded with ldmatrix (x4; B transposed), and
 * mma.sync m16n8k16 (f16/bf16 in, f32 accumulate; or f16 in and f16
 * accumulate, XK_DOT_ACC_F16) into the accumulator layout of layout.h
 * (xk_layout_mma), which is the same for both accumulator types. */
#include "lower_nvptx_int.h"

#include <string.h>

static int log2i(int x) {
  int k = 0;
  while ((1 << k) < x)
    k++;
  return k;
}

int nv_mma_layout(nv *s, const xk_op *dot, xk_layout *l) {
  if (!s->pr->mma || !s->pr->ldmatrix || dot->code != XK_OP_DOT)
    return 0;
  xk_type at = xk_vtype(s->f, dot->opnd[0]), bt = xk_vtype(s->f, dot->opnd[1]);
  xk_type ct = xk_vtype(s->f, dot->opnd[2]);
  if (at.rank != 2 || bt.rank != 2 || at.dtype != bt.dtype ||
      (at.dtype != XK_F16 && at.dtype != XK_BF16) || ct.dtype != XK_F32 ||
      at.shape[1] < 16 || bt.shape[0] != at.shape[1])
    return 0;
  int32_t shape[2] = {at.shape[0], bt.shape[1]};
  return xk_layout_mma(l, shape, s->nw) == 0;
}

LLVMValueRef nv_pack_f16x2(nv *s, LLVMValueRef lo, LLVMValueRef hi) {
  LLVMTypeRef h = LLVMHalfTypeInContext(s->ctx);
  LLVMValueRef v = LLVMGetUndef(LLVMVectorType(h, 2));
  v = LLVMBuildInsertElement(s->b, v, LLVMBuildFPTrunc(s->b, lo, h, ""),
                             nv_i32(s, 0), "");
  return LLVMBuildInsertElement(s->b, v, LLVMBuildFPTrunc(s->b, hi, h, ""),
                                nv_i32(s, 1), "");
}

void nv_unpack_f16x2(nv *s, LLVMValueRef v, LLVMValueRef *out) {
  for (int e = 0; e < 2; e++)
    out[e] =
        LLVMBuildFPExt(s->b, LLVMBuildExtractElement(s->b, v, nv_i32(s, e), ""),
                       LLVMFloatTypeInContext(s->ctx), "");
}

/* The DOT producing a loop's carried value i, seen through the cast of an
 * f16 accumulator (dot ... acc=f16 then x:to(f16)), whose registers keep
 * the dot's layout. */
static const xk_op *carried_dot(nv *s, int v) {
  int d = s->f->values[v].def_op;
  if (d < 0)
    return NULL;
  const xk_op *op = &s->f->ops[d];
  if (op->code == XK_OP_CAST && s->f->values[op->opnd[0]].def_op >= 0)
    op = &s->f->ops[s->f->values[op->opnd[0]].def_op];
  return op->code == XK_OP_DOT ? op : NULL;
}

int nv_carried_layout(nv *s, const xk_op *loop, int i, xk_layout *l) {
  const xk_block *b = &s->f->blocks[loop->body];
  for (int k = b->nops - 1; k >= 0; k--) {
    const xk_op *y = &s->f->ops[b->ops[k]];
    if (y->dead || y->code != XK_OP_YIELD)
      continue;
    const xk_op *dot = i < y->nopnd ? carried_dot(s, y->opnd[i]) : NULL;
    return dot && nv_mma_layout(s, dot, l);
  }
  return 0;
}

/* Element offset of (row, col) in a swizzled tile (xk_swizzle_offset) for
 * a col that starts a 16-byte chunk. */
static LLVMValueRef swz_chunk(nv *s, const xk_swizzle *z, LLVMValueRef row,
                              LLVMValueRef col) {
  LLVMBuilderRef b = s->b;
  LLVMValueRef phase =
      LLVMBuildAnd(b, LLVMBuildLShr(b, row, nv_i32(s, log2i(z->per_phase)), ""),
                   nv_i32(s, z->max_phase - 1), "");
  LLVMValueRef chunk = LLVMBuildXor(
      b, LLVMBuildLShr(b, col, nv_i32(s, log2i(z->vec)), ""), phase, "");
  return LLVMBuildAdd(b, LLVMBuildMul(b, row, nv_i32(s, z->cols), ""),
                      LLVMBuildShl(b, chunk, nv_i32(s, log2i(z->vec)), ""), "");
}

LLVMValueRef nv_swz_off(nv *s, const xk_swizzle *z, LLVMValueRef row,
                        LLVMValueRef col) {
  LLVMValueRef inchunk = LLVMBuildAnd(s->b, col, nv_i32(s, z->vec - 1), "");
  return LLVMBuildAdd(s->b, swz_chunk(s, z, row, col), inchunk, "");
}

static LLVMValueRef elem_ptr(nv *s, int dt, LLVMValueRef base,
                             LLVMValueRef off) {
  return LLVMBuildGEP2(s->b, nv_mem_ty(s, dt), base, &off, 1, "");
}

/* Stores a materialized [R,C] tile into its swizzled place at element
 * offset `at`. Registers that are contiguous along C (the layout's
 * sizePerThread, up to one 16-byte chunk) go out as one vector store. */
void nv_stage_swz(nv *s, const LLVMValueRef *regs, const xk_layout *l, int dt,
                  const xk_swizzle *z, LLVMValueRef base, int at) {
  int n = xk_layout_nregs(l), g = 1;
  if (l->order[0] == 1 && !l->dropped) {
    xk_layout_dim_info d1;
    xk_layout_dim(l, 1, &d1);
    g = d1.spt < z->vec ? d1.spt : z->vec;
    if (d1.nregs % g)
      g = 1;
  }
  LLVMTypeRef ety = nv_mem_ty(s, dt);
  LLVMTypeRef vty = LLVMVectorType(ety, (unsigned)g);
  for (int j = 0; j < n; j += g) {
    LLVMValueRef c[XK_MAX_RANK];
    nv_coords(s, l, j, c);
    LLVMValueRef off =
        LLVMBuildAdd(s->b, nv_swz_off(s, z, c[0], c[1]), nv_i32(s, at), "");
    LLVMValueRef p = elem_ptr(s, dt, base, off);
    if (g == 1) {
      nv_note_shared(s, ety, p, 1);
      LLVMBuildStore(s->b, regs[j], p);
      continue;
    }
    LLVMValueRef v = LLVMGetUndef(vty);
    for (int e = 0; e < g; e++)
      v = LLVMBuildInsertElement(s->b, v, regs[j + e], nv_i32(s, e), "");
    nv_note_shared(s, vty, p, 1);
    LLVMSetAlignment(LLVMBuildStore(s->b, v, p),
                     (unsigned)(g * xk_dtype_bits(dt) / 8));
  }
}

/* Warp part of the accumulator's parent dim p: wd * spt * tpw. */
static LLVMValueRef warp_base(nv *s, const xk_layout *l, int p) {
  xk_layout_dim_info di;
  xk_layout_pdim(l, p, &di);
  LLVMValueRef wd = LLVMBuildAnd(
      s->b, LLVMBuildLShr(s->b, s->warp, nv_i32(s, log2i(di.warp_stride)), ""),
      nv_i32(s, di.wpc - 1), "");
  return LLVMBuildMul(s->b, wd, nv_i32(s, di.spt * di.tpw), "");
}

/* The run-time form of xk_mma_ldsm_a / xk_mma_ldsm_b (layout.c). */
typedef struct {
  LLVMValueRef r, q1, q2; /* lane & 7, (lane >> 3) & 1, lane >> 4 */
  LLVMValueRef wrow, wcol;
  int cov0, cov1, M;
  xk_mma_tiles t;
} ldsm_ctx;

static LLVMValueRef ldsm_a_off(nv *s, const ldsm_ctx *x, const xk_swizzle *z,
                               int i, int kk) {
  LLVMBuilderRef b = s->b;
  LLVMValueRef row = LLVMBuildAdd(b, x->wrow, x->r, "");
  if (x->t.row_regs > 1)
    row = LLVMBuildAdd(
        b, row,
        LLVMBuildMul(b, LLVMBuildAdd(b, x->q1, nv_i32(s, 2 * i), ""),
                     nv_i32(s, x->cov0), ""),
        "");
  row = LLVMBuildAnd(b, row, nv_i32(s, x->M - 1), "");
  LLVMValueRef k = LLVMBuildAdd(b, LLVMBuildMul(b, x->q2, nv_i32(s, 8), ""),
                                nv_i32(s, 16 * kk), "");
  return swz_chunk(s, z, row, k);
}

static LLVMValueRef ldsm_b_off(nv *s, const ldsm_ctx *x, const xk_swizzle *z,
                               int j, int kk) {
  LLVMBuilderRef b = s->b;
  LLVMValueRef k = LLVMBuildAdd(
      b, LLVMBuildAdd(b, LLVMBuildMul(b, x->q1, nv_i32(s, 8), ""), x->r, ""),
      nv_i32(s, 16 * kk), "");
  LLVMValueRef jj = nv_i32(s, j);
  if (j + 1 < x->t.ntiles)
    jj = LLVMBuildAdd(b, jj, x->q2, "");
  LLVMValueRef col =
      LLVMBuildAdd(b, x->wcol, LLVMBuildMul(b, jj, nv_i32(s, x->cov1), ""), "");
  return swz_chunk(s, z, k, col);
}

int nv_lower_dot_mma(nv *s, const xk_op *op, const xk_layout *lc) {
  xk_type at = xk_vtype(s->f, op->opnd[0]), bt = xk_vtype(s->f, op->opnd[1]);
  int M = at.shape[0], K = at.shape[1], N = bt.shape[1], dt = at.dtype;
  xk_swizzle za, zb;
  if (xk_swizzle_make(&za, M, K, 2) || xk_swizzle_make(&zb, K, N, 2))
    return nv_err(s, "tensor-core dot: tile %dx%dx%d cannot be swizzled", M, K,
                  N);
  xk_layout la, lb;
  LLVMValueRef ra = nv_resident_tile(s, op->opnd[0]);
  LLVMValueRef rb = nv_resident_tile(s, op->opnd[1]);
  LLVMValueRef pa = ra ? ra : nv_pipe_tile(s, op, 0);
  LLVMValueRef pb = rb ? rb : nv_pipe_tile(s, op, 1);
  LLVMValueRef *b = pb ? NULL : nv_get_any(s, op->opnd[1], &lb);
  LLVMValueRef *acc = pb || b ? nv_get(s, op->opnd[2], lc) : NULL;
  int reuse = !pa && s->staged_a == op->opnd[0] && s->staged_swz;
  LLVMValueRef *a =
      pa || reuse || !acc ? NULL : nv_get_any(s, op->opnd[0], &la);
  if (!acc || (!pa && !reuse && !a))
    return -1;
  /* a pipelined or resident operand is read in place */
  int staged = !pa || !pb, a_el = ra ? 0 : M * K, b_el = rb ? 0 : K * N;
  LLVMValueRef base = staged ? nv_smem(s, (a_el + b_el) * 2) : NULL;
  LLVMValueRef abase = pa ? pa : base;
  LLVMValueRef bbase = pb ? pb : elem_ptr(s, dt, base, nv_i32(s, a_el));
  if (!pa && !reuse)
    nv_stage_swz(s, a, &la, dt, &za, abase, 0);
  if (!pb)
    nv_stage_swz(s, b, &lb, dt, &zb, bbase, 0);
  if (staged)
    s->pr->barrier(s);

  ldsm_ctx x;
  xk_layout_dim_info d0, d1;
  xk_layout_dim(lc, 0, &d0);
  xk_layout_dim(lc, 1, &d1);
  x.cov0 = d0.spt * d0.tpw * d0.wpc;
  x.cov1 = d1.spt * d1.tpw * d1.wpc;
  x.M = M;
  x.t = xk_layout_mma_tiles(lc);
  x.r = LLVMBuildAnd(s->b, s->lane, nv_i32(s, 7), "");
  x.q1 = LLVMBuildAnd(s->b, LLVMBuildLShr(s->b, s->lane, nv_i32(s, 3), ""),
                      nv_i32(s, 1), "");
  x.q2 = LLVMBuildLShr(s->b, s->lane, nv_i32(s, 4), "");
  x.wrow = warp_base(s, lc, 0);
  x.wcol = warp_base(s, lc, 1);

  int n = xk_layout_nregs(lc);
  LLVMValueRef *out = nv_alloc(s, (size_t)n * sizeof *out);
  memcpy(out, acc, (size_t)n * sizeof *out);
  LLVMValueRef *fa = nv_alloc(s, (size_t)x.t.mtiles * 4 * sizeof *fa);
  LLVMValueRef *fb = nv_alloc(s, (size_t)(x.t.ntiles + 1) * 2 * sizeof *fb);
  for (int kk = 0; kk < K / 16; kk++) {
    for (int i = 0; i < x.t.mtiles; i++)
      s->pr->ldmatrix(s, elem_ptr(s, dt, abase, ldsm_a_off(s, &x, &za, i, kk)),
                      4, 0, &fa[4 * i]);
    for (int j = 0; j < x.t.ntiles; j += 2)
      s->pr->ldmatrix(s, elem_ptr(s, dt, bbase, ldsm_b_off(s, &x, &zb, j, kk)),
                      j + 1 < x.t.ntiles ? 4 : 2, 1, &fb[2 * j]);
    for (int i = 0; i < x.t.mtiles; i++)
      for (int j = 0; j < x.t.ntiles; j++) {
        LLVMValueRef c[4], d[4];
        for (int q = 0; q < 4; q++)
          c[q] = out[xk_mma_acc_reg(lc, i, j, q)];
        s->pr->mma(s, dt, (int)op->attr.i, &fa[4 * i], &fb[2 * j], c, d);
        /* a warp holding one row register drops the duplicate half */
        for (int q = 0; q < (x.t.row_regs > 1 ? 4 : 2); q++)
          out[xk_mma_acc_reg(lc, i, j, q)] = d[q];
      }
  }
  if (staged)
    s->pr->barrier(s);
  s->staged_a = pa ? -1 : op->opnd[0];
  s->staged_swz = 1;
  s->vals[op->res[0]].kind = NV_MAT;
  s->vals[op->res[0]].lay = *lc;
  s->vals[op->res[0]].regs = out;
  return 0;
}
