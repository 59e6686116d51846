/* Recursive-descent evaluator for grid rules:
 *   expr := term (('+'|'-') term)*      term := unary (('*'|'/'|'%') unary)*
 *   unary := '-' unary | atom           atom := INT | NAME | NAME '(' args ')'
 *                                              | '(' expr ')'
 * Functions: cdiv(a, b), min(a, b), max(a, b). */
#include "grid.h"

#include <ctype.h>
#include <string.h>

typedef struct {
  const char *s, *p;
  xk_grid_lookup lookup;
  void *ctx;
  xk_diag *d;
  int err;
} parser;

static int64_t expr(parser *ps);

static int64_t bad(parser *ps, const char *why) {
  if (!ps->err)
    xk_diag_set(ps->d, "grid rule '%s': %s at offset %d", ps->s, why,
                (int)(ps->p - ps->s));
  ps->err = 1;
  return 0;
}

static void skip(parser *ps) {
  while (isspace((unsigned char)*ps->p))
    ps->p++;
}

static int eat(parser *ps, char c) {
  skip(ps);
  if (*ps->p != c)
    return 0;
  ps->p++;
  return 1;
}

static int64_t divide(parser *ps, int64_t a, int64_t b, int ceil) {
  if (b == 0)
    return bad(ps, "division by zero");
  if (b == -1 && a == INT64_MIN)
    return bad(ps, "overflow");
  return ceil ? (a + b - 1) / b : a / b;
}

static int64_t call(parser *ps, const char *name, size_t n) {
  int64_t a = expr(ps);
  if (!eat(ps, ','))
    return bad(ps, "expected ',' between two arguments");
  int64_t b = expr(ps);
  if (!eat(ps, ')'))
    return bad(ps, "expected ')'");
  if (n == 4 && !strncmp(name, "cdiv", 4))
    return divide(ps, a, b, 1);
  if (n == 3 && !strncmp(name, "min", 3))
    return a < b ? a : b;
  if (n == 3 && !strncmp(name, "max", 3))
    return a > b ? a : b;
  return bad(ps, "unknown function (cdiv, min, max)");
}

static int64_t atom(parser *ps) {
  skip(ps);
  if (eat(ps, '(')) {
    int64_t v = expr(ps);
    return eat(ps, ')') ? v : bad(ps, "expected ')'");
  }
  if (isdigit((unsigned char)*ps->p)) {
    int64_t v = 0;
    while (isdigit((unsigned char)*ps->p) && v < (INT64_C(1) << 40))
      v = v * 10 + (*ps->p++ - '0');
    return isdigit((unsigned char)*ps->p) ? bad(ps, "number too large") : v;
  }
  const char *name = ps->p;
  while (isalnum((unsigned char)*ps->p) || *ps->p == '_')
    ps->p++;
  size_t n = (size_t)(ps->p - name);
  if (!n)
    return bad(ps, "expected a number, name or '('");
  if (eat(ps, '('))
    return call(ps, name, n);
  char buf[64];
  if (n >= sizeof buf)
    return bad(ps, "name too long");
  memcpy(buf, name, n);
  buf[n] = 0;
  int64_t v = 0;
  if (ps->lookup(ps->ctx, buf, &v))
    return bad(ps, "unknown name (not an int argument or constexpr)");
  return v;
}

static int64_t unary(parser *ps) {
  if (!eat(ps, '-'))
    return atom(ps);
  int64_t v = unary(ps);
  return v == INT64_MIN ? bad(ps, "overflow") : -v;
}

static int64_t term(parser *ps) {
  int64_t v = unary(ps);
  for (;;) {
    if (eat(ps, '*')) {
      if (__builtin_mul_overflow(v, unary(ps), &v))
        return bad(ps, "overflow");
    } else if (eat(ps, '/'))
      v = divide(ps, v, unary(ps), 0);
    else if (eat(ps, '%')) {
      int64_t b = unary(ps);
      v = b && !(b == -1 && v == INT64_MIN) ? v % b : bad(ps, "modulo by zero");
    } else
      return v;
  }
}

static int64_t expr(parser *ps) {
  int64_t v = term(ps);
  for (;;) {
    int64_t b;
    if (eat(ps, '+')) {
      b = term(ps);
      if (__builtin_add_overflow(v, b, &v))
        return bad(ps, "overflow");
    } else if (eat(ps, '-')) {
      b = term(ps);
      if (__builtin_sub_overflow(v, b, &v))
        return bad(ps, "overflow");
    } else
      return v;
  }
}

int xk_grid_eval(const char *e, xk_grid_lookup lookup, void *ctx, int64_t *out,
                 xk_diag *d) {
  if (!e) {
    *out = 1;
    return 0;
  }
  parser ps = {e, e, lookup, ctx, d, 0};
  int64_t v = expr(&ps);
  skip(&ps);
  if (!ps.err && *ps.p)
    bad(&ps, "unexpected trailing text");
  if (ps.err)
    return -1;
  if (v < 0 || v > INT32_MAX)
    return xk_diag_set(d, "grid rule '%s' gives %lld programs", e,
                       (long long)v);
  *out = v;
  return 0;
}
