/* device_print(prefix, x...): Triton's tl.device_print, one PRINT op per
 * value so that each lowering handles a single tile at a time. */
#include "dsl_priv.h"

static int l_device_print(lua_State *L) {
  xk_trace *t = xk_cur(L, "device_print");
  if (lua_type(L, 1) != LUA_TSTRING)
    xk_fail(L, t, "the prefix must be a string (got a %s)",
            luaL_typename(L, 1));
  int n = lua_gettop(L);
  if (n < 2)
    xk_fail(L, t, "nothing to print: give a scalar or tile after the prefix");
  int s = xk_func_add_str(t->f, lua_tostring(L, 1));
  for (int i = 2; i <= n; i++) {
    if (!xk_is_tile(L, i))
      xk_fail(L, t, "argument %d must be a scalar or tile (got a %s)", i,
              luaL_typename(L, i));
    int v = xk_tile_arg(L, t, i, "value");
    int dt = xk_tvt(t, v).dtype;
    if (!xk_dtype_is_int(dt) && !xk_dtype_is_float(dt))
      xk_fail(L, t, "argument %d must be of an int or float dtype (got %s)", i,
              xk_tn(xk_tvt(t, v)).s);
    xk_op_new(t->f, t->block, XK_OP_PRINT, &v, 1, NULL, 0, (xk_attr){.i = s},
              (xk_loc){t->line});
  }
  return 0;
}

void xk_ops_print_open(lua_State *L) {
  lua_register(L, "device_print", l_device_print);
}
