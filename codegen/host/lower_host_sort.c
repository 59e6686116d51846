/* Host lowering of SORT: the bitonic network of the op's body as loops,
 * with the stages read from a table, so the code (and LLVM's time on it)
 * is the same size for every axis length; lowering the body's tile ops
 * instead made one loop per op per stage, which LLVM unrolls and
 * vectorizes (a [1024] topk took ~50 s to compile).
 *
 * (key, index) pairs are totally ordered (equal keys by index), so this
 * network and the body's give the same answer, ties and NaNs included. */
#include "lower_host_impl.h"

#include <stdlib.h>

/* 1 when (a, ia) comes before (b, ib): the larger key first when
 * descending, else the smaller; NaN is the largest key; equal keys by
 * index. The body's rule (dsl/ops_scan.c) in scalar form. */
static LLVMValueRef before(xk_hl *h, int dt, int desc, LLVMValueRef a,
                           LLVMValueRef ia, LLVMValueRef b, LLVMValueRef ib) {
  LLVMBuilderRef bd = h->b;
  LLVMValueRef first, tie;
  if (xk_dtype_is_float(dt)) {
    a = xk_hl_to_f32(h, a, dt);
    b = xk_hl_to_f32(h, b, dt);
    LLVMValueRef na = LLVMBuildFCmp(bd, LLVMRealUNO, a, a, "");
    LLVMValueRef nb = LLVMBuildFCmp(bd, LLVMRealUNO, b, b, "");
    first = LLVMBuildFCmp(bd, desc ? LLVMRealOGT : LLVMRealOLT, a, b, "");
    LLVMValueRef nan_first = LLVMBuildAnd(
        bd, desc ? na : nb, LLVMBuildNot(bd, desc ? nb : na, ""), "");
    first = LLVMBuildOr(bd, first, nan_first, "");
    tie = LLVMBuildOr(bd, LLVMBuildFCmp(bd, LLVMRealOEQ, a, b, ""),
                      LLVMBuildAnd(bd, na, nb, ""), "");
  } else {
    first = LLVMBuildICmp(bd, desc ? LLVMIntSGT : LLVMIntSLT, a, b, "");
    tie = LLVMBuildICmp(bd, LLVMIntEQ, a, b, "");
  }
  LLVMValueRef by_index = LLVMBuildICmp(bd, LLVMIntSLT, ia, ib, "");
  return LLVMBuildOr(bd, first, LLVMBuildAnd(bd, tie, by_index, ""), "");
}

/* A private constant i64 table. */
static LLVMValueRef table(xk_hl *h, const int64_t *v, int n) {
  LLVMValueRef *e = malloc((size_t)n * sizeof *e);
  if (!e)
    return NULL;
  for (int i = 0; i < n; i++)
    e[i] = xk_hl_i64(h, v[i]);
  LLVMTypeRef ty = LLVMArrayType2(h->t_i64, (uint64_t)n);
  LLVMValueRef g = LLVMAddGlobal(h->m, ty, "xk_sort_stages");
  LLVMSetInitializer(g, LLVMConstArray2(h->t_i64, e, (uint64_t)n));
  LLVMSetGlobalConstant(g, 1);
  LLVMSetLinkage(g, LLVMPrivateLinkage);
  LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
  free(e);
  return g;
}

static LLVMValueRef load_at(xk_hl *h, LLVMValueRef tab, LLVMValueRef i) {
  LLVMValueRef p = LLVMBuildInBoundsGEP2(h->b, h->t_i64, tab, &i, 1, "");
  return LLVMBuildLoad2(h->b, h->t_i64, p, "");
}

/* The (k, j) of every stage, in the order the network runs them. */
static int stages(int64_t n, int64_t **out) {
  int s = 0, log = 0;
  while ((int64_t)1 << log < n)
    log++;
  int64_t *st = malloc((size_t)(log * (log + 1) + 2) * sizeof *st);
  if (!st)
    return -1;
  for (int64_t k = 2; k <= n; k *= 2)
    for (int64_t j = k / 2; j >= 1; j /= 2) {
      st[2 * s] = k;
      st[2 * s + 1] = j;
      s++;
    }
  *out = st;
  return s;
}

/* One compare-exchange stage over a line: pair i is elements a and a + j,
 * a being i with a zero bit inserted at j; a's run sorts first-first when
 * a & k is 0. */
static void stage(xk_hl *h, int dt, int desc, LLVMValueRef key,
                  LLVMValueRef idx, LLVMValueRef base, int64_t inner, int64_t n,
                  LLVMValueRef k, LLVMValueRef j) {
  LLVMBuilderRef b = h->b;
  xk_hloop l;
  LLVMValueRef i = xk_hl_loop_begin(h, &l, n / 2);
  LLVMValueRef a =
      LLVMBuildAdd(b, i, LLVMBuildAnd(b, i, LLVMBuildNeg(b, j, ""), ""), "");
  LLVMValueRef up = LLVMBuildICmp(b, LLVMIntEQ, LLVMBuildAnd(b, a, k, ""),
                                  xk_hl_i64(h, 0), "");
  LLVMValueRef st = xk_hl_i64(h, inner);
  LLVMValueRef pa = LLVMBuildAdd(b, base, LLVMBuildMul(b, a, st, ""), "");
  LLVMValueRef pb = LLVMBuildAdd(b, pa, LLVMBuildMul(b, j, st, ""), "");
  LLVMTypeRef kt = xk_hl_mem_type(h, dt);
  LLVMValueRef ka = LLVMBuildInBoundsGEP2(b, kt, key, &pa, 1, "");
  LLVMValueRef kb = LLVMBuildInBoundsGEP2(b, kt, key, &pb, 1, "");
  LLVMValueRef ia = LLVMBuildInBoundsGEP2(b, h->t_i32, idx, &pa, 1, "");
  LLVMValueRef ib = LLVMBuildInBoundsGEP2(b, h->t_i32, idx, &pb, 1, "");
  LLVMValueRef x = LLVMBuildLoad2(b, kt, ka, ""),
               y = LLVMBuildLoad2(b, kt, kb, "");
  LLVMValueRef xi = LLVMBuildLoad2(b, h->t_i32, ia, "");
  LLVMValueRef yi = LLVMBuildLoad2(b, h->t_i32, ib, "");
  /* (key, index) pairs are distinct, so "not before" is "after" */
  LLVMValueRef swap =
      LLVMBuildICmp(b, LLVMIntNE, up, before(h, dt, desc, x, xi, y, yi), "");
  LLVMBuildStore(b, LLVMBuildSelect(b, swap, y, x, ""), ka);
  LLVMBuildStore(b, LLVMBuildSelect(b, swap, x, y, ""), kb);
  LLVMBuildStore(b, LLVMBuildSelect(b, swap, yi, xi, ""), ia);
  LLVMBuildStore(b, LLVMBuildSelect(b, swap, xi, yi, ""), ib);
  xk_hl_loop_end(h, &l);
}

int xk_hl_sort(xk_hl *h, const xk_op *op) {
  const xk_func *f = h->f;
  int src = op->opnd[0], axis = op->attr.axis, desc = op->attr.i != 0;
  xk_type t = xk_vtype(f, src);
  if (op->nopnd != 1 || op->nres != 2 || axis < 0 || axis >= t.rank ||
      t.dtype == XK_I1 || t.dtype == XK_PTR)
    return xk_hl_err(h, op, "needs a float or integer tile and an axis of it");
  int64_t outer = 1, inner = 1, n = t.shape[axis], numel = xk_type_numel(t);
  for (int d = 0; d < axis; d++)
    outer *= t.shape[d];
  for (int d = axis + 1; d < t.rank; d++)
    inner *= t.shape[d];
  xk_hval *rk = &h->vals[op->res[0]], *ri = &h->vals[op->res[1]];
  rk->kind = ri->kind = HV_BUF;
  rk->aff = ri->aff = 0;
  rk->v = xk_hl_buf(h, t.dtype, numel);
  ri->v = xk_hl_buf(h, XK_I32, numel);
  int64_t *st = NULL;
  int ns = stages(n, &st);
  LLVMValueRef tab = ns > 0 ? table(h, st, 2 * ns) : NULL;
  free(st);
  if (!rk->v || !ri->v || ns < 0 || (ns > 0 && !tab))
    return xk_hl_err(h, op, "out of memory");
  LLVMBuilderRef b = h->b;
  xk_hloop lo, lj, lp, ls;
  LLVMValueRef o = xk_hl_loop_begin(h, &lo, outer);
  LLVMValueRef j = xk_hl_loop_begin(h, &lj, inner);
  LLVMValueRef base =
      LLVMBuildAdd(b, LLVMBuildMul(b, o, xk_hl_i64(h, n * inner), ""), j, "");
  LLVMValueRef p = xk_hl_loop_begin(h, &lp, n);
  LLVMValueRef e =
      LLVMBuildAdd(b, base, LLVMBuildMul(b, p, xk_hl_i64(h, inner), ""), "");
  LLVMValueRef x = xk_hl_read(h, src, e);
  if (!x)
    return -1;
  xk_hl_write(h, rk->v, t.dtype, e, x);
  xk_hl_write(h, ri->v, XK_I32, e, LLVMBuildTrunc(b, p, h->t_i32, ""));
  xk_hl_loop_end(h, &lp);
  if (ns > 0) {
    LLVMValueRef s = xk_hl_loop_begin(h, &ls, ns);
    LLVMValueRef s2 = LLVMBuildShl(b, s, xk_hl_i64(h, 1), "");
    LLVMValueRef k = load_at(h, tab, s2);
    LLVMValueRef jj = load_at(h, tab, LLVMBuildAdd(b, s2, xk_hl_i64(h, 1), ""));
    stage(h, t.dtype, desc, rk->v, ri->v, base, inner, n, k, jj);
    xk_hl_loop_end(h, &ls);
  }
  xk_hl_loop_end(h, &lj);
  xk_hl_loop_end(h, &lo);
  return 0;
}
