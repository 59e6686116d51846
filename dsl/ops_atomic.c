/* Atomics: atomic_add/max/min/and/or/xor/xchg(ptr, value[, opts]) and
 * atomic_cas(ptr, cmp, value[, opts]), each returning the old values
 * (Triton's). opts: mask (not for cas, as in Triton), sem ("acq_rel",
 * the default, "relaxed", "acquire", "release") and scope ("gpu", the
 * default, "cta", "sys"). */
#include "dsl_priv.h"

#include <stdio.h>
#include <string.h>

static const char *const sem_names[] = {"acq_rel", "relaxed", "acquire",
                                        "release"};
static const char *const scope_names[] = {"gpu", "cta", "sys"};

static int name_field(lua_State *L, xk_trace *t, int idx, const char *what,
                      const char *const *names, int n) {
  if (lua_isnil(L, idx))
    return 0;
  const char *s = lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : "";
  for (int i = 0; i < n; i++)
    if (!strcmp(s, names[i]))
      return i;
  xk_fail(L, t, "unknown %s '%s' (%s, %s, %s%s%s)", what,
          lua_type(L, idx) == LUA_TSTRING ? s : luaL_typename(L, idx), names[0],
          names[1], names[2], n > 3 ? ", " : "", n > 3 ? names[3] : "");
}

/* The options table at idx: pushes nothing, fills mask (value id or -1),
 * sem and scope. */
static void atomic_opts(lua_State *L, xk_trace *t, int idx, int allow_mask,
                        int *mask, int *sem, int *scope) {
  *mask = -1;
  *sem = *scope = 0;
  if (lua_isnoneornil(L, idx))
    return;
  if (!lua_istable(L, idx))
    xk_fail(L, t, "options must be a table like {mask = m} (got a %s)",
            luaL_typename(L, idx));
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    int top = lua_gettop(L);
    if (allow_mask && !strcmp(k, "mask")) {
      if (!xk_is_tile(L, top) ||
          xk_tvt(t, xk_tile_arg(L, t, top, "mask")).dtype != XK_I1)
        xk_fail(L, t, "mask must be an i1 tile, e.g. offs:lt(N)");
      *mask = xk_tile_arg(L, t, top, "mask");
    } else if (!strcmp(k, "sem")) {
      *sem = name_field(L, t, top, "sem", sem_names, 4);
    } else if (!strcmp(k, "scope")) {
      *scope = name_field(L, t, top, "scope", scope_names, 3);
    } else {
      xk_fail(L, t, "unknown option '%s' (%ssem, scope)",
              lua_type(L, -2) == LUA_TSTRING ? k : luaL_typename(L, -2),
              allow_mask ? "mask, " : "");
    }
    lua_pop(L, 1);
  }
}

static int l_atomic(lua_State *L) {
  int rmw = (int)lua_tointeger(L, lua_upvalueindex(1));
  const char *name = lua_tostring(L, lua_upvalueindex(2));
  xk_trace *t = xk_cur(L, name);
  int cas = rmw == XK_RMW_CAS, nv = cas ? 2 : 1;
  if (lua_gettop(L) > 2 + nv)
    xk_fail(L, t, "takes at most %d arguments (got %d)", 2 + nv, lua_gettop(L));
  if (!xk_is_tile(L, 1))
    xk_fail(L, t, "needs a pointer tile (got a %s)", luaL_typename(L, 1));
  int p = xk_tile_arg(L, t, 1, "pointer");
  xk_type pt = xk_tvt(t, p);
  int elem = pt.elem;
  int bits = rmw >= XK_RMW_AND && rmw <= XK_RMW_XOR;
  int flt_ok = !bits && rmw != XK_RMW_MAX && rmw != XK_RMW_MIN;
  if (pt.dtype != XK_PTR)
    xk_fail(L, t, "needs a pointer tile (got %s)", xk_tn(pt).s);
  if (elem != XK_I32 && elem != XK_I64 && !(elem == XK_F32 && flt_ok))
    xk_fail(L, t, "supports %s memory (got %s)",
            flt_ok ? "f32, i32 and i64" : "i32 and i64", xk_tn(pt).s);
  xk_opnd v[2];
  for (int i = 0; i < nv; i++) {
    v[i] = xk_get_opnd(L, t, 2 + i, cas && !i ? "cmp" : "value");
    if (v[i].kind == XK_K_TILE && xk_tvt(t, v[i].v).dtype == XK_PTR)
      xk_fail(L, t, "cannot store a pointer (%s)", xk_opnd_str(t, v[i]).s);
  }
  int mask, sem, scope;
  atomic_opts(L, t, 2 + nv, !cas, &mask, &sem, &scope);
  xk_type sh = pt;
  for (int i = 0; i < nv; i++)
    sh = xk_bcast_shape(L, t, sh, xk_opnd_type(t, v[i]));
  if (mask >= 0)
    sh = xk_bcast_shape(L, t, sh, xk_tvt(t, mask));
  int o[4], n = 0;
  o[n++] = xk_bcast_to(L, t, p, sh);
  for (int i = 0; i < nv; i++)
    o[n++] = xk_materialize(L, t, v[i], elem, sh);
  if (mask >= 0)
    o[n++] = xk_bcast_to(L, t, mask, sh);
  xk_type r = sh;
  r.dtype = (uint8_t)elem;
  r.elem = 0;
  xk_trace_push_tile(L, t,
                     xk_temit(t, XK_OP_ATOMIC, o, n, r,
                              (xk_attr){.rmw = rmw,
                                        .sem = sem,
                                        .scope = scope,
                                        .has_mask = mask >= 0}));
  return 1;
}

void xk_ops_atomic_open(lua_State *L) {
  lua_pushglobaltable(L);
  for (int rmw = 0; rmw < XK_NRMW; rmw++) {
    char name[32];
    snprintf(name, sizeof name, "atomic_%s", xk_rmw_name(rmw));
    lua_pushinteger(L, rmw);
    lua_pushstring(L, name);
    lua_pushcclosure(L, l_atomic, 2);
    lua_setfield(L, -2, name);
  }
  lua_pop(L, 1);
}
