/* The kernel ops that are not operators: program ids, aranges, constants,
 * memory, math, reductions, dot, shape ops and for_range. Each checks its
 * operands and names them in its error before emitting IR, so the verifier
 * should never be the one to find a user's mistake. */
#include "dsl_priv.h"

#include <math.h>
#include <string.h>

#define MAX_CARRIED 64

static void push(lua_State *L, xk_trace *t, int v) {
  xk_trace_push_tile(L, t, v);
}

static int int_arg(lua_State *L, xk_trace *t, int idx, const char *what,
                   lua_Integer lo, lua_Integer hi, lua_Integer dflt) {
  if (lua_isnoneornil(L, idx))
    return (int)dflt;
  if (lua_type(L, idx) != LUA_TNUMBER || !lua_isinteger(L, idx))
    xk_fail(L, t, "%s must be a Lua integer (got a %s)", what,
            xk_is_tile(L, idx) ? "tile" : luaL_typename(L, idx));
  lua_Integer v = lua_tointeger(L, idx);
  if (v < lo || v > hi)
    xk_fail(L, t, "%s is %lld, outside [%lld, %lld]", what, (long long)v,
            (long long)lo, (long long)hi);
  return (int)v;
}

static int pid_op(lua_State *L, xk_opcode code, const char *name) {
  xk_trace *t = xk_cur(L, name);
  int axis = int_arg(L, t, 1, "axis", 0, 2, 0);
  push(L, t,
       xk_temit(t, code, NULL, 0, xk_type_scalar(XK_I32),
                (xk_attr){.axis = axis}));
  return 1;
}
static int l_program_id(lua_State *L) {
  return pid_op(L, XK_OP_PROGRAM_ID, "program_id");
}
static int l_num_programs(lua_State *L) {
  return pid_op(L, XK_OP_NUM_PROGRAMS, "num_programs");
}

static int l_arange(lua_State *L) {
  xk_trace *t = xk_cur(L, "arange");
  int lo = 0, hi;
  if (lua_isnoneornil(L, 1))
    xk_fail(L, t, "n must be a Lua integer: arange(n) or arange(lo, hi)");
  if (lua_isnoneornil(L, 2)) {
    hi = int_arg(L, t, 1, "n", 1, INT32_MAX, 0);
  } else {
    lo = int_arg(L, t, 1, "lo", 0, INT32_MAX, 0);
    hi = int_arg(L, t, 2, "hi", 0, INT32_MAX, 0);
  }
  int32_t n = hi - lo;
  if (n <= 0 || (n & (n - 1)))
    xk_fail(L, t, "length %d of arange(%d, %d) is not a power of two", (int)n,
            lo, hi);
  xk_type r = xk_new_type(L, t, XK_I32, 0, 1, &n);
  push(L, t,
       xk_temit(t, XK_OP_ARANGE, NULL, 0, r, (xk_attr){.lo = lo, .hi = hi}));
  return 1;
}

/* full(shape, value[, dtype]): dtype defaults to f32 for floats, i32 for
 * integers, the value's dtype for a scalar tile */
static int l_full(lua_State *L) {
  xk_trace *t = xk_cur(L, "full");
  xk_type sh = xk_shape_arg(L, t, 1, "shape");
  xk_opnd v = xk_get_opnd(L, t, 2, "value");
  int dt;
  if (!lua_isnoneornil(L, 3))
    dt = xk_dtype_arg(L, t, 3, "dtype");
  else if (v.kind == XK_K_TILE)
    dt = xk_tvt(t, v.v).dtype;
  else
    dt = v.kind == XK_K_FLT ? XK_F32 : XK_I32;
  if (v.kind == XK_K_TILE && xk_tvt(t, v.v).rank)
    xk_fail(L, t, "value must be a number or a scalar tile (got %s)",
            xk_opnd_str(t, v).s);
  if (dt == XK_PTR)
    xk_fail(L, t, "cannot fill with pointers");
  push(L, t, xk_materialize(L, t, v, dt, sh));
  return 1;
}

static int l_zeros(lua_State *L) {
  xk_trace *t = xk_cur(L, "zeros");
  xk_type sh = xk_shape_arg(L, t, 1, "shape");
  int dt = lua_isnoneornil(L, 2) ? XK_F32 : xk_dtype_arg(L, t, 2, "dtype");
  push(L, t, xk_materialize(L, t, (xk_opnd){XK_K_INT, -1, 0, 0}, dt, sh));
  return 1;
}

static int l_cast(lua_State *L) {
  xk_trace *t = xk_cur(L, "cast");
  xk_opnd v = xk_get_opnd(L, t, 1, "value");
  int dt = xk_dtype_arg(L, t, 2, "dtype");
  push(L, t, xk_materialize(L, t, v, dt, xk_opnd_type(t, v)));
  return 1;
}

/* --- memory ------------------------------------------------------------ */

/* Checks an options table and pushes the named fields, in order. */
static void opts(lua_State *L, xk_trace *t, int idx, const char *const *names,
                 int n) {
  if (!lua_isnoneornil(L, idx)) {
    if (!lua_istable(L, idx))
      xk_fail(L, t, "options must be a table like {mask = m} (got a %s)",
              luaL_typename(L, idx));
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      const char *k =
          lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
      int ok = 0;
      for (int i = 0; k && i < n; i++)
        ok |= !strcmp(k, names[i]);
      if (!ok)
        xk_fail(L, t, "unknown option '%s' (%s%s%s)",
                k ? k : luaL_typename(L, -2), names[0], n > 1 ? ", " : "",
                n > 1 ? names[1] : "");
      lua_pop(L, 1);
    }
  }
  for (int i = 0; i < n; i++)
    if (lua_isnoneornil(L, idx))
      lua_pushnil(L);
    else
      lua_getfield(L, idx, names[i]);
}

static int ptr_arg(lua_State *L, xk_trace *t, int idx) {
  if (!xk_is_tile(L, idx))
    xk_fail(L, t, "%s through a non-pointer (a %s)", t->op,
            luaL_typename(L, idx));
  int v = xk_tile_arg(L, t, idx, "pointer");
  if (xk_tvt(t, v).dtype != XK_PTR)
    xk_fail(L, t, "%s through a non-pointer (%s)", t->op,
            xk_tn(xk_tvt(t, v)).s);
  return v;
}

static int mask_arg(lua_State *L, xk_trace *t, int idx) {
  if (lua_isnil(L, idx))
    return -1;
  if (!xk_is_tile(L, idx))
    xk_fail(L, t, "mask must be an i1 tile (got a %s)", luaL_typename(L, idx));
  int m = xk_tile_arg(L, t, idx, "mask");
  if (xk_tvt(t, m).dtype != XK_I1)
    xk_fail(L, t, "mask must be an i1 tile, e.g. offs:lt(N) (got %s)",
            xk_tn(xk_tvt(t, m)).s);
  return m;
}

static int l_load(lua_State *L) {
  static const char *const names[] = {"mask", "other"};
  xk_trace *t = xk_cur(L, "load");
  lua_settop(L, 2);
  int p = ptr_arg(L, t, 1);
  opts(L, t, 2, names, 2);
  int m = mask_arg(L, t, 3);
  xk_opnd o = {XK_K_NONE, -1, 0, 0};
  if (!lua_isnil(L, 4)) {
    o = xk_get_opnd(L, t, 4, "other");
    if (m < 0)
      xk_fail(L, t, "'other' without a mask has no lanes to fill");
    if (o.kind == XK_K_TILE && xk_tvt(t, o.v).dtype == XK_PTR)
      xk_fail(L, t, "'other' cannot be a pointer (%s)", xk_opnd_str(t, o).s);
  }
  xk_type sh = xk_tvt(t, p);
  if (m >= 0)
    sh = xk_bcast_shape(L, t, sh, xk_tvt(t, m));
  if (o.kind == XK_K_TILE)
    sh = xk_bcast_shape(L, t, sh, xk_tvt(t, o.v));
  int elem = xk_tvt(t, p).elem, opnd[3], n = 0;
  opnd[n++] = xk_bcast_to(L, t, p, sh);
  if (m >= 0)
    opnd[n++] = xk_bcast_to(L, t, m, sh);
  if (o.kind != XK_K_NONE)
    opnd[n++] = xk_materialize(L, t, o, elem, sh);
  xk_type r = sh;
  r.dtype = (uint8_t)elem;
  r.elem = 0;
  push(L, t,
       xk_temit(
           t, XK_OP_LOAD, opnd, n, r,
           (xk_attr){.has_mask = m >= 0, .has_other = o.kind != XK_K_NONE}));
  return 1;
}

static int store_op(lua_State *L, xk_opcode code, const char *name) {
  static const char *const names[] = {"mask"};
  xk_trace *t = xk_cur(L, name);
  lua_settop(L, 3);
  int p = ptr_arg(L, t, 1);
  xk_opnd val = xk_get_opnd(L, t, 2, "value");
  opts(L, t, 3, names, 1);
  int m = mask_arg(L, t, 4);
  int elem = xk_tvt(t, p).elem;
  if (val.kind == XK_K_TILE && xk_tvt(t, val.v).dtype == XK_PTR)
    xk_fail(L, t, "cannot store a pointer (%s)", xk_opnd_str(t, val).s);
  xk_type sh = xk_bcast_shape(L, t, xk_tvt(t, p), xk_opnd_type(t, val));
  if (m >= 0)
    sh = xk_bcast_shape(L, t, sh, xk_tvt(t, m));
  int opnd[3], n = 0;
  opnd[n++] = xk_bcast_to(L, t, p, sh);
  opnd[n++] = xk_materialize(L, t, val, elem, sh);
  if (m >= 0)
    opnd[n++] = xk_bcast_to(L, t, m, sh);
  xk_op_new(t->f, t->block, code, opnd, n, NULL, 0, (xk_attr){0},
            (xk_loc){t->line});
  return 0;
}
static int l_store(lua_State *L) {
  return store_op(L, XK_OP_STORE, "store");
}

/* barrier(): the program's stores before it are visible to all of its
 * loads after it, e.g. a tile stored and reloaded in another layout */
static int l_barrier(lua_State *L) {
  xk_trace *t = xk_cur(L, "barrier");
  xk_op_new(t->f, t->block, XK_OP_BARRIER, NULL, 0, NULL, 0, (xk_attr){0},
            (xk_loc){t->line});
  return 0;
}

/* --- elementwise ------------------------------------------------------- */

static int l_where(lua_State *L) {
  xk_trace *t = xk_cur(L, "where");
  if (!xk_is_tile(L, 1))
    xk_fail(L, t, "condition must be an i1 tile (got a %s)",
            luaL_typename(L, 1));
  int c = xk_tile_arg(L, t, 1, "condition");
  if (xk_tvt(t, c).dtype != XK_I1)
    xk_fail(L, t, "condition must be an i1 tile (got %s)",
            xk_tn(xk_tvt(t, c)).s);
  xk_opnd a = xk_get_opnd(L, t, 2, "second argument");
  xk_opnd b = xk_get_opnd(L, t, 3, "third argument");
  int pa = a.kind == XK_K_TILE && xk_tvt(t, a.v).dtype == XK_PTR;
  int pb = b.kind == XK_K_TILE && xk_tvt(t, b.v).dtype == XK_PTR;
  int dt;
  if (pa || pb) {
    if (!pa || !pb || xk_tvt(t, a.v).elem != xk_tvt(t, b.v).elem)
      xk_fail(L, t, "arms differ (%s, %s)", xk_opnd_str(t, a).s,
              xk_opnd_str(t, b).s);
    dt = XK_PTR;
  } else {
    dt = xk_common_dtype(t, a, b);
  }
  xk_type sh = xk_bcast_shape(L, t, xk_tvt(t, c), xk_opnd_type(t, a));
  sh = xk_bcast_shape(L, t, sh, xk_opnd_type(t, b));
  int o[3] = {xk_bcast_to(L, t, c, sh), 0, 0};
  if (dt == XK_PTR) {
    o[1] = xk_bcast_to(L, t, a.v, sh);
    o[2] = xk_bcast_to(L, t, b.v, sh);
  } else {
    o[1] = xk_materialize(L, t, a, dt, sh);
    o[2] = xk_materialize(L, t, b, dt, sh);
  }
  push(L, t, xk_temit(t, XK_OP_SELECT, o, 3, xk_tvt(t, o[1]), (xk_attr){0}));
  return 1;
}

/* exp, log, ...: one C function, the opcode in an upvalue. Numbers stay
 * numbers (compile-time math); integer tiles compute in f32. */
static int l_math(lua_State *L) {
  xk_opcode code = (xk_opcode)lua_tointeger(L, lua_upvalueindex(1));
  const char *name = lua_tostring(L, lua_upvalueindex(2));
  if (lua_type(L, 1) == LUA_TNUMBER) {
    if (code == XK_OP_ABS && lua_isinteger(L, 1)) {
      lua_Integer i = lua_tointeger(L, 1);
      lua_pushinteger(L, i < 0 ? (lua_Integer)(0u - (lua_Unsigned)i) : i);
      return 1;
    }
    double x = lua_tonumber(L, 1), r = 0;
    switch (code) {
    case XK_OP_EXP:
      r = exp(x);
      break;
    case XK_OP_EXP2:
      r = exp2(x);
      break;
    case XK_OP_LOG:
      r = log(x);
      break;
    case XK_OP_SQRT:
      r = sqrt(x);
      break;
    case XK_OP_RSQRT:
      r = 1.0 / sqrt(x);
      break;
    case XK_OP_SIN:
      r = sin(x);
      break;
    case XK_OP_COS:
      r = cos(x);
      break;
    case XK_OP_LOG2:
      r = log2(x);
      break;
    case XK_OP_FLOOR:
      r = floor(x);
      break;
    case XK_OP_CEIL:
      r = ceil(x);
      break;
    default:
      r = fabs(x);
      break;
    }
    lua_pushnumber(L, r);
    return 1;
  }
  xk_trace *t = xk_cur(L, name);
  int v = xk_tile_arg(L, t, 1, "operand");
  xk_type ty = xk_tvt(t, v);
  if (ty.dtype == XK_PTR)
    xk_fail(L, t, "needs a number tile (got %s)", xk_tn(ty).s);
  if (code == XK_OP_ABS && ty.dtype == XK_I1) {
    lua_settop(L, 1);
    return 1;
  }
  if (code != XK_OP_ABS && !xk_dtype_is_float(ty.dtype))
    v = xk_cast_to(L, t, v, XK_F32);
  push(L, t, xk_temit(t, code, &v, 1, xk_tvt(t, v), (xk_attr){0}));
  return 1;
}

/* sum/max/min(x[, axis[, keep_dims[, dtype]]]) (Triton's order): reduce
 * one axis, or all of them when axis is nil; keep_dims leaves size-1 dims
 * in their place; dtype casts the input first (Triton's). f16 and bf16
 * accumulate in f32 either way and round once at the end. */
static int l_reduce(lua_State *L) {
  int red = (int)lua_tointeger(L, lua_upvalueindex(1));
  const char *name = lua_tostring(L, lua_upvalueindex(2));
  xk_trace *t = xk_cur(L, name);
  if (!xk_is_tile(L, 1))
    xk_fail(L, t, "reduces a tile (got a %s)%s", luaL_typename(L, 1),
            red == XK_RED_SUM ? "" : "; use math.max/math.min for numbers");
  if (xk_is_tile(L, 2))
    xk_fail(L, t,
            "%s(x, axis) reduces along an axis; use %s(a, b) for the "
            "elementwise %s",
            name, red == XK_RED_MAX ? "maximum" : "minimum",
            red == XK_RED_MAX ? "maximum" : "minimum");
  int v = xk_tile_arg(L, t, 1, "operand");
  xk_type ty = xk_tvt(t, v);
  if (ty.dtype == XK_PTR)
    xk_fail(L, t, "cannot reduce pointers (%s)", xk_tn(ty).s);
  if (lua_gettop(L) > 4)
    xk_fail(L, t, "takes at most 4 arguments: %s(x, axis, keep_dims, dtype)",
            name);
  if (!lua_isnoneornil(L, 3) && !lua_isboolean(L, 3))
    xk_fail(L, t, "keep_dims must be true or false (got a %s)",
            luaL_typename(L, 3));
  int keep = lua_toboolean(L, 3);
  if (!lua_isnoneornil(L, 4)) {
    int dt = xk_dtype_arg(L, t, 4, "dtype");
    if (dt == XK_PTR || dt == XK_I1)
      xk_fail(L, t, "cannot accumulate in %s", xk_dtype_name(dt));
    v = xk_cast_to(L, t, v, dt);
  }
  if (xk_tvt(t, v).dtype == XK_I1)
    v = xk_cast_to(L, t, v, XK_I32);
  int all = lua_isnoneornil(L, 2), axis = 0, rank = ty.rank;
  if (!all) {
    if (!lua_isinteger(L, 2))
      xk_fail(L, t, "axis must be an integer (got a %s)", luaL_typename(L, 2));
    lua_Integer a = lua_tointeger(L, 2);
    if (a < -(lua_Integer)ty.rank || a >= ty.rank)
      xk_fail(L, t, "reduction over a missing axis %lld (%s has %d dims)",
              (long long)a, xk_tn(ty).s, ty.rank);
    axis = (int)(a < 0 ? a + ty.rank : a);
  }
  do {
    ty = xk_tvt(t, v);
    if (!ty.rank)
      break;
    if (all)
      axis = ty.rank - 1;
    xk_type r = ty;
    r.rank--;
    for (int i = axis; i < r.rank; i++)
      r.shape[i] = ty.shape[i + 1];
    r.shape[r.rank] = 0;
    v = xk_temit(t, XK_OP_REDUCE, &v, 1, r,
                 (xk_attr){.axis = axis, .red = red});
  } while (all);
  for (int d = all ? 0 : axis; keep && d < (all ? rank : axis + 1); d++) {
    xk_type r = xk_tvt(t, v);
    int32_t sh[XK_MAX_RANK];
    for (int i = 0, j = 0; i <= r.rank; i++)
      sh[i] = i == d ? 1 : r.shape[j++];
    v = xk_temit(t, XK_OP_EXPAND_DIMS, &v, 1,
                 xk_new_type(L, t, r.dtype, 0, r.rank + 1, sh),
                 (xk_attr){.axis = d});
  }
  push(L, t, v);
  return 1;
}

/* --- dot and shape ops ------------------------------------------------- */

/* dot's options: out_dtype (f32, or f16 for f16 inputs) and
 * input_precision ("ieee", "tf32"). An f16 out_dtype accumulates in f16
 * as Triton's f16 accumulators do (DOT's XK_DOT_ACC_F16: rounded to f16
 * after every k-block of 16, mma with f16 C/D on tensor cores); the
 * accumulator flows through the IR widened to f32, each of its values an
 * f16 one. tf32 allows a less precise f32 product; f32 dots run on exact
 * FMAs on every target, which satisfies it. */
static int dot_opts(lua_State *L, xk_trace *t, int idx, int in_dt) {
  if (lua_isnoneornil(L, idx))
    return XK_F32;
  if (!lua_istable(L, idx))
    xk_fail(L, t, "options must be a table like {out_dtype = f16} (got a %s)",
            luaL_typename(L, idx));
  int out = XK_F32;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    if (!strcmp(k, "out_dtype")) {
      out = xk_dtype_arg(L, t, lua_gettop(L), "out_dtype");
      if (out != XK_F32 && !(out == XK_F16 && in_dt == XK_F16))
        xk_fail(L, t, "out_dtype must be f32, or f16 for f16 inputs (got %s)",
                xk_dtype_name(out));
    } else if (!strcmp(k, "input_precision")) {
      const char *p = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
      if (strcmp(p, "ieee") && strcmp(p, "tf32"))
        xk_fail(L, t, "input_precision must be \"ieee\" or \"tf32\"");
    } else {
      xk_fail(L, t, "unknown option '%s' (out_dtype, input_precision)",
              lua_type(L, -2) == LUA_TSTRING ? k : luaL_typename(L, -2));
    }
    lua_pop(L, 1);
  }
  return out;
}

static int l_dot(lua_State *L) {
  xk_trace *t = xk_cur(L, "dot");
  if (lua_gettop(L) > 4)
    xk_fail(L, t, "takes at most 4 arguments: dot(a, b, acc, opts)");
  int a = xk_tile_arg(L, t, 1, "a"), b = xk_tile_arg(L, t, 2, "b");
  xk_type ta = xk_tvt(t, a), tb = xk_tvt(t, b);
  if (ta.rank != 2 || tb.rank != 2)
    xk_fail(L, t, "needs 2-D tiles (%s, %s)", xk_tn(ta).s, xk_tn(tb).s);
  if (ta.shape[1] != tb.shape[0])
    xk_fail(L, t, "inner dimensions differ (%s, %s)", xk_tn(ta).s, xk_tn(tb).s);
  if (ta.dtype != tb.dtype)
    xk_fail(L, t, "input dtypes differ (%s, %s): cast one with x:to(dtype)",
            xk_tn(ta).s, xk_tn(tb).s);
  if (!xk_dtype_is_float(ta.dtype))
    xk_fail(L, t, "inputs must be f16, bf16 or f32 (%s, %s)", xk_tn(ta).s,
            xk_tn(tb).s);
  int out = dot_opts(L, t, 4, ta.dtype);
  int32_t mn[2] = {ta.shape[0], tb.shape[1]};
  xk_type r = xk_new_type(L, t, XK_F32, 0, 2, mn);
  int acc;
  if (lua_isnoneornil(L, 3)) {
    acc = xk_materialize(L, t, (xk_opnd){XK_K_INT, -1, 0, 0}, XK_F32, r);
  } else {
    acc = xk_tile_arg(L, t, 3, "acc");
    xk_type want = r;
    want.dtype = (uint8_t)out;
    if (!xk_type_eq(xk_tvt(t, acc), want))
      xk_fail(L, t, "accumulator must be %s (got %s)", xk_tn(want).s,
              xk_tn(xk_tvt(t, acc)).s);
    acc = xk_cast_to(L, t, acc, XK_F32);
  }
  int o[3] = {a, b, acc};
  int d =
      xk_temit(t, XK_OP_DOT, o, 3, r,
               (xk_attr){.i = out == XK_F16 ? XK_DOT_ACC_F16 : XK_DOT_ACC_F32});
  push(L, t, xk_cast_to(L, t, d, out));
  return 1;
}

static int l_broadcast(lua_State *L) {
  xk_trace *t = xk_cur(L, "broadcast");
  xk_opnd v = xk_get_opnd(L, t, 1, "value");
  xk_type sh = xk_shape_arg(L, t, 2, "shape");
  if (v.kind != XK_K_TILE) {
    push(L, t, xk_materialize(L, t, v, xk_opnd_type(t, v).dtype, sh));
    return 1;
  }
  xk_type ty = xk_tvt(t, v.v);
  xk_type b = xk_bcast_shape(L, t, ty, sh);
  if (!xk_type_same_shape(b, sh))
    xk_fail(L, t, "cannot broadcast %s to shape %s", xk_tn(ty).s, xk_tn(sh).s);
  push(L, t, xk_bcast_to(L, t, v.v, sh));
  return 1;
}

static int l_expand_dims(lua_State *L) {
  xk_trace *t = xk_cur(L, "expand_dims");
  int v = xk_tile_arg(L, t, 1, "x");
  xk_type ty = xk_tvt(t, v);
  if (ty.rank >= XK_MAX_RANK)
    xk_fail(L, t, "%s already has %d dims", xk_tn(ty).s, XK_MAX_RANK);
  int axis = int_arg(L, t, 2, "axis", -(ty.rank + 1), ty.rank, 0);
  if (axis < 0)
    axis += ty.rank + 1;
  int32_t sh[XK_MAX_RANK];
  for (int i = 0, j = 0; i <= ty.rank; i++)
    sh[i] = i == axis ? 1 : ty.shape[j++];
  xk_type r = xk_new_type(L, t, ty.dtype, ty.elem, ty.rank + 1, sh);
  push(L, t, xk_temit(t, XK_OP_EXPAND_DIMS, &v, 1, r, (xk_attr){.axis = axis}));
  return 1;
}

static int l_reshape(lua_State *L) {
  xk_trace *t = xk_cur(L, "reshape");
  int v = xk_tile_arg(L, t, 1, "x");
  xk_type ty = xk_tvt(t, v), sh = xk_shape_arg(L, t, 2, "shape");
  if (xk_type_numel(ty) != xk_type_numel(sh))
    xk_fail(L, t, "element counts differ (%s to shape %s)", xk_tn(ty).s,
            xk_tn(sh).s);
  sh.dtype = ty.dtype;
  sh.elem = ty.elem;
  push(L, t,
       xk_type_same_shape(ty, sh)
           ? v
           : xk_temit(t, XK_OP_RESHAPE, &v, 1, sh, (xk_attr){0}));
  return 1;
}

/* trans(x[, perm]): perm is 0-based like Triton's; default reverses dims */
static int l_trans(lua_State *L) {
  xk_trace *t = xk_cur(L, "trans");
  int v = xk_tile_arg(L, t, 1, "x");
  xk_type ty = xk_tvt(t, v), r = ty;
  if (ty.rank < 2)
    xk_fail(L, t, "needs a tile with 2 or 3 dims (got %s)", xk_tn(ty).s);
  xk_attr a = {0};
  int seen[XK_MAX_RANK] = {0};
  if (!lua_isnoneornil(L, 2) &&
      (!lua_istable(L, 2) || lua_rawlen(L, 2) != (lua_Unsigned)ty.rank))
    xk_fail(L, t, "perm must list %d axes", ty.rank);
  for (int i = 0; i < ty.rank; i++) {
    if (lua_isnoneornil(L, 2)) {
      a.perm[i] = ty.rank - 1 - i;
    } else {
      lua_rawgeti(L, 2, i + 1);
      a.perm[i] = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : -1;
      lua_pop(L, 1);
    }
    if (a.perm[i] < 0 || a.perm[i] >= ty.rank || seen[a.perm[i]]++)
      xk_fail(L, t, "perm is not a permutation of 0..%d", ty.rank - 1);
    r.shape[i] = ty.shape[a.perm[i]];
  }
  push(L, t, xk_temit(t, XK_OP_TRANS, &v, 1, r, a));
  return 1;
}

/* --- for_range ----------------------------------------------------------- */

static int bound(lua_State *L, xk_trace *t, int idx, const char *what) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    int v = int_arg(L, t, idx, what, INT32_MIN, INT32_MAX, 0);
    return xk_materialize(L, t, (xk_opnd){XK_K_INT, -1, v, 0}, XK_I32,
                          xk_type_scalar(XK_I32));
  }
  if (!xk_is_tile(L, idx))
    xk_fail(L, t, "%s must be an integer or a scalar i32 tile (got a %s)", what,
            luaL_typename(L, idx));
  int v = xk_tile_arg(L, t, idx, what);
  xk_type ty = xk_tvt(t, v);
  if (ty.rank || (ty.dtype != XK_I32 && ty.dtype != XK_I64))
    xk_fail(L, t, "%s must be an integer or a scalar i32 tile (got %s)", what,
            xk_tn(ty).s);
  return xk_cast_to(L, t, v, XK_I32);
}

/* Runs the body of FOR op `op` (argument 1) and emits its YIELD; called
 * protected so that l_for_range can restore the current block on errors. */
static int for_body(lua_State *L) {
  xk_trace *t = xk_cur(L, "for_range");
  int line = t->line, op = (int)lua_tointeger(L, 1);
  xk_func *f = t->f;
  int body = f->ops[op].body, n = f->ops[op].nres;
  int base = lua_gettop(L); /* the body function is at 2 */
  lua_pushvalue(L, 2);
  for (int i = 0; i < 1 + n; i++)
    push(L, t, f->blocks[body].args[i]);
  lua_call(L, 1 + n, LUA_MULTRET);
  int nret = lua_gettop(L) - base;
  t->op = "for_range";
  t->line = line;
  if (nret != n)
    xk_fail(L, t, "body returned %d value%s for %d carried value%s", nret,
            nret == 1 ? "" : "s", n, n == 1 ? "" : "s");
  int y[MAX_CARRIED];
  for (int i = 0; i < n; i++) {
    int idx = base + 1 + i;
    xk_type want = xk_tvt(t, f->ops[op].res[i]);
    if (xk_is_tile(L, idx)) {
      y[i] = xk_tile_arg(L, t, idx, "carried value");
      if (!xk_type_eq(xk_tvt(t, y[i]), want))
        xk_fail(L, t,
                "body returned %s for carried value %d of type %s (carried "
                "values keep their dtype and shape; convert with x:to() or "
                "broadcast())",
                xk_tn(xk_tvt(t, y[i])).s, i + 1, xk_tn(want).s);
    } else if (lua_type(L, idx) == LUA_TNUMBER && want.dtype != XK_PTR) {
      y[i] = xk_materialize(L, t, xk_get_opnd(L, t, idx, "carried value"),
                            want.dtype, want);
    } else {
      xk_fail(L, t, "body returned a %s for carried value %d of type %s",
              luaL_typename(L, idx), i + 1, xk_tn(want).s);
    }
  }
  xk_op_new(f, body, XK_OP_YIELD, y, n, NULL, 0, (xk_attr){0}, (xk_loc){line});
  return 0;
}

/* for_range(lo, hi, step, init, body[, {num_stages = n}]): a device loop.
 * init is a tile, a number, a list of them, or nil; body(i, carried...)
 * returns the next carried values, which must keep their types. Returns the
 * final values. num_stages overrides the kernel's for this loop's software
 * pipelining (Triton's tl.range(..., num_stages=)); 1 turns it off. */
static int l_for_range(lua_State *L) {
  static const char *const names[] = {"num_stages"};
  xk_trace *t = xk_cur(L, "for_range");
  int line = t->line;
  lua_settop(L, 6);
  opts(L, t, 6, names, 1);
  xk_attr attr = {0};
  if (!lua_isnil(L, 7)) {
    if (!lua_isinteger(L, 7) || lua_tointeger(L, 7) < 1 ||
        lua_tointeger(L, 7) > 16)
      xk_fail(L, t, "num_stages must be an integer in 1..16 (got %s)",
              luaL_tolstring(L, 7, NULL));
    attr.i = lua_tointeger(L, 7);
  }
  lua_settop(L, 5);
  if (!lua_isfunction(L, 5))
    xk_fail(L, t, "body must be a function(i, carried...) (got a %s)",
            luaL_typename(L, 5));
  if (lua_isinteger(L, 3) && lua_tointeger(L, 3) <= 0)
    xk_fail(L, t, "step must be positive (got %lld)",
            (long long)lua_tointeger(L, 3));
  int o[3 + MAX_CARRIED];
  o[0] = bound(L, t, 1, "lo");
  o[1] = bound(L, t, 2, "hi");
  o[2] = bound(L, t, 3, "step");
  int single = !lua_istable(L, 4) && !lua_isnil(L, 4);
  if (single) {
    lua_createtable(L, 1, 0); /* treat init as a list of one */
    lua_pushvalue(L, 4);
    lua_rawseti(L, -2, 1);
    lua_replace(L, 4);
  } else if (lua_isnil(L, 4)) {
    lua_newtable(L);
    lua_replace(L, 4);
  }
  lua_Unsigned len = lua_rawlen(L, 4);
  if (len > MAX_CARRIED)
    xk_fail(L, t, "at most %d carried values (got %llu)", MAX_CARRIED,
            (unsigned long long)len);
  int n = (int)len;
  xk_type ty[MAX_CARRIED];
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, 4, i + 1);
    xk_opnd v = xk_get_opnd(L, t, lua_gettop(L), "carried init value");
    lua_pop(L, 1);
    xk_type vt = xk_opnd_type(t, v);
    if (vt.dtype == XK_PTR)
      xk_fail(L, t,
              "pointers cannot be carried (%s): carry the integer offset, or "
              "a block pointer (make_block_ptr) moved with advance",
              xk_tn(vt).s);
    o[3 + i] = xk_materialize(L, t, v, vt.dtype, vt);
    ty[i] = xk_tvt(t, o[3 + i]);
  }
  xk_func *f = t->f;
  int op =
      xk_op_new(f, t->block, XK_OP_FOR, o, 3 + n, ty, n, attr, (xk_loc){line});
  int body = xk_block_new(f, op);
  f->ops[op].body = body;
  xk_block_add_arg(f, body, xk_type_scalar(XK_I32));
  for (int i = 0; i < n; i++)
    xk_block_add_arg(f, body, ty[i]);
  int outer = t->block;
  t->block = body;
  lua_getfield(L, LUA_REGISTRYINDEX, XK_REG_MSGH);
  int msgh = lua_gettop(L);
  lua_pushcfunction(L, for_body);
  lua_pushinteger(L, op);
  lua_pushvalue(L, 5);
  int rc = lua_pcall(L, 2, 0, msgh);
  t->block = outer; /* also on errors: the kernel may catch them */
  if (rc != LUA_OK) {
    /* every later op is in the unfinished body: drop them with the loop */
    for (int i = op; i < f->nops; i++)
      f->ops[i].dead = 1;
    return lua_error(L);
  }
  lua_settop(L, msgh - 1);
  for (int i = 0; i < n; i++)
    push(L, t, f->ops[op].res[i]);
  return single ? 1 : n;
}

void xk_ops_open(lua_State *L) {
  static const luaL_Reg ops[] = {{"program_id", l_program_id},
                                 {"num_programs", l_num_programs},
                                 {"arange", l_arange},
                                 {"full", l_full},
                                 {"zeros", l_zeros},
                                 {"cast", l_cast},
                                 {"load", l_load},
                                 {"store", l_store},
                                 {"barrier", l_barrier},
                                 {"where", l_where},
                                 {"dot", l_dot},
                                 {"broadcast", l_broadcast},
                                 {"expand_dims", l_expand_dims},
                                 {"reshape", l_reshape},
                                 {"trans", l_trans},
                                 {"for_range", l_for_range},
                                 {NULL, NULL}};
  static const struct {
    const char *name;
    xk_opcode code;
  } math[] = {
      {"exp", XK_OP_EXP},     {"exp2", XK_OP_EXP2},   {"log", XK_OP_LOG},
      {"sqrt", XK_OP_SQRT},   {"rsqrt", XK_OP_RSQRT}, {"sin", XK_OP_SIN},
      {"cos", XK_OP_COS},     {"abs", XK_OP_ABS},     {"log2", XK_OP_LOG2},
      {"floor", XK_OP_FLOOR}, {"ceil", XK_OP_CEIL}};
  static const struct {
    const char *name;
    int red;
  } reds[] = {{"sum", XK_RED_SUM}, {"max", XK_RED_MAX}, {"min", XK_RED_MIN}};
  lua_pushglobaltable(L);
  luaL_setfuncs(L, ops, 0);
  lua_getfield(L, LUA_REGISTRYINDEX, "xk.methods");
  for (size_t i = 0; i < sizeof math / sizeof *math; i++) {
    lua_pushinteger(L, math[i].code);
    lua_pushstring(L, math[i].name);
    lua_pushcclosure(L, l_math, 2);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, math[i].name); /* x:exp() */
    lua_setfield(L, -3, math[i].name); /* exp(x) */
  }
  for (size_t i = 0; i < sizeof reds / sizeof *reds; i++) {
    lua_pushinteger(L, reds[i].red);
    lua_pushstring(L, reds[i].name);
    lua_pushcclosure(L, l_reduce, 2);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, reds[i].name);
    lua_setfield(L, -3, reds[i].name);
  }
  lua_pop(L, 2);
  xk_ops_scan_open(L);
  xk_ops_math_open(L);
  xk_ops_atomic_open(L);
  xk_ops_print_open(L);
}
