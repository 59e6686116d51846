/* Tile IR -> host LLVM IR: one function per kernel, a program instance per
 * call (see lower_host_impl.h for the value model). This file holds the
 * function frame, buffers, loops and FOR; lower_host_mem.c the memory ops,
 * lower_host_ops.c arithmetic and shape ops, lower_host_reduce.c reductions
 * and dot. */
#include "lower_host_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Above this many bytes of tiles per program the rest go to the heap, so a
 * program instance fits the stack of a pool thread. */
#define XK_STACK_LIMIT (256 * 1024)

LLVMTypeRef xk_hl_reg_type(xk_hl *h, int dt) {
  switch (dt) {
  case XK_I1:
    return h->t_i1;
  case XK_I32:
    return h->t_i32;
  case XK_I64:
    return h->t_i64;
  case XK_F16:
    return h->t_f16;
  case XK_BF16: /* bits; arithmetic goes through f32 */
    return h->t_i16;
  case XK_F32:
    return h->t_f32;
  default:
    return h->t_ptr;
  }
}

/* i1 is a byte in memory: vectors of i1 would be bit-packed, which the
 * vectorizer refuses to touch. */
LLVMTypeRef xk_hl_mem_type(xk_hl *h, int dt) {
  return dt == XK_I1 ? h->t_i8 : xk_hl_reg_type(h, dt);
}

LLVMValueRef xk_hl_i64(xk_hl *h, int64_t v) {
  return LLVMConstInt(h->t_i64, (unsigned long long)v, 1);
}

int xk_hl_err(xk_hl *h, const xk_op *op, const char *what) {
  return xk_diag_set(h->d, "%s:%d: host lowering of %s: %s", h->f->file,
                     op->loc.line, xk_op_name(op->code), what);
}

static LLVMValueRef declare(xk_hl *h, const char *name, LLVMTypeRef ty) {
  LLVMValueRef fn = LLVMGetNamedFunction(h->m, name);
  return fn ? fn : LLVMAddFunction(h->m, name, ty);
}

static LLVMTypeRef malloc_type(xk_hl *h) {
  return LLVMFunctionType(h->t_ptr, &h->t_i64, 1, 0);
}

static LLVMTypeRef free_type(xk_hl *h) {
  return LLVMFunctionType(LLVMVoidTypeInContext(h->c), &h->t_ptr, 1, 0);
}

LLVMValueRef xk_hl_buf(xk_hl *h, int dt, int64_t numel) {
  LLVMTypeRef mt = xk_hl_mem_type(h, dt);
  size_t bytes = (size_t)numel * (size_t)(xk_dtype_bits(dt) / 8);
  if (h->stack_bytes + bytes <= XK_STACK_LIMIT) {
    h->stack_bytes += bytes;
    LLVMValueRef a =
        LLVMBuildAlloca(h->ab, LLVMArrayType2(mt, (uint64_t)numel), "");
    LLVMSetAlignment(a, 64);
    return a;
  }
  if (h->nheap == h->capheap) {
    int cap = h->capheap ? 2 * h->capheap : 8;
    LLVMValueRef *p = realloc(h->heap, (size_t)cap * sizeof *p);
    if (!p)
      return NULL;
    h->heap = p;
    h->capheap = cap;
  }
  LLVMValueRef sz = xk_hl_i64(h, (int64_t)bytes);
  LLVMValueRef p = LLVMBuildCall2(
      h->ab, malloc_type(h), declare(h, "malloc", malloc_type(h)), &sz, 1, "");
  h->heap[h->nheap++] = p;
  return p;
}

LLVMValueRef xk_hl_loop_begin(xk_hl *h, xk_hloop *l, int64_t n) {
  l->pre = LLVMGetInsertBlock(h->b);
  l->head = LLVMAppendBasicBlockInContext(h->c, h->fn, "");
  LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(h->c, h->fn, "");
  l->exit = LLVMAppendBasicBlockInContext(h->c, h->fn, "");
  LLVMBuildBr(h->b, l->head);
  LLVMPositionBuilderAtEnd(h->b, l->head);
  l->iv = LLVMBuildPhi(h->b, h->t_i64, "");
  LLVMValueRef c = LLVMBuildICmp(h->b, LLVMIntSLT, l->iv, xk_hl_i64(h, n), "");
  LLVMBuildCondBr(h->b, c, body, l->exit);
  LLVMPositionBuilderAtEnd(h->b, body);
  return l->iv;
}

void xk_hl_loop_end(xk_hl *h, xk_hloop *l) {
  LLVMValueRef next = LLVMBuildNSWAdd(h->b, l->iv, xk_hl_i64(h, 1), "");
  LLVMValueRef vals[2] = {xk_hl_i64(h, 0), next};
  LLVMBasicBlockRef bbs[2] = {l->pre, LLVMGetInsertBlock(h->b)};
  LLVMBuildBr(h->b, l->head);
  LLVMAddIncoming(l->iv, vals, bbs, 2);
  LLVMPositionBuilderAtEnd(h->b, l->exit);
}

LLVMValueRef xk_hl_read(xk_hl *h, int v, LLVMValueRef idx) {
  const xk_hval *x = &h->vals[v];
  if (x->kind == HV_FUSED) {
    const xk_op *op = &h->f->ops[x->op];
    LLVMValueRef in[3], r;
    for (int k = 0; k < op->nopnd; k++)
      if (!(in[k] = xk_hl_read(h, op->opnd[k], idx)))
        return NULL;
    return xk_hl_elem(h, op, in, &r) ? NULL : r;
  }
  if (x->kind != HV_BUF)
    return x->v;
  int dt = xk_vtype(h->f, v).dtype;
  LLVMTypeRef mt = xk_hl_mem_type(h, dt);
  LLVMValueRef p = LLVMBuildInBoundsGEP2(h->b, mt, x->v, &idx, 1, "");
  LLVMValueRef e = LLVMBuildLoad2(h->b, mt, p, "");
  return dt == XK_I1 ? LLVMBuildTrunc(h->b, e, h->t_i1, "") : e;
}

void xk_hl_write(xk_hl *h, LLVMValueRef buf, int dt, LLVMValueRef idx,
                 LLVMValueRef x) {
  LLVMTypeRef mt = xk_hl_mem_type(h, dt);
  if (dt == XK_I1)
    x = LLVMBuildZExt(h->b, x, h->t_i8, "");
  LLVMValueRef p = LLVMBuildInBoundsGEP2(h->b, mt, buf, &idx, 1, "");
  LLVMBuildStore(h->b, x, p);
}

LLVMValueRef xk_hl_call_intr(xk_hl *h, const char *name, LLVMTypeRef *ovl,
                             int novl, LLVMValueRef *args, int nargs) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMValueRef fn = LLVMGetIntrinsicDeclaration(h->m, id, ovl, (size_t)novl);
  LLVMTypeRef ty = LLVMIntrinsicGetType(h->c, id, ovl, (size_t)novl);
  return LLVMBuildCall2(h->b, ty, fn, args, (unsigned)nargs, "");
}

void xk_hl_copy_into(xk_hl *h, LLVMValueRef dst, int v) {
  xk_type t = xk_vtype(h->f, v);
  int64_t n = xk_type_numel(t);
  const xk_hval *x = &h->vals[v];
  if (x->kind == HV_BUF) {
    if (x->v != dst)
      LLVMBuildMemCpy(h->b, dst, 16, x->v, 16,
                      xk_hl_i64(h, n * (int64_t)(xk_dtype_bits(t.dtype) / 8)));
    return;
  }
  xk_hloop l;
  LLVMValueRef i = xk_hl_loop_begin(h, &l, n);
  xk_hl_write(h, dst, t.dtype, i, x->v);
  xk_hl_loop_end(h, &l);
}

static int lower_block(xk_hl *h, int blk);

static const xk_op *yield_of(const xk_func *f, int blk) {
  const xk_block *b = &f->blocks[blk];
  for (int i = b->nops - 1; i >= 0; i--)
    if (!f->ops[b->ops[i]].dead)
      return f->ops[b->ops[i]].code == XK_OP_YIELD ? &f->ops[b->ops[i]] : NULL;
  return NULL;
}

/* Carried scalars are phis; carried tiles live in buffers owned by the loop,
 * which the yield overwrites at the end of each iteration. */
static int lower_for(xk_hl *h, const xk_op *op) {
  const xk_func *f = h->f;
  int nc = op->nopnd - 3;
  const xk_block *body = &f->blocks[op->body];
  const xk_op *y = yield_of(f, op->body);
  if (nc < 0 || op->nres != nc || body->nargs != nc + 1 || !y || y->nopnd != nc)
    return xk_hl_err(h, op,
                     "malformed for (carried values, block args or "
                     "yield do not match)");
  LLVMValueRef *car = calloc((size_t)nc + 1, sizeof *car);
  LLVMValueRef *tmp = calloc((size_t)nc + 1, sizeof *tmp);
  if (!car || !tmp) {
    free(car);
    free(tmp);
    return xk_hl_err(h, op, "out of memory");
  }
  int rc = -1;
  for (int j = 0; j < nc; j++) {
    xk_type t = xk_vtype(f, op->res[j]);
    if (t.rank) {
      car[j] = xk_hl_buf(h, t.dtype, xk_type_numel(t));
      if (!car[j])
        goto out;
      xk_hl_copy_into(h, car[j], op->opnd[3 + j]);
    }
  }
  LLVMValueRef lo = h->vals[op->opnd[0]].v, hi = h->vals[op->opnd[1]].v;
  LLVMValueRef step = h->vals[op->opnd[2]].v;
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(h->b);
  LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(h->c, h->fn, "");
  LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(h->c, h->fn, "");
  LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(h->c, h->fn, "");
  LLVMBuildBr(h->b, head);
  LLVMPositionBuilderAtEnd(h->b, head);
  LLVMValueRef iv = LLVMBuildPhi(h->b, h->t_i32, "");
  for (int j = 0; j < nc; j++) {
    xk_type t = xk_vtype(f, op->res[j]);
    xk_hval *a = &h->vals[body->args[1 + j]];
    memset(a, 0, sizeof *a);
    if (t.rank) {
      a->kind = HV_BUF;
      a->v = car[j];
    } else {
      a->kind = HV_SCALAR;
      a->v = LLVMBuildPhi(h->b, xk_hl_reg_type(h, t.dtype), "");
    }
  }
  LLVMBuildCondBr(h->b, LLVMBuildICmp(h->b, LLVMIntSLT, iv, hi, ""), bb, exit);
  LLVMPositionBuilderAtEnd(h->b, bb);
  h->vals[body->args[0]].kind = HV_SCALAR;
  h->vals[body->args[0]].v = iv;
  if (lower_block(h, op->body))
    goto out;
  /* A yielded value may be another carried buffer (yield(b, a) swaps):
   * those are saved before any carried buffer is overwritten. */
  for (int j = 0; j < nc; j++) {
    const xk_hval *s = &h->vals[y->opnd[j]];
    if (!car[j] || s->kind != HV_BUF)
      continue;
    for (int k = 0; k < nc; k++)
      if (k != j && s->v == car[k]) {
        xk_type t = xk_vtype(f, y->opnd[j]);
        tmp[j] = xk_hl_buf(h, t.dtype, xk_type_numel(t));
        if (!tmp[j])
          goto out;
        xk_hl_copy_into(h, tmp[j], y->opnd[j]);
        break;
      }
  }
  for (int j = 0; j < nc; j++) {
    if (!car[j])
      continue;
    if (tmp[j]) {
      xk_type t = xk_vtype(f, y->opnd[j]);
      LLVMBuildMemCpy(
          h->b, car[j], 16, tmp[j], 16,
          xk_hl_i64(h, xk_type_numel(t) * (xk_dtype_bits(t.dtype) / 8)));
    } else {
      xk_hl_copy_into(h, car[j], y->opnd[j]);
    }
  }
  LLVMValueRef next = LLVMBuildAdd(h->b, iv, step, "");
  LLVMBasicBlockRef latch = LLVMGetInsertBlock(h->b);
  LLVMBuildBr(h->b, head);
  LLVMBasicBlockRef from[2] = {pre, latch};
  LLVMValueRef ivin[2] = {lo, next};
  LLVMAddIncoming(iv, ivin, from, 2);
  for (int j = 0; j < nc; j++) {
    xk_hval *r = &h->vals[op->res[j]];
    xk_hval *a = &h->vals[body->args[1 + j]];
    if (car[j]) {
      *r = *a;
      continue;
    }
    LLVMValueRef in[2] = {h->vals[op->opnd[3 + j]].v, h->vals[y->opnd[j]].v};
    LLVMAddIncoming(a->v, in, from, 2);
    *r = *a;
  }
  LLVMPositionBuilderAtEnd(h->b, exit);
  rc = 0;
out:
  free(car);
  free(tmp);
  return rc;
}

/* IF: scalar results are phis; tile results live in buffers that each
 * branch's yield fills. */
static int lower_if(xk_hl *h, const xk_op *op) {
  const xk_func *f = h->f;
  int n = op->nres, blk[2] = {op->body, op->orelse};
  LLVMValueRef *buf = calloc((size_t)n + 1, sizeof *buf);
  LLVMValueRef *val = calloc(2 * (size_t)n + 1, sizeof *val);
  int rc = -1;
  if (!buf || !val) {
    rc = xk_hl_err(h, op, "out of memory");
    goto out;
  }
  for (int j = 0; j < n; j++) {
    xk_type t = xk_vtype(f, op->res[j]);
    if (t.rank && !(buf[j] = xk_hl_buf(h, t.dtype, xk_type_numel(t)))) {
      rc = xk_hl_err(h, op, "out of memory");
      goto out;
    }
  }
  LLVMBasicBlockRef bb[2], from[2];
  bb[0] = LLVMAppendBasicBlockInContext(h->c, h->fn, "then");
  bb[1] = LLVMAppendBasicBlockInContext(h->c, h->fn, "else");
  LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(h->c, h->fn, "");
  LLVMBuildCondBr(h->b, h->vals[op->opnd[0]].v, bb[0], bb[1]);
  for (int k = 0; k < 2; k++) {
    LLVMPositionBuilderAtEnd(h->b, bb[k]);
    const xk_op *y = yield_of(f, blk[k]);
    if (!y || y->nopnd != n) {
      rc = xk_hl_err(h, op, "a branch does not end with a matching yield");
      goto out;
    }
    if (lower_block(h, blk[k]))
      goto out;
    for (int j = 0; j < n; j++)
      if (buf[j])
        xk_hl_copy_into(h, buf[j], y->opnd[j]);
      else
        val[k * n + j] = h->vals[y->opnd[j]].v;
    from[k] = LLVMGetInsertBlock(h->b);
    LLVMBuildBr(h->b, join);
  }
  LLVMPositionBuilderAtEnd(h->b, join);
  for (int j = 0; j < n; j++) {
    xk_hval *r = &h->vals[op->res[j]];
    memset(r, 0, sizeof *r);
    if (buf[j]) {
      r->kind = HV_BUF;
      r->v = buf[j];
      continue;
    }
    xk_type t = xk_vtype(f, op->res[j]);
    LLVMValueRef in[2] = {val[j], val[n + j]};
    r->kind = HV_SCALAR;
    r->v = LLVMBuildPhi(h->b, xk_hl_reg_type(h, t.dtype), "");
    LLVMAddIncoming(r->v, in, from, 2);
  }
  rc = 0;
out:
  free(buf);
  free(val);
  return rc;
}

/* EXIT jumps to the function's return; what follows it in its block goes
 * into a block nothing reaches. */
static int lower_exit(xk_hl *h) {
  if (!h->ret)
    h->ret = LLVMAppendBasicBlockInContext(h->c, h->fn, "ret");
  LLVMBuildBr(h->b, h->ret);
  LLVMPositionBuilderAtEnd(h->b,
                           LLVMAppendBasicBlockInContext(h->c, h->fn, ""));
  return 0;
}

static int lower_op(xk_hl *h, const xk_op *op) {
  for (int k = 0; k < op->nopnd; k++)
    if (h->vals[op->opnd[k]].kind == HV_NONE)
      return xk_hl_err(h, op, "uses a value not defined before it");
  xk_hval *r = op->nres ? &h->vals[op->res[0]] : NULL;
  xk_type rt = op->nres ? xk_vtype(h->f, op->res[0]) : xk_type_scalar(XK_I1);
  switch (op->code) {
  case XK_OP_CONST:
    if (xk_hl_const(h, op, &r->v))
      return -1;
    r->kind = rt.rank ? HV_SPLAT : HV_SCALAR;
    return 0;
  case XK_OP_PROGRAM_ID:
  case XK_OP_NUM_PROGRAMS: {
    if (op->attr.axis < 0 || op->attr.axis > 2)
      return xk_hl_err(h, op, "axis must be 0, 1 or 2");
    LLVMValueRef base =
        LLVMGetParam(h->fn, op->code == XK_OP_PROGRAM_ID ? 1 : 2);
    LLVMValueRef ax = xk_hl_i64(h, op->attr.axis);
    LLVMValueRef p = LLVMBuildInBoundsGEP2(h->b, h->t_i32, base, &ax, 1, "");
    r->kind = HV_SCALAR;
    r->v = LLVMBuildLoad2(h->b, h->t_i32, p, "");
    return 0;
  }
  case XK_OP_ARANGE: {
    int64_t n = xk_type_numel(rt);
    if (rt.dtype != XK_I32 || rt.rank != 1 || n != op->attr.hi - op->attr.lo)
      return xk_hl_err(h, op, "result must be i32[hi-lo]");
    r->kind = HV_BUF;
    r->v = xk_hl_buf(h, XK_I32, n);
    if (!r->v)
      return xk_hl_err(h, op, "out of memory");
    xk_hloop l;
    LLVMValueRef i = xk_hl_loop_begin(h, &l, n);
    LLVMValueRef x = LLVMBuildTrunc(h->b, i, h->t_i32, "");
    x = LLVMBuildAdd(h->b, x,
                     LLVMConstInt(h->t_i32, (unsigned long long)op->attr.lo, 1),
                     "");
    xk_hl_write(h, r->v, XK_I32, i, x);
    xk_hl_loop_end(h, &l);
    r->aff = 1;
    r->abase = LLVMConstInt(h->t_i32, (unsigned long long)op->attr.lo, 1);
    r->astr[0] = xk_hl_i64(h, 1);
    return 0;
  }
  case XK_OP_BROADCAST:
  case XK_OP_EXPAND_DIMS:
  case XK_OP_RESHAPE:
  case XK_OP_TRANS:
    return xk_hl_shape_op(h, op);
  case XK_OP_SHIFT:
  case XK_OP_XORPERM:
    return xk_hl_axis_perm(h, op);
  case XK_OP_REDUCE:
    return xk_hl_reduce(h, op);
  case XK_OP_DOT:
    return xk_hl_dot(h, op);
  case XK_OP_LOAD:
    return xk_hl_load(h, op);
  case XK_OP_STORE:
  case XK_OP_ATOMIC_ADD:
    return xk_hl_store(h, op);
  case XK_OP_ATOMIC:
    return xk_hl_atomic(h, op);
  case XK_OP_PRINT:
    return xk_hl_print(h, op);
  case XK_OP_BARRIER:
    return 0; /* a program runs as one thread, each op over its whole tile */
  case XK_OP_FOR:
    return lower_for(h, op);
  case XK_OP_IF:
    return lower_if(h, op);
  case XK_OP_SORT:
    return xk_hl_sort(h, op);
  case XK_OP_EXIT:
    return lower_exit(h);
  case XK_OP_YIELD:
    return 0; /* done by the FOR or IF that owns the block */
  default:
    if (xk_op_is_elementwise(op->code))
      return xk_hl_elementwise(h, op);
    return xk_hl_err(h, op, "unknown op");
  }
}

static int lower_block(xk_hl *h, int blk) {
  const xk_block *bl = &h->f->blocks[blk];
  for (int i = 0; i < bl->nops; i++) {
    const xk_op *op = &h->f->ops[bl->ops[i]];
    if (op->dead)
      continue;
    if (xk_hl_fusable(h, bl, i)) {
      if (xk_hl_elementwise_check(h, op))
        return -1;
      h->vals[op->res[0]].kind = HV_FUSED;
      h->vals[op->res[0]].op = bl->ops[i];
    } else if (lower_op(h, op)) {
      return -1;
    }
  }
  return 0;
}

static void add_attr(xk_hl *h, LLVMValueRef fn, LLVMAttributeIndex idx,
                     const char *name) {
  unsigned k = LLVMGetEnumAttributeKindForName(name, strlen(name));
  LLVMAddAttributeAtIndex(fn, idx, LLVMCreateEnumAttribute(h->c, k, 0));
}

/* Frees heap tiles on the way out; a failed malloc returns before running
 * the program, with status 1 (xk_host_fn), so that the launcher reports it
 * instead of leaving the program's output unwritten in silence. */
static void finish(xk_hl *h, LLVMBasicBlockRef start) {
  LLVMBasicBlockRef exit =
      h->ret ? h->ret : LLVMAppendBasicBlockInContext(h->c, h->fn, "");
  LLVMBuildBr(h->b, exit);
  LLVMPositionBuilderAtEnd(h->b, exit);
  for (int i = 0; i < h->nheap; i++) {
    LLVMValueRef p = h->heap[i];
    LLVMBuildCall2(h->b, free_type(h), declare(h, "free", free_type(h)), &p, 1,
                   "");
  }
  LLVMValueRef ok = LLVMConstInt(h->t_i1, 1, 0);
  for (int i = 0; i < h->nheap; i++)
    ok = LLVMBuildAnd(h->ab, ok, LLVMBuildIsNotNull(h->ab, h->heap[i], ""), "");
  /* computed in the entry block, which dominates the exit */
  LLVMValueRef status =
      LLVMBuildZExt(h->ab, LLVMBuildNot(h->ab, ok, ""), h->t_i32, "");
  LLVMBuildRet(h->b, status);
  LLVMBuildCondBr(h->ab, ok, start, exit);
}

int xk_lower_host(const xk_func *f, LLVMModuleRef mod, const char *sym,
                  xk_diag *d) {
  if (LLVMGetNamedFunction(mod, sym))
    return xk_diag_set(d, "%s: symbol '%s' already in the module", f->file,
                       sym);
  xk_hl h = {0};
  h.f = f;
  h.d = d;
  h.m = mod;
  h.c = LLVMGetModuleContext(mod);
  h.t_i1 = LLVMInt1TypeInContext(h.c);
  h.t_i8 = LLVMInt8TypeInContext(h.c);
  h.t_i16 = LLVMInt16TypeInContext(h.c);
  h.t_i32 = LLVMInt32TypeInContext(h.c);
  h.t_i64 = LLVMInt64TypeInContext(h.c);
  h.t_f16 = LLVMHalfTypeInContext(h.c);
  h.t_f32 = LLVMFloatTypeInContext(h.c);
  h.t_ptr = LLVMPointerTypeInContext(h.c, 0);
  h.vals = calloc((size_t)f->nvalues + 1, sizeof *h.vals);
  if (!h.vals || xk_hl_count_uses(&h)) {
    free(h.vals);
    return xk_diag_set(d, "out of memory");
  }
  LLVMTypeRef params[3] = {h.t_ptr, h.t_ptr, h.t_ptr};
  LLVMTypeRef fty = LLVMFunctionType(h.t_i32, params, 3, 0);
  h.fn = LLVMAddFunction(mod, sym, fty);
  add_attr(&h, h.fn, LLVMAttributeFunctionIndex, "nounwind");
  for (unsigned i = 1; i <= 3; i++) {
    add_attr(&h, h.fn, i, "nocapture");
    add_attr(&h, h.fn, i, "readonly");
  }
  h.entry = LLVMAppendBasicBlockInContext(h.c, h.fn, "entry");
  LLVMBasicBlockRef start = LLVMAppendBasicBlockInContext(h.c, h.fn, "");
  h.b = LLVMCreateBuilderInContext(h.c);
  h.ab = LLVMCreateBuilderInContext(h.c);
  LLVMPositionBuilderAtEnd(h.ab, h.entry);
  LLVMPositionBuilderAtEnd(h.b, start);

  int rc = 0;
  const xk_block *e = &f->blocks[0];
  LLVMValueRef argv = LLVMGetParam(h.fn, 0);
  for (int i = 0; i < e->nargs && !rc; i++) {
    xk_type t = xk_vtype(f, e->args[i]);
    if (t.rank) {
      rc = xk_diag_set(d, "%s: kernel argument %d of %s is not a scalar",
                       f->file, i, f->name);
      break;
    }
    LLVMValueRef ix = xk_hl_i64(&h, i);
    LLVMValueRef pp = LLVMBuildInBoundsGEP2(h.b, h.t_ptr, argv, &ix, 1, "");
    LLVMValueRef p = LLVMBuildLoad2(h.b, h.t_ptr, pp, "");
    LLVMValueRef v = LLVMBuildLoad2(h.b, xk_hl_mem_type(&h, t.dtype), p, "");
    if (t.dtype == XK_I1)
      v = LLVMBuildTrunc(h.b, v, h.t_i1, "");
    xk_spec_assume(mod, h.b, v, f->args[i].spec);
    h.vals[e->args[i]].kind = HV_SCALAR;
    h.vals[e->args[i]].v = v;
  }
  if (!rc)
    rc = lower_block(&h, 0);
  if (!rc)
    finish(&h, start);
  else
    LLVMDeleteFunction(h.fn);
  LLVMDisposeBuilder(h.b);
  LLVMDisposeBuilder(h.ab);
  free(h.vals);
  free(h.uses);
  free(h.heap);
  return rc;
}
