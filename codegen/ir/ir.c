/* Tile IR construction and type helpers. */
#include "ir.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Grows p to hold `need` elements, adding what it allocates to f's
 * heap_bytes. */
static void *xk_grow(xk_func *f, void *p, int *cap, int need, size_t elt) {
  if (need <= *cap)
    return p;
  int c = *cap ? *cap : 16;
  while (c < need)
    c *= 2;
  void *q = realloc(p, (size_t)c * elt);
  if (!q)
    abort(); /* out of memory while building IR: nothing sane to return */
  memset((char *)q + (size_t)*cap * elt, 0, (size_t)(c - *cap) * elt);
  f->heap_bytes += (size_t)(c - *cap) * elt;
  *cap = c;
  return q;
}

static char *xk_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *r = malloc(n);
  if (!r)
    abort();
  return memcpy(r, s, n);
}

static const char *const dtype_names[XK_NDTYPES] = {"i1",   "i32", "i64", "f16",
                                                    "bf16", "f32", "ptr"};

const char *xk_dtype_name(int dt) {
  return dt >= 0 && dt < XK_NDTYPES ? dtype_names[dt] : "?";
}

int xk_dtype_parse(const char *s) {
  for (int i = 0; i < XK_NDTYPES; i++)
    if (!strcmp(s, dtype_names[i]))
      return i;
  return -1;
}

int xk_dtype_is_float(int dt) {
  return dt == XK_F16 || dt == XK_BF16 || dt == XK_F32;
}
int xk_dtype_is_int(int dt) {
  return dt == XK_I1 || dt == XK_I32 || dt == XK_I64;
}

int xk_dtype_bits(int dt) {
  switch (dt) {
  case XK_I1:
    return 8;
  case XK_F16:
  case XK_BF16:
    return 16;
  case XK_I32:
  case XK_F32:
    return 32;
  default:
    return 64;
  }
}

xk_type xk_type_scalar(xk_dtype dt) {
  xk_type t = {0};
  t.dtype = (uint8_t)dt;
  return t;
}

xk_type xk_type_ptr(xk_dtype elem) {
  xk_type t = xk_type_scalar(XK_PTR);
  t.elem = (uint8_t)elem;
  return t;
}

xk_type xk_type_tile(xk_dtype dt, int rank, const int32_t *shape) {
  xk_type t = xk_type_scalar(dt);
  t.rank = (uint8_t)rank;
  for (int i = 0; i < rank; i++)
    t.shape[i] = shape[i];
  return t;
}

int xk_type_same_shape(xk_type a, xk_type b) {
  if (a.rank != b.rank)
    return 0;
  for (int i = 0; i < a.rank; i++)
    if (a.shape[i] != b.shape[i])
      return 0;
  return 1;
}

int xk_type_eq(xk_type a, xk_type b) {
  return a.dtype == b.dtype && (a.dtype != XK_PTR || a.elem == b.elem) &&
         xk_type_same_shape(a, b);
}

int64_t xk_type_numel(xk_type t) {
  int64_t n = 1;
  for (int i = 0; i < t.rank; i++)
    n *= t.shape[i];
  return n;
}

char *xk_type_str(xk_type t, char *buf, size_t n) {
  int k;
  if (t.dtype == XK_PTR)
    k = snprintf(buf, n, "ptr<%s>", xk_dtype_name(t.elem));
  else
    k = snprintf(buf, n, "%s", xk_dtype_name(t.dtype));
  if (t.rank && k >= 0 && (size_t)k < n) {
    for (int i = 0; i < t.rank && (size_t)k < n; i++)
      k += snprintf(buf + k, n - (size_t)k, "%c%d", i ? ',' : '[', t.shape[i]);
    if ((size_t)k < n)
      snprintf(buf + k, n - (size_t)k, "]");
  }
  return buf;
}

xk_func *xk_func_new(const char *name, const char *file) {
  xk_func *f = calloc(1, sizeof *f);
  if (!f)
    abort();
  f->name = xk_strdup(name);
  f->file = xk_strdup(file ? file : "?");
  f->num_warps = 4;
  f->num_stages = 1;
  xk_block_new(f, -1);
  return f;
}

void xk_func_free(xk_func *f) {
  if (!f)
    return;
  for (int i = 0; i < f->nops; i++) {
    free(f->ops[i].res);
    free(f->ops[i].opnd);
  }
  for (int i = 0; i < f->nblocks; i++) {
    free(f->blocks[i].args);
    free(f->blocks[i].ops);
  }
  for (int i = 0; i < f->nargs; i++)
    free(f->args[i].name);
  for (int i = 0; i < f->nconsts; i++) {
    free(f->consts[i].name);
    free(f->consts[i].str);
  }
  for (int i = 0; i < f->nstrs; i++)
    free(f->strs[i]);
  free(f->strs);
  free(f->args);
  free(f->consts);
  free(f->values);
  free(f->ops);
  free(f->blocks);
  free(f->name);
  free(f->file);
  free(f);
}

static int new_value(xk_func *f, xk_type t, int def_op, int def_block) {
  f->values =
      xk_grow(f, f->values, &f->cap_values, f->nvalues + 1, sizeof *f->values);
  xk_value *v = &f->values[f->nvalues];
  v->type = t;
  v->def_op = def_op;
  v->def_block = def_block;
  return f->nvalues++;
}

int xk_block_new(xk_func *f, int parent_op) {
  f->blocks =
      xk_grow(f, f->blocks, &f->cap_blocks, f->nblocks + 1, sizeof *f->blocks);
  f->blocks[f->nblocks].parent_op = parent_op;
  return f->nblocks++;
}

int xk_block_add_arg(xk_func *f, int block, xk_type t) {
  xk_block *b = &f->blocks[block];
  int *a = realloc(b->args, (size_t)(b->nargs + 1) * sizeof *a);
  if (!a)
    abort();
  b->args = a;
  f->heap_bytes += sizeof *a;
  int v = new_value(f, t, -1, block);
  f->blocks[block].args[f->blocks[block].nargs++] = v;
  return v;
}

int xk_func_add_arg(xk_func *f, const char *name, xk_type t) {
  xk_arg *a = realloc(f->args, (size_t)(f->nargs + 1) * sizeof *a);
  if (!a)
    abort();
  f->args = a;
  f->args[f->nargs].name = xk_strdup(name);
  f->args[f->nargs].type = t;
  f->args[f->nargs].spec = 0;
  f->nargs++;
  return xk_block_add_arg(f, 0, t);
}

void xk_func_add_const(xk_func *f, const char *name, int64_t v) {
  xk_constexpr *c = realloc(f->consts, (size_t)(f->nconsts + 1) * sizeof *c);
  if (!c)
    abort();
  f->consts = c;
  f->consts[f->nconsts] = (xk_constexpr){.name = xk_strdup(name), .value = v};
  f->nconsts++;
}

int xk_func_add_str(xk_func *f, const char *s) {
  char **v = realloc(f->strs, (size_t)(f->nstrs + 1) * sizeof *v);
  if (!v)
    abort();
  f->strs = v;
  f->strs[f->nstrs] = xk_strdup(s);
  f->heap_bytes += sizeof *v + strlen(s) + 1;
  return f->nstrs++;
}

void xk_func_set_const(xk_func *f, int i, const xk_constexpr *c) {
  xk_constexpr *t = &f->consts[i];
  free(t->str);
  t->kind = c->kind;
  t->value = c->kind == XK_CONST_INT ? c->value : 0;
  t->fvalue = c->kind == XK_CONST_FLOAT ? c->fvalue : 0;
  t->str = c->kind == XK_CONST_STR ? xk_strdup(c->str) : NULL;
}

void xk_const_format(const xk_constexpr *c, char *buf, size_t n) {
  if (c->kind == XK_CONST_FLOAT) {
    /* 1.0 prints as "1"; the ".0" keeps it a float when read back */
    int w = snprintf(buf, n, "%.17g", c->fvalue);
    if (w > 0 && (size_t)w + 2 < n && !strpbrk(buf, ".eEn"))
      strcat(buf, ".0");
  } else if (c->kind == XK_CONST_STR)
    snprintf(buf, n, "\"%s\"", c->str);
  else
    snprintf(buf, n, "%lld", (long long)c->value);
}

int xk_op_new(xk_func *f, int block, xk_opcode code, const int *opnd, int nopnd,
              const xk_type *res, int nres, xk_attr attr, xk_loc loc) {
  f->ops = xk_grow(f, f->ops, &f->cap_ops, f->nops + 1, sizeof *f->ops);
  int id = f->nops++;
  xk_op *op = &f->ops[id];
  op->code = (uint16_t)code;
  op->nopnd = nopnd;
  op->opnd = nopnd ? malloc((size_t)nopnd * sizeof(int)) : NULL;
  op->nres = nres;
  op->res = nres ? malloc((size_t)nres * sizeof(int)) : NULL;
  if ((nopnd && !op->opnd) || (nres && !op->res))
    abort();
  if (nopnd)
    memcpy(op->opnd, opnd, (size_t)nopnd * sizeof(int));
  f->heap_bytes += (size_t)(nopnd + nres) * sizeof(int);
  op->body = -1;
  op->orelse = -1;
  op->block = block;
  op->attr = attr;
  op->loc = loc;
  for (int i = 0; i < nres; i++) {
    int v = new_value(f, res[i], id, block);
    f->ops[id].res[i] = v;
  }
  xk_block *b = &f->blocks[block];
  b->ops = xk_grow(f, b->ops, &b->cap, b->nops + 1, sizeof *b->ops);
  b->ops[b->nops++] = id;
  return id;
}

int xk_op_add_result(xk_func *f, int op, xk_type t) {
  int v = new_value(f, t, op, f->ops[op].block);
  xk_op *o = &f->ops[op];
  int *r = realloc(o->res, (size_t)(o->nres + 1) * sizeof *r);
  if (!r)
    abort();
  o->res = r;
  o->res[o->nres++] = v;
  f->heap_bytes += sizeof *r;
  return v;
}

int xk_emit(xk_func *f, int block, xk_opcode code, const int *opnd, int nopnd,
            xk_type res, xk_attr attr, xk_loc loc) {
  int id = xk_op_new(f, block, code, opnd, nopnd, &res, 1, attr, loc);
  return f->ops[id].res[0];
}

void xk_func_replace_uses(xk_func *f, int from, int to) {
  for (int i = 0; i < f->nops; i++)
    for (int j = 0; j < f->ops[i].nopnd; j++)
      if (f->ops[i].opnd[j] == from)
        f->ops[i].opnd[j] = to;
}

static const char *const op_names[XK_NOPS] = {
    "const",   "program_id", "num_programs", "arange",     "add",
    "sub",     "mul",        "div",          "rem",        "min",
    "max",     "and",        "or",           "xor",        "shl",
    "shr",     "cmp",        "neg",          "not",        "exp",
    "exp2",    "log",        "sqrt",         "rsqrt",      "sin",
    "cos",     "log2",       "floor",        "ceil",       "abs",
    "select",  "fma",        "cast",         "broadcast",  "expand_dims",
    "reshape", "shift",      "xorperm",      "trans",      "reduce",
    "dot",     "load",       "store",        "atomic_add", "atomic",
    "barrier", "print",      "for",          "yield",      "if",
    "exit",    "sort"};

const char *xk_rmw_name(int rmw) {
  static const char *const n[XK_NRMW] = {"add", "max", "min",  "and",
                                         "or",  "xor", "xchg", "cas"};
  return rmw >= 0 && rmw < XK_NRMW ? n[rmw] : "?";
}

const char *xk_sem_name(int sem) {
  static const char *const n[XK_NSEM] = {"acq_rel", "relaxed", "acquire",
                                         "release"};
  return sem >= 0 && sem < XK_NSEM ? n[sem] : "?";
}

const char *xk_scope_name(int scope) {
  static const char *const n[XK_NSCOPE] = {"gpu", "cta", "sys"};
  return scope >= 0 && scope < XK_NSCOPE ? n[scope] : "?";
}

const char *xk_op_name(int code) {
  return code >= 0 && code < XK_NOPS ? op_names[code] : "?";
}

int xk_op_is_elementwise(int code) {
  return code >= XK_OP_ADD && code <= XK_OP_CAST;
}

int xk_op_is_control(int code) {
  return code == XK_OP_FOR || code == XK_OP_IF || code == XK_OP_EXIT ||
         code == XK_OP_YIELD;
}

int xk_op_is_region(int code) {
  return code == XK_OP_FOR || code == XK_OP_IF;
}

int xk_op_orders_memory(int code) {
  return code == XK_OP_STORE || code == XK_OP_ATOMIC_ADD ||
         code == XK_OP_ATOMIC || code == XK_OP_BARRIER || code == XK_OP_PRINT;
}
