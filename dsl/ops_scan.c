/* Ops along one axis built from tile ops at trace time: argmax/argmin,
 * the scans (cumsum, cumprod, associative_scan with a combine function
 * written in Lua) and sort/topk. Two IR exchanges (SHIFT, XORPERM) are all
 * the targets need; the rest is elementwise work and reductions they
 * already lower, so every op works on host, nvptx and sim alike.
 *
 * Orders are total and deterministic: equal keys keep the smaller index
 * first (Triton's tie_break_left, a stable sort), and NaN counts as larger
 * than every number (NumPy's and PyTorch's rule; Triton's own combine
 * makes the answer depend on its reduction tree). */
#include "dsl_priv.h"

#include <math.h>

#define MAX_SCANNED 16 /* tiles of one associative_scan */

static int emit(xk_trace *t, xk_opcode code, const int *o, int n, xk_type r,
                xk_attr a) {
  return xk_temit(t, code, o, n, r, a);
}

static int bin(xk_trace *t, xk_opcode code, int a, int b) {
  int o[2] = {a, b};
  return emit(t, code, o, 2, xk_tvt(t, a), (xk_attr){0});
}

static int cmp(xk_trace *t, int pred, int a, int b) {
  int o[2] = {a, b};
  xk_type r = xk_tvt(t, a);
  r.dtype = XK_I1;
  r.elem = 0;
  return emit(t, XK_OP_CMP, o, 2, r, (xk_attr){.pred = pred});
}

static int sel(xk_trace *t, int c, int a, int b) {
  int o[3] = {c, a, b};
  return emit(t, XK_OP_SELECT, o, 3, xk_tvt(t, a), (xk_attr){0});
}

static int int_splat(lua_State *L, xk_trace *t, int64_t v, int dt, xk_type sh) {
  return xk_materialize(L, t, (xk_opnd){XK_K_INT, -1, (lua_Integer)v, 0}, dt,
                        sh);
}

/* The i32 tile of ty's shape holding each element's coordinate along axis. */
static int axis_pos(lua_State *L, xk_trace *t, xk_type ty, int axis) {
  int32_t n = ty.shape[axis], sh[XK_MAX_RANK];
  int v = emit(t, XK_OP_ARANGE, NULL, 0, xk_new_type(L, t, XK_I32, 0, 1, &n),
               (xk_attr){.lo = 0, .hi = n});
  for (int d = 0; d < ty.rank; d++)
    sh[d] = d == axis ? n : 1;
  if (ty.rank > 1)
    v = emit(t, XK_OP_RESHAPE, &v, 1, xk_new_type(L, t, XK_I32, 0, ty.rank, sh),
             (xk_attr){0});
  xk_type full = ty;
  full.dtype = XK_I32;
  full.elem = 0;
  return xk_bcast_to(L, t, v, full);
}

static int axis_arg(lua_State *L, xk_trace *t, int idx, xk_type ty, int dflt) {
  if (lua_isnoneornil(L, idx))
    return dflt;
  if (!lua_isinteger(L, idx))
    xk_fail(L, t, "axis must be a Lua integer (got a %s)",
            xk_is_tile(L, idx) ? "tile" : luaL_typename(L, idx));
  lua_Integer a = lua_tointeger(L, idx);
  if (a < -(lua_Integer)ty.rank || a >= ty.rank)
    xk_fail(L, t, "axis %lld is out of range for %s (%d dims)", (long long)a,
            xk_tn(ty).s, ty.rank);
  return (int)(a < 0 ? a + ty.rank : a);
}

static int bool_arg(lua_State *L, xk_trace *t, int idx, const char *what) {
  if (lua_isnoneornil(L, idx))
    return 0;
  if (!lua_isboolean(L, idx))
    xk_fail(L, t, "%s must be true or false (got a %s)", what,
            xk_is_tile(L, idx) ? "tile" : luaL_typename(L, idx));
  return lua_toboolean(L, idx);
}

static void no_more_args(lua_State *L, xk_trace *t, int max) {
  for (int i = max + 1; i <= lua_gettop(L); i++)
    if (!lua_isnil(L, i))
      xk_fail(L, t, "takes at most %d arguments (got %d)", max, lua_gettop(L));
}

/* The operand: a tile of numbers (not pointers; i1 as i32) with rank >= 1. */
static int keyed_tile(lua_State *L, xk_trace *t, int idx) {
  if (!xk_is_tile(L, idx))
    xk_fail(L, t, "needs a tile (got a %s)", luaL_typename(L, idx));
  int v = xk_tile_arg(L, t, idx, "operand");
  xk_type ty = xk_tvt(t, v);
  if (ty.dtype == XK_PTR || !ty.rank)
    xk_fail(L, t, "needs a tile of numbers with at least one dim (got %s)",
            xk_tn(ty).s);
  return ty.dtype == XK_I1 ? xk_cast_to(L, t, v, XK_I32) : v;
}

static int reduce(xk_trace *t, int v, int axis, int red) {
  xk_type ty = xk_tvt(t, v), r = ty;
  r.rank--;
  for (int i = axis; i < r.rank; i++)
    r.shape[i] = ty.shape[i + 1];
  r.shape[r.rank] = 0;
  return emit(t, XK_OP_REDUCE, &v, 1, r, (xk_attr){.axis = axis, .red = red});
}

static int expand(lua_State *L, xk_trace *t, int v, int axis) {
  xk_type ty = xk_tvt(t, v);
  int32_t sh[XK_MAX_RANK];
  for (int i = 0, j = 0; i <= ty.rank; i++)
    sh[i] = i == axis ? 1 : ty.shape[j++];
  xk_type r = xk_new_type(L, t, ty.dtype, ty.elem, ty.rank + 1, sh);
  return emit(t, XK_OP_EXPAND_DIMS, &v, 1, r, (xk_attr){.axis = axis});
}

/* ---- argmax / argmin --------------------------------------------------- */

/* argmax(x, axis[, keep_dims]): the i32 index of the largest element along
 * axis; the smallest such index among equal maxima, the first NaN when
 * there is one (argmin likewise). */
static int l_argext(lua_State *L) {
  int red = (int)lua_tointeger(L, lua_upvalueindex(1));
  xk_trace *t = xk_cur(L, red == XK_RED_MAX ? "argmax" : "argmin");
  no_more_args(L, t, 3);
  int x = keyed_tile(L, t, 1);
  xk_type ty = xk_tvt(t, x);
  if (lua_isnoneornil(L, 2))
    xk_fail(L, t, "needs an axis: %s(x, axis)", t->op);
  int axis = axis_arg(L, t, 2, ty, 0), keep = bool_arg(L, t, 3, "keep_dims");
  int ext = xk_bcast_to(L, t, expand(L, t, reduce(t, x, axis, red), axis), ty);
  int cand = cmp(t, XK_EQ, x, ext);
  if (xk_dtype_is_float(ty.dtype)) {
    int nan = cmp(t, XK_NE, x, x);
    int any = reduce(t, xk_cast_to(L, t, nan, XK_I32), axis, XK_RED_MAX);
    any = xk_bcast_to(L, t, expand(L, t, any, axis), xk_tvt(t, nan));
    any = cmp(t, XK_NE, any, int_splat(L, t, 0, XK_I32, xk_tvt(t, any)));
    cand = sel(t, any, nan, cand);
  }
  int pos = axis_pos(L, t, ty, axis);
  int none = int_splat(L, t, ty.shape[axis], XK_I32, xk_tvt(t, pos));
  int r = reduce(t, sel(t, cand, pos, none), axis, XK_RED_MIN);
  xk_trace_push_tile(L, t, keep ? expand(L, t, r, axis) : r);
  return 1;
}

/* ---- scans --------------------------------------------------------------- */

/* Calls the combine function (stack index fn) on (a..., b...) and checks
 * that it returns n values of the scanned tiles' types. */
static void combine(lua_State *L, xk_trace *t, int fn, const int *a,
                    const int *b, int n, int *out) {
  const char *op = t->op;
  int line = t->line, base = lua_gettop(L);
  lua_pushvalue(L, fn);
  for (int i = 0; i < n; i++)
    xk_trace_push_tile(L, t, a[i]);
  for (int i = 0; i < n; i++)
    xk_trace_push_tile(L, t, b[i]);
  lua_call(L, 2 * n, LUA_MULTRET);
  t->op = op;
  t->line = line;
  int nret = lua_gettop(L) - base;
  if (nret != n)
    xk_fail(L, t, "combine function returned %d value%s for %d scanned tile%s",
            nret, nret == 1 ? "" : "s", n, n == 1 ? "" : "s");
  for (int i = 0; i < n; i++) {
    xk_type want = xk_tvt(t, a[i]);
    xk_opnd o = xk_get_opnd(L, t, base + 1 + i, "combined value");
    xk_type got = xk_opnd_type(t, o);
    if (o.kind == XK_K_TILE && !xk_type_eq(got, want))
      xk_fail(L, t,
              "combine function returned %s for scanned tile %d of type %s "
              "(it must be elementwise and keep the dtype)",
              xk_tn(got).s, i + 1, xk_tn(want).s);
    out[i] = xk_materialize(L, t, o, want.dtype, want);
  }
  lua_settop(L, base);
}

/* Hillis-Steele: after the step of distance d every element holds the
 * combination of the 2d elements ending at it (starting at it, reversed);
 * combine's left operand is always the earlier part of the sequence. */
static void scan(lua_State *L, xk_trace *t, int *x, int n, int axis,
                 int reverse, int fn, xk_opcode code) {
  xk_type ty = xk_tvt(t, x[0]);
  int len = ty.shape[axis];
  int pos = len > 1 ? axis_pos(L, t, ty, axis) : -1;
  for (int d = 1; d < len; d *= 2) {
    int prev[MAX_SCANNED], c[MAX_SCANNED];
    for (int i = 0; i < n; i++)
      prev[i] = emit(t, XK_OP_SHIFT, &x[i], 1, xk_tvt(t, x[i]),
                     (xk_attr){.axis = axis, .i = reverse ? -d : d});
    if (fn)
      combine(L, t, fn, prev, x, n, c);
    else
      c[0] = bin(t, code, prev[0], x[0]);
    int in = reverse ? cmp(t, XK_LT, pos,
                           int_splat(L, t, len - d, XK_I32, xk_tvt(t, pos)))
                     : cmp(t, XK_GE, pos,
                           int_splat(L, t, d, XK_I32, xk_tvt(t, pos)));
    for (int i = 0; i < n; i++)
      x[i] = sel(t, in, c[i], x[i]);
  }
}

/* cumsum/cumprod(x[, axis[, reverse]]): axis defaults to 0 as in Triton;
 * i1 scans as i32. */
static int l_cumulative(lua_State *L) {
  xk_opcode code = (xk_opcode)lua_tointeger(L, lua_upvalueindex(1));
  xk_trace *t = xk_cur(L, code == XK_OP_ADD ? "cumsum" : "cumprod");
  no_more_args(L, t, 3);
  int x = keyed_tile(L, t, 1);
  int axis = axis_arg(L, t, 2, xk_tvt(t, x), 0);
  scan(L, t, &x, 1, axis, bool_arg(L, t, 3, "reverse"), 0, code);
  xk_trace_push_tile(L, t, x);
  return 1;
}

/* associative_scan(tiles, axis, combine[, reverse]): tiles is a tile or a
 * list of tiles of one shape; combine(a..., b...) returns the combination
 * of a (earlier) and b (later), elementwise, as Triton's combine_fn. */
static int l_associative_scan(lua_State *L) {
  xk_trace *t = xk_cur(L, "associative_scan");
  no_more_args(L, t, 4);
  if (!lua_isfunction(L, 3))
    xk_fail(L, t, "combine must be a function(a..., b...) (got a %s)",
            luaL_typename(L, 3));
  int x[MAX_SCANNED], n = 1, single = !lua_istable(L, 1);
  if (single) {
    x[0] = keyed_tile(L, t, 1);
  } else {
    lua_Unsigned len = lua_rawlen(L, 1);
    if (len < 1 || len > MAX_SCANNED)
      xk_fail(L, t, "scans 1 to %d tiles (got %llu)", MAX_SCANNED,
              (unsigned long long)len);
    n = (int)len;
    for (int i = 0; i < n; i++) {
      lua_rawgeti(L, 1, i + 1);
      x[i] = keyed_tile(L, t, lua_gettop(L));
      lua_pop(L, 1);
      if (!xk_type_same_shape(xk_tvt(t, x[i]), xk_tvt(t, x[0])))
        xk_fail(L, t, "scanned tiles differ in shape (%s, %s)",
                xk_tn(xk_tvt(t, x[0])).s, xk_tn(xk_tvt(t, x[i])).s);
    }
  }
  if (lua_isnoneornil(L, 2))
    xk_fail(L, t, "needs an axis: associative_scan(x, axis, combine)");
  int axis = axis_arg(L, t, 2, xk_tvt(t, x[0]), 0);
  scan(L, t, x, n, axis, bool_arg(L, t, 4, "reverse"), 3, XK_OP_ADD);
  for (int i = 0; i < n; i++)
    xk_trace_push_tile(L, t, x[i]);
  return n;
}

/* ---- sort / topk --------------------------------------------------------- */

/* 1 where (a, ia) comes before (b, ib): the larger key first when
 * descending, else the smaller; NaN is the largest key; equal keys by
 * index. */
static int before(lua_State *L, xk_trace *t, int desc, int a, int ia, int b,
                  int ib) {
  int first = cmp(t, desc ? XK_GT : XK_LT, a, b);
  int tie = cmp(t, XK_EQ, a, b);
  if (xk_dtype_is_float(xk_tvt(t, a).dtype)) {
    int na = cmp(t, XK_NE, a, a), nb = cmp(t, XK_NE, b, b);
    xk_type bt = xk_tvt(t, na);
    int one = int_splat(L, t, 1, XK_I1, bt);
    /* desc: a NaN before a number; asc: a number before a NaN */
    int nan_first = bin(t, XK_OP_AND, desc ? na : nb,
                        bin(t, XK_OP_XOR, desc ? nb : na, one));
    first = bin(t, XK_OP_OR, first, nan_first);
    tie = bin(t, XK_OP_OR, tie, bin(t, XK_OP_AND, na, nb));
  }
  return bin(t, XK_OP_OR, first, bin(t, XK_OP_AND, tie, cmp(t, XK_LT, ia, ib)));
}

/* Bitonic sorting network over (key, index) pairs along axis. */
static void bitonic(lua_State *L, xk_trace *t, int *key, int *idx, int axis,
                    int desc) {
  xk_type ty = xk_tvt(t, *key);
  int n = ty.shape[axis], pos = axis_pos(L, t, ty, axis);
  xk_type it = xk_tvt(t, pos);
  int zero = int_splat(L, t, 0, XK_I32, it);
  *idx = pos;
  for (int k = 2; k <= n; k *= 2)
    for (int j = k / 2; j >= 1; j /= 2) {
      xk_attr a = {.axis = axis, .i = j};
      int pk = emit(t, XK_OP_XORPERM, key, 1, ty, a);
      int pi = emit(t, XK_OP_XORPERM, idx, 1, it, a);
      /* the lower element of a pair keeps the first of the two in an
       * ascending run (i & k == 0), the second in a descending one */
      int lower =
          cmp(t, XK_EQ, bin(t, XK_OP_AND, pos, int_splat(L, t, j, XK_I32, it)),
              zero);
      int run =
          cmp(t, XK_EQ, bin(t, XK_OP_AND, pos, int_splat(L, t, k, XK_I32, it)),
              zero);
      int keep_first = cmp(t, XK_EQ, lower, run);
      int self_first = before(L, t, desc, *key, *idx, pk, pi);
      int keep = cmp(t, XK_EQ, keep_first, self_first);
      *key = sel(t, keep, *key, pk);
      *idx = sel(t, keep, *idx, pi);
    }
}

/* A SORT op whose body is the network: lowerings with a native sort
 * (the host's loops, whose compile time does not grow with the axis) skip
 * the body, the others lower it as they would these tile ops anywhere. */
static void sort_op(lua_State *L, xk_trace *t, int *key, int *idx, int axis,
                    int desc) {
  xk_func *f = t->f;
  int x = *key, outer = t->block;
  xk_type rt[2] = {xk_tvt(t, x), xk_tvt(t, x)};
  rt[1].dtype = XK_I32;
  rt[1].elem = 0;
  int op =
      xk_op_new(f, outer, XK_OP_SORT, &x, 1, rt, 2,
                (xk_attr){.axis = axis, .i = desc != 0}, (xk_loc){t->line});
  int body = xk_block_new(f, op);
  f->ops[op].body = body;
  t->block = body;
  bitonic(L, t, key, idx, axis, desc);
  int y[2] = {*key, *idx};
  xk_op_new(f, body, XK_OP_YIELD, y, 2, NULL, 0, (xk_attr){0},
            (xk_loc){t->line});
  t->block = outer;
  *key = f->ops[op].res[0];
  *idx = f->ops[op].res[1];
}

static int sort_dtype_ok(int dt) {
  return dt == XK_F16 || dt == XK_BF16 || dt == XK_F32 || dt == XK_I32 ||
         dt == XK_I64;
}

static int sort_operand(lua_State *L, xk_trace *t) {
  if (!xk_is_tile(L, 1))
    xk_fail(L, t, "needs a tile (got a %s)", luaL_typename(L, 1));
  int x = xk_tile_arg(L, t, 1, "operand");
  xk_type ty = xk_tvt(t, x);
  if (!sort_dtype_ok(ty.dtype) || !ty.rank)
    xk_fail(L, t,
            "sorts tiles of f16, bf16, f32, i32 or i64 with at least one dim "
            "(got %s)",
            xk_tn(ty).s);
  return x;
}

/* sort(x[, axis[, descending]]): the sorted values and the i32 indices
 * they came from; axis defaults to the last. Stable. */
static int l_sort(lua_State *L) {
  xk_trace *t = xk_cur(L, "sort");
  no_more_args(L, t, 3);
  int x = sort_operand(L, t), idx;
  int axis = axis_arg(L, t, 2, xk_tvt(t, x), xk_tvt(t, x).rank - 1);
  sort_op(L, t, &x, &idx, axis, bool_arg(L, t, 3, "descending"));
  xk_trace_push_tile(L, t, x);
  xk_trace_push_tile(L, t, idx);
  return 2;
}

/* The first k elements along axis: the axis split into [n/k, k] and the
 * first row kept by a sum whose other terms are the additive identity (-0.0
 * for floats), which is exact for every value, NaN included. */
static int first_k(lua_State *L, xk_trace *t, int v, int axis, int k) {
  xk_type ty = xk_tvt(t, v);
  int n = ty.shape[axis];
  if (k == n)
    return v;
  int32_t sh[XK_MAX_RANK];
  for (int d = 0, j = 0; d < ty.rank; d++) {
    if (d == axis)
      sh[j++] = n / k;
    sh[j++] = d == axis ? k : ty.shape[d];
  }
  xk_type rt = xk_new_type(L, t, ty.dtype, 0, ty.rank + 1, sh);
  int r = emit(t, XK_OP_RESHAPE, &v, 1, rt, (xk_attr){0});
  int pos = axis_pos(L, t, rt, axis);
  int row = cmp(t, XK_EQ, pos, int_splat(L, t, 0, XK_I32, xk_tvt(t, pos)));
  int id =
      xk_dtype_is_float(ty.dtype)
          ? xk_materialize(L, t, (xk_opnd){XK_K_FLT, -1, 0, -0.0}, ty.dtype, rt)
          : int_splat(L, t, 0, ty.dtype, rt);
  return reduce(t, sel(t, row, r, id), axis, XK_RED_SUM);
}

/* topk(x, k[, axis]): the k largest values along axis (default the last),
 * largest first, and their i32 indices; equal values by index, NaN first.
 * k is a power of two up to the axis length (tile dims are). */
static int l_topk(lua_State *L) {
  xk_trace *t = xk_cur(L, "topk");
  no_more_args(L, t, 3);
  int x = sort_operand(L, t), idx;
  xk_type ty = xk_tvt(t, x);
  int axis = axis_arg(L, t, 3, ty, ty.rank - 1), n = ty.shape[axis];
  if (!lua_isinteger(L, 2))
    xk_fail(L, t, "k must be a Lua integer (got a %s)",
            xk_is_tile(L, 2) ? "tile" : luaL_typename(L, 2));
  lua_Integer k = lua_tointeger(L, 2);
  if (k < 1 || k > n || (k & (k - 1)))
    xk_fail(L, t,
            "k is %lld; it must be a power of two from 1 to the axis length "
            "%d of %s",
            (long long)k, n, xk_tn(ty).s);
  if (k < n && ty.rank >= XK_MAX_RANK)
    xk_fail(L, t, "k < n needs a tile of at most %d dims (got %s)",
            XK_MAX_RANK - 1, xk_tn(ty).s);
  sort_op(L, t, &x, &idx, axis, 1);
  xk_trace_push_tile(L, t, first_k(L, t, x, axis, (int)k));
  xk_trace_push_tile(L, t, first_k(L, t, idx, axis, (int)k));
  return 2;
}

void xk_ops_scan_open(lua_State *L) {
  static const struct {
    const char *name;
    lua_CFunction fn;
    int arg; /* the upvalue: a reduction or an opcode */
  } ops[] = {{"argmax", l_argext, XK_RED_MAX},
             {"argmin", l_argext, XK_RED_MIN},
             {"cumsum", l_cumulative, XK_OP_ADD},
             {"cumprod", l_cumulative, XK_OP_MUL},
             {"associative_scan", l_associative_scan, 0},
             {"sort", l_sort, 0},
             {"topk", l_topk, 0}};
  lua_pushglobaltable(L);
  for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
    lua_pushinteger(L, ops[i].arg);
    lua_pushcclosure(L, ops[i].fn, 1);
    lua_setfield(L, -2, ops[i].name);
  }
  lua_pop(L, 1);
}
