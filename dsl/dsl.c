/* Loading kernels.xk: a sandboxed Lua state runs the file, whose
 * `kernel "name" {spec}(body)` calls register checked kernel specs; tracing
 * then runs a body with tiles for arguments (trace.c, ops.c).
 *
 * Lua errors longjmp. While the file runs, every C allocation hangs off the
 * xk_dsl (the spec being registered sits in a pending slot freed by the next
 * registration or by xk_dsl_close), so an error at any point leaks nothing. */
#include "dsl_priv.h"

#include <errno.h>
#include <lualib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char xk_prelude_lua[];

typedef struct {
  xk_kernel_spec s;
  int num_warps, num_stages; /* defaults when not overridden */
} kentry;

struct xk_dsl {
  lua_State *L;
  char *path;
  char short_src[LUA_IDSIZE]; /* how Lua abbreviates path in messages */
  kentry *k;
  int n, cap; /* k[n], when n < cap, is the pending slot */
  unsigned serial;
  int loading;
  int ticks;         /* millions of Lua instructions since the last reset */
  xk_mem_budget mem; /* the Lua state's and the current trace's bytes */
};

/* Kernel files and bodies are small programs: this many million Lua
 * instructions means an endless loop, which must fail, not hang xkvgen.
 * The fuzz build (fuzz/) lowers both caps so that every input stays fast. */
#ifndef XK_DSL_MEGA_INSTRUCTIONS
#define XK_DSL_MEGA_INSTRUCTIONS 200
#endif
#define MAX_MEGA_INSTRUCTIONS XK_DSL_MEGA_INSTRUCTIONS

/* and this much memory, Lua and a trace's IR together (mem_budget.c),
 * means a runaway (string.rep("x", 1e10), an endless loop over tiles) */
#ifndef XK_DSL_MAX_LUA_MIB
#define XK_DSL_MAX_LUA_MIB 512
#endif
#define MAX_LUA_BYTES ((size_t)XK_DSL_MAX_LUA_MIB << 20)

#define DEFAULT_WARPS 4
#define DEFAULT_STAGES 1

static void *xmalloc(size_t n) {
  void *p = calloc(1, n ? n : 1);
  if (!p)
    abort(); /* as in ir.c: nothing sane to return */
  return p;
}

static char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  return memcpy(xmalloc(n), s, n);
}

/* "the float 0.5", "the string \"relu\"", "a table": a value in a
 * message. (lua_tostring would turn a number on the stack into a string,
 * and then its type name with it.) */
typedef struct {
  char s[96];
} described;

static described describe(lua_State *L, int idx) {
  described r;
  int t = lua_type(L, idx);
  if (t == LUA_TNUMBER && !lua_isinteger(L, idx))
    snprintf(r.s, sizeof r.s, "the float %.17g", (double)lua_tonumber(L, idx));
  else if (t == LUA_TSTRING)
    snprintf(r.s, sizeof r.s, "the string \"%.60s\"", lua_tostring(L, idx));
  else if (t == LUA_TBOOLEAN)
    snprintf(r.s, sizeof r.s, "the boolean %s",
             lua_toboolean(L, idx) ? "true" : "false");
  else
    snprintf(r.s, sizeof r.s, "a %s", luaL_typename(L, idx));
  return r;
}

static void spec_free(xk_kernel_spec *s) {
  free(s->name);
  for (int i = 0; i < s->nargs; i++)
    free(s->args[i].name);
  free(s->args);
  for (int i = 0; i < s->nconsts; i++) {
    free(s->consts[i].name);
    free(s->consts[i].str);
  }
  free(s->consts);
  for (int i = 0; i < s->ntune; i++) {
    free(s->tune[i].name);
    free(s->tune[i].vals);
  }
  free(s->tune);
  for (int i = 0; i < s->nkey; i++)
    free(s->key[i]);
  free(s->key);
  for (int i = 0; i < 3; i++)
    free(s->grid[i]);
  for (int i = 0; i < s->nkeygrid; i++) {
    free(s->keygrid[i].name);
    free(s->keygrid[i].vals);
  }
  free(s->keygrid);
  memset(s, 0, sizeof *s);
}

int xk_lua_file_line(lua_State *L, const char *path) {
  lua_Debug ar;
  for (int lv = 0; lua_getstack(L, lv, &ar); lv++)
    if (lua_getinfo(L, "Sl", &ar) && ar.source[0] == '@' &&
        !strcmp(ar.source + 1, path))
      return ar.currentline;
  return 0;
}

/* --- error locations ------------------------------------------------------ */

/* Pushes m as "path:LINE: [in kernel 'K': ]msg". Lua's own messages carry
 * "short_src:LINE:" (or "xk.lua:LINE:" from the prelude, which is no help
 * to a kernel author); `line` is used when m has no kernel-file location. */
static const char *push_located(lua_State *L, xk_dsl *D, const char *m,
                                int line) {
  size_t pl = strlen(D->path), sl = strlen(D->short_src);
  const char *rest = NULL;
  if (!strncmp(m, D->path, pl) && m[pl] == ':')
    rest = m + pl + 1;
  else if (sl && !strncmp(m, D->short_src, sl) && m[sl] == ':')
    rest = m + sl + 1;
  if (rest) {
    char *end;
    long l = strtol(rest, &end, 10);
    if (end != rest && end[0] == ':' && end[1] == ' ') {
      line = (int)l;
      m = end + 2;
    } else {
      m = rest;
    }
  } else if (!strncmp(m, "xk.lua:", 7)) {
    const char *p = m + 7;
    while (*p >= '0' && *p <= '9')
      p++;
    if (p[0] == ':' && p[1] == ' ')
      m = p + 2;
  }
  lua_getfield(L, LUA_REGISTRYINDEX, XK_REG_TRACE);
  xk_trace *t = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (t && strncmp(m, "in kernel '", 11))
    return lua_pushfstring(L, "%s:%d: in kernel '%s': %s", D->path, line,
                           t->kname, m);
  return lua_pushfstring(L, "%s:%d: %s", D->path, line, m);
}

/* The message handler of every pcall: runs where the error was raised, so
 * the stack still shows the kernel-file line, even for error({}). */
static int msgh(lua_State *L) {
  xk_dsl *D = lua_touserdata(L, lua_upvalueindex(1));
  const char *m;
  if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER)
    m = lua_tostring(L, 1);
  else
    m = lua_pushfstring(L, "error object is a %s value", luaL_typename(L, 1));
  /* Lua's own words for `for i = 0, a.N do`, the common slip */
  if (strstr(m, "'for' ") &&
      (strstr(m, "must be a number") || strstr(m, "number expected")) &&
      !strstr(m, "for_range"))
    m = lua_pushfstring(L,
                        "%s: a tile bound is known only on the device; loop "
                        "on it with for_range(lo, hi, step, init, body)",
                        m);
  push_located(L, D, m, xk_lua_file_line(L, D->path));
  return 1;
}

static int panic(lua_State *L) {
  (void)L;
  abort(); /* a bug in this file: every call into Lua is protected */
}

static void count_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_getfield(L, LUA_REGISTRYINDEX, "xk.dsl");
  xk_dsl *D = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (D && ++D->ticks > MAX_MEGA_INSTRUCTIONS)
    luaL_error(L, "ran more than %d million Lua instructions: an endless loop?",
               MAX_MEGA_INSTRUCTIONS);
}

/* "path:LINE: kernel 'NAME': ..." for a bad declaration */
__attribute__((noreturn, format(printf, 4, 5))) static void
decl_fail(lua_State *L, xk_dsl *D, const kentry *e, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  lua_pushfstring(L, "%s:%d: kernel '%s': %s", D->path, e->s.line,
                  e->s.name ? e->s.name : "?", msg);
  lua_error(L);
  __builtin_unreachable();
}

/* --- kernel declarations -------------------------------------------------- */

static int id_start(char c) {
  return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int id_char(char c) {
  return id_start(c) || (c >= '0' && c <= '9');
}

static int is_ident(const char *s) {
  if (!s || !id_start(*s))
    return 0;
  while (id_char(*s))
    s++;
  return *s == 0;
}

static int is_launch_param(const char *s) {
  return !strcmp(s, "num_warps") || !strcmp(s, "num_stages");
}

static int find_const(const kentry *e, const char *name) {
  for (int i = 0; i < e->s.nconsts; i++)
    if (!strcmp(e->s.consts[i].name, name))
      return i;
  return -1;
}

/* Grid rules and tune-cache keys are integer arithmetic. */
static int is_nonint_const(const kentry *e, const char *name) {
  int c = find_const(e, name);
  return c >= 0 && e->s.consts[c].kind != XK_CONST_INT;
}

static int find_arg(const kentry *e, const char *name) {
  for (int i = 0; i < e->s.nargs; i++)
    if (!strcmp(e->s.args[i].name, name))
      return i;
  return -1;
}

static int is_int_arg(const kentry *e, const char *name) {
  int a = find_arg(e, name);
  return a >= 0 && (e->s.args[a].type.dtype == XK_I32 ||
                    e->s.args[a].type.dtype == XK_I64);
}

/* Lua tables keep no order, so ordered fields must be sequences. */
static int check_list(lua_State *L, xk_dsl *D, const kentry *e, int idx,
                      const char *field, const char *example) {
  if (!lua_istable(L, idx))
    decl_fail(L, D, e, "%s must be a list like %s (got a %s)", field, example,
              luaL_typename(L, idx));
  lua_Unsigned n = lua_rawlen(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 ||
        (lua_Unsigned)lua_tointeger(L, -1) > n)
      decl_fail(L, D, e,
                "%s must be a list like %s: a keyed table (key '%s') has no "
                "order",
                field, example,
                lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?");
  }
  if (n > 256)
    decl_fail(L, D, e, "%s has %llu entries", field, (unsigned long long)n);
  return (int)n;
}

static int check_launch_value(const char *name, lua_Integer v) {
  if (!strcmp(name, "num_warps"))
    return v >= 1 && v <= 32 && !(v & (v - 1));
  return v >= 1 && v <= 8;
}

static void check_name(lua_State *L, xk_dsl *D, const kentry *e,
                       const char *what, const char *name) {
  if (!is_ident(name))
    decl_fail(L, D, e, "%s name '%s' is not an identifier", what,
              name ? name : "(not a string)");
  if (find_arg(e, name) >= 0 || find_const(e, name) >= 0)
    decl_fail(L, D, e, "duplicate name '%s'", name);
}

/* args = { {"X", ptr(f32)}, {"N", i32} } */
static void parse_args(lua_State *L, xk_dsl *D, kentry *e, int idx) {
  static const char ex[] = "{ {\"X\", ptr(f32)}, {\"N\", i32} }";
  if (lua_isnil(L, idx))
    return;
  int n = check_list(L, D, e, idx, "args", ex);
  e->s.args = xmalloc((size_t)n * sizeof *e->s.args);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, idx, i + 1);
    if (!lua_istable(L, -1) || lua_rawlen(L, -1) != 2)
      decl_fail(L, D, e, "args entry %d must be a pair {name, dtype}, as in %s",
                i + 1, ex);
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : 0;
    const char *ts = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : 0;
    check_name(L, D, e, "arg", name);
    xk_type ty = {0};
    size_t tl = ts ? strlen(ts) : 0;
    int dt = ts ? xk_dtype_parse(ts) : -1;
    if (tl > 5 && !strncmp(ts, "ptr<", 4) && ts[tl - 1] == '>') {
      char elem[16] = {0};
      if (tl - 5 < sizeof elem)
        memcpy(elem, ts + 4, tl - 5);
      int el = xk_dtype_parse(elem);
      if (el < 0 || el == XK_PTR)
        decl_fail(L, D, e, "arg '%s': unknown dtype '%s'", name, ts);
      ty = xk_type_ptr((xk_dtype)el);
    } else if (dt == XK_I32 || dt == XK_I64 || dt == XK_F32) {
      ty = xk_type_scalar((xk_dtype)dt);
    } else if (dt >= 0) {
      decl_fail(L, D, e, "arg '%s': scalar args are i32, i64 or f32 (got %s)",
                name, ts);
    } else {
      decl_fail(L, D, e, "arg '%s': unknown dtype '%s'", name,
                ts ? ts : luaL_typename(L, -1));
    }
    e->s.args[i].name = xstrdup(name);
    e->s.args[i].type = ty;
    e->s.nargs++;
    lua_pop(L, 3);
  }
}

/* consts = { {"BLOCK", 1024}, {"ALPHA", 0.5}, {"ACT", "relu"} }: integers,
 * finite floats or strings; num_warps and num_stages set defaults */
static void parse_consts(lua_State *L, xk_dsl *D, kentry *e, int idx) {
  static const char ex[] = "{ {\"BLOCK\", 1024} }";
  if (lua_isnil(L, idx))
    return;
  int n = check_list(L, D, e, idx, "consts", ex);
  e->s.consts = xmalloc((size_t)n * sizeof *e->s.consts);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, idx, i + 1);
    if (!lua_istable(L, -1) || lua_rawlen(L, -1) != 2)
      decl_fail(L, D, e,
                "consts entry %d must be a pair {name, value}, as in %s", i + 1,
                ex);
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : 0;
    int t = lua_type(L, -1);
    int finite = t == LUA_TNUMBER && isfinite((double)lua_tonumber(L, -1));
    if (name && is_launch_param(name)) {
      if (!lua_isinteger(L, -1))
        decl_fail(L, D, e, "%s must be an integer (got %s)", name,
                  describe(L, -1).s);
      lua_Integer v = lua_tointeger(L, -1);
      if (!check_launch_value(name, v))
        decl_fail(L, D, e, "%s = %lld is out of range", name, (long long)v);
      *(!strcmp(name, "num_warps") ? &e->num_warps : &e->num_stages) = (int)v;
    } else {
      if (t != LUA_TSTRING && !finite)
        decl_fail(L, D, e,
                  "const '%s' must be an integer, a finite float or a string "
                  "(got %s)",
                  name ? name : "?", describe(L, -1).s);
      check_name(L, D, e, "const", name);
      xk_constexpr *c = &e->s.consts[e->s.nconsts++];
      *c = (xk_constexpr){.name = xstrdup(name)};
      if (t == LUA_TSTRING) {
        c->kind = XK_CONST_STR;
        c->str = xstrdup(lua_tostring(L, -1));
      } else if (lua_isinteger(L, -1)) {
        c->value = lua_tointeger(L, -1);
      } else {
        c->kind = XK_CONST_FLOAT;
        c->fvalue = (double)lua_tonumber(L, -1);
      }
    }
    lua_pop(L, 3);
  }
}

static int cmp_tune(const void *a, const void *b) {
  return strcmp(((const xk_tune_dim *)a)->name, ((const xk_tune_dim *)b)->name);
}

/* tune = { BLOCK = {256, 1024}, num_warps = {4, 8} }: keyed, so sorted */
static void parse_tune(lua_State *L, xk_dsl *D, kentry *e, int idx) {
  if (lua_isnil(L, idx))
    return;
  if (!lua_istable(L, idx))
    decl_fail(L, D, e, "tune must be a table like { BLOCK = {64, 128} }");
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    n++;
  }
  e->s.tune = xmalloc((size_t)n * sizeof *e->s.tune);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : 0;
    if (!name || (find_const(e, name) < 0 && !is_launch_param(name)))
      decl_fail(L, D, e,
                "tune names '%s', which is not a const (nor num_warps, "
                "num_stages)",
                name ? name : luaL_typename(L, -2));
    int ci = find_const(e, name);
    if (ci >= 0 && e->s.consts[ci].kind != XK_CONST_INT)
      decl_fail(L, D, e,
                "tune names '%s', a float or string const; tune lists "
                "integers only (build other values with -D)",
                name);
    xk_tune_dim *t = &e->s.tune[e->s.ntune++];
    t->name = xstrdup(name);
    int m = check_list(L, D, e, lua_gettop(L), "tune values", "{64, 128}");
    if (!m)
      decl_fail(L, D, e, "tune '%s' lists no values", name);
    t->vals = xmalloc((size_t)m * sizeof *t->vals);
    for (int i = 0; i < m; i++) {
      lua_rawgeti(L, -1, i + 1);
      if (!lua_isinteger(L, -1))
        decl_fail(L, D, e, "tune '%s' value %d must be an integer", name,
                  i + 1);
      lua_Integer v = lua_tointeger(L, -1);
      if (is_launch_param(name) && !check_launch_value(name, v))
        decl_fail(L, D, e, "tune %s = %lld is out of range", name,
                  (long long)v);
      t->vals[t->n++] = v;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  qsort(e->s.tune, (size_t)e->s.ntune, sizeof *e->s.tune, cmp_tune);
}

/* key = { "R", "L" }: consts or integer args the tune cache keys on */
static void parse_key(lua_State *L, xk_dsl *D, kentry *e, int idx) {
  if (lua_isnil(L, idx))
    return;
  int n = check_list(L, D, e, idx, "key", "{ \"N\" }");
  e->s.key = xmalloc((size_t)n * sizeof *e->s.key);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, idx, i + 1);
    const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : 0;
    if (!name || (find_const(e, name) < 0 && !is_int_arg(e, name)))
      decl_fail(L, D, e, "key '%s' is neither a const nor an integer arg",
                name ? name : luaL_typename(L, -1));
    if (is_nonint_const(e, name))
      decl_fail(L, D, e, "key '%s' is a float or string const", name);
    for (int j = 0; j < e->s.nkey; j++)
      if (!strcmp(e->s.key[j], name))
        decl_fail(L, D, e, "key '%s' is listed twice", name);
    e->s.key[e->s.nkey++] = xstrdup(name);
    lua_pop(L, 1);
  }
}

/* keys = { M = pow2(64, 4096), RK = { 32, 64, round = "up" } }: each a key
 * name with its ascending grid and bucketing rule (xk.lua's helpers) */
static void parse_keygrid(lua_State *L, xk_dsl *D, kentry *e, int idx) {
  if (lua_isnil(L, idx))
    return;
  if (!lua_istable(L, idx))
    decl_fail(L, D, e, "keys must be a table like { N = pow2(256, 4096) }");
  e->s.keygrid =
      xmalloc((size_t)(e->s.nkey ? e->s.nkey : 1) * sizeof *e->s.keygrid);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : 0;
    int in_key = 0;
    for (int j = 0; name && j < e->s.nkey; j++)
      in_key |= !strcmp(e->s.key[j], name);
    if (!in_key)
      decl_fail(L, D, e, "keys names '%s', which is not in key",
                name ? name : luaL_typename(L, -1));
  }
  for (int k = 0; k < e->s.nkey; k++) {
    const char *name = e->s.key[k];
    lua_getfield(L, idx, name);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      continue;
    }
    int t = lua_gettop(L);
    if (!lua_istable(L, t))
      decl_fail(L, D, e, "keys %s must be a list like {64, 128} (got a %s)",
                name, luaL_typename(L, t));
    lua_getfield(L, t, "round");
    const char *r = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : 0;
    int round = r                  ? xk_round_parse(r)
                : lua_isnil(L, -1) ? XK_ROUND_NEAREST
                                   : -1;
    if (round < 0)
      decl_fail(L, D, e,
                "keys %s: round must be \"nearest\", \"up\" or "
                "\"down\"",
                name);
    lua_pop(L, 1);
    lua_Unsigned n = lua_rawlen(L, t);
    if (n < 1 || n > 256)
      decl_fail(L, D, e, "keys %s lists %llu values (1 to 256)", name,
                (unsigned long long)n);
    xk_key_grid *g = &e->s.keygrid[e->s.nkeygrid++];
    g->name = xstrdup(name);
    g->round = round;
    g->vals = xmalloc((size_t)n * sizeof *g->vals);
    for (lua_Unsigned i = 0; i < n; i++) {
      lua_rawgeti(L, t, (lua_Integer)i + 1);
      if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 ||
          (g->n && lua_tointeger(L, -1) <= g->vals[g->n - 1]))
        decl_fail(L, D, e,
                  "keys %s value %llu must be a positive integer above the "
                  "one before it",
                  name, (unsigned long long)i + 1);
      g->vals[g->n++] = lua_tointeger(L, -1);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
}

/* grid = { "cdiv(N, BLOCK)", "M" }: integer arithmetic over int args and
 * consts, evaluated at launch */
static void parse_grid(lua_State *L, xk_dsl *D, kentry *e, int idx) {
  if (lua_isnil(L, idx))
    return;
  int n = check_list(L, D, e, idx, "grid", "{ \"cdiv(N, BLOCK)\" }");
  if (n > 3)
    decl_fail(L, D, e, "grid has %d axes; at most 3", n);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, idx, i + 1);
    const char *g = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : 0;
    if (!g)
      decl_fail(L, D, e, "grid axis %d must be a string expression", i);
    for (const char *p = g; *p;) {
      if (id_start(*p)) {
        char id[64] = {0};
        size_t k = 0;
        while (id_char(*p))
          if (k < sizeof id - 1)
            id[k++] = *p++;
          else
            p++;
        if (strcmp(id, "cdiv") && strcmp(id, "min") && strcmp(id, "max") &&
            find_const(e, id) < 0 && !is_int_arg(e, id))
          decl_fail(L, D, e,
                    "grid '%s' names '%s', which is neither a const nor an "
                    "integer arg",
                    g, id);
        if (is_nonint_const(e, id))
          decl_fail(L, D, e, "grid '%s' names '%s', a float or string const", g,
                    id);
      } else if (strchr("0123456789 +-*/%(),", *p)) {
        p++;
      } else {
        decl_fail(L, D, e, "grid '%s': unexpected character '%c'", g, *p);
      }
    }
    e->s.grid[i] = xstrdup(g);
    lua_pop(L, 1);
  }
}

/* Called with the body: checks the spec (upvalue 3) and registers it. */
static int l_kernel_body(lua_State *L) {
  xk_dsl *D = lua_touserdata(L, lua_upvalueindex(1));
  int state = lua_upvalueindex(2), spec = lua_upvalueindex(3);
  if (D->n == D->cap) {
    int cap = D->cap ? 2 * D->cap : 8;
    kentry *k = realloc(D->k, (size_t)cap * sizeof *k);
    if (!k)
      abort();
    memset(k + D->cap, 0, (size_t)(cap - D->cap) * sizeof *k);
    D->k = k;
    D->cap = cap;
  }
  kentry *e = &D->k[D->n];
  spec_free(&e->s); /* a registration that failed, if any */
  lua_getfield(L, state, "name");
  e->s.name = xstrdup(lua_tostring(L, -1));
  lua_getfield(L, state, "line");
  e->s.line = (int)lua_tointeger(L, -1);
  lua_pop(L, 2);
  e->num_warps = DEFAULT_WARPS;
  e->num_stages = DEFAULT_STAGES;
  if (!lua_isfunction(L, 1))
    decl_fail(L, D, e,
              "expected the body: kernel \"%s\" { ... }(function(a, c) ... "
              "end) (got a %s)",
              e->s.name, luaL_typename(L, 1));
  for (int i = 0; i < D->n; i++)
    if (!strcmp(D->k[i].s.name, e->s.name))
      decl_fail(L, D, e, "declared twice (first at line %d)", D->k[i].s.line);
  static const char *const fields[] = {"args", "consts", "tune",
                                       "key",  "grid",   "keys"};
  lua_pushnil(L);
  while (lua_next(L, spec)) {
    lua_pop(L, 1);
    int ok = 0;
    for (int i = 0; i < 6; i++)
      ok |= lua_type(L, -1) == LUA_TSTRING &&
            !strcmp(lua_tostring(L, -1), fields[i]);
    if (!ok)
      decl_fail(L, D, e,
                "unknown spec field '%s' (args, consts, tune, key, grid, "
                "keys)",
                lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?");
  }
  lua_settop(L, 1);
  for (int i = 0; i < 6; i++)
    lua_getfield(L, spec, fields[i]); /* at 2..7 */
  parse_args(L, D, e, 2);
  parse_consts(L, D, e, 3);
  parse_tune(L, D, e, 4);
  parse_key(L, D, e, 5);
  parse_grid(L, D, e, 6);
  parse_keygrid(L, D, e, 7);
  lua_getfield(L, LUA_REGISTRYINDEX, "xk.bodies");
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, D->n + 1);
  lua_pushboolean(L, 1);
  lua_setfield(L, state, "done");
  D->n++;
  return 0;
}

static int l_kernel_spec(lua_State *L) {
  xk_dsl *D = lua_touserdata(L, lua_upvalueindex(1));
  if (!lua_istable(L, 1)) {
    lua_getfield(L, lua_upvalueindex(2), "name");
    return luaL_error(L,
                      "kernel '%s': expected a spec table: kernel \"%s\" "
                      "{ args = ..., ... }(function(a, c) ... end)",
                      lua_tostring(L, -1), lua_tostring(L, -1));
  }
  lua_pushlightuserdata(L, D);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushvalue(L, 1);
  lua_pushcclosure(L, l_kernel_body, 3);
  return 1;
}

/* kernel "name" { spec }(function(a, c) ... end) */
static int l_kernel(lua_State *L) {
  xk_dsl *D = lua_touserdata(L, lua_upvalueindex(1));
  if (!D->loading)
    return luaL_error(L, "kernel: declare kernels at the top of the file, "
                         "not while tracing");
  const char *name = lua_type(L, 1) == LUA_TSTRING ? lua_tostring(L, 1) : 0;
  if (!is_ident(name))
    return luaL_error(L, "kernel: the name must be an identifier (got %s)",
                      name ? name : luaL_typename(L, 1));
  /* the state lets xk_dsl_open find declarations never given a body */
  lua_createtable(L, 0, 3);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "name");
  lua_pushinteger(L, xk_lua_file_line(L, D->path));
  lua_setfield(L, -2, "line");
  lua_getfield(L, LUA_REGISTRYINDEX, "xk.decls");
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  lua_pop(L, 1);
  lua_pushlightuserdata(L, D);
  lua_insert(L, -2);
  lua_pushcclosure(L, l_kernel_spec, 2);
  return 1;
}

/* --- opening ---------------------------------------------------------------
 */

static int open_fail(xk_dsl *D, xk_diag *d, const char *m) {
  xk_diag_set(d, "%s", m ? m : "unknown error");
  xk_dsl_close(D);
  return -1;
}

/* The whole file at path (malloc'd, *n bytes); NULL on failure, with
 * *unopened set when the file could not be opened (errno says why). */
static char *read_source(const char *path, size_t *n, int *err, int *unopened) {
  FILE *fp = fopen(path, "rb");
  if ((*unopened = !fp))
    return NULL;
  size_t cap = 1 << 16;
  char *src = malloc(cap);
  *n = 0;
  for (size_t got; src && (got = fread(src + *n, 1, cap - *n, fp)) > 0;) {
    *n += got;
    if (*n == cap) {
      char *p = cap < MAX_LUA_BYTES ? realloc(src, cap *= 2) : NULL;
      if (!p)
        free(src);
      src = p;
    }
  }
  *err = ferror(fp);
  fclose(fp);
  return src;
}

/* Loads the kernel source (text[len], or the file at path when text is
 * NULL) with its conditions guarded (cond_lint.c). */
static int load_linted(lua_State *L, const char *path, const char *text,
                       size_t len) {
  size_t n = len, ln = 0;
  int err = 0, unopened = 0;
  char *src = NULL;
  if (!text) {
    if (!(src = read_source(path, &n, &err, &unopened)) && unopened) {
      lua_pushfstring(L, "cannot open %s: %s", path, strerror(errno));
      return LUA_ERRFILE;
    }
    text = src;
  }
  int overlap = 0;
  char *lint = text && !err ? xk_cond_lint(text, n, &ln, &overlap) : NULL;
  free(src);
  if (!lint && overlap) {
    lua_pushfstring(L,
                    "%s:%d: cannot guard this Lua condition against tiles "
                    "(its parts overlap): write it more simply",
                    path, overlap);
    return LUA_ERRSYNTAX;
  }
  if (!lint) {
    lua_pushfstring(L, "cannot read %s (%s)", path,
                    err ? "read error" : "too large or out of memory");
    return LUA_ERRFILE;
  }
  const char *name = lua_pushfstring(L, "@%s", path);
  int rc = luaL_loadbufferx(L, lint, ln, name, "t");
  free(lint);
  lua_remove(L, -2);
  return rc;
}

/* text == NULL: read the file at path; else text[len] stands for it. */
static int open_source(const char *path, const char *text, size_t len,
                       xk_dsl **out, xk_diag *d) {
  *out = NULL;
  if (!path)
    return xk_diag_set(d, "xk_dsl_open: no kernel file given");
  xk_dsl *D = xmalloc(sizeof *D);
  D->path = xstrdup(path);
  if (xk_budget_init(&D->mem, XK_DSL_MAX_LUA_MIB, d)) {
    xk_dsl_close(D);
    return -1;
  }
  lua_State *L = D->L = lua_newstate(xk_budget_alloc, &D->mem);
  if (!L)
    return open_fail(D, d, "cannot create a Lua state (out of memory)");
  /* base, table, string, math: no io, os, package or debug */
  luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
  luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
  luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
  luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
  lua_settop(L, 0);
  /* load() would accept binary chunks, which can crash the VM */
  static const char *const unsafe[] = {"load", "loadfile", "dofile"};
  for (int i = 0; i < 3; i++) {
    lua_pushnil(L);
    lua_setglobal(L, unsafe[i]);
  }
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, "xk.bodies");
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, "xk.decls");
  lua_pushlightuserdata(L, D);
  lua_setfield(L, LUA_REGISTRYINDEX, "xk.dsl");
  lua_sethook(L, count_hook, LUA_MASKCOUNT, 1 << 20);
  lua_atpanic(L, panic); /* errors outside any pcall: none expected */
  lua_pushlightuserdata(L, D);
  lua_pushcclosure(L, msgh, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, XK_REG_MSGH);
  lua_pushlightuserdata(L, D);
  lua_pushcclosure(L, l_kernel, 1);
  lua_setglobal(L, "kernel");
  xk_trace_open(L);

  /* how Lua will abbreviate the path in its own messages */
  const char *src = lua_pushfstring(L, "@%s", path);
  if (luaL_loadbufferx(L, "", 0, src, "t") == LUA_OK) {
    lua_Debug ar;
    lua_getinfo(L, ">S", &ar);
    memcpy(D->short_src, ar.short_src, sizeof D->short_src);
  }
  lua_settop(L, 0);

  lua_getfield(L, LUA_REGISTRYINDEX, XK_REG_MSGH); /* at 1 */
  if (luaL_loadbufferx(L, xk_prelude_lua, strlen(xk_prelude_lua), "=xk.lua",
                       "t") ||
      lua_pcall(L, 0, 0, 1)) {
    char m[900];
    snprintf(m, sizeof m, "xk.lua (the prelude): %s", lua_tostring(L, -1));
    return open_fail(D, d, m);
  }
  D->loading = 1;
  D->ticks = 0;
  int rc = load_linted(L, path, text, len);
  if (rc == LUA_ERRFILE)
    return open_fail(D, d, lua_tostring(L, -1));
  if (rc != LUA_OK) /* syntax errors, binary chunks */
    return open_fail(D, d, push_located(L, D, lua_tostring(L, -1), 1));
  rc = lua_pcall(L, 0, 0, 1);
  if (rc == LUA_ERRMEM) /* raised without calling the message handler */
    return open_fail(D, d,
                     lua_pushfstring(L, "%s: %s (over %d MiB)", path,
                                     lua_tostring(L, -1),
                                     (int)(D->mem.cap >> 20)));
  if (rc != LUA_OK)
    return open_fail(D, d, lua_tostring(L, -1));
  D->loading = 0;
  lua_getfield(L, LUA_REGISTRYINDEX, "xk.decls");
  for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TTABLE; i++) {
    lua_getfield(L, -1, "done");
    if (!lua_toboolean(L, -1)) {
      lua_getfield(L, -2, "name");
      lua_getfield(L, -3, "line");
      char m[600];
      snprintf(m, sizeof m,
               "%s:%d: kernel '%s' was never given its spec and body: write "
               "kernel \"%s\" { ... }(function(a, c) ... end)",
               path, (int)lua_tointeger(L, -1), lua_tostring(L, -2),
               lua_tostring(L, -2));
      return open_fail(D, d, m);
    }
    lua_pop(L, 2);
  }
  lua_settop(L, 0);
  *out = D;
  return 0;
}

int xk_dsl_open(const char *path, xk_dsl **out, xk_diag *d) {
  return open_source(path, NULL, 0, out, d);
}

int xk_dsl_open_buffer(const char *name, const char *text, size_t len,
                       xk_dsl **out, xk_diag *d) {
  if (!text) {
    *out = NULL;
    return xk_diag_set(d, "xk_dsl_open_buffer: no text given");
  }
  return open_source(name, text, len, out, d);
}

void xk_dsl_close(xk_dsl *D) {
  if (!D)
    return;
  if (D->L)
    lua_close(D->L);
  for (int i = 0; i < D->cap; i++)
    spec_free(&D->k[i].s);
  free(D->k);
  free(D->path);
  free(D);
}

const char *xk_dsl_path(const xk_dsl *D) {
  return D->path;
}
int xk_dsl_nkernels(const xk_dsl *D) {
  return D->n;
}

const xk_kernel_spec *xk_dsl_kernel(const xk_dsl *D, int i) {
  return i >= 0 && i < D->n ? &D->k[i].s : NULL;
}

int xk_dsl_find(const xk_dsl *D, const char *name) {
  for (int i = 0; i < D->n; i++)
    if (!strcmp(D->k[i].s.name, name))
      return i;
  return -1;
}

/* --- tracing ----------------------------------------------------------- */

/* a.X / c.BLOCK: reading a name the kernel does not have is an error */
static int proxy_index(lua_State *L) {
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
    return 1;
  return luaL_error(L, "%s.%s: no such %s (%s)",
                    lua_tostring(L, lua_upvalueindex(2)),
                    lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?",
                    lua_tostring(L, lua_upvalueindex(3)),
                    lua_tostring(L, lua_upvalueindex(4)));
}

static int proxy_newindex(lua_State *L) {
  return luaL_error(L, "%s is read-only", lua_tostring(L, lua_upvalueindex(1)));
}

/* Wraps the table at the top in a read-only proxy. */
static void push_proxy(lua_State *L, const char *var, const char *what,
                       const char *names) {
  lua_newtable(L);          /* proxy */
  lua_createtable(L, 0, 2); /* its metatable */
  lua_pushvalue(L, -3);     /* the real table */
  lua_pushstring(L, var);
  lua_pushstring(L, what);
  lua_pushstring(L, names);
  lua_pushcclosure(L, proxy_index, 4);
  lua_setfield(L, -2, "__index");
  lua_pushstring(L, var);
  lua_pushcclosure(L, proxy_newindex, 1);
  lua_setfield(L, -2, "__newindex");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_remove(L, -2);
}

static void names_of(char *buf, size_t n, const kentry *e, int consts) {
  buf[0] = 0;
  int cnt = consts ? e->s.nconsts : e->s.nargs;
  for (int i = 0; i < cnt; i++) {
    size_t k = strlen(buf);
    snprintf(buf + k, n - k, "%s%s", i ? ", " : "",
             consts ? e->s.consts[i].name : e->s.args[i].name);
  }
  if (!cnt)
    snprintf(buf, n, "none");
}

int xk_dsl_trace(xk_dsl *D, int i, const xk_constexpr *over, int nover,
                 xk_func **out, xk_diag *d) {
  *out = NULL;
  if (!D || i < 0 || i >= D->n)
    return xk_diag_set(d, "no kernel number %d", i);
  const kentry *e = &D->k[i];
  lua_State *L = D->L;
  xk_func *f = xk_func_new(e->s.name, D->path);
  f->num_warps = e->num_warps;
  f->num_stages = e->num_stages;
  for (int a = 0; a < e->s.nargs; a++)
    xk_func_add_arg(f, e->s.args[a].name, e->s.args[a].type);
  for (int c = 0; c < e->s.nconsts; c++) {
    xk_func_add_const(f, e->s.consts[c].name, 0);
    xk_func_set_const(f, c, &e->s.consts[c]);
  }
  for (int o = 0; o < nover; o++) {
    const char *name = over[o].name ? over[o].name : "(null)";
    int c = find_const(e, name);
    if (c >= 0) {
      xk_func_set_const(f, c, &over[o]);
      continue;
    }
    if (is_launch_param(name) && check_launch_value(name, over[o].value)) {
      *(!strcmp(name, "num_warps") ? &f->num_warps : &f->num_stages) =
          (int)over[o].value;
      continue;
    }
    char names[512];
    names_of(names, sizeof names, e, 1);
    if (is_launch_param(name))
      xk_diag_set(d, "%s:%d: kernel '%s': %s = %lld is out of range", D->path,
                  e->s.line, e->s.name, name, (long long)over[o].value);
    else
      xk_diag_set(d,
                  "%s:%d: kernel '%s': unknown constexpr '%s' in the "
                  "overrides (consts: %s; or num_warps, num_stages)",
                  D->path, e->s.line, e->s.name, name, names);
    xk_func_free(f);
    return -1;
  }

  int top = lua_gettop(L);
  xk_trace t = {f, 0, ++D->serial, D->path, e->s.name, "", e->s.line};
  lua_getfield(L, LUA_REGISTRYINDEX, XK_REG_MSGH);
  int msgh_idx = lua_gettop(L);
  lua_getfield(L, LUA_REGISTRYINDEX, "xk.bodies");
  lua_rawgeti(L, -1, i + 1);
  lua_remove(L, -2);
  lua_pushlightuserdata(L, &t);
  lua_setfield(L, LUA_REGISTRYINDEX, XK_REG_TRACE);
  char names[512];
  lua_createtable(L, 0, e->s.nargs);
  for (int a = 0; a < e->s.nargs; a++) {
    xk_trace_push_tile(L, &t, f->blocks[0].args[a]);
    lua_setfield(L, -2, e->s.args[a].name);
  }
  names_of(names, sizeof names, e, 0);
  push_proxy(L, "a", "argument", names);
  lua_createtable(L, 0, f->nconsts + 2);
  for (int c = 0; c < f->nconsts; c++) {
    const xk_constexpr *k = &f->consts[c];
    if (k->kind == XK_CONST_STR)
      lua_pushstring(L, k->str);
    else if (k->kind == XK_CONST_FLOAT)
      lua_pushnumber(L, k->fvalue);
    else
      lua_pushinteger(L, k->value);
    lua_setfield(L, -2, f->consts[c].name);
  }
  lua_pushinteger(L, f->num_warps);
  lua_setfield(L, -2, "num_warps");
  lua_pushinteger(L, f->num_stages);
  lua_setfield(L, -2, "num_stages");
  names_of(names, sizeof names, e, 1);
  push_proxy(L, "c", "constexpr", names);
  D->ticks = 0;
  D->mem.ir = f;
  int rc = lua_pcall(L, 2, 0, msgh_idx);
  if (rc == LUA_ERRMEM) { /* no message handler ran: t.line is the last op's */
    char why[160];
    xk_budget_describe(&D->mem, why, sizeof why);
    xk_diag_set(d, "%s:%d: in kernel '%s': the trace %s, at or after this line",
                D->path, t.line, e->s.name, why);
  }
  D->mem.ir = NULL;
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, XK_REG_TRACE);
  if (rc != LUA_OK) {
    const char *m = lua_tostring(L, -1);
    if (rc != LUA_ERRMEM)
      xk_diag_set(d, "%s", m ? m : "kernel body failed (no message)");
    lua_settop(L, top);
    xk_func_free(f);
    return -1;
  }
  lua_settop(L, top);
  if (xk_func_verify(f, d)) {
    xk_func_free(f);
    return -1;
  }
  *out = f;
  return 0;
}
