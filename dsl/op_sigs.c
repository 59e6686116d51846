/* How many positional arguments each op takes, checked before the op runs:
 * Lua drops extra arguments silently, so `sum(x, 0, true)` (no keep_dims
 * yet) or `dot(a, b, nil, {out_dtype = f16})` would trace as if the extra
 * were not there. Options tables are checked by the op itself (their keys,
 * ops.c's opts()). An op that grows an argument or an options table raises
 * its `max` here. */
#include "dsl_priv.h"

typedef struct {
  const char *name;
  int max;
  const char *args; /* for the message */
} op_sig;

static const op_sig sigs[] = {
    {"program_id", 1, "axis"},
    {"num_programs", 1, "axis"},
    {"arange", 2, "n, or lo, hi"},
    {"full", 3, "shape, value, dtype"},
    {"zeros", 2, "shape, dtype"},
    {"cast", 2, "x, dtype"},
    {"load", 2, "ptr, {mask, other}"},
    {"store", 3, "ptr, value, {mask}"},
    {"atomic_add", 3, "ptr, value, {mask}"},
    {"barrier", 0, ""},
    {"device_print", 17, "prefix, x..."},
    {"where", 3, "cond, a, b"},
    {"dot", 4, "a, b, acc, {out_dtype, input_precision}"},
    {"broadcast", 2, "x, shape"},
    {"expand_dims", 2, "x, axis"},
    {"reshape", 2, "x, shape"},
    {"trans", 2, "x, perm"},
    {"for_range", 6, "lo, hi, step, init, body, {num_stages}"},
    {"if_", 3, "cond, then_fn, else_fn"},
    {"exit", 0, ""},
    {"static_assert", 2, "cond, msg"},
    {"sum", 4, "x, axis, keep_dims, dtype"},
    {"max", 4, "x, axis, keep_dims, dtype"},
    {"min", 4, "x, axis, keep_dims, dtype"},
    {"maximum", 2, "a, b"},
    {"minimum", 2, "a, b"},
    {"exp", 1, "x"},
    {"exp2", 1, "x"},
    {"log", 1, "x"},
    {"sqrt", 1, "x"},
    {"rsqrt", 1, "x"},
    {"sin", 1, "x"},
    {"cos", 1, "x"},
    {"abs", 1, "x"},
    {"lt", 2, "a, b"},
    {"le", 2, "a, b"},
    {"gt", 2, "a, b"},
    {"ge", 2, "a, b"},
    {"eq", 2, "a, b"},
    {"ne", 2, "a, b"},
    {"col", 1, "x"},
    {"row", 1, "x"},
    {"to", 2, "x, dtype"},
};

/* upvalues: the op, its index in sigs */
static int checked(lua_State *L) {
  const op_sig *s = &sigs[lua_tointeger(L, lua_upvalueindex(2))];
  int n = lua_gettop(L);
  if (n > s->max) {
    xk_trace *t = xk_cur(L, s->name);
    if (!s->max)
      xk_fail(L, t, "takes no arguments (got %d)", n);
    xk_fail(L, t, "takes at most %d argument%s (%s), got %d", s->max,
            s->max == 1 ? "" : "s", s->args, n);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, n, LUA_MULTRET);
  return lua_gettop(L);
}

/* Wraps field `name` of the table on top of the stack, when it is set. */
static void wrap(lua_State *L, int i) {
  if (lua_getfield(L, -1, sigs[i].name) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    return;
  }
  lua_pushinteger(L, i);
  lua_pushcclosure(L, checked, 2);
  lua_setfield(L, -2, sigs[i].name);
}

void xk_sigs_apply(lua_State *L) {
  int n = (int)(sizeof sigs / sizeof *sigs);
  lua_pushglobaltable(L);
  for (int i = 0; i < n; i++)
    wrap(L, i);
  lua_pop(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, "xk.methods");
  for (int i = 0; i < n; i++)
    wrap(L, i);
  lua_pop(L, 1);
}
