/* Stable text form of the tile IR. Values are renumbered in print order so
 * the text does not depend on how passes appended or removed values. */
#include "ir.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  char *buf;
  size_t len, cap;
  int *num; /* value id -> printed number, -1 until defined */
  int next;
} printer;

static void put(printer *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put(printer *p, const char *fmt, ...) {
  va_list ap;
  for (;;) {
    va_start(ap, fmt);
    int n = vsnprintf(p->buf + p->len, p->cap - p->len, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < p->cap - p->len) {
      p->len += (size_t)n;
      return;
    }
    p->cap = p->cap * 2 + (size_t)(n > 0 ? n : 64);
    char *b = realloc(p->buf, p->cap);
    if (!b)
      abort();
    p->buf = b;
  }
}

static int def(printer *p, int v) {
  if (p->num[v] < 0)
    p->num[v] = p->next++;
  return p->num[v];
}

static void put_type(printer *p, xk_type t) {
  char b[64];
  put(p, "%s", xk_type_str(t, b, sizeof b));
}

static void put_indent(printer *p, int depth) {
  put(p, "%*s", 2 * depth, "");
}

static const char *pred_name[] = {"eq", "ne", "lt", "le", "gt", "ge"};
static const char *red_name[] = {"sum", "max", "min"};

static void put_attr(printer *p, const xk_func *f, const xk_op *op) {
  const xk_attr *a = &op->attr;
  switch (op->code) {
  case XK_OP_CONST:
    if (xk_dtype_is_float(xk_vtype(f, op->res[0]).dtype))
      put(p, " %.9g", a->f);
    else
      put(p, " %lld", (long long)a->i);
    break;
  case XK_OP_PROGRAM_ID:
  case XK_OP_NUM_PROGRAMS:
  case XK_OP_EXPAND_DIMS:
    put(p, " axis=%d", a->axis);
    break;
  case XK_OP_SHIFT:
  case XK_OP_XORPERM:
    put(p, " axis=%d by=%lld", a->axis, (long long)a->i);
    break;
  case XK_OP_ATOMIC:
    put(p, " %s %s %s", xk_rmw_name(a->rmw), xk_sem_name(a->sem),
        xk_scope_name(a->scope));
    break;
  case XK_OP_ARANGE:
    put(p, " %d, %d", a->lo, a->hi);
    break;
  case XK_OP_CMP:
    put(p, " %s", a->pred >= 0 && a->pred <= XK_GE ? pred_name[a->pred] : "?");
    break;
  case XK_OP_REDUCE:
    put(p, " %s axis=%d",
        a->red >= 0 && a->red <= XK_RED_MIN ? red_name[a->red] : "?", a->axis);
    break;
  case XK_OP_TRANS: {
    int r = xk_vtype(f, op->res[0]).rank;
    put(p, " perm=");
    for (int i = 0; i < r; i++)
      put(p, "%c%d", i ? ',' : '[', a->perm[i]);
    put(p, "]");
    break;
  }
  case XK_OP_DOT:
    if (a->i == XK_DOT_ACC_F16)
      put(p, " acc=f16");
    break;
  case XK_OP_SORT:
    put(p, " axis=%d%s", a->axis, a->i ? " descending" : "");
    break;
  case XK_OP_PRINT: /* the prefix is the user's text, printed as is */
    put(p, " \"%s\"", f->strs[op->attr.i]);
    break;
  default:
    break;
  }
}

static void put_block(printer *p, const xk_func *f, int b, int depth);

static void put_op(printer *p, const xk_func *f, const xk_op *op, int depth) {
  put_indent(p, depth);
  for (int i = 0; i < op->nres; i++)
    put(p, "%s%%%d", i ? ", " : "", def(p, op->res[i]));
  if (op->nres)
    put(p, " = ");
  put(p, "%s", xk_op_name(op->code));
  put_attr(p, f, op);
  for (int i = 0; i < op->nopnd; i++) {
    const char *tag = "";
    if (op->code == XK_OP_LOAD && i == 1 && op->attr.has_mask)
      tag = "mask ";
    else if (op->code == XK_OP_LOAD && i >= 1)
      tag = "other ";
    else if ((op->code == XK_OP_STORE || op->code == XK_OP_ATOMIC_ADD) &&
             i == 2)
      tag = "mask ";
    else if (op->code == XK_OP_ATOMIC && op->attr.has_mask &&
             i == op->nopnd - 1)
      tag = "mask ";
    put(p, "%s%s%%%d", i ? ", " : " ", tag, p->num[op->opnd[i]]);
  }
  if (op->nres == 1) {
    put(p, " : ");
    put_type(p, xk_vtype(f, op->res[0]));
  }
  if (op->code == XK_OP_FOR) {
    put(p, " -> (");
    for (int i = 0; i < op->nres; i++) {
      put(p, "%s", i ? ", " : "");
      put_type(p, xk_vtype(f, op->res[i]));
    }
    put(p, ")");
    if (op->attr.i)
      put(p, " num_stages=%lld", (long long)op->attr.i);
    put_block(p, f, op->body, depth);
  }
  if (op->code == XK_OP_SORT)
    put_block(p, f, op->body, depth);
  if (op->code == XK_OP_IF) {
    put(p, " -> (");
    for (int i = 0; i < op->nres; i++) {
      put(p, "%s", i ? ", " : "");
      put_type(p, xk_vtype(f, op->res[i]));
    }
    put(p, ")");
    put_block(p, f, op->body, depth);
    put(p, " else");
    put_block(p, f, op->orelse, depth);
  }
  put(p, "\n");
}

static void put_block(printer *p, const xk_func *f, int b, int depth) {
  const xk_block *blk = &f->blocks[b];
  put(p, " {\n");
  if (b) {
    put_indent(p, depth + 1);
    put(p, "^(");
    for (int i = 0; i < blk->nargs; i++) {
      put(p, "%s%%%d: ", i ? ", " : "", def(p, blk->args[i]));
      put_type(p, xk_vtype(f, blk->args[i]));
    }
    put(p, ")\n");
  }
  for (int i = 0; i < blk->nops; i++) {
    const xk_op *op = &f->ops[blk->ops[i]];
    if (!op->dead)
      put_op(p, f, op, depth + 1);
  }
  put_indent(p, depth);
  put(p, "}");
}

char *xk_func_print(const xk_func *f) {
  printer p = {0};
  p.cap = 4096;
  p.buf = malloc(p.cap);
  p.num = malloc((size_t)(f->nvalues ? f->nvalues : 1) * sizeof(int));
  if (!p.buf || !p.num)
    abort();
  memset(p.num, -1, (size_t)f->nvalues * sizeof(int));
  put(&p, "kernel %s(", f->name);
  for (int i = 0; i < f->nargs; i++) {
    put(&p, "%s%%%d %s: ", i ? ", " : "", def(&p, f->blocks[0].args[i]),
        f->args[i].name);
    put_type(&p, f->args[i].type);
  }
  put(&p, ") [");
  for (int i = 0; i < f->nconsts; i++) {
    char v[96];
    xk_const_format(&f->consts[i], v, sizeof v);
    put(&p, "%s%s=%s", i ? ", " : "", f->consts[i].name, v);
  }
  put(&p, "] num_warps=%d num_stages=%d", f->num_warps, f->num_stages);
  put_block(&p, f, 0, 0);
  put(&p, "\n");
  free(p.num);
  return p.buf;
}

char *xk_func_config_str(const xk_func *f, char *buf, size_t n) {
  size_t k = 0;
  buf[0] = 0;
  for (int i = 0; i < f->nconsts && k < n; i++) {
    char v[96];
    xk_const_format(&f->consts[i], v, sizeof v);
    int w = snprintf(buf + k, n - k, "%s=%s ", f->consts[i].name, v);
    k += w > 0 ? (size_t)w : 0;
  }
  if (k < n)
    snprintf(buf + k, n - k, "num_warps=%d num_stages=%d", f->num_warps,
             f->num_stages);
  return buf;
}
