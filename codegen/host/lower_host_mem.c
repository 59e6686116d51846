/* Host lowering of LOAD, STORE and ATOMIC_ADD, and the affine tracking of
 * integer/pointer tiles that lets them access memory row by row.
 *
 * A pointer tile built as `base + arange-ish offsets` (what every kernel
 * does) is known affine in its indices; its accesses become nested loops
 * whose innermost address advances by a constant, which LLVM vectorizes into
 * contiguous (masked) loads and stores. Other pointer tiles are gathered. */
#include "lower_host_impl.h"

#include <string.h>

int xk_hl_aff_get(xk_hl *h, int v, xk_hval *out) {
  const xk_hval *x = &h->vals[v];
  int dt = xk_vtype(h->f, v).dtype;
  if (dt != XK_I32 && dt != XK_I64 && dt != XK_PTR)
    return 0;
  if (x->kind == HV_SPLAT || x->kind == HV_SCALAR) {
    memset(out, 0, sizeof *out);
    out->aff = 1;
    out->abase = x->v;
    return 1;
  }
  if (x->kind == HV_BUF && x->aff) {
    *out = *x;
    return 1;
  }
  return 0;
}

static LLVMValueRef sadd(xk_hl *h, LLVMValueRef a, LLVMValueRef b) {
  if (!a)
    return b;
  return b ? LLVMBuildAdd(h->b, a, b, "") : a;
}

static LLVMValueRef to_i64(xk_hl *h, LLVMValueRef x) {
  return LLVMTypeOf(x) == h->t_i64 ? x : LLVMBuildSExt(h->b, x, h->t_i64, "");
}

static int uniform(const xk_hval *a, int rank) {
  for (int d = 0; d < rank; d++)
    if (a->astr[d])
      return 0;
  return 1;
}

void xk_hl_aff_elementwise(xk_hl *h, const xk_op *op) {
  xk_hval *r = &h->vals[op->res[0]];
  xk_type rt = xk_vtype(h->f, op->res[0]);
  xk_hval a, b;
  if (r->kind != HV_BUF || !xk_hl_aff_get(h, op->opnd[0], &a))
    return;
  int two = op->nopnd == 2 && op->code != XK_OP_CAST;
  if (two && !xk_hl_aff_get(h, op->opnd[1], &b))
    return;
  int isint = rt.dtype == XK_I32 || rt.dtype == XK_I64;
  switch (op->code) {
  case XK_OP_ADD:
    if (rt.dtype == XK_PTR) {
      LLVMValueRef off = to_i64(h, b.abase);
      r->abase =
          LLVMBuildGEP2(h->b, xk_hl_mem_type(h, rt.elem), a.abase, &off, 1, "");
    } else if (isint) {
      r->abase = LLVMBuildAdd(h->b, a.abase, b.abase, "");
    } else {
      return;
    }
    for (int d = 0; d < rt.rank; d++)
      r->astr[d] = sadd(h, a.astr[d], b.astr[d]);
    break;
  case XK_OP_SUB:
    if (!isint)
      return;
    r->abase = LLVMBuildSub(h->b, a.abase, b.abase, "");
    for (int d = 0; d < rt.rank; d++)
      r->astr[d] = sadd(h, a.astr[d],
                        b.astr[d] ? LLVMBuildNeg(h->b, b.astr[d], "") : NULL);
    break;
  case XK_OP_MUL: {
    if (!isint)
      return;
    const xk_hval *u = uniform(&b, rt.rank) ? &b : &a;
    const xk_hval *x = u == &b ? &a : &b;
    if (!uniform(u, rt.rank))
      return;
    r->abase = LLVMBuildMul(h->b, x->abase, u->abase, "");
    LLVMValueRef s = to_i64(h, u->abase);
    for (int d = 0; d < rt.rank; d++)
      r->astr[d] = x->astr[d] ? LLVMBuildMul(h->b, x->astr[d], s, "") : NULL;
    break;
  }
  case XK_OP_CAST: /* widening keeps the form (overflow aside) */
    if (rt.dtype != XK_I64)
      return;
    r->abase = to_i64(h, a.abase);
    memcpy(r->astr, a.astr, sizeof r->astr);
    break;
  default:
    return;
  }
  r->aff = 1;
}

typedef struct {
  xk_hloop l[XK_MAX_RANK];
  int rank;
  LLVMValueRef iv[XK_MAX_RANK];
} nest;

/* Row-major loops over shape[0..rank); returns the flat index. */
static LLVMValueRef nest_begin(xk_hl *h, nest *ns, int rank,
                               const int64_t *shape) {
  LLVMValueRef flat = xk_hl_i64(h, 0);
  ns->rank = rank;
  for (int d = 0; d < rank; d++)
    ns->iv[d] = xk_hl_loop_begin(h, &ns->l[d], shape[d]);
  for (int d = 0; d < rank; d++)
    flat = LLVMBuildNSWAdd(
        h->b, LLVMBuildNSWMul(h->b, flat, xk_hl_i64(h, shape[d]), ""),
        ns->iv[d], "");
  return flat;
}

static void nest_end(xk_hl *h, nest *ns) {
  for (int d = ns->rank - 1; d >= 0; d--)
    xk_hl_loop_end(h, &ns->l[d]);
}

/* Loops over the elements of t: per dimension when the pointer is affine
 * (so the address is a function of the loop counters), else flat. */
static LLVMValueRef elem_loops(xk_hl *h, nest *ns, xk_type t, int affine) {
  int64_t shape[XK_MAX_RANK];
  if (!affine) {
    shape[0] = xk_type_numel(t);
    return nest_begin(h, ns, 1, shape);
  }
  for (int d = 0; d < t.rank; d++)
    shape[d] = t.shape[d];
  return nest_begin(h, ns, t.rank, shape);
}

static LLVMValueRef elem_addr(xk_hl *h, const nest *ns, int ptr, int elem,
                              LLVMValueRef flat, const xk_hval *aff) {
  if (!aff)
    return xk_hl_read(h, ptr, flat);
  LLVMValueRef off = NULL;
  for (int d = 0; d < ns->rank; d++)
    if (aff->astr[d])
      off = sadd(h, off, LLVMBuildMul(h->b, aff->astr[d], ns->iv[d], ""));
  return off ? LLVMBuildGEP2(h->b, xk_hl_mem_type(h, elem), aff->abase, &off, 1,
                             "")
             : aff->abase;
}

static LLVMValueRef load_ptr(xk_hl *h, int dt, LLVMValueRef p) {
  LLVMValueRef v = LLVMBuildLoad2(h->b, xk_hl_mem_type(h, dt), p, "");
  return dt == XK_I1 ? LLVMBuildTrunc(h->b, v, h->t_i1, "") : v;
}

/* Affine addresses: masked lanes branch around the load (the vectorizer
 * turns that into a contiguous masked load). Gathers: masked lanes load a
 * private zeroed slot instead, which keeps the loop a plain gather. Either
 * way a masked-off lane never touches its own address. */
static LLVMValueRef load_elem(xk_hl *h, const xk_op *op, int dt, LLVMValueRef p,
                              LLVMValueRef flat, int branch) {
  if (!op->attr.has_mask)
    return load_ptr(h, dt, p);
  LLVMValueRef m = xk_hl_read(h, op->opnd[1], flat);
  LLVMValueRef other = op->attr.has_other
                           ? xk_hl_read(h, op->opnd[2], flat)
                           : LLVMConstNull(xk_hl_reg_type(h, dt));
  if (!branch) {
    LLVMTypeRef mt = xk_hl_mem_type(h, dt);
    LLVMValueRef slot = LLVMBuildAlloca(h->ab, mt, "");
    LLVMBuildStore(h->ab, LLVMConstNull(mt), slot);
    LLVMValueRef v = load_ptr(h, dt, LLVMBuildSelect(h->b, m, p, slot, ""));
    return LLVMBuildSelect(h->b, m, v, other, "");
  }
  LLVMBasicBlockRef cur = LLVMGetInsertBlock(h->b);
  LLVMBasicBlockRef ld = LLVMAppendBasicBlockInContext(h->c, h->fn, "");
  LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(h->c, h->fn, "");
  LLVMBuildCondBr(h->b, m, ld, join);
  LLVMPositionBuilderAtEnd(h->b, ld);
  LLVMValueRef v = load_ptr(h, dt, p);
  LLVMBuildBr(h->b, join);
  LLVMPositionBuilderAtEnd(h->b, join);
  LLVMValueRef phi = LLVMBuildPhi(h->b, xk_hl_reg_type(h, dt), "");
  LLVMValueRef in[2] = {v, other};
  LLVMBasicBlockRef from[2] = {ld, cur};
  LLVMAddIncoming(phi, in, from, 2);
  return phi;
}

int xk_hl_load(xk_hl *h, const xk_op *op) {
  xk_type rt = xk_vtype(h->f, op->res[0]);
  xk_hval *r = &h->vals[op->res[0]];
  if (op->nopnd != 1 + op->attr.has_mask + op->attr.has_other)
    return xk_hl_err(h, op, "operand count does not match has_mask/other");
  xk_type pt = xk_vtype(h->f, op->opnd[0]);
  if (pt.dtype != XK_PTR || pt.elem != rt.dtype || !xk_type_same_shape(pt, rt))
    return xk_hl_err(h, op, "pointer and result types do not match");
  int uni = 1;
  for (int k = 0; k < op->nopnd; k++)
    uni &= h->vals[op->opnd[k]].kind != HV_BUF;
  if (uni) { /* every lane reads the same address: one load */
    LLVMValueRef z = xk_hl_i64(h, 0);
    r->kind = rt.rank ? HV_SPLAT : HV_SCALAR;
    r->v = load_elem(h, op, rt.dtype, xk_hl_read(h, op->opnd[0], z), z, 0);
    return 0;
  }
  xk_hval aff;
  int affine = h->vals[op->opnd[0]].kind == HV_BUF &&
               xk_hl_aff_get(h, op->opnd[0], &aff);
  r->kind = HV_BUF;
  r->v = xk_hl_buf(h, rt.dtype, xk_type_numel(rt));
  if (!r->v)
    return xk_hl_err(h, op, "out of memory");
  nest ns;
  LLVMValueRef flat = elem_loops(h, &ns, rt, affine);
  LLVMValueRef p =
      elem_addr(h, &ns, op->opnd[0], rt.dtype, flat, affine ? &aff : NULL);
  LLVMValueRef v = load_elem(h, op, rt.dtype, p, flat, affine);
  xk_hl_write(h, r->v, rt.dtype, flat, v);
  nest_end(h, &ns);
  return 0;
}

/* STORE and ATOMIC_ADD: masked-off lanes branch around the access. */
int xk_hl_store(xk_hl *h, const xk_op *op) {
  int atomic = op->code == XK_OP_ATOMIC_ADD;
  if (op->nopnd < 2 || op->nopnd > 3)
    return xk_hl_err(h, op, "expects (ptr, value, [mask])");
  xk_type vt = xk_vtype(h->f, op->opnd[1]), pt = xk_vtype(h->f, op->opnd[0]);
  int dt = vt.dtype;
  if (pt.dtype != XK_PTR || pt.elem != dt || !xk_type_same_shape(pt, vt))
    return xk_hl_err(h, op, "pointer and value types do not match");
  LLVMAtomicRMWBinOp rmw = LLVMAtomicRMWBinOpAdd;
  if (atomic) {
    if (dt == XK_F32 || dt == XK_F16)
      rmw = LLVMAtomicRMWBinOpFAdd;
    else if (dt != XK_I32 && dt != XK_I64)
      return xk_hl_err(h, op, "atomic_add supports f32, f16, i32 and i64");
  }
  int64_t n = xk_type_numel(vt);
  /* a uniform plain store writes one value to one address n times: once is
   * the same; a uniform atomic still adds n times */
  int tile = atomic && n > 1;
  for (int k = 0; k < op->nopnd; k++)
    tile |= h->vals[op->opnd[k]].kind == HV_BUF;
  xk_hval aff;
  int affine = tile && h->vals[op->opnd[0]].kind == HV_BUF &&
               xk_hl_aff_get(h, op->opnd[0], &aff);
  nest ns;
  LLVMValueRef flat = xk_hl_i64(h, 0);
  if (tile)
    flat = elem_loops(h, &ns, vt, affine);
  else
    ns.rank = 0;
  LLVMBasicBlockRef cont = NULL;
  if (op->nopnd == 3) {
    LLVMBasicBlockRef doit = LLVMAppendBasicBlockInContext(h->c, h->fn, "");
    cont = LLVMAppendBasicBlockInContext(h->c, h->fn, "");
    LLVMBuildCondBr(h->b, xk_hl_read(h, op->opnd[2], flat), doit, cont);
    LLVMPositionBuilderAtEnd(h->b, doit);
  }
  LLVMValueRef p =
      elem_addr(h, &ns, op->opnd[0], dt, flat, affine ? &aff : NULL);
  LLVMValueRef v = xk_hl_read(h, op->opnd[1], flat);
  if (atomic) {
    LLVMBuildAtomicRMW(h->b, rmw, p, v, LLVMAtomicOrderingMonotonic, 0);
  } else {
    if (dt == XK_I1)
      v = LLVMBuildZExt(h->b, v, h->t_i8, "");
    LLVMBuildStore(h->b, v, p);
  }
  if (cont) {
    LLVMBuildBr(h->b, cont);
    LLVMPositionBuilderAtEnd(h->b, cont);
  }
  if (tile)
    nest_end(h, &ns);
  return 0;
}
