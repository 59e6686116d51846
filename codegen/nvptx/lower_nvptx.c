/* Tile IR -> NVVM IR: per-thread register tiles over distributed layouts.
 * This file holds the driver, value bookkeeping, elementwise ops, pure
 * (coordinate-function) evaluation, memory ops and loops; data movement
 * between threads (conversions, reductions, dot) is lower_nvptx_xfer.c. */
#include "lower_nvptx_int.h"

#include "arch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *nv_alloc(nv *s, size_t n) {
  if (s->narena == s->cap_arena) {
    int c = s->cap_arena ? 2 * s->cap_arena : 64;
    void **a = realloc(s->arena, (size_t)c * sizeof *a);
    if (!a)
      abort();
    s->arena = a;
    s->cap_arena = c;
  }
  void *p = calloc(1, n ? n : 1);
  if (!p)
    abort();
  s->arena[s->narena++] = p;
  return p;
}

int nv_err(nv *s, const char *fmt, ...) {
  char msg[900];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (s->op)
    return xk_diag_set(s->d, "%s:%d: nvptx lowering of %s: %s", s->f->file,
                       s->op->loc.line, xk_op_name(s->op->code), msg);
  return xk_diag_set(s->d, "%s: nvptx lowering: %s", s->f->file, msg);
}

LLVMTypeRef nv_reg_ty(nv *s, int dt) {
  switch (dt) {
  case XK_I1:
    return LLVMInt1TypeInContext(s->ctx);
  case XK_I32:
    return LLVMInt32TypeInContext(s->ctx);
  case XK_I64:
    return LLVMInt64TypeInContext(s->ctx);
  case XK_F16:
    return LLVMHalfTypeInContext(s->ctx);
  case XK_BF16:
    return LLVMBFloatTypeInContext(s->ctx);
  case XK_F32:
    return LLVMFloatTypeInContext(s->ctx);
  default:
    return LLVMPointerTypeInContext(s->ctx, (unsigned)s->pr->global_as);
  }
}

LLVMTypeRef nv_mem_ty(nv *s, int dt) {
  return dt == XK_I1 ? LLVMInt8TypeInContext(s->ctx) : nv_reg_ty(s, dt);
}

LLVMValueRef nv_to_mem(nv *s, int dt, LLVMValueRef v) {
  return dt == XK_I1 ? LLVMBuildZExt(s->b, v, nv_mem_ty(s, dt), "") : v;
}

LLVMValueRef nv_from_mem(nv *s, int dt, LLVMValueRef v) {
  return dt == XK_I1 ? LLVMBuildICmp(s->b, LLVMIntNE, v,
                                     LLVMConstNull(LLVMTypeOf(v)), "")
                     : v;
}

LLVMValueRef nv_i32(nv *s, int64_t v) {
  return LLVMConstInt(LLVMInt32TypeInContext(s->ctx), (unsigned long long)v, 1);
}

LLVMValueRef nv_call(nv *s, const char *name, LLVMTypeRef ret,
                     LLVMValueRef *args, int nargs) {
  LLVMTypeRef pt[16];
  for (int i = 0; i < nargs; i++)
    pt[i] = LLVMTypeOf(args[i]);
  LLVMTypeRef ft = LLVMFunctionType(ret, pt, (unsigned)nargs, 0);
  LLVMValueRef fn = LLVMGetNamedFunction(s->mod, name);
  if (!fn)
    fn = LLVMAddFunction(s->mod, name, ft);
  return LLVMBuildCall2(s->b, ft, fn, args, (unsigned)nargs, "");
}

void nv_note_global(nv *s, LLVMTypeRef ty, LLVMValueRef ptr,
                    LLVMValueRef active, int is_store) {
  if (s->pr->count_global)
    s->pr->count_global(s, ty, ptr, active, is_store);
}

void nv_note_shared(nv *s, LLVMTypeRef ty, LLVMValueRef ptr, int is_store) {
  if (s->pr->count_shared)
    s->pr->count_shared(s, ty, ptr, NULL, is_store);
}

void nv_note_count(nv *s, int kind, int n) {
  if (s->pr->count)
    s->pr->count(s, kind, n);
}

static int log2i(int x) {
  int k = 0;
  while ((1 << k) < x)
    k++;
  return k;
}

/* Thread parts of a layout's coordinates, computed once in the prologue so
 * they dominate every use (loops, branches). */
static nv_bases *bases_of(nv *s, const xk_layout *l) {
  for (int i = 0; i < s->nbases; i++)
    if (xk_layout_eq(&s->bases[i].lay, l))
      return &s->bases[i];
  if (s->nbases == s->cap_bases) {
    int c = s->cap_bases ? 2 * s->cap_bases : 16;
    nv_bases *nb = realloc(s->bases, (size_t)c * sizeof *nb);
    if (!nb)
      abort();
    s->bases = nb;
    s->cap_bases = c;
  }
  nv_bases *e = &s->bases[s->nbases++];
  memset(e, 0, sizeof *e);
  e->lay = *l;
  LLVMBuilderRef b = s->pb;
  for (int p = 0; p < l->prank; p++) {
    xk_layout_dim_info di;
    xk_layout_pdim(l, p, &di);
    LLVMValueRef ld = LLVMBuildAnd(
        b, LLVMBuildLShr(b, s->lane, nv_i32(s, log2i(di.lane_stride)), ""),
        nv_i32(s, di.tpw - 1), "");
    LLVMValueRef wd = LLVMBuildAnd(
        b, LLVMBuildLShr(b, s->warp, nv_i32(s, log2i(di.warp_stride)), ""),
        nv_i32(s, di.wpc - 1), "");
    e->pbase[p] =
        LLVMBuildAdd(b, LLVMBuildMul(b, wd, nv_i32(s, di.spt * di.tpw), ""),
                     LLVMBuildMul(b, ld, nv_i32(s, di.spt), ""), "");
  }
  for (int t = 0; t < l->rank; t++) {
    xk_layout_dim_info di;
    xk_layout_dim(l, t, &di);
    e->base[t] = e->pbase[di.pdim];
  }
  return e;
}

LLVMValueRef nv_pbase(nv *s, const xk_layout *l, int p) {
  return bases_of(s, l)->pbase[p];
}

LLVMValueRef nv_raw(nv *s, const xk_layout *l, int reg, int t) {
  return LLVMBuildAdd(s->b, bases_of(s, l)->base[t],
                      nv_i32(s, xk_layout_reg_off(l, reg, t)), "");
}

LLVMValueRef nv_coords(nv *s, const xk_layout *l, int reg, LLVMValueRef *c) {
  LLVMValueRef canon = LLVMConstInt(LLVMInt1TypeInContext(s->ctx), 1, 0);
  nv_bases *bs = bases_of(s, l);
  for (int p = 0; p < l->prank; p++)
    if ((l->dropped & (1u << p)) && (l->tpw[p] > 1 || l->wpc[p] > 1))
      canon = LLVMBuildAnd(
          s->b, canon,
          LLVMBuildICmp(s->b, LLVMIntEQ, bs->pbase[p], nv_i32(s, 0), ""), "");
  for (int t = 0; t < l->rank; t++) {
    xk_layout_dim_info di;
    xk_layout_dim(l, t, &di);
    LLVMValueRef raw = nv_raw(s, l, reg, t);
    if (di.wrap) {
      canon = LLVMBuildAnd(
          s->b, canon,
          LLVMBuildICmp(s->b, LLVMIntULT, raw, nv_i32(s, di.shape), ""), "");
      raw = LLVMBuildAnd(s->b, raw, nv_i32(s, di.shape - 1), "");
    }
    c[t] = raw;
  }
  return canon;
}

LLVMValueRef nv_rowmajor(nv *s, const LLVMValueRef *c, const int32_t *shape,
                         int rank) {
  LLVMValueRef x = nv_i32(s, 0);
  for (int t = 0; t < rank; t++)
    x = LLVMBuildAdd(s->b, LLVMBuildMul(s->b, x, nv_i32(s, shape[t]), ""), c[t],
                     "");
  return x;
}

/* Exchanges inside a pipelined loop get the memory after its buffers. */
LLVMValueRef nv_smem(nv *s, int bytes) {
  if (bytes + s->smem_pin > s->smem_bytes)
    s->smem_bytes = bytes + s->smem_pin;
  s->staged_a = -1;
  LLVMValueRef base = s->pr->smem_base(s), off = nv_i32(s, s->smem_pin);
  if (!s->smem_pin)
    return base;
  return LLVMBuildGEP2(s->b, LLVMInt8TypeInContext(s->ctx), base, &off, 1, "");
}

/* ---- pure values: evaluated per element from coordinates ------------- */

static LLVMValueRef eval_elem(nv *s, int v, const LLVMValueRef *c) {
  nv_val *x = &s->vals[v];
  if (x->kind == NV_SCALAR)
    return x->s;
  const xk_op *op = &s->f->ops[s->f->values[v].def_op];
  xk_type rt = xk_vtype(s->f, v);
  LLVMValueRef oc[XK_MAX_RANK];
  switch (op->code) {
  case XK_OP_CONST:
    return nv_const_of(s, op);
  case XK_OP_ARANGE:
    return LLVMBuildAdd(s->b, c[0], nv_i32(s, op->attr.lo), "");
  case XK_OP_BROADCAST: {
    xk_type ot = xk_vtype(s->f, op->opnd[0]);
    for (int t = 0; t < ot.rank; t++)
      oc[t] = ot.shape[t] == 1 ? nv_i32(s, 0) : c[t];
    return eval_elem(s, op->opnd[0], oc);
  }
  case XK_OP_EXPAND_DIMS:
    for (int t = 0, k = 0; t < rt.rank; t++)
      if (t != op->attr.axis)
        oc[k++] = c[t];
    return eval_elem(s, op->opnd[0], oc);
  case XK_OP_TRANS:
    for (int t = 0; t < rt.rank; t++)
      oc[op->attr.perm[t]] = c[t];
    return eval_elem(s, op->opnd[0], oc);
  case XK_OP_SHIFT:
  case XK_OP_XORPERM:
    for (int t = 0; t < rt.rank; t++)
      oc[t] = t == op->attr.axis
                  ? nv_axis_perm_coord(s, op->code, (int)op->attr.i,
                                       rt.shape[t], c[t])
                  : c[t];
    return eval_elem(s, op->opnd[0], oc);
  case XK_OP_RESHAPE: {
    xk_type ot = xk_vtype(s->f, op->opnd[0]);
    LLVMValueRef lin = nv_rowmajor(s, c, rt.shape, rt.rank);
    for (int t = ot.rank - 1; t >= 0; t--) {
      oc[t] = LLVMBuildAnd(s->b, lin, nv_i32(s, ot.shape[t] - 1), "");
      lin = LLVMBuildLShr(s->b, lin, nv_i32(s, log2i(ot.shape[t])), "");
    }
    return eval_elem(s, op->opnd[0], oc);
  }
  default: {
    LLVMValueRef a[3];
    for (int i = 0; i < op->nopnd && i < 3; i++)
      a[i] = eval_elem(s, op->opnd[i], c);
    return nv_ew(s, op, a);
  }
  }
}

static int lower_load(nv *s, const xk_op *op);
static xk_layout op_layout(nv *s, const int *v, int n, xk_type t);

static int undefer(nv *s, int v) {
  if (s->vals[v].kind != NV_DEFER)
    return 0;
  const xk_op *saved = s->op;
  s->vals[v].kind = NV_NONE;
  int rc = lower_load(s, s->vals[v].defer);
  s->op = saved;
  return rc;
}

LLVMValueRef *nv_get(nv *s, int v, const xk_layout *l) {
  if (undefer(s, v))
    return NULL;
  nv_val *x = &s->vals[v];
  int n = xk_layout_nregs(l);
  if (x->kind == NV_MAT && xk_layout_eq(&x->lay, l))
    return x->regs;
  LLVMValueRef *r = nv_alloc(s, (size_t)n * sizeof *r);
  if (x->kind == NV_SCALAR) {
    for (int i = 0; i < n; i++)
      r[i] = x->s;
  } else if (x->kind == NV_LAZY) {
    nv_src g;
    if (nv_src_init(s, &g, v, l))
      return NULL;
    for (int i = 0; i < n; i++)
      r[i] = nv_src_elem(s, &g, l, i);
  } else if (x->kind == NV_PURE) {
    for (int i = 0; i < n; i++) {
      LLVMValueRef c[XK_MAX_RANK];
      nv_coords(s, l, i, c);
      r[i] = eval_elem(s, v, c);
    }
  } else {
    xk_type t = xk_vtype(s->f, v);
    nv_map m = {.code = -1, .src_rank = t.rank, .dst_rank = t.rank};
    memcpy(m.dst_shape, t.shape, sizeof m.dst_shape);
    memcpy(m.src_shape, t.shape, sizeof m.src_shape);
    const nv_val *src = x;
    if (x->kind == NV_VIEW) {
      int sv = s->f->ops[s->f->values[v].def_op].opnd[0];
      src = &s->vals[sv];
      m.code = XK_OP_BROADCAST;
      memcpy(m.src_shape, xk_vtype(s->f, sv).shape, sizeof m.src_shape);
    }
    if (nv_gather(s, src->regs, &src->lay, t.dtype, &m, l, r))
      return NULL;
  }
  return r;
}

LLVMValueRef *nv_get_any(nv *s, int v, xk_layout *l) {
  if (undefer(s, v))
    return NULL;
  nv_val *x = &s->vals[v];
  if (x->kind == NV_MAT) {
    *l = x->lay;
    return x->regs;
  }
  xk_type t = xk_vtype(s->f, v);
  if (x->kind == NV_LAZY) {
    *l = op_layout(s, &v, 1, t);
    return nv_get(s, v, l);
  }
  /* a view takes the default layout too: its source's distribution
   * stretched over the broadcast shape is often replicated and unbalanced */
  *l = xk_layout_default(t.shape, t.rank, s->nw);
  return nv_get(s, v, l);
}

int nv_src_init(nv *s, nv_src *g, int v, const xk_layout *l) {
  g->v = v;
  g->regs = NULL;
  g->ops = NULL;
  if (v < 0 || undefer(s, v))
    return v < 0 ? 0 : -1;
  int k = s->vals[v].kind;
  if (k == NV_PURE || k == NV_SCALAR)
    return 0;
  if (k == NV_LAZY) {
    const xk_op *op = &s->f->ops[s->f->values[v].def_op];
    g->ops = nv_alloc(s, (size_t)op->nopnd * sizeof *g->ops);
    for (int j = 0; j < op->nopnd; j++)
      if (nv_src_init(s, &g->ops[j], op->opnd[j], l))
        return -1;
    return 0;
  }
  return (g->regs = nv_get(s, v, l)) ? 0 : -1;
}

LLVMValueRef nv_src_elem(nv *s, const nv_src *g, const xk_layout *l, int i) {
  if (g->v < 0)
    return NULL;
  if (g->regs)
    return g->regs[i];
  if (s->vals[g->v].kind == NV_SCALAR)
    return s->vals[g->v].s;
  if (s->vals[g->v].kind == NV_LAZY) {
    const xk_op *op = &s->f->ops[s->f->values[g->v].def_op];
    if (op->code == XK_OP_LOAD) {
      int dt = xk_vtype(s->f, g->v).dtype, k = 1;
      const nv_src *m = op->attr.has_mask ? &g->ops[k++] : NULL;
      const nv_src *o = op->attr.has_other ? &g->ops[k++] : NULL;
      LLVMTypeRef mty = nv_mem_ty(s, dt);
      LLVMValueRef other =
          o ? nv_to_mem(s, dt, nv_src_elem(s, o, l, i)) : LLVMConstNull(mty);
      LLVMValueRef p = nv_src_elem(s, &g->ops[0], l, i);
      return nv_from_mem(s, dt,
                         nv_guarded_load(s, mty, p,
                                         m ? nv_src_elem(s, m, l, i) : NULL,
                                         other));
    }
    LLVMValueRef a[3];
    for (int j = 0; j < op->nopnd && j < 3; j++)
      a[j] = nv_src_elem(s, &g->ops[j], l, i);
    return nv_ew(s, op, a);
  }
  LLVMValueRef c[XK_MAX_RANK];
  nv_coords(s, l, i, c);
  return eval_elem(s, g->v, c);
}

/* A lazy value's preferred layout: that of a materialized value it reads. */
static int pref_layout(nv *s, int v, xk_layout *l) {
  if (v < 0)
    return 0;
  if (s->vals[v].kind == NV_MAT) {
    *l = s->vals[v].lay;
    return 1;
  }
  if (s->vals[v].kind != NV_LAZY)
    return 0;
  const xk_op *op = &s->f->ops[s->f->values[v].def_op];
  for (int j = 0; j < op->nopnd; j++)
    if (pref_layout(s, op->opnd[j], l))
      return 1;
  return 0;
}

/* The layout of the first operand that has one (directly, or read by a
 * lazy operand): 1, else 0. */
static int operand_layout(nv *s, const int *v, int n, xk_layout *l) {
  for (int i = 0; i < n; i++)
    if (v[i] >= 0 && s->vals[v[i]].kind == NV_MAT) {
      *l = s->vals[v[i]].lay;
      return 1;
    }
  for (int i = 0; i < n; i++)
    if (pref_layout(s, v[i], l))
      return 1;
  return 0;
}

/* The layout an op with these operands runs in: an operand's, else the
 * default. */
static xk_layout op_layout(nv *s, const int *v, int n, xk_type t) {
  xk_layout l;
  if (operand_layout(s, v, n, &l))
    return l;
  return xk_layout_default(t.shape, t.rank, s->nw);
}

/* The vector width (elements) layout l allows along tile dim `fast` for
 * accesses proven safe up to vmax wide: registers that are contiguous
 * along it in one thread, at least 4 bytes. */
static int layout_vec(const xk_layout *l, int fast, int vmax, int esz) {
  if (!l->rank || l->dropped || l->order[0] != fast)
    return 1;
  xk_layout_dim_info di;
  xk_layout_dim(l, fast, &di);
  int v = vmax;
  while (v > 1 && (di.spt % v || di.nregs % v || v > di.shape))
    v /= 2;
  return v * esz >= 4 ? v : 1;
}

/* Sectors a warp touches per tile access in layout l with `vec`-wide
 * accesses, for a dense row-major tile whose `fast` dim is contiguous:
 * how well a layout coalesces, compared at compile time. */
static int64_t layout_sectors(const xk_layout *l, int fast, int vec, int esz) {
  int64_t total = 0;
  int n = xk_layout_nregs(l);
  for (int w = 0; w < l->num_warps; w++)
    for (int r = 0; r < n; r += vec) {
      int64_t sec[32];
      int ns = 0;
      for (int lane = 0; lane < 32; lane++) {
        int c[XK_MAX_RANK];
        xk_layout_coords(l, lane, w, r, c);
        int64_t lin = 0;
        for (int t = 0; t < l->rank; t++)
          if (t != fast)
            lin = lin * l->shape[t] + c[t];
        lin = (lin * l->shape[fast] + c[fast]) * esz;
        int64_t x = lin / 32, seen = 0;
        for (int k = 0; k < ns && !seen; k++)
          seen = sec[k] == x;
        if (!seen)
          sec[ns++] = x;
      }
      total += ns;
    }
  return total;
}

/* The layout a global access op runs in and its vector width: an
 * operand's layout when one has it (a load of loaded pointers, a store of
 * computed values) unless a layout that covers consecutive addresses with
 * consecutive lanes touches clearly fewer sectors (then the value moves
 * there through shared memory); pure pointers take that layout. */
static xk_layout mem_layout(nv *s, const xk_op *op, const int *vs, int n,
                            xk_type t, int *vec) {
  int fast, vmax = nv_mem_vec(s, op, &fast);
  int esz = xk_dtype_bits(t.dtype) / 8;
  if (t.dtype == XK_PTR || t.dtype == XK_I1 || op->code == XK_OP_ATOMIC_ADD)
    vmax = 1;
  xk_layout m = xk_layout_vec(t.shape, t.rank, s->nw, fast, vmax), l;
  int mv = layout_vec(&m, fast, vmax, esz);
  if (!operand_layout(s, vs, n, &l)) {
    *vec = mv;
    return m;
  }
  int lv = layout_vec(&l, fast, vmax, esz);
  if (op->code == XK_OP_STORE && !xk_layout_eq(&l, &m) &&
      4 * layout_sectors(&m, fast, mv, esz) <
          3 * layout_sectors(&l, fast, lv, esz)) {
    *vec = mv;
    return m;
  }
  *vec = lv;
  return l;
}

static void set_mat(nv *s, int v, const xk_layout *l, LLVMValueRef *regs) {
  s->vals[v].kind = NV_MAT;
  s->vals[v].lay = *l;
  s->vals[v].regs = regs;
}

static void set_scalar(nv *s, int v, LLVMValueRef x) {
  s->vals[v].kind = NV_SCALAR;
  s->vals[v].s = x;
}

/* ---- ops ---------------------------------------------------------------- */

static int lower_ew(nv *s, const xk_op *op) {
  /* The result takes the layout of the first materialized operand; views
   * (broadcasts) adapt to it, so they only lead when nothing else does. */
  int all_scalar = 1, first_mat = -1, first_view = -1, any_lazy = 0;
  for (int i = 0; i < op->nopnd; i++) {
    int k = s->vals[op->opnd[i]].kind;
    all_scalar &= k == NV_SCALAR;
    if (k == NV_MAT && first_mat < 0)
      first_mat = op->opnd[i];
    if (k == NV_VIEW && first_view < 0)
      first_view = op->opnd[i];
    any_lazy |= k == NV_LAZY;
  }
  if (all_scalar) {
    LLVMValueRef a[3];
    for (int i = 0; i < op->nopnd && i < 3; i++)
      a[i] = s->vals[op->opnd[i]].s;
    LLVMValueRef r = nv_ew(s, op, a);
    if (!r)
      return nv_err(s, "unsupported elementwise op");
    set_scalar(s, op->res[0], r);
    return 0;
  }
  if (first_mat < 0 && first_view < 0 && !any_lazy) {
    s->vals[op->res[0]].kind = NV_PURE;
    return 0;
  }
  if (s->lazy[op->res[0]]) {
    s->vals[op->res[0]].kind = NV_LAZY;
    return 0;
  }
  xk_layout l = op_layout(s, op->opnd, op->nopnd, xk_vtype(s->f, op->res[0]));
  int n = xk_layout_nregs(&l);
  nv_src in[3];
  for (int i = 0; i < op->nopnd && i < 3; i++)
    if (nv_src_init(s, &in[i], op->opnd[i], &l))
      return -1;
  LLVMValueRef *r = nv_alloc(s, (size_t)n * sizeof *r);
  for (int j = 0; j < n; j++) {
    LLVMValueRef a[3];
    for (int i = 0; i < op->nopnd && i < 3; i++)
      a[i] = nv_src_elem(s, &in[i], &l, j);
    if (!(r[j] = nv_ew(s, op, a)))
      return nv_err(s, "unsupported elementwise op");
  }
  set_mat(s, op->res[0], &l, r);
  return s->resident[op->res[0]] ? nv_stage_resident(s, op->res[0]) : 0;
}

/* Shape ops on materialized tiles pick a destination layout that makes the
 * move a register permutation when one exists. */
static int lower_shape(nv *s, const xk_op *op) {
  nv_val *x = &s->vals[op->opnd[0]];
  if (x->kind == NV_SCALAR || x->kind == NV_PURE) {
    s->vals[op->res[0]].kind = NV_PURE;
    return 0;
  }
  if (x->kind == NV_VIEW) { /* a shape op over a broadcast: materialize */
    xk_layout vl;
    LLVMValueRef *vr = nv_get_any(s, op->opnd[0], &vl);
    if (!vr)
      return -1;
    set_mat(s, op->opnd[0], &vl, vr);
  }
  if (op->code == XK_OP_BROADCAST) {
    s->vals[op->res[0]].kind = NV_VIEW;
    return 0;
  }
  xk_type ot = xk_vtype(s->f, op->opnd[0]), rt = xk_vtype(s->f, op->res[0]);
  xk_layout l = xk_layout_default(rt.shape, rt.rank, s->nw);
  nv_map m = {.code = op->code,
              .src_rank = ot.rank,
              .dst_rank = rt.rank,
              .axis = op->attr.axis,
              .by = (int)op->attr.i};
  memcpy(m.src_shape, ot.shape, sizeof m.src_shape);
  memcpy(m.dst_shape, rt.shape, sizeof m.dst_shape);
  memcpy(m.perm, op->attr.perm, sizeof m.perm);
  if (op->code == XK_OP_SHIFT || op->code == XK_OP_XORPERM) {
    /* exchanges inside a thread's registers stay register moves */
    l = x->lay;
  } else if (op->code == XK_OP_EXPAND_DIMS) {
    xk_layout e;
    if (!xk_layout_expand(&x->lay, op->attr.axis, &e))
      l = e;
  } else if (op->code == XK_OP_TRANS && !x->lay.dropped) {
    /* permute the distribution with the dims: free */
    const xk_layout *a = &x->lay;
    l = *a;
    for (int t = 0; t < rt.rank; t++) {
      int p = op->attr.perm[t];
      l.shape[t] = a->shape[p];
      l.spt[t] = a->spt[p];
      l.tpw[t] = a->tpw[p];
      l.wpc[t] = a->wpc[p];
    }
    for (int i = 0; i < rt.rank; i++)
      for (int t = 0; t < rt.rank; t++)
        if (op->attr.perm[t] == a->order[i])
          l.order[i] = t;
  }
  LLVMValueRef *r = nv_alloc(s, (size_t)xk_layout_nregs(&l) * sizeof *r);
  if (nv_gather(s, x->regs, &x->lay, rt.dtype, &m, &l, r))
    return -1;
  set_mat(s, op->res[0], &l, r);
  return 0;
}

/* Memory ops run per register; a masked-off element branches around its
 * access so it never touches memory. */
static LLVMValueRef aligned_load(nv *s, LLVMTypeRef ty, LLVMValueRef ptr,
                                 unsigned align) {
  LLVMValueRef v = LLVMBuildLoad2(s->b, ty, ptr, "");
  if (align)
    LLVMSetAlignment(v, align);
  return v;
}

/* align: 0 for the type's own, else the proven alignment of a vector */
static LLVMValueRef guarded_load_al(nv *s, LLVMTypeRef ty, LLVMValueRef ptr,
                                    LLVMValueRef mask, LLVMValueRef other,
                                    unsigned align) {
  nv_note_global(s, ty, ptr, mask, 0);
  if (!mask || (LLVMIsAConstantInt(mask) && LLVMConstIntGetZExtValue(mask)))
    return aligned_load(s, ty, ptr, align);
  /* vectors branch around the access: the predicated form is scalar */
  if (s->pr->load_masked && LLVMGetTypeKind(ty) != LLVMVectorTypeKind)
    return s->pr->load_masked(s, ty, ptr, mask, other);
  LLVMBasicBlockRef cur = LLVMGetInsertBlock(s->b);
  LLVMBasicBlockRef ld = LLVMAppendBasicBlockInContext(s->ctx, s->fn, "ld");
  LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(s->ctx, s->fn, "ldj");
  LLVMBuildCondBr(s->b, mask, ld, join);
  LLVMPositionBuilderAtEnd(s->b, ld);
  LLVMValueRef v = aligned_load(s, ty, ptr, align);
  LLVMBuildBr(s->b, join);
  LLVMPositionBuilderAtEnd(s->b, join);
  LLVMValueRef phi = LLVMBuildPhi(s->b, ty, "");
  LLVMValueRef vals[2] = {v, other};
  LLVMBasicBlockRef bbs[2] = {ld, cur};
  LLVMAddIncoming(phi, vals, bbs, 2);
  return phi;
}

LLVMValueRef nv_guarded_load(nv *s, LLVMTypeRef ty, LLVMValueRef ptr,
                             LLVMValueRef mask, LLVMValueRef other) {
  return guarded_load_al(s, ty, ptr, mask, other, 0);
}

/* Opens a guarded region when `mask` is not constant true; returns the
 * join block to close it with, or NULL. */
static LLVMBasicBlockRef guard_open(nv *s, LLVMValueRef mask) {
  if (LLVMIsAConstantInt(mask) && LLVMConstIntGetZExtValue(mask))
    return NULL;
  LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(s->ctx, s->fn, "st");
  LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(s->ctx, s->fn, "stj");
  LLVMBuildCondBr(s->b, mask, body, join);
  LLVMPositionBuilderAtEnd(s->b, body);
  return join;
}

static void guard_close(nv *s, LLVMBasicBlockRef join) {
  if (!join)
    return;
  LLVMBuildBr(s->b, join);
  LLVMPositionBuilderAtEnd(s->b, join);
}

static int lower_load(nv *s, const xk_op *op) {
  s->op = op;
  xk_type rt = xk_vtype(s->f, op->res[0]);
  int dt = rt.dtype, k = 1;
  int mv = op->attr.has_mask ? op->opnd[k++] : -1;
  int ov = op->attr.has_other ? op->opnd[k++] : -1;
  LLVMTypeRef mty = nv_mem_ty(s, dt);
  LLVMValueRef zero = LLVMConstNull(mty);
  if (rt.rank == 0) {
    LLVMValueRef other = ov >= 0 ? nv_to_mem(s, dt, s->vals[ov].s) : zero;
    LLVMValueRef v = nv_guarded_load(s, mty, s->vals[op->opnd[0]].s,
                                     mv >= 0 ? s->vals[mv].s : NULL, other);
    set_scalar(s, op->res[0], nv_from_mem(s, dt, v));
    return 0;
  }
  if (s->lazy[op->res[0]]) {
    s->vals[op->res[0]].kind = NV_LAZY;
    return 0;
  }
  int vs[3] = {op->opnd[0], mv, ov}, vec;
  xk_layout l = mem_layout(s, op, vs, 3, rt, &vec);
  nv_src p, m, o;
  if (nv_src_init(s, &p, vs[0], &l) || nv_src_init(s, &m, mv, &l) ||
      nv_src_init(s, &o, ov, &l))
    return -1;
  int n = xk_layout_nregs(&l);
  LLVMValueRef *r = nv_alloc(s, (size_t)n * sizeof *r);
  LLVMTypeRef vty = vec > 1 ? LLVMVectorType(mty, (unsigned)vec) : mty;
  unsigned align = vec > 1 ? (unsigned)(vec * xk_dtype_bits(dt) / 8) : 0;
  /* a group of vec registers is contiguous in memory and shares its mask
   * (nv_mem_vec): one access at the group's first element */
  for (int i = 0; i < n; i += vec) {
    LLVMValueRef other = LLVMConstNull(vty);
    for (int e = 0; e < vec && ov >= 0; e++) {
      LLVMValueRef x = nv_to_mem(s, dt, nv_src_elem(s, &o, &l, i + e));
      other = vec > 1 ? LLVMBuildInsertElement(s->b, other, x, nv_i32(s, e), "")
                      : x;
    }
    if (ov < 0 && vec == 1)
      other = zero;
    LLVMValueRef pi = nv_src_elem(s, &p, &l, i);
    LLVMValueRef x =
        guarded_load_al(s, vty, pi, nv_src_elem(s, &m, &l, i), other, align);
    for (int e = 0; e < vec; e++)
      r[i + e] = nv_from_mem(
          s, dt,
          vec > 1 ? LLVMBuildExtractElement(s->b, x, nv_i32(s, e), "") : x);
  }
  set_mat(s, op->res[0], &l, r);
  return 0;
}

/* Only the canonical copy of a replicated element writes, so atomics are
 * not applied twice. */
static int lower_store(nv *s, const xk_op *op) {
  int pv = op->opnd[0], vv = op->opnd[1];
  int mv = op->nopnd > 2 ? op->opnd[2] : -1;
  xk_type vt = xk_vtype(s->f, vv);
  int dt = vt.dtype, atomic = op->code == XK_OP_ATOMIC_ADD;
  int vs[3] = {pv, vv, mv};
  if (undefer(s, pv) || undefer(s, vv) || (mv >= 0 && undefer(s, mv)))
    return -1;
  int vec;
  xk_layout l = mem_layout(s, op, vs, 3, vt, &vec);
  nv_src ps, vsrc, ms;
  if (nv_src_init(s, &ps, pv, &l) || nv_src_init(s, &vsrc, vv, &l) ||
      nv_src_init(s, &ms, mv, &l))
    return -1;
  int n = xk_layout_nregs(&l);
  LLVMTypeRef mty = nv_mem_ty(s, dt);
  LLVMTypeRef vty = vec > 1 ? LLVMVectorType(mty, (unsigned)vec) : mty;
  for (int i = 0; i < n; i += vec) {
    LLVMValueRef c[XK_MAX_RANK], pi, vi;
    LLVMValueRef g = nv_coords(s, &l, i, c);
    if (mv >= 0)
      g = LLVMBuildAnd(s->b, g, nv_src_elem(s, &ms, &l, i), "");
    pi = nv_src_elem(s, &ps, &l, i);
    vi = nv_src_elem(s, &vsrc, &l, i);
    nv_note_global(s, vty, pi, g, 1);
    LLVMBasicBlockRef join = guard_open(s, g);
    if (vec > 1) { /* contiguous, one mask: see lower_load */
      LLVMValueRef x = LLVMGetUndef(vty);
      for (int e = 0; e < vec; e++)
        x = LLVMBuildInsertElement(
            s->b, x,
            nv_to_mem(s, dt, e ? nv_src_elem(s, &vsrc, &l, i + e) : vi),
            nv_i32(s, e), "");
      LLVMSetAlignment(LLVMBuildStore(s->b, x, pi),
                       (unsigned)(vec * xk_dtype_bits(dt) / 8));
      guard_close(s, join);
      continue;
    }
    if (atomic) {
      if (xk_dtype_is_float(dt) && dt != XK_F32 && dt != XK_F16)
        return nv_err(s, "atomic_add on %s is not supported",
                      xk_dtype_name(dt));
      LLVMBuildAtomicRMW(s->b,
                         xk_dtype_is_float(dt) ? LLVMAtomicRMWBinOpFAdd
                                               : LLVMAtomicRMWBinOpAdd,
                         pi, vi, LLVMAtomicOrderingMonotonic, 0);
    } else {
      LLVMBuildStore(s->b, nv_to_mem(s, dt, vi), pi);
    }
    guard_close(s, join);
  }
  return 0;
}

static int lower_block(nv *s, int blk);

/* FOR: a real loop; every register of a carried tile is a phi. */
static int lower_for(nv *s, const xk_op *op) {
  const xk_func *f = s->f;
  const xk_block *body = &f->blocks[op->body];
  int nc = op->nopnd - 3;
  LLVMValueRef lo = s->vals[op->opnd[0]].s, hi = s->vals[op->opnd[1]].s;
  LLVMValueRef step = s->vals[op->opnd[2]].s;
  if (!lo || !hi || !step)
    return nv_err(s, "loop bounds must be scalars");
  xk_layout *lay = nv_alloc(s, (size_t)(nc + 1) * sizeof *lay);
  LLVMValueRef **init = nv_alloc(s, (size_t)(nc + 1) * sizeof *init);
  LLVMValueRef **phis = nv_alloc(s, (size_t)(nc + 1) * sizeof *phis);
  int *nr = nv_alloc(s, (size_t)(nc + 1) * sizeof *nr);
  for (int i = 0; i < nc; i++) {
    int v = op->opnd[3 + i];
    if (s->vals[v].kind == NV_SCALAR) {
      nr[i] = 0;
      init[i] = &s->vals[v].s;
    } else {
      int hint = nv_carried_layout(s, op, i, &lay[i]);
      if (!(init[i] = hint ? nv_get(s, v, &lay[i]) : nv_get_any(s, v, &lay[i])))
        return -1;
      nr[i] = xk_layout_nregs(&lay[i]);
    }
  }
  nv_pipe pipe, *pp = nv_pipe_plan(s, op, &pipe) ? &pipe : NULL;
  if (pp) {
    s->smem_pin = s->smem_res + pp->stages * pp->stage_bytes;
    if (s->smem_pin > s->smem_bytes)
      s->smem_bytes = s->smem_pin;
    for (int j = 0; j < pp->stages - 1; j++) {
      LLVMValueRef it = LLVMBuildAdd(
          s->b, lo, LLVMBuildMul(s->b, step, nv_i32(s, j), ""), "");
      if (nv_pipe_issue(s, pp, it, hi, nv_i32(s, j)))
        return -1;
    }
  }
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(s->b);
  LLVMBasicBlockRef hdr = LLVMAppendBasicBlockInContext(s->ctx, s->fn, "for");
  LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(s->ctx, s->fn, "body");
  LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(s->ctx, s->fn, "end");
  LLVMBuildBr(s->b, hdr);
  LLVMPositionBuilderAtEnd(s->b, hdr);
  LLVMValueRef iv = LLVMBuildPhi(s->b, LLVMInt32TypeInContext(s->ctx), "i");
  LLVMAddIncoming(iv, &lo, &pre, 1);
  if (pp) { /* the buffer of the iteration */
    LLVMValueRef zero = nv_i32(s, 0);
    pp->slot = LLVMBuildPhi(s->b, LLVMInt32TypeInContext(s->ctx), "slot");
    LLVMAddIncoming(pp->slot, &zero, &pre, 1);
  }
  for (int i = 0; i < nc; i++) {
    int v = op->opnd[3 + i], cnt = nr[i] ? nr[i] : 1;
    LLVMTypeRef ty = nv_reg_ty(s, xk_vtype(f, v).dtype);
    phis[i] = nv_alloc(s, (size_t)cnt * sizeof **phis);
    for (int j = 0; j < cnt; j++) {
      phis[i][j] = LLVMBuildPhi(s->b, ty, "");
      LLVMAddIncoming(phis[i][j], &init[i][j], &pre, 1);
    }
  }
  LLVMBuildCondBr(s->b, LLVMBuildICmp(s->b, LLVMIntSLT, iv, hi, ""), bb, exit);
  LLVMPositionBuilderAtEnd(s->b, bb);
  s->staged_a = -1; /* the back edge brings other shared contents */
  if (pp) {
    s->pipe = pp;
    nv_pipe_wait(s, pp);
  }
  set_scalar(s, body->args[0], iv);
  for (int i = 0; i < nc; i++) {
    if (nr[i])
      set_mat(s, body->args[1 + i], &lay[i], phis[i]);
    else
      set_scalar(s, body->args[1 + i], phis[i][0]);
  }
  if (lower_block(s, op->body))
    return -1;
  const xk_op *y = NULL;
  for (int k = body->nops - 1; k >= 0 && !y; k--)
    if (f->ops[body->ops[k]].code == XK_OP_YIELD && !f->ops[body->ops[k]].dead)
      y = &f->ops[body->ops[k]];
  if (!y || y->nopnd != nc)
    return nv_err(s, "loop body does not end with a matching yield");
  s->op = y;
  LLVMValueRef **next = nv_alloc(s, (size_t)(nc + 1) * sizeof *next);
  for (int i = 0; i < nc; i++) {
    int v = y->opnd[i];
    if (!nr[i]) {
      if (s->vals[v].kind != NV_SCALAR)
        return nv_err(s, "carried scalar %d is not a scalar", i);
      next[i] = &s->vals[v].s;
    } else if (!(next[i] = nv_get(s, v, &lay[i]))) {
      return -1;
    }
  }
  LLVMValueRef slot_next = NULL;
  if (pp) { /* refill the buffer the previous iteration read */
    LLVMValueRef first =
        LLVMBuildICmp(s->b, LLVMIntEQ, pp->slot, nv_i32(s, 0), "");
    LLVMValueRef last =
        LLVMBuildICmp(s->b, LLVMIntEQ, pp->slot, nv_i32(s, pp->stages - 1), "");
    LLVMValueRef fill =
        LLVMBuildSelect(s->b, first, nv_i32(s, pp->stages - 1),
                        LLVMBuildSub(s->b, pp->slot, nv_i32(s, 1), ""), "");
    slot_next =
        LLVMBuildSelect(s->b, last, nv_i32(s, 0),
                        LLVMBuildAdd(s->b, pp->slot, nv_i32(s, 1), ""), "");
    LLVMValueRef it = LLVMBuildAdd(
        s->b, iv, LLVMBuildMul(s->b, step, nv_i32(s, pp->stages - 1), ""), "");
    if (nv_pipe_issue(s, pp, it, hi, fill))
      return -1;
    s->pipe = NULL;
  }
  LLVMValueRef inext = LLVMBuildAdd(s->b, iv, step, "");
  LLVMBasicBlockRef latch = LLVMGetInsertBlock(s->b);
  if (pp)
    LLVMAddIncoming(pp->slot, &slot_next, &latch, 1);
  LLVMBuildBr(s->b, hdr);
  LLVMAddIncoming(iv, &inext, &latch, 1);
  for (int i = 0; i < nc; i++)
    for (int j = 0; j < (nr[i] ? nr[i] : 1); j++)
      LLVMAddIncoming(phis[i][j], &next[i][j], &latch, 1);
  LLVMPositionBuilderAtEnd(s->b, exit);
  s->staged_a = -1;
  if (pp) { /* warps may still read the last buffer: the code after the
             * loop reuses that memory */
    s->pr->barrier(s);
    s->smem_pin = s->smem_res;
  }
  for (int i = 0; i < nc; i++) {
    if (nr[i])
      set_mat(s, op->res[i], &lay[i], phis[i]);
    else
      set_scalar(s, op->res[i], phis[i][0]);
  }
  return 0;
}

/* IF: a branch on a uniform scalar. Scalar results are phis; a tile
 * result takes the layout of the then branch's value (or the default one)
 * and the else branch converts into it. Shared memory staged before the
 * branch may be overwritten on one path only, so nothing staged is
 * assumed after it. */
static int lower_if(nv *s, const xk_op *op) {
  const xk_func *f = s->f;
  int n = op->nres, blk[2] = {op->body, op->orelse};
  LLVMValueRef cond = s->vals[op->opnd[0]].s;
  if (s->vals[op->opnd[0]].kind != NV_SCALAR || !cond)
    return nv_err(s, "the condition must be a scalar");
  xk_layout *lay = nv_alloc(s, (size_t)(n + 1) * sizeof *lay);
  LLVMValueRef **val = nv_alloc(s, (size_t)(2 * n + 1) * sizeof *val);
  LLVMBasicBlockRef bb[2], from[2];
  bb[0] = LLVMAppendBasicBlockInContext(s->ctx, s->fn, "then");
  bb[1] = LLVMAppendBasicBlockInContext(s->ctx, s->fn, "else");
  LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(s->ctx, s->fn, "fi");
  LLVMBuildCondBr(s->b, cond, bb[0], bb[1]);
  for (int k = 0; k < 2; k++) {
    LLVMPositionBuilderAtEnd(s->b, bb[k]);
    s->staged_a = -1;
    if (lower_block(s, blk[k]))
      return -1;
    const xk_block *b = &f->blocks[blk[k]];
    const xk_op *y = NULL;
    for (int i = b->nops - 1; i >= 0 && !y; i--)
      if (!f->ops[b->ops[i]].dead)
        y = &f->ops[b->ops[i]];
    if (!y || y->code != XK_OP_YIELD || y->nopnd != n)
      return nv_err(s, "a branch does not end with a matching yield");
    s->op = y;
    for (int j = 0; j < n; j++) {
      int v = y->opnd[j];
      if (!xk_vtype(f, v).rank) {
        if (s->vals[v].kind != NV_SCALAR)
          return nv_err(s, "scalar result %d is not a scalar", j);
        val[k * n + j] = &s->vals[v].s;
      } else if (!(val[k * n + j] =
                       k ? nv_get(s, v, &lay[j]) : nv_get_any(s, v, &lay[j]))) {
        return -1;
      }
    }
    from[k] = LLVMGetInsertBlock(s->b);
    LLVMBuildBr(s->b, join);
  }
  LLVMPositionBuilderAtEnd(s->b, join);
  s->staged_a = -1;
  for (int j = 0; j < n; j++) {
    xk_type t = xk_vtype(f, op->res[j]);
    int cnt = t.rank ? xk_layout_nregs(&lay[j]) : 1;
    LLVMValueRef *r = nv_alloc(s, (size_t)cnt * sizeof *r);
    for (int i = 0; i < cnt; i++) {
      LLVMValueRef in[2] = {val[j][i], val[n + j][i]};
      r[i] = LLVMBuildPhi(s->b, nv_reg_ty(s, t.dtype), "");
      LLVMAddIncoming(r[i], in, from, 2);
    }
    if (t.rank)
      set_mat(s, op->res[j], &lay[j], r);
    else
      set_scalar(s, op->res[j], r[0]);
  }
  return 0;
}

/* SORT: its body, the network in tile ops, inline; the results are the
 * yielded registers. */
static int lower_sort(nv *s, const xk_op *op) {
  const xk_func *f = s->f;
  if (lower_block(s, op->body))
    return -1;
  const xk_block *b = &f->blocks[op->body];
  const xk_op *y = NULL;
  for (int i = b->nops - 1; i >= 0 && !y; i--)
    if (!f->ops[b->ops[i]].dead)
      y = &f->ops[b->ops[i]];
  if (!y || y->code != XK_OP_YIELD || y->nopnd != op->nres)
    return nv_err(s, "the sort's body does not end with a matching yield");
  s->op = op;
  for (int j = 0; j < op->nres; j++) {
    xk_layout l;
    LLVMValueRef *r = nv_get_any(s, y->opnd[j], &l);
    if (!r)
      return -1;
    set_mat(s, op->res[j], &l, r);
  }
  return 0;
}

/* EXIT: every thread of the program returns here (the branches around it
 * are uniform), so no barrier waits for a thread that left. */
static int lower_exit(nv *s) {
  LLVMBuildRetVoid(s->b);
  LLVMPositionBuilderAtEnd(s->b,
                           LLVMAppendBasicBlockInContext(s->ctx, s->fn, ""));
  return 0;
}

int nv_lower_op(nv *s, const xk_op *op) {
  s->op = op;
  xk_type rt = op->nres ? xk_vtype(s->f, op->res[0]) : xk_type_scalar(XK_I32);
  switch (op->code) {
  case XK_OP_CONST:
    if (rt.rank == 0)
      set_scalar(s, op->res[0], nv_const_of(s, op));
    else
      s->vals[op->res[0]].kind = NV_PURE;
    return 0;
  case XK_OP_ARANGE:
    s->vals[op->res[0]].kind = NV_PURE;
    return 0;
  case XK_OP_PROGRAM_ID:
  case XK_OP_NUM_PROGRAMS:
    if (op->attr.axis < 0 || op->attr.axis > 2)
      return nv_err(s, "axis %d out of range", op->attr.axis);
    set_scalar(s, op->res[0],
               op->code == XK_OP_PROGRAM_ID ? s->pr->ctaid(s, op->attr.axis)
                                            : s->pr->nctaid(s, op->attr.axis));
    return 0;
  case XK_OP_BROADCAST:
  case XK_OP_EXPAND_DIMS:
  case XK_OP_RESHAPE:
  case XK_OP_TRANS:
  case XK_OP_SHIFT:
  case XK_OP_XORPERM:
    return lower_shape(s, op);
  case XK_OP_REDUCE:
    return nv_lower_reduce(s, op);
  case XK_OP_DOT:
    return nv_lower_dot(s, op);
  case XK_OP_LOAD:
    if (s->resident[op->res[0]])
      return nv_lower_resident(s, op);
    if (s->defer[op->res[0]]) {
      s->vals[op->res[0]].kind = NV_DEFER;
      s->vals[op->res[0]].defer = op;
      return 0;
    }
    return lower_load(s, op);
  case XK_OP_STORE:
  case XK_OP_ATOMIC_ADD:
    return lower_store(s, op);
  case XK_OP_ATOMIC:
    return nv_lower_atomic(s, op);
  case XK_OP_BARRIER:
    /* bar.sync also orders the block's global accesses (membar.cta);
     * FOR bodies and IF branches run in uniform control flow, so every
     * thread reaches it */
    s->pr->barrier(s);
    return 0;
  case XK_OP_PRINT:
    return nv_lower_print(s, op);
  case XK_OP_FOR:
    return lower_for(s, op);
  case XK_OP_IF:
    return lower_if(s, op);
  case XK_OP_SORT:
    return lower_sort(s, op);
  case XK_OP_EXIT:
    return lower_exit(s);
  case XK_OP_YIELD:
    return 0;
  default:
    if (xk_op_is_elementwise(op->code))
      return lower_ew(s, op);
    return nv_err(s, "unsupported op");
  }
}

static int lower_block(nv *s, int blk) {
  const xk_block *b = &s->f->blocks[blk];
  for (int i = 0; i < b->nops; i++) {
    const xk_op *op = &s->f->ops[b->ops[i]];
    if (op->dead)
      continue;
    if (nv_lower_op(s, op))
      return -1;
  }
  return 0;
}

static void nv_free(nv *s) {
  for (int i = 0; i < s->narena; i++)
    free(s->arena[i]);
  free(s->arena);
  free(s->bases);
  free(s->vals);
  free(s->defer);
  free(s->lazy);
  free(s->resident);
  free(s->axis);
  free(s->axis_done);
  if (s->b)
    LLVMDisposeBuilder(s->b);
  if (s->pb)
    LLVMDisposeBuilder(s->pb);
}

/* Shared memory is one buffer reused by every exchange (each ends with a
 * barrier); its size is known only after the body is lowered, so a
 * placeholder global is replaced at the end. The buffer is dynamic shared
 * memory (an extern array the launch sizes), as in Triton: static shared
 * memory stops at 48 KB, below the tile configs Hopper and Ampere are
 * tuned with. */
static int finish_smem(nv *s, const char *sym) {
  if (s->smem_bytes > s->smem_limit) {
    char cfg[512];
    return xk_diag_set(s->d,
                       "%s: kernel '%s' (%s) needs %d bytes of shared memory, "
                       "above the %d-byte limit per block on %s: use smaller "
                       "tiles or fewer stages",
                       s->f->file, s->f->name,
                       xk_func_config_str(s->f, cfg, sizeof cfg), s->smem_bytes,
                       s->smem_limit, s->arch);
  }
  /* primitives that keep shared memory elsewhere (sim) leave it unused */
  if (!s->smem_bytes || !LLVMGetFirstUse(s->smem)) {
    LLVMDeleteGlobal(s->smem);
    return 0;
  }
  char name[256];
  snprintf(name, sizeof name, "%s_smem", sym);
  LLVMTypeRef ty = LLVMArrayType2(LLVMInt8TypeInContext(s->ctx), 0);
  LLVMValueRef g = LLVMAddGlobalInAddressSpace(s->mod, ty, name, 3);
  LLVMSetLinkage(g, LLVMExternalLinkage);
  LLVMSetAlignment(g, 16);
  LLVMReplaceAllUsesWith(s->smem, g);
  LLVMDeleteGlobal(s->smem);
  return 0;
}

int xk_lower_nvptx(const xk_func *f, LLVMModuleRef mod, const char *sym,
                   const char *sm, xk_nvptx_info *info, xk_diag *d) {
  return xk_lower_simt(f, mod, sym, sm, &xk_nvptx_prims, info, d);
}

int xk_lower_simt(const xk_func *f, LLVMModuleRef mod, const char *sym,
                  const char *arch, const nv_prims *pr, xk_nvptx_info *info,
                  xk_diag *d) {
  const xk_arch *a = xk_arch_find(arch);
  if (arch && !a)
    return xk_diag_set(d, "%s: nvptx lowering: unknown architecture '%s'",
                       f->file, arch);
  nv s;
  memset(&s, 0, sizeof s);
  s.f = f;
  s.mod = mod;
  s.ctx = LLVMGetModuleContext(mod);
  s.d = d;
  s.pr = pr;
  s.nw = f->num_warps > 0 ? f->num_warps : 4;
  s.staged_a = -1;
  s.arch = a ? a->name : "any architecture";
  s.smem_limit = a ? a->smem_per_block : xk_arch_smem_max();
  if (s.nw & (s.nw - 1) || s.nw > 32)
    return xk_diag_set(d, "%s: num_warps %d must be a power of two <= 32",
                       f->file, s.nw);
  s.vals = calloc((size_t)f->nvalues + 1, sizeof *s.vals);
  s.defer = calloc((size_t)f->nvalues + 1, sizeof *s.defer);
  s.lazy = calloc((size_t)f->nvalues + 1, sizeof *s.lazy);
  s.resident = calloc((size_t)f->nvalues + 1, sizeof *s.resident);
  s.axis = calloc((size_t)f->nvalues + 1, sizeof *s.axis);
  s.axis_done = calloc((size_t)f->nvalues + 1, sizeof *s.axis_done);
  if (!s.vals || !s.defer || !s.lazy || !s.resident || !s.axis ||
      !s.axis_done) {
    nv_free(&s);
    return xk_diag_set(d, "out of memory");
  }
  nv_find_deferrable(&s);
  nv_find_lazy(&s);
  nv_find_resident(&s);
  LLVMTypeRef *pt = calloc((size_t)f->nargs + 1, sizeof *pt);
  for (int i = 0; i < f->nargs; i++)
    pt[i] = nv_reg_ty(&s, f->args[i].type.dtype);
  LLVMTypeRef ft =
      LLVMFunctionType(LLVMVoidTypeInContext(s.ctx), pt, (unsigned)f->nargs, 0);
  free(pt);
  s.fn = LLVMAddFunction(mod, sym, ft);
  s.b = LLVMCreateBuilderInContext(s.ctx);
  s.pb = LLVMCreateBuilderInContext(s.ctx);
  LLVMBasicBlockRef pro = LLVMAppendBasicBlockInContext(s.ctx, s.fn, "pro");
  LLVMBasicBlockRef start = LLVMAppendBasicBlockInContext(s.ctx, s.fn, "start");
  LLVMPositionBuilderAtEnd(s.b, pro);
  LLVMValueRef br = LLVMBuildBr(s.b, start);
  LLVMPositionBuilderBefore(s.pb, br);
  LLVMPositionBuilderBefore(s.b, br);
  s.tid = s.pr->tid(&s);
  s.lane = LLVMBuildAnd(s.b, s.tid, nv_i32(&s, 31), "lane");
  s.warp = LLVMBuildLShr(s.b, s.tid, nv_i32(&s, 5), "warp");
  LLVMPositionBuilderAtEnd(s.b, start);
  char gname[256];
  snprintf(gname, sizeof gname, "%s.smem.tmp", sym);
  s.smem = LLVMAddGlobalInAddressSpace(
      mod, LLVMArrayType2(LLVMInt8TypeInContext(s.ctx), 1), gname, 3);
  s.pr->mark_kernel(&s, s.fn, 32 * s.nw);
  for (int i = 0; i < f->blocks[0].nargs; i++) {
    set_scalar(&s, f->blocks[0].args[i], LLVMGetParam(s.fn, (unsigned)i));
    xk_spec_assume(mod, s.pb, LLVMGetParam(s.fn, (unsigned)i), f->args[i].spec);
  }
  int rc = lower_block(&s, 0);
  if (!rc) {
    LLVMBuildRetVoid(s.b);
    s.op = NULL;
    rc = finish_smem(&s, sym);
  }
  /* also when too much shared memory failed the lowering: a tuner tells
   * that config's failure from the kernel's by it */
  if (info) {
    info->shared_bytes = s.smem_bytes;
    info->threads = 32 * s.nw;
  }
  nv_free(&s);
  return rc;
}
