/* Math ops composed at trace time from IR every target lowers: tanh,
 * sigmoid, erf, pow, fma and umulhi. Lua numbers give Lua numbers (the C
 * library's answer); tiles compute in f32 and return the operand's float
 * dtype (integer tiles give f32), so f16 inputs round once, at the end.
 *
 * Accuracy (f32, against the C library, on the host; the GPU's exp2/log2
 * are approximations of about 2 ulp on top): tanh and sigmoid within a few
 * ulp; erf within 2e-7 absolute (Abramowitz and Stegun 7.1.26 above 0.5, a
 * Taylor series below, so small arguments keep their relative accuracy);
 * pow as exp2(y * log2|x|), whose relative error grows with |y log2 x|
 * (about 1e-5 at results near 2^100). */
#include "dsl_priv.h"

#include <math.h>

typedef struct {
  lua_State *L;
  xk_trace *t;
  xk_type ty; /* f32 tile of the result's shape */
} mctx;

static int fc(mctx *m, double v) {
  return xk_materialize(m->L, m->t, (xk_opnd){XK_K_FLT, -1, 0, v}, XK_F32,
                        m->ty);
}

static int un(mctx *m, xk_opcode code, int a) {
  return xk_temit(m->t, code, &a, 1, xk_tvt(m->t, a), (xk_attr){0});
}

static int bi(mctx *m, xk_opcode code, int a, int b) {
  int o[2] = {a, b};
  return xk_temit(m->t, code, o, 2, xk_tvt(m->t, a), (xk_attr){0});
}

static int lt(mctx *m, int a, int b) {
  int o[2] = {a, b};
  xk_type r = xk_tvt(m->t, a);
  r.dtype = XK_I1;
  return xk_temit(m->t, XK_OP_CMP, o, 2, r, (xk_attr){.pred = XK_LT});
}

static int sel(mctx *m, int c, int a, int b) {
  int o[3] = {c, a, b};
  return xk_temit(m->t, XK_OP_SELECT, o, 3, xk_tvt(m->t, a), (xk_attr){0});
}

/* c0 + x (c1 + x (c2 + ...)) */
static int horner(mctx *m, int x, const double *c, int n) {
  int r = fc(m, c[n - 1]);
  for (int i = n - 2; i >= 0; i--)
    r = bi(m, XK_OP_ADD, bi(m, XK_OP_MUL, r, x), fc(m, c[i]));
  return r;
}

static int neg_where_negative(mctx *m, int x, int r) {
  return sel(m, lt(m, x, fc(m, 0)), un(m, XK_OP_NEG, r), r);
}

/* Below 1/16 the odd Taylor polynomial (next term 62/2835 x^9, below
 * 1e-11 relative there); above it (1 - e) / (1 + e), e = exp(-2|x|), whose
 * cancellation costs at most a factor 8 of ulp there. */
static int tanh_tile(mctx *m, int x) {
  static const double c[] = {1.0, -1.0 / 3, 2.0 / 15, -17.0 / 315};
  int ax = un(m, XK_OP_ABS, x), x2 = bi(m, XK_OP_MUL, x, x);
  int e = un(m, XK_OP_EXP, bi(m, XK_OP_MUL, ax, fc(m, -2.0)));
  int big = bi(m, XK_OP_DIV, bi(m, XK_OP_SUB, fc(m, 1), e),
               bi(m, XK_OP_ADD, fc(m, 1), e));
  int poly = bi(m, XK_OP_MUL, x, horner(m, x2, c, 4));
  return sel(m, lt(m, ax, fc(m, 0.0625)), poly, neg_where_negative(m, x, big));
}

/* Triton's tl.sigmoid: 1 / (1 + exp(-x)) */
static int sigmoid_tile(mctx *m, int x) {
  return bi(m, XK_OP_DIV, fc(m, 1),
            bi(m, XK_OP_ADD, fc(m, 1), un(m, XK_OP_EXP, un(m, XK_OP_NEG, x))));
}

static int erf_tile(mctx *m, int x) {
  /* 2/sqrt(pi) (-1)^k / (k! (2k+1)) */
  static const double taylor[] = {1.1283791670955126,   -0.37612638903183754,
                                  0.11283791670955126,  -0.026866170645131252,
                                  0.005223977625442188, -0.0008548327023450853};
  static const double as[] = {0.0,         0.254829592,  -0.284496736,
                              1.421413741, -1.453152027, 1.061405429};
  int ax = un(m, XK_OP_ABS, x), x2 = bi(m, XK_OP_MUL, x, x);
  int small = bi(m, XK_OP_MUL, x, horner(m, x2, taylor, 6));
  int tt =
      bi(m, XK_OP_DIV, fc(m, 1),
         bi(m, XK_OP_ADD, fc(m, 1), bi(m, XK_OP_MUL, ax, fc(m, 0.3275911))));
  int tail = bi(m, XK_OP_MUL, horner(m, tt, as, 6),
                un(m, XK_OP_EXP, un(m, XK_OP_NEG, x2)));
  int big = bi(m, XK_OP_SUB, fc(m, 1), tail);
  return sel(m, lt(m, ax, fc(m, 0.5)), small, neg_where_negative(m, x, big));
}

/* pow with C's special cases: a negative base needs an integer exponent
 * (odd ones keep the sign), pow(x, 0) and pow(1, y) are 1 even for NaN. */
static int pow_tile(mctx *m, int x, int y) {
  int r = un(m, XK_OP_EXP2,
             bi(m, XK_OP_MUL, y, un(m, XK_OP_LOG2, un(m, XK_OP_ABS, x))));
  int o[2];
  xk_type bt = m->ty;
  bt.dtype = XK_I1;
  o[0] = un(m, XK_OP_FLOOR, y);
  o[1] = y;
  int is_int = xk_temit(m->t, XK_OP_CMP, o, 2, bt, (xk_attr){.pred = XK_EQ});
  int half = bi(m, XK_OP_MUL, y, fc(m, 0.5));
  o[0] = un(m, XK_OP_FLOOR, half);
  o[1] = half;
  int odd = xk_temit(m->t, XK_OP_CMP, o, 2, bt, (xk_attr){.pred = XK_NE});
  odd = bi(m, XK_OP_AND, odd, is_int);
  int neg = lt(m, x, fc(m, 0));
  r = sel(m, bi(m, XK_OP_AND, neg, odd), un(m, XK_OP_NEG, r), r);
  int one_bit =
      xk_materialize(m->L, m->t, (xk_opnd){XK_K_INT, -1, 1, 0}, XK_I1, bt);
  r = sel(m, bi(m, XK_OP_AND, neg, bi(m, XK_OP_XOR, is_int, one_bit)),
          fc(m, NAN), r);
  o[0] = y;
  o[1] = fc(m, 0);
  int y0 = xk_temit(m->t, XK_OP_CMP, o, 2, bt, (xk_attr){.pred = XK_EQ});
  o[0] = x;
  o[1] = fc(m, 1);
  int x1 = xk_temit(m->t, XK_OP_CMP, o, 2, bt, (xk_attr){.pred = XK_EQ});
  return sel(m, bi(m, XK_OP_OR, y0, x1), fc(m, 1), r);
}

enum { M_TANH, M_SIGMOID, M_ERF, M_POW, M_FMA };

static double num_math(int which, const double *v) {
  switch (which) {
  case M_TANH:
    return tanh(v[0]);
  case M_SIGMOID:
    return 1.0 / (1.0 + exp(-v[0]));
  case M_ERF:
    return erf(v[0]);
  case M_POW:
    return pow(v[0], v[1]);
  default:
    return fma(v[0], v[1], v[2]);
  }
}

/* tanh(x), sigmoid(x), erf(x), pow(x, y), fma(a, b, c): operands
 * broadcast together; numbers alone compute at trace time. */
static int l_fmath(lua_State *L) {
  int which = (int)lua_tointeger(L, lua_upvalueindex(1));
  int n = (int)lua_tointeger(L, lua_upvalueindex(2));
  const char *name = lua_tostring(L, lua_upvalueindex(3));
  int tiles = 0;
  for (int i = 1; i <= n; i++)
    tiles |= xk_is_tile(L, i);
  if (!tiles) {
    double v[3];
    for (int i = 1; i <= n; i++) {
      if (lua_type(L, i) != LUA_TNUMBER)
        return luaL_error(L,
                          "%s: operand %d must be a number or a tile (got "
                          "a %s)",
                          name, i, luaL_typename(L, i));
      v[i - 1] = lua_tonumber(L, i);
    }
    lua_pushnumber(L, num_math(which, v));
    return 1;
  }
  xk_trace *t = xk_cur(L, name);
  for (int i = n + 1; i <= lua_gettop(L); i++)
    if (!lua_isnil(L, i))
      xk_fail(L, t, "takes %d argument%s (got %d)", n, n == 1 ? "" : "s",
              lua_gettop(L));
  xk_opnd o[3];
  xk_type sh = xk_type_scalar(XK_F32);
  int dt = -1; /* the float tiles' dtype when they agree, else f32 */
  for (int i = 0; i < n; i++) {
    o[i] = xk_get_opnd(L, t, i + 1, "operand");
    xk_type ot = xk_opnd_type(t, o[i]);
    if (o[i].kind == XK_K_TILE && ot.dtype == XK_PTR)
      xk_fail(L, t, "needs number tiles (got %s)", xk_tn(ot).s);
    if (o[i].kind == XK_K_TILE && xk_dtype_is_float(ot.dtype))
      dt = dt < 0 || dt == ot.dtype ? ot.dtype : XK_F32;
    sh = xk_bcast_shape(L, t, sh, ot);
  }
  if (dt < 0)
    dt = XK_F32;
  sh.dtype = XK_F32;
  mctx m = {L, t, sh};
  int v[3];
  for (int i = 0; i < n; i++)
    v[i] = xk_materialize(L, t, o[i], XK_F32, sh);
  int r;
  switch (which) {
  case M_TANH:
    r = tanh_tile(&m, v[0]);
    break;
  case M_SIGMOID:
    r = sigmoid_tile(&m, v[0]);
    break;
  case M_ERF:
    r = erf_tile(&m, v[0]);
    break;
  case M_POW:
    r = pow_tile(&m, v[0], v[1]);
    break;
  default:
    r = xk_temit(t, XK_OP_FMA, v, 3, sh, (xk_attr){0});
    break;
  }
  xk_trace_push_tile(L, t, xk_cast_to(L, t, r, dt));
  return 1;
}

/* umulhi(a, b): the high 32 bits of the unsigned 64-bit product of two
 * i32 values (Triton's tl.umulhi), from the i64 product of the
 * zero-extended operands; the arithmetic shift leaves bits 32..63 alone. */
static int l_umulhi(lua_State *L) {
  if (!xk_is_tile(L, 1) && !xk_is_tile(L, 2)) {
    if (!lua_isinteger(L, 1) || !lua_isinteger(L, 2))
      return luaL_error(L, "umulhi: operands must be integers or i32 tiles");
    uint64_t a = (uint32_t)lua_tointeger(L, 1),
             b = (uint32_t)lua_tointeger(L, 2);
    lua_pushinteger(L, (lua_Integer)(int32_t)(uint32_t)((a * b) >> 32));
    return 1;
  }
  xk_trace *t = xk_cur(L, "umulhi");
  if (!lua_isnoneornil(L, 3))
    xk_fail(L, t, "takes 2 arguments (got %d)", lua_gettop(L));
  xk_opnd a = xk_get_opnd(L, t, 1, "a"), b = xk_get_opnd(L, t, 2, "b");
  xk_type ta = xk_opnd_type(t, a), tb = xk_opnd_type(t, b);
  if ((a.kind == XK_K_TILE && ta.dtype != XK_I32) ||
      (b.kind == XK_K_TILE && tb.dtype != XK_I32) || a.kind == XK_K_FLT ||
      b.kind == XK_K_FLT)
    xk_fail(L, t, "needs i32 operands (got %s, %s)", xk_opnd_str(t, a).s,
            xk_opnd_str(t, b).s);
  xk_type sh = xk_bcast_shape(L, t, ta, tb);
  sh.dtype = XK_I64;
  int lo = xk_materialize(L, t, (xk_opnd){XK_K_INT, -1, 0xffffffffll, 0},
                          XK_I64, sh);
  int o[2];
  int v[2] = {xk_materialize(L, t, a, XK_I64, sh),
              xk_materialize(L, t, b, XK_I64, sh)};
  for (int i = 0; i < 2; i++) {
    o[0] = v[i];
    o[1] = lo;
    v[i] = xk_temit(t, XK_OP_AND, o, 2, sh, (xk_attr){0});
  }
  int p = xk_temit(t, XK_OP_MUL, v, 2, sh, (xk_attr){0});
  o[0] = p;
  o[1] = xk_materialize(L, t, (xk_opnd){XK_K_INT, -1, 32, 0}, XK_I64, sh);
  p = xk_temit(t, XK_OP_SHR, o, 2, sh, (xk_attr){0});
  xk_trace_push_tile(L, t, xk_cast_to(L, t, p, XK_I32));
  return 1;
}

void xk_ops_math_open(lua_State *L) {
  static const struct {
    const char *name;
    int which, n;
  } fm[] = {{"tanh", M_TANH, 1},
            {"sigmoid", M_SIGMOID, 1},
            {"erf", M_ERF, 1},
            {"pow", M_POW, 2},
            {"fma", M_FMA, 3}};
  lua_pushglobaltable(L);
  lua_getfield(L, LUA_REGISTRYINDEX, "xk.methods");
  for (size_t i = 0; i < sizeof fm / sizeof *fm; i++) {
    lua_pushinteger(L, fm[i].which);
    lua_pushinteger(L, fm[i].n);
    lua_pushstring(L, fm[i].name);
    lua_pushcclosure(L, l_fmath, 3);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, fm[i].name); /* x:tanh() */
    lua_setfield(L, -3, fm[i].name); /* tanh(x) */
  }
  lua_pushcfunction(L, l_umulhi);
  lua_setfield(L, -3, "umulhi");
  lua_pop(L, 2);
}
