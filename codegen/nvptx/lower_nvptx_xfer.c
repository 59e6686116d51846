/* Data movement between threads for the per-thread lowering: layout
 * conversions and shape ops (register permutations when possible, shared
 * memory otherwise), reductions (in-thread, warp shuffles, shared memory
 * across warps) and dot (FMA over tiles staged in shared memory). */
#include "lower_nvptx_int.h"

#include <llvm-c/DebugInfo.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- coordinate maps -------------------------------------------------- */

/* The maps that only pick coordinates: source coordinate t is destination
 * coordinate sel[t], or 0 where sel[t] is -1 (a broadcast dim). 0 for
 * RESHAPE, which computes them. */
static int map_select(const nv_map *m, int *sel) {
  switch (m->code) {
  case XK_OP_RESHAPE:
    return 0;
  case XK_OP_BROADCAST:
    for (int t = 0; t < m->src_rank; t++)
      sel[t] = m->src_shape[t] == 1 ? -1 : t;
    return 1;
  case XK_OP_EXPAND_DIMS:
    for (int t = 0, k = 0; t < m->dst_rank; t++)
      if (t != m->axis)
        sel[k++] = t;
    return 1;
  case XK_OP_TRANS:
    for (int t = 0; t < m->dst_rank; t++)
      sel[m->perm[t]] = t;
    return 1;
  default:
    for (int t = 0; t < m->src_rank; t++)
      sel[t] = t;
    return 1;
  }
}

/* compile-time coordinates */
static void map_int(const nv_map *m, const int *c, int *o) {
  int sel[XK_MAX_RANK];
  if (map_select(m, sel)) {
    for (int t = 0; t < m->src_rank; t++)
      o[t] = sel[t] < 0 ? 0 : c[sel[t]];
    if (m->code == XK_OP_XORPERM)
      o[m->axis] ^= m->by;
    if (m->code == XK_OP_SHIFT &&
        (unsigned)(o[m->axis] - m->by) < (unsigned)m->src_shape[m->axis])
      o[m->axis] -= m->by;
    return;
  }
  int64_t lin = 0;
  for (int t = 0; t < m->dst_rank; t++)
    lin = lin * m->dst_shape[t] + c[t];
  for (int t = m->src_rank - 1; t >= 0; t--) {
    o[t] = (int)(lin % m->src_shape[t]);
    lin /= m->src_shape[t];
  }
}

LLVMValueRef nv_axis_perm_coord(nv *s, int code, int by, int n,
                                LLVMValueRef c) {
  if (code == XK_OP_XORPERM)
    return LLVMBuildXor(s->b, c, nv_i32(s, by), "");
  LLVMValueRef sc = LLVMBuildSub(s->b, c, nv_i32(s, by), "");
  LLVMValueRef in = LLVMBuildICmp(s->b, LLVMIntULT, sc, nv_i32(s, n), "");
  return LLVMBuildSelect(s->b, in, sc, c, "");
}

/* run-time coordinates */
static void map_llvm(nv *s, const nv_map *m, const LLVMValueRef *c,
                     LLVMValueRef *o) {
  int sel[XK_MAX_RANK];
  if (map_select(m, sel)) {
    for (int t = 0; t < m->src_rank; t++)
      o[t] = sel[t] < 0 ? nv_i32(s, 0) : c[sel[t]];
    if (m->code == XK_OP_XORPERM || m->code == XK_OP_SHIFT)
      o[m->axis] = nv_axis_perm_coord(s, m->code, m->by, m->src_shape[m->axis],
                                      o[m->axis]);
    return;
  }
  LLVMValueRef lin = nv_rowmajor(s, c, m->dst_shape, m->dst_rank);
  for (int t = m->src_rank - 1; t >= 0; t--) {
    o[t] = LLVMBuildURem(s->b, lin, nv_i32(s, m->src_shape[t]), "");
    lin = LLVMBuildUDiv(s->b, lin, nv_i32(s, m->src_shape[t]), "");
  }
}

/* The source register every thread holds for destination register r, or
 * -1: decided at compile time from the index maps alone. */
static int find_reg(const xk_layout *sl, const nv_map *m, const xk_layout *l,
                    int r) {
  int ns = xk_layout_nregs(sl), threads = 32 * l->num_warps;
  for (int j = 0; j < ns; j++) {
    int ok = 1;
    for (int t = 0; t < threads && ok; t++) {
      int c[XK_MAX_RANK], want[XK_MAX_RANK], have[XK_MAX_RANK];
      xk_layout_coords(l, t & 31, t >> 5, r, c);
      map_int(m, c, want);
      xk_layout_coords(sl, t & 31, t >> 5, j, have);
      for (int d = 0; d < m->src_rank; d++)
        ok &= want[d] == have[d];
    }
    if (ok)
      return j;
  }
  return -1;
}

static LLVMValueRef smem_ptr(nv *s, LLVMTypeRef ty, LLVMValueRef base,
                             LLVMValueRef idx) {
  return LLVMBuildGEP2(s->b, ty, base, &idx, 1, "");
}

/* Shared-memory accesses, seen by the sim target's counters. */
static LLVMValueRef smem_load(nv *s, LLVMTypeRef ty, LLVMValueRef ptr) {
  nv_note_shared(s, ty, ptr, 0);
  return LLVMBuildLoad2(s->b, ty, ptr, "");
}

static void smem_store(nv *s, LLVMValueRef v, LLVMValueRef ptr) {
  nv_note_shared(s, LLVMTypeOf(v), ptr, 1);
  LLVMBuildStore(s->b, v, ptr);
}

static int log2i(int x) {
  int k = 0;
  while ((1 << k) < x)
    k++;
  return k;
}

/* The run-time form of xk_smem_offset (layout.c). */
static LLVMValueRef smem_off(nv *s, const xk_smem_map *z, const int32_t *shape,
                             int rank, const LLVMValueRef *c) {
  LLVMBuilderRef b = s->b;
  if (rank < 2 || (!z->pad && z->max_phase == 1))
    return nv_rowmajor(s, c, shape, rank);
  LLVMValueRef row = nv_rowmajor(s, c, shape, rank - 1), col = c[rank - 1];
  LLVMValueRef phase =
      LLVMBuildAnd(b, LLVMBuildLShr(b, row, nv_i32(s, log2i(z->per_phase)), ""),
                   nv_i32(s, z->max_phase - 1), "");
  LLVMValueRef sw = LLVMBuildXor(
      b, col, LLVMBuildShl(b, phase, nv_i32(s, log2i(z->vec)), ""), "");
  return LLVMBuildAdd(b, LLVMBuildMul(b, row, nv_i32(s, z->cols + z->pad), ""),
                      sw, "");
}

/* Registers of l that are contiguous along the last dim in one thread,
 * up to 16 bytes. */
static int row_vec(const xk_layout *l, int esz) {
  int t = l->rank - 1;
  if (l->order[0] != t)
    return 1;
  xk_layout_dim_info di;
  xk_layout_dim(l, t, &di);
  int v = di.spt;
  while (v > 1 && (v * esz > 16 || di.nregs % v || v > di.shape))
    v /= 2;
  return v;
}

int nv_gather(nv *s, const LLVMValueRef *src, const xk_layout *sl, int dt,
              const nv_map *m, const xk_layout *l, LLVMValueRef *out) {
  int n = xk_layout_nregs(l), perm = 1;
  int *idx = malloc((size_t)n * sizeof *idx);
  if (!idx)
    return nv_err(s, "out of memory");
  for (int r = 0; r < n && perm; r++)
    perm = (idx[r] = find_reg(sl, m, l, r)) >= 0;
  if (perm) {
    for (int r = 0; r < n; r++)
      out[r] = src[idx[r]];
    free(idx);
    return 0;
  }
  free(idx);
  /* Every copy stores (replicas hold identical values), all read back.
   * Plain copies and transposes move registers that are contiguous along
   * the last dim as vectors, through a padded or swizzled tile so that
   * neither side conflicts on banks (xk_smem_choose). */
  int esz = xk_dtype_bits(dt) / 8;
  if (esz < 1)
    esz = 1;
  int plain = (m->code == -1 || m->code == XK_OP_TRANS) && !sl->dropped &&
              !l->dropped && sl->rank == m->src_rank && sl->rank >= 2;
  int ws = plain ? row_vec(sl, esz) : 1;
  int wd = plain && m->code == -1 ? row_vec(l, esz) : 1;
  xk_smem_map z = {m->src_rank ? m->src_shape[m->src_rank - 1] : 1, 0, 1, 1, 1};
  if (plain)
    z = xk_smem_choose(sl, ws, l, wd, m->code == XK_OP_TRANS ? m->perm : NULL,
                       esz);
  LLVMTypeRef ty = nv_mem_ty(s, dt);
  LLVMValueRef base =
      nv_smem(s, xk_smem_size(&z, m->src_shape, m->src_rank) * esz);
  for (int j = 0; j < xk_layout_nregs(sl); j += ws) {
    LLVMValueRef c[XK_MAX_RANK];
    nv_coords(s, sl, j, c);
    LLVMValueRef off = smem_off(s, &z, m->src_shape, m->src_rank, c);
    LLVMValueRef x = nv_to_mem(s, dt, src[j]);
    if (ws > 1) {
      x = LLVMGetUndef(LLVMVectorType(ty, (unsigned)ws));
      for (int e = 0; e < ws; e++)
        x = LLVMBuildInsertElement(s->b, x, nv_to_mem(s, dt, src[j + e]),
                                   nv_i32(s, e), "");
    }
    LLVMValueRef p = smem_ptr(s, ty, base, off);
    nv_note_shared(s, LLVMTypeOf(x), p, 1);
    LLVMSetAlignment(LLVMBuildStore(s->b, x, p), (unsigned)(ws * esz));
  }
  s->pr->barrier(s);
  for (int r = 0; r < n; r += wd) {
    LLVMValueRef c[XK_MAX_RANK], o[XK_MAX_RANK];
    nv_coords(s, l, r, c);
    map_llvm(s, m, c, o);
    LLVMValueRef off = smem_off(s, &z, m->src_shape, m->src_rank, o);
    LLVMValueRef p = smem_ptr(s, ty, base, off);
    LLVMTypeRef vt = wd > 1 ? LLVMVectorType(ty, (unsigned)wd) : ty;
    nv_note_shared(s, vt, p, 0);
    LLVMValueRef x = LLVMBuildLoad2(s->b, vt, p, "");
    LLVMSetAlignment(x, (unsigned)(wd * esz));
    for (int e = 0; e < wd; e++)
      out[r + e] = nv_from_mem(
          s, dt,
          wd > 1 ? LLVMBuildExtractElement(s->b, x, nv_i32(s, e), "") : x);
  }
  s->pr->barrier(s);
  return 0;
}

/* ---- reductions --------------------------------------------------------- */

typedef struct {
  int red;
  int dt;         /* operand dtype */
  LLVMTypeRef ty; /* accumulator type */
  int fl;
} red_kind;

static LLVMValueRef red_identity(nv *s, const red_kind *k) {
  if (k->fl) {
    double v = k->red == XK_RED_SUM   ? 0.0
               : k->red == XK_RED_MAX ? -INFINITY
                                      : INFINITY;
    return LLVMConstReal(k->ty, v);
  }
  int bits = (int)LLVMGetIntTypeWidth(k->ty);
  uint64_t minv = 1ull << (bits - 1);
  uint64_t v = k->red == XK_RED_SUM   ? 0
               : k->red == XK_RED_MAX ? minv
                                      : minv - 1;
  return LLVMConstInt(k->ty, v, 0);
}

static LLVMValueRef red_combine(nv *s, const red_kind *k, LLVMValueRef a,
                                LLVMValueRef b) {
  if (k->red == XK_RED_SUM)
    return k->fl ? LLVMBuildFAdd(s->b, a, b, "") : LLVMBuildAdd(s->b, a, b, "");
  int mx = k->red == XK_RED_MAX;
  if (k->fl) {
    LLVMValueRef args[2] = {a, b};
    return nv_call(s, mx ? "llvm.maxnum.f32" : "llvm.minnum.f32", k->ty, args,
                   2);
  }
  LLVMValueRef c = LLVMBuildICmp(s->b, mx ? LLVMIntSGT : LLVMIntSLT, a, b, "");
  return LLVMBuildSelect(s->b, c, a, b, "");
}

static LLVMValueRef shfl(nv *s, const red_kind *k, LLVMValueRef v, int mask) {
  LLVMTypeRef i32 = LLVMInt32TypeInContext(s->ctx);
  if (k->fl)
    return LLVMBuildBitCast(
        s->b, s->pr->shfl_bfly(s, LLVMBuildBitCast(s->b, v, i32, ""), mask),
        k->ty, "");
  if (LLVMGetIntTypeWidth(k->ty) == 32)
    return s->pr->shfl_bfly(s, v, mask);
  LLVMTypeRef i64 = LLVMInt64TypeInContext(s->ctx);
  LLVMValueRef lo = LLVMBuildTrunc(s->b, v, i32, "");
  LLVMValueRef hi = LLVMBuildTrunc(
      s->b, LLVMBuildLShr(s->b, v, LLVMConstInt(i64, 32, 0), ""), i32, "");
  lo = LLVMBuildZExt(s->b, s->pr->shfl_bfly(s, lo, mask), i64, "");
  hi = LLVMBuildZExt(s->b, s->pr->shfl_bfly(s, hi, mask), i64, "");
  return LLVMBuildOr(s->b, lo,
                     LLVMBuildShl(s->b, hi, LLVMConstInt(i64, 32, 0), ""), "");
}

static LLVMValueRef red_in(nv *s, const red_kind *k, LLVMValueRef x) {
  if (k->fl)
    return nv_ext_f32(s, k->dt, x);
  return k->dt == XK_I1 ? LLVMBuildZExt(s->b, x, k->ty, "") : x;
}

static LLVMValueRef red_out(nv *s, const red_kind *k, LLVMValueRef x) {
  if (k->fl)
    return nv_trunc_from_f32(s, k->dt, x);
  return k->dt == XK_I1 ? LLVMBuildTrunc(s->b, x, nv_reg_ty(s, XK_I1), "") : x;
}

int nv_lower_reduce(nv *s, const xk_op *op) {
  int v = op->opnd[0], axis = op->attr.axis;
  xk_type ot = xk_vtype(s->f, v);
  if (axis < 0 || axis >= ot.rank)
    return nv_err(s, "reduce axis %d out of range", axis);
  xk_layout P;
  LLVMValueRef *in = nv_get_any(s, v, &P);
  if (!in)
    return -1;
  xk_layout R = xk_layout_slice(&P, axis);
  red_kind k = {op->attr.red, ot.dtype, NULL, xk_dtype_is_float(ot.dtype)};
  k.ty = k.fl                 ? LLVMFloatTypeInContext(s->ctx)
         : ot.dtype == XK_I64 ? LLVMInt64TypeInContext(s->ctx)
                              : LLVMInt32TypeInContext(s->ctx);
  LLVMValueRef id = red_identity(s, &k);
  xk_layout_dim_info da;
  xk_layout_dim(&P, axis, &da);
  int nres = xk_layout_nregs(&R);
  LLVMValueRef *res = nv_alloc(s, (size_t)nres * sizeof *res);
  /* 1. in-thread; wrapped copies along the axis contribute the identity */
  for (int q = 0; q < nres; q++) {
    int rq[XK_MAX_RANK] = {0}, rp[XK_MAX_RANK];
    xk_layout_reg_split(&R, q, rq);
    for (int t = 0, u = 0; t < ot.rank; t++)
      rp[t] = t == axis ? 0 : rq[u++];
    LLVMValueRef acc = id;
    for (int ia = 0; ia < da.nregs; ia++) {
      rp[axis] = ia;
      int j = xk_layout_reg_join(&P, rp);
      LLVMValueRef x = red_in(s, &k, in[j]);
      if (da.wrap)
        x = LLVMBuildSelect(s->b,
                            LLVMBuildICmp(s->b, LLVMIntULT,
                                          nv_raw(s, &P, j, axis),
                                          nv_i32(s, da.shape), ""),
                            x, id, "");
      acc = ia ? red_combine(s, &k, acc, x) : x;
    }
    res[q] = acc;
  }
  /* 2. across the lanes along the axis */
  for (int m = 1; m < da.tpw; m *= 2)
    for (int q = 0; q < nres; q++)
      res[q] =
          red_combine(s, &k, res[q], shfl(s, &k, res[q], da.lane_stride * m));
  /* 3. across the warps along the axis, through shared memory */
  if (da.wpc > 1) {
    int64_t numel = 1;
    for (int t = 0; t < R.rank; t++)
      numel *= R.shape[t];
    int esz = LLVMGetTypeKind(k.ty) == LLVMIntegerTypeKind &&
                      LLVMGetIntTypeWidth(k.ty) == 64
                  ? 8
                  : 4;
    /* the warps' partials of one result element in a row; an odd row
     * length puts the rows that the lanes of one request read or write at
     * distinct banks (a power-of-two length mapped every second row onto
     * the same ones) */
    int ld = da.wpc | 1;
    LLVMValueRef base = nv_smem(s, (int)(numel * ld * esz));
    int ws = 0;
    while ((1 << ws) < da.warp_stride)
      ws++;
    LLVMValueRef widx =
        LLVMBuildAnd(s->b, LLVMBuildLShr(s->b, s->warp, nv_i32(s, ws), ""),
                     nv_i32(s, da.wpc - 1), "");
    LLVMValueRef *row = nv_alloc(s, (size_t)nres * sizeof *row);
    for (int q = 0; q < nres; q++) {
      LLVMValueRef c[XK_MAX_RANK];
      nv_coords(s, &R, q, c);
      row[q] = LLVMBuildMul(s->b, nv_rowmajor(s, c, R.shape, R.rank),
                            nv_i32(s, ld), "");
      smem_store(s, res[q],
                 smem_ptr(s, k.ty, base, LLVMBuildAdd(s->b, row[q], widx, "")));
    }
    s->pr->barrier(s);
    for (int q = 0; q < nres; q++) {
      LLVMValueRef acc = NULL;
      for (int w = 0; w < da.wpc; w++) {
        LLVMValueRef x =
            smem_load(s, k.ty,
                      smem_ptr(s, k.ty, base,
                               LLVMBuildAdd(s->b, row[q], nv_i32(s, w), "")));
        acc = w ? red_combine(s, &k, acc, x) : x;
      }
      res[q] = acc;
    }
    s->pr->barrier(s);
  }
  for (int q = 0; q < nres; q++)
    res[q] = red_out(s, &k, res[q]);
  if (R.rank == 0) {
    s->vals[op->res[0]].kind = NV_SCALAR;
    s->vals[op->res[0]].s = res[0];
  } else {
    s->vals[op->res[0]].kind = NV_MAT;
    s->vals[op->res[0]].lay = R;
    s->vals[op->res[0]].regs = res;
  }
  return 0;
}

/* ---- dot ---------------------------------------------------------------- */

/* Stores a materialized [R,C] tile row-major with rows `ld` elements
 * apart at element offset `at`. */
static void stage(nv *s, const LLVMValueRef *regs, const xk_layout *l, int dt,
                  LLVMValueRef base, int at, int ld) {
  LLVMTypeRef ty = nv_mem_ty(s, dt);
  int32_t padded[2] = {l->shape[0], ld};
  for (int j = 0; j < xk_layout_nregs(l); j++) {
    LLVMValueRef c[XK_MAX_RANK];
    nv_coords(s, l, j, c);
    LLVMValueRef off =
        LLVMBuildAdd(s->b, nv_rowmajor(s, c, padded, 2), nv_i32(s, at), "");
    smem_store(s, regs[j], smem_ptr(s, ty, base, off));
  }
}

/* Fully unrolling the K loop (what O3 does for short constant trip
 * counts) schedules every shared load early: registers spill and compile
 * time grows with K. A partial unroll keeps enough FMAs in flight. */
#define DOT_UNROLL 4

static void limit_unroll(nv *s, LLVMValueRef br, int count) {
  LLVMMetadataRef tmp = LLVMTemporaryMDNode(s->ctx, NULL, 0);
  LLVMMetadataRef kv[2] = {
      LLVMMDStringInContext2(s->ctx, "llvm.loop.unroll.count", 22),
      LLVMValueAsMetadata(nv_i32(s, count))};
  LLVMMetadataRef ops[2] = {tmp, LLVMMDNodeInContext2(s->ctx, kv, 2)};
  LLVMMetadataRef loop = LLVMMDNodeInContext2(s->ctx, ops, 2);
  LLVMMetadataReplaceAllUsesWith(tmp, loop);
  LLVMSetMetadata(br, LLVMGetMDKindIDInContext(s->ctx, "llvm.loop", 9),
                  LLVMMetadataAsValue(s->ctx, loop));
}

static LLVMValueRef round_f16(nv *s, LLVMValueRef x) {
  return nv_ext_f32(s, XK_F16, nv_trunc_from_f32(s, XK_F16, x));
}

int nv_lower_dot(nv *s, const xk_op *op) {
  xk_type at = xk_vtype(s->f, op->opnd[0]), bt = xk_vtype(s->f, op->opnd[1]);
  int M = at.shape[0], K = at.shape[1], N = bt.shape[1], dt = at.dtype;
  if (at.rank != 2 || bt.rank != 2 || bt.shape[0] != K)
    return nv_err(s, "dot needs [M,K] x [K,N] tiles");
  xk_layout la, lb, lc;
  if (nv_mma_layout(s, op, &lc))
    return nv_lower_dot_mma(s, op, &lc);
  /* b and acc first: a conversion on their way uses shared memory and
   * so ends the reuse of a staged `a` */
  LLVMValueRef pa = nv_pipe_tile(s, op, 0), pb = nv_pipe_tile(s, op, 1);
  LLVMValueRef *b = pb ? NULL : nv_get_any(s, op->opnd[1], &lb);
  LLVMValueRef *acc = pb || b ? nv_get_any(s, op->opnd[2], &lc) : NULL;
  int reuse = !pa && s->staged_a == op->opnd[0] && !s->staged_swz;
  LLVMValueRef *a =
      pa || reuse || !acc ? NULL : nv_get_any(s, op->opnd[0], &la);
  if (!acc || (!pa && !reuse && !a))
    return -1;
  int esz = xk_dtype_bits(dt) / 8;
  int lda = nv_dot_pitch(K, esz), ldb = nv_dot_pitch(N, esz), boff = M * lda;
  LLVMTypeRef f32 = LLVMFloatTypeInContext(s->ctx), ty = nv_mem_ty(s, dt);
  /* a pipelined operand is read in place from its loop buffer */
  int staged = !pa || !pb;
  LLVMValueRef base = staged ? nv_smem(s, (boff + K * ldb) * esz) : NULL;
  LLVMValueRef abase = pa ? pa : base;
  LLVMValueRef bbase = pb ? pb : smem_ptr(s, ty, base, nv_i32(s, boff));
  if (!pa && !reuse)
    stage(s, a, &la, dt, abase, 0, lda);
  if (!pb)
    stage(s, b, &lb, dt, bbase, 0, ldb);
  if (staged)
    s->pr->barrier(s);
  /* row offsets of the thread's output rows, column offsets of its
   * columns: they depend on one register dim each */
  int n = xk_layout_nregs(&lc);
  xk_layout_dim_info d0, d1;
  xk_layout_dim(&lc, 0, &d0);
  xk_layout_dim(&lc, 1, &d1);
  LLVMValueRef *arow = nv_alloc(s, (size_t)d0.nregs * sizeof *arow);
  LLVMValueRef *bcol = nv_alloc(s, (size_t)d1.nregs * sizeof *bcol);
  for (int i = 0; i < d0.nregs || i < d1.nregs; i++) {
    int rd[2] = {i < d0.nregs ? i : 0, i < d1.nregs ? i : 0};
    LLVMValueRef c[XK_MAX_RANK];
    nv_coords(s, &lc, xk_layout_reg_join(&lc, rd), c);
    if (i < d0.nregs)
      arow[i] = LLVMBuildMul(s->b, c[0], nv_i32(s, lda), "");
    if (i < d1.nregs)
      bcol[i] = c[1];
  }
  int f16acc = op->attr.i == XK_DOT_ACC_F16;
  if (f16acc) { /* XK_DOT_ACC_F16 rounds the accumulator on entry */
    LLVMValueRef *r16 = nv_alloc(s, (size_t)n * sizeof *r16);
    for (int r = 0; r < n; r++)
      r16[r] = round_f16(s, acc[r]);
    acc = r16;
  }
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(s->b);
  LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(s->ctx, s->fn, "dot");
  LLVMBasicBlockRef done =
      LLVMAppendBasicBlockInContext(s->ctx, s->fn, "dotend");
  LLVMBuildBr(s->b, body);
  LLVMPositionBuilderAtEnd(s->b, body);
  LLVMValueRef kv = LLVMBuildPhi(s->b, LLVMInt32TypeInContext(s->ctx), "k");
  LLVMValueRef zero = nv_i32(s, 0);
  LLVMAddIncoming(kv, &zero, &pre, 1);
  LLVMValueRef *ph = nv_alloc(s, (size_t)n * sizeof *ph);
  for (int r = 0; r < n; r++) {
    ph[r] = LLVMBuildPhi(s->b, f32, "");
    LLVMAddIncoming(ph[r], &acc[r], &pre, 1);
  }
  /* XK_DOT_ACC_F16 rounds after the last k of each block */
  LLVMValueRef kend =
      f16acc
          ? LLVMBuildOr(
                s->b,
                LLVMBuildICmp(
                    s->b, LLVMIntEQ,
                    LLVMBuildAnd(s->b, kv, nv_i32(s, XK_DOT_ACC_BLOCK - 1), ""),
                    nv_i32(s, XK_DOT_ACC_BLOCK - 1), ""),
                LLVMBuildICmp(s->b, LLVMIntEQ, kv, nv_i32(s, K - 1), ""), "")
          : NULL;
  LLVMValueRef *av = nv_alloc(s, (size_t)d0.nregs * sizeof *av);
  LLVMValueRef *bv = nv_alloc(s, (size_t)d1.nregs * sizeof *bv);
  LLVMValueRef kn = LLVMBuildMul(s->b, kv, nv_i32(s, ldb), "");
  for (int i = 0; i < d0.nregs; i++)
    av[i] = nv_ext_f32(
        s, dt,
        smem_load(s, ty,
                  smem_ptr(s, ty, abase, LLVMBuildAdd(s->b, arow[i], kv, ""))));
  for (int i = 0; i < d1.nregs; i++)
    bv[i] = nv_ext_f32(
        s, dt,
        smem_load(s, ty,
                  smem_ptr(s, ty, bbase, LLVMBuildAdd(s->b, bcol[i], kn, ""))));
  LLVMValueRef *out = nv_alloc(s, (size_t)n * sizeof *out);
  for (int r = 0; r < n; r++) {
    int rd[XK_MAX_RANK];
    xk_layout_reg_split(&lc, r, rd);
    LLVMValueRef args[3] = {av[rd[0]], bv[rd[1]], ph[r]};
    out[r] = nv_call(s, "llvm.fma.f32", f32, args, 3);
    if (kend)
      out[r] = LLVMBuildSelect(s->b, kend, round_f16(s, out[r]), out[r], "");
  }
  nv_note_count(s, XK_SIM_FMA, n);
  LLVMValueRef knext = LLVMBuildAdd(s->b, kv, nv_i32(s, 1), "");
  LLVMBasicBlockRef latch = LLVMGetInsertBlock(s->b);
  LLVMAddIncoming(kv, &knext, &latch, 1);
  for (int r = 0; r < n; r++)
    LLVMAddIncoming(ph[r], &out[r], &latch, 1);
  LLVMValueRef br = LLVMBuildCondBr(
      s->b, LLVMBuildICmp(s->b, LLVMIntSLT, knext, nv_i32(s, K), ""), body,
      done);
  limit_unroll(s, br, DOT_UNROLL);
  LLVMPositionBuilderAtEnd(s->b, done);
  if (staged)
    s->pr->barrier(s);
  s->staged_a = pa ? -1 : op->opnd[0];
  s->staged_swz = 0;
  s->vals[op->res[0]].kind = NV_MAT;
  s->vals[op->res[0]].lay = lc;
  s->vals[op->res[0]].regs = out;
  return 0;
}
