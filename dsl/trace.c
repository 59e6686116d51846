/* Tile values in Lua: userdata whose operators append tile IR to the
 * current trace, plus the conversions every op shares (numbers become
 * constants, dtypes promote, shapes broadcast numpy-style).
 *
 * Errors longjmp out of here (lua_error), so nothing in this file holds
 * malloc'd memory across a call that can fail: the IR being built belongs to
 * xk_dsl_trace, which frees it when the trace fails. */
#include "dsl_priv.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Triton's limit; bigger tiles are surely a mistake and would only make
 * the lowering allocate without end. */
#define MAX_NUMEL (1 << 20)

/* The IR is cheap in Lua instructions (one `i = i + 1` records an op in a
 * handful), so an endless Lua loop over tiles grows it fast. Its C memory
 * counts against the file's memory budget (mem_budget.c); the op cap gives
 * the clearer message first at the default budget. Every op starts in
 * xk_cur; real kernels record a few thousand ops. */
#define XK_MAX_TRACE_OPS (1 << 18)

typedef struct {
  int v;
  unsigned serial;
} tile_ud;

xk_tname xk_tn(xk_type ty) {
  xk_tname r;
  char b[80];
  xk_type_str(ty, b, sizeof b);
  snprintf(r.s, sizeof r.s, "tile<%s>", b);
  return r;
}

xk_tname xk_opnd_str(const xk_trace *t, xk_opnd o) {
  xk_tname r;
  if (o.kind == XK_K_TILE)
    return xk_tn(xk_tvt(t, o.v));
  if (o.kind == XK_K_INT)
    snprintf(r.s, sizeof r.s, "%lld", (long long)o.i);
  else if (o.kind == XK_K_FLT)
    snprintf(r.s, sizeof r.s, "%g", (double)o.x);
  else
    snprintf(r.s, sizeof r.s, "nothing");
  return r;
}

static xk_trace *trace_of(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, XK_REG_TRACE);
  xk_trace *t = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return t;
}

xk_trace *xk_cur(lua_State *L, const char *op) {
  xk_trace *t = trace_of(L);
  if (!t)
    luaL_error(L, "%s: only allowed inside a kernel body", op);
  t->op = op;
  t->line = xk_lua_file_line(L, t->path);
  if (t->f->nops >= XK_MAX_TRACE_OPS)
    xk_fail(L, t,
            "the kernel grew past %d IR ops: a Lua loop that never ends on "
            "tiles? (device loops are for_range)",
            XK_MAX_TRACE_OPS);
  return t;
}

void xk_fail(lua_State *L, const xk_trace *t, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  lua_pushfstring(L, "%s:%d: in kernel '%s': %s: %s", t->path, t->line,
                  t->kname, t->op, msg);
  lua_error(L);
  __builtin_unreachable();
}

int xk_temit(xk_trace *t, xk_opcode code, const int *o, int n, xk_type r,
             xk_attr a) {
  return xk_emit(t->f, t->block, code, o, n, r, a, (xk_loc){t->line});
}

xk_type xk_new_type(lua_State *L, const xk_trace *t, int dtype, int elem,
                    int rank, const int32_t *shape) {
  if (rank > XK_MAX_RANK)
    xk_fail(L, t, "tiles have at most %d dims (got %d)", XK_MAX_RANK, rank);
  int64_t n = 1;
  for (int i = 0; i < rank; i++) {
    if (shape[i] <= 0 || (shape[i] & (shape[i] - 1)))
      xk_fail(L, t, "tile dims must be powers of two (dim %d is %d)", i,
              (int)shape[i]);
    n *= shape[i];
  }
  if (n > MAX_NUMEL)
    xk_fail(L, t, "tile of %lld elements is larger than %d", (long long)n,
            MAX_NUMEL);
  xk_type ty = xk_type_tile((xk_dtype)dtype, rank, shape);
  ty.elem = (uint8_t)elem;
  return ty;
}

void xk_trace_push_tile(lua_State *L, xk_trace *t, int v) {
  tile_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->v = v;
  u->serial = t->serial;
  luaL_setmetatable(L, XK_TILE_MT);
}

int xk_is_tile(lua_State *L, int idx) {
  return luaL_testudata(L, idx, XK_TILE_MT) != NULL;
}

/* A value is usable where its block encloses the current one: a tile made
 * in a loop body does not exist after the loop. */
static int in_scope(const xk_trace *t, int v) {
  int b = t->f->values[v].def_block;
  for (int c = t->block;;) {
    if (c == b)
      return 1;
    int p = t->f->blocks[c].parent_op;
    if (p < 0)
      return 0;
    c = t->f->ops[p].block;
  }
}

static int tile_value(lua_State *L, xk_trace *t, tile_ud *u) {
  if (u->serial != t->serial || u->v < 0 || u->v >= t->f->nvalues)
    xk_fail(L, t,
            "a tile from another trace was kept (tiles live only "
            "while their kernel body runs)");
  if (!in_scope(t, u->v)) {
    int p = t->f->blocks[t->f->values[u->v].def_block].parent_op;
    int loop = p >= 0 && t->f->ops[p].code == XK_OP_FOR;
    xk_fail(L, t,
            "%s made inside %s is used outside it (return it from the %s "
            "to carry it out)",
            xk_tn(xk_tvt(t, u->v)).s,
            loop ? "a for_range body" : "an if_ branch",
            loop ? "body" : "branch");
  }
  return u->v;
}

int xk_tile_arg(lua_State *L, xk_trace *t, int idx, const char *what) {
  tile_ud *u = luaL_testudata(L, idx, XK_TILE_MT);
  if (!u && !strcmp(what, "self"))
    xk_fail(L, t,
            "called on a %s, not a tile: methods take ':' (x:%s(...), not "
            "x.%s(...))",
            luaL_typename(L, idx), t->op, t->op);
  if (!u)
    xk_fail(L, t, "%s must be a tile (got a %s)", what, luaL_typename(L, idx));
  return tile_value(L, t, u);
}

xk_opnd xk_get_opnd(lua_State *L, xk_trace *t, int idx, const char *what) {
  xk_opnd o = {XK_K_NONE, -1, 0, 0};
  tile_ud *u = luaL_testudata(L, idx, XK_TILE_MT);
  if (u) {
    o.kind = XK_K_TILE;
    o.v = tile_value(L, t, u);
  } else if (lua_type(L, idx) == LUA_TNUMBER && lua_isinteger(L, idx)) {
    o.kind = XK_K_INT;
    o.i = lua_tointeger(L, idx);
  } else if (lua_type(L, idx) == LUA_TNUMBER) {
    o.kind = XK_K_FLT;
    o.x = lua_tonumber(L, idx);
  } else {
    xk_fail(L, t, "%s must be a tile or a number (got a %s)", what,
            luaL_typename(L, idx));
  }
  return o;
}

/* dtypes are strings in kernel code: "f32", or "ptr<f16>" from ptr(f16) */
int xk_dtype_arg(lua_State *L, xk_trace *t, int idx, const char *what) {
  const char *s = lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : 0;
  int dt = s ? xk_dtype_parse(s) : -1;
  if (dt < 0 || dt == XK_PTR)
    xk_fail(L, t, "%s: unknown dtype '%s' (i1, i32, i64, f16, bf16, f32)", what,
            s ? s : luaL_typename(L, idx));
  return dt;
}

/* A shape: a list of dims ({} is a scalar) or one number. */
xk_type xk_shape_arg(lua_State *L, xk_trace *t, int idx, const char *what) {
  int32_t sh[XK_MAX_RANK] = {0};
  int rank = 0;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    if (!lua_isinteger(L, idx))
      xk_fail(L, t, "%s must be integers", what);
    lua_Integer n = lua_tointeger(L, idx);
    sh[0] = n > 0 && n <= MAX_NUMEL ? (int32_t)n : -1;
    rank = 1;
  } else if (lua_type(L, idx) == LUA_TTABLE) {
    /* a list {64, 32} counts from 1, a tile's x.shape from 0 */
    int base = 1;
    if (lua_getmetatable(L, idx)) {
      luaL_getmetatable(L, XK_SHAPE_MT);
      base = !lua_rawequal(L, -1, -2);
      lua_pop(L, 2);
    }
    lua_len(L, idx);
    lua_Unsigned n = (lua_Unsigned)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (n > XK_MAX_RANK)
      xk_fail(L, t, "%s has %llu dims; tiles have at most %d", what,
              (unsigned long long)n, XK_MAX_RANK);
    rank = (int)n;
    for (int i = 0; i < rank; i++) {
      lua_rawgeti(L, idx, i + base);
      if (!lua_isinteger(L, -1))
        xk_fail(L, t, "%s must be a list of integers (dim %d is a %s)", what, i,
                luaL_typename(L, -1));
      lua_Integer d = lua_tointeger(L, -1);
      sh[i] = d > 0 && d <= MAX_NUMEL ? (int32_t)d : -1;
      lua_pop(L, 1);
    }
  } else {
    xk_fail(L, t, "%s must be a list of dims (got a %s)", what,
            luaL_typename(L, idx));
  }
  return xk_new_type(L, t, XK_F32, 0, rank, sh);
}

/* --- conversions ------------------------------------------------------- */

int xk_cast_to(lua_State *L, xk_trace *t, int v, int dtype) {
  xk_type ty = xk_tvt(t, v);
  if (ty.dtype == dtype)
    return v;
  if (ty.dtype == XK_PTR || dtype == XK_PTR)
    xk_fail(L, t, "cannot cast %s to %s", xk_tn(ty).s, xk_dtype_name(dtype));
  ty.dtype = (uint8_t)dtype;
  return xk_temit(t, XK_OP_CAST, &v, 1, ty, (xk_attr){0});
}

xk_type xk_bcast_shape(lua_State *L, xk_trace *t, xk_type a, xk_type b) {
  int rank = a.rank > b.rank ? a.rank : b.rank;
  int32_t sh[XK_MAX_RANK];
  for (int i = 0; i < rank; i++) {
    int ia = i - (rank - a.rank), ib = i - (rank - b.rank);
    int32_t da = ia >= 0 ? a.shape[ia] : 1, db = ib >= 0 ? b.shape[ib] : 1;
    if (da != db && da != 1 && db != 1)
      xk_fail(L, t, "shapes do not broadcast (%s and %s)", xk_tn(a).s,
              xk_tn(b).s);
    sh[i] = da > db ? da : db;
  }
  return xk_new_type(L, t, a.dtype, a.elem, rank, sh);
}

int xk_bcast_to(lua_State *L, xk_trace *t, int v, xk_type shape) {
  xk_type ty = xk_tvt(t, v);
  if (xk_type_same_shape(ty, shape))
    return v;
  if (ty.rank > shape.rank)
    xk_fail(L, t, "cannot broadcast %s to rank %d", xk_tn(ty).s, shape.rank);
  if (ty.rank) {
    /* numpy aligns on the right: leading size-1 dims first */
    while (ty.rank < shape.rank) {
      int32_t sh[XK_MAX_RANK] = {1};
      for (int i = 0; i < ty.rank; i++)
        sh[i + 1] = ty.shape[i];
      xk_type r = xk_type_tile((xk_dtype)ty.dtype, ty.rank + 1, sh);
      r.elem = ty.elem;
      v = xk_temit(t, XK_OP_EXPAND_DIMS, &v, 1, r, (xk_attr){.axis = 0});
      ty = r;
    }
    for (int i = 0; i < ty.rank; i++)
      if (ty.shape[i] != shape.shape[i] && ty.shape[i] != 1)
        xk_fail(L, t, "cannot broadcast %s to %s", xk_tn(ty).s, xk_tn(shape).s);
    if (xk_type_same_shape(ty, shape))
      return v;
  }
  xk_type r = shape;
  r.dtype = ty.dtype;
  r.elem = ty.elem;
  return xk_temit(t, XK_OP_BROADCAST, &v, 1, r, (xk_attr){0});
}

xk_type xk_opnd_type(const xk_trace *t, xk_opnd o) {
  if (o.kind == XK_K_TILE)
    return xk_tvt(t, o.v);
  return xk_type_scalar(o.kind == XK_K_FLT ? XK_F32 : XK_I32);
}

static int fits_i32(lua_Integer i) {
  return i >= INT32_MIN && i <= INT32_MAX;
}

/* i1 < i32 < i64 < f16, bf16 < f32; f16 with bf16 meet at f32 */
static int dtype_rank(int dt) {
  static const int r[XK_NDTYPES] = {0, 1, 2, 3, 3, 4, 5};
  return r[dt];
}

static int promote(int a, int b) {
  if (a == b)
    return a;
  if (dtype_rank(a) == dtype_rank(b))
    return XK_F32;
  return dtype_rank(a) > dtype_rank(b) ? a : b;
}

/* A number next to a tile of dtype td takes td's dtype if it can. */
static int number_dtype(xk_opnd o, int td) {
  if (o.kind == XK_K_FLT)
    return xk_dtype_is_float(td) ? td : XK_F32;
  if (td == XK_I1 || (td == XK_I32 && !fits_i32(o.i)))
    return fits_i32(o.i) ? XK_I32 : XK_I64;
  return td;
}

int xk_common_dtype(const xk_trace *t, xk_opnd a, xk_opnd b) {
  if (a.kind == XK_K_TILE && b.kind == XK_K_TILE)
    return promote(xk_tvt(t, a.v).dtype, xk_tvt(t, b.v).dtype);
  if (a.kind == XK_K_TILE)
    return promote(xk_tvt(t, a.v).dtype, number_dtype(b, xk_tvt(t, a.v).dtype));
  if (b.kind == XK_K_TILE)
    return xk_common_dtype(t, b, a);
  if (a.kind == XK_K_FLT || b.kind == XK_K_FLT)
    return XK_F32;
  return fits_i32(a.i) && fits_i32(b.i) ? XK_I32 : XK_I64;
}

static int constant(lua_State *L, xk_trace *t, xk_opnd o, xk_type r) {
  xk_attr a = {0};
  double x = o.kind == XK_K_INT ? (double)o.i : o.x;
  if (xk_dtype_is_float(r.dtype)) {
    a.f = x;
  } else if (r.dtype == XK_I1) {
    a.i = o.kind == XK_K_INT ? o.i != 0 : x != 0;
  } else if (o.kind == XK_K_INT) {
    if (r.dtype == XK_I32 && !fits_i32(o.i))
      xk_fail(L, t, "constant %lld does not fit in i32", (long long)o.i);
    a.i = o.i;
  } else {
    double lim = r.dtype == XK_I32 ? 2147483648.0 : 9223372036854775808.0;
    if (!(x > -lim - 1 && x < lim))
      xk_fail(L, t, "constant %g does not fit in %s", x,
              xk_dtype_name(r.dtype));
    a.i = (int64_t)x; /* truncates toward zero, like CAST */
  }
  return xk_temit(t, XK_OP_CONST, NULL, 0, r, a);
}

int xk_materialize(lua_State *L, xk_trace *t, xk_opnd o, int dtype,
                   xk_type shape) {
  if (o.kind != XK_K_TILE) {
    xk_type r = shape;
    r.dtype = (uint8_t)dtype;
    r.elem = 0;
    return constant(L, t, o, r);
  }
  return xk_bcast_to(L, t, xk_cast_to(L, t, o.v, dtype), shape);
}

/* --- operators ------------------------------------------------------------ */

typedef enum {
  A_ADD,
  A_SUB,
  A_MUL,
  A_DIV,  /* '/': true division, ints go to f32 */
  A_IDIV, /* '//': integers only, C truncation */
  A_MOD,
  A_AND,
  A_OR,
  A_XOR,
  A_SHL,
  A_SHR,
  A_MAX,
  A_MIN,
} arith_op;

static const xk_opcode arith_code[] = {
    XK_OP_ADD, XK_OP_SUB, XK_OP_MUL, XK_OP_DIV, XK_OP_DIV, XK_OP_REM, XK_OP_AND,
    XK_OP_OR,  XK_OP_XOR, XK_OP_SHL, XK_OP_SHR, XK_OP_MAX, XK_OP_MIN};

static int is_ptr(const xk_trace *t, xk_opnd o) {
  return o.kind == XK_K_TILE && xk_tvt(t, o.v).dtype == XK_PTR;
}

/* ptr + offset (in elements) and ptr - offset */
static int ptr_arith(lua_State *L, xk_trace *t, arith_op op, xk_opnd a,
                     xk_opnd b) {
  int pa = is_ptr(t, a);
  if ((op != A_ADD && op != A_SUB) || (is_ptr(t, a) && is_ptr(t, b)) ||
      (op == A_SUB && !pa))
    xk_fail(L, t, "pointers only take ptr + offset and ptr - offset (%s, %s)",
            xk_opnd_str(t, a).s, xk_opnd_str(t, b).s);
  xk_opnd p = pa ? a : b, off = pa ? b : a;
  int odt;
  if (off.kind == XK_K_FLT ||
      (off.kind == XK_K_TILE && xk_dtype_is_float(xk_tvt(t, off.v).dtype)))
    xk_fail(L, t, "pointer offsets must be integers (%s + %s)",
            xk_opnd_str(t, p).s, xk_opnd_str(t, off).s);
  if (off.kind == XK_K_INT) {
    if (op == A_SUB) {
      if (off.i == LUA_MININTEGER)
        xk_fail(L, t, "pointer offset out of range");
      off.i = -off.i;
    }
    odt = fits_i32(off.i) ? XK_I32 : XK_I64;
  } else {
    odt = xk_tvt(t, off.v).dtype == XK_I64 ? XK_I64 : XK_I32;
  }
  xk_type pt = xk_tvt(t, p.v);
  xk_type sh = xk_bcast_shape(L, t, pt, xk_opnd_type(t, off));
  int vp = xk_bcast_to(L, t, p.v, sh);
  int vo = xk_materialize(L, t, off, odt, sh);
  xk_type ot = xk_tvt(t, vo);
  if (op == A_SUB && off.kind == XK_K_TILE)
    vo = xk_temit(t, XK_OP_NEG, &vo, 1, ot, (xk_attr){0});
  int o[2] = {vp, vo};
  xk_type r = xk_tvt(t, vp);
  return xk_temit(t, XK_OP_ADD, o, 2, r, (xk_attr){0});
}

static int arith(lua_State *L, arith_op op, const char *name) {
  xk_trace *t = xk_cur(L, name);
  xk_opnd a = xk_get_opnd(L, t, 1, "left operand");
  xk_opnd b = xk_get_opnd(L, t, 2, "right operand");
  if (is_ptr(t, a) || is_ptr(t, b)) {
    xk_trace_push_tile(L, t, ptr_arith(L, t, op, a, b));
    return 1;
  }
  if (a.kind != XK_K_TILE && b.kind != XK_K_TILE)
    xk_fail(L, t, "needs a tile operand (%s, %s)", xk_opnd_str(t, a).s,
            xk_opnd_str(t, b).s);
  int dt = xk_common_dtype(t, a, b);
  if (op == A_DIV && !xk_dtype_is_float(dt))
    dt = XK_F32;
  if (op == A_IDIV && !xk_dtype_is_int(dt))
    xk_fail(L, t, "'//' needs integer operands (%s, %s); use '/' for floats",
            xk_opnd_str(t, a).s, xk_opnd_str(t, b).s);
  if (op >= A_AND && op <= A_SHR && !xk_dtype_is_int(dt))
    xk_fail(L, t, "bitwise ops need integer or i1 operands (%s, %s)",
            xk_opnd_str(t, a).s, xk_opnd_str(t, b).s);
  /* i1 arithmetic counts in i32, like Python's True + True */
  if (dt == XK_I1 && !(op >= A_AND && op <= A_XOR))
    dt = XK_I32;
  xk_type sh = xk_bcast_shape(L, t, xk_opnd_type(t, a), xk_opnd_type(t, b));
  int o[2] = {xk_materialize(L, t, a, dt, sh), xk_materialize(L, t, b, dt, sh)};
  sh.dtype = (uint8_t)dt;
  sh.elem = 0;
  xk_trace_push_tile(L, t, xk_temit(t, arith_code[op], o, 2, sh, (xk_attr){0}));
  return 1;
}

static int l_add(lua_State *L) {
  return arith(L, A_ADD, "operator +");
}
static int l_sub(lua_State *L) {
  return arith(L, A_SUB, "operator -");
}
static int l_mul(lua_State *L) {
  return arith(L, A_MUL, "operator *");
}
static int l_div(lua_State *L) {
  return arith(L, A_DIV, "operator /");
}
static int l_idiv(lua_State *L) {
  return arith(L, A_IDIV, "operator //");
}
static int l_mod(lua_State *L) {
  return arith(L, A_MOD, "operator %");
}
static int l_band(lua_State *L) {
  return arith(L, A_AND, "operator &");
}
static int l_bor(lua_State *L) {
  return arith(L, A_OR, "operator |");
}
static int l_bxor(lua_State *L) {
  return arith(L, A_XOR, "operator ~");
}
static int l_shl(lua_State *L) {
  return arith(L, A_SHL, "operator <<");
}
static int l_shr(lua_State *L) {
  return arith(L, A_SHR, "operator >>");
}

/* maximum/minimum(a, b): elementwise; plain numbers stay Lua numbers */
static int minmax(lua_State *L, arith_op op, const char *name) {
  if (lua_type(L, 1) == LUA_TNUMBER && lua_type(L, 2) == LUA_TNUMBER) {
    int first = op == A_MAX ? lua_compare(L, 2, 1, LUA_OPLT)
                            : lua_compare(L, 1, 2, LUA_OPLT);
    lua_pushvalue(L, first ? 1 : 2);
    return 1;
  }
  return arith(L, op, name);
}
static int l_maximum(lua_State *L) {
  return minmax(L, A_MAX, "maximum");
}
static int l_minimum(lua_State *L) {
  return minmax(L, A_MIN, "minimum");
}

static int cmp(lua_State *L, int pred, const char *name) {
  xk_trace *t = xk_cur(L, name);
  xk_opnd a = xk_get_opnd(L, t, 1, "left operand");
  xk_opnd b = xk_get_opnd(L, t, 2, "right operand");
  if (a.kind != XK_K_TILE && b.kind != XK_K_TILE)
    xk_fail(L, t, "needs a tile operand (%s, %s); compare numbers with Lua",
            xk_opnd_str(t, a).s, xk_opnd_str(t, b).s);
  if (is_ptr(t, a) || is_ptr(t, b))
    xk_fail(L, t, "cannot compare pointers (%s, %s)", xk_opnd_str(t, a).s,
            xk_opnd_str(t, b).s);
  int dt = xk_common_dtype(t, a, b);
  xk_type sh = xk_bcast_shape(L, t, xk_opnd_type(t, a), xk_opnd_type(t, b));
  int o[2] = {xk_materialize(L, t, a, dt, sh), xk_materialize(L, t, b, dt, sh)};
  sh.dtype = XK_I1;
  sh.elem = 0;
  xk_trace_push_tile(L, t,
                     xk_temit(t, XK_OP_CMP, o, 2, sh, (xk_attr){.pred = pred}));
  return 1;
}

static int l_lt(lua_State *L) {
  return cmp(L, XK_LT, "lt");
}
static int l_le(lua_State *L) {
  return cmp(L, XK_LE, "le");
}
static int l_gt(lua_State *L) {
  return cmp(L, XK_GT, "gt");
}
static int l_ge(lua_State *L) {
  return cmp(L, XK_GE, "ge");
}
static int l_eq(lua_State *L) {
  return cmp(L, XK_EQ, "eq");
}
static int l_ne(lua_State *L) {
  return cmp(L, XK_NE, "ne");
}

static int l_no_compare(lua_State *L) {
  xk_trace *t = xk_cur(L, "operator < / <=");
  xk_fail(L, t,
          "Lua turns < and <= into booleans, so tiles cannot use them: "
          "use a:lt(b), a:le(b), a:gt(b), a:ge(b), a:eq(b), a:ne(b)");
}

static int l_unm(lua_State *L) {
  xk_trace *t = xk_cur(L, "operator - (negation)");
  int v = xk_tile_arg(L, t, 1, "operand");
  xk_type ty = xk_tvt(t, v);
  if (ty.dtype == XK_PTR)
    xk_fail(L, t, "cannot negate a pointer (%s)", xk_tn(ty).s);
  if (ty.dtype == XK_I1)
    v = xk_cast_to(L, t, v, XK_I32);
  xk_trace_push_tile(L, t,
                     xk_temit(t, XK_OP_NEG, &v, 1, xk_tvt(t, v), (xk_attr){0}));
  return 1;
}

static int l_bnot(lua_State *L) {
  xk_trace *t = xk_cur(L, "operator ~");
  int v = xk_tile_arg(L, t, 1, "operand");
  xk_type ty = xk_tvt(t, v);
  if (!xk_dtype_is_int(ty.dtype))
    xk_fail(L, t, "'~' needs an integer or i1 tile (%s)", xk_tn(ty).s);
  xk_trace_push_tile(L, t, xk_temit(t, XK_OP_NOT, &v, 1, ty, (xk_attr){0}));
  return 1;
}

static int mul(xk_trace *t, int a, int b) {
  int o[2] = {a, b};
  return xk_temit(t, XK_OP_MUL, o, 2, xk_tvt(t, a), (xk_attr){0});
}

/* x ^ n: small integer exponents multiply (exact, any sign of x); other
 * exponents are exp(y * log(x)), defined for x > 0 like C's pow. */
static int l_pow(lua_State *L) {
  xk_trace *t = xk_cur(L, "operator ^");
  xk_opnd a = xk_get_opnd(L, t, 1, "base");
  xk_opnd b = xk_get_opnd(L, t, 2, "exponent");
  if (is_ptr(t, a) || is_ptr(t, b))
    xk_fail(L, t, "'^' on a pointer (%s, %s)", xk_opnd_str(t, a).s,
            xk_opnd_str(t, b).s);
  int dt = xk_common_dtype(t, a, b);
  if (!xk_dtype_is_float(dt))
    dt = XK_F32;
  xk_type sh = xk_bcast_shape(L, t, xk_opnd_type(t, a), xk_opnd_type(t, b));
  sh.dtype = (uint8_t)dt;
  sh.elem = 0;
  int x = xk_materialize(L, t, a, dt, sh), r;
  if (b.kind == XK_K_INT && b.i >= -32 && b.i <= 32 && b.i != 0) {
    int n = (int)(b.i < 0 ? -b.i : b.i), acc = -1, p = x;
    for (; n; n >>= 1, p = n ? mul(t, p, p) : p)
      if (n & 1)
        acc = acc < 0 ? p : mul(t, acc, p);
    r = acc;
    if (b.i < 0) {
      int o[2] = {constant(L, t, (xk_opnd){XK_K_FLT, -1, 0, 1.0}, sh), acc};
      r = xk_temit(t, XK_OP_DIV, o, 2, sh, (xk_attr){0});
    }
  } else if (b.kind == XK_K_INT && b.i == 0) {
    r = constant(L, t, (xk_opnd){XK_K_FLT, -1, 0, 1.0}, sh);
  } else {
    int y = xk_materialize(L, t, b, dt, sh);
    int lx = xk_temit(t, XK_OP_LOG, &x, 1, sh, (xk_attr){0});
    int e = mul(t, y, lx);
    r = xk_temit(t, XK_OP_EXP, &e, 1, sh, (xk_attr){0});
  }
  xk_trace_push_tile(L, t, r);
  return 1;
}

/* --- methods and fields ------------------------------------------------ */

static int expand(lua_State *L, int axis, const char *name) {
  xk_trace *t = xk_cur(L, name);
  int v = xk_tile_arg(L, t, 1, "self");
  xk_type ty = xk_tvt(t, v);
  if (ty.rank != 1)
    xk_fail(L, t, "needs a 1-D tile (got %s)", xk_tn(ty).s);
  int32_t sh[2] = {axis ? ty.shape[0] : 1, axis ? 1 : ty.shape[0]};
  xk_type r = xk_type_tile((xk_dtype)ty.dtype, 2, sh);
  r.elem = ty.elem;
  xk_trace_push_tile(
      L, t, xk_temit(t, XK_OP_EXPAND_DIMS, &v, 1, r, (xk_attr){.axis = axis}));
  return 1;
}
static int m_col(lua_State *L) {
  return expand(L, 1, "col");
}
static int m_row(lua_State *L) {
  return expand(L, 0, "row");
}

static int m_to(lua_State *L) {
  xk_trace *t = xk_cur(L, "to");
  int v = xk_tile_arg(L, t, 1, "self");
  int dt = xk_dtype_arg(L, t, 2, "to");
  xk_trace_push_tile(L, t, xk_cast_to(L, t, v, dt));
  return 1;
}

static int tile_index(lua_State *L) {
  const char *k = lua_tostring(L, 2);
  xk_trace *t = trace_of(L);
  tile_ud *u = luaL_checkudata(L, 1, XK_TILE_MT);
  if (k && t && u->serial == t->serial && u->v < t->f->nvalues) {
    xk_type ty = xk_tvt(t, u->v);
    char b[80];
    if (!strcmp(k, "shape")) {
      lua_createtable(L, ty.rank, 1);
      for (int i = 0; i < ty.rank; i++) {
        lua_pushinteger(L, ty.shape[i]);
        lua_rawseti(L, -2, i);
      }
      luaL_setmetatable(L, XK_SHAPE_MT);
      return 1;
    }
    if (!strcmp(k, "dtype")) {
      ty.rank = 0;
      lua_pushstring(L, xk_type_str(ty, b, sizeof b));
      return 1;
    }
    if (!strcmp(k, "rank")) {
      lua_pushinteger(L, ty.rank);
      return 1;
    }
  }
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
    return 1;
  if (!t)
    return luaL_error(L, "tile field '%s' read outside its kernel body",
                      k ? k : "?");
  xk_cur(L, "tile field");
  xk_fail(L, t,
          "tiles have no field or method '%s' (shape, dtype, rank, "
          "col, row, to, lt, le, gt, ge, eq, ne, sum, max, min)",
          k ? k : luaL_typename(L, 2));
}

/* x.shape counts from 0 like axis, trans and Triton; #x.shape is the rank.
 * Reading past it (x.shape[x.rank], the 1-based habit) is an error. */
static int shape_len(lua_State *L) {
  lua_Integer n = 0;
  while (lua_rawgeti(L, 1, n) != LUA_TNIL) {
    lua_pop(L, 1);
    n++;
  }
  lua_pushinteger(L, n);
  return 1;
}

static int shape_index(lua_State *L) {
  lua_len(L, 1);
  lua_Integer n = lua_tointeger(L, -1);
  xk_trace *t = xk_cur(L, "shape");
  if (lua_isinteger(L, 2))
    xk_fail(L, t,
            "shape[%lld] is out of range: shapes count from 0 like axis "
            "(dims 0..%lld)",
            (long long)lua_tointeger(L, 2), (long long)n - 1);
  xk_fail(L, t, "shapes are indexed by dim numbers 0..%lld (got a %s)",
          (long long)n - 1, luaL_typename(L, 2));
}

static int tile_newindex(lua_State *L) {
  return luaL_error(L, "tiles are immutable: assign to a Lua variable");
}

static int tile_tostring(lua_State *L) {
  tile_ud *u = luaL_checkudata(L, 1, XK_TILE_MT);
  xk_trace *t = trace_of(L);
  if (!t || u->serial != t->serial || u->v >= t->f->nvalues)
    lua_pushliteral(L, "tile<from a finished trace>");
  else
    lua_pushstring(L, xk_tn(xk_tvt(t, u->v)).s);
  return 1;
}

void xk_trace_open(lua_State *L) {
  static const luaL_Reg meta[] = {{"__add", l_add},
                                  {"__sub", l_sub},
                                  {"__mul", l_mul},
                                  {"__div", l_div},
                                  {"__idiv", l_idiv},
                                  {"__mod", l_mod},
                                  {"__band", l_band},
                                  {"__bor", l_bor},
                                  {"__bxor", l_bxor},
                                  {"__shl", l_shl},
                                  {"__shr", l_shr},
                                  {"__unm", l_unm},
                                  {"__bnot", l_bnot},
                                  {"__pow", l_pow},
                                  {"__lt", l_no_compare},
                                  {"__le", l_no_compare},
                                  {"__newindex", tile_newindex},
                                  {"__tostring", tile_tostring},
                                  {NULL, NULL}};
  static const luaL_Reg methods[] = {
      {"col", m_col}, {"row", m_row}, {"to", m_to}, {"lt", l_lt}, {"le", l_le},
      {"gt", l_gt},   {"ge", l_ge},   {"eq", l_eq}, {"ne", l_ne}, {NULL, NULL}};
  static const luaL_Reg globals[] = {
      {"lt", l_lt},           {"le", l_le},           {"gt", l_gt},
      {"ge", l_ge},           {"eq", l_eq},           {"ne", l_ne},
      {"maximum", l_maximum}, {"minimum", l_minimum}, {NULL, NULL}};
  luaL_newmetatable(L, XK_SHAPE_MT);
  lua_pushcfunction(L, shape_len);
  lua_setfield(L, -2, "__len");
  lua_pushcfunction(L, shape_index);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newmetatable(L, XK_TILE_MT);
  luaL_setfuncs(L, meta, 0);
  lua_pushliteral(L, "tile"); /* getmetatable(t) must not expose it */
  lua_setfield(L, -2, "__metatable");
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, LUA_REGISTRYINDEX, "xk.methods"); /* ops.c adds more */
  lua_getfield(L, LUA_REGISTRYINDEX, "xk.methods");
  lua_pushcclosure(L, tile_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_pushglobaltable(L);
  luaL_setfuncs(L, globals, 0);
  lua_pop(L, 1);
  xk_ops_open(L);
  xk_control_open(L);
  xk_sigs_apply(L);
}
