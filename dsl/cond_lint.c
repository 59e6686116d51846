/* Guards on Lua conditions in kernel files.
 *
 * A tile is userdata, which Lua counts as true, and Lua never calls __eq
 * between a tile and a number, so `if (pid * B):lt(a.N) then` always takes
 * the branch and `if a.N == 0 then` never does, silently. Neither is
 * visible to a metamethod. So before the file is loaded its source is
 * rewritten token by token: each operand of the top-level and/or of an
 * `if`, `elseif` or `while` condition becomes __xk_truth(operand), which
 * raises on a tile and otherwise returns the operand itself, and an
 * operand `l == r` (or ~=) becomes __xk_eq(l, r, negate), which raises when
 * either side is a tile. Splitting at and/or and then at a single ==/~= is
 * exact because those are the lowest-precedence operators, in that order;
 * `not x == y` is (not x) == y, which the rewrite keeps. Nothing is
 * inserted on a new line, so line numbers stay. Conditions holding a
 * function literal, or more than one comparison in an operand, are left as
 * written. */
#include "dsl_priv.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

enum { T_NAME, T_OTHER };

typedef struct {
  size_t a, b; /* source span */
  int kind;
} token;

typedef struct {
  size_t pos, del;
  const char *text;
} edit;

typedef struct {
  token *t;
  int n, cap;
  edit *e;
  int ne, cape;
} lint;

static int push_token(lint *x, size_t a, size_t b, int kind) {
  if (x->n == x->cap) {
    int c = x->cap ? 2 * x->cap : 256;
    token *t = realloc(x->t, (size_t)c * sizeof *t);
    if (!t)
      return -1;
    x->t = t;
    x->cap = c;
  }
  x->t[x->n++] = (token){a, b, kind};
  return 0;
}

static int push_edit(lint *x, size_t pos, size_t del, const char *text) {
  if (x->ne == x->cape) {
    int c = x->cape ? 2 * x->cape : 64;
    edit *e = realloc(x->e, (size_t)c * sizeof *e);
    if (!e)
      return -1;
    x->e = e;
    x->cape = c;
  }
  x->e[x->ne++] = (edit){pos, del, text};
  return 0;
}

/* level of a long bracket at s[i] ('[' followed by '='* and '['), or -1 */
static int long_level(const char *s, size_t n, size_t i) {
  if (i >= n || s[i] != '[')
    return -1;
  size_t j = i + 1;
  while (j < n && s[j] == '=')
    j++;
  return j < n && s[j] == '[' ? (int)(j - i - 1) : -1;
}

static size_t skip_long(const char *s, size_t n, size_t i, int lvl) {
  for (i += (size_t)lvl + 2; i < n; i++)
    if (s[i] == ']') {
      size_t j = i + 1;
      while (j < n && s[j] == '=')
        j++;
      if (j < n && s[j] == ']' && (int)(j - i - 1) == lvl)
        return j + 1;
    }
  return n;
}

/* Lua's lexer, as far as token boundaries go. */
static int tokenize(lint *x, const char *s, size_t n) {
  size_t i = 0;
  if (n && s[0] == '#') /* a first line that Lua skips */
    while (i < n && s[i] != '\n')
      i++;
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    size_t a = i;
    if (isspace(c)) {
      i++;
    } else if (c == '-' && i + 1 < n && s[i + 1] == '-') {
      int lvl = long_level(s, n, i + 2);
      if (lvl >= 0)
        i = skip_long(s, n, i + 2, lvl);
      else
        while (i < n && s[i] != '\n')
          i++;
    } else if (isalpha(c) || c == '_') {
      while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '_'))
        i++;
      if (push_token(x, a, i, T_NAME))
        return -1;
    } else if (isdigit(c) ||
               (c == '.' && i + 1 < n && isdigit((unsigned char)s[i + 1]))) {
      while (i < n &&
             (isalnum((unsigned char)s[i]) || s[i] == '.' ||
              ((s[i] == '+' || s[i] == '-') && strchr("eEpP", s[i - 1]))))
        i++;
      if (push_token(x, a, i, T_OTHER))
        return -1;
    } else if (c == '"' || c == '\'') {
      for (i++; i < n && s[i] != (char)c && s[i] != '\n'; i++)
        if (s[i] == '\\' && i + 1 < n)
          i++;
      i = i < n ? i + 1 : n;
      if (push_token(x, a, i, T_OTHER))
        return -1;
    } else if (long_level(s, n, i) >= 0) {
      i = skip_long(s, n, i, long_level(s, n, i));
      if (push_token(x, a, i, T_OTHER))
        return -1;
    } else {
      static const char *const ops[] = {
          "...", "==", "~=", "<=", ">=", "//", "::", "<<", ">>", ".."};
      size_t len = 1;
      for (size_t k = 0; k < sizeof ops / sizeof *ops; k++)
        if (i + strlen(ops[k]) <= n && !memcmp(s + i, ops[k], strlen(ops[k]))) {
          len = strlen(ops[k]);
          break;
        }
      i += len;
      if (push_token(x, a, i, T_OTHER))
        return -1;
    }
  }
  return 0;
}

static int is(const char *s, const token *t, const char *w) {
  size_t n = strlen(w);
  return t->b - t->a == n && !strncmp(s + t->a, w, n);
}

/* Operand [a, b) of a condition's top-level and/or. */
static int operand(lint *x, const char *s, int a, int b, const char *truth) {
  while (a < b && is(s, &x->t[a], "not"))
    a++;
  int eq = -1, ncmp = 0, depth = 0;
  for (int k = a; k < b; k++) {
    const token *t = &x->t[k];
    if (is(s, t, "(") || is(s, t, "[") || is(s, t, "{"))
      depth++;
    else if (is(s, t, ")") || is(s, t, "]") || is(s, t, "}"))
      depth--;
    else if (!depth && (is(s, t, "==") || is(s, t, "~=") || is(s, t, "<") ||
                        is(s, t, ">") || is(s, t, "<=") || is(s, t, ">="))) {
      ncmp++;
      if (is(s, t, "==") || is(s, t, "~="))
        eq = k;
    }
  }
  if (a >= b)
    return 0;
  if (ncmp == 1 && eq > a && eq + 1 < b) {
    /* nots before l bind tighter than ==: (not l) == r */
    int first = a;
    while (first > 0 && is(s, &x->t[first - 1], "not"))
      first--;
    int neg = is(s, &x->t[eq], "~=");
    if (push_edit(x, x->t[first].a, 0, "__xk_eq(") ||
        (first < a && (push_edit(x, x->t[a].a, 0, truth) ||
                       push_edit(x, x->t[eq - 1].b, 0, ")"))) ||
        push_edit(x, x->t[eq].a, 2, ",") ||
        push_edit(x, x->t[b - 1].b, 0, neg ? ",true)" : ",false)"))
      return -1;
    return 0;
  }
  if (ncmp > 1)
    return 0;
  if (push_edit(x, x->t[a].a, 0, truth) || push_edit(x, x->t[b - 1].b, 0, ")"))
    return -1;
  return 0;
}

/* The condition after token k (`if`, `elseif`, `while`) up to `stop`. */
static int condition(lint *x, const char *s, int k, const char *stop,
                     const char *truth) {
  int end = -1, depth = 0;
  for (int j = k + 1; j < x->n && end < 0; j++) {
    const token *t = &x->t[j];
    if (is(s, t, "function"))
      return 0;
    if (is(s, t, "(") || is(s, t, "[") || is(s, t, "{"))
      depth++;
    else if (is(s, t, ")") || is(s, t, "]") || is(s, t, "}"))
      depth--;
    else if (!depth && is(s, t, stop))
      end = j;
  }
  if (end < 0)
    return 0; /* a syntax error, which Lua reports */
  int from = k + 1;
  depth = 0;
  for (int j = k + 1; j <= end; j++) {
    const token *t = &x->t[j];
    if (is(s, t, "(") || is(s, t, "[") || is(s, t, "{"))
      depth++;
    else if (is(s, t, ")") || is(s, t, "]") || is(s, t, "}"))
      depth--;
    else if (j == end || (!depth && (is(s, t, "and") || is(s, t, "or")))) {
      if (operand(x, s, from, j, truth))
        return -1;
      from = j + 1;
    }
  }
  return 0;
}

static int cmp_edit(const void *a, const void *b) {
  const edit *x = a, *y = b;
  return x->pos < y->pos ? -1 : x->pos > y->pos;
}

char *xk_cond_lint(const char *s, size_t n, size_t *outn, int *overlap) {
  lint x = {0};
  char *out = NULL;
  *overlap = 0;
  if (tokenize(&x, s, n))
    goto done;
  for (int k = 0; k < x.n; k++) {
    const token *t = &x.t[k];
    int rc = 0;
    if (t->kind == T_NAME && (is(s, t, "if") || is(s, t, "elseif")))
      rc = condition(&x, s, k, "then", "__xk_truth('if',");
    else if (t->kind == T_NAME && is(s, t, "while"))
      rc = condition(&x, s, k, "do", "__xk_truth('while',");
    if (rc)
      goto done;
  }
  /* stable: edits at one position keep the order they were made in */
  for (int i = 1; i < x.ne; i++)
    for (int j = i; j > 0 && cmp_edit(&x.e[j - 1], &x.e[j]) > 0; j--) {
      edit tmp = x.e[j];
      x.e[j] = x.e[j - 1];
      x.e[j - 1] = tmp;
    }
  /* rewrites that overlap (a condition the tokenizer split oddly, e.g.
   * inside a broken string) have no faithful result: refuse the file */
  for (int i = 1; i < x.ne; i++)
    if (x.e[i].pos < x.e[i - 1].pos + x.e[i - 1].del) {
      int line = 1;
      for (size_t p = 0; p < x.e[i].pos && p < n; p++)
        line += s[p] == '\n';
      *overlap = line;
      goto done;
    }
  size_t len = n + 1;
  for (int i = 0; i < x.ne; i++)
    len += strlen(x.e[i].text);
  out = malloc(len);
  if (!out)
    goto done;
  size_t o = 0, i = 0;
  for (int e = 0; e < x.ne; e++) {
    memcpy(out + o, s + i, x.e[e].pos - i);
    o += x.e[e].pos - i;
    size_t tl = strlen(x.e[e].text);
    memcpy(out + o, x.e[e].text, tl);
    o += tl;
    i = x.e[e].pos + x.e[e].del;
  }
  memcpy(out + o, s + i, n - i);
  o += n - i;
  out[o] = 0;
  *outn = o;
done:
  free(x.t);
  free(x.e);
  return out;
}
