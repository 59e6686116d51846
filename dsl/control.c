/* Device control flow: if_(cond, then_fn[, else_fn]) and exit().
 *
 * The condition is an i1 scalar tile. A scalar is computed by every thread
 * of a program from the same inputs (arguments, program ids, constants,
 * loop indices, loaded scalars, full reductions, which the GPU lowerings
 * hand to every thread), so the branch is uniform across the program: a
 * barrier or an exchange through shared memory inside it is reached by
 * all threads or by none. Per-element choices are where(mask, a, b). */
#include "dsl_priv.h"

#define MAX_RESULTS 64

/* Runs a branch function at stack index fn with ops going to block b;
 * leaves its results on the stack and returns their count. On an error
 * the unfinished IF (op id `op` and everything after it) is dropped. */
static int run_branch(lua_State *L, xk_trace *t, int fn, int b, int op,
                      int msgh) {
  int outer = t->block, line = t->line, top = lua_gettop(L);
  t->block = b;
  lua_pushvalue(L, fn);
  int rc = lua_pcall(L, 0, LUA_MULTRET, msgh);
  t->block = outer;
  t->op = "if_";
  t->line = line;
  if (rc != LUA_OK) {
    for (int i = op; i < t->f->nops; i++)
      t->f->ops[i].dead = 1;
    lua_error(L);
  }
  int n = lua_gettop(L) - top;
  if (n > MAX_RESULTS)
    xk_fail(L, t, "a branch returned %d values; at most %d", n, MAX_RESULTS);
  return n;
}

/* The type both branches' i-th values take: tiles keep theirs (and must
 * agree), numbers adapt to the other branch's tile. */
static xk_type result_type(lua_State *L, xk_trace *t, int i, xk_opnd a,
                           xk_opnd b) {
  if (a.kind == XK_K_TILE && b.kind == XK_K_TILE) {
    xk_type ta = xk_tvt(t, a.v), tb = xk_tvt(t, b.v);
    if (!xk_type_eq(ta, tb))
      xk_fail(L, t,
              "the branches return %s and %s for value %d (convert with "
              "x:to() or broadcast())",
              xk_tn(ta).s, xk_tn(tb).s, i + 1);
    return ta;
  }
  xk_opnd tile = a.kind == XK_K_TILE ? a : b;
  if (tile.kind == XK_K_TILE) {
    xk_type ty = xk_tvt(t, tile.v);
    if (ty.dtype == XK_PTR)
      xk_fail(L, t,
              "value %d is a pointer in one branch and a number in the "
              "other",
              i + 1);
    return ty;
  }
  return xk_type_scalar(xk_common_dtype(t, a, b));
}

/* Emits block b's yield of values o as types ty. */
static void yield(lua_State *L, xk_trace *t, int b, const xk_opnd *o,
                  const xk_type *ty, int n) {
  int outer = t->block, y[MAX_RESULTS];
  t->block = b;
  for (int i = 0; i < n; i++)
    y[i] = xk_materialize(L, t, o[i], ty[i].dtype, ty[i]);
  xk_op_new(t->f, b, XK_OP_YIELD, y, n, NULL, 0, (xk_attr){0},
            (xk_loc){t->line});
  t->block = outer;
}

static void branch_values(lua_State *L, xk_trace *t, int b, int base, int n,
                          xk_opnd *o) {
  int outer = t->block;
  t->block = b;
  for (int i = 0; i < n; i++)
    o[i] = xk_get_opnd(L, t, base + 1 + i, "branch value");
  t->block = outer;
}

static int l_if(lua_State *L) {
  xk_trace *t = xk_cur(L, "if_");
  lua_settop(L, 3);
  if (lua_isboolean(L, 1))
    xk_fail(L, t,
            "the condition is a Lua boolean, known while tracing: use a Lua "
            "'if' to choose code at trace time");
  if (!xk_is_tile(L, 1))
    xk_fail(L, t, "the condition must be an i1 scalar tile (got a %s)",
            luaL_typename(L, 1));
  int c = xk_tile_arg(L, t, 1, "condition");
  xk_type ct = xk_tvt(t, c);
  if (ct.dtype != XK_I1 || ct.rank)
    xk_fail(L, t,
            "the condition must be an i1 scalar such as pid:lt(n) (got %s); "
            "choose per element with where(mask, a, b)",
            xk_tn(ct).s);
  if (!lua_isfunction(L, 2) || !(lua_isnil(L, 3) || lua_isfunction(L, 3)))
    xk_fail(L, t, "takes (cond, then_fn[, else_fn]) (got %s, %s)",
            luaL_typename(L, 2), luaL_typename(L, 3));
  xk_func *f = t->f;
  int op = xk_op_new(f, t->block, XK_OP_IF, &c, 1, NULL, 0, (xk_attr){0},
                     (xk_loc){t->line});
  int tb = xk_block_new(f, op), eb = xk_block_new(f, op);
  f->ops[op].body = tb;
  f->ops[op].orelse = eb;
  lua_getfield(L, LUA_REGISTRYINDEX, XK_REG_MSGH);
  int msgh = lua_gettop(L);
  int nt = run_branch(L, t, 2, tb, op, msgh);
  int ne = 0;
  if (!lua_isnil(L, 3))
    ne = run_branch(L, t, 3, eb, op, msgh);
  if (nt != ne)
    xk_fail(L, t, "the then branch returns %d value%s, the else branch %d%s",
            nt, nt == 1 ? "" : "s", ne,
            lua_isnil(L, 3) ? " (there is none: give one)" : "");
  xk_opnd ot[MAX_RESULTS] = {{0}}, oe[MAX_RESULTS] = {{0}};
  xk_type ty[MAX_RESULTS] = {{0}};
  branch_values(L, t, tb, msgh, nt, ot);
  branch_values(L, t, eb, msgh + nt, ne, oe);
  for (int i = 0; i < nt; i++)
    ty[i] = result_type(L, t, i, ot[i], oe[i]);
  yield(L, t, tb, ot, ty, nt);
  yield(L, t, eb, oe, ty, ne);
  lua_settop(L, msgh - 1);
  for (int i = 0; i < nt; i++)
    xk_trace_push_tile(L, t, xk_op_add_result(f, op, ty[i]));
  return nt;
}

/* exit(): ends the program here, like an early `return` in Triton. Not in a
 * for_range body (Triton refuses a return in a loop too): a loop that
 * stops early is a for_range over fewer iterations. */
static int l_exit(lua_State *L) {
  xk_trace *t = xk_cur(L, "exit");
  for (int b = t->block; t->f->blocks[b].parent_op >= 0;) {
    const xk_op *p = &t->f->ops[t->f->blocks[b].parent_op];
    if (p->code == XK_OP_FOR)
      xk_fail(L, t,
              "cannot end the program inside a for_range body; bound the "
              "loop instead");
    b = p->block;
  }
  xk_op_new(t->f, t->block, XK_OP_EXIT, NULL, 0, NULL, 0, (xk_attr){0},
            (xk_loc){t->line});
  return 0;
}

/* static_assert(cond[, msg]): fails the trace unless cond, a Lua value
 * known while tracing (constexprs, shapes, dtypes), holds. */
static int l_static_assert(lua_State *L) {
  xk_trace *t = xk_cur(L, "static_assert");
  if (xk_is_tile(L, 1))
    xk_fail(L, t,
            "the condition is a tile, whose value exists only on the device: "
            "static_assert checks trace-time values (c.NAME, x.shape, "
            "x.dtype)");
  if (!lua_isnoneornil(L, 2) && !lua_isstring(L, 2))
    xk_fail(L, t, "the message must be a string (got a %s)",
            luaL_typename(L, 2));
  if (!lua_toboolean(L, 1))
    xk_fail(L, t, "failed%s%s", lua_isstring(L, 2) ? ": " : "",
            lua_isstring(L, 2) ? lua_tostring(L, 2) : "");
  return 0;
}

/* Raises the error for a tile met by a Lua condition (see cond_lint.c). */
__attribute__((noreturn)) static void
lua_cond_on_tile(lua_State *L, const char *op, int idx, const char *why) {
  xk_trace *t = xk_cur(L, op);
  xk_tile_arg(L, t, idx, "operand"); /* a tile of another trace: say so */
  xk_fail(L, t,
          "%s; a tile's value exists only on the device: branch with "
          "if_(cond, then_fn, else_fn) or when(cond, fn) on a scalar, "
          "choose per element with where(mask, a, b)",
          why);
}

/* __xk_truth(keyword, v): v, unless it is a tile */
static int l_truth(lua_State *L) {
  if (xk_is_tile(L, 2))
    lua_cond_on_tile(L, lua_tostring(L, 1), 2,
                     "the condition is a tile, which Lua always counts as "
                     "true");
  lua_settop(L, 2);
  return 1;
}

/* __xk_eq(l, r, negate): l == r (or ~=), unless a side is a tile */
static int l_eq(lua_State *L) {
  if (xk_is_tile(L, 1) || xk_is_tile(L, 2))
    lua_cond_on_tile(
        L, lua_toboolean(L, 3) ? "~=" : "==", xk_is_tile(L, 1) ? 1 : 2,
        "Lua compares a tile with == / ~= by identity (never "
        "calling __eq for a number), so the condition is fixed "
        "while tracing: use x:eq(y) / x:ne(y)");
  lua_pushboolean(L, lua_compare(L, 1, 2, LUA_OPEQ) != lua_toboolean(L, 3));
  return 1;
}

void xk_control_open(lua_State *L) {
  static const luaL_Reg ops[] = {{"if_", l_if},
                                 {"exit", l_exit},
                                 {"static_assert", l_static_assert},
                                 {"__xk_truth", l_truth},
                                 {"__xk_eq", l_eq},
                                 {NULL, NULL}};
  lua_pushglobaltable(L);
  luaL_setfuncs(L, ops, 0);
  lua_pop(L, 1);
}
